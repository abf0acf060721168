// The agent's HTTP endpoint: /metrics, /healthz, /readyz (cpp-httplib 0.11, Debian).
//
// Contract:
//   * The constructor binds and listens before it returns, so port() is connectable at
//     once; it then serves on its own threads until Stop() or destruction. `listen` is
//     "host:port", "[v6addr]:port" or ":port" (all IPv4 addresses); port 0 picks a free
//     port. Errors (one line naming the address):
//       - unparsable, or a host that does not resolve: Error(kInvalidArgument);
//       - an address that is not one of this host's: Error(kInvalidArgument);
//       - the port is in use (or any other bind failure): Error(kUnavailable);
//       - a privileged port without the privilege: Error(kPermissionDenied).
//     The socket is bound without SO_REUSEPORT, so a second agent on the same port fails
//     instead of silently sharing it.
//   * Routes: GET and HEAD of
//       /metrics  200, Content-Type "text/plain; version=0.0.4; charset=utf-8", body from
//                 handlers.metrics();
//       /healthz  200 "ok\n" (the process is alive and serving);
//       /readyz   200 "ready: <reason>\n" or 503 "not ready: <reason>\n" from handlers.ready().
//     Any other method on those paths: 405 with "Allow: GET, HEAD". Any other path: 404.
//     A handler that throws: 500 with a one-line body "internal error: <what>\n"; the
//     server keeps serving. Missing handlers (empty std::function) count as throwing.
//   * Resources (the idle agent must stay small): one accept thread plus a fixed pool of
//     2 worker threads; no keep-alive (one request per connection, so a scraper cannot
//     hold a worker idle); a connection that sends no request within 2 s is closed; read
//     and write timeouts of 5 s; request bodies over 8 KiB are refused (413); request
//     line and headers are limited by cpp-httplib (8 KiB; a longer URI gets 414).
//   * Handlers run on the worker threads, up to two at a time: they must be thread-safe.
//   * Stop() is idempotent and waits for the threads; the destructor calls it.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>

namespace httplib {
class Server;
}

namespace etcdsafe::agent {

class HttpServer {
 public:
  struct Handlers {
    std::function<std::string()> metrics;                 // body of /metrics
    std::function<std::pair<bool, std::string>()> ready;  // /readyz: ok? and a one-line reason
  };

  HttpServer(const std::string& listen, Handlers handlers);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }
  // The host part as bound ("127.0.0.1", "::1", "0.0.0.0").
  const std::string& host() const { return host_; }
  void Stop();

 private:
  Handlers handlers_;
  std::string host_;
  int port_ = 0;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace etcdsafe::agent
