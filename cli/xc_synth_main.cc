// Writes a synthetic extreme-classification train/test pair in the Extreme
// Classification Repository's format (common/data/xc_synth.h) and prints its
// shape statistics.
//
//   bazel run -c opt //common:xc_synth -- --train_out=/tmp/xc/train.txt
//       --test_out=/tmp/xc/test.txt --samples=300000 --test_samples=20000
#include <cstdio>
#include <string>

#include "absl/strings/str_format.h"
#include "common/data/libsvm_reader.h"
#include "common/data/xc_synth.h"
#include "gflags/gflags.h"

DEFINE_string(train_out, "", "training file to write (required)");
DEFINE_string(test_out, "", "test file to write (optional)");
DEFINE_int64(samples, 300000, "training samples");
DEFINE_int64(test_samples, 20000, "test samples (with --test_out)");
DEFINE_int64(features, 100000, "sparse input features");
DEFINE_int64(labels, 100000, "labels (classes)");
DEFINE_double(mean_labels, 5.0, "mean labels per sample (Amazon-670k: 5.45)");
DEFINE_double(mean_features, 75.0, "mean feature occurrences per sample");
DEFINE_double(label_zipf, 0.8, "Zipf exponent of label frequencies");
DEFINE_double(feature_zipf, 1.0, "Zipf exponent of noise-feature frequencies");
DEFINE_int32(prototype_size, 20, "prototype features per label");
DEFINE_double(signal, 0.6, "fraction of feature occurrences drawn from the labels' prototypes");
DEFINE_uint64(seed, 1, "seed");
DEFINE_bool(stats, true, "read each file back and print its shape statistics");

namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "xc_synth: %s\n", what.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("write a synthetic extreme-classification data set");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (FLAGS_train_out.empty()) return Fail("--train_out is required");
  if (FLAGS_samples < 1) return Fail("--samples must be >= 1");
  if (!FLAGS_test_out.empty() && FLAGS_test_samples < 1) {
    return Fail("--test_samples must be >= 1");
  }
  ist::XcSynthOptions o;
  o.features = FLAGS_features;
  o.labels = FLAGS_labels;
  o.mean_labels = FLAGS_mean_labels;
  o.mean_features = FLAGS_mean_features;
  o.label_zipf = FLAGS_label_zipf;
  o.feature_zipf = FLAGS_feature_zipf;
  o.prototype_size = FLAGS_prototype_size;
  o.signal = FLAGS_signal;
  o.seed = FLAGS_seed;
  if (absl::Status s = ist::ValidateXcSynthOptions(o); !s.ok()) {
    return Fail(absl::StrFormat("--%s", s.message()));
  }
  struct Out {
    std::string path;
    int64_t samples;
    uint64_t stream;
  };
  for (const Out& out : {Out{FLAGS_train_out, FLAGS_samples, 0},
                         Out{FLAGS_test_out, FLAGS_test_samples, 1}}) {
    if (out.path.empty()) continue;
    if (absl::Status s = ist::WriteXcLibsvmFile(o, out.samples, out.stream, out.path);
        !s.ok()) {
      return Fail(std::string(s.message()));
    }
    std::printf("wrote %s: %lld samples, %lld features, %lld labels\n",
                out.path.c_str(), static_cast<long long>(out.samples),
                static_cast<long long>(o.features), static_cast<long long>(o.labels));
    if (!FLAGS_stats) continue;
    ist::LibsvmOptions read;
    read.zero_based = true;
    auto data = ist::ReadLibsvmDataset(out.path, read);
    if (!data.ok()) return Fail(std::string(data.status().message()));
    const ist::XcShapeStats st = ist::ComputeXcShapeStats(*data);
    std::printf(
        "  %.2f labels/sample, %.1f non-zeros/sample, %lld of %lld labels used, "
        "most frequent label in %lld samples, %lld of %lld features used\n",
        st.mean_labels, st.mean_nnz, static_cast<long long>(st.labels_used),
        static_cast<long long>(o.labels), static_cast<long long>(st.top_label_count),
        static_cast<long long>(st.features_used), static_cast<long long>(o.features));
  }
  return 0;
}
