#include "common/store/xc_shard_store.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

#include <fcntl.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "common/wire/model_file.h"
#include "common/ist/round_plan.h"
#include "common/base/seed.h"
#include "common/base/status_macros.h"
#include "zlib.h"

namespace ist {
namespace {

constexpr char kMagic[8] = {'I', 'S', 'T', 'X', 'C', 'S', 'H', '1'};
constexpr int kHeaderFields = 10;

void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}

bool AllFinite(const MlpParams<float>& p) {
  for (const auto& w : p.weights) {
    if (!w.allFinite()) return false;
  }
  return p.gamma[0].allFinite() && p.beta[0].allFinite();
}

}  // namespace

std::string XcShardCheckpointPath(const XcShardOptions& o, int64_t round) {
  return absl::StrCat(o.checkpoint_dir, "/", o.job_id, ".shard", o.shard, "-of-",
                      o.num_shards, ".r", round, ".ckpt");
}

XcShardStore::XcShardStore(XcShardOptions options)
    : options_(std::move(options)),
      layout_{options_.job.model.layer_sizes[1], options_.num_shards},
      owned_(layout_.End(options_.shard) - layout_.Begin(options_.shard)) {}

absl::StatusOr<std::unique_ptr<XcShardStore>> XcShardStore::Create(
    const XcShardOptions& options) {
  RETURN_IF_ERROR(ValidateXcJobConfig(options.job));
  const ShardLayout layout{options.job.model.layer_sizes[1], options.num_shards};
  RETURN_IF_ERROR(ValidateShardLayout(layout));
  if (options.shard < 0 || options.shard >= options.num_shards) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shard: must be in [0, num_shards = ", options.num_shards, "), got ",
        options.shard));
  }
  std::unique_ptr<XcShardStore> store(new XcShardStore(options));
  const MlpConfig& model = options.job.model;
  const int64_t f = model.inputs(), h = model.layer_sizes[1], l = model.outputs();
  const int begin = layout.Begin(options.shard);
  const int k = store->owned_;
  absl::MutexLock lock(&store->mu_);
  MlpParams<float>& part = store->part_;
  part.ResizeFor(PieceConfig(model, k));
  // Replays InitMlpParams' single random stream (weights[0] column-major,
  // then weights[1]) and keeps only the owned entries.
  std::mt19937_64 rng(DeriveSeed(options.job.seed, 0, 0, SeedPurpose::kInit));
  auto draw = [&rng](double bound) {
    const double u = static_cast<double>(rng() >> 11) * 0x1.0p-53;
    return static_cast<float>((2 * u - 1) * bound);
  };
  const double b1 = 1.0 / std::sqrt(static_cast<double>(f));
  for (int64_t c = 0; c < f; ++c) {
    rng.discard(begin);
    for (int r = 0; r < k; ++r) part.weights[0](r, c) = draw(b1);
    rng.discard(h - begin - k);
  }
  const double b2 = 1.0 / std::sqrt(static_cast<double>(h));
  rng.discard(static_cast<uint64_t>(begin) * l);
  for (int c = 0; c < k; ++c) {
    for (int64_t r = 0; r < l; ++r) part.weights[1](r, c) = draw(b2);
  }
  part.gamma[0].setOnes();
  part.beta[0].setZero();
  return store;
}

void XcShardStore::SetTestData(std::shared_ptr<const SparseDataset> test) {
  absl::MutexLock lock(&mu_);
  test_ = std::move(test);
}

int64_t XcShardStore::ModelScalars() const {
  return int64_t{owned_} * (options_.job.model.inputs() + options_.job.model.outputs() + 2);
}

int64_t XcShardStore::StagedScalars() {
  absl::MutexLock lock(&mu_);
  int64_t n = 0;
  for (const auto& [s, staged] : staged_) n += staged.piece.NumScalars();
  return n;
}

void XcShardStore::CopyInto(MlpParams<float>* full) {
  absl::MutexLock lock(&mu_);
  const int begin = layout_.Begin(options_.shard);
  full->weights[0].middleRows(begin, owned_) = part_.weights[0];
  full->weights[1].middleCols(begin, owned_) = part_.weights[1];
  full->gamma[0].segment(begin, owned_) = part_.gamma[0];
  full->beta[0].segment(begin, owned_) = part_.beta[0];
}

absl::StatusOr<XcShardInfo> XcShardStore::Info() {
  XcShardInfo info;
  info.shard = options_.shard;
  info.num_shards = options_.num_shards;
  info.layers = options_.job.model.layer_sizes;
  info.num_subnets = options_.job.num_subnets;
  info.seed = options_.job.seed;
  info.begin = layout_.Begin(options_.shard);
  info.end = layout_.End(options_.shard);
  info.allocated_scalars = ModelScalars() + StagedScalars();
  absl::MutexLock lock(&mu_);
  info.round = round_;
  info.test_samples = test_ ? test_->num_samples() : 0;
  return info;
}

absl::StatusOr<std::vector<int32_t>> XcShardStore::OwnedNeuronsLocked(int64_t round,
                                                                      int subnet) {
  if (round != round_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "shard ", options_.shard, ": round ", round, " is not open (open round ", round_,
        ")"));
  }
  if (subnet < 0 || subnet >= options_.job.num_subnets) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shard ", options_.shard, ": subnet ", subnet, " is not in [0, ",
        options_.job.num_subnets, ")"));
  }
  if (partition_round_ != round) {
    ASSIGN_OR_RETURN(RoundPlan plan, PlanMlpRound(options_.job.AsIst(), round));
    partition_ = std::move(plan.partition);
    partition_round_ = round;
  }
  return OwnedPart(layout_, options_.shard, partition_.blocks[0][subnet]);
}

absl::StatusOr<int> XcShardStore::PieceWidth(int64_t round, int subnet) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(std::vector<int32_t> neurons, OwnedNeuronsLocked(round, subnet));
  return static_cast<int>(neurons.size());
}

absl::Status XcShardStore::FetchPiece(int64_t round, int subnet, MlpParams<float>* piece) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(std::vector<int32_t> neurons, OwnedNeuronsLocked(round, subnet));
  const int begin = layout_.Begin(options_.shard);
  for (int32_t& n : neurons) n -= begin;
  piece->weights.resize(2);
  piece->gamma.resize(1);
  piece->beta.resize(1);
  piece->running_mean.clear();
  piece->running_var.clear();
  piece->weights[0] = part_.weights[0](neurons, Eigen::all);
  piece->weights[1] = part_.weights[1](Eigen::all, neurons);
  piece->gamma[0] = part_.gamma[0](neurons);
  piece->beta[0] = part_.beta[0](neurons);
  return absl::OkStatus();
}

absl::Status XcShardStore::PushPiece(int64_t round, int subnet, int attempt,
                                     MlpParams<float> piece) {
  absl::MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(std::vector<int32_t> neurons, OwnedNeuronsLocked(round, subnet));
  const MlpConfig& model = options_.job.model;
  const Eigen::Index k = neurons.size();
  if (piece.weights.size() != 2 || piece.gamma.size() != 1 || piece.beta.size() != 1 ||
      piece.weights[0].rows() != k || piece.weights[0].cols() != model.inputs() ||
      piece.weights[1].rows() != model.outputs() || piece.weights[1].cols() != k ||
      piece.gamma[0].size() != k || piece.beta[0].size() != k) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shard ", options_.shard, ": piece of subnet ", subnet, " round ", round,
        " must have the shape ", model.inputs(), "-", k, "-", model.outputs()));
  }
  if (!AllFinite(piece)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shard ", options_.shard, ": piece of subnet ", subnet, " has NaN or Inf"));
  }
  if (auto it = staged_.find(subnet); it != staged_.end() && it->second.attempt > attempt) {
    return absl::FailedPreconditionError(absl::StrCat(
        "shard ", options_.shard, ": round ", round, " subnet ", subnet, " attempt ", attempt,
        " is stale (attempt ", it->second.attempt, " was pushed)"));
  }
  staged_[subnet] = Staged{attempt, std::move(piece)};  // no copy
  return absl::OkStatus();
}

absl::Status XcShardStore::CommitRound(int64_t round, const std::vector<int32_t>& attempts) {
  absl::MutexLock lock(&mu_);
  if (round < round_) return absl::OkStatus();  // a retried commit
  if (round > round_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "shard ", options_.shard, ": cannot commit round ", round, ", open round is ",
        round_));
  }
  if (static_cast<int>(attempts.size()) != options_.job.num_subnets) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shard ", options_.shard, ": commit names ", attempts.size(), " attempts for ",
        options_.job.num_subnets, " subnets"));
  }
  for (int s = 0; s < options_.job.num_subnets; ++s) {
    auto it = staged_.find(s);
    if (it == staged_.end() || it->second.attempt != attempts[s]) {
      return absl::FailedPreconditionError(absl::StrCat(
          "shard ", options_.shard, ": round ", round, " subnet ", s, " attempt ",
          attempts[s], " was not pushed here",
          it == staged_.end() ? "" : absl::StrCat(" (attempt ", it->second.attempt,
                                                  " was)")));
    }
  }
  const int begin = layout_.Begin(options_.shard);
  for (int s = 0; s < options_.job.num_subnets; ++s) {
    ASSIGN_OR_RETURN(std::vector<int32_t> neurons, OwnedNeuronsLocked(round, s));
    for (int32_t& n : neurons) n -= begin;
    const MlpParams<float>& p = staged_[s].piece;
    part_.weights[0](neurons, Eigen::all) = p.weights[0];
    part_.weights[1](Eigen::all, neurons) = p.weights[1];
    part_.gamma[0](neurons) = p.gamma[0];
    part_.beta[0](neurons) = p.beta[0];
  }
  staged_.clear();
  ++round_;
  return absl::OkStatus();
}

absl::StatusOr<Eigen::MatrixXf> XcShardStore::HiddenActivations(int eval_batch) {
  absl::MutexLock lock(&mu_);
  if (test_ == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", options_.shard, " has no evaluation set (--test_data)"));
  }
  const int64_t n = test_->num_samples();
  if (n < 2 || eval_batch < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "evaluation needs >= 2 samples and eval_batch >= 2, got ", n, " and ", eval_batch));
  }
  if (test_->num_features > options_.job.model.inputs()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "evaluation set has ", test_->num_features, " features, the model takes ",
        options_.job.model.inputs()));
  }
  SparseMlpEngine<float> engine(PieceConfig(options_.job.model, owned_), options_.job.engine);
  Eigen::MatrixXf out(owned_, n);
  Eigen::MatrixXf at;
  SparseDataset batch;
  std::vector<int64_t> idx;
  for (int64_t start = 0; start < n;) {
    int64_t end = std::min(n, start + eval_batch);
    if (n - end < eval_batch) end = n;
    idx.resize(end - start);
    for (int64_t i = start; i < end; ++i) idx[i - start] = i;
    GatherSparseBatch(*test_, idx, &batch);
    engine.HiddenActivations(part_, batch, &at);
    out.middleCols(start, end - start) = at;
    start = end;
  }
  return out;
}

absl::StatusOr<Eigen::MatrixXf> XcShardStore::OutputRows(int c0, int n) {
  absl::MutexLock lock(&mu_);
  if (c0 < 0 || n < 1 || int64_t{c0} + n > options_.job.model.outputs()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "output rows [", c0, ", ", int64_t{c0} + n, ") are not inside [0, ",
        options_.job.model.outputs(), ")"));
  }
  return Eigen::MatrixXf(part_.weights[1].middleRows(c0, n));
}

absl::Status XcShardStore::Checkpoint(int64_t round) {
  if (options_.checkpoint_dir.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("shard ", options_.shard, " has no checkpoint directory"));
  }
  const std::string path = XcShardCheckpointPath(options_, round);
  const std::string tmp = absl::StrCat(path, ".tmp");
  {
    // Streamed straight from the parameters (no second copy in memory),
    // CRC-32 accumulated on the way.
    absl::MutexLock lock(&mu_);
    if (round != round_) {
      return absl::FailedPreconditionError(absl::StrCat(
          "shard ", options_.shard, ": checkpoint of round ", round, " asked, ", round_,
          " rounds are committed"));
    }
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (f == nullptr) {
      return absl::InternalError(absl::StrCat("cannot create ", tmp, ": ", std::strerror(errno)));
    }
    uLong crc = crc32(0L, Z_NULL, 0);
    bool ok = true;
    auto write = [&](const void* data, size_t n) {
      crc = crc32(crc, static_cast<const Bytef*>(data), n);
      ok = ok && std::fwrite(data, 1, n, f) == n;
    };
    const MlpConfig& m = options_.job.model;
    std::string head(kMagic, 8);
    const uint64_t fields[kHeaderFields] = {
        static_cast<uint64_t>(options_.shard), static_cast<uint64_t>(options_.num_shards),
        static_cast<uint64_t>(m.inputs()),     static_cast<uint64_t>(m.layer_sizes[1]),
        static_cast<uint64_t>(m.outputs()),    static_cast<uint64_t>(options_.job.num_subnets),
        options_.job.seed,                     static_cast<uint64_t>(round_),
        static_cast<uint64_t>(owned_),         options_.job_id.size()};
    for (uint64_t v : fields) PutU64(&head, v);
    head += options_.job_id;
    write(head.data(), head.size());
    write(part_.weights[0].data(), 4 * part_.weights[0].size());
    write(part_.gamma[0].data(), 4 * part_.gamma[0].size());
    write(part_.beta[0].data(), 4 * part_.beta[0].size());
    write(part_.weights[1].data(), 4 * part_.weights[1].size());
    unsigned char tail[4];
    for (int i = 0; i < 4; ++i) tail[i] = static_cast<unsigned char>((crc >> (8 * i)) & 0xff);
    ok = ok && std::fwrite(tail, 1, 4, f) == 4;
    ok = (std::fflush(f) == 0) && ok && ::fsync(fileno(f)) == 0;
    ok = (std::fclose(f) == 0) && ok;
    if (!ok) {
      const std::string why = std::strerror(errno);
      std::remove(tmp.c_str());
      return absl::InternalError(absl::StrCat("cannot write ", tmp, ": ", why));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot rename ", tmp, " to ", path, ": ", std::strerror(errno)));
  }
  const int dfd = ::open(options_.checkpoint_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  // Keep this checkpoint and the one before it.
  std::vector<int64_t> remove;
  {
    absl::MutexLock lock(&mu_);
    checkpoints_.push_back(round);
    while (checkpoints_.size() > 2) {
      remove.push_back(checkpoints_.front());
      checkpoints_.pop_front();
    }
  }
  for (int64_t old : remove) {
    if (old != round) std::remove(XcShardCheckpointPath(options_, old).c_str());
  }
  return absl::OkStatus();
}

absl::Status XcShardStore::Restore(int64_t round) {
  const std::string path = XcShardCheckpointPath(options_, round);
  ASSIGN_OR_RETURN(std::string bytes, ReadWholeFile(path));
  const int64_t header = 8 + 8 * kHeaderFields;
  if (static_cast<int64_t>(bytes.size()) < header + 4) {
    return absl::DataLossError(absl::StrCat(path, ": truncated (", bytes.size(), " bytes)"));
  }
  if (std::memcmp(bytes.data(), kMagic, 8) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a shard checkpoint"));
  }
  uint32_t want = 0;
  for (int i = 0; i < 4; ++i) {
    want |= uint32_t{static_cast<unsigned char>(bytes[bytes.size() - 4 + i])} << (8 * i);
  }
  const uint32_t got = crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), bytes.size() - 4);
  if (want != got) return absl::DataLossError(absl::StrCat(path, ": checksum mismatch"));
  uint64_t f[kHeaderFields];
  for (int i = 0; i < kHeaderFields; ++i) f[i] = GetU64(bytes.data() + 8 + 8 * i);
  const MlpConfig& m = options_.job.model;
  const uint64_t expect[kHeaderFields] = {
      static_cast<uint64_t>(options_.shard), static_cast<uint64_t>(options_.num_shards),
      static_cast<uint64_t>(m.inputs()),     static_cast<uint64_t>(m.layer_sizes[1]),
      static_cast<uint64_t>(m.outputs()),    static_cast<uint64_t>(options_.job.num_subnets),
      options_.job.seed,                     static_cast<uint64_t>(round),
      static_cast<uint64_t>(owned_),         options_.job_id.size()};
  static const char* kNames[kHeaderFields] = {"shard", "num_shards", "features", "hidden",
                                              "classes", "subnets", "seed", "round",
                                              "owned neurons", "job id length"};
  for (int i = 0; i < kHeaderFields; ++i) {
    if (f[i] != expect[i]) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", kNames[i], " is ", f[i],
                                                     ", this shard expects ", expect[i]));
    }
  }
  const int64_t floats = ModelScalars();
  if (static_cast<int64_t>(bytes.size()) != header + static_cast<int64_t>(f[9]) + 4 * floats + 4) {
    return absl::DataLossError(absl::StrCat(path, ": size ", bytes.size(), " does not match"));
  }
  if (bytes.compare(header, f[9], options_.job_id) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": belongs to another job"));
  }
  MlpParams<float> part;
  part.ResizeFor(PieceConfig(m, owned_));
  const char* p = bytes.data() + header + f[9];
  auto take = [&p](float* dst, int64_t count) {
    std::memcpy(dst, p, 4 * count);
    p += 4 * count;
  };
  take(part.weights[0].data(), part.weights[0].size());
  take(part.gamma[0].data(), owned_);
  take(part.beta[0].data(), owned_);
  take(part.weights[1].data(), part.weights[1].size());
  absl::MutexLock lock(&mu_);
  part_ = std::move(part);
  round_ = round;
  staged_.clear();
  partition_round_ = -1;
  return absl::OkStatus();
}

absl::StatusOr<XcMetrics> EvaluatePartitioned(const XcJobConfig& config,
                                              const std::vector<XcShardApi*>& shards,
                                              const SparseDataset& test, int eval_batch,
                                              int class_block) {
  const int64_t n = test.num_samples();
  const int hidden = config.model.layer_sizes[1];
  const int classes = config.model.outputs();
  if (class_block < 1) {
    return absl::InvalidArgumentError(absl::StrCat("class_block: must be >= 1, got ", class_block));
  }
  std::vector<int> begin(shards.size()), size(shards.size());
  Eigen::MatrixXf a(hidden, n);
  int covered = 0;
  for (size_t m = 0; m < shards.size(); ++m) {
    ASSIGN_OR_RETURN(XcShardInfo info, shards[m]->Info());
    if (info.begin != covered || info.end <= info.begin || info.end > hidden ||
        info.test_samples != n) {
      return absl::FailedPreconditionError(absl::StrCat(
          "shard ", m, " owns [", info.begin, ", ", info.end, ") with ", info.test_samples,
          " evaluation samples; expected to start at ", covered, " with ", n, " samples"));
    }
    begin[m] = info.begin;
    size[m] = info.end - info.begin;
    covered = info.end;
    ASSIGN_OR_RETURN(Eigen::MatrixXf am, shards[m]->HiddenActivations(eval_batch));
    if (am.rows() != size[m] || am.cols() != n) {
      return absl::DataLossError(absl::StrCat("shard ", m, " returned hidden activations ",
                                              am.rows(), "x", am.cols(), ", expected ",
                                              size[m], "x", n));
    }
    a.middleRows(begin[m], size[m]) = am;
  }
  if (covered != hidden) {
    return absl::FailedPreconditionError(
        absl::StrCat("the shards cover ", covered, " of ", hidden, " hidden neurons"));
  }
  const int k = std::min(5, classes);
  TopKAccumulator<float> acc(n, k);
  Eigen::MatrixXf w, scores;
  for (int c0 = 0; c0 < classes; c0 += class_block) {
    const int nb = std::min(class_block, classes - c0);
    w.resize(nb, hidden);
    for (size_t m = 0; m < shards.size(); ++m) {
      ASSIGN_OR_RETURN(Eigen::MatrixXf wm, shards[m]->OutputRows(c0, nb));
      if (wm.rows() != nb || wm.cols() != size[m]) {
        return absl::DataLossError(absl::StrCat("shard ", m, " returned output rows ",
                                                wm.rows(), "x", wm.cols(), ", expected ", nb,
                                                "x", size[m]));
      }
      w.middleCols(begin[m], size[m]) = wm;
    }
    scores.resize(nb, n);
    scores.noalias() = w * a;
    if (config.engine.output_batchnorm) {
      const float eps = static_cast<float>(config.model.bn_epsilon);
      for (int64_t start = 0; start < n;) {
        int64_t end = std::min(n, start + eval_batch);
        if (n - end < eval_batch) end = n;
        auto blk = scores.middleCols(start, end - start);
        const Eigen::VectorXf mean = blk.rowwise().mean();
        blk.colwise() -= mean;
        const Eigen::VectorXf inv =
            ((blk.array().square().rowwise().sum() / float(end - start)) + eps).rsqrt().matrix();
        blk.array().colwise() *= inv.array();
        start = end;
      }
    }
    acc.AddBlock(c0, scores);
  }
  PrecisionAtK metric;
  metric.Add(test, acc.top(), k);
  return metric.Result();
}

}  // namespace ist
