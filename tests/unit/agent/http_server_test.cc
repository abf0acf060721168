// Tests for agent/http_server.h over real sockets (libcurl and raw TCP on 127.0.0.1), and
// a real Prometheus server (/usr/bin/prometheus) scraping it.
#include "agent/http_server.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <thread>

#include "agent/metrics.h"
#include "base/error.h"
#include "prometheus_util.h"

namespace etcdsafe::agent {
namespace {

using testing::HttpRequest;
using testing::HttpResult;
using testing::PrometheusServer;
using testing::WaitFor;

std::string Url(const HttpServer& s, const std::string& path) {
  return "http://127.0.0.1:" + std::to_string(s.port()) + path;
}

int CountThreads() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/task");
  if (d == nullptr) return -1;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n;
}

// A listening TCP socket on 127.0.0.1 (no SO_REUSEPORT), closed on destruction.
struct Listener {
  int fd = -1;
  int port = 0;
  Listener() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(fd, 4) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("listener setup failed");
    }
    port = ntohs(a.sin_port);
  }
  ~Listener() { ::close(fd); }
};

int Connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

void ExpectError(const std::string& listen, ErrorCode code, const std::string& needle) {
  try {
    HttpServer s(listen, {});
    ADD_FAILURE() << listen << ": no error, bound port " << s.port();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << listen << ": " << e.what();
    const std::string msg = e.what();
    EXPECT_NE(msg.find("\"" + listen + "\""), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST(HttpServer, ServesEachPath) {
  std::atomic<bool> ready{false};
  std::atomic<int> metrics_calls{0};
  HttpServer::Handlers h;
  h.metrics = [&] {
    metrics_calls++;
    return std::string("# HELP x_g g\n# TYPE x_g gauge\nx_g 1\n");
  };
  h.ready = [&] { return std::make_pair(ready.load(), std::string(ready ? "backup 5m old" : "no backup yet")); };
  HttpServer s("127.0.0.1:0", h);
  ASSERT_GT(s.port(), 0);
  EXPECT_EQ(s.host(), "127.0.0.1");

  HttpResult r = HttpRequest(Url(s, "/metrics"));
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(r.body, "# HELP x_g g\n# TYPE x_g gauge\nx_g 1\n");
  EXPECT_EQ(metrics_calls.load(), 1);

  r = HttpRequest(Url(s, "/metrics"), "HEAD");
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");

  r = HttpRequest(Url(s, "/healthz"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
  EXPECT_EQ(HttpRequest(Url(s, "/healthz"), "HEAD").status, 200);

  r = HttpRequest(Url(s, "/readyz"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "not ready: no backup yet\n");
  ready = true;
  r = HttpRequest(Url(s, "/readyz"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ready: backup 5m old\n");
  EXPECT_EQ(HttpRequest(Url(s, "/readyz"), "HEAD").status, 200);

  r = HttpRequest(Url(s, "/nope"));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body.find("not found: /nope"), 0u) << r.body;
  EXPECT_EQ(HttpRequest(Url(s, "/"), "GET").status, 404);
  EXPECT_EQ(HttpRequest(Url(s, "/metrics/x"), "GET").status, 404);

  for (const char* method : {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
    for (const char* path : {"/metrics", "/healthz", "/readyz"}) {
      r = HttpRequest(Url(s, path), method);
      EXPECT_EQ(r.status, 405) << method << " " << path;
      EXPECT_EQ(r.headers["allow"], "GET, HEAD") << method << " " << path;
    }
  }
  EXPECT_EQ(metrics_calls.load(), 2);  // GET and HEAD only
}

TEST(HttpServer, ThrowingHandlerGives500AndServerKeepsRunning) {
  std::atomic<bool> fail{true};
  HttpServer::Handlers h;
  h.metrics = [&]() -> std::string {
    if (fail) throw std::runtime_error("registry exploded\nsecond line");
    return "x 1\n";
  };
  h.ready = [&]() -> std::pair<bool, std::string> { throw 42; };
  HttpServer s("127.0.0.1:0", h);
  HttpResult r = HttpRequest(Url(s, "/metrics"));
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body, "internal error: registry exploded second line\n");
  r = HttpRequest(Url(s, "/readyz"));
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body, "internal error: unknown exception\n");
  fail = false;
  r = HttpRequest(Url(s, "/metrics"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "x 1\n");
  // Missing handlers count as failures, not crashes.
  HttpServer empty("127.0.0.1:0", {});
  EXPECT_EQ(HttpRequest(Url(empty, "/metrics")).status, 500);
  EXPECT_EQ(HttpRequest(Url(empty, "/readyz")).status, 500);
  EXPECT_EQ(HttpRequest(Url(empty, "/healthz")).status, 200);
}

TEST(HttpServer, BadAddressesAndPortInUse) {
  ExpectError("nonsense", ErrorCode::kInvalidArgument, "host:port");
  ExpectError("127.0.0.1", ErrorCode::kInvalidArgument, "host:port");
  ExpectError("127.0.0.1:", ErrorCode::kInvalidArgument, "port");
  ExpectError("127.0.0.1:abc", ErrorCode::kInvalidArgument, "port");
  ExpectError("127.0.0.1:65536", ErrorCode::kInvalidArgument, "port");
  ExpectError("127.0.0.1:-1", ErrorCode::kInvalidArgument, "port");
  ExpectError("::1:9464", ErrorCode::kInvalidArgument, "brackets");
  ExpectError("[::1:9464", ErrorCode::kInvalidArgument, "[address]:port");
  ExpectError("[]:9464", ErrorCode::kInvalidArgument, "empty");
  ExpectError("192.0.2.1:0", ErrorCode::kInvalidArgument, "not an address of this host");  // TEST-NET-1

  Listener taken;
  ExpectError("127.0.0.1:" + std::to_string(taken.port), ErrorCode::kUnavailable, "in use");
  // Two servers cannot share a port either (no SO_REUSEPORT).
  HttpServer first("127.0.0.1:0", {});
  ExpectError("127.0.0.1:" + std::to_string(first.port()), ErrorCode::kUnavailable, "in use");
  EXPECT_EQ(HttpRequest(Url(first, "/healthz")).status, 200);
  // A fixed port works once free, and localhost resolves.
  const int port = first.port();
  first.Stop();
  HttpServer again("localhost:" + std::to_string(port), {});
  EXPECT_EQ(again.port(), port);
  EXPECT_EQ(HttpRequest(Url(again, "/healthz")).status, 200);
}

TEST(HttpServer, StopIsPromptIdempotentAndClosesThePort) {
  const int before = CountThreads();
  auto start = std::chrono::steady_clock::now();
  {
    HttpServer s("127.0.0.1:0", {});
    // An accept thread and a pool of 2 workers at most.
    EXPECT_LE(CountThreads() - before, 3);
    s.Stop();
    s.Stop();
    EXPECT_EQ(Connect(s.port()), -1);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_EQ(CountThreads(), before);
  // Stopping right after construction (no request ever) does not hang either.
  for (int i = 0; i < 20; ++i) HttpServer s("127.0.0.1:0", {});
  EXPECT_EQ(CountThreads(), before);
}

TEST(HttpServer, LimitsAndTimeouts) {
  HttpServer::Handlers h;
  h.metrics = [] { return std::string(1 << 20, 'x'); };  // big bodies are fine
  HttpServer s("127.0.0.1:0", h);
  HttpResult r = HttpRequest(Url(s, "/metrics"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), size_t{1} << 20);
  // Request bodies are limited.
  r = HttpRequest(Url(s, "/metrics"), "POST", std::string(100 * 1024, 'y'));
  EXPECT_EQ(r.status, 413) << r.error;
  // So are request lines.
  r = HttpRequest(Url(s, "/metrics?" + std::string(20000, 'q')));
  EXPECT_EQ(r.status, 414) << r.error;
  // A client that connects and says nothing is dropped after 2 s.
  const int fd = Connect(s.port());
  ASSERT_GE(fd, 0);
  timeval tv{20, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  const auto start = std::chrono::steady_clock::now();
  char buf[16];
  const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  const auto waited = std::chrono::steady_clock::now() - start;
  ::close(fd);
  EXPECT_EQ(n, 0);  // orderly close by the server
  EXPECT_GE(waited, std::chrono::milliseconds(1500));
  EXPECT_LT(waited, std::chrono::seconds(8));
  // No keep-alive: the server closes after one response.
  r = HttpRequest(Url(s, "/healthz"));
  EXPECT_EQ(r.headers["connection"], "close");
}

TEST(HttpServer, ConcurrentClients) {
  std::atomic<int> calls{0};
  HttpServer::Handlers h;
  h.metrics = [&] {
    calls++;
    return std::string("m 1\n");
  };
  HttpServer s("127.0.0.1:0", h);
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 6; ++t) {
    clients.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        if (HttpRequest(Url(s, "/metrics")).body == "m 1\n") ok++;
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(ok.load(), 150);
  EXPECT_EQ(calls.load(), 150);
}

// A real Prometheus scrapes the server: `up` becomes 1, a gauge's value arrives, a change
// of it is seen, and a stopped server turns `up` to 0.
TEST(HttpServer, RealPrometheusScrapes) {
  Metrics m;
  m.DeclareGauge("etcdsafe_backup_last_success_timestamp_seconds", "Unix time of the last successful backup.");
  m.DeclareCounter("etcdsafe_backup_failures_total", "Failed backups by reason.");
  m.DeclareHistogram("etcdsafe_backup_duration_seconds", "Backup duration.", {1, 10});
  m.Set("etcdsafe_backup_last_success_timestamp_seconds", {{"repo", "file:///b"}}, 1764547200);
  m.Touch("etcdsafe_backup_failures_total", {{"reason", "unreachable"}});
  m.Observe("etcdsafe_backup_duration_seconds", {{"result", "success"}}, 2.5);
  HttpServer::Handlers h;
  h.metrics = [&] { return m.Render(); };
  h.ready = [] { return std::make_pair(true, std::string("fine")); };
  auto server = std::make_unique<HttpServer>("127.0.0.1:0", h);
  PrometheusServer prom("127.0.0.1:" + std::to_string(server->port()));

  const std::string ts = "etcdsafe_backup_last_success_timestamp_seconds{repo=\"file:///b\"}";
  EXPECT_TRUE(WaitFor([&] { return prom.Query("up{job=\"etcdsafe\"}") == 1 && prom.Query(ts) == 1764547200; },
                      std::chrono::seconds(30)))
      << "up=" << prom.Query("up") << " ts=" << prom.Query(ts) << "\n" << prom.Log();
  EXPECT_EQ(prom.Query("etcdsafe_backup_failures_total{reason=\"unreachable\"}"), 0);
  EXPECT_EQ(prom.Query("etcdsafe_backup_duration_seconds_bucket{result=\"success\",le=\"10\"}"), 1);
  EXPECT_EQ(prom.Query("etcdsafe_backup_duration_seconds_sum"), 2.5);

  m.Set("etcdsafe_backup_last_success_timestamp_seconds", {{"repo", "file:///b"}}, 1764550800.5);
  m.Add("etcdsafe_backup_failures_total", {{"reason", "unreachable"}}, 3);
  EXPECT_TRUE(WaitFor([&] { return prom.Query(ts) == 1764550800.5; }, std::chrono::seconds(30)))
      << "ts=" << prom.Query(ts);
  EXPECT_TRUE(WaitFor([&] { return prom.Query("etcdsafe_backup_failures_total{reason=\"unreachable\"}") == 3; },
                      std::chrono::seconds(30)));
  EXPECT_TRUE(std::isnan(prom.Query("etcdsafe_no_such_metric")));

  server.reset();  // the target goes away
  EXPECT_TRUE(WaitFor([&] { return prom.Query("up{job=\"etcdsafe\"}") == 0; }, std::chrono::seconds(30)))
      << "up=" << prom.Query("up");
}

}  // namespace
}  // namespace etcdsafe::agent
