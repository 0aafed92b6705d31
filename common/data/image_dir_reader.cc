#include "common/data/image_dir_reader.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace ist {
namespace {

constexpr int64_t kMaxImageBytes = int64_t{64} << 20;

absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir, bool dirs) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return absl::NotFoundError(absl::StrCat("cannot open directory ", dir));
  std::vector<std::string> out;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    struct stat st;
    if (stat((dir + "/" + name).c_str(), &st) != 0) continue;
    if (dirs ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode)) out.push_back(name);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

// Reads the next whitespace-separated header token of a Netpbm file,
// skipping '#' comments.
bool NextToken(const std::string& bytes, size_t* pos, std::string* token) {
  token->clear();
  while (*pos < bytes.size()) {
    const char c = bytes[*pos];
    if (c == '#') {
      while (*pos < bytes.size() && bytes[*pos] != '\n') ++*pos;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      ++*pos;
    } else {
      break;
    }
  }
  while (*pos < bytes.size() && !std::isspace(static_cast<unsigned char>(bytes[*pos]))) {
    token->push_back(bytes[(*pos)++]);
  }
  return !token->empty();
}

// Decodes a binary PGM/PPM file into CHW floats in [0, 1].
absl::Status DecodeNetpbm(const std::string& path, ImageShape* shape,
                          std::vector<float>* chw) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (static_cast<int64_t>(bytes.size()) > kMaxImageBytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": larger than 64 MiB"));
  }
  size_t pos = 0;
  std::string magic, w, h, maxval;
  if (!NextToken(bytes, &pos, &magic) || (magic != "P5" && magic != "P6")) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a binary PGM (P5) or PPM (P6) image"));
  }
  int width = 0, height = 0, max = 0;
  if (!NextToken(bytes, &pos, &w) || !NextToken(bytes, &pos, &h) ||
      !NextToken(bytes, &pos, &maxval) || !absl::SimpleAtoi(w, &width) ||
      !absl::SimpleAtoi(h, &height) || !absl::SimpleAtoi(maxval, &max) || width < 1 ||
      height < 1 || width > 16384 || height > 16384 || max < 1 || max > 255) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": bad header (width, height in [1, 16384] and maxval in [1, 255] expected)"));
  }
  ++pos;  // the single whitespace byte before the raster
  const int channels = magic == "P5" ? 1 : 3;
  const int64_t pixels = int64_t{width} * height;
  if (static_cast<int64_t>(bytes.size()) - static_cast<int64_t>(pos) < pixels * channels) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": truncated: ", pixels * channels, " raster bytes expected"));
  }
  *shape = {channels, height, width};
  chw->resize(pixels * channels);
  const float scale = 1.0f / max;
  for (int64_t p = 0; p < pixels; ++p)
    for (int c = 0; c < channels; ++c)
      (*chw)[c * pixels + p] =
          static_cast<unsigned char>(bytes[pos + p * channels + c]) * scale;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DenseDataset> ReadImageDirectory(const std::string& dir, ImageShape* shape_out) {
  ASSIGN_OR_RETURN(std::vector<std::string> classes, ListDir(dir, /*dirs=*/true));
  bool numeric = !classes.empty();
  for (const std::string& c : classes) {
    int v = 0;
    numeric &= absl::SimpleAtoi(c, &v) && v >= 0;
  }
  if (numeric) {
    std::sort(classes.begin(), classes.end(), [](const std::string& a, const std::string& b) {
      int x = 0, y = 0;
      (void)absl::SimpleAtoi(a, &x);
      (void)absl::SimpleAtoi(b, &y);
      return x < y;
    });
  }
  if (classes.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir, ": has ", classes.size(), " class directories, at least 2 are needed"));
  }
  std::vector<float> all, image;
  std::vector<int32_t> labels;
  ImageShape first, shape;
  for (size_t label = 0; label < classes.size(); ++label) {
    const std::string class_dir = dir + "/" + classes[label];
    ASSIGN_OR_RETURN(std::vector<std::string> files, ListDir(class_dir, /*dirs=*/false));
    for (const std::string& f : files) {
      if (!absl::EndsWith(f, ".pgm") && !absl::EndsWith(f, ".ppm")) continue;
      const std::string path = class_dir + "/" + f;
      RETURN_IF_ERROR(DecodeNetpbm(path, &shape, &image));
      if (labels.empty()) {
        first = shape;
      } else if (shape.channels != first.channels || shape.height != first.height ||
                 shape.width != first.width) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": is ", shape.channels, "x", shape.height, "x", shape.width,
            " but the first image is ", first.channels, "x", first.height, "x", first.width));
      }
      all.insert(all.end(), image.begin(), image.end());
      labels.push_back(static_cast<int32_t>(label));
    }
  }
  if (labels.empty()) return absl::InvalidArgumentError(absl::StrCat(dir, ": no .pgm/.ppm images"));
  DenseDataset out;
  out.num_classes = static_cast<int>(classes.size());
  out.labels = std::move(labels);
  const int64_t features = int64_t{first.channels} * first.height * first.width;
  out.features = Eigen::Map<const RowMatrixF>(all.data(), out.labels.size(), features);
  if (shape_out != nullptr) *shape_out = first;
  return out;
}

}  // namespace ist
