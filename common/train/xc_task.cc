#include "common/train/xc_task.h"

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/ist/xc_partition.h"

namespace ist {

IstTrainingConfig XcJobConfig::AsIst() const {
  IstTrainingConfig c;
  c.mode = TrainingMode::kIst;
  c.model = model;
  c.num_subnets = num_subnets;
  c.local_steps = local_steps;
  c.batch_size = batch_size;
  c.sgd.learning_rate = learning_rate;
  c.seed = seed;
  return c;
}

absl::Status ValidateXcJobConfig(const XcJobConfig& config) {
  absl::Status s = ValidateSparseModel(config.model, config.engine);
  if (!s.ok()) return s;
  if (config.num_subnets < 1 || config.num_subnets > config.model.layer_sizes[1]) {
    return absl::InvalidArgumentError(absl::StrCat(
        "subnets: must be in [1, hidden = ", config.model.layer_sizes[1], "], got ",
        config.num_subnets));
  }
  if (config.local_steps < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("local_steps: must be >= 1, got ", config.local_steps));
  }
  if (config.batch_size < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch: must be >= 2 (BatchNorm), got ", config.batch_size));
  }
  if (!(config.learning_rate > 0) || !(config.learning_rate < 1e3f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("lr: must be in (0, 1000), got ", config.learning_rate));
  }
  return absl::OkStatus();
}

absl::StatusOr<XcTrainResult> RunXcSubnetTask(const XcJobConfig& config,
                                              const MlpConfig& subnet_config,
                                              const SparseDataset& train,
                                              const JobShards& shards,
                                              int64_t round, int subnet,
                                              MlpParams<float>* slice) {
  if (subnet < 0 || subnet >= shards.num_shards()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "subnet ", subnet, " is not in [0, ", shards.num_shards(), ")"));
  }
  SparseMlpEngine<float> engine(subnet_config, config.engine);
  return TrainXcLocally(&engine, train, shards.batcher(subnet),
                        round * config.local_steps, config.local_steps,
                        config.learning_rate, slice);
}

absl::StatusOr<XcTrainResult> RunPartitionedXcTask(
    const XcJobConfig& config, const SparseDataset& train,
    const JobShards& shards_of_data, int64_t round, int subnet, int attempt,
    const std::vector<XcShardApi*>& shards, int64_t* bytes_in,
    int64_t* bytes_out) {
  std::vector<MlpParams<float>> pieces(shards.size());
  std::vector<int> sizes(shards.size());
  for (size_t m = 0; m < shards.size(); ++m) {
    absl::Status s = shards[m]->FetchPiece(round, subnet, &pieces[m]);
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("fetch from shard ", m, ": ", s.message()));
    }
    sizes[m] = pieces[m].gamma.empty() ? 0 : pieces[m].gamma[0].size();
    if (bytes_in != nullptr) *bytes_in += 4 * pieces[m].NumScalars();
  }
  MlpParams<float> subnet_params;
  RETURN_IF_ERROR(AssemblePieces(config.model, pieces, &subnet_params));
  pieces.clear();  // the subnet is the only copy now
  int k = 0;
  for (int s : sizes) k += s;
  if (k < 1) {
    return absl::DataLossError(absl::StrCat("round ", round, " subnet ", subnet,
                                            ": the shards returned no neurons"));
  }
  ASSIGN_OR_RETURN(XcTrainResult result,
                   RunXcSubnetTask(config, PieceConfig(config.model, k), train,
                                   shards_of_data, round, subnet, &subnet_params));
  RETURN_IF_ERROR(SplitIntoPieces(config.model, subnet_params, sizes, &pieces));
  subnet_params = MlpParams<float>();  // the pieces are the only copy now
  for (size_t m = 0; m < shards.size(); ++m) {
    const int64_t bytes = 4 * pieces[m].NumScalars();
    absl::Status s = shards[m]->PushPiece(round, subnet, attempt, std::move(pieces[m]));
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("push to shard ", m, ": ", s.message()));
    }
    if (bytes_out != nullptr) *bytes_out += bytes;
  }
  return result;
}

}  // namespace ist
