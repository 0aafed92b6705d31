#include "server/round_telemetry.h"

#include <sys/resource.h>

#include <sstream>

#include "common/base/log_tags.h"

namespace ist {

double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + 1e-6 * t.tv_usec; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

void RoundTelemetry::StartCycle(absl::Time now, double process_cpu_seconds) {
  cycle_start_ = now;
  cycle_start_cpu_ = process_cpu_seconds;
  codec_cpu_seconds_ = 0;
}

void RoundTelemetry::PlanExtractDone(absl::Time now) {
  plan_extract_seconds_ = absl::ToDoubleSeconds(now - cycle_start_);
}

void RoundTelemetry::RoundOpened(absl::Time now) {
  round_start_ = now;
  bytes_sent_ = 0;
  bytes_received_ = 0;
}

void RoundTelemetry::RoundMerged(absl::Time now, double merge_seconds) {
  merge_seconds_ = merge_seconds;
  round_seconds_ = absl::ToDoubleSeconds(now - round_start_);
}

void RoundTelemetry::FingerprintDone(absl::Time start, absl::Time end) {
  fingerprint_seconds_ = absl::ToDoubleSeconds(end - start);
  cycle_end_ = end;
}

void RoundTelemetry::AddToProgress(v1::JobProgress* p) const {
  p->set_round_seconds(round_seconds_);
  p->set_train_seconds(p->train_seconds() + round_seconds_);
  p->set_merge_seconds(merge_seconds_);
  p->set_round_bytes_sent(bytes_sent_);
  p->set_round_bytes_received(bytes_received_);
  p->set_total_bytes_sent(p->total_bytes_sent() + bytes_sent_);
  p->set_total_bytes_received(p->total_bytes_received() + bytes_received_);
}

// Both lines are written with ostream formatting of doubles (6 significant
// digits), as LOG(INFO) streams them.
std::string RoundTelemetry::OwnWorkLine(const std::string& job_id, int64_t round,
                                        double process_cpu_seconds_now) const {
  std::ostringstream line;
  line << JobTag(job_id, round) << " own_work own_s=" << own_seconds()
       << " cycle_s=" << cycle_seconds() << " plan_extract_s=" << plan_extract_seconds_
       << " codec_cpu_s=" << codec_cpu_seconds_ << " merge_s=" << merge_seconds_
       << " fingerprint_s=" << fingerprint_seconds_
       << " process_cpu_s=" << process_cpu_seconds_now - cycle_start_cpu_;
  return line.str();
}

std::string RoundTelemetry::SummaryLine(const std::string& job_id, int64_t round,
                                        int64_t total_rounds, double loss,
                                        double accuracy) const {
  std::ostringstream line;
  line << JobTag(job_id, round) << " of " << total_rounds << " loss " << loss << " acc "
       << accuracy << " (" << round_seconds_ << " s, " << bytes_sent_ << " B out, "
       << bytes_received_ << " B in)";
  return line.str();
}

}  // namespace ist
