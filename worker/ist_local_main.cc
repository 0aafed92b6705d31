// ist_local: IST with S simulated workers trained one after the other in one
// process on Fashion-MNIST, and plain full-network SGD on the same data for
// comparison. Prints the test accuracy per round and a per-epoch table.
//
//   bazel run -c opt //worker:ist_local -- --layers=784-1024-1024-10
//       --subnets=2 --local_steps=20 --batch=128 --lr=0.01 --epochs=10
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/data/idx_reader.h"
#include "common/base/status_macros.h"
#include "gflags/gflags.h"
#include "glog/logging.h"
#include "common/train/compute_threads.h"
#include "common/train/ist_engine.h"
#include "common/train/local_trainer.h"

DEFINE_string(data_dir, ist::kDefaultFashionMnistDir,
              "directory with the Fashion-MNIST IDX files (.gz or plain)");
DEFINE_string(layers, "784-1024-1024-10", "layer sizes, inputs to outputs");
DEFINE_int32(subnets, 2, "S: subnets (simulated workers) per round");
DEFINE_int64(local_steps, 20, "R: local SGD steps per subnet per round");
DEFINE_int32(batch, 128, "minibatch size");
DEFINE_double(lr, 0.01, "learning rate");
DEFINE_double(momentum, 0.0, "SGD momentum (buffer lasts one round)");
DEFINE_double(weight_decay, 0.0, "L2 weight decay on Linear weights");
DEFINE_double(epochs, 10, "epochs of training samples, summed over subnets");
DEFINE_uint64(seed, 1, "job seed; every random choice derives from it");
DEFINE_int32(eval_every, 1, "evaluate IST on the test set every N rounds");
DEFINE_string(modes, "ist,sgd",
              "comma-separated runs, one after the other: ist, sgd (the full network "
              "on one worker), local_sgd, data_parallel (S workers each)");
DEFINE_string(bn_mode, "batch",
              "batch (batch statistics at train and test, as the paper) or "
              "running (running statistics at test)");
DEFINE_int32(eval_batch, 1000, "test-set chunk size for evaluation");
DEFINE_int32(threads, 0, "compute threads (0: all cores)");

namespace ist {
namespace {

struct Flags {
  IstTrainingConfig config;
  double epochs = 0;
  std::vector<std::string> modes;
};

absl::StatusOr<Flags> ParseFlags() {
  Flags f;
  RETURN_IF_ERROR(ParseLayerSizes(FLAGS_layers, &f.config.model.layer_sizes));
  if (FLAGS_bn_mode == "batch") {
    f.config.model.bn_mode = BatchNormMode::kBatchStatistics;
  } else if (FLAGS_bn_mode == "running") {
    f.config.model.bn_mode = BatchNormMode::kRunningStatistics;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--bn_mode: must be 'batch' or 'running', got '", FLAGS_bn_mode, "'"));
  }
  f.config.num_subnets = FLAGS_subnets;
  f.config.local_steps = FLAGS_local_steps;
  f.config.batch_size = FLAGS_batch;
  f.config.sgd.learning_rate = FLAGS_lr;
  f.config.sgd.momentum = FLAGS_momentum;
  f.config.sgd.weight_decay = FLAGS_weight_decay;
  f.config.seed = FLAGS_seed;
  RETURN_IF_ERROR(ValidateTrainingConfig(f.config));
  if (!(FLAGS_epochs > 0 && FLAGS_epochs <= 10000)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--epochs: must be in (0, 10000], got ", FLAGS_epochs));
  }
  f.epochs = FLAGS_epochs;
  if (FLAGS_eval_every < 1) {
    return absl::InvalidArgumentError("--eval_every: must be >= 1");
  }
  for (absl::string_view m : absl::StrSplit(FLAGS_modes, ',', absl::SkipEmpty())) {
    if (m != "ist" && m != "sgd" && m != "local_sgd" && m != "data_parallel") {
      return absl::InvalidArgumentError(absl::StrCat(
          "--modes: '", m, "' is not one of ist, sgd, local_sgd, data_parallel"));
    }
    f.modes.emplace_back(m);
  }
  if (f.modes.empty()) return absl::InvalidArgumentError("--modes: empty");
  return f;
}

// Accuracy at the end of each whole epoch, keyed by epoch number.
using EpochTable = std::map<int, double>;

// Trains `config` for `epochs` epochs, evaluating every `eval_every` rounds
// and at each epoch boundary.
absl::StatusOr<EpochTable> Train(const std::string& name,
                                 const IstTrainingConfig& config, double epochs,
                                 int eval_every, const DenseDataset& train,
                                 const DenseDataset& test) {
  ASSIGN_OR_RETURN(auto engine, LocalIstEngine::Create(config, &train));
  const int64_t per_round = SamplesPerRound(config);
  const int64_t rounds = static_cast<int64_t>(
      std::ceil(epochs * train.num_samples() / static_cast<double>(per_round)));
  std::printf("%s: %s, S=%d, R=%lld, batch=%d, lr=%g: %lld rounds of %lld samples\n",
              name.c_str(), config.model.ShapeString().c_str(),
              config.num_subnets, static_cast<long long>(config.local_steps),
              config.batch_size, config.sgd.learning_rate,
              static_cast<long long>(rounds), static_cast<long long>(per_round));
  EpochTable table;
  const auto start = std::chrono::steady_clock::now();
  double train_seconds = 0;
  for (int64_t r = 0; r < rounds; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(RoundReport report, engine->RunRound());
    train_seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const int64_t samples = (r + 1) * per_round;
    const int epoch_before = static_cast<int>(r * per_round / train.num_samples());
    const int epoch_now = static_cast<int>(samples / train.num_samples());
    const bool epoch_end = epoch_now > epoch_before || r + 1 == rounds;
    if ((r + 1) % eval_every != 0 && !epoch_end) continue;
    ASSIGN_OR_RETURN(EvalResult eval,
                     Evaluate(config.model, engine->model(), test, FLAGS_eval_batch));
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf(
        "%s round %4lld  epoch %6.3f  train_loss %.4f  test_loss %.4f  "
        "test_acc %.4f  train_s %.1f  wall_s %.1f\n",
        name.c_str(), static_cast<long long>(r + 1),
        samples / static_cast<double>(train.num_samples()), report.train_loss,
        eval.loss, eval.accuracy, train_seconds, elapsed);
    std::fflush(stdout);
    if (epoch_end) table[epoch_now > epoch_before ? epoch_now : epoch_now + 1] = eval.accuracy;
  }
  return table;
}

absl::Status Run() {
  ASSIGN_OR_RETURN(Flags flags, ParseFlags());
  SetComputeThreads(FLAGS_threads);
  ASSIGN_OR_RETURN(DenseDataset train, LoadFashionMnist(FLAGS_data_dir, true));
  ASSIGN_OR_RETURN(DenseDataset test, LoadFashionMnist(FLAGS_data_dir, false));
  std::printf("Fashion-MNIST: %lld train, %lld test samples from %s\n",
              static_cast<long long>(train.num_samples()),
              static_cast<long long>(test.num_samples()), FLAGS_data_dir.c_str());
  std::vector<EpochTable> tables;
  for (const std::string& mode : flags.modes) {
    IstTrainingConfig config = flags.config;
    int eval_every = FLAGS_eval_every;
    if (mode == "sgd") {
      config.num_subnets = 1;  // one "subnet" = the whole network: plain SGD
      eval_every *= flags.config.num_subnets;  // evaluate at the same sample counts
    } else if (mode == "local_sgd") {
      config.mode = TrainingMode::kLocalSgd;
    } else if (mode == "data_parallel") {
      config.mode = TrainingMode::kDataParallel;
      eval_every *= config.local_steps;  // same sample counts as IST
      config.local_steps = 1;
    }
    ASSIGN_OR_RETURN(EpochTable table, Train(mode, config, flags.epochs, eval_every, train, test));
    tables.push_back(std::move(table));
  }
  std::printf("\nepoch");
  for (const std::string& mode : flags.modes) std::printf("  %14s", (mode + "_test_acc").c_str());
  std::printf("\n");
  for (const auto& [epoch, unused] : tables.front()) {
    std::printf("%5d", epoch);
    for (const EpochTable& t : tables) {
      auto it = t.find(epoch);
      std::printf("  %14s", it == t.end() ? "-" : absl::StrFormat("%.4f", it->second).c_str());
    }
    std::printf("\n");
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace ist

int main(int argc, char** argv) {
  gflags::SetUsageMessage("IST and full SGD on Fashion-MNIST in one process");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  google::InitGoogleLogging(argv[0]);
  FLAGS_logtostderr = true;
  const absl::Status status = ist::Run();
  if (!status.ok()) {
    std::fprintf(stderr, "ist_local: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
