// The dashboard's pages, script, style sheet and the vendored plotting
// library (server/dashboard/), compiled into the coordinator so the pages
// load with no network and no files beside the binary.
#ifndef IST_SERVER_DASHBOARD_ASSETS_H_
#define IST_SERVER_DASHBOARD_ASSETS_H_

#include <string_view>

namespace ist {

struct DashboardAsset {
  std::string_view name;          // base name, e.g. "jobs.html", "uPlot.iife.min.js"
  std::string_view content_type;  // from the extension
  std::string_view body;
};

// The asset named `name`, or null. The returned object lives as long as
// the program.
const DashboardAsset* FindDashboardAsset(std::string_view name);

}  // namespace ist

#endif  // IST_SERVER_DASHBOARD_ASSETS_H_
