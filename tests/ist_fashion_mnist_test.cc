// IST with S = 2 on the real Fashion-MNIST data, in one process: the
// 784-256-256-10 network must reach 80% test accuracy within 3 epochs.
#include <cstdlib>
#include <string>

#include "common/data/idx_reader.h"
#include "gtest/gtest.h"
#include "common/train/compute_threads.h"
#include "common/family/ist_engine.h"
#include "common/train/local_trainer.h"

namespace ist {
namespace {

std::string DataDir() {
  const char* runfiles = std::getenv("TEST_SRCDIR");
  return runfiles == nullptr
             ? std::string(kDefaultFashionMnistDir)
             : std::string(runfiles) + "/system/share/datasets/fashion-mnist";
}

TEST(IstFashionMnistTest, TwoSubnetsReach80PercentWithinThreeEpochs) {
  SetComputeThreads(1);  // tests run side by side
  auto train = LoadFashionMnist(DataDir(), true);
  auto test = LoadFashionMnist(DataDir(), false);
  ASSERT_TRUE(train.ok()) << train.status();
  ASSERT_TRUE(test.ok()) << test.status();

  IstTrainingConfig config;
  config.model.layer_sizes = {784, 256, 256, 10};
  config.num_subnets = 2;
  config.local_steps = 20;
  config.batch_size = 128;
  config.sgd.learning_rate = 0.01;  // the paper's setting
  config.seed = 2024;
  auto engine = LocalIstEngine::Create(config, &*train);
  ASSERT_TRUE(engine.ok()) << engine.status();

  // 3 epochs = 3 * 60000 / (2 * 20 * 128) ~ 35 rounds.
  constexpr int kMaxRounds = 35;
  double accuracy = 0;
  int rounds = 0;
  while (rounds < kMaxRounds && accuracy < 0.80) {
    auto report = (*engine)->RunRound();
    ASSERT_TRUE(report.ok()) << report.status();
    ++rounds;
    if (rounds % 5 == 0 || rounds == kMaxRounds) {
      auto eval = Evaluate(config.model, (*engine)->model(), *test);
      ASSERT_TRUE(eval.ok()) << eval.status();
      accuracy = eval->accuracy;
    }
  }
  RecordProperty("rounds", rounds);
  RecordProperty("accuracy", std::to_string(accuracy));
  EXPECT_GE(accuracy, 0.80) << "after " << rounds << " rounds";
}

}  // namespace
}  // namespace ist
