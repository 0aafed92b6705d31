// Named data sets that a job spec may refer to. The coordinator and every
// worker resolve a name against their own --data_dir, so a job spec never
// carries a path, and a name can never reach files outside that directory.
//
//   "fashion-mnist"  the four Fashion-MNIST IDX files in <data_dir>/fashion-mnist
//                    (Debian's dataset-fashion-mnist installs them under
//                    /usr/share/datasets, the daemons' default --data_dir)
//   "idx:<subdir>"   the same four file names ({train,t10k}-{images-idx3,
//                    labels-idx1}-ubyte, .gz or plain) in <data_dir>/<subdir>
//   "csv:<prefix>"   <data_dir>/<prefix>-train.csv and <data_dir>/<prefix>-test.csv
//                    (or the same names + ".gz"): label in column 0, no header
//   "images:<subdir>"  <data_dir>/<subdir>/train and <data_dir>/<subdir>/test,
//                    each a tree <class>/<image>.pgm|.ppm
//                    (common/data/image_dir_reader.h)
//
// <subdir> and <prefix> are relative paths: not empty, not absolute, no empty
// component ("a//b", "a/") and no ".." component.
//
// All functions are thread-safe (they share no state).
#ifndef IST_COMMON_DATA_DATASET_REGISTRY_H_
#define IST_COMMON_DATA_DATASET_REGISTRY_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/data/dataset.h"

namespace ist {

// The name of the default data set.
constexpr char kFashionMnistDatasetName[] = "fashion-mnist";

// Checks the syntax of `name` only (no file is touched). OK, or
// InvalidArgument whose message starts with "dataset: " and says what is
// wrong (unknown form, absolute path, "..", empty part).
absl::Status ValidateDatasetName(const std::string& name);

// Validates `name` and loads its training (train = true) or test split from
// under `data_dir`. Errors: InvalidArgument as ValidateDatasetName, or for a
// malformed file (naming the file); NotFound naming the missing path and the
// data set. For "csv:" sets num_classes is the largest label of the loaded
// split + 1 (the caller checks it against the model's output count).
absl::StatusOr<DenseDataset> LoadDataset(const std::string& name,
                                         const std::string& data_dir,
                                         bool train);

// True if `name` is in a format whose sizes ProbeDataset reads from file
// headers (IDX: "fashion-mnist", "idx:"); false for CSV and image
// directories, and for a bad name.
bool DatasetSizesFromHeaders(const std::string& name);

// What LoadDataset(name, data_dir, train) would give, as cheaply as the
// format allows: IDX data sets ("fashion-mnist", "idx:") from the files'
// headers alone (ProbeFashionMnist: nothing else is read); CSV and image
// directories, which have no header, by loading the split and measuring it
// (`*loaded`, if given, is set to whether that happened). The same errors as
// LoadDataset.
absl::StatusOr<DenseDatasetSize> ProbeDataset(const std::string& name,
                                              const std::string& data_dir, bool train,
                                              bool* loaded = nullptr);

}  // namespace ist

#endif  // IST_COMMON_DATA_DATASET_REGISTRY_H_
