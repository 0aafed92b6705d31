// A small HTTP(S) server for the daemons' pages: Prometheus scrapes
// (metrics_server.h) and the coordinator's dashboard. It runs cpp-httplib
// (Debian's libcpp-httplib) and hands every request to one handler function
// that sees only plain structs, so what a page answers can be tested
// without a network.
//
// Limits: GET and HEAD are served, POST only with `allow_post` (else, and
// for any other method, 405); request bodies are capped at 64 KiB; each
// connection has 5 s read and write timeouts; at most `threads` requests are
// handled at once.
//
// Thread-safe: the handler is called from the server's threads, several at
// once; it must be thread-safe itself.
#ifndef IST_COMMON_WIRE_HTTP_SERVER_H_
#define IST_COMMON_WIRE_HTTP_SERVER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace httplib {
class Server;
}

namespace ist {

struct HttpRequest {
  std::string method = "GET";                 // "GET", "HEAD" or "POST"
  std::string path;                           // without the query, e.g. "/api/jobs"
  std::multimap<std::string, std::string> params;  // decoded query parameters
  std::string authorization;                  // the Authorization header, or ""
  // The X-Ist-Action header, or "". A browser sends a custom header to
  // another origin only after a CORS preflight this server never grants,
  // so a handler that requires it on POST is safe from cross-site forms.
  std::string action;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  // Extra headers, e.g. {"Cache-Control", "no-store"}.
  std::multimap<std::string, std::string> headers;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpServerOptions {
  // "HOST:PORT": a numeric IPv4 host, "localhost" (127.0.0.1) or empty (all
  // interfaces); port 0 picks a free one.
  std::string address;
  // HTTPS when both are set (PEM files); with `tls_ca` too, clients must
  // present a certificate signed by it.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  int threads = 2;
  // Hand POST requests to the handler too (their body is not read).
  bool allow_post = false;
};

class HttpServer {
 public:
  // Binds `options.address` and serves `handler` on a thread of its own
  // until destroyed. InvalidArgument naming the address if it is malformed,
  // InvalidArgument naming the files if TLS cannot be set up with them,
  // Unavailable if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                           HttpHandler handler);
  // Stops accepting, finishes the requests in progress, joins the threads.
  ~HttpServer();

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }
  bool tls() const { return tls_; }

 private:
  HttpServer(std::unique_ptr<httplib::Server> server, int port, bool tls);

  std::unique_ptr<httplib::Server> server_;
  const int port_;
  const bool tls_;
  std::thread thread_;
};

}  // namespace ist

#endif  // IST_COMMON_WIRE_HTTP_SERVER_H_
