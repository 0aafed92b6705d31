#include "common/data/dataset_registry.h"

#include <malloc.h>
#include <sys/stat.h>

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/data/csv_reader.h"
#include "common/data/idx_reader.h"
#include "common/data/image_dir_reader.h"
#include "common/base/status_macros.h"

namespace ist {
namespace {

constexpr absl::string_view kIdxPrefix = "idx:";
constexpr absl::string_view kCsvPrefix = "csv:";
constexpr absl::string_view kImagesPrefix = "images:";

absl::Status BadName(const std::string& name, absl::string_view reason) {
  return absl::InvalidArgumentError(
      absl::StrCat("dataset: '", name, "' ", reason));
}

// Checks the relative path `part` of the data set `name`.
absl::Status ValidateRelativePath(const std::string& name,
                                  absl::string_view part) {
  if (part.empty()) return BadName(name, "has an empty path after the ':'");
  if (part.front() == '/') {
    return BadName(name,
                   "is an absolute path; it must be relative to the data dir");
  }
  for (char c : part) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return BadName(name, "contains a control character");
    }
  }
  for (absl::string_view component : absl::StrSplit(part, '/')) {
    if (component.empty()) {
      return BadName(name, "has an empty path component");
    }
    if (component == "..") {
      return BadName(name,
                     "has a '..' path component; it must stay inside the "
                     "data dir");
    }
  }
  return absl::OkStatus();
}

// Prefixes a loader's error with the data set's name, keeping the code.
absl::Status InDataset(const std::string& name, const absl::Status& status) {
  return absl::Status(status.code(), absl::StrCat("dataset '", name,
                                                  "': ", status.message()));
}

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

}  // namespace

absl::Status ValidateDatasetName(const std::string& name) {
  if (name == kFashionMnistDatasetName) return absl::OkStatus();
  if (absl::StartsWith(name, kIdxPrefix)) {
    return ValidateRelativePath(name, absl::string_view(name).substr(
                                          kIdxPrefix.size()));
  }
  if (absl::StartsWith(name, kCsvPrefix)) {
    return ValidateRelativePath(name, absl::string_view(name).substr(
                                          kCsvPrefix.size()));
  }
  if (absl::StartsWith(name, kImagesPrefix)) {
    return ValidateRelativePath(name, absl::string_view(name).substr(
                                          kImagesPrefix.size()));
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "dataset: unknown data set '", name,
      "' (known: fashion-mnist, idx:<dir>, csv:<prefix>, images:<dir>)"));
}

bool DatasetSizesFromHeaders(const std::string& name) {
  return ValidateDatasetName(name).ok() &&
         (name == kFashionMnistDatasetName || absl::StartsWith(name, kIdxPrefix));
}

absl::StatusOr<DenseDatasetSize> ProbeDataset(const std::string& name,
                                              const std::string& data_dir, bool train,
                                              bool* loaded) {
  if (loaded != nullptr) *loaded = false;
  RETURN_IF_ERROR(ValidateDatasetName(name));
  if (DatasetSizesFromHeaders(name)) {
    const std::string subdir = name == kFashionMnistDatasetName
                                   ? std::string(kFashionMnistDatasetName)
                                   : name.substr(kIdxPrefix.size());
    absl::StatusOr<DenseDatasetSize> size =
        ProbeFashionMnist(absl::StrCat(data_dir, "/", subdir), train);
    if (!size.ok()) return InDataset(name, size.status());
    return size;
  }
  if (loaded != nullptr) *loaded = true;
  DenseDatasetSize size;
  {
    ASSIGN_OR_RETURN(const DenseDataset data, LoadDataset(name, data_dir, train));
    size.num_samples = data.num_samples();
    size.num_features = data.num_features();
    size.num_classes = data.num_classes;
  }
  // Hand the freed heap back to the OS: glibc otherwise keeps most of a
  // data set this size resident.
  malloc_trim(0);
  return size;
}

absl::StatusOr<DenseDataset> LoadDataset(const std::string& name,
                                         const std::string& data_dir,
                                         bool train) {
  RETURN_IF_ERROR(ValidateDatasetName(name));
  if (name == kFashionMnistDatasetName || absl::StartsWith(name, kIdxPrefix)) {
    const std::string subdir = name == kFashionMnistDatasetName
                                   ? std::string(kFashionMnistDatasetName)
                                   : name.substr(kIdxPrefix.size());
    absl::StatusOr<DenseDataset> data =
        LoadFashionMnist(absl::StrCat(data_dir, "/", subdir), train);
    if (!data.ok()) return InDataset(name, data.status());
    return data;
  }
  if (absl::StartsWith(name, kImagesPrefix)) {
    absl::StatusOr<DenseDataset> data = ReadImageDirectory(absl::StrCat(
        data_dir, "/", name.substr(kImagesPrefix.size()), train ? "/train" : "/test"));
    if (!data.ok()) return InDataset(name, data.status());
    return data;
  }
  // "csv:<prefix>"
  const std::string base = absl::StrCat(data_dir, "/", name.substr(kCsvPrefix.size()),
                                        train ? "-train.csv" : "-test.csv");
  std::string path = base;
  if (!Exists(path) && Exists(base + ".gz")) path = base + ".gz";
  if (!Exists(path)) {
    return absl::NotFoundError(absl::StrCat("dataset '", name, "': neither ",
                                            base, " nor ", base,
                                            ".gz exists"));
  }
  CsvOptions options;  // label in column 0, no header, classes from labels
  absl::StatusOr<DenseDataset> data = ReadCsvDataset(path, options);
  if (!data.ok()) return InDataset(name, data.status());
  return data;
}

}  // namespace ist
