#include "server/xc_daemon.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/daemon/program.h"
#include "common/data/libsvm_reader.h"
#include "common/store/xc_shard_client.h"

namespace ist {

absl::Status ParseXcLayersFlag(const std::string& layers, MlpConfig* model) {
  if (layers.empty()) return absl::InvalidArgumentError("--layers is required");
  return AsFlagError(ParseLayerSizes(layers, &model->layer_sizes));
}

absl::StatusOr<std::shared_ptr<const SparseDataset>> ReadXcTestDataFlag(
    const std::string& path, bool zero_based, const MlpConfig& model) {
  LibsvmOptions read;
  read.zero_based = zero_based;
  read.num_features = model.inputs();
  read.num_classes = model.outputs();
  absl::StatusOr<SparseDataset> data = ReadLibsvmDataset(path, read);
  if (!data.ok()) {
    return absl::Status(data.status().code(),
                        absl::StrCat("--test_data: ", data.status().message()));
  }
  return std::make_shared<const SparseDataset>(std::move(*data));
}

absl::StatusOr<GrpcServing> StartXcServer(const std::string& listen, grpc::Service* service) {
  GrpcServerSpec spec;
  spec.listen = listen;
  spec.services = {service};
  spec.configure = ConfigureXcServer;
  return StartGrpcServer(spec);
}

}  // namespace ist
