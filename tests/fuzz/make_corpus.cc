// Writes the seed corpora of the fuzzers under <dir>/<target>/ (normally
// tests/fuzz/corpus; see run_fuzzers.sh --make-corpus). Deterministic: the
// same sources always produce the same files. Crash reproducers found by the
// fuzzers are committed next to these seeds by hand and are not touched.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include <sys/stat.h>

#include "common/wire/model_file.h"
#include "common/wire/slice_codec.h"
#include "proto/ist/v1/job.pb.h"
#include "proto/ist/v1/tensor.pb.h"
#include "tests/fuzz/fuzz_common.h"

namespace ist {
namespace fuzz {
namespace {

std::string g_dir;

void Write(const std::string& target, const std::string& name, const std::string& bytes) {
  const std::string dir = g_dir + "/" + target;
  mkdir(dir.c_str(), 0755);
  const std::string path = dir + "/" + name;
  FILE* f = fopen(path.c_str(), "wb");
  if (f == nullptr || fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size() ||
      fclose(f) != 0) {
    perror(path.c_str());
    exit(1);
  }
}

std::string Be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
          static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string Idx(const std::vector<uint32_t>& dims, int type = 0x08) {
  std::string out = {0, 0, static_cast<char>(type), static_cast<char>(dims.size())};
  uint64_t n = 1;
  for (uint32_t d : dims) {
    out += Be32(d);
    n *= d;
  }
  for (uint64_t i = 0; i < n && i < 4096; ++i) out.push_back(static_cast<char>(i * 37 % 256));
  return out;
}

void IdxCorpus() {
  Write("idx", "images_2x3x3", Idx({2, 3, 3}));
  Write("idx", "labels_4", Idx({4}));
  Write("idx", "dims4_1x2x1x2", Idx({1, 2, 1, 2}));
  std::string s = Idx({2, 3, 3});
  Write("idx", "bad_truncated", s.substr(0, s.size() - 1));
  Write("idx", "bad_trailing", s + "x");
  Write("idx", "bad_short_header", s.substr(0, 9));
  Write("idx", "bad_type_float32", Idx({2}, 0x0D));
  Write("idx", "bad_zero_dim", std::string("\0\0\x08\x02", 4) + Be32(3) + Be32(0));
  Write("idx", "bad_five_dims", std::string("\0\0\x08\x05", 4) + Be32(1) + Be32(1) +
                                    Be32(1) + Be32(1) + Be32(1) + "x");
  Write("idx", "bad_huge_dims", std::string("\0\0\x08\x03", 4) + Be32(0xffffffff) +
                                    Be32(0xffffffff) + Be32(0xffffffff));
  Write("idx", "bad_magic", std::string("\x01\x00\x08\x01", 4) + Be32(1) + "x");
}

// Options bytes: see csv_fuzzer.cc.
std::string Csv(int label_column, bool header, int delimiter, int classes,
                const std::string& text) {
  return std::string{static_cast<char>(label_column | (header ? 4 : 0) | (delimiter << 3)),
                     static_cast<char>(classes)} +
         text;
}

void CsvCorpus() {
  Write("csv", "basic", Csv(0, false, 0, 0, "0,1.5,2\n1,0.5,-3e2\n"));
  Write("csv", "header_crlf", Csv(0, true, 0, 3, "label,a,b\r\n2,1,2\r\n\r\n0,3,4\r\n"));
  Write("csv", "semicolon_label1", Csv(1, false, 1, 0, "1.0;2;3.5\n-0.25;0; 7 \n"));
  Write("csv", "tab_label2", Csv(2, false, 2, 0, "1\t2\t0\n\n3\t4\t1"));
  Write("csv", "bad_ragged", Csv(0, false, 0, 0, "0,1,2\n1,2\n"));
  Write("csv", "bad_nan", Csv(0, false, 0, 0, "0,nan,2\n"));
  Write("csv", "bad_inf", Csv(0, false, 0, 0, "0,1e39,2\n"));
  Write("csv", "bad_label", Csv(0, false, 0, 2, "2,1,2\n"));
  Write("csv", "bad_negative_label", Csv(0, false, 0, 0, "-1,1\n"));
  Write("csv", "bad_one_field", Csv(0, false, 0, 0, "1\n2\n"));
  Write("csv", "bad_empty", Csv(0, true, 0, 0, "a,b\n\n"));
}

// Options byte: see libsvm_fuzzer.cc (index into {0, 0, 1, 3, 10, 1000, 2^31, -1}).
std::string Svm(int features, int classes, const std::string& text) {
  return std::string(1, static_cast<char>(features | (classes << 3))) + text;
}

void LibsvmCorpus() {
  Write("libsvm", "basic", Svm(0, 0, "1,2 1:0.5 3:1.5\n0 2:1\n"));
  Write("libsvm", "header", Svm(0, 0, "2 4 3\n0 1:1 4:2 # comment\n2,1 2:0.5\n"));
  Write("libsvm", "comments_nolabels", Svm(0, 0, "# only comment\n\n 1:1\t2:-2e-3\r\n3 \n"));
  Write("libsvm", "options_10x3", Svm(4, 3, "0 10:1\n2 1:1 9:9\n"));
  Write("libsvm", "bad_not_increasing", Svm(0, 0, "0 2:1 2:1\n"));
  Write("libsvm", "bad_zero_index", Svm(0, 0, "0 0:1\n"));
  Write("libsvm", "bad_header_count", Svm(0, 0, "3 4 3\n0 1:1\n"));
  Write("libsvm", "bad_header_options", Svm(4, 0, "1 4 3\n0 1:1\n"));
  Write("libsvm", "bad_value", Svm(0, 0, "0 1:inf\n"));
  Write("libsvm", "bad_label", Svm(0, 0, "2147483648 1:1\n"));
  Write("libsvm", "bad_index_range", Svm(2, 2, "0 2:1\n"));
  Write("libsvm", "bad_empty", Svm(0, 0, "# nothing\n\n"));
}

std::vector<std::string> Chunks(const MlpParams<float>& params, int64_t chunk_bytes) {
  v1::SliceTag tag;
  tag.set_job_id("job-1");
  tag.set_round(3);
  tag.set_subnet(1);
  tag.set_attempt(0);
  v1::SliceHeader header;
  DescribeSlice(params, tag, &header);
  std::vector<std::string> out;
  EncodeSlice(params, header, chunk_bytes, [&](const v1::SliceChunk& c) {
    out.push_back(c.SerializeAsString());
    return true;
  });
  return out;
}

std::string Frames(bool running, const std::vector<std::string>& chunks) {
  std::string out(1, running ? '\1' : '\0');
  for (const std::string& c : chunks) AppendFrame(&out, c);
  return out;
}

void SliceCorpus() {
  for (bool running : {false, true}) {
    const std::string mode = running ? "running" : "batch";
    const MlpParams<float> params = InitMlpParams<float>(SliceFuzzConfig(running), 7);
    Write("slice_decoder", mode + "_one_chunk", Frames(running, Chunks(params, 1 << 20)));
    Write("slice_decoder", mode + "_chunks_of_16", Frames(running, Chunks(params, 16)));
    std::vector<std::string> small = Chunks(params, 4);
    if (!running) Write("slice_decoder", mode + "_chunks_of_4", Frames(running, small));
    // Invalid streams.
    std::vector<std::string> c16 = Chunks(params, 16);
    Write("slice_decoder", "bad_" + mode + "_wrong_mode", Frames(!running, c16));
    std::vector<std::string> missing = c16;
    missing.pop_back();
    Write("slice_decoder", "bad_" + mode + "_incomplete", Frames(running, missing));
    std::vector<std::string> swapped = c16;
    std::swap(swapped[1], swapped[2]);
    Write("slice_decoder", "bad_" + mode + "_out_of_order", Frames(running, swapped));
    Write("slice_decoder", "bad_" + mode + "_no_header",
          Frames(running, std::vector<std::string>(c16.begin() + 1, c16.end())));
    std::vector<std::string> twice = c16;
    twice.push_back(c16.back());
    Write("slice_decoder", "bad_" + mode + "_overrun", Frames(running, twice));
  }
  MlpParams<float> nan = InitMlpParams<float>(SliceFuzzConfig(false), 7);
  nan.weights[1](1, 2) = std::numeric_limits<float>::quiet_NaN();
  Write("slice_decoder", "bad_batch_nan", Frames(false, Chunks(nan, 1 << 20)));
}

void ModelFileCorpus() {
  for (const char* bn : {"batch", "running"}) {
    v1::JobSpec spec;
    spec.set_name("fuzz seed");
    for (int n : {5, 4, 3, 2}) spec.add_layers(n);
    spec.set_bn_mode(bn);
    spec.set_seed(7);
    const MlpParams<float> params = InitMlpParams<float>(ModelConfigFromSpec(spec), 7);
    const std::string file = EncodeModelFile("job-1", spec, 12, params);
    if (!DecodeModelFile(file, "seed").ok()) {
      fprintf(stderr, "seed model file does not decode\n");
      exit(1);
    }
    Write("model_file", std::string(bn) + "_5-4-3-2", file);
    if (std::string(bn) == "batch") {
      std::string bad_crc = file;
      bad_crc[bad_crc.size() - 1] ^= 1;
      Write("model_file", "bad_crc", bad_crc);
      Write("model_file", "bad_truncated", file.substr(0, file.size() / 2));
      Write("model_file", "bad_magic", "ISTMODL2" + file.substr(8));
    }
  }
}

}  // namespace
}  // namespace fuzz
}  // namespace ist

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  ist::fuzz::g_dir = argv[1];
  mkdir(argv[1], 0755);
  ist::fuzz::IdxCorpus();
  ist::fuzz::CsvCorpus();
  ist::fuzz::LibsvmCorpus();
  ist::fuzz::SliceCorpus();
  ist::fuzz::ModelFileCorpus();
  return 0;
}
