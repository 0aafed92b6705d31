#include "common/model/job_spec.h"

#include <cmath>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ist {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

v1::JobSpec ValidSpec() {
  v1::JobSpec spec;
  for (int n : {784, 64, 32, 10}) spec.add_layers(n);
  return WithDefaults(spec);
}

TEST(WithDefaultsTest, FillsZeroFields) {
  v1::JobSpec spec;
  spec.add_layers(4);
  const v1::JobSpec d = WithDefaults(spec);
  EXPECT_EQ(d.dataset(), "fashion-mnist");
  EXPECT_EQ(d.workers(), 2);
  EXPECT_EQ(d.local_steps(), 20);
  EXPECT_EQ(d.lr(), 0.01);
  EXPECT_EQ(d.batch_size(), 128);
  EXPECT_EQ(d.seed(), 1u);
  EXPECT_EQ(d.eval_every(), 5);
  EXPECT_EQ(d.bn_mode(), "batch");
  EXPECT_EQ(d.epochs(), 1.0);
  EXPECT_EQ(d.rounds(), 0);
  EXPECT_THAT(d.layers(), ElementsAre(4));  // no default for layers
  EXPECT_EQ(d.momentum(), 0.0);
  EXPECT_EQ(d.weight_decay(), 0.0);
}

TEST(WithDefaultsTest, KeepsSetFields) {
  v1::JobSpec spec;
  spec.set_dataset("csv:iris");
  spec.set_workers(4);
  spec.set_local_steps(5);
  spec.set_rounds(7);
  spec.set_lr(0.5);
  spec.set_batch_size(16);
  spec.set_seed(99);
  spec.set_eval_every(1);
  spec.set_bn_mode("running");
  const v1::JobSpec d = WithDefaults(spec);
  EXPECT_EQ(d.dataset(), "csv:iris");
  EXPECT_EQ(d.workers(), 4);
  EXPECT_EQ(d.local_steps(), 5);
  EXPECT_EQ(d.rounds(), 7);
  EXPECT_EQ(d.epochs(), 0.0);  // rounds set: no default epochs
  EXPECT_EQ(d.lr(), 0.5);
  EXPECT_EQ(d.batch_size(), 16);
  EXPECT_EQ(d.seed(), 99u);
  EXPECT_EQ(d.eval_every(), 1);
  EXPECT_EQ(d.bn_mode(), "running");
}

TEST(ValidateJobSpecTest, AcceptsValid) {
  EXPECT_TRUE(ValidateJobSpec(ValidSpec()).ok()) << ValidateJobSpec(ValidSpec());
  v1::JobSpec s = ValidSpec();
  s.set_bn_mode("running");
  s.set_rounds(3);
  s.set_epochs(0);
  s.set_momentum(0.9);
  s.set_weight_decay(1e-4);
  s.set_dataset("idx:mnist");
  EXPECT_TRUE(ValidateJobSpec(s).ok()) << ValidateJobSpec(s);
}

struct BadCase {
  std::string field;  // the message must start with "<field>: "
  std::function<void(v1::JobSpec*)> mutate;
  std::string fact = "";  // and contain this
};

TEST(ValidateJobSpecTest, EachInvalidFieldNamed) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<BadCase> cases = {
      {"layers", [](v1::JobSpec* s) { s->clear_layers(); }, "got ''"},
      {"layers",
       [](v1::JobSpec* s) {
         s->clear_layers();
         s->add_layers(784);
         s->add_layers(10);
       },
       "got '784-10'"},
      {"layers", [](v1::JobSpec* s) { s->set_layers(1, 0); }, "got 0"},
      {"layers", [](v1::JobSpec* s) { s->set_layers(2, (1 << 24) + 1); },
       "got 16777217"},
      {"layers", [](v1::JobSpec* s) { s->set_layers(3, 1); },
       "at least 2 outputs"},
      {"layers",
       [](v1::JobSpec* s) {
         s->clear_layers();
         for (int n : {1 << 24, 1 << 24, 10}) s->add_layers(n);
       },
       "model needs 1048576.8 GiB of fp32 weights, more than the 16 GiB limit"},
      {"workers", [](v1::JobSpec* s) { s->set_workers(0); }, "got 0"},
      {"workers", [](v1::JobSpec* s) { s->set_workers(-3); }, "got -3"},
      {"workers", [](v1::JobSpec* s) { s->set_workers(1025); }, "got 1025"},
      {"workers",
       [](v1::JobSpec* s) {
         s->set_layers(1, 3);
         s->set_workers(4);
       },
       "hidden layer 1 has 3 neurons, fewer than the 4 subnets"},
      {"local_steps", [](v1::JobSpec* s) { s->set_local_steps(0); }, "got 0"},
      {"local_steps", [](v1::JobSpec* s) { s->set_local_steps(1000001); },
       "got 1000001"},
      {"rounds", [](v1::JobSpec* s) { s->set_rounds(-1); }, "got -1"},
      {"rounds", [](v1::JobSpec* s) { s->set_rounds(10000001); },
       "got 10000001"},
      {"epochs", [](v1::JobSpec* s) { s->set_epochs(-0.5); }, "got -0.5"},
      {"epochs", [nan](v1::JobSpec* s) { s->set_epochs(nan); }, "got nan"},
      {"epochs", [inf](v1::JobSpec* s) { s->set_epochs(inf); }, "got inf"},
      {"epochs",
       [](v1::JobSpec* s) {
         s->set_epochs(0);
         s->set_rounds(0);
       },
       "one of rounds or epochs"},
      {"lr", [](v1::JobSpec* s) { s->set_lr(0); }, "got 0"},
      {"lr", [](v1::JobSpec* s) { s->set_lr(-1); }, "got -1"},
      {"lr", [inf](v1::JobSpec* s) { s->set_lr(inf); }, "got inf"},
      {"lr", [](v1::JobSpec* s) { s->set_lr(1e30); }, "must be at most 1000, got 1e+30"},
      {"weight_decay", [](v1::JobSpec* s) { s->set_weight_decay(1e4); },
       "must be at most 1000, got 10000"},
      {"momentum", [](v1::JobSpec* s) { s->set_momentum(1); }, "got 1"},
      {"momentum", [](v1::JobSpec* s) { s->set_momentum(-0.1); }, "got -0.1"},
      {"weight_decay", [](v1::JobSpec* s) { s->set_weight_decay(-1); },
       "got -1"},
      {"weight_decay", [nan](v1::JobSpec* s) { s->set_weight_decay(nan); },
       "got nan"},
      {"batch_size", [](v1::JobSpec* s) { s->set_batch_size(1); }, "got 1"},
      {"batch_size", [](v1::JobSpec* s) { s->set_batch_size((1 << 20) + 1); },
       "got 1048577"},
      {"eval_every", [](v1::JobSpec* s) { s->set_eval_every(0); }, "got 0"},
      {"priority", [](v1::JobSpec* s) { s->set_priority(1001); },
       "must be in [-1000, 1000], got 1001"},
      {"priority", [](v1::JobSpec* s) { s->set_priority(-1001); }, "got -1001"},
      {"bn_mode", [](v1::JobSpec* s) { s->set_bn_mode("Batch"); },
       "got 'Batch'"},
      {"dataset", [](v1::JobSpec* s) { s->set_dataset("mnist"); },
       "unknown data set 'mnist'"},
      {"dataset", [](v1::JobSpec* s) { s->set_dataset("csv:../x"); }, "'..'"},
      {"name", [](v1::JobSpec* s) { s->set_name(std::string(300, 'a')); },
       "got 300 bytes"},
      {"name", [](v1::JobSpec* s) { s->set_name("a\nb"); }, "control"},
  };
  for (const BadCase& c : cases) {
    v1::JobSpec spec = ValidSpec();
    c.mutate(&spec);
    const absl::Status s = ValidateJobSpec(spec);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument)
        << c.field << ": " << s;
    EXPECT_THAT(std::string(s.message()), StartsWith(c.field + ": ")) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.fact)) << s;
    // TrainingConfigFromSpec validates first.
    EXPECT_EQ(TrainingConfigFromSpec(spec).status(), s);
  }
}

TEST(ValidateJobSpecTest, ModelSizeCountsRunningStatistics) {
  // Weights and gamma/beta: 2^32 - 2^16 floats, just under 16 GiB; the
  // running statistics (2 * (65536 + 32765) floats) push it over.
  v1::JobSpec spec = ValidSpec();
  spec.clear_layers();
  for (int n : {1 << 15, 1 << 16, (1 << 15) - 3}) spec.add_layers(n);
  EXPECT_TRUE(ValidateJobSpec(spec).ok()) << ValidateJobSpec(spec);
  spec.set_bn_mode("running");
  EXPECT_THAT(std::string(ValidateJobSpec(spec).message()),
              StartsWith("layers: model needs 16.0 GiB of fp32 weights"));
}

TEST(TrainingConfigFromSpecTest, SetsEveryField) {
  v1::JobSpec spec = ValidSpec();
  spec.set_workers(4);
  spec.set_local_steps(7);
  spec.set_batch_size(32);
  spec.set_lr(0.25);
  spec.set_momentum(0.5);
  spec.set_weight_decay(0.001);
  spec.set_seed(12345);
  spec.set_bn_mode("running");
  auto c = TrainingConfigFromSpec(spec);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(c->model.layer_sizes, ElementsAre(784, 64, 32, 10));
  EXPECT_EQ(c->model.bn_mode, BatchNormMode::kRunningStatistics);
  EXPECT_EQ(c->num_subnets, 4);
  EXPECT_EQ(c->local_steps, 7);
  EXPECT_EQ(c->batch_size, 32);
  EXPECT_EQ(c->sgd.learning_rate, 0.25);
  EXPECT_EQ(c->sgd.momentum, 0.5);
  EXPECT_EQ(c->sgd.weight_decay, 0.001);
  EXPECT_EQ(c->seed, 12345u);
  EXPECT_EQ(SamplesPerRound(*c), 4 * 7 * 32);

  spec.set_bn_mode("batch");
  c = TrainingConfigFromSpec(spec);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->model.bn_mode, BatchNormMode::kBatchStatistics);
}

TEST(TotalRoundsTest, Arithmetic) {
  v1::JobSpec spec = ValidSpec();  // S=2, R=20, B=128, epochs 1
  EXPECT_EQ(TotalRounds(spec, 60000), 12);  // 60000 / 5120 = 11.7
  spec.set_epochs(10);
  EXPECT_EQ(TotalRounds(spec, 60000), 118);  // 117.2
  spec.set_epochs(1);
  EXPECT_EQ(TotalRounds(spec, 5120), 1);  // exact
  EXPECT_EQ(TotalRounds(spec, 5121), 2);
  spec.set_epochs(0.1);
  EXPECT_EQ(TotalRounds(spec, 51200), 1);  // 0.1 * 51200 is not exact
  EXPECT_EQ(TotalRounds(spec, 10), 1);     // at least 1
  spec.set_epochs(1e6);
  EXPECT_EQ(TotalRounds(spec, int64_t{1} << 40), kMaxJobRounds);  // capped
  spec.set_rounds(42);  // rounds wins
  EXPECT_EQ(TotalRounds(spec, 60000), 42);
}

TEST(ParseJobSpecTextTest, ParsesAllFields) {
  auto spec = ParseJobSpecText(R"pb(
    # a comment
    name: "fm small"
    layers: [784, 256, 10]
    dataset: "idx:fm"
    workers: 3
    local_steps: 10
    rounds: 50
    epochs: 2.5
    lr: 0.05
    momentum: 0.9
    weight_decay: 1e-4
    batch_size: 64
    seed: 7
    eval_every: 2
    bn_mode: "running"
  )pb",
                               "job.textpb");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->name(), "fm small");
  EXPECT_THAT(spec->layers(), ElementsAre(784, 256, 10));
  EXPECT_EQ(spec->dataset(), "idx:fm");
  EXPECT_EQ(spec->workers(), 3);
  EXPECT_EQ(spec->local_steps(), 10);
  EXPECT_EQ(spec->rounds(), 50);
  EXPECT_EQ(spec->epochs(), 2.5);
  EXPECT_EQ(spec->lr(), 0.05);
  EXPECT_EQ(spec->momentum(), 0.9);
  EXPECT_EQ(spec->weight_decay(), 1e-4);
  EXPECT_EQ(spec->batch_size(), 64);
  EXPECT_EQ(spec->seed(), 7u);
  EXPECT_EQ(spec->eval_every(), 2);
  EXPECT_EQ(spec->bn_mode(), "running");
}

TEST(ParseJobSpecTextTest, UnknownFieldNamesLine) {
  const absl::Status s =
      ParseJobSpecText("layers: 784\nlayers: 10\nlearning_rate: 0.1\n",
                       "job.textpb")
          .status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()),
              StartsWith("job.textpb:3:1: Message type \"ist.v1.JobSpec\" has "
                         "no field named \"learning_rate\""));
}

TEST(ParseJobSpecTextTest, BadValueNamesLine) {
  const absl::Status s =
      ParseJobSpecText("workers: 2\n  workers: 3\n", "x.textpb").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), StartsWith("x.textpb:2:"));
  const absl::Status t =
      ParseJobSpecText("lr: \"fast\"\n", "y.textpb").status();
  EXPECT_THAT(std::string(t.message()), StartsWith("y.textpb:1:"));
}

TEST(ReadJobSpecFileTest, ReadsAndReportsMissing) {
  const std::string path = ::testing::TempDir() + "/spec.textpb";
  std::ofstream(path) << "layers: [784, 100, 10]\nworkers: 4\n";
  auto spec = ReadJobSpecFile(path);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_THAT(spec->layers(), ElementsAre(784, 100, 10));
  EXPECT_EQ(spec->workers(), 4);

  const std::string missing = ::testing::TempDir() + "/no-such.textpb";
  const absl::Status s = ReadJobSpecFile(missing).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()), HasSubstr(missing));

  const absl::Status dir = ReadJobSpecFile(::testing::TempDir()).status();
  EXPECT_FALSE(dir.ok());
  EXPECT_THAT(std::string(dir.message()), HasSubstr(::testing::TempDir()));

  std::ofstream(path) << "layers: [784, 100, 10]\nworker: 4\n";
  EXPECT_THAT(std::string(ReadJobSpecFile(path).status().message()),
              StartsWith(path + ":2:1: "));
}

}  // namespace
}  // namespace ist
