// One training step (forward + backward + SGD update) of an MLP, timed, and
// the machine's large-sgemm rate measured in the same run for reference.
//
//   bazel run -c opt //bench:train_step_bench -- --layers=784,4096,4096,10
//       --batch=128 --steps=50 --threads=1
//
// Prints `ms_per_step: X` of the step the trainer takes (update folded into
// the weight-gradient GEMMs, MlpEngine::TrainStep), the step's achieved
// GFLOP/s (6 * batch * weights FLOPs: forward, input gradient, weight
// gradient), the unfused step's time in the same run (--split) and the
// sgemm peak.
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/model/mlp_model.h"
#include "gflags/gflags.h"
#include "common/train/compute_threads.h"
#include "common/train/mlp_engine.h"
#include "common/train/sgd.h"

DEFINE_string(layers, "784,4096,4096,10", "layer sizes");
DEFINE_int32(batch, 128, "minibatch size");
DEFINE_int32(steps, 50, "timed steps (after 3 warm-up steps)");
DEFINE_int32(threads, 1, "compute threads");
DEFINE_bool(split, true, "also time the unfused step (ForwardBackward + SgdOptimizer::Step)");
DEFINE_int32(gemm_size, 2048, "n of the n x n x n sgemm measuring the peak (0: skip)");

namespace {

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  ist::MlpConfig config;
  absl::Status parsed = ist::ParseLayerSizes(FLAGS_layers, &config.layer_sizes);
  if (parsed.ok()) parsed = ist::ValidateMlpConfig(config);
  if (!parsed.ok() || FLAGS_batch < 2 || FLAGS_steps < 1 || FLAGS_threads < 1) {
    std::fprintf(stderr, "train_step_bench: %s\n",
                 parsed.ok() ? "--batch >= 2, --steps >= 1 and --threads >= 1 required"
                             : std::string(parsed.message()).c_str());
    return 2;
  }
  ist::SetComputeThreads(FLAGS_threads);

  ist::MlpParams<float> params = ist::InitMlpParams<float>(config, 1);
  std::mt19937 rng(2);
  std::normal_distribution<float> normal(0, 1);
  Eigen::MatrixXf x(FLAGS_batch, config.inputs());
  for (int i = 0; i < x.size(); ++i) x.data()[i] = normal(rng);
  std::vector<int32_t> y(FLAGS_batch);
  for (int i = 0; i < FLAGS_batch; ++i) y[i] = i % config.outputs();

  ist::MlpEngine<float> engine(config);
  ist::SgdOptions sgd;
  sgd.learning_rate = 0.01;

  // The step the trainer takes (ist::TrainLocally): forward, backward and
  // the update folded into the weight-gradient GEMMs.
  auto fused_step = [&] { return engine.TrainStep(sgd, x, y, &params); };
  // The unfused step (gradients stored, then SgdOptimizer::Step), kept as the
  // in-run baseline that shows what folding the update saves.
  ist::SgdOptimizer<float> optimizer(sgd);
  ist::MlpParams<float> grads;
  auto split_step = [&] {
    const float loss = engine.ForwardBackward(params, x, y, &grads);
    optimizer.Step(grads, &params);
    return loss;
  };
  auto time_steps = [&](auto&& step, float* loss) {
    for (int i = 0; i < 3; ++i) *loss = step();  // warm-up
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < FLAGS_steps; ++i) *loss = step();
    return Seconds(t0) * 1000 / FLAGS_steps;
  };
  float loss = 0, split_loss = 0;
  const double split_ms = FLAGS_split ? time_steps(split_step, &split_loss) : 0;
  const double ms = time_steps(fused_step, &loss);
  int64_t weights = 0;
  for (int l = 0; l < config.num_layers(); ++l) {
    weights += int64_t{config.layer_sizes[l]} * config.layer_sizes[l + 1];
  }
  const double step_gflops = 6.0 * FLAGS_batch * weights / (ms / 1000) / 1e9;
  std::printf("layers %s batch %d threads %d steps %d (loss %.4f)\n",
              config.ShapeString().c_str(), FLAGS_batch, FLAGS_threads, FLAGS_steps, loss);
  std::printf("ms_per_step: %.3f\n", ms);
  std::printf("step_gflops: %.1f\n", step_gflops);
  if (FLAGS_split) {
    std::printf("unfused_ms_per_step: %.3f\n", split_ms);
    std::printf("fused_over_unfused: %.3f\n", ms / split_ms);
  }

  if (FLAGS_gemm_size > 0) {
    const int n = FLAGS_gemm_size;
    Eigen::MatrixXf a = Eigen::MatrixXf::Random(n, n), b = Eigen::MatrixXf::Random(n, n), c(n, n);
    c.noalias() = a * b;  // warm-up
    const int reps = 5;
    const auto g0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) c.noalias() = a * b;
    const double peak = 2.0 * n * n * n * reps / Seconds(g0) / 1e9;
    std::printf("sgemm_%d_gflops: %.1f\n", n, peak);
    std::printf("step_over_peak: %.2f\n", step_gflops / peak);
  }
  return 0;
}
