#include "common/wire/metrics_server.h"

#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "prometheus/text_serializer.h"

namespace ist {

HttpResponse AnswerMetricsRequest(const std::string& path,
                                  const prometheus::Collectable& metrics) {
  HttpResponse response;
  if (path != "/metrics") {
    response.status = 404;
    response.body = "only /metrics is served\n";
    return response;
  }
  std::ostringstream body;
  prometheus::TextSerializer().Serialize(body, metrics.Collect());
  response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  response.body = body.str();
  return response;
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address, std::shared_ptr<prometheus::Collectable> metrics) {
  HttpServerOptions options;
  options.address = address;
  absl::StatusOr<std::unique_ptr<HttpServer>> http = HttpServer::Start(
      options, [metrics = std::move(metrics)](const HttpRequest& request) {
        return AnswerMetricsRequest(request.path, *metrics);
      });
  if (!http.ok()) {
    return absl::Status(http.status().code(),
                        absl::StrCat("metrics ", http.status().message()));
  }
  return std::unique_ptr<MetricsServer>(new MetricsServer(*std::move(http)));
}

}  // namespace ist
