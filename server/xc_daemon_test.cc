#include "server/xc_daemon.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "proto/ist/v1/xc_service.grpc.pb.h"

namespace ist {
namespace {

std::string TmpPath(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

TEST(ParseXcLayersFlagTest, SetsTheLayerSizes) {
  MlpConfig model;
  ASSERT_TRUE(ParseXcLayersFlag("3000-32-500", &model).ok());
  EXPECT_EQ(model.layer_sizes, (std::vector<int>{3000, 32, 500}));
}

TEST(ParseXcLayersFlagTest, ErrorsNameTheFlag) {
  MlpConfig model;
  absl::Status s = ParseXcLayersFlag("", &model);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "--layers is required");
  s = ParseXcLayersFlag("3000-y-500", &model);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(s.message(), "--layers: ")) << s;
}

TEST(ReadXcTestDataFlagTest, ReadsShapedForTheModel) {
  const std::string path = TmpPath("test.txt");
  std::ofstream(path) << "2 10 4\n1,3 0:1 9:0.5\n0 2:1\n";
  MlpConfig model;
  model.layer_sizes = {10, 8, 4};
  auto data = ReadXcTestDataFlag(path, /*zero_based=*/true, model);
  ASSERT_TRUE(data.ok()) << data.status();
  ASSERT_NE(*data, nullptr);
  EXPECT_EQ((*data)->num_samples(), 2);
}

TEST(ReadXcTestDataFlagTest, ErrorNamesTheFlagAndTheFile) {
  MlpConfig model;
  model.layer_sizes = {10, 8, 4};
  const std::string path = TmpPath("missing.txt");
  auto data = ReadXcTestDataFlag(path, true, model);
  ASSERT_FALSE(data.ok());
  EXPECT_TRUE(absl::StartsWith(data.status().message(), "--test_data: ")) << data.status();
  EXPECT_TRUE(absl::StrContains(data.status().message(), "missing.txt")) << data.status();
}

// A service with every method unimplemented: something to serve.
class NoShard final : public v1::XcShardService::Service {};

TEST(StartXcServerTest, PortZeroBindsAFreePort) {
  NoShard service;
  auto serving = StartXcServer("127.0.0.1:0", &service);
  ASSERT_TRUE(serving.ok()) << serving.status();
  EXPECT_GT(serving->port, 0);
  serving->Shutdown(absl::Seconds(1));
}

TEST(StartXcServerTest, BadAddressIsNamed) {
  NoShard service;
  auto serving = StartXcServer("127.0.0.1:nope", &service);
  ASSERT_FALSE(serving.ok());
  EXPECT_EQ(serving.status().message(), "cannot listen on 127.0.0.1:nope");
}

}  // namespace
}  // namespace ist
