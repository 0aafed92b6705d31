#include "common/model/job_spec.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/data/dataset_registry.h"
#include "common/model/resnet_spec.h"
#include "common/model/mlp_model.h"
#include "common/base/status_macros.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace ist {
namespace {

constexpr int kMaxLayerEntries = 1024;
constexpr int kMaxLayerWidth = 1 << 24;
constexpr int64_t kMaxSpecFileBytes = int64_t{1} << 20;

template <typename T>
absl::Status Invalid(absl::string_view field, absl::string_view reason,
                     const T& got) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": ", reason, ", got ", got));
}

std::string LayersSummary(const v1::JobSpec& spec) { return absl::StrJoin(spec.layers(), "-"); }
absl::Status ValidateLayers(const v1::JobSpec& spec);

// The model kinds a spec may name, and each one's part of the spec. The
// layered MLP needs no defaults, conversion or config check of its own.
struct ModelKind {
  const char* name;
  void (*fill_defaults)(v1::JobSpec* spec);
  absl::Status (*validate)(const v1::JobSpec& spec);
  void (*apply)(const v1::JobSpec& spec, IstTrainingConfig* config);
  absl::Status (*validate_config)(const IstTrainingConfig& config);
  std::string (*summary)(const v1::JobSpec& spec);
};

constexpr ModelKind kModelKinds[] = {
    {"", nullptr, ValidateLayers, nullptr, nullptr, LayersSummary},
    {"mlp", nullptr, ValidateLayers, nullptr, nullptr, LayersSummary},
    {"resnet", FillResNetDefaults, ValidateResNetSpec, ApplyResNetSpec, ValidateResNetConfig,
     ResNetSummary},
};

// The kind `name` names, or nullptr.
const ModelKind* FindModelKind(const std::string& name) {
  for (const ModelKind& kind : kModelKinds) {
    if (name == kind.name) return &kind;
  }
  return nullptr;
}

// Builds the training config without validating it.
IstTrainingConfig ToConfig(const v1::JobSpec& spec) {
  IstTrainingConfig c;
  c.mode = spec.mode() == "local_sgd"       ? TrainingMode::kLocalSgd
           : spec.mode() == "data_parallel" ? TrainingMode::kDataParallel
                                            : TrainingMode::kIst;
  c.model.layer_sizes.assign(spec.layers().begin(), spec.layers().end());
  c.model.bn_mode = spec.bn_mode() == "running"
                        ? BatchNormMode::kRunningStatistics
                        : BatchNormMode::kBatchStatistics;
  c.num_subnets = spec.workers();
  c.local_steps = spec.local_steps();
  c.batch_size = spec.batch_size();
  c.sgd.learning_rate = spec.lr();
  c.sgd.momentum = spec.momentum();
  c.sgd.weight_decay = spec.weight_decay();
  c.seed = spec.seed();
  if (const ModelKind* kind = FindModelKind(spec.model()); kind != nullptr && kind->apply) {
    kind->apply(spec, &c);
  }
  return c;
}

absl::Status ValidateLayers(const v1::JobSpec& spec) {
  const auto& layers = spec.layers();
  if (layers.size() > kMaxLayerEntries) {
    return Invalid("layers", absl::StrCat("at most ", kMaxLayerEntries,
                                          " entries are allowed"),
                   absl::StrCat(layers.size(), " entries"));
  }
  if (layers.size() < 3) {
    return Invalid("layers",
                   "need inputs, at least one hidden layer and outputs (at "
                   "least 3 entries)",
                   absl::StrCat("'", absl::StrJoin(layers, "-"), "'"));
  }
  for (int i = 0; i < layers.size(); ++i) {
    if (layers[i] < 1 || layers[i] > kMaxLayerWidth) {
      return Invalid("layers",
                     absl::StrCat("entry ", i, " must be in [1, ",
                                  kMaxLayerWidth, "]"),
                     layers[i]);
    }
  }
  if (layers[layers.size() - 1] < 2) {
    return Invalid("layers", "need at least 2 outputs",
                   layers[layers.size() - 1]);
  }
  // fp32 bytes of the full model: Linear weights, BatchNorm gamma/beta and,
  // in running mode, the running statistics. No overflow: at most 1024
  // products of two numbers <= 2^24.
  const MlpConfig model = ToConfig(spec).model;
  int64_t scalars = model.NumParameters();
  if (model.running_stats()) {
    for (int l = 1; l < layers.size(); ++l) scalars += 2 * int64_t{layers[l]};
  }
  const int64_t bytes = scalars * 4;
  if (bytes > kMaxModelBytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "layers: model needs %.1f GiB of fp32 weights, more than the %d GiB "
        "limit",
        static_cast<double>(bytes) / (int64_t{1} << 30), kMaxModelBytes >> 30));
  }
  return absl::OkStatus();
}

// Records the first error of the text-format parser with its position.
class FirstErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  FirstErrorCollector(const std::string& name, const std::string& text)
      : name_(name), lines_(absl::StrSplit(text, '\n')) {}

  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (!error_.empty()) return;
    // line and column are 0-based; -1 means "no position" (whole input).
    if (line < 0) {
      error_ = absl::StrCat(name_, ": ", message);
      return;
    }
    column = StartOfUnknownField(line, column, message);
    error_ = absl::StrCat(name_, ":", line + 1, ":", column + 1, ": ", message);
  }

  const std::string& error() const { return error_; }

 private:
  // The parser reports an unknown field just after its name; point at the
  // name's start instead, where an editor should put the cursor.
  int StartOfUnknownField(int line, int column, const std::string& message) {
    static constexpr char kMarker[] = "has no field named \"";
    const size_t start = message.find(kMarker);
    if (start == std::string::npos || line >= static_cast<int>(lines_.size())) {
      return column;
    }
    const size_t name_start = start + sizeof(kMarker) - 1;
    const size_t name_end = message.find('"', name_start);
    if (name_end == std::string::npos) return column;
    const std::string field = message.substr(name_start, name_end - name_start);
    const std::string& text = lines_[line];
    if (field.empty() || column < static_cast<int>(field.size())) return column;
    const size_t found = text.rfind(field, column - field.size());
    return found == std::string::npos ? column : static_cast<int>(found);
  }

  const std::string name_;
  const std::vector<std::string> lines_;
  std::string error_;
};

}  // namespace

v1::JobSpec WithDefaults(const v1::JobSpec& spec) {
  v1::JobSpec out = spec;
  if (out.dataset().empty()) out.set_dataset(kFashionMnistDatasetName);
  if (out.workers() == 0) out.set_workers(2);
  if (out.mode().empty()) out.set_mode("ist");
  if (out.local_steps() == 0) out.set_local_steps(out.mode() == "data_parallel" ? 1 : 20);
  if (out.lr() == 0) out.set_lr(0.01);
  if (out.batch_size() == 0) out.set_batch_size(128);
  if (out.seed() == 0) out.set_seed(1);
  if (out.eval_every() == 0) out.set_eval_every(5);
  if (out.bn_mode().empty()) out.set_bn_mode("batch");
  if (out.rounds() == 0 && out.epochs() == 0) out.set_epochs(1);
  if (const ModelKind* kind = FindModelKind(out.model()); kind != nullptr && kind->fill_defaults) {
    kind->fill_defaults(&out);
  }
  return out;
}

absl::Status ValidateJobSpec(const v1::JobSpec& spec) {
  if (spec.name().size() > kMaxJobNameBytes) {
    return Invalid("name",
                   absl::StrCat("must be at most ", kMaxJobNameBytes, " bytes"),
                   absl::StrCat(spec.name().size(), " bytes"));
  }
  for (char c : spec.name()) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(
          "name: must not contain control characters such as newlines");
    }
  }
  if (spec.mode() != "ist" && spec.mode() != "local_sgd" && spec.mode() != "data_parallel") {
    return Invalid("mode", "must be 'ist', 'local_sgd' or 'data_parallel'",
                   absl::StrCat("'", spec.mode(), "'"));
  }
  if (spec.bn_mode() != "batch" && spec.bn_mode() != "running") {
    return Invalid("bn_mode", "must be 'batch' or 'running'",
                   absl::StrCat("'", spec.bn_mode(), "'"));
  }
  const ModelKind* kind = FindModelKind(spec.model());
  if (kind == nullptr) {
    return Invalid("model", "must be 'mlp' or 'resnet'", absl::StrCat("'", spec.model(), "'"));
  }
  RETURN_IF_ERROR(kind->validate(spec));
  RETURN_IF_ERROR(ValidateDatasetName(spec.dataset()));
  // Model shape, lr/momentum/weight_decay, workers (range and hidden
  // widths), local_steps and batch_size; its messages use the proto's names.
  const IstTrainingConfig config = ToConfig(spec);
  RETURN_IF_ERROR(ValidateTrainingConfig(config));
  if (spec.lr() > kMaxLearningRate) {
    return Invalid("lr", absl::StrCat("must be at most ", kMaxLearningRate), spec.lr());
  }
  if (spec.weight_decay() > kMaxWeightDecay) {
    return Invalid("weight_decay", absl::StrCat("must be at most ", kMaxWeightDecay),
                   spec.weight_decay());
  }
  if (spec.speed_aware() && spec.mode() != "ist") {
    return Invalid("speed_aware", "sizes IST subnets: mode must be 'ist'",
                   absl::StrCat("mode '", spec.mode(), "'"));
  }
  if (spec.max_workers() != 0) {
    if (spec.max_workers() < spec.workers() || spec.max_workers() > 1024) {
      return Invalid("max_workers", absl::StrCat("must be 0 or in [workers = ", spec.workers(), ", 1024]"),
                     spec.max_workers());
    }
    IstTrainingConfig widest = config;  // the layers must split max_workers ways too
    widest.num_subnets = spec.max_workers();
    const absl::Status s = ValidateTrainingConfig(widest);
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat("max_workers: ", s.message()));
  }
  if (kind->validate_config) RETURN_IF_ERROR(kind->validate_config(config));
  if (spec.rounds() < 0 || spec.rounds() > kMaxJobRounds) {
    return Invalid("rounds", absl::StrCat("must be in [0, ", kMaxJobRounds, "]"),
                   spec.rounds());
  }
  if (!std::isfinite(spec.epochs()) || spec.epochs() < 0 ||
      spec.epochs() > kMaxJobEpochs) {
    return Invalid("epochs", absl::StrCat("must be a finite number in [0, ",
                                          kMaxJobEpochs, "]"),
                   spec.epochs());
  }
  if (spec.rounds() == 0 && spec.epochs() == 0) {
    return Invalid("epochs", "one of rounds or epochs must be > 0",
                   "rounds 0 and epochs 0");
  }
  if (spec.eval_every() < 1) {
    return Invalid("eval_every", "must be >= 1", spec.eval_every());
  }
  if (spec.priority() < -kMaxJobPriority || spec.priority() > kMaxJobPriority) {
    return Invalid("priority",
                   absl::StrCat("must be in [", -kMaxJobPriority, ", ", kMaxJobPriority, "]"),
                   spec.priority());
  }
  return absl::OkStatus();
}

absl::StatusOr<IstTrainingConfig> TrainingConfigFromSpec(
    const v1::JobSpec& spec) {
  RETURN_IF_ERROR(ValidateJobSpec(spec));
  return ToConfig(spec);
}

MlpConfig ModelConfigFromSpec(const v1::JobSpec& spec) {
  const ModelKind* kind = FindModelKind(spec.model());
  if (kind != nullptr && kind->apply != nullptr) {  // a shape of its own: only if valid
    absl::StatusOr<IstTrainingConfig> c = TrainingConfigFromSpec(spec);
    return c.ok() ? c->model : MlpConfig();
  }
  return ToConfig(spec).model;
}

std::string ModelSummary(const v1::JobSpec& spec) {
  const ModelKind* kind = FindModelKind(spec.model());
  return kind != nullptr ? kind->summary(spec) : spec.model();
}

int64_t TotalRounds(const v1::JobSpec& spec, int64_t train_samples) {
  if (spec.rounds() > 0) return std::min(spec.rounds(), kMaxJobRounds);
  const double per_round = static_cast<double>(spec.workers()) *
                           static_cast<double>(spec.local_steps()) *
                           static_cast<double>(spec.batch_size());
  if (!(per_round > 0) || !(spec.epochs() > 0) || train_samples <= 0) return 1;
  // The small slack keeps 0.1 * 51200 / 5120 at exactly 1 round despite
  // rounding in the product.
  const double rounds =
      std::ceil(spec.epochs() * static_cast<double>(train_samples) / per_round -
                1e-9);
  if (!(rounds >= 1)) return 1;
  if (rounds >= static_cast<double>(kMaxJobRounds)) return kMaxJobRounds;
  return static_cast<int64_t>(rounds);
}

int64_t ElasticSliceBudget(const v1::JobSpec& spec, int64_t train_samples) {
  if (spec.rounds() > 0 || spec.max_workers() <= spec.workers()) return 0;
  const double per_slice =
      static_cast<double>(spec.local_steps()) * static_cast<double>(spec.batch_size());
  if (!(per_slice > 0) || !(spec.epochs() > 0) || train_samples <= 0) return 0;
  const double cap = static_cast<double>(kMaxJobRounds) * spec.max_workers();
  const double slices =
      std::ceil(spec.epochs() * static_cast<double>(train_samples) / per_slice - 1e-9);
  if (!(slices >= 1)) return 1;
  return slices >= cap ? static_cast<int64_t>(cap) : static_cast<int64_t>(slices);
}

absl::StatusOr<v1::JobSpec> ParseJobSpecText(
    const std::string& text, const std::string& name_for_errors) {
  FirstErrorCollector errors(name_for_errors, text);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  v1::JobSpec spec;
  if (!parser.ParseFromString(text, &spec)) {
    return absl::InvalidArgumentError(
        errors.error().empty()
            ? absl::StrCat(name_for_errors, ": not a valid JobSpec text proto")
            : errors.error());
  }
  return spec;
}

absl::StatusOr<v1::JobSpec> ReadJobSpecFile(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string message =
        absl::StrCat("job spec file ", path, ": ", std::strerror(err));
    if (err == ENOENT) return absl::NotFoundError(message);
    if (err == EACCES) return absl::PermissionDeniedError(message);
    return absl::UnavailableError(message);
  }
  std::string text;
  absl::Status status;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    status = absl::InvalidArgumentError(
        absl::StrCat("job spec file ", path, ": not a regular file"));
  } else if (st.st_size > kMaxSpecFileBytes) {
    status = absl::InvalidArgumentError(
        absl::StrCat("job spec file ", path, ": ", st.st_size,
                     " bytes, more than the ", kMaxSpecFileBytes,
                     " bytes a spec may have"));
  } else {
    char buffer[65536];
    while (true) {
      const ssize_t n = read(fd, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        status = absl::DataLossError(absl::StrCat(
            "job spec file ", path, ": read failed: ", std::strerror(errno)));
        break;
      }
      if (n == 0) break;
      text.append(buffer, n);
      if (static_cast<int64_t>(text.size()) > kMaxSpecFileBytes) {
        status = absl::InvalidArgumentError(absl::StrCat(
            "job spec file ", path, ": more than ", kMaxSpecFileBytes,
            " bytes"));
        break;
      }
    }
  }
  close(fd);
  RETURN_IF_ERROR(status);
  return ParseJobSpecText(text, path);
}

}  // namespace ist
