// ist_xc_local: an extreme-classification IST job in one process, either
// centralized (--shards=0: the full model in memory) or partitioned over M
// in-process shards (--shards=M, the same XcShardStore the daemons use, no
// network). Both compute the same model bit for bit (common/store/xc_rounds.h);
// this binary is for quick experiments and for checking that on real data.
// (With --shards=M it assembles the model once at the end, only to print its
// fingerprint; the daemons never do.)
//
//   ist_xc_local --train_data=/tmp/xc/train.txt --test_data=/tmp/xc/test.txt
//       --layers=100000-256-100000 --subnets=2 --shards=2 --rounds=20
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_format.h"
#include "common/data/libsvm_reader.h"
#include "common/ist/round_plan.h"
#include "common/wire/slice_codec.h"
#include "common/data/xc_synth.h"
#include "gflags/gflags.h"
#include "common/store/xc_rounds.h"
#include "common/store/xc_shard_store.h"

DEFINE_string(train_data, "", "training LIBSVM file (or use --synth_samples)");
DEFINE_string(test_data, "", "evaluation LIBSVM file");
DEFINE_bool(zero_based, true, "LIBSVM feature indices start at 0");
DEFINE_int64(synth_samples, 0, "instead of files: this many synthetic training samples");
DEFINE_int64(synth_test_samples, 2000, "synthetic evaluation samples");
DEFINE_string(layers, "", "features-hidden-classes (required)");
DEFINE_int32(subnets, 2, "S");
DEFINE_int32(shards, 0, "0: centralized; M: partitioned over M in-process shards");
DEFINE_int64(rounds, 10, "rounds");
DEFINE_int64(local_steps, 20, "R");
DEFINE_int32(batch, 128, "minibatch size");
DEFINE_double(lr, 0.5, "SGD learning rate");
DEFINE_uint64(seed, 1, "job seed");
DEFINE_int32(class_block, 4096, "classes per output block");
DEFINE_bool(output_batchnorm, false, "BatchNorm on the logits");
DEFINE_int32(eval_every, 0, "evaluate every this many rounds (0: at the end only)");
DEFINE_int32(eval_batch, 1000, "evaluation batch");

namespace {
int Fail(const std::string& what) {
  std::fprintf(stderr, "ist_xc_local: %s\n", what.c_str());
  return 2;
}
double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  ist::XcJobConfig job;
  if (FLAGS_layers.empty()) return Fail("--layers is required");
  if (absl::Status s = ist::ParseLayerSizes(FLAGS_layers, &job.model.layer_sizes); !s.ok()) {
    return Fail(absl::StrFormat("--%s", s.message()));
  }
  job.num_subnets = FLAGS_subnets;
  job.local_steps = FLAGS_local_steps;
  job.batch_size = FLAGS_batch;
  job.learning_rate = static_cast<float>(FLAGS_lr);
  job.seed = FLAGS_seed;
  job.engine.class_block = FLAGS_class_block;
  job.engine.output_batchnorm = FLAGS_output_batchnorm;
  if (absl::Status s = ist::ValidateXcJobConfig(job); !s.ok()) {
    return Fail(absl::StrFormat("--%s", s.message()));
  }
  if (FLAGS_shards < 0) return Fail("--shards must be >= 0");
  if (FLAGS_rounds < 1) return Fail("--rounds must be >= 1");
  ist::SparseDataset train, test;
  if (FLAGS_synth_samples > 0) {
    ist::XcSynthOptions o;
    o.features = job.model.inputs();
    o.labels = job.model.outputs();
    o.seed = FLAGS_seed;
    train = ist::GenerateXcDataset(o, FLAGS_synth_samples, 0);
    test = ist::GenerateXcDataset(o, FLAGS_synth_test_samples, 1);
  } else {
    if (FLAGS_train_data.empty() || FLAGS_test_data.empty()) {
      return Fail("--train_data and --test_data are required without --synth_samples");
    }
    ist::LibsvmOptions read;
    read.zero_based = FLAGS_zero_based;
    read.num_features = job.model.inputs();
    read.num_classes = job.model.outputs();
    auto tr = ist::ReadLibsvmDataset(FLAGS_train_data, read);
    if (!tr.ok()) return Fail(absl::StrFormat("--train_data: %s", tr.status().message()));
    auto te = ist::ReadLibsvmDataset(FLAGS_test_data, read);
    if (!te.ok()) return Fail(absl::StrFormat("--test_data: %s", te.status().message()));
    train = std::move(*tr);
    test = std::move(*te);
  }
  auto data_shards = ist::JobShards::Create(job.AsIst(), train.num_samples());
  if (!data_shards.ok()) return Fail(std::string(data_shards.status().message()));
  auto test_ptr = std::make_shared<const ist::SparseDataset>(std::move(test));

  ist::MlpParams<float> full;
  std::vector<std::unique_ptr<ist::XcShardStore>> stores;
  std::vector<ist::XcShardApi*> apis;
  if (FLAGS_shards == 0) {
    full = ist::InitialModel(job.AsIst());
  } else {
    for (int m = 0; m < FLAGS_shards; ++m) {
      ist::XcShardOptions o;
      o.job = job;
      o.shard = m;
      o.num_shards = FLAGS_shards;
      auto store = ist::XcShardStore::Create(o);
      if (!store.ok()) return Fail(absl::StrFormat("--%s", store.status().message()));
      (*store)->SetTestData(test_ptr);
      apis.push_back(store->get());
      stores.push_back(std::move(*store));
    }
  }
  ist::SparseMlpEngine<float> eval_engine(job.model, job.engine);
  double train_seconds = 0;
  int64_t bytes = 0;
  for (int64_t r = 0; r < FLAGS_rounds; ++r) {
    const auto t = std::chrono::steady_clock::now();
    absl::StatusOr<double> loss =
        FLAGS_shards == 0
            ? ist::RunCentralizedXcRound(job, train, *data_shards, r, &full)
            : ist::RunPartitionedXcRound(job, train, *data_shards, r, apis, &bytes);
    if (!loss.ok()) return Fail(loss.status().ToString());
    train_seconds += Since(t);
    const bool last = r + 1 == FLAGS_rounds;
    std::printf("round %lld loss %.5f train_seconds %.2f", static_cast<long long>(r), *loss,
                train_seconds);
    if (last || (FLAGS_eval_every > 0 && (r + 1) % FLAGS_eval_every == 0)) {
      auto m = FLAGS_shards == 0
                   ? ist::EvaluateXc(&eval_engine, full, *test_ptr, FLAGS_eval_batch)
                   : ist::EvaluatePartitioned(job, apis, *test_ptr, FLAGS_eval_batch, 1024);
      if (!m.ok()) return Fail(m.status().ToString());
      std::printf(" P@1 %.4f P@3 %.4f P@5 %.4f", m->p_at_1, m->p_at_3, m->p_at_5);
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  if (FLAGS_shards > 0) {
    full.ResizeFor(job.model);
    for (auto& s : stores) s->CopyInto(&full);
  }
  std::printf("model fingerprint %016llx (same for --shards=0 and --shards=M), piece bytes %lld\n",
              static_cast<unsigned long long>(ist::ParamsFingerprint(full)),
              static_cast<long long>(bytes));
  return 0;
}
