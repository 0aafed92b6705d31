// WorkerRegistry with a hand-driven clock: ids, liveness and expiry,
// assignments, and the listing the job API shows.
#include "server/worker_registry.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

using testing::HasSubstr;

const absl::Time kStart = absl::FromUnixSeconds(1000);
const char kPeer[] = "ipv4:127.0.0.1:40000";

// Registers a worker without a TLS identity; its id.
absl::StatusOr<std::string> RegisterId(WorkerRegistry& registry, const std::string& name,
                                       const std::string& peer, absl::Time now) {
  absl::StatusOr<WorkerRegistration> registered = registry.Register(name, peer, "", now);
  if (!registered.ok()) return registered.status();
  return registered->worker_id;
}

WorkerRegistryOptions Options() {
  WorkerRegistryOptions options;
  options.worker_timeout = absl::Seconds(20);
  return options;
}

TEST(WorkerRegistryTest, GivesIdsInRegistrationOrder) {
  WorkerRegistry registry(Options());
  EXPECT_EQ(*RegisterId(registry, "a", kPeer, kStart), "w1");
  EXPECT_EQ(*RegisterId(registry, "a", kPeer, kStart), "w2");  // same name, new worker
  EXPECT_TRUE(registry.Contains("w2"));
  EXPECT_FALSE(registry.Contains("w3"));
  EXPECT_FALSE(registry.Touch("w3", kStart));
  EXPECT_TRUE(registry.Touch("w1", kStart));
}

TEST(WorkerRegistryTest, AWorkerSilentPastTheTimeoutIsLostUntilHeardFromAgain) {
  WorkerRegistry registry(Options());
  const std::string w = *RegisterId(registry, "a", kPeer, kStart);
  EXPECT_EQ(registry.WhyLost(w, kStart + absl::Seconds(20)), "");  // exactly the timeout: live
  EXPECT_EQ(registry.NumLive(kStart + absl::Seconds(20)), 1);
  EXPECT_EQ(registry.WhyLost(w, kStart + absl::Seconds(21)), "has been silent for 21s");
  EXPECT_EQ(registry.NumLive(kStart + absl::Seconds(21)), 0);
  EXPECT_EQ(registry.List(kStart + absl::Seconds(21))[0].state(), "lost");
  ASSERT_TRUE(registry.Touch(w, kStart + absl::Seconds(30)));
  EXPECT_EQ(registry.WhyLost(w, kStart + absl::Seconds(31)), "");
  EXPECT_EQ(registry.NumLive(kStart + absl::Seconds(31)), 1);
  EXPECT_EQ(registry.WhyLost("w9", kStart), "is gone");
}

TEST(WorkerRegistryTest, TracksWhichWorkerHoldsWhichSubnet) {
  WorkerRegistry registry(Options());
  const std::string a = *RegisterId(registry, "a", kPeer, kStart);
  const std::string b = *RegisterId(registry, "b", kPeer, kStart);
  registry.Assign(a, {"job-3", 4, 1});
  EXPECT_EQ(registry.Assignment(a).job_id, "job-3");
  EXPECT_EQ(registry.Assignment(a).round, 4);
  EXPECT_EQ(registry.Assignment(a).subnet, 1);
  EXPECT_TRUE(registry.Assignment(b).job_id.empty());
  EXPECT_TRUE(registry.Assignment("w9").job_id.empty());
  registry.Assign("w9", {"job-3", 4, 0});  // unknown: ignored
  EXPECT_FALSE(registry.Contains("w9"));

  std::vector<v1::WorkerStatus> list = registry.List(kStart);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].worker_id(), a);
  EXPECT_EQ(list[0].state(), "training");
  EXPECT_EQ(list[0].job_id(), "job-3");
  EXPECT_EQ(list[0].round(), 4);
  EXPECT_EQ(list[0].subnet(), 1);
  EXPECT_EQ(list[1].state(), "idle");
  EXPECT_EQ(list[1].job_id(), "");
  EXPECT_DOUBLE_EQ(list[1].last_contact_unix(), 1000);

  registry.Release(a);
  EXPECT_TRUE(registry.Assignment(a).job_id.empty());
  EXPECT_EQ(registry.List(kStart)[0].state(), "idle");
}

TEST(WorkerRegistryTest, TracksWhichJobEachWorkerServes) {
  WorkerRegistry registry(Options());
  const std::string a = registry.Register("a", kPeer, "", kStart)->worker_id;
  const std::string b = registry.Register("b", kPeer, "", kStart)->worker_id;
  const std::string c = registry.Register("c", kPeer, "", kStart + absl::Seconds(15))->worker_id;
  registry.Serve(a, "job-1");
  registry.Serve(c, "job-1");
  registry.Serve("w9", "job-1");  // unknown: ignored
  EXPECT_EQ(registry.ServedJob(a), "job-1");
  EXPECT_EQ(registry.ServedJob(b), "");
  EXPECT_EQ(registry.ServedJob("w9"), "");
  EXPECT_EQ(registry.WorkersOf("job-1"), (std::vector<std::string>{a, c}));
  EXPECT_EQ(registry.LiveWorkersOf("", kStart), std::vector<std::string>{b});
  // A lost worker keeps its job but is not counted live.
  const absl::Time later = kStart + absl::Seconds(25);
  EXPECT_EQ(registry.LiveWorkersOf("job-1", later), std::vector<std::string>{c});
  EXPECT_EQ(registry.WorkersOf("job-1"), (std::vector<std::string>{a, c}));
  ASSERT_EQ(registry.LiveThroughputs("job-1", later).size(), 1u);
  EXPECT_EQ(registry.LiveThroughputs("job-1", later)[0].first, c);
  const std::vector<v1::WorkerStatus> list = registry.List(later);
  EXPECT_EQ(list[0].serving_job_id(), "job-1");
  EXPECT_EQ(list[0].state(), "lost");
  EXPECT_EQ(list[1].serving_job_id(), "");
  registry.FreeWorkersOf("job-1");
  EXPECT_TRUE(registry.WorkersOf("job-1").empty());
  EXPECT_EQ(registry.LiveWorkersOf("", kStart), (std::vector<std::string>{a, b, c}));
}

TEST(WorkerRegistryTest, CountsFinishedTasksAndTheirStepTime) {
  WorkerRegistry registry(Options());
  const std::string w = *RegisterId(registry, "a", kPeer, kStart);
  v1::TrainStats stats;
  stats.set_steps(4);
  stats.set_train_seconds(2);
  registry.RecordTaskDone(w, stats);
  registry.RecordTaskDone(w, v1::TrainStats());  // no steps: step time kept
  const v1::WorkerStatus status = registry.List(kStart)[0];
  EXPECT_EQ(status.tasks_done(), 2);
  EXPECT_DOUBLE_EQ(status.last_step_seconds(), 0.5);
}

TEST(WorkerRegistryTest, RefusesNamesTooLongOrWithOtherCharacters) {
  WorkerRegistry registry(Options());
  const std::vector<std::string> names = {"host-1.example.com:4242", "ipv6:[::1]:5000",
                                          "w_2@rack/3", "ipv6:%5B::1%5D:80",
                                          std::string(kMaxWorkerNameBytes, 'a')};
  for (const std::string& name : names) {
    EXPECT_TRUE(RegisterId(registry, name, kPeer, kStart).ok()) << name;
  }
  const absl::StatusOr<std::string> huge =
      RegisterId(registry, std::string(1 << 20, 'a'), kPeer, kStart);
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(huge.status().message(), "name: must be 1 to 128 bytes, got 1048576 bytes");
  const absl::StatusOr<std::string> forged =
      RegisterId(registry, "a\nE1203 forged log line", kPeer, kStart);
  EXPECT_EQ(forged.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(forged.status().message(), HasSubstr("name: may hold only"));
  EXPECT_THAT(forged.status().message(), HasSubstr("got byte 0x0a at offset 1"));
  EXPECT_FALSE(RegisterId(registry, "", kPeer, kStart).ok());
  EXPECT_FALSE(RegisterId(registry, "a b", kPeer, kStart).ok());
  EXPECT_EQ(registry.List(kStart).size(), 5u);
}

TEST(WorkerRegistryTest, ForgetsWorkersSilentPastForgetAfter) {
  WorkerRegistryOptions options = Options();
  options.forget_after = absl::Minutes(5);
  WorkerRegistry registry(options);
  const std::string quiet = *RegisterId(registry, "quiet", kPeer, kStart);
  const std::string busy = *RegisterId(registry, "busy", kPeer, kStart);
  ASSERT_TRUE(registry.Touch(busy, kStart + absl::Minutes(4)));
  EXPECT_EQ(registry.Prune(kStart + absl::Minutes(5)), 0);  // exactly forget_after: kept
  EXPECT_EQ(registry.List(kStart + absl::Minutes(5))[0].state(), "lost");
  EXPECT_EQ(registry.Prune(kStart + absl::Minutes(5) + absl::Seconds(1)), 1);
  EXPECT_FALSE(registry.Contains(quiet));
  EXPECT_FALSE(registry.Touch(quiet, kStart + absl::Minutes(6)));  // must register again
  EXPECT_EQ(registry.WhyLost(quiet, kStart + absl::Minutes(6)), "is gone");
  ASSERT_EQ(registry.List(kStart + absl::Minutes(6)).size(), 1u);
  EXPECT_EQ(registry.List(kStart + absl::Minutes(6))[0].worker_id(), busy);
}

TEST(WorkerRegistryTest, RateLimitsRegistrationsPerPeerHost) {
  WorkerRegistryOptions options = Options();
  options.registrations_per_minute = 3;
  WorkerRegistry registry(options);
  // Three from 10.0.0.1, whatever the source port.
  for (int port : {1000, 1001, 1002}) {
    EXPECT_TRUE(RegisterId(registry, "a", absl::StrCat("ipv4:10.0.0.1:", port), kStart).ok());
  }
  const absl::StatusOr<std::string> refused =
      RegisterId(registry, "a", "ipv4:10.0.0.1:1003", kStart);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(refused.status().message(),
            "registrations from ipv4:10.0.0.1: more than 3 a minute; retry later");
  // Another host has its own allowance; the first gets one back every 20 s.
  EXPECT_TRUE(RegisterId(registry, "b", "ipv4:10.0.0.2:1000", kStart).ok());
  EXPECT_FALSE(RegisterId(registry, "a", "ipv4:10.0.0.1:1004", kStart + absl::Seconds(19)).ok());
  EXPECT_TRUE(RegisterId(registry, "a", "ipv4:10.0.0.1:1005", kStart + absl::Seconds(21)).ok());
  EXPECT_EQ(PeerHost("ipv6:[::1]:5000"), "ipv6:[::1]");
  EXPECT_EQ(PeerHost("unix:/run/ist.sock"), "unix:/run/ist.sock");
}

TEST(WorkerRegistryTest, HoldsAtMostMaxWorkersSoTheListIsBounded) {
  WorkerRegistryOptions options = Options();
  options.max_known_workers = 2;
  WorkerRegistry registry(options);
  const std::string w1 = *RegisterId(registry, "a", "ipv4:10.0.0.1:1", kStart);
  const std::string w2 = *RegisterId(registry, "b", "ipv4:10.0.0.2:1", kStart + absl::Seconds(5));
  const absl::StatusOr<std::string> full =
      RegisterId(registry, "c", "ipv4:10.0.0.3:1", kStart + absl::Seconds(10));
  EXPECT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.status().message(), HasSubstr("2 live workers, its limit (--max_known_workers)"));
  // Once both are lost, a new worker takes the place of the longest silent.
  const absl::StatusOr<std::string> w3 =
      RegisterId(registry, "c", "ipv4:10.0.0.3:1", kStart + absl::Seconds(30));
  ASSERT_TRUE(w3.ok()) << w3.status();
  EXPECT_FALSE(registry.Contains(w1));
  EXPECT_TRUE(registry.Contains(w2));
  EXPECT_EQ(registry.List(kStart + absl::Seconds(30)).size(), 2u);
}

TEST(WorkerRegistryTest, EachWorkerGetsItsOwnUnguessableSession) {
  WorkerRegistry registry(Options());
  auto a = registry.Register("a", kPeer, "", kStart);
  auto b = registry.Register("b", kPeer, "", kStart);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_THAT(a->session, testing::MatchesRegex("[0-9a-f]{64}"));
  EXPECT_NE(a->session, b->session);
  EXPECT_TRUE(registry.Authenticate(a->worker_id, {a->session, ""}).ok());
  EXPECT_TRUE(registry.Authenticate(b->worker_id, {b->session, ""}).ok());
}

TEST(WorkerRegistryTest, RefusesAndCountsCallsWithoutTheWorkersSession) {
  WorkerRegistry registry(Options());
  auto a = registry.Register("a", kPeer, "", kStart);
  auto b = registry.Register("b", kPeer, "", kStart);
  ASSERT_TRUE(a.ok() && b.ok());
  const absl::Status none = registry.Authenticate(a->worker_id, {"", ""});
  EXPECT_EQ(none.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(none.message(), HasSubstr("carries no session"));
  // b's session does not make its holder a.
  const absl::Status other = registry.Authenticate(a->worker_id, {b->session, ""});
  EXPECT_EQ(other.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(other.message(), HasSubstr("session is not this worker's"));
  EXPECT_THAT(other.message(), testing::Not(HasSubstr(b->session)));
  std::string near_miss = a->session;
  near_miss.back() = near_miss.back() == '0' ? '1' : '0';
  EXPECT_EQ(registry.Authenticate(a->worker_id, {near_miss, ""}).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(registry.Authenticate(a->worker_id, {a->session + "0", ""}).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(registry.Authenticate("w9", {a->session, ""}).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry.refusals().at("no_session"), 1);
  EXPECT_EQ(registry.refusals().at("wrong_session"), 3);
  EXPECT_EQ(registry.refusals().at("unknown_worker"), 1);
  EXPECT_EQ(registry.refusals().at("wrong_certificate"), 0);
}

TEST(WorkerRegistryTest, ASessionIsBoundToTheCertificateItRegisteredWith) {
  WorkerRegistry registry(Options());
  auto a = registry.Register("a", kPeer, "PEM of a", kStart);
  auto plain = registry.Register("p", kPeer, "", kStart);
  ASSERT_TRUE(a.ok() && plain.ok());
  EXPECT_TRUE(registry.Authenticate(a->worker_id, {a->session, "PEM of a"}).ok());
  const absl::Status stolen = registry.Authenticate(a->worker_id, {a->session, "PEM of b"});
  EXPECT_EQ(stolen.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(stolen.message(), HasSubstr("client certificate is not the one it registered with"));
  EXPECT_EQ(registry.Authenticate(a->worker_id, {a->session, ""}).code(),
            absl::StatusCode::kPermissionDenied);
  // Registered without a certificate: a call that comes with one is another peer.
  EXPECT_EQ(registry.Authenticate(plain->worker_id, {plain->session, "PEM of a"}).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(registry.refusals().at("wrong_certificate"), 3);
}

}  // namespace
}  // namespace ist
