// merge_bench: the coordinator's per-round partition work, against a memcpy
// of the whole model in the same run (target: <= 3x memcpy).
//
// Timed, two ways (common/ist/round_plan.h):
//   separate: PlanMlpRound(config, round), ExtractMlpSlice(..., s, ...) for every
//             s into last repetition's slices, MergeMlpSlices(all S) back;
//   fused, what server/coordinator.cc does between two rounds:
//             PlanMlpRound(round + 1), then MergeThenExtractSlices: the merge
//             of round `round` and the extraction of round + 1 in one pass
//             over each hidden-to-hidden matrix.
// Both are one merge and one extraction of every slice. The RESULT line
// (bench/run_all.sh) reports the fused one, the coordinator's path.
// Baseline: std::memcpy of every float of the full model into a buffer of
// the same size that was allocated and touched beforehand (the fastest a
// copy of the model can be). Each repetition times both; the medians and
// the median of the per-repetition ratios are printed. The merged model is checked to equal the model
// before (the slices come back unchanged), bit for bit.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/model/job_config.h"
#include "common/model/mlp_model.h"
#include "common/ist/round_plan.h"
#include "gflags/gflags.h"

DEFINE_string(layers, "784-4096-4096-10", "model shape");
DEFINE_string(subnets, "2,4", "comma-separated S values");
DEFINE_int32(reps, 21, "repetitions per S; the median is reported");
DEFINE_double(max_seconds, 120, "stop after this long whatever --reps says");

namespace {

using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

// Copies every tensor of `model` back to back into `out`.
void CopyModel(const ist::MlpParams<float>& model, float* out) {
  auto copy = [&](const float* p, size_t n) {
    std::memcpy(out, p, n * sizeof(float));
    out += n;
  };
  for (const auto& w : model.weights) copy(w.data(), w.size());
  for (const auto* list : {&model.gamma, &model.beta, &model.running_mean, &model.running_var}) {
    for (const auto& v : *list) copy(v.data(), v.size());
  }
}

}  // namespace

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  ist::IstTrainingConfig config;
  if (!ist::ParseLayerSizes(FLAGS_layers, &config.model.layer_sizes).ok()) {
    std::fprintf(stderr, "--layers: cannot parse '%s'\n", FLAGS_layers.c_str());
    return 2;
  }
  if (FLAGS_reps < 1 || FLAGS_reps > 1000) {
    std::fprintf(stderr, "--reps: must be in [1, 1000]\n");
    return 2;
  }
  config.mode = ist::TrainingMode::kIst;
  config.seed = 1;
  ist::MlpParams<float> model = ist::InitialMlpModel(config);
  const ist::MlpParams<float> original = model;
  const int64_t scalars = model.NumScalars();
  std::vector<float> dest(scalars, 0.0f);  // allocated and touched
  std::printf("merge_bench: %s, %lld floats (%.1f MB)\n", FLAGS_layers.c_str(),
              static_cast<long long>(scalars), scalars * 4 / 1e6);

  const auto start = Clock::now();
  int failures = 0;
  for (const absl::string_view text : absl::StrSplit(FLAGS_subnets, ',')) {
    int S = 0;
    if (!absl::SimpleAtoi(text, &S) || S < 1) {
      std::fprintf(stderr, "--subnets: bad value '%s'\n", std::string(text).c_str());
      return 2;
    }
    config.num_subnets = S;
    std::vector<double> ist_s, plan_s, extract_s, merge_s, copy_s, fresh_s, ratio_s, fused_s,
        fused_ratio_s;
    // The coordinator keeps each slot's outgoing slice from one round to the
    // next (slice shapes do not change between rounds), so ExtractSlice
    // writes into storage that already has the right shape. `fresh_s` times
    // the extraction into newly allocated slices, for comparison.
    std::vector<ist::MlpParams<float>> slices(S), next(S);
    for (int rep = 0; rep < FLAGS_reps && Since(start) < FLAGS_max_seconds; ++rep) {
      auto t0 = Clock::now();
      CopyModel(model, dest.data());
      copy_s.push_back(Since(t0));

      t0 = Clock::now();
      auto plan = ist::PlanMlpRound(config, rep);
      if (!plan.ok()) {
        std::fprintf(stderr, "PlanRound: %s\n", std::string(plan.status().message()).c_str());
        return 1;
      }
      const double p = Since(t0);
      auto t1 = Clock::now();
      for (int s = 0; s < S; ++s) ist::ExtractMlpSlice(config, *plan, model, s, &slices[s]);
      const double e = Since(t1);
      std::vector<const ist::MlpParams<float>*> trained;
      for (const auto& slice : slices) trained.push_back(&slice);
      t1 = Clock::now();
      const absl::Status merged = ist::MergeMlpSlices(config, *plan, trained, &model);
      const double m = Since(t1);
      ist_s.push_back(Since(t0));
      ratio_s.push_back(ist_s.back() / copy_s.back());  // paired: same moment of the run
      {
        std::vector<ist::MlpParams<float>> fresh(S);
        t1 = Clock::now();
        for (int s = 0; s < S; ++s) ist::ExtractMlpSlice(config, *plan, model, s, &fresh[s]);
        fresh_s.push_back(Since(t1));
        // Extracting into last round's storage must give exactly what a
        // fresh extraction gives (the coordinator relies on it).
        for (int s = 0; s < S; ++s) {
          if (!ist::IdenticalParams(fresh[s], slices[s])) {
            std::fprintf(stderr, "S=%d rep %d: reused slice %d differs from a fresh one\n", S,
                         rep, s);
            ++failures;
          }
        }
      }
      plan_s.push_back(p);
      extract_s.push_back(e);
      merge_s.push_back(m);
      if (!merged.ok() || !ist::IdenticalParams(model, original)) {
        std::fprintf(stderr, "S=%d rep %d: merge did not restore the model bit for bit\n", S, rep);
        ++failures;
      }

      // Fused: merge this round's slices and extract the next round's.
      std::vector<ist::MlpParams<float>*> out;
      for (auto& slice : next) out.push_back(&slice);
      t0 = Clock::now();
      auto next_plan = ist::PlanMlpRound(config, rep + 1);
      const absl::Status fused =
          next_plan.ok() ? ist::MergeThenExtractMlpSlices(config, *plan, trained, *next_plan, out, &model)
                         : next_plan.status();
      fused_s.push_back(Since(t0));
      fused_ratio_s.push_back(fused_s.back() / copy_s.back());
      if (!fused.ok() || !ist::IdenticalParams(model, original)) {
        std::fprintf(stderr, "S=%d rep %d: fused merge did not restore the model\n", S, rep);
        ++failures;
      }
      for (int s = 0; fused.ok() && s < S; ++s) {
        ist::MlpParams<float> fresh;
        ist::ExtractMlpSlice(config, *next_plan, model, s, &fresh);
        if (!ist::IdenticalParams(fresh, next[s])) {
          std::fprintf(stderr, "S=%d rep %d: fused slice %d differs from ExtractSlice\n", S, rep,
                       s);
          ++failures;
        }
      }
    }
    // The ratio is the median of the per-repetition ratios (each IST round
    // against the memcpy timed just before it), which is steadier on a busy
    // machine than a ratio of medians; both medians are printed too.
    const double ist = Median(ist_s), copy = Median(copy_s), ratio = Median(ratio_s);
    std::printf("S=%d median of %zu: plan %.2f ms + extract %.2f ms + merge %.2f ms = %.2f ms; "
                "memcpy of the model %.2f ms (%.1f GB/s); ratio %.2f; "
                "(extract into fresh slices instead: %.2f ms)\n",
                S, ist_s.size(), 1e3 * Median(plan_s), 1e3 * Median(extract_s),
                1e3 * Median(merge_s), 1e3 * ist, 1e3 * copy, scalars * 4 / 1e9 / copy,
                ratio, 1e3 * Median(fresh_s));
    const double fused = Median(fused_s), fused_ratio = Median(fused_ratio_s);
    std::printf("S=%d fused (the coordinator's path): plan + merge-then-extract %.2f ms; ratio %.2f "
                "(separate steps above: %.2f)\n",
                S, 1e3 * fused, fused_ratio, ratio);
    std::printf("RESULT merge_S%d ist_ms=%.2f memcpy_ms=%.2f ratio=%.2f separate_ratio=%.2f "
                "target=3 met=%s\n",
                S, 1e3 * fused, 1e3 * copy, fused_ratio, ratio, fused_ratio <= 3 ? "yes" : "no");
    std::fflush(stdout);
  }
  return failures == 0 ? 0 : 1;
}
