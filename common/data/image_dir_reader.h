// Image classification data from a directory tree of Netpbm images, for
// users whose images are not in IDX form:
//
//   <dir>/<class>/<any name>.pgm   (binary P5: 1 channel)
//   <dir>/<class>/<any name>.ppm   (binary P6: 3 channels, RGB)
//
// Each subdirectory of <dir> is one class. Labels are the classes' index in
// the sorted order of their names: numerically when every name is a
// non-negative integer ("0", "1", ..., "10"), else lexicographically. Files
// are read in sorted name order, so a tree always gives the same data set.
// Every image must have the same width, height and channel count; samples
// are stored CHW (channel planes one after the other) with values / maxval in
// [0, 1], as common/data/idx_reader.h stores Fashion-MNIST. Other files are
// ignored. Thread-safe (no shared state).
#ifndef IST_COMMON_DATA_IMAGE_DIR_READER_H_
#define IST_COMMON_DATA_IMAGE_DIR_READER_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/data/dataset.h"

namespace ist {

struct ImageShape {
  int channels = 0, height = 0, width = 0;
};

// Reads the tree under `dir`. NotFound if `dir` is missing; InvalidArgument
// naming the file for a malformed image, an image whose shape differs from
// the first one, or a tree with no images or fewer than 2 classes. `shape`
// (optional) receives the images' shape.
absl::StatusOr<DenseDataset> ReadImageDirectory(const std::string& dir,
                                                ImageShape* shape = nullptr);

}  // namespace ist

#endif  // IST_COMMON_DATA_IMAGE_DIR_READER_H_
