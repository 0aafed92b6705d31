// ist_shard: one parameter-server shard of a partitioned extreme-
// classification job (design: common/store/xc_shard_store.h). It owns hidden
// neurons [m H / M, (m + 1) H / M) of the model and serves
// proto/xc_service.proto's XcShardService to workers and the coordinator.
//
//   ist_shard --listen=127.0.0.1:7101 --shard=0 --num_shards=2
//       --layers=100000-256-100000 --subnets=2 --seed=1
//       --test_data=/tmp/xc/test.txt --checkpoint_dir=/tmp/xc/ckpt
#include <malloc.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "common/data/libsvm_reader.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "grpcpp/grpcpp.h"
#include "server/xc_grpc.h"
#include "common/store/xc_shard_store.h"

DEFINE_string(listen, "127.0.0.1:0", "HOST:PORT to serve on (port 0: any free port)");
DEFINE_string(port_file, "", "if set, the chosen port is written here once serving");
DEFINE_int32(shard, 0, "this shard's index m in [0, num_shards)");
DEFINE_int32(num_shards, 1, "M: shards of the model");
DEFINE_string(layers, "", "features-hidden-classes, e.g. 100000-256-100000 (required)");
DEFINE_int32(subnets, 2, "S: subnets per round (the job's, to derive partitions)");
DEFINE_uint64(seed, 1, "the job's seed (initial weights and partitions derive from it)");
DEFINE_string(job_id, "xc", "job id (names checkpoint files)");
DEFINE_string(test_data, "", "evaluation set (LIBSVM) whose hidden activations this shard computes");
DEFINE_bool(zero_based, true, "LIBSVM feature indices start at 0 (XC repository files)");
DEFINE_string(checkpoint_dir, "", "directory for this shard's checkpoints");

namespace {
int Fail(const std::string& what) {
  std::fprintf(stderr, "ist_shard: %s\n", what.c_str());
  return 2;
}
// "cpu 12.3 s, peak RSS 456 MiB" for this process (getrusage).
std::string UsageLine() {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  const double cpu = u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec +
                     u.ru_stime.tv_usec / 1e6;
  return absl::StrFormat("cpu %.1f s, peak RSS %d MiB", cpu, u.ru_maxrss / 1024);
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("one parameter-server shard of a partitioned XC job");
  // Tensors of tens of MiB come and go every round; a fixed mmap threshold
  // returns them to the system instead of leaving them in per-thread
  // malloc arenas (glibc's dynamic threshold grows up to 32 MiB).
  mallopt(M_MMAP_THRESHOLD, 1 << 20);
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  ist::XcShardOptions options;
  if (FLAGS_layers.empty()) return Fail("--layers is required");
  if (absl::Status s = ist::ParseLayerSizes(FLAGS_layers, &options.job.model.layer_sizes); !s.ok()) {
    return Fail(absl::StrFormat("--%s", s.message()));
  }
  options.job.num_subnets = FLAGS_subnets;
  options.job.seed = FLAGS_seed;
  options.shard = FLAGS_shard;
  options.num_shards = FLAGS_num_shards;
  options.job_id = FLAGS_job_id;
  options.checkpoint_dir = FLAGS_checkpoint_dir;
  if (!FLAGS_checkpoint_dir.empty()) ::mkdir(FLAGS_checkpoint_dir.c_str(), 0755);
  auto store = ist::XcShardStore::Create(options);
  if (!store.ok()) return Fail(absl::StrFormat("--%s", store.status().message()));
  if (!FLAGS_test_data.empty()) {
    ist::LibsvmOptions read;
    read.zero_based = FLAGS_zero_based;
    read.num_features = options.job.model.inputs();
    read.num_classes = options.job.model.outputs();
    auto test = ist::ReadLibsvmDataset(FLAGS_test_data, read);
    if (!test.ok()) return Fail(absl::StrFormat("--test_data: %s", test.status().message()));
    (*store)->SetTestData(std::make_shared<const ist::SparseDataset>(std::move(*test)));
  }
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  ist::XcShardServiceImpl service(store->get());
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(FLAGS_listen, grpc::InsecureServerCredentials(), &port);
  ist::ConfigureXcServer(&builder);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) return Fail("cannot listen on " + FLAGS_listen);
  const ist::ShardLayout& layout = (*store)->layout();
  LOG(INFO) << "shard " << FLAGS_shard << " of " << FLAGS_num_shards << " serving on port "
            << port << ": owns hidden neurons [" << layout.Begin(FLAGS_shard) << ", "
            << layout.End(FLAGS_shard) << ") of " << options.job.model.ShapeString() << ", "
            << (*store)->ModelScalars() << " float32 ("
            << (*store)->ModelScalars() * 4 / (1 << 20) << " MiB) of "
            << options.job.model.NumScalars() << " in the model";
  if (!FLAGS_port_file.empty()) {
    std::ofstream(FLAGS_port_file + ".tmp") << port << "\n";
    std::rename((FLAGS_port_file + ".tmp").c_str(), FLAGS_port_file.c_str());
  }
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  LOG(INFO) << "signal " << signal_number << ": shutting down (" << UsageLine()
            << ", model share " << (*store)->ModelScalars() * 4 / (1 << 20) << " MiB)";
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return 0;
}
