// What one round of a job cost the coordinator, and the two log lines that
// report it. bench/coordinator_share.sh parses the "own_work" line by its
// key=value fields: keep the line's format stable.
//
// A round's cycle runs from the start of its plan and extraction to the
// model fingerprint after its merge:
//   plan_extract  PlanRound + ExtractSlice of every slice (wall)
//   codec_cpu     CPU time the slice handlers spent encoding and decoding
//                 the round's slices (reported by them)
//   merge         the merge (wall; includes the next round's extraction
//                 when fused with it)
//   fingerprint   the model fingerprint published with the round (wall)
// own_s is their sum; process_cpu_s the whole process's CPU time over the
// cycle. round_seconds runs from the hand-out of the round to its merge.
// The progress fields it fills (AddToProgress) are what the Prometheus
// metrics (server/coordinator_metrics.h) export.
//
// Times are passed in by the caller, so the arithmetic and the lines can be
// tested with any clock. Not thread-safe: the coordinator calls it under
// its own lock.
#ifndef IST_SERVER_ROUND_TELEMETRY_H_
#define IST_SERVER_ROUND_TELEMETRY_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "proto/ist/v1/job.pb.h"

namespace ist {

// User + system CPU seconds of the whole process (every thread).
double ProcessCpuSeconds();

class RoundTelemetry {
 public:
  // A cycle begins at `now`, when the process had used `process_cpu_seconds`
  // of CPU. Resets the codec CPU time.
  void StartCycle(absl::Time now, double process_cpu_seconds);
  // The round's plan and extraction ended at `now`.
  void PlanExtractDone(absl::Time now);
  // The round opened for hand-out at `now`. Resets the byte counts.
  void RoundOpened(absl::Time now);

  void AddBytesSent(int64_t bytes) { bytes_sent_ += bytes; }
  void AddBytesReceived(int64_t bytes) { bytes_received_ += bytes; }
  void AddCodecCpuSeconds(double seconds) { codec_cpu_seconds_ += seconds; }

  // The round's merge took `merge_seconds` and ended at `now`.
  void RoundMerged(absl::Time now, double merge_seconds);
  // The fingerprint of the merged model ran from `start` to `end`, which
  // ends the cycle.
  void FingerprintDone(absl::Time start, absl::Time end);

  // Writes the round into `p`: round_seconds, merge_seconds and the round's
  // bytes; adds to train_seconds and the total bytes.
  void AddToProgress(v1::JobProgress* p) const;

  // "job=J round=N own_work own_s=.. cycle_s=.. plan_extract_s=..
  // codec_cpu_s=.. merge_s=.. fingerprint_s=.. process_cpu_s=..", where
  // process_cpu_s is `process_cpu_seconds_now` minus the cycle's start.
  std::string OwnWorkLine(const std::string& job_id, int64_t round,
                          double process_cpu_seconds_now) const;
  // "job=J round=N of T loss L acc A (S s, X B out, Y B in)".
  std::string SummaryLine(const std::string& job_id, int64_t round, int64_t total_rounds,
                          double loss, double accuracy) const;

  int64_t bytes_sent() const { return bytes_sent_; }
  int64_t bytes_received() const { return bytes_received_; }
  double plan_extract_seconds() const { return plan_extract_seconds_; }
  double codec_cpu_seconds() const { return codec_cpu_seconds_; }
  double merge_seconds() const { return merge_seconds_; }
  double fingerprint_seconds() const { return fingerprint_seconds_; }
  double round_seconds() const { return round_seconds_; }
  double cycle_seconds() const { return absl::ToDoubleSeconds(cycle_end_ - cycle_start_); }
  double own_seconds() const {
    return plan_extract_seconds_ + codec_cpu_seconds_ + merge_seconds_ + fingerprint_seconds_;
  }

 private:
  absl::Time cycle_start_;
  double cycle_start_cpu_ = 0;
  absl::Time cycle_end_;
  absl::Time round_start_;
  double plan_extract_seconds_ = 0;
  double codec_cpu_seconds_ = 0;
  double merge_seconds_ = 0;
  double fingerprint_seconds_ = 0;
  double round_seconds_ = 0;
  int64_t bytes_sent_ = 0;
  int64_t bytes_received_ = 0;
};

}  // namespace ist

#endif  // IST_SERVER_ROUND_TELEMETRY_H_
