// ist_shard: one parameter-server shard of a partitioned extreme-
// classification job (design: common/store/xc_shard_store.h). It owns hidden
// neurons [m H / M, (m + 1) H / M) of the model and serves
// proto/xc_service.proto's XcShardService to workers and the coordinator.
//
//   ist_shard --listen=127.0.0.1:7101 --shard=0 --num_shards=2
//       --layers=100000-256-100000 --subnets=2 --seed=1
//       --test_data=/tmp/xc/test.txt --checkpoint_dir=/tmp/xc/ckpt
#include <memory>
#include <string>

#include "common/base/status_macros.h"
#include "common/daemon/bootstrap.h"
#include "common/daemon/program.h"
#include "common/daemon/stop_signal.h"
#include "common/store/xc_shard_store.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "server/xc_daemon.h"
#include "server/xc_grpc.h"

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

// The shard's options from its flags; errors name the flag.
absl::StatusOr<ist::XcShardOptions> ShardOptionsFromFlags() {
  ist::XcShardOptions options;
  RETURN_IF_ERROR(ist::ParseXcLayersFlag(FLAGS_layers, &options.job.model));
  options.job.num_subnets = FLAGS_subnets;
  options.job.seed = FLAGS_seed;
  options.shard = FLAGS_shard;
  options.num_shards = FLAGS_num_shards;
  options.job_id = FLAGS_job_id;
  options.checkpoint_dir = FLAGS_checkpoint_dir;
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  ist::Program program({"ist_shard", "one parameter-server shard of a partitioned XC job",
                        ist::MallocTuning::kMmapLargeBuffers},
                       &argc, &argv);
  absl::StatusOr<ist::XcShardOptions> options = ShardOptionsFromFlags();
  if (!options.ok()) return program.Fail(options.status());
  ist::CreateDirectoryIfSet(options->checkpoint_dir);
  auto store = ist::XcShardStore::Create(*options);
  if (!store.ok()) return program.Fail(ist::AsFlagError(store.status()));
  if (!FLAGS_test_data.empty()) {
    auto test = ist::ReadXcTestDataFlag(FLAGS_test_data, FLAGS_zero_based, options->job.model);
    if (!test.ok()) return program.Fail(test.status());
    (*store)->SetTestData(*std::move(test));
  }
  ist::StopSignal stop;

  ist::XcShardServiceImpl service(store->get());
  auto serving = ist::StartXcServer(FLAGS_listen, &service);
  if (!serving.ok()) return program.Fail(serving.status());
  const ist::ShardLayout& layout = (*store)->layout();
  const int64_t share_mib = (*store)->ModelScalars() * 4 / (1 << 20);
  LOG(INFO) << "shard " << FLAGS_shard << " of " << FLAGS_num_shards << " serving on port "
            << serving->port << ": owns hidden neurons [" << layout.Begin(FLAGS_shard) << ", "
            << layout.End(FLAGS_shard) << ") of " << options->job.model.ShapeString() << ", "
            << (*store)->ModelScalars() << " float32 (" << share_mib << " MiB) of "
            << options->job.model.NumScalars() << " in the model";
  ist::PublishPort(FLAGS_port_file, serving->port);
  const int signal_number = stop.Wait();
  LOG(INFO) << "signal " << signal_number << ": shutting down (" << ist::ResourceUsageLine()
            << ", model share " << share_mib << " MiB)";
  serving->Shutdown(absl::Seconds(5));
  return 0;
}
