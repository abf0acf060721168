// Notifier against real HTTP receivers (cpp-httplib servers on 127.0.0.1:0) and a real
// Alertmanager 0.25 started by the test: the bodies of each format, retries on 5xx/429 and
// connection errors, no retry on 4xx, a Send() that never waits for the network, the
// bounded queue, the shutdown grace, and no secret in the log.
#include "agent/notify.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "testutil/process.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::agent {
namespace {

using namespace std::chrono_literals;
using testutil::TempDir;
using Clock = std::chrono::steady_clock;

struct Received {
  std::string path, body, content_type, authorization;
};

// An HTTP receiver on 127.0.0.1:<free port>. `respond` decides each answer from the
// number of requests seen so far (1-based).
class Receiver {
 public:
  using Respond = std::function<void(int n, const httplib::Request&, httplib::Response&)>;

  explicit Receiver(Respond respond = nullptr) : respond_(std::move(respond)) {
    auto handler = [this](const httplib::Request& req, httplib::Response& res) {
      int n;
      {
        std::lock_guard lock(mu_);
        got_.push_back({req.path, req.body, req.get_header_value("Content-Type"),
                        req.get_header_value("Authorization")});
        n = static_cast<int>(got_.size());
        cv_.notify_all();
      }
      res.status = 200;
      if (respond_) respond_(n, req, res);
    };
    svr_.Post(R"(/.*)", handler);
    port_ = svr_.bind_to_any_port("127.0.0.1");
    EXPECT_GT(port_, 0);
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
    // bind_to_any_port has already called listen(2): connections queue until the accept loop runs.
  }
  ~Receiver() {
    svr_.stop();
    thread_.join();
  }
  std::string Url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }
  std::vector<Received> Got() const {
    std::lock_guard lock(mu_);
    return got_;
  }
  bool WaitFor(size_t n, std::chrono::milliseconds limit) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return got_.size() >= n; });
  }

 private:
  Respond respond_;
  httplib::Server svr_;
  int port_ = -1;
  std::thread thread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Received> got_;
};

WebhookConfig Target(const std::string& url, WebhookConfig::Format f = WebhookConfig::Format::kJson) {
  WebhookConfig w;
  w.url = url;
  w.format = f;
  w.timeout = 2000ms;
  w.max_attempts = 5;
  return w;
}

Notification Failure() {
  Notification n;
  n.kind = Notification::Kind::kFailure;
  n.alertname = "EtcdBackupFailed";
  n.job = "backup";
  n.repo = "s3-main";
  n.summary = "backup failed";
  n.description = "etcd 127.0.0.1:2379: connection refused <retrying> & reporting";
  n.starts_at = std::chrono::system_clock::now() - 60s;
  return n;
}

int FreePort() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

std::chrono::system_clock::time_point ParseTime(const std::string& s) {
  struct tm tm {};
  EXPECT_NE(::strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm), nullptr) << s;
  return std::chrono::system_clock::from_time_t(::timegm(&tm));
}

TEST(NotifierTest, BodiesOfEachFormat) {
  Receiver r;
  TempDir dir;
  testutil::WriteFile(dir.Sub("token"), "s3cr3t-token\n");
  std::vector<WebhookConfig> targets = {Target(r.Url("/am/api/v2/alerts"), WebhookConfig::Format::kAlertmanager),
                                        Target(r.Url("/slack"), WebhookConfig::Format::kSlack),
                                        Target(r.Url("/json"), WebhookConfig::Format::kJson)};
  targets[0].bearer_token_file = dir.Sub("token");
  Notifier notifier(targets, nullptr);
  Notification fail = Failure();
  notifier.Send(fail);
  Notification rec = fail;
  rec.kind = Notification::Kind::kRecovery;
  rec.alertname = "EtcdBackupFailed";
  rec.summary = "backup succeeded again";
  notifier.Send(rec);
  Notification stale = fail;
  stale.kind = Notification::Kind::kStale;
  stale.alertname = "EtcdBackupStale";
  stale.severity = "warning";
  stale.ends_at = std::chrono::system_clock::now() + 1h;
  notifier.Send(stale);
  ASSERT_TRUE(notifier.WaitIdle(10s));
  EXPECT_EQ(notifier.stats().delivered, 9u);
  EXPECT_EQ(notifier.stats(r.Url("/slack")).delivered, 3u);
  EXPECT_EQ(notifier.stats("http://nowhere/").delivered, 0u);

  std::map<std::string, std::vector<Received>> by_path;
  for (const auto& g : r.Got()) by_path[g.path].push_back(g);
  ASSERT_EQ(by_path.size(), 3u);
  const auto now = std::chrono::system_clock::now();

  // Alertmanager API v2: an array of alerts.
  const auto& am = by_path["/am/api/v2/alerts"];
  ASSERT_EQ(am.size(), 3u);
  for (const auto& g : am) {
    EXPECT_EQ(g.content_type, "application/json");
    EXPECT_EQ(g.authorization, "Bearer s3cr3t-token");
  }
  auto a0 = nlohmann::json::parse(am[0].body);
  ASSERT_TRUE(a0.is_array());
  ASSERT_EQ(a0.size(), 1u);
  EXPECT_EQ(a0[0]["labels"], nlohmann::json({{"alertname", "EtcdBackupFailed"},
                                             {"job", "backup"},
                                             {"repo", "s3-main"},
                                             {"severity", "critical"},
                                             {"service", "etcdsafe"}}));
  EXPECT_EQ(a0[0]["annotations"]["summary"], "backup failed");
  EXPECT_EQ(a0[0]["annotations"]["description"], fail.description);
  EXPECT_LE(std::chrono::abs(ParseTime(a0[0]["startsAt"]) - fail.starts_at), 1s);
  EXPECT_FALSE(a0[0].contains("endsAt")) << "a firing alert without expiry leaves endsAt to Alertmanager";
  auto a1 = nlohmann::json::parse(am[1].body);
  EXPECT_EQ(a1[0]["labels"], a0[0]["labels"]) << "the recovery must carry the same labels to resolve the alert";
  ASSERT_TRUE(a1[0].contains("endsAt"));
  EXPECT_LE(std::chrono::abs(ParseTime(a1[0]["endsAt"]) - now), 10s);
  auto a2 = nlohmann::json::parse(am[2].body);
  EXPECT_EQ(a2[0]["labels"]["severity"], "warning");
  EXPECT_EQ(a2[0]["labels"]["alertname"], "EtcdBackupStale");
  EXPECT_LE(std::chrono::abs(ParseTime(a2[0]["endsAt"]) - stale.ends_at), 1s);

  // Slack: one "text", an emoji-free header line per kind, &<> escaped.
  const auto& sl = by_path["/slack"];
  ASSERT_EQ(sl.size(), 3u);
  EXPECT_EQ(sl[0].authorization, "");
  std::vector<std::string> headers;
  for (const auto& g : sl) {
    auto j = nlohmann::json::parse(g.body);
    ASSERT_EQ(j.size(), 1u);
    std::string text = j["text"];
    headers.push_back(text.substr(0, text.find('\n')));
    EXPECT_NE(text.find("\netcd 127.0.0.1:2379: connection refused &lt;retrying&gt; &amp; reporting"),
              std::string::npos)
        << text;
    for (unsigned char c : text) EXPECT_LT(c, 0x80) << "non-ASCII (emoji?) in " << text;
  }
  EXPECT_EQ(headers[0], "[FIRING] EtcdBackupFailed: backup failed (job backup, repo s3-main)");
  EXPECT_EQ(headers[1], "[RESOLVED] EtcdBackupFailed: backup succeeded again (job backup, repo s3-main)");
  EXPECT_EQ(headers[2], "[STALE] EtcdBackupStale: backup failed (job backup, repo s3-main)");

  // Plain JSON: every field.
  const auto& js = by_path["/json"];
  ASSERT_EQ(js.size(), 3u);
  auto j0 = nlohmann::json::parse(js[0].body);
  EXPECT_EQ(j0["kind"], "failure");
  EXPECT_EQ(j0["status"], "firing");
  EXPECT_EQ(j0["alertname"], "EtcdBackupFailed");
  EXPECT_EQ(j0["job"], "backup");
  EXPECT_EQ(j0["repo"], "s3-main");
  EXPECT_EQ(j0["severity"], "critical");
  EXPECT_EQ(j0["service"], "etcdsafe");
  EXPECT_EQ(j0["summary"], "backup failed");
  EXPECT_EQ(j0["description"], fail.description);
  EXPECT_TRUE(j0.contains("starts_at"));
  auto j1 = nlohmann::json::parse(js[1].body);
  EXPECT_EQ(j1["kind"], "recovery");
  EXPECT_EQ(j1["status"], "resolved");
  EXPECT_TRUE(j1.contains("ends_at"));
  EXPECT_EQ(nlohmann::json::parse(js[2].body)["kind"], "stale");
}

TEST(NotifierTest, PayloadTextIsRedacted) {
  Notification n = Failure();
  n.repo = "s3://AKIA:wJalrSecret@bucket/prefix";
  n.description = "PUT https://bucket.s3/x?X-Amz-Signature=feedface: 500";
  for (auto f : {WebhookConfig::Format::kAlertmanager, WebhookConfig::Format::kSlack, WebhookConfig::Format::kJson}) {
    std::string body = RenderNotification(n, f, std::chrono::system_clock::now());
    EXPECT_EQ(body.find("wJalrSecret"), std::string::npos) << body;
    EXPECT_EQ(body.find("feedface"), std::string::npos) << body;
    EXPECT_NO_THROW(nlohmann::json::parse(body));
  }
}

TEST(NotifierTest, RetriesFiveHundredsWithBackoffUntilDelivered) {
  Receiver r([](int n, const httplib::Request&, httplib::Response& res) { res.status = n <= 2 ? 500 : 200; });
  Notifier notifier({Target(r.Url("/hook"))}, nullptr);  // default backoff: 1 s, then 2 s
  const auto start = Clock::now();
  notifier.Send(Failure());
  ASSERT_TRUE(notifier.WaitIdle(20s));
  const auto took = Clock::now() - start;
  Notifier::Stats s = notifier.stats();
  EXPECT_EQ(s.delivered, 1u);
  EXPECT_EQ(s.failed, 0u);
  EXPECT_EQ(s.attempts, 3u);
  EXPECT_EQ(r.Got().size(), 3u);
  EXPECT_GE(took, 3s) << "backoff 1 s + 2 s";
  EXPECT_LT(took, 8s);
}

TEST(NotifierTest, TooManyRequestsIsRetriedAfterRetryAfter) {
  Receiver r([](int n, const httplib::Request&, httplib::Response& res) {
    if (n == 1) {
      res.status = 429;
      res.set_header("Retry-After", "1");
    }
  });
  NotifierOptions o;
  o.initial_backoff = 10ms;
  Notifier notifier({Target(r.Url("/hook"))}, nullptr, o);
  const auto start = Clock::now();
  notifier.Send(Failure());
  ASSERT_TRUE(notifier.WaitIdle(10s));
  EXPECT_EQ(notifier.stats().delivered, 1u);
  EXPECT_EQ(notifier.stats().attempts, 2u);
  EXPECT_GE(Clock::now() - start, 1s) << "Retry-After: 1 honoured";
}

TEST(NotifierTest, ClientErrorFailsAtOnce) {
  Receiver r([](int, const httplib::Request&, httplib::Response& res) {
    res.status = 400;
    res.set_content("bad alert", "text/plain");
  });
  TempDir dir;
  int fd = ::open(dir.Sub("log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  EventLog log(LogFormat::kJson, fd);
  Notifier notifier({Target(r.Url("/hook"))}, &log);
  notifier.Send(Failure());
  ASSERT_TRUE(notifier.WaitIdle(10s));
  Notifier::Stats s = notifier.stats();
  EXPECT_EQ(s.delivered, 0u);
  EXPECT_EQ(s.failed, 1u);
  EXPECT_EQ(s.attempts, 1u);
  EXPECT_EQ(r.Got().size(), 1u);
  ::close(fd);
  std::string logged = testutil::ReadFile(dir.Sub("log"));
  auto j = nlohmann::json::parse(logged.substr(0, logged.find('\n')));
  EXPECT_EQ(j["event"], "notify.failed");
  EXPECT_EQ(j["level"], "error");
  EXPECT_EQ(j["status"], 400);
  EXPECT_EQ(j["attempts"], 1);
  EXPECT_NE(j["error"].get<std::string>().find("bad alert"), std::string::npos);
}

TEST(NotifierTest, ConnectionErrorsAreRetriedThenFailAndTheLogHasNoSecret) {
  const int port = FreePort();  // nobody listens: connection refused
  TempDir dir;
  testutil::WriteFile(dir.Sub("token"), "tok-NEVER-LOGGED");
  int fd = ::open(dir.Sub("log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  EventLog log(LogFormat::kText, fd);
  NotifierOptions o;
  o.initial_backoff = 20ms;
  WebhookConfig w = Target("http://user:pa55word@127.0.0.1:" + std::to_string(port) + "/services/T0/B0/hooksecret?token=qsecret");
  w.max_attempts = 3;
  w.bearer_token_file = dir.Sub("token");
  {
    Notifier notifier({w}, &log, o);
    notifier.Send(Failure());
    ASSERT_TRUE(notifier.WaitIdle(10s));
    Notifier::Stats s = notifier.stats();
    EXPECT_EQ(s.failed, 1u);
    EXPECT_EQ(s.attempts, 3u);
    EXPECT_EQ(notifier.stats(w.url).failed, 1u);
  }
  ::close(fd);
  std::string logged = testutil::ReadFile(dir.Sub("log"));
  EXPECT_NE(logged.find("notify.retry"), std::string::npos) << logged;
  EXPECT_NE(logged.find("notify.failed"), std::string::npos) << logged;
  EXPECT_NE(logged.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << logged;
  for (const char* secret : {"pa55word", "qsecret", "tok-NEVER-LOGGED"}) {
    EXPECT_EQ(logged.find(secret), std::string::npos) << secret << " in\n" << logged;
  }
}

// A receiver that accepts the request and never answers until released.
class HangingReceiver {
 public:
  HangingReceiver()
      : r_([this](int, const httplib::Request&, httplib::Response&) {
          std::unique_lock lock(mu_);
          cv_.wait(lock, [&] { return released_; });
        }) {}
  ~HangingReceiver() { Release(); }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  Receiver& receiver() { return r_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool released_ = false;
  Receiver r_;  // last: destroyed first, after Release() has freed its handlers
};

TEST(NotifierTest, SendNeverBlocksOnAHangingReceiverAndTheQueueIsBounded) {
  HangingReceiver h;
  WebhookConfig w = Target(h.receiver().Url("/hook"));
  w.timeout = 30000ms;
  NotifierOptions o;
  o.queue_capacity = 3;
  auto notifier = std::make_unique<Notifier>(std::vector<WebhookConfig>{w}, nullptr, o);
  notifier->Send(Failure());
  ASSERT_TRUE(h.receiver().WaitFor(1, 5s));  // the first one is in flight, hanging
  for (int i = 0; i < 10; i++) {
    const auto start = Clock::now();
    notifier->Send(Failure());
    EXPECT_LT(Clock::now() - start, 50ms);
  }
  EXPECT_FALSE(notifier->WaitIdle(200ms));
  EXPECT_EQ(notifier->stats().dropped, 7u);  // 10 queued behind the hanging one, room for 3
  // Shutdown gives in-flight deliveries about 2 s, then aborts: it must not wait for the
  // 30 s timeout.
  const auto start = Clock::now();
  notifier.reset();
  const auto took = Clock::now() - start;
  EXPECT_GE(took, 1500ms);
  EXPECT_LT(took, 3500ms);
}

TEST(NotifierTest, ShutdownDeliversWhatIsQueuedWithinTheGrace) {
  Receiver r;
  auto notifier = std::make_unique<Notifier>(std::vector<WebhookConfig>{Target(r.Url("/a")), Target(r.Url("/b"))},
                                             nullptr);
  for (int i = 0; i < 5; i++) notifier->Send(Failure());
  const auto start = Clock::now();
  notifier.reset();
  EXPECT_LT(Clock::now() - start, 2500ms);
  EXPECT_EQ(r.Got().size(), 10u);
}

TEST(NotifierTest, TimeoutCountsAsAFailedAttempt) {
  HangingReceiver h;
  WebhookConfig w = Target(h.receiver().Url("/hook"));
  w.timeout = 300ms;
  w.max_attempts = 2;
  NotifierOptions o;
  o.initial_backoff = 10ms;
  Notifier notifier({w}, nullptr, o);
  notifier.Send(Failure());
  ASSERT_TRUE(notifier.WaitIdle(5s));
  EXPECT_EQ(notifier.stats().failed, 1u);
  EXPECT_EQ(notifier.stats().attempts, 2u);
  h.Release();
}

// --- A real Alertmanager -----------------------------------------------------------------

constexpr const char* kAlertmanager = "/usr/bin/prometheus-alertmanager";

class Alertmanager {
 public:
  Alertmanager() {
    testutil::WriteFile(dir_.Sub("alertmanager.yml"),
                        "route:\n"
                        "  receiver: \"null\"\n"
                        "  group_wait: 1s\n"
                        "receivers:\n"
                        "  - name: \"null\"\n");
    // A free port can be taken between FreePort() and the bind: try a few.
    for (int tries = 0; tries < 5 && !ready_; tries++) {
      port_ = FreePort();
      pid_ = testutil::SpawnLogged({kAlertmanager, "--config.file=" + dir_.Sub("alertmanager.yml"),
                                    "--storage.path=" + dir_.Sub("data"), "--cluster.listen-address=",
                                    "--web.listen-address=127.0.0.1:" + std::to_string(port_), "--log.level=debug"},
                                   {}, dir_.Sub("alertmanager.log"));
      httplib::Client c("127.0.0.1", port_);
      for (int i = 0; i < 100; i++) {
        auto res = c.Get("/-/ready");
        if (res && res->status == 200) {
          ready_ = true;
          break;
        }
        int status;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
          pid_ = -1;
          break;
        }
        std::this_thread::sleep_for(100ms);
      }
      if (!ready_) Stop();
    }
  }
  ~Alertmanager() { Stop(); }
  bool ready() const { return ready_; }
  int port() const { return port_; }
  std::string Log() const { return testutil::ReadFile(dir_.Sub("alertmanager.log")); }

  // Active alerts, as GET /api/v2/alerts returns them.
  nlohmann::json Alerts() const {
    httplib::Client c("127.0.0.1", port_);
    auto res = c.Get("/api/v2/alerts");
    if (!res || res->status != 200) {
      ADD_FAILURE() << "GET /api/v2/alerts failed";  // an unanswered query must not look like "resolved"
      return nlohmann::json::array();
    }
    return nlohmann::json::parse(res->body);
  }

 private:
  void Stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
    }
  }
  TempDir dir_;
  pid_t pid_ = -1;
  int port_ = 0;
  bool ready_ = false;
};

nlohmann::json FindAlert(const nlohmann::json& alerts, const std::string& repo) {
  for (const auto& a : alerts) {
    if (a["labels"].value("alertname", "") == "EtcdBackupFailed" && a["labels"].value("repo", "") == repo) return a;
  }
  return nullptr;
}

TEST(NotifierAlertmanagerTest, RealAlertmanagerFiresAndResolves) {
  ASSERT_EQ(::access(kAlertmanager, X_OK), 0) << kAlertmanager << " missing: apt-get install prometheus-alertmanager";
  Alertmanager am;
  ASSERT_TRUE(am.ready()) << am.Log();
  const std::string repo = "repo-" + std::to_string(::getpid());
  WebhookConfig w = Target("http://127.0.0.1:" + std::to_string(am.port()) + "/api/v2/alerts",
                           WebhookConfig::Format::kAlertmanager);
  Notifier notifier({w}, nullptr);

  Notification fail = Failure();
  fail.repo = repo;
  fail.generator_url = "http://127.0.0.1:9464/metrics";
  notifier.Send(fail);
  ASSERT_TRUE(notifier.WaitIdle(10s));
  ASSERT_EQ(notifier.stats().delivered, 1u) << am.Log();

  nlohmann::json alert;
  for (int i = 0; i < 100 && (alert.is_null() || alert["status"]["state"] != "active"); i++) {
    alert = FindAlert(am.Alerts(), repo);
    if (alert.is_null() || alert["status"]["state"] != "active") std::this_thread::sleep_for(200ms);
  }
  ASSERT_FALSE(alert.is_null()) << am.Alerts().dump() << "\n" << am.Log();
  EXPECT_EQ(alert["status"]["state"], "active") << alert.dump();
  EXPECT_EQ(alert["labels"], nlohmann::json({{"alertname", "EtcdBackupFailed"},
                                             {"job", "backup"},
                                             {"repo", repo},
                                             {"severity", "critical"},
                                             {"service", "etcdsafe"}}));
  EXPECT_EQ(alert["annotations"]["summary"], "backup failed");
  EXPECT_EQ(alert["generatorURL"], "http://127.0.0.1:9464/metrics");
  EXPECT_LE(std::chrono::abs(ParseTime(alert["startsAt"]) - fail.starts_at), 1s);
  EXPECT_GT(ParseTime(alert["endsAt"]), std::chrono::system_clock::now()) << "firing: Alertmanager's resolve_timeout";

  Notification rec = fail;
  rec.kind = Notification::Kind::kRecovery;
  rec.summary = "backup succeeded";
  notifier.Send(rec);
  ASSERT_TRUE(notifier.WaitIdle(10s));
  ASSERT_EQ(notifier.stats().delivered, 2u);
  bool resolved = false;
  for (int i = 0; i < 100 && !resolved; i++) {
    nlohmann::json a = FindAlert(am.Alerts(), repo);
    resolved = a.is_null() || a["status"]["state"] != "active";
    if (!resolved) std::this_thread::sleep_for(200ms);
  }
  EXPECT_TRUE(resolved) << am.Alerts().dump();
}

}  // namespace
}  // namespace etcdsafe::agent
