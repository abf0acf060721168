#include "agent/http_server.h"

#include <httplib.h>
#include <netdb.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>

#include "base/error.h"

namespace etcdsafe::agent {
namespace {

constexpr int kWorkerThreads = 2;
constexpr time_t kTimeoutSeconds = 5;
constexpr time_t kIdleSeconds = 2;
constexpr size_t kMaxBodyBytes = 8 * 1024;
constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

struct HostPort {
  std::string host;
  int port = 0;
};

HostPort ParseListen(const std::string& listen) {
  auto bad = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument, "http listen address \"" + listen + "\": " + why);
  };
  HostPort hp;
  std::string port_text;
  if (!listen.empty() && listen[0] == '[') {
    const size_t close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      throw bad("expected [address]:port");
    }
    hp.host = listen.substr(1, close - 1);
    port_text = listen.substr(close + 2);
    if (hp.host.empty()) throw bad("empty address in brackets");
  } else {
    const size_t colon = listen.rfind(':');
    if (colon == std::string::npos) throw bad("expected host:port");
    hp.host = listen.substr(0, colon);
    port_text = listen.substr(colon + 1);
    if (hp.host.find(':') != std::string::npos) throw bad("an IPv6 address must be written in brackets, [addr]:port");
    if (hp.host.empty()) hp.host = "0.0.0.0";
  }
  if (port_text.empty() || port_text.size() > 5 || port_text.find_first_not_of("0123456789") != std::string::npos) {
    throw bad("port must be a number from 0 to 65535");
  }
  hp.port = std::stoi(port_text);
  if (hp.port > 65535) throw bad("port must be a number from 0 to 65535");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  const int rc = ::getaddrinfo(hp.host.c_str(), nullptr, &hints, &res);
  if (rc != 0) throw bad(std::string("cannot resolve host: ") + ::gai_strerror(rc));
  ::freeaddrinfo(res);
  return hp;
}

void OneLine(httplib::Response& res, int status, std::string body) {
  for (char& c : body) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  res.status = status;
  res.set_content(body + "\n", "text/plain; charset=utf-8");
}

// Runs a route's body; an exception (or a missing handler) becomes a 500.
void Guarded(httplib::Response& res, const std::function<void()>& body) {
  try {
    body();
  } catch (const std::exception& e) {
    OneLine(res, 500, std::string("internal error: ") + e.what());
  } catch (...) {
    OneLine(res, 500, "internal error: unknown exception");
  }
}

}  // namespace

HttpServer::HttpServer(const std::string& listen, Handlers handlers) : handlers_(std::move(handlers)) {
  const HostPort hp = ParseListen(listen);
  host_ = hp.host;
  server_ = std::make_unique<httplib::Server>();
  httplib::Server& svr = *server_;
  svr.new_task_queue = [] { return new httplib::ThreadPool(kWorkerThreads); };
  // SO_REUSEADDR (restart while old connections are in TIME_WAIT) but not cpp-httplib's
  // default SO_REUSEPORT, which would let two agents share one port.
  svr.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  svr.set_read_timeout(kTimeoutSeconds, 0);
  svr.set_write_timeout(kTimeoutSeconds, 0);
  svr.set_keep_alive_max_count(1);
  svr.set_keep_alive_timeout(kIdleSeconds);  // also the wait for a connection's first request
  svr.set_payload_max_length(kMaxBodyBytes);

  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    Guarded(res, [&] {
      if (!handlers_.metrics) throw std::runtime_error("no metrics handler");
      res.status = 200;
      res.set_content(handlers_.metrics(), kMetricsContentType);
    });
  });
  svr.Get("/healthz", [](const httplib::Request&, httplib::Response& res) { OneLine(res, 200, "ok"); });
  svr.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    Guarded(res, [&] {
      if (!handlers_.ready) throw std::runtime_error("no readiness handler");
      auto [ok, reason] = handlers_.ready();
      OneLine(res, ok ? 200 : 503, (ok ? "ready: " : "not ready: ") + reason);
    });
  });
  const auto not_allowed = [](const httplib::Request& req, httplib::Response& res) {
    OneLine(res, 405, "method " + req.method + " not allowed on " + req.path + " (use GET or HEAD)");
    res.set_header("Allow", "GET, HEAD");
  };
  for (const char* path : {"/metrics", "/healthz", "/readyz"}) {
    svr.Post(path, not_allowed);
    svr.Put(path, not_allowed);
    svr.Patch(path, not_allowed);
    svr.Delete(path, not_allowed);
    svr.Options(path, not_allowed);
  }
  svr.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request& req, httplib::Response& res) -> httplib::Server::HandlerResponse {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (res.status == 404) {
      OneLine(res, 404, "not found: " + req.path + " (try /metrics, /healthz, /readyz)");
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  }));
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    try {
      if (ep) std::rethrow_exception(ep);
      OneLine(res, 500, "internal error");
    } catch (const std::exception& e) {
      OneLine(res, 500, std::string("internal error: ") + e.what());
    } catch (...) {
      OneLine(res, 500, "internal error: unknown exception");
    }
  });

  errno = 0;
  bool bound;
  if (hp.port == 0) {
    port_ = svr.bind_to_any_port(hp.host);
    bound = port_ > 0;
  } else {
    port_ = hp.port;
    bound = svr.bind_to_port(hp.host, hp.port);
  }
  if (!bound) {
    const int err = errno;
    const std::string what = "http listen address \"" + listen + "\": cannot listen";
    if (err == EADDRNOTAVAIL) throw Error(ErrorCode::kInvalidArgument, what + ": not an address of this host");
    if (err == EACCES || err == EPERM) throw Error(ErrorCode::kPermissionDenied, what + ": " + std::strerror(err));
    throw Error(ErrorCode::kUnavailable, what + ": " + (err != 0 ? std::strerror(err) : "bind failed"));
  }

  auto done = std::make_shared<std::atomic<bool>>(false);
  thread_ = std::thread([this, done] {
    server_->listen_after_bind();
    done->store(true);
  });
  // httplib's stop() only works once its loop runs (listen_after_bind sets is_running
  // first thing): wait for it so that a Stop() right after construction is not lost.
  while (!server_->is_running() && !done->load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (!server_->is_running()) {
    thread_.join();
    throw Error(ErrorCode::kInternal, "http listen address \"" + listen + "\": the server loop ended at once");
  }
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace etcdsafe::agent
