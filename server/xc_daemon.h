// What the partitioned extreme-classification daemons (ist_shard,
// ist_xc_coordinator) share beyond common/daemon: the flags they read alike
// (the model's shape, the evaluation set) and their gRPC server. Errors name
// the flag, ready for ist::Program::Fail.
#ifndef IST_SERVER_XC_DAEMON_H_
#define IST_SERVER_XC_DAEMON_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/daemon/bootstrap.h"
#include "common/data/dataset.h"
#include "common/model/mlp_model.h"

namespace ist {

// Sets model->layer_sizes from --layers ("features-hidden-classes").
// InvalidArgument "--layers is required" when empty, or "--layers: ..."
// when ParseLayerSizes refuses it.
absl::Status ParseXcLayersFlag(const std::string& layers, MlpConfig* model);

// Reads the LIBSVM file --test_data names, shaped for `model` (its inputs
// and outputs); `zero_based` from --zero_based. The reader's error, prefixed
// "--test_data: ".
absl::StatusOr<std::shared_ptr<const SparseDataset>> ReadXcTestDataFlag(
    const std::string& path, bool zero_based, const MlpConfig& model);

// Serves `service` (not owned; must outlive the server) on `listen`
// (HOST:PORT, port 0 picks one) without TLS, with the message limits and
// keepalive policy of ConfigureXcServer. Unavailable "cannot listen on
// LISTEN" if nothing was bound.
absl::StatusOr<GrpcServing> StartXcServer(const std::string& listen, grpc::Service* service);

}  // namespace ist

#endif  // IST_SERVER_XC_DAEMON_H_
