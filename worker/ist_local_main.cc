// ist_local: a job of any model family in one process. The S slices of each
// round (IST subnets, or replicas for local SGD and data parallel) are
// trained one after the other by the same engine the distributed system is
// checked against (common/family/ist_engine.h), so this is the quickest way
// to try a model, a mode or a learning rate. Several --modes run one after
// the other on the same data and seeds; a summary table ends the output.
//
//   ist_local --layers=784-1024-1024-10 --subnets=2 --epochs=10 --modes=ist,sgd
//   ist_local --model=resnet --stages=32,64 --lr_schedule=cosine --modes=ist,local_sgd
//   ist_local --model=sparse_mlp --layers=100000-256-100000 --train_data=train.txt
//       --test_data=test.txt --rounds=20 [--shards=2: the partitioned store]
//
// Each family has its own defaults for the flags it cares most about
// (kFamilyDefaults); a flag given on the command line always wins.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/base/status_macros.h"
#include "common/data/dataset_registry.h"
#include "common/data/libsvm_reader.h"
#include "common/data/xc_synth.h"
#include "common/daemon/program.h"
#include "common/family/ist_engine.h"
#include "common/model/job_spec.h"
#include "common/store/xc_rounds.h"
#include "common/store/xc_shard_store.h"
#include "common/train/compute_threads.h"
#include "common/wire/slice_codec.h"
#include "gflags/gflags.h"

DEFINE_string(model, "mlp", "model family: mlp, resnet or sparse_mlp");
// Data: a registered dense data set, or LIBSVM files / synthetic data for sparse_mlp.
DEFINE_string(data_dir, "/usr/share/datasets", "directory the data set name resolves in");
DEFINE_string(dataset, "fashion-mnist", "dense data set name (mlp, resnet)");
DEFINE_string(train_data, "", "sparse_mlp: training LIBSVM file (or --synth_samples)");
DEFINE_string(test_data, "", "sparse_mlp: evaluation LIBSVM file");
DEFINE_bool(zero_based, true, "sparse_mlp: LIBSVM feature indices start at 0");
DEFINE_int64(synth_samples, 0, "sparse_mlp: this many synthetic training samples instead of files");
DEFINE_int64(synth_test_samples, 2000, "sparse_mlp: synthetic evaluation samples");
// Model.
DEFINE_string(layers, "784-1024-1024-10", "mlp, sparse_mlp: layer sizes, inputs to outputs");
DEFINE_string(bn_mode, "batch", "batch (batch statistics at test time too) or running");
DEFINE_string(image, "1x28x28", "resnet: CxHxW of one sample");
DEFINE_int32(classes, 10, "resnet: number of classes");
DEFINE_int32(stem, 32, "resnet: stem convolution channels");
DEFINE_bool(stem_pool, true, "resnet: 2x2 max pooling after the stem");
DEFINE_string(stages, "32,64", "resnet: channels per stage; stage i > 0 starts with stride 2");
DEFINE_int32(blocks_per_stage, 2, "resnet: basic residual blocks per stage");
DEFINE_int32(class_block, 4096, "sparse_mlp: output classes per block");
DEFINE_bool(output_batchnorm, false, "sparse_mlp: BatchNorm on the logits");
// Training.
DEFINE_string(modes, "ist,sgd", "comma-separated: ist, sgd (S = 1), local_sgd, data_parallel");
DEFINE_int32(subnets, 2, "S: subnets / replicas (simulated workers) per round");
DEFINE_int64(local_steps, 20, "R: local SGD steps per round (data_parallel: 1)");
DEFINE_int32(batch, 128, "minibatch size per worker");
DEFINE_double(lr, 0.01, "learning rate (peak, with --lr_schedule=cosine)");
DEFINE_string(lr_schedule, "constant", "constant, or cosine decay to 0 over the run");
DEFINE_double(momentum, 0.0, "SGD momentum (buffer lasts one round)");
DEFINE_double(weight_decay, 0.0, "L2 weight decay on Linear and conv weights");
DEFINE_double(epochs, 10, "epochs of training samples, summed over workers");
DEFINE_int64(rounds, 0, "rounds to run (0: from --epochs)");
DEFINE_uint64(seed, 1, "job seed; every random choice derives from it");
DEFINE_int32(shards, 0, "sparse_mlp: 0 = centralized model; M = partitioned over M in-process shards");
// Evaluation and machine.
DEFINE_int32(eval_every, 1, "evaluate every N rounds (0: at the end only)");
DEFINE_int32(eval_batch, 1000, "test-set chunk size for evaluation");
DEFINE_int32(threads, 0, "compute threads (0: all cores)");

namespace ist {
namespace {

// Per-family defaults of the flags whose usual values differ by family.
struct FamilyDefaults {
  const char* model;
  std::vector<std::pair<const char*, const char*>> flags;
};
const FamilyDefaults kFamilyDefaults[] = {
    {"mlp", {}},
    {"resnet",
     {{"lr", "0.05"}, {"momentum", "0.9"}, {"weight_decay", "5e-4"}, {"epochs", "3"},
      {"eval_every", "10"}, {"modes", "ist,local_sgd,data_parallel"}, {"eval_batch", "500"},
      {"threads", "1"}}},
    {"sparse_mlp", {{"lr", "0.5"}, {"layers", ""}, {"modes", "ist"}, {"eval_every", "0"},
                    {"rounds", "10"}}},
};

absl::Status ApplyFamilyDefaults() {
  for (const FamilyDefaults& d : kFamilyDefaults) {
    if (FLAGS_model != d.model) continue;
    for (const auto& [flag, value] : d.flags) {
      gflags::SetCommandLineOptionWithMode(flag, value, gflags::SET_FLAG_IF_DEFAULT);
    }
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--model: must be mlp, resnet or sparse_mlp, got '", FLAGS_model, "'"));
}

// The job the flags describe, checked as the coordinator checks a JobSpec.
absl::StatusOr<IstTrainingConfig> ConfigFromFlags() {
  v1::JobSpec spec;
  const bool sparse = FLAGS_model == "sparse_mlp";
  spec.set_model(sparse ? "mlp" : FLAGS_model);
  if (FLAGS_model == "resnet") {
    v1::ResNetSpec* r = spec.mutable_resnet();
    for (absl::string_view d : absl::StrSplit(FLAGS_image, 'x')) {
      int v = 0;
      if (!absl::SimpleAtoi(d, &v)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--image: expected CxHxW such as 1x28x28, got '", FLAGS_image, "'"));
      }
      r->add_image(v);
    }
    for (absl::string_view s : absl::StrSplit(FLAGS_stages, ',', absl::SkipEmpty())) {
      int v = 0;
      if (!absl::SimpleAtoi(s, &v)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--stages: '", s, "' is not a channel count"));
      }
      r->add_stage_channels(v);
    }
    r->set_classes(FLAGS_classes);
    r->set_stem_channels(FLAGS_stem);
    r->set_blocks_per_stage(FLAGS_blocks_per_stage);
    r->set_no_stem_pool(!FLAGS_stem_pool);
  } else {
    std::vector<int> sizes;
    RETURN_IF_ERROR(ParseLayerSizes(FLAGS_layers, &sizes));
    for (int n : sizes) spec.add_layers(n);
  }
  spec.set_bn_mode(FLAGS_bn_mode);
  spec.set_workers(FLAGS_subnets);
  spec.set_local_steps(FLAGS_local_steps);
  spec.set_batch_size(FLAGS_batch);
  spec.set_lr(FLAGS_lr);
  spec.set_momentum(FLAGS_momentum);
  spec.set_weight_decay(FLAGS_weight_decay);
  spec.set_seed(FLAGS_seed);
  spec.set_rounds(1);
  absl::StatusOr<IstTrainingConfig> config = TrainingConfigFromSpec(WithDefaults(spec));
  if (!config.ok()) return absl::InvalidArgumentError(absl::StrCat("--", config.status().message()));
  if (sparse) config->sparse = SparseMlpOptions{FLAGS_class_block, FLAGS_output_batchnorm};
  FlagChecks checks;
  checks.Expect(FLAGS_epochs > 0 && FLAGS_epochs <= 10000, "--epochs: must be in (0, 10000]")
      .AtLeast("--rounds", FLAGS_rounds, 0)
      .AtLeast("--eval_every", FLAGS_eval_every, 0)
      .OneOf("--lr_schedule", FLAGS_lr_schedule, {"constant", "cosine"})
      .AtLeast("--shards", FLAGS_shards, 0);
  RETURN_IF_ERROR(checks.status());
  return config;
}

// The data sets of the job: dense by name, or sparse from LIBSVM files or
// generated. Owns them; TrainingData views point into it.
struct JobData {
  DenseDataset dense_train, dense_test;
  SparseDataset sparse_train, sparse_test;
  TrainingData train, test;
};

absl::StatusOr<std::unique_ptr<JobData>> LoadJobData(const IstTrainingConfig& config) {
  auto d = std::make_unique<JobData>();
  if (FLAGS_model != "sparse_mlp") {
    ASSIGN_OR_RETURN(d->dense_train, LoadDataset(FLAGS_dataset, FLAGS_data_dir, true));
    ASSIGN_OR_RETURN(d->dense_test, LoadDataset(FLAGS_dataset, FLAGS_data_dir, false));
    d->train = TrainingData::Dense(d->dense_train);
    d->test = TrainingData::Dense(d->dense_test);
  } else if (FLAGS_synth_samples > 0) {
    XcSynthOptions o;
    o.features = config.model.inputs();
    o.labels = config.model.outputs();
    o.seed = FLAGS_seed;
    d->sparse_train = GenerateXcDataset(o, FLAGS_synth_samples, 0);
    d->sparse_test = GenerateXcDataset(o, FLAGS_synth_test_samples, 1);
  } else {
    if (FLAGS_train_data.empty() || FLAGS_test_data.empty()) {
      return absl::InvalidArgumentError(
          "--train_data and --test_data are required without --synth_samples");
    }
    LibsvmOptions read;
    read.zero_based = FLAGS_zero_based;
    read.num_features = config.model.inputs();
    read.num_classes = config.model.outputs();
    ASSIGN_OR_RETURN(d->sparse_train, ReadLibsvmDataset(FLAGS_train_data, read));
    ASSIGN_OR_RETURN(d->sparse_test, ReadLibsvmDataset(FLAGS_test_data, read));
  }
  if (d->train.dense == nullptr) {
    d->train = TrainingData::Sparse(d->sparse_train);
    d->test = TrainingData::Sparse(d->sparse_test);
  }
  std::printf("%s: %lld train, %lld test samples\n", FLAGS_model.c_str(),
              static_cast<long long>(d->train.num_samples()),
              static_cast<long long>(d->test.num_samples()));
  return d;
}

struct ModeSummary {
  std::string mode;
  double final_accuracy = 0, best_accuracy = 0, train_seconds = 0;
  int64_t rounds = 0;
  int64_t bytes_each_way = 0;  // float32 bytes sent to the workers (= returned)
  uint64_t fingerprint = 0;
};

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::string EvalString(const EvalResult& e) {
  if (e.p_at_1 > 0 || e.p_at_3 > 0 || e.p_at_5 > 0) {
    return absl::StrFormat("P@1 %.4f  P@3 %.4f  P@5 %.4f", e.p_at_1, e.p_at_3, e.p_at_5);
  }
  return absl::StrFormat("test_loss %.4f  test_acc %.4f", e.loss, e.accuracy);
}

// Runs `config` for its rounds with the one-process engine.
absl::StatusOr<ModeSummary> TrainOneProcess(const std::string& name,
                                            const IstTrainingConfig& config, int eval_every,
                                            const JobData& data) {
  ASSIGN_OR_RETURN(auto engine, LocalIstEngine::Create(config, data.train));
  const int64_t per_round = SamplesPerRound(config);
  const int64_t samples = data.train.num_samples();
  const int64_t rounds = FLAGS_rounds > 0 ? FLAGS_rounds
                                          : static_cast<int64_t>(std::ceil(
                                                FLAGS_epochs * samples / double(per_round)));
  std::printf("%s: %s %s (%lld floats), S=%d, R=%lld, batch=%d, lr=%g (%s), momentum=%g: "
              "%lld rounds of %lld samples\n",
              name.c_str(), std::string(engine->family().name()).c_str(),
              config.model.ShapeString().c_str(), static_cast<long long>(config.model.NumScalars()),
              config.num_subnets, static_cast<long long>(config.local_steps), config.batch_size,
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
    summary.train_seconds += Since(t0);
    summary.bytes_each_way += report.slice_floats * 4;
    summary.rounds = r + 1;
    const bool last = r + 1 == rounds;
    if (!last && (eval_every == 0 || (r + 1) % eval_every != 0)) continue;
    ASSIGN_OR_RETURN(EvalResult eval, engine->Evaluate(data.test, FLAGS_eval_batch));
    summary.final_accuracy = eval.accuracy;
    summary.best_accuracy = std::max(summary.best_accuracy, eval.accuracy);
    std::printf("%s round %5lld  epoch %6.3f  train_loss %.4f  %s  train_s %.1f  wall_s %.1f"
                "  MB_each_way %.1f\n",
                name.c_str(), static_cast<long long>(r + 1),
                (r + 1) * per_round / static_cast<double>(samples), report.train_loss,
                EvalString(eval).c_str(), summary.train_seconds, Since(start),
                summary.bytes_each_way / 1e6);
    std::fflush(stdout);
  }
  summary.fingerprint = ParamsFingerprint(engine->model());
  return summary;
}

// The sparse MLP over --shards in-process parameter shards (the data path of
// the shard daemons); computes the same model as TrainOneProcess.
absl::StatusOr<ModeSummary> TrainPartitioned(const IstTrainingConfig& config, const JobData& data) {
  XcJobConfig job;
  job.model = config.model;
  job.num_subnets = config.num_subnets;
  job.local_steps = config.local_steps;
  job.batch_size = config.batch_size;
  job.learning_rate = static_cast<float>(config.sgd.learning_rate);
  job.seed = config.seed;
  job.engine.class_block = FLAGS_class_block;
  job.engine.output_batchnorm = FLAGS_output_batchnorm;
  if (data.train.sparse == nullptr) {
    return absl::InvalidArgumentError("--shards: the partitioned store holds sparse_mlp jobs only");
  }
  RETURN_IF_ERROR(ValidateXcJobConfig(job));
  ASSIGN_OR_RETURN(JobShards data_shards, JobShards::Create(config, data.train.num_samples()));
  auto test = std::make_shared<const SparseDataset>(*data.test.sparse);
  std::vector<std::unique_ptr<XcShardStore>> stores;
  std::vector<XcShardApi*> apis;
  for (int m = 0; m < FLAGS_shards; ++m) {
    XcShardOptions o;
    o.job = job;
    o.shard = m;
    o.num_shards = FLAGS_shards;
    ASSIGN_OR_RETURN(std::unique_ptr<XcShardStore> store, XcShardStore::Create(o));
    store->SetTestData(test);
    apis.push_back(store.get());
    stores.push_back(std::move(store));
  }
  ModeSummary summary;
  summary.mode = absl::StrCat("ist/", FLAGS_shards, "shards");
  const int64_t rounds = std::max<int64_t>(FLAGS_rounds, 1);
  for (int64_t r = 0; r < rounds; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(double loss, RunPartitionedXcRound(job, *data.train.sparse, data_shards, r,
                                                        apis, &summary.bytes_each_way));
    summary.train_seconds += Since(t0);
    summary.rounds = r + 1;
    if (r + 1 != rounds && (FLAGS_eval_every == 0 || (r + 1) % FLAGS_eval_every != 0)) continue;
    ASSIGN_OR_RETURN(XcMetrics m, EvaluatePartitioned(job, apis, *test, FLAGS_eval_batch, 1024));
    summary.final_accuracy = m.p_at_1;
    summary.best_accuracy = std::max(summary.best_accuracy, m.p_at_1);
    std::printf("%s round %5lld  train_loss %.4f  P@1 %.4f  P@3 %.4f  P@5 %.4f  train_s %.1f\n",
                summary.mode.c_str(), static_cast<long long>(r + 1), loss, m.p_at_1, m.p_at_3,
                m.p_at_5, summary.train_seconds);
    std::fflush(stdout);
  }
  summary.bytes_each_way /= 2;  // counted both ways
  MlpParams<float> full;
  full.ResizeFor(job.model);
  for (auto& s : stores) s->CopyInto(&full);
  summary.fingerprint = ParamsFingerprint(full);
  return summary;
}

absl::Status Run() {
  RETURN_IF_ERROR(ApplyFamilyDefaults());
  ASSIGN_OR_RETURN(const IstTrainingConfig base, ConfigFromFlags());
  SetComputeThreads(FLAGS_threads);
  ASSIGN_OR_RETURN(std::unique_ptr<JobData> data, LoadJobData(base));
  std::vector<ModeSummary> summaries;
  if (FLAGS_shards > 0) {
    ASSIGN_OR_RETURN(ModeSummary s, TrainPartitioned(base, *data));
    summaries.push_back(s);
  }
  for (absl::string_view m : absl::StrSplit(FLAGS_modes, ',', absl::SkipEmpty())) {
    if (FLAGS_shards > 0) break;
    IstTrainingConfig config = base;
    int eval_every = FLAGS_eval_every;
    if (m == "sgd") {
      config.num_subnets = 1;  // one "subnet" = the whole network: plain SGD
      eval_every *= base.num_subnets;  // evaluate at the same sample counts
    } else if (m == "local_sgd") {
      config.mode = TrainingMode::kLocalSgd;
    } else if (m == "data_parallel") {
      config.mode = TrainingMode::kDataParallel;
      eval_every *= static_cast<int>(config.local_steps);  // same sample counts as IST
      config.local_steps = 1;
    } else if (m != "ist") {
      return absl::InvalidArgumentError(absl::StrCat(
          "--modes: '", m, "' is not one of ist, sgd, local_sgd, data_parallel"));
    }
    ASSIGN_OR_RETURN(ModeSummary s, TrainOneProcess(std::string(m), config, eval_every, *data));
    summaries.push_back(s);
  }
  if (summaries.empty()) return absl::InvalidArgumentError("--modes: empty");
  std::printf("\n%-14s %10s %10s %8s %10s %14s %18s\n", "mode", "final_acc", "best_acc", "rounds",
              "train_s", "MB_each_way", "model_fingerprint");
  for (const ModeSummary& s : summaries) {
    std::printf("%-14s %10.4f %10.4f %8lld %10.1f %14.1f   %016llx\n", s.mode.c_str(),
                s.final_accuracy, s.best_accuracy, static_cast<long long>(s.rounds),
                s.train_seconds, s.bytes_each_way / 1e6,
                static_cast<unsigned long long>(s.fingerprint));
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace ist

int main(int argc, char** argv) {
  ist::Program program({"ist_local", "IST, local SGD and data parallel for any model family, in one process"},
                       &argc, &argv);
  const absl::Status status = ist::Run();
  if (status.ok()) return 0;
  return program.Fail(status, absl::IsInvalidArgument(status) ? ist::kUsageExitCode : 1);
}
