#include "common/wire/http_server.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "httplib.h"

namespace ist {
namespace {

constexpr size_t kMaxRequestBodyBytes = 64 << 10;
constexpr time_t kTimeoutSeconds = 5;

// SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, which would
// let a second daemon bind the same port silently.
void ReuseAddressOnly(int sock) {
  const int one = 1;
  ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              HttpHandler handler) {
  const std::string& address = options.address;
  const size_t colon = address.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("address '", address, "' is not HOST:PORT"));
  }
  std::string host = address.substr(0, colon);
  if (host == "localhost") host = "127.0.0.1";
  if (host.empty()) host = "0.0.0.0";
  in_addr parsed{};
  if (::inet_pton(AF_INET, host.c_str(), &parsed) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("address '", address, "': host must be a numeric IPv4 address"));
  }

  const bool tls = !options.tls_cert.empty() || !options.tls_key.empty();
  std::unique_ptr<httplib::Server> server;
  if (tls) {
    if (options.tls_cert.empty() || options.tls_key.empty()) {
      return absl::InvalidArgumentError("HTTPS needs both a certificate and a key");
    }
    server = std::make_unique<httplib::SSLServer>(
        options.tls_cert.c_str(), options.tls_key.c_str(),
        options.tls_ca.empty() ? nullptr : options.tls_ca.c_str());
    if (!server->is_valid()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot serve HTTPS with certificate ", options.tls_cert, " and key ",
          options.tls_key, options.tls_ca.empty() ? "" : " and client CA ", options.tls_ca));
    }
  } else {
    server = std::make_unique<httplib::Server>();
  }
  const int threads = options.threads < 1 ? 1 : options.threads;
  server->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server->set_address_family(AF_INET);
  server->set_socket_options(ReuseAddressOnly);
  server->set_payload_max_length(kMaxRequestBodyBytes);
  server->set_read_timeout(kTimeoutSeconds);
  server->set_write_timeout(kTimeoutSeconds);
  server->set_keep_alive_timeout(kTimeoutSeconds);
  const bool allow_post = options.allow_post;
  server->set_pre_routing_handler([allow_post](const httplib::Request& req,
                                               httplib::Response& res) {
    if (req.method == "GET" || req.method == "HEAD" || (allow_post && req.method == "POST")) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    res.status = 405;
    res.set_header("Allow", allow_post ? "GET, HEAD, POST" : "GET, HEAD");
    res.set_content(allow_post ? "only GET, HEAD and POST are served\n"
                               : "only GET and HEAD are served\n",
                    "text/plain; charset=utf-8");
    return httplib::Server::HandlerResponse::Handled;
  });
  auto serve = [handler = std::move(handler)](const httplib::Request& req,
                                              httplib::Response& res) {
    HttpRequest request;
    request.method = req.method;
    request.path = req.path;
    request.params.insert(req.params.begin(), req.params.end());
    request.authorization = req.get_header_value("Authorization");
    request.action = req.get_header_value("X-Ist-Action");
    HttpResponse response = handler(request);
    res.status = response.status;
    for (const auto& [name, value] : response.headers) res.set_header(name, value);
    res.set_content(std::move(response.body), response.content_type.c_str());
  };
  server->Get(".*", serve);
  if (allow_post) server->Post(".*", serve);

  int bound = port;
  if (port == 0) {
    bound = server->bind_to_any_port(host);
  } else if (!server->bind_to_port(host, port)) {
    bound = -1;
  }
  if (bound <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot bind ", address));
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(server), bound, tls));
}

HttpServer::HttpServer(std::unique_ptr<httplib::Server> server, int port, bool tls)
    : server_(std::move(server)), port_(port), tls_(tls) {
  thread_ = std::thread([this] { server_->listen_after_bind(); });
}

HttpServer::~HttpServer() {
  // stop() only acts on a server that has begun listening: wait (bounded)
  // until the serving thread got there.
  for (int i = 0; i < 5000 && !server_->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  server_->stop();
  thread_.join();
}

}  // namespace ist
