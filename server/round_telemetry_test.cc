// RoundTelemetry with hand-set times: the cycle arithmetic, the progress
// fields, and the exact log lines bench/coordinator_share.sh reads.
#include "server/round_telemetry.h"

#include <map>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace ist {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1000);

absl::Time At(double seconds) { return kT0 + absl::Seconds(seconds); }

// One round: cycle from 0 s (process CPU 10 s), plan+extract until 0.25,
// open at 0.5, merged at 2.5 after 0.5 s of merge, fingerprint until 2.625.
RoundTelemetry OneRound() {
  RoundTelemetry t;
  t.StartCycle(At(0), 10);
  t.PlanExtractDone(At(0.25));
  t.RoundOpened(At(0.5));
  t.AddBytesSent(100);
  t.AddBytesSent(200);
  t.AddBytesReceived(300);
  t.AddCodecCpuSeconds(0.0625);
  t.AddCodecCpuSeconds(0.0625);
  t.RoundMerged(At(2.5), 0.5);
  t.FingerprintDone(At(2.5), At(2.625));
  return t;
}

TEST(RoundTelemetryTest, AddsUpTheCycle) {
  const RoundTelemetry t = OneRound();
  EXPECT_DOUBLE_EQ(t.plan_extract_seconds(), 0.25);
  EXPECT_DOUBLE_EQ(t.codec_cpu_seconds(), 0.125);
  EXPECT_DOUBLE_EQ(t.round_seconds(), 2.0);
  EXPECT_DOUBLE_EQ(t.fingerprint_seconds(), 0.125);
  EXPECT_DOUBLE_EQ(t.cycle_seconds(), 2.625);
  EXPECT_DOUBLE_EQ(t.own_seconds(), 0.25 + 0.125 + 0.5 + 0.125);
  EXPECT_EQ(t.bytes_sent(), 300);
  EXPECT_EQ(t.bytes_received(), 300);
}

TEST(RoundTelemetryTest, OwnWorkLineKeepsItsFormat) {
  const std::string line = OneRound().OwnWorkLine("job-1", 3, 11.5);
  EXPECT_EQ(line,
            "job=job-1 round=3 own_work own_s=1 cycle_s=2.625 plan_extract_s=0.25 "
            "codec_cpu_s=0.125 merge_s=0.5 fingerprint_s=0.125 process_cpu_s=1.5");
  // Read as bench/coordinator_share.sh does: space-separated key=value.
  std::map<std::string, std::string> v;
  std::istringstream fields(line);
  for (std::string field; fields >> field;) {
    const size_t eq = field.find('=');
    if (eq != std::string::npos) v[field.substr(0, eq)] = field.substr(eq + 1);
  }
  for (const char* key : {"round", "own_s", "cycle_s", "plan_extract_s", "codec_cpu_s",
                          "merge_s", "fingerprint_s", "process_cpu_s"}) {
    EXPECT_EQ(v.count(key), 1u) << key;
  }
  EXPECT_EQ(v["round"], "3");
}

TEST(RoundTelemetryTest, SummaryLineKeepsItsFormat) {
  EXPECT_EQ(OneRound().SummaryLine("job-1", 3, 10, 0.5, 0.75),
            "job=job-1 round=3 of 10 loss 0.5 acc 0.75 (2 s, 300 B out, 300 B in)");
}

TEST(RoundTelemetryTest, WritesTheRoundIntoTheProgress) {
  v1::JobProgress p;
  p.set_train_seconds(1);
  p.set_total_bytes_sent(1000);
  p.set_total_bytes_received(2000);
  OneRound().AddToProgress(&p);
  EXPECT_DOUBLE_EQ(p.round_seconds(), 2);
  EXPECT_DOUBLE_EQ(p.train_seconds(), 3);
  EXPECT_DOUBLE_EQ(p.merge_seconds(), 0.5);
  EXPECT_EQ(p.round_bytes_sent(), 300);
  EXPECT_EQ(p.round_bytes_received(), 300);
  EXPECT_EQ(p.total_bytes_sent(), 1300);
  EXPECT_EQ(p.total_bytes_received(), 2300);
}

TEST(RoundTelemetryTest, ANewCycleResetsCodecTimeAndANewRoundResetsBytes) {
  RoundTelemetry t = OneRound();
  t.StartCycle(At(3), 12);
  EXPECT_DOUBLE_EQ(t.codec_cpu_seconds(), 0);
  EXPECT_EQ(t.bytes_sent(), 300);  // the last round's, until the next opens
  t.RoundOpened(At(3.5));
  EXPECT_EQ(t.bytes_sent(), 0);
  EXPECT_EQ(t.bytes_received(), 0);
}

TEST(RoundTelemetryTest, ProcessCpuSecondsNeverDecreases) {
  const double before = ProcessCpuSeconds();
  volatile double sink = 0;
  for (int i = 0; i < 1000000; ++i) sink = sink + i;
  EXPECT_GE(ProcessCpuSeconds(), before);
  EXPECT_GE(before, 0);
}

}  // namespace
}  // namespace ist
