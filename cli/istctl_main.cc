// istctl: command-line client of the coordinator's job API. See
// cli/istctl_lib.h for the commands, output formats and exit codes, or run
// `istctl --help`.
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "cli/istctl_lib.h"
#include "glog/logging.h"

int main(int argc, char** argv) {
  google::InitGoogleLogging(argv[0]);
  const std::vector<std::string> args(argv + 1, argv + argc);
  const absl::StatusOr<ist::cli::Invocation> invocation =
      ist::cli::ParseCommandLine(args);
  if (!invocation.ok()) {
    std::cerr << "istctl: " << invocation.status().message() << "\n\n"
              << ist::cli::Usage();
    return ist::cli::kExitUsage;
  }
  if (invocation->command == "help") {
    std::cout << ist::cli::Usage();
    return ist::cli::kExitOk;
  }
  const auto channel =
      ist::cli::MakeChannel(invocation->global.coordinator, invocation->global.security);
  if (!channel.ok()) {
    std::cerr << "istctl: " << channel.status().message() << "\n";
    return ist::cli::kExitUsage;
  }
  const auto stub = ist::v1::JobService::NewStub(*channel);
  return ist::cli::RunCommand(*invocation, stub.get(), std::cout, std::cerr,
                              /*live=*/isatty(STDOUT_FILENO) == 1);
}
