// transfer_bench: how fast a real IST slice crosses loopback through the
// project's gRPC path, against a plain TCP socket moving the same bytes in
// the same run (target: gRPC >= 0.5 of TCP).
//
// Why the real coordinator in-process: the slice, the service handlers
// (server/grpc_services.cc SliceServiceImpl), the zero-copy codec
// (common/wire/slice_wire.h, common/wire/slice_stream.h), the chunk size, the message limits and the
// channel arguments (worker/worker_agent.h CoordinatorChannel) are all the
// production ones. The bench submits a 784-4096-4096-10 S=2 job to a real
// Coordinator served on 127.0.0.1:0, registers two workers, takes both
// subnets of each round with GetTask and, for each, times
//   fetch: SliceStreamClient::Fetch into a freshly shaped MlpParams
//          (exactly what worker/worker_agent.cc does), and
//   push:  SliceStreamClient::Push -> the coordinator's decoder, checks
//          and AcceptSlice, until the response arrives.
// Training is skipped: the fetched slice is pushed back unchanged. The slice
// size is checked against SliceScalars of the coordinator's own round plan.
//
// Baseline (same run, interleaved with the gRPC rounds): one TCP connection
// on 127.0.0.1; for each subnet the "coordinator" side write()s the slice's
// bytes and the "worker" side read()s them into a buffer of that size, then
// the same back. Buffers are allocated once: the baseline is the kernel's
// loopback copy and nothing else.
//
// Reported: bytes, seconds and MB/s per repetition for both, the median of
// each, and the median over repetitions of gRPC MB/s / TCP MB/s.
#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/grpc_status.h"
#include "common/model/job_spec.h"
#include "common/model/mlp_model.h"
#include "common/ist/round_plan.h"
#include "common/wire/slice_codec.h"
#include "common/wire/slice_stream.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "grpcpp/grpcpp.h"
#include "proto/ist/v1/worker_service.grpc.pb.h"
#include "server/coordinator.h"
#include "server/grpc_services.h"
#include "common/wire/security.h"
#include "worker/worker_agent.h"

DEFINE_string(layers, "784-4096-4096-10", "model shape");
DEFINE_int32(subnets, 2, "S");
DEFINE_int32(reps, 9, "repetitions (rounds); the median is reported");
DEFINE_double(max_seconds, 240, "stop after this long whatever --reps says");
DEFINE_string(data_dir, "/usr/share/datasets", "where fashion-mnist lives");
DEFINE_int32(arena_max, 1, "glibc M_ARENA_MAX as the coordinator daemon sets it; 0: default");
DEFINE_int32(mmap_threshold, 0,
             "glibc M_MMAP_THRESHOLD (0 keeps glibc's dynamic default, as the daemon does); "
             "measured: a fixed 4 MiB costs ~1.45x CPU per GB here");
DEFINE_int64(push_chunk_bytes, ist::kDefaultChunkBytes,
             "payload bytes per pushed chunk (the worker's default is 1 MiB)");

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// User + system CPU seconds of this process (both ends of both transports
// live here; the coordinator's round loop is idle while they are timed).
double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + 1e-6 * t.tv_usec; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

void SetDeadline(grpc::ClientContext* context, int seconds) {
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
}

// ---------------------------------------------------------------- TCP baseline

bool WriteAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t k = ::write(fd, p, n);
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

bool ReadAll(int fd, char* p, size_t n) {
  while (n > 0) {
    const ssize_t k = ::read(fd, p, n);
    if (k <= 0) return false;
    p += k;
    n -= static_cast<size_t>(k);
  }
  return true;
}

// A connected pair of loopback TCP sockets (a = "coordinator", b = "worker").
struct TcpPair {
  int a = -1, b = -1;
  ~TcpPair() {
    if (a >= 0) ::close(a);
    if (b >= 0) ::close(b);
  }
};

bool ConnectTcpPair(TcpPair* pair) {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  if (listener < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  bool ok = ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
            ::listen(listener, 1) == 0 &&
            ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  if (ok) {
    pair->b = ::socket(AF_INET, SOCK_STREAM, 0);
    ok = pair->b >= 0 &&
         ::connect(pair->b, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  if (ok) pair->a = ::accept(listener, nullptr, nullptr);
  ::close(listener);
  ok = ok && pair->a >= 0;
  const int one = 1;
  if (ok) {
    ::setsockopt(pair->a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    ::setsockopt(pair->b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  return ok;
}

// Moves `bytes` a -> b and then b -> a, each direction with a sender and a
// receiver thread running at once. Returns seconds, or -1 on error.
double TcpRoundTrip(TcpPair* pair, std::vector<char>* send_buf, std::vector<char>* recv_buf,
                    size_t bytes) {
  const auto t0 = Clock::now();
  for (int dir = 0; dir < 2; ++dir) {
    const int from = dir == 0 ? pair->a : pair->b;
    const int to = dir == 0 ? pair->b : pair->a;
    bool sent = false;
    std::thread sender([&] { sent = WriteAll(from, send_buf->data(), bytes); });
    const bool received = ReadAll(to, recv_buf->data(), bytes);
    sender.join();
    if (!sent || !received) return -1;
  }
  return Since(t0);
}

// ---------------------------------------------------------------- gRPC path

struct Transfer {
  int64_t bytes = 0;  // payload each way
  double fetch_seconds = 0;
  double push_seconds = 0;
};

// Fetches the tagged slice as worker/worker_agent.cc does (the same
// SliceStreamClient calls) and pushes it straight back. Error on any
// failure or a rejected push.
absl::StatusOr<Transfer> FetchAndPush(const ist::SliceStreamClient& slices,
                                      const std::string& worker_id, const std::string& session,
                                      const ist::v1::Task& task, int64_t push_chunk_bytes) {
  Transfer t;
  ist::MlpConfig shape;
  shape.layer_sizes.assign(task.subnet_layers().begin(), task.subnet_layers().end());
  auto slice = std::make_shared<ist::MlpParams<float>>();
  auto t0 = Clock::now();
  slice->ShapeFor(shape);  // the worker shapes its buffers first: part of the fetch
  {
    ist::v1::FetchSliceRequest request;
    request.set_worker_id(worker_id);
    *request.mutable_tag() = task.tag();
    grpc::ClientContext context;
    SetDeadline(&context, 60);
    context.AddMetadata(ist::kWorkerSessionMetadata, session);
    absl::StatusOr<int64_t> received = slices.Fetch(&context, request, slice.get());
    if (!received.ok()) return received.status();
    t.bytes = *received;
  }
  t.fetch_seconds = Since(t0);

  t0 = Clock::now();
  ist::v1::PushSliceResponse response;
  {
    grpc::ClientContext context;
    SetDeadline(&context, 60);
    context.AddMetadata(ist::kWorkerSessionMetadata, session);
    ist::v1::TrainStats stats;
    stats.set_steps(task.spec().local_steps());
    const absl::Status pushed = slices.Push(&context, worker_id, stats, std::move(slice),
                                            task.tag(), push_chunk_bytes, &response);
    if (!pushed.ok()) return pushed;
  }
  t.push_seconds = Since(t0);
  if (!response.accepted()) {
    return absl::InternalError(absl::StrCat("push rejected: ", response.reason()));
  }
  return t;
}

absl::StatusOr<ist::v1::Task> TakeTask(ist::v1::WorkerService::Stub* stub,
                                        const std::string& worker_id,
                                        const std::string& session) {
  for (int attempt = 0; attempt < 20; ++attempt) {  // at most 20 x 5 s
    ist::v1::GetTaskRequest request;
    request.set_worker_id(worker_id);
    request.set_wait_ms(5000);
    ist::v1::GetTaskResponse response;
    grpc::ClientContext context;
    SetDeadline(&context, 10);
    context.AddMetadata(ist::kWorkerSessionMetadata, session);
    const grpc::Status s = stub->GetTask(&context, request, &response);
    if (!s.ok()) return ist::FromGrpcStatus(s);
    if (response.has_task()) return response.task();
  }
  return absl::DeadlineExceededError("no task within 100 s");
}

int Run() {
  ist::v1::JobSpec spec;
  std::vector<int> layers;
  if (absl::Status s = ist::ParseLayerSizes(FLAGS_layers, &layers); !s.ok()) {
    std::fprintf(stderr, "--layers: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (FLAGS_reps < 1 || FLAGS_reps > 100) {
    std::fprintf(stderr, "--reps: must be in [1, 100]\n");
    return 2;
  }
  for (int n : layers) spec.add_layers(n);
  spec.set_dataset("fashion-mnist");
  spec.set_workers(FLAGS_subnets);
  spec.set_local_steps(20);
  spec.set_batch_size(128);
  spec.set_rounds(FLAGS_reps + 1);
  spec.set_eval_every(1000000);  // only the (never reached) last round evaluates
  spec.set_seed(1);

  ist::CoordinatorOptions options;
  options.data_dir = FLAGS_data_dir;
  ist::Coordinator coordinator(options);
  ist::WorkerServiceImpl service(&coordinator);
  ist::SliceServiceImpl slice_service(&coordinator);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  // The same limits and arguments as server/ist_coordinator_main.cc.
  builder.SetMaxReceiveMessageSize(8 << 20);
  builder.SetMaxSendMessageSize(8 << 20);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.RegisterService(&service);
  builder.RegisterService(&slice_service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "cannot serve on 127.0.0.1\n");
    return 1;
  }
  auto channel = ist::CoordinatorChannel(absl::StrCat("127.0.0.1:", port), ist::SecurityOptions());
  if (!channel.ok()) {
    std::fprintf(stderr, "channel: %s\n", std::string(channel.status().message()).c_str());
    return 1;
  }
  auto stub = ist::v1::WorkerService::NewStub(*channel);
  const ist::SliceStreamClient slices(*channel);

  auto job = coordinator.SubmitJob(spec);
  if (!job.ok()) {
    std::fprintf(stderr, "submit: %s\n", std::string(job.status().message()).c_str());
    return 1;
  }
  auto config = ist::TrainingConfigFromSpec(ist::WithDefaults(spec));
  if (!config.ok()) return 1;
  std::vector<std::string> workers, sessions;
  for (int s = 0; s < FLAGS_subnets; ++s) {
    ist::v1::RegisterWorkerRequest request;
    request.set_name(absl::StrCat("bench-", s));
    ist::v1::RegisterWorkerResponse response;
    grpc::ClientContext context;
    SetDeadline(&context, 10);
    if (!stub->RegisterWorker(&context, request, &response).ok()) return 1;
    workers.push_back(response.worker_id());
    sessions.push_back(response.session());
  }

  TcpPair tcp;
  if (!ConnectTcpPair(&tcp)) {
    std::fprintf(stderr, "tcp: cannot connect a loopback pair\n");
    return 1;
  }
  std::vector<char> tcp_send, tcp_recv;

  std::printf("load average at start: %s", [] {
    char buf[128] = "?\n";
    if (FILE* f = std::fopen("/proc/loadavg", "r")) {
      if (std::fgets(buf, sizeof(buf), f) == nullptr) buf[0] = 0;
      std::fclose(f);
    }
    return std::string(buf);
  }().c_str());
  std::printf("transfer_bench: %s S=%d, real Coordinator + WorkerServiceImpl on 127.0.0.1:%d, "
              "fetch chunk %lld B, push chunk %lld B\n",
              FLAGS_layers.c_str(), FLAGS_subnets, port,
              static_cast<long long>(ist::kDefaultChunkBytes),
              static_cast<long long>(FLAGS_push_chunk_bytes));
  std::vector<double> grpc_rates, tcp_rates, fetch_rates, push_rates, ratios, grpc_cpu,
      tcp_cpu;
  const auto start = Clock::now();
  for (int rep = 0; rep < FLAGS_reps && Since(start) < FLAGS_max_seconds; ++rep) {
    auto plan = ist::PlanMlpRound(*config, rep);
    if (!plan.ok()) return 1;
    int64_t grpc_bytes = 0, tcp_bytes = 0;
    double grpc_seconds = 0, tcp_seconds = 0, fetch_s = 0, push_s = 0;
    // Take every subnet's task first: when GetTask answers, the round is
    // open and its slices extracted, so the coordinator's round loop is idle
    // while both transports are timed (they do not compete for the 2 cores).
    std::vector<ist::v1::Task> tasks;
    std::vector<int64_t> expected;
    for (int w = 0; w < FLAGS_subnets; ++w) {
      auto task = TakeTask(stub.get(), workers[w], sessions[w]);
      if (!task.ok() || task->tag().round() != rep) {
        std::fprintf(stderr, "rep %d: no task for %s: %s\n", rep, workers[w].c_str(),
                     task.ok() ? "wrong round" : std::string(task.status().message()).c_str());
        return 1;
      }
      expected.push_back(4 * ist::MlpSliceScalars(*config, *plan, task->tag().subnet()));
      tasks.push_back(*std::move(task));
    }
    // Baseline: the same bytes per slice, both ways.
    const double tcp_cpu0 = ProcessCpuSeconds();
    for (int64_t bytes : expected) {
      tcp_send.resize(bytes, 1);
      tcp_recv.resize(bytes);
      const double s = TcpRoundTrip(&tcp, &tcp_send, &tcp_recv, bytes);
      if (s < 0) {
        std::fprintf(stderr, "tcp transfer failed\n");
        return 1;
      }
      tcp_bytes += 2 * bytes;
      tcp_seconds += s;
    }
    const double grpc_cpu0 = ProcessCpuSeconds();
    tcp_cpu.push_back((grpc_cpu0 - tcp_cpu0) / (tcp_bytes / 1e9));
    for (int w = 0; w < FLAGS_subnets; ++w) {
      auto t = FetchAndPush(slices, workers[w], sessions[w], tasks[w], FLAGS_push_chunk_bytes);
      if (!t.ok()) {
        std::fprintf(stderr, "rep %d: %s\n", rep, std::string(t.status().message()).c_str());
        return 1;
      }
      if (t->bytes != expected[w]) {
        std::fprintf(stderr, "slice has %lld bytes, the round plan says %lld\n",
                     static_cast<long long>(t->bytes), static_cast<long long>(expected[w]));
        return 1;
      }
      grpc_bytes += 2 * t->bytes;
      grpc_seconds += t->fetch_seconds + t->push_seconds;
      fetch_s += t->fetch_seconds;
      push_s += t->push_seconds;
    }
    grpc_cpu.push_back((ProcessCpuSeconds() - grpc_cpu0) / (grpc_bytes / 1e9));
    const double grpc_mbs = grpc_bytes / 1e6 / grpc_seconds;
    const double tcp_mbs = tcp_bytes / 1e6 / tcp_seconds;
    grpc_rates.push_back(grpc_mbs);
    tcp_rates.push_back(tcp_mbs);
    ratios.push_back(grpc_mbs / tcp_mbs);  // paired: the same round's slices
    fetch_rates.push_back(grpc_bytes / 2 / 1e6 / fetch_s);
    push_rates.push_back(grpc_bytes / 2 / 1e6 / push_s);
    std::printf("rep %d: grpc %lld B in %.4f s = %.1f MB/s (fetch %.1f, push %.1f MB/s); "
                "tcp %lld B in %.4f s = %.1f MB/s; grpc/tcp %.3f; CPU s per GB moved: grpc %.2f, "
                "tcp %.2f\n",
                rep, static_cast<long long>(grpc_bytes), grpc_seconds, grpc_mbs,
                fetch_rates.back(), push_rates.back(), static_cast<long long>(tcp_bytes),
                tcp_seconds, tcp_mbs, grpc_mbs / tcp_mbs, grpc_cpu.back(), tcp_cpu.back());
    std::fflush(stdout);
  }
  // The ratio reported is the median of the per-repetition ratios (each
  // round's gRPC transfers against the TCP transfers of the same bytes just
  // before them): steadier on a shared machine than a ratio of medians,
  // which is printed too.
  const double g = Median(grpc_rates), t = Median(tcp_rates), r = Median(ratios);
  std::printf("median of %zu: grpc %.1f MB/s (fetch %.1f, push %.1f), tcp %.1f MB/s; "
              "median ratio %.3f (ratio of medians %.3f)\n",
              grpc_rates.size(), g, Median(fetch_rates), Median(push_rates), t, r, g / t);
  // CPU per byte does not depend on how busy the machine is; throughput
  // does, and the path that needs more CPU per byte loses more under load.
  std::printf("median CPU seconds per GB moved (both ends): grpc %.2f, tcp %.2f (%.1fx)\n",
              Median(grpc_cpu), Median(tcp_cpu), Median(grpc_cpu) / Median(tcp_cpu));
  // One machine-readable line for bench/run_all.sh.
  std::printf("RESULT transfer grpc_MBps=%.1f tcp_MBps=%.1f ratio=%.3f target=0.5 met=%s\n", g,
              t, r, r >= 0.5 ? "yes" : "no");
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  coordinator.Shutdown();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  // As server/ist_coordinator_main.cc (so the coordinator's side behaves
  // as in the daemon).
  if (FLAGS_arena_max > 0) mallopt(M_ARENA_MAX, FLAGS_arena_max);
  if (FLAGS_mmap_threshold > 0) mallopt(M_MMAP_THRESHOLD, FLAGS_mmap_threshold);
  google::InitGoogleLogging(argv[0]);
  FLAGS_minloglevel = google::GLOG_WARNING;
  return Run();
}
