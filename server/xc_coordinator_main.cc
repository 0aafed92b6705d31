// ist_xc_coordinator: runs one partitioned extreme-classification job over
// M ist_shard daemons and any number of ist_xc_worker daemons (design:
// common/store/xc_shard_store.h). Holds no model parameters; prints one line per
// round and P@1/3/5, time and bytes at the end, then exits.
//
//   ist_xc_coordinator --listen=127.0.0.1:7100
//       --shards=127.0.0.1:7101,127.0.0.1:7102 --layers=100000-256-100000
//       --subnets=2 --local_steps=20 --batch=128 --lr=0.1 --rounds=50
//       --train_data=/tmp/xc/train.txt --test_data=/tmp/xc/test.txt
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"
#include "common/daemon/bootstrap.h"
#include "common/daemon/program.h"
#include "common/store/xc_shard_client.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "server/xc_coordinator.h"
#include "server/xc_daemon.h"
#include "server/xc_grpc.h"

DEFINE_string(listen, "127.0.0.1:0", "HOST:PORT for workers (port 0: any free port)");
DEFINE_string(port_file, "", "if set, the chosen port is written here once serving");
DEFINE_string(shards, "", "HOST:PORT of shard 0, 1, ... (comma-separated, required)");
DEFINE_string(layers, "", "features-hidden-classes (required)");
DEFINE_int32(subnets, 2, "S: subnets per round");
DEFINE_int64(local_steps, 20, "R: SGD steps per subnet per round");
DEFINE_int32(batch, 128, "minibatch size");
DEFINE_double(lr, 0.1, "SGD learning rate");
DEFINE_uint64(seed, 1, "job seed");
DEFINE_int32(class_block, 4096, "classes per output block in training");
DEFINE_bool(output_batchnorm, false, "BatchNorm on the logits (off for XC)");
DEFINE_int64(rounds, 10, "rounds to run (total, counting resumed ones)");
DEFINE_string(train_data, "", "training LIBSVM file as the workers see it (required)");
DEFINE_string(test_data, "", "evaluation LIBSVM file (its labels; the shards load its features)");
DEFINE_bool(zero_based, true, "LIBSVM feature indices start at 0 (XC repository files)");
DEFINE_int32(eval_every, 0, "evaluate every this many rounds (0: only at the end)");
DEFINE_int32(eval_batch, 1000, "evaluation batch (BatchNorm statistics per batch)");
DEFINE_int32(eval_class_block, 1024, "W_out rows fetched per evaluation block");
DEFINE_string(job_id, "xc", "job id (names checkpoints)");
DEFINE_string(checkpoint_dir, "", "write the manifest here (the shards write their parts)");
DEFINE_int32(checkpoint_every, 10, "checkpoint every this many rounds");
DEFINE_bool(resume, false, "resume from the manifest in --checkpoint_dir");
DEFINE_int32(task_timeout_s, 300, "reassign a subnet not reported within this");
DEFINE_int32(round_timeout_s, 1800, "fail if a round takes longer");

namespace {

// Sets *job from the flags and validates it; errors name the flag.
absl::Status JobOptionsFromFlags(ist::XcCoordinatorOptions* job) {
  ist::FlagChecks checks;
  checks.AtLeast("--task_timeout_s", FLAGS_task_timeout_s, 1)
      .AtLeast("--round_timeout_s", FLAGS_round_timeout_s, 1);
  RETURN_IF_ERROR(checks.status());
  ist::XcCoordinatorOptions& o = *job;
  RETURN_IF_ERROR(ist::ParseXcLayersFlag(FLAGS_layers, &o.job.model));
  o.job.num_subnets = FLAGS_subnets;
  o.job.local_steps = FLAGS_local_steps;
  o.job.batch_size = FLAGS_batch;
  o.job.learning_rate = static_cast<float>(FLAGS_lr);
  o.job.seed = FLAGS_seed;
  o.job.engine.class_block = FLAGS_class_block;
  o.job.engine.output_batchnorm = FLAGS_output_batchnorm;
  o.job_id = FLAGS_job_id;
  o.shard_addresses = absl::StrSplit(FLAGS_shards, ',', absl::SkipEmpty());
  o.train_data = FLAGS_train_data;
  o.zero_based = FLAGS_zero_based;
  o.rounds = FLAGS_rounds;
  o.eval_every = FLAGS_eval_every;
  o.eval_batch = FLAGS_eval_batch;
  o.eval_class_block = FLAGS_eval_class_block;
  o.checkpoint_dir = FLAGS_checkpoint_dir;
  o.checkpoint_every = FLAGS_checkpoint_every;
  o.resume = FLAGS_resume;
  o.task_timeout = absl::Seconds(FLAGS_task_timeout_s);
  o.round_timeout = absl::Seconds(FLAGS_round_timeout_s);
  return ist::AsFlagError(ist::ValidateXcCoordinatorOptions(o));
}

}  // namespace

int main(int argc, char** argv) {
  ist::Program program({"ist_xc_coordinator", "coordinator of a partitioned XC job",
                        ist::MallocTuning::kMmapLargeBuffers},
                       &argc, &argv);
  ist::XcCoordinatorOptions o;
  if (absl::Status s = JobOptionsFromFlags(&o); !s.ok()) return program.Fail(s);
  ist::CreateDirectoryIfSet(o.checkpoint_dir);
  std::shared_ptr<const ist::SparseDataset> test;
  if (!FLAGS_test_data.empty()) {
    auto data = ist::ReadXcTestDataFlag(FLAGS_test_data, FLAGS_zero_based, o.job.model);
    if (!data.ok()) return program.Fail(data.status());
    test = *std::move(data);
  }
  std::vector<std::unique_ptr<ist::XcShardClient>> clients;
  std::vector<ist::XcShardApi*> apis;
  for (size_t m = 0; m < o.shard_addresses.size(); ++m) {
    clients.push_back(std::make_unique<ist::XcShardClient>(
        ist::XcChannel(o.shard_addresses[m]), o.shard_addresses[m], o.job, m,
        o.shard_addresses.size()));
    apis.push_back(clients.back().get());
  }
  ist::XcCoordinator coordinator(o, apis, test);
  if (absl::Status s = coordinator.Start(); !s.ok()) return program.Fail(s.ToString());

  ist::XcCoordinatorServiceImpl service(&coordinator);
  auto serving = ist::StartXcServer(FLAGS_listen, &service);
  if (!serving.ok()) return program.Fail(serving.status());
  LOG(INFO) << "xc coordinator serving workers on port " << serving->port << ", " << apis.size()
            << " shards, model " << o.job.model.ShapeString() << " ("
            << o.job.model.NumScalars() * 4 / (1 << 20) << " MiB fp32, held by the shards only)";
  ist::PublishPort(FLAGS_port_file, serving->port);
  auto summary = coordinator.Run([](const ist::XcRoundReport& r) {
    std::printf("round %lld loss %.5f seconds %.3f bytes %lld", static_cast<long long>(r.round),
                r.mean_loss, r.seconds, static_cast<long long>(r.bytes));
    if (r.eval) std::printf(" P@1 %.4f P@3 %.4f P@5 %.4f", r.eval->p_at_1, r.eval->p_at_3, r.eval->p_at_5);
    std::printf("\n");
    std::fflush(stdout);
  });
  // Let polling workers hear that the job is finished, then stop.
  absl::SleepFor(absl::Seconds(2));
  serving->Shutdown(absl::Seconds(5));
  if (!summary.ok()) return program.Fail(summary.status().ToString());
  std::printf(
      "done: rounds %lld-%lld, train %.2f s (%.3f s/round), eval %.2f s, piece bytes %lld "
      "(%.1f MB/round), reassigned %lld\n",
      static_cast<long long>(summary->first_round),
      static_cast<long long>(summary->first_round + summary->rounds_done - 1),
      summary->train_seconds, summary->train_seconds / std::max<int64_t>(1, summary->rounds_done),
      summary->eval_seconds, static_cast<long long>(summary->bytes),
      summary->bytes / 1e6 / std::max<int64_t>(1, summary->rounds_done),
      static_cast<long long>(summary->reassigned));
  std::printf("coordinator %s\n", ist::ResourceUsageLine().c_str());
  if (test != nullptr) {
    std::printf("final P@1 %.4f P@3 %.4f P@5 %.4f on %lld samples\n", summary->final_eval.p_at_1,
                summary->final_eval.p_at_3, summary->final_eval.p_at_5,
                static_cast<long long>(summary->final_eval.samples));
  }
  return 0;
}
