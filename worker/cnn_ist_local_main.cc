// cnn_ist_local: IST for convolutional networks in one process. Trains a
// small ResNet (common/model/cnn_model.h) on an image data set with channel-
// partitioned IST, local SGD and/or data parallel, S simulated workers each,
// one mode after the other on the same shards and seeds, printing the test
// accuracy per evaluation and a summary line per mode (final accuracy,
// training time, bytes sent to and from the workers).
//
//   bazel run -c opt //worker:cnn_ist_local -- --modes=ist,local_sgd,data_parallel
//       --stem=32 --stages=32,64 --blocks_per_stage=2 --subnets=2 --epochs=3
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/ist/cnn_job.h"
#include "common/data/dataset_registry.h"
#include "common/base/status_macros.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "common/train/cnn_ist_engine.h"
#include "common/train/cnn_trainer.h"
#include "common/train/compute_threads.h"

DEFINE_string(data_dir, "/usr/share/datasets", "directory the data set name resolves in");
DEFINE_string(dataset, "fashion-mnist",
              "fashion-mnist, idx:<subdir> or csv:<prefix> (common/data/dataset_registry.h)");
DEFINE_string(image, "1x28x28", "CxHxW of one sample (its features in CHW order)");
DEFINE_int32(classes, 10, "number of classes");
DEFINE_int32(stem, 32, "stem convolution channels");
DEFINE_bool(stem_pool, true, "2x2 max pooling after the stem");
DEFINE_string(stages, "32,64", "channels per stage; stage i > 0 starts with stride 2");
DEFINE_int32(blocks_per_stage, 2, "basic residual blocks per stage");
DEFINE_int32(subnets, 2, "S: subnets / replicas (simulated workers) per round");
DEFINE_int64(local_steps, 20, "R: local SGD steps per round (data_parallel: 1)");
DEFINE_int32(batch, 128, "minibatch size per worker");
DEFINE_double(lr, 0.05, "learning rate (peak, with --lr_schedule=cosine)");
DEFINE_string(lr_schedule, "constant",
              "constant, or cosine: round r of N uses lr * (1 + cos(pi * r / N)) / 2");
DEFINE_double(momentum, 0.9, "SGD momentum (buffer lasts one round)");
DEFINE_double(weight_decay, 5e-4, "L2 weight decay on conv and Linear weights");
DEFINE_double(epochs, 3, "epochs of training samples, summed over workers");
DEFINE_uint64(seed, 1, "job seed; every random choice derives from it");
DEFINE_int32(eval_every, 10, "evaluate every N rounds of IST/local SGD (data "
             "parallel: every N*R rounds, the same sample counts)");
DEFINE_string(modes, "ist,local_sgd,data_parallel",
              "comma-separated: ist, local_sgd, data_parallel, sgd (S = 1)");
DEFINE_string(bn_mode, "batch", "batch (batch statistics at test too) or running");
DEFINE_int32(eval_batch, 500, "test-set chunk size");
DEFINE_int32(threads, 1, "compute threads (0: all cores)");

namespace ist {
namespace {

absl::StatusOr<CnnTrainingConfig> ParseFlags() {
  CnnTrainingConfig c;
  std::vector<std::string> dims = absl::StrSplit(FLAGS_image, 'x');
  int chw[3];
  if (dims.size() != 3 || !absl::SimpleAtoi(dims[0], &chw[0]) ||
      !absl::SimpleAtoi(dims[1], &chw[1]) || !absl::SimpleAtoi(dims[2], &chw[2])) {
    return absl::InvalidArgumentError(
        absl::StrCat("--image: expected CxHxW such as 1x28x28, got '", FLAGS_image, "'"));
  }
  std::vector<int> stages;
  for (absl::string_view s : absl::StrSplit(FLAGS_stages, ',', absl::SkipEmpty())) {
    int v = 0;
    if (!absl::SimpleAtoi(s, &v) || v < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--stages: '", s, "' is not a positive channel count"));
    }
    stages.push_back(v);
  }
  if (FLAGS_blocks_per_stage < 0) {
    return absl::InvalidArgumentError("--blocks_per_stage: must be >= 0");
  }
  c.model = MakeResNetConfig(chw[0], chw[1], chw[2], FLAGS_classes, FLAGS_stem, stages,
                             FLAGS_blocks_per_stage, FLAGS_stem_pool);
  if (FLAGS_bn_mode == "running") {
    c.model.bn_mode = BatchNormMode::kRunningStatistics;
  } else if (FLAGS_bn_mode != "batch") {
    return absl::InvalidArgumentError(
        absl::StrCat("--bn_mode: must be 'batch' or 'running', got '", FLAGS_bn_mode, "'"));
  }
  c.num_subnets = FLAGS_subnets;
  c.local_steps = FLAGS_local_steps;
  c.batch_size = FLAGS_batch;
  c.sgd.learning_rate = FLAGS_lr;
  c.sgd.momentum = FLAGS_momentum;
  c.sgd.weight_decay = FLAGS_weight_decay;
  c.seed = FLAGS_seed;
  RETURN_IF_ERROR(ValidateCnnTrainingConfig(c));
  if (!(FLAGS_epochs > 0 && FLAGS_epochs <= 1000)) {
    return absl::InvalidArgumentError("--epochs: must be in (0, 1000]");
  }
  if (FLAGS_lr_schedule != "constant" && FLAGS_lr_schedule != "cosine") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--lr_schedule: must be 'constant' or 'cosine', got '", FLAGS_lr_schedule, "'"));
  }
  if (FLAGS_eval_every < 1) return absl::InvalidArgumentError("--eval_every: must be >= 1");
  return c;
}

struct ModeSummary {
  std::string mode;
  double final_accuracy = 0;
  double best_accuracy = 0;
  double train_seconds = 0;
  int64_t rounds = 0;
  int64_t bytes_each_way = 0;  // float32 bytes sent to the workers (= returned)
};

absl::StatusOr<ModeSummary> Train(const std::string& name, const CnnTrainingConfig& config,
                                  int eval_every, const DenseDataset& train,
                                  const DenseDataset& test) {
  ASSIGN_OR_RETURN(auto engine, LocalCnnEngine::Create(config, &train));
  const int64_t per_round = SamplesPerRound(config);
  const int64_t rounds = static_cast<int64_t>(
      std::ceil(FLAGS_epochs * train.num_samples() / static_cast<double>(per_round)));
  std::printf("%s: %s (%lld floats), S=%d, R=%lld, batch=%d, lr=%g (%s), momentum=%g: "
              "%lld rounds of %lld samples\n",
              name.c_str(), config.model.ShapeString().c_str(),
              static_cast<long long>(config.model.NumScalars()), config.num_subnets,
              static_cast<long long>(config.local_steps), config.batch_size,
              config.sgd.learning_rate, FLAGS_lr_schedule.c_str(), config.sgd.momentum,
              static_cast<long long>(rounds), static_cast<long long>(per_round));
  std::fflush(stdout);
  ModeSummary summary;
  summary.mode = name;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t r = 0; r < rounds; ++r) {
    if (FLAGS_lr_schedule == "cosine") {
      engine->set_learning_rate(config.sgd.learning_rate * 0.5 *
                                (1 + std::cos(M_PI * r / static_cast<double>(rounds))));
    }
    const auto t0 = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(RoundReport report, engine->RunRound());
    summary.train_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    summary.bytes_each_way += report.slice_floats * 4;
    summary.rounds = r + 1;
    if ((r + 1) % eval_every != 0 && r + 1 != rounds) continue;
    ASSIGN_OR_RETURN(EvalResult eval, EvaluateCnn(config.model, engine->model(), test,
                                                  FLAGS_eval_batch));
    summary.final_accuracy = eval.accuracy;
    summary.best_accuracy = std::max(summary.best_accuracy, eval.accuracy);
    std::printf("%s round %5lld  epoch %6.3f  train_loss %.4f  test_loss %.4f  test_acc %.4f"
                "  train_s %.1f  wall_s %.1f  MB_each_way %.1f\n",
                name.c_str(), static_cast<long long>(r + 1),
                (r + 1) * per_round / static_cast<double>(train.num_samples()),
                report.train_loss, eval.loss, eval.accuracy, summary.train_seconds,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
                summary.bytes_each_way / 1e6);
    std::fflush(stdout);
  }
  return summary;
}

absl::Status Run() {
  ASSIGN_OR_RETURN(CnnTrainingConfig base, ParseFlags());
  SetComputeThreads(FLAGS_threads);
  ASSIGN_OR_RETURN(DenseDataset train, LoadDataset(FLAGS_dataset, FLAGS_data_dir, true));
  ASSIGN_OR_RETURN(DenseDataset test, LoadDataset(FLAGS_dataset, FLAGS_data_dir, false));
  std::printf("%s: %lld train, %lld test samples\n", FLAGS_dataset.c_str(),
              static_cast<long long>(train.num_samples()),
              static_cast<long long>(test.num_samples()));
  std::vector<ModeSummary> summaries;
  for (absl::string_view m : absl::StrSplit(FLAGS_modes, ',', absl::SkipEmpty())) {
    CnnTrainingConfig config = base;
    int eval_every = FLAGS_eval_every;
    if (m == "ist") {
      config.mode = TrainingMode::kIst;
    } else if (m == "sgd") {
      config.num_subnets = 1;
      eval_every *= base.num_subnets;
    } else if (m == "local_sgd") {
      config.mode = TrainingMode::kLocalSgd;
    } else if (m == "data_parallel") {
      config.mode = TrainingMode::kDataParallel;
      eval_every *= static_cast<int>(config.local_steps);
      config.local_steps = 1;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "--modes: '", m, "' is not one of ist, local_sgd, data_parallel, sgd"));
    }
    ASSIGN_OR_RETURN(ModeSummary s, Train(std::string(m), config, eval_every, train, test));
    summaries.push_back(s);
  }
  std::printf("\n%-14s %10s %10s %8s %10s %14s\n", "mode", "final_acc", "best_acc", "rounds",
              "train_s", "MB_each_way");
  for (const ModeSummary& s : summaries) {
    std::printf("%-14s %10.4f %10.4f %8lld %10.1f %14.1f\n", s.mode.c_str(),
                s.final_accuracy, s.best_accuracy, static_cast<long long>(s.rounds),
                s.train_seconds, s.bytes_each_way / 1e6);
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace ist

int main(int argc, char** argv) {
  gflags::SetUsageMessage("IST, local SGD and data parallel for a ResNet, in one process");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  const absl::Status status = ist::Run();
  if (!status.ok()) {
    std::fprintf(stderr, "cnn_ist_local: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
