#include "common/data/libsvm_reader.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/data/idx_reader.h"
#include "common/base/status_macros.h"

namespace ist {
namespace {

// Indices and labels are stored as int32.
constexpr int64_t kMaxDim = int64_t{1} << 31;

// Parses one feature or label dimension from a header, options or a token.
bool ParseCount(absl::string_view s, int64_t* out) {
  return absl::SimpleAtoi(s, out) && *out >= 0;
}

// The parse state of one file; every error names the current line.
class LibsvmParser {
 public:
  LibsvmParser(absl::string_view name, const LibsvmOptions& options)
      : name_(name),
        max_features_(options.num_features),
        max_classes_(options.num_classes),
        base_(options.zero_based ? 0 : 1) {}

  absl::Status Line(int64_t line_number, absl::string_view line) {
    line_ = line_number;
    if (const size_t hash = line.find('#'); hash != line.npos) {
      line = line.substr(0, hash);
    }
    const std::vector<absl::string_view> tokens =
        absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (tokens.empty()) return absl::OkStatus();
    const bool first = first_line_;
    first_line_ = false;
    if (first && IsHeader(tokens)) return Header(tokens);
    size_t t = 0;
    if (tokens[0].find(':') == absl::string_view::npos) {
      RETURN_IF_ERROR(Labels(tokens[t++]));
    }
    int64_t previous = 0;
    for (; t < tokens.size(); ++t)
      RETURN_IF_ERROR(Feature(tokens[t], &previous));
    out_.row_offsets.push_back(out_.indices.size());
    out_.label_offsets.push_back(out_.labels.size());
    return absl::OkStatus();
  }

  absl::StatusOr<SparseDataset> Finish() && {
    const int64_t n = out_.num_samples();
    if (declared_samples_ >= 0 && n != declared_samples_) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: header declares %d samples, found %d", name_,
                          declared_samples_, n));
    }
    if (n == 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: no samples", name_));
    }
    out_.num_features = max_features_ > 0 ? max_features_ : seen_features_;
    out_.num_classes = max_classes_ > 0 ? max_classes_ : seen_classes_;
    return std::move(out_);
  }

 private:
  absl::Status Error(absl::string_view what, absl::string_view token) const {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s line %d: %s in token '%s'", name_, line_, what, token));
  }

  static bool IsHeader(const std::vector<absl::string_view>& tokens) {
    int64_t unused;
    return tokens.size() == 3 &&
           std::all_of(tokens.begin(), tokens.end(), [&](absl::string_view t) {
             return ParseCount(t, &unused);
           });
  }

  absl::Status Header(const std::vector<absl::string_view>& tokens) {
    int64_t counts[3];
    for (int i = 0; i < 3; ++i) ParseCount(tokens[i], &counts[i]);
    if (counts[0] < 1 || counts[1] < 1 || counts[1] > kMaxDim ||
        counts[2] < 1 || counts[2] > kMaxDim) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s line %d: header '%s %s %s' (samples features labels) needs "
          "positive counts with features and labels <= %d",
          name_, line_, tokens[0], tokens[1], tokens[2], kMaxDim));
    }
    RETURN_IF_ERROR(Agree("features", counts[1], &max_features_));
    RETURN_IF_ERROR(Agree("labels", counts[2], &max_classes_));
    declared_samples_ = counts[0];
    return absl::OkStatus();
  }

  // Takes the header's `declared` count unless the options already fixed a
  // different one.
  absl::Status Agree(const char* what, int64_t declared, int64_t* bound) {
    if (*bound != 0 && *bound != declared) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "%s line %d: header declares %d %s but the options say %d", name_,
          line_, declared, what, *bound));
    }
    *bound = declared;
    return absl::OkStatus();
  }

  absl::Status Labels(absl::string_view token) {
    for (absl::string_view piece : absl::StrSplit(token, ',')) {
      int64_t label;
      if (!ParseCount(piece, &label) || label >= kMaxDim) {
        return Error(absl::StrFormat("bad label '%s'", piece), token);
      }
      if (max_classes_ > 0 && label >= max_classes_) {
        return Error(absl::StrFormat("label %d is not below the declared %d",
                                     label, max_classes_),
                     token);
      }
      out_.labels.push_back(static_cast<int32_t>(label));
      seen_classes_ = std::max(seen_classes_, label + 1);
    }
    return absl::OkStatus();
  }

  absl::Status Feature(absl::string_view token, int64_t* previous) {
    const size_t colon = token.find(':');
    int64_t index;
    float value;
    if (colon == absl::string_view::npos ||
        !absl::SimpleAtoi(token.substr(0, colon), &index)) {
      return Error("expected index:value", token);
    }
    if (index < base_) {
      return Error(absl::StrFormat("feature index %d is not %d-based", index,
                                   base_),
                   token);
    }
    const int64_t bound = max_features_ > 0 ? max_features_ : kMaxDim;
    if (index - base_ >= bound) {  // before the shift below can overflow
      return Error(absl::StrFormat("feature index %d exceeds the %d features", index, bound),
                   token);
    }
    index += 1 - base_;  // 1-based from here on
    if (index <= *previous) {
      return Error(absl::StrFormat("feature index %d does not increase "
                                   "(previous %d)",
                                   index - 1 + base_, *previous - 1 + base_),
                   token);
    }
    if (index > (max_features_ > 0 ? max_features_ : kMaxDim)) {
      return Error(
          absl::StrFormat("feature index %d exceeds the %d features",
                          index - 1 + base_,
                          max_features_ > 0 ? max_features_ : kMaxDim),
          token);
    }
    if (!absl::SimpleAtof(token.substr(colon + 1), &value) ||
        !std::isfinite(value)) {
      return Error("value is not a finite number", token);
    }
    *previous = index;
    out_.indices.push_back(static_cast<int32_t>(index - 1));
    out_.values.push_back(value);
    seen_features_ = std::max(seen_features_, index);
    return absl::OkStatus();
  }

  const absl::string_view name_;
  int64_t max_features_;  // 0: unbounded
  int64_t max_classes_;   // 0: unbounded
  const int64_t base_;    // first valid feature index in the file (0 or 1)
  int64_t declared_samples_ = -1;
  int64_t seen_features_ = 0;
  int64_t seen_classes_ = 0;
  int64_t line_ = 0;
  bool first_line_ = true;
  SparseDataset out_;
};

}  // namespace

absl::StatusOr<SparseDataset> ParseLibsvm(absl::string_view text,
                                          absl::string_view name,
                                          const LibsvmOptions& options) {
  if (options.num_features < 0 || options.num_features > kMaxDim ||
      options.num_classes < 0 || options.num_classes > kMaxDim) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "%s: num_features (%d) and num_classes (%d) must be in [0, %d]", name,
        options.num_features, options.num_classes, kMaxDim));
  }
  LibsvmParser parser(name, options);
  int64_t line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    RETURN_IF_ERROR(parser.Line(++line_number, line));
  }
  return std::move(parser).Finish();
}

absl::StatusOr<SparseDataset> ReadLibsvmDataset(const std::string& path,
                                                const LibsvmOptions& options) {
  ASSIGN_OR_RETURN(std::string text, ReadFileMaybeGzip(path, int64_t{1} << 32));
  return ParseLibsvm(text, path, options);
}

}  // namespace ist
