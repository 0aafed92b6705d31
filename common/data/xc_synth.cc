#include "common/data/xc_synth.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/seed.h"
#include "glog/logging.h"

namespace ist {
namespace {

std::vector<double> ZipfCdf(int64_t n, double exponent) {
  std::vector<double> cdf(n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    sum += std::pow(static_cast<double>(i + 1), -exponent);
    cdf[i] = sum;
  }
  for (double& c : cdf) c /= sum;
  cdf.back() = 1.0;
  return cdf;
}

}  // namespace

absl::Status ValidateXcSynthOptions(const XcSynthOptions& o) {
  auto bad = [](const std::string& what) {
    return absl::InvalidArgumentError(what);
  };
  if (o.features < 1 || o.features > (int64_t{1} << 31) - 1) {
    return bad(absl::StrCat("features: must be in [1, 2^31), got ", o.features));
  }
  if (o.labels < 1 || o.labels > (int64_t{1} << 31) - 1) {
    return bad(absl::StrCat("labels: must be in [1, 2^31), got ", o.labels));
  }
  if (!(o.mean_labels >= 1) || o.mean_labels > o.labels) {
    return bad(absl::StrCat("mean_labels: must be in [1, labels], got ", o.mean_labels));
  }
  if (!(o.mean_features >= 1) || o.mean_features > 1e5) {
    return bad(absl::StrCat("mean_features: must be in [1, 1e5], got ", o.mean_features));
  }
  if (!(o.label_zipf >= 0 && o.label_zipf <= 4)) {
    return bad(absl::StrCat("label_zipf: must be in [0, 4], got ", o.label_zipf));
  }
  if (!(o.feature_zipf >= 0 && o.feature_zipf <= 4)) {
    return bad(absl::StrCat("feature_zipf: must be in [0, 4], got ", o.feature_zipf));
  }
  if (o.prototype_size < 1) {
    return bad(absl::StrCat("prototype_size: must be >= 1, got ", o.prototype_size));
  }
  if (!(o.signal >= 0 && o.signal <= 1)) {
    return bad(absl::StrCat("signal: must be in [0, 1], got ", o.signal));
  }
  return absl::OkStatus();
}

XcSynthGenerator::XcSynthGenerator(const XcSynthOptions& options,
                                   uint64_t stream)
    : options_(options),
      rng_(DeriveSeed(options.seed, stream, 0, SeedPurpose::kShard) ^
           0x5ca1ab1eULL),
      label_cdf_(ZipfCdf(options.labels, options.label_zipf)),
      feature_cdf_(ZipfCdf(options.features, options.feature_zipf)) {
  const absl::Status valid = ValidateXcSynthOptions(options);
  CHECK(valid.ok()) << valid;
}

int64_t XcSynthGenerator::DrawZipf(const std::vector<double>& cdf) {
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
  // u < 1 == cdf.back(), so the bound is always inside the table.
  return std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin();
}

int32_t XcSynthGenerator::Prototype(int64_t label, int k) const {
  const uint64_t h = MixSeed(options_.seed * 0x100000001b3ULL ^
                             MixSeed(static_cast<uint64_t>(label) * 1024 + k));
  return static_cast<int32_t>(h % static_cast<uint64_t>(options_.features));
}

void XcSynthGenerator::Next(std::vector<int32_t>* labels,
                            std::vector<int32_t>* indices,
                            std::vector<float>* values) {
  labels->clear();
  indices->clear();
  values->clear();
  std::poisson_distribution<int64_t> extra_labels(options_.mean_labels - 1);
  const int64_t want = std::min<int64_t>(
      options_.labels, 1 + (options_.mean_labels > 1 ? extra_labels(rng_) : 0));
  // Distinct labels; bounded tries so a very skewed Zipf cannot spin.
  for (int tries = 0; static_cast<int64_t>(labels->size()) < want && tries < 64 * want;
       ++tries) {
    const int32_t c = static_cast<int32_t>(DrawZipf(label_cdf_));
    if (std::find(labels->begin(), labels->end(), c) == labels->end()) {
      labels->push_back(c);
    }
  }
  std::sort(labels->begin(), labels->end());

  std::poisson_distribution<int64_t> nnz_dist(options_.mean_features);
  const int64_t occurrences = std::max<int64_t>(1, nnz_dist(rng_));
  std::vector<int32_t>& occ = counts_scratch_;
  occ.clear();
  for (int64_t k = 0; k < occurrences; ++k) {
    const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
    if (u < options_.signal) {
      const int64_t c = (*labels)[rng_() % labels->size()];
      occ.push_back(Prototype(c, static_cast<int>(rng_() % options_.prototype_size)));
    } else {
      occ.push_back(static_cast<int32_t>(DrawZipf(feature_cdf_)));
    }
  }
  std::sort(occ.begin(), occ.end());
  double norm = 0;
  for (size_t i = 0; i < occ.size();) {
    size_t j = i;
    while (j < occ.size() && occ[j] == occ[i]) ++j;
    indices->push_back(occ[i]);
    values->push_back(static_cast<float>(j - i));
    norm += static_cast<double>(j - i) * (j - i);
    i = j;
  }
  const float inv = static_cast<float>(1.0 / std::sqrt(norm));
  for (float& v : *values) v *= inv;
}

SparseDataset GenerateXcDataset(const XcSynthOptions& options, int64_t samples,
                                uint64_t stream) {
  XcSynthGenerator gen(options, stream);
  SparseDataset d;
  d.num_features = options.features;
  d.num_classes = options.labels;
  std::vector<int32_t> labels, indices;
  std::vector<float> values;
  for (int64_t i = 0; i < samples; ++i) {
    gen.Next(&labels, &indices, &values);
    d.indices.insert(d.indices.end(), indices.begin(), indices.end());
    d.values.insert(d.values.end(), values.begin(), values.end());
    d.row_offsets.push_back(d.indices.size());
    d.labels.insert(d.labels.end(), labels.begin(), labels.end());
    d.label_offsets.push_back(d.labels.size());
  }
  return d;
}

absl::Status WriteXcLibsvmFile(const XcSynthOptions& options, int64_t samples,
                               uint64_t stream, const std::string& path) {
  const absl::Status valid = ValidateXcSynthOptions(options);
  if (!valid.ok()) return valid;
  if (samples < 1) {
    return absl::InvalidArgumentError(absl::StrCat("samples: must be >= 1, got ", samples));
  }
  const std::string tmp = absl::StrCat(path, ".tmp.", getpid());
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot create ", tmp, ": ", std::strerror(errno)));
  }
  XcSynthGenerator gen(options, stream);
  std::vector<int32_t> labels, indices;
  std::vector<float> values;
  std::string line;
  bool ok = std::fprintf(f, "%lld %lld %lld\n", static_cast<long long>(samples),
                         static_cast<long long>(options.features),
                         static_cast<long long>(options.labels)) > 0;
  for (int64_t i = 0; ok && i < samples; ++i) {
    gen.Next(&labels, &indices, &values);
    line.clear();
    for (size_t k = 0; k < labels.size(); ++k) {
      if (k > 0) line += ',';
      absl::StrAppend(&line, labels[k]);
    }
    for (size_t k = 0; k < indices.size(); ++k) {
      absl::StrAppendFormat(&line, " %d:%.6g", indices[k], values[k]);
    }
    line += '\n';
    ok = std::fwrite(line.data(), 1, line.size(), f) == line.size();
  }
  ok = (std::fflush(f) == 0) && ok && fsync(fileno(f)) == 0;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat("cannot write ", path, ": ", why));
  }
  return absl::OkStatus();
}

XcShapeStats ComputeXcShapeStats(const SparseDataset& d) {
  XcShapeStats s;
  s.samples = d.num_samples();
  if (s.samples == 0) return s;
  s.mean_labels = static_cast<double>(d.labels.size()) / s.samples;
  s.mean_nnz = static_cast<double>(d.indices.size()) / s.samples;
  std::vector<int64_t> label_count(d.num_classes, 0);
  for (int32_t y : d.labels) ++label_count[y];
  std::vector<char> feature_used(d.num_features, 0);
  for (int32_t j : d.indices) feature_used[j] = 1;
  for (int64_t c : label_count) {
    s.labels_used += (c > 0);
    s.top_label_count = std::max(s.top_label_count, c);
  }
  for (char u : feature_used) s.features_used += u;
  return s;
}

}  // namespace ist
