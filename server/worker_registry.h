// The workers a coordinator knows: their ids, when each was last heard
// from, which job each serves (server/scheduler.h decides), which subnet
// each holds, and what each has done. A worker is live
// while it was heard from within `worker_timeout`; lost workers stay listed
// (as "lost") and come back to life on their next call, until they have
// been silent for `forget_after`: then they are removed (Prune), and must
// register again.
//
// Each worker gets a session at registration: a random secret every later
// call must prove (Authenticate), bound to the TLS client certificate it
// registered with, if any. Worker ids are not secrets.
//
// The registry is bounded: names are short and printable
// (ValidateWorkerName), each peer may register at most
// `registrations_per_minute` times a minute, and at most `max_known_workers` are
// known at once, so List() is bounded too.
//
// Time is passed in by the caller (`now`), so expiry can be tested with
// any clock.
//
// Not thread-safe: the Coordinator calls it under its own lock.
#ifndef IST_SERVER_WORKER_REGISTRY_H_
#define IST_SERVER_WORKER_REGISTRY_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/ist/v1/job.pb.h"
#include "proto/ist/v1/worker_service.pb.h"

namespace ist {

// The subnet a worker holds: `subnet` of round `round` of job `job_id`.
struct WorkerAssignment {
  std::string job_id;  // empty: the worker holds nothing
  int64_t round = -1;
  int subnet = -1;
};

struct WorkerRegistryOptions {
  // A worker silent for longer than this is lost: its subnet is reassigned.
  absl::Duration worker_timeout = absl::Seconds(20);
  // A worker silent for longer than this is forgotten (removed).
  absl::Duration forget_after = absl::Minutes(10);
  // Workers known at once.
  int max_known_workers = 1000;
  // Registrations accepted from one peer (its address without the port)
  // per minute, in bursts of up to this many.
  int registrations_per_minute = 120;
};

// What a worker call proves who it is with.
struct WorkerProof {
  std::string session;        // the secret it carries; empty: none
  std::string peer_identity;  // its connection's TLS client certificate (PEM); empty: none
};

// A new worker's id and session secret.
struct WorkerRegistration {
  std::string worker_id;
  std::string session;
};

// Bytes of randomness in a session secret (sent as twice as many hex digits).
constexpr int kSessionSecretBytes = 32;

// The longest worker name accepted, in bytes.
constexpr int kMaxWorkerNameBytes = 128;

// OK if `name` is 1 to kMaxWorkerNameBytes bytes of letters, digits and
// . _ - : @ / [ ] % + (host names, host:pid, gRPC peer addresses);
// otherwise InvalidArgument naming the field "name" and what is wrong.
absl::Status ValidateWorkerName(const std::string& name);

// The part of a gRPC peer string that names the host: "ipv4:10.0.0.1:5000"
// -> "ipv4:10.0.0.1", "ipv6:[::1]:5000" -> "ipv6:[::1]"; other forms whole.
std::string PeerHost(const std::string& peer);

class WorkerRegistry {
 public:
  explicit WorkerRegistry(WorkerRegistryOptions options) : options_(std::move(options)) {}

  WorkerRegistry(const WorkerRegistry&) = delete;
  WorkerRegistry& operator=(const WorkerRegistry&) = delete;

  // Adds a worker named `name`, calling from `peer` (a gRPC peer string)
  // over a connection whose TLS client certificate is `peer_identity` (""
  // without one), heard from at `now`, and returns its new id ("w1", "w2",
  // ... in registration order; ids are never reused) and session (a fresh
  // secret from the kernel's CSPRNG, kSessionSecretBytes bytes as hex).
  // Forgets workers silent for forget_after first. Errors, and nothing is
  // added:
  //   InvalidArgument  the name fails ValidateWorkerName;
  //   ResourceExhausted  the peer's host registered registrations_per_minute
  //     times within the last minute, or max_known_workers workers are known and
  //     none is lost (else the longest-silent lost one is forgotten);
  //   Internal  the CSPRNG failed.
  absl::StatusOr<WorkerRegistration> Register(const std::string& name, const std::string& peer,
                                              const std::string& peer_identity, absl::Time now);

  // OK if `proof` is worker `id`'s: its session, compared in constant time,
  // and the certificate it registered with (or none, if it registered
  // without). Otherwise, counted in refusals() under the reason given:
  //   Unauthenticated  no session ("no_session");
  //   NotFound  `id` is unknown: register again ("unknown_worker");
  //   PermissionDenied  another session ("wrong_session"), or another
  //     certificate ("wrong_certificate").
  // The messages name the worker id and the reason, never a secret.
  absl::Status Authenticate(const std::string& id, const WorkerProof& proof);

  // Calls Authenticate refused, per reason (every reason listed, from 0).
  const std::map<std::string, int64_t>& refusals() const { return refusals_; }

  // Removes every worker silent for longer than forget_after at `now`
  // (whatever it held is the caller's to take back) and the rate records of
  // peers idle long enough to have their full allowance again. Returns the
  // number of workers removed.
  int Prune(absl::Time now);

  bool Contains(const std::string& id) const { return workers_.count(id) > 0; }

  // Records that worker `id` was heard from at `now`. False if the id is
  // unknown (the worker must register again).
  bool Touch(const std::string& id, absl::Time now);

  // Why the worker cannot be counted on at `now`: "is gone" if the id is
  // unknown, "has been silent for <duration>" if it was last heard from
  // more than worker_timeout ago; empty if it is live.
  std::string WhyLost(const std::string& id, absl::Time now) const;

  // The worker's assignment; an empty job_id if it holds none or the id is
  // unknown.
  WorkerAssignment Assignment(const std::string& id) const;
  // Records that the worker holds `assignment`. Ignored for unknown ids.
  void Assign(const std::string& id, WorkerAssignment assignment);
  // Records that the worker holds nothing. Ignored for unknown ids.
  void Release(const std::string& id);

  // Records that the worker serves job `job_id` ("": it is free). Ignored
  // for unknown ids. A worker keeps its job while lost, until it is given
  // another or forgotten.
  void Serve(const std::string& id, const std::string& job_id);
  // The job the worker serves; "" if it is free or unknown.
  std::string ServedJob(const std::string& id) const;
  // The live workers at `now` that serve `job_id` ("": the free ones), in
  // id order.
  std::vector<std::string> LiveWorkersOf(const std::string& job_id, absl::Time now) const;
  // Every worker (live or lost) that serves `job_id`, in id order.
  std::vector<std::string> WorkersOf(const std::string& job_id) const;
  // Every worker that serves `job_id` is free again.
  void FreeWorkersOf(const std::string& job_id);

  // Counts a task the worker finished whose training `stats` report
  // (last_step_seconds = train_seconds / steps when steps > 0). Ignored for
  // unknown ids.
  // `slice_scalars` (> 0) updates the worker's throughput: an average of
  // slice_scalars * steps / train_seconds over its recent tasks.
  void RecordTaskDone(const std::string& id, const v1::TrainStats& stats,
                      int64_t slice_scalars = 0);
  // The live workers at `now`, in id order, with their throughput (0 until
  // measured).
  std::vector<std::pair<std::string, double>> LiveThroughputs(absl::Time now) const;
  // The same for the live workers that serve `job_id`.
  std::vector<std::pair<std::string, double>> LiveThroughputs(const std::string& job_id,
                                                              absl::Time now) const;

  // Every worker, in id order, with state "lost", "training" (holds an
  // assignment) or "idle" as of `now`, and the job it serves.
  std::vector<v1::WorkerStatus> List(absl::Time now) const;
  // The number of workers heard from within worker_timeout of `now`.
  int NumLive(absl::Time now) const;

 private:
  struct Worker {
    std::string name;
    std::string session;
    std::string peer_identity;
    absl::Time last_seen;
    int64_t tasks_done = 0;
    double last_step_seconds = 0;
    double throughput = 0;  // slice scalars x steps per second of training
    WorkerAssignment assignment;
    std::string job;  // the job it serves; "" = free
  };

  // A peer host's registration allowance: a token bucket holding up to
  // registrations_per_minute tokens, refilled at that rate.
  struct Allowance {
    double tokens = 0;
    absl::Time updated;
  };
  // The allowance of `host` refilled up to `now`.
  Allowance& RefilledAllowance(const std::string& host, absl::Time now);
  bool Lost(const Worker& w, absl::Time now) const {
    return now - w.last_seen > options_.worker_timeout;
  }

  const WorkerRegistryOptions options_;
  std::map<std::string, Worker> workers_;
  std::map<std::string, Allowance> allowances_;
  std::map<std::string, int64_t> refusals_ = {
      {"no_session", 0}, {"unknown_worker", 0}, {"wrong_session", 0}, {"wrong_certificate", 0}};
  int64_t next_worker_ = 1;
};

}  // namespace ist

#endif  // IST_SERVER_WORKER_REGISTRY_H_
