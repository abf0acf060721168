// `etcdsafe agent` end to end, with real parts only: etcd 3.4 (TLS), s3rver, a webhook
// receiver (cpp-httplib), Debian's Prometheus scraping the agent with the shipped rules
// (deploy/prometheus/alerts.yaml), and the etcdsafe binary run as a process.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "client/etcd_client.h"
#include "testutil/cli.h"
#include "testutil/etcd_server.h"
#include "testutil/process.h"
#include "testutil/s3_server.h"
#include "testutil/temp_dir.h"
#include "testutil/tls_certs.h"
#include "unit/agent/prometheus_util.h"

namespace etcdsafe {
namespace {

using agent::testing::HttpRequest;
using agent::testing::PrometheusServer;
using agent::testing::WaitFor;
using testutil::EtcdServer;
using testutil::EtcdServerOptions;
using testutil::S3Server;
using testutil::TempDir;
using namespace std::chrono_literals;

const std::string kBinary = ETCDSAFE_BINARY;
const std::string kSourceDir = ETCDSAFE_SOURCE_DIR;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

// The value of one series in a Prometheus text exposition ("name" or "name{a=\"b\"}"), or
// NaN when absent.
double Series(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nan("");
}

// Records the bodies the agent POSTs (Alertmanager API v2 format).
class WebhookReceiver {
 public:
  WebhookReceiver() {
    server_.Post("/api/v2/alerts", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> l(mu_);
      bodies_.push_back(req.body);
      res.status = 200;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~WebhookReceiver() {
    server_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/api/v2/alerts"; }
  // Alerts received named `name`; resolved ones have an endsAt in the past.
  std::vector<nlohmann::json> Alerts(const std::string& name) {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<nlohmann::json> out;
    for (const auto& b : bodies_) {
      nlohmann::json arr = nlohmann::json::parse(b, nullptr, false);
      if (!arr.is_array()) continue;
      for (const auto& a : arr) {
        if (a.contains("labels") && a["labels"].value("alertname", "") == name) out.push_back(a);
      }
    }
    return out;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> bodies_;
};

// A resolution has endsAt = the recovery time (= its startsAt); a firing alert's endsAt is
// minutes ahead (renewed by re-sends).
bool IsResolved(const nlohmann::json& alert) {
  return alert.contains("endsAt") && alert["endsAt"].get<std::string>() <= alert.value("startsAt", "");
}

class AgentTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (agent_pid_ > 0) {
      ::kill(agent_pid_, SIGKILL);
      ::waitpid(agent_pid_, nullptr, 0);
    }
  }

  // etcd with its data dir, certificates and ports in the test's directory, so that it can
  // be stopped and started again at the same endpoint (the agent's config stays valid).
  void StartEtcd() {
    std::filesystem::create_directories(dir_.Sub("pki"));
    certs_ = testutil::MakeTestCerts(dir_.Sub("pki"));
    client_port_ = testutil::FreePort();
    peer_port_ = testutil::FreePort();
    RestartEtcd();
  }
  void RestartEtcd() {
    etcd_.reset();
    EtcdServerOptions o;
    o.tls = true;
    o.certs = certs_;
    o.data_dir = dir_.Sub("etcd-data");
    o.client_port = client_port_;
    o.peer_port = peer_port_;
    etcd_ = std::make_unique<EtcdServer>(o);
  }

  std::string EtcdYaml(const std::string& dial_timeout = "1s") const {
    const auto& c = etcd_->certs();
    return "etcd:\n  endpoints: [\"" + etcd_->client_url() + "\"]\n  cacert: " + c.ca + "\n  cert: " +
           c.client_cert + "\n  key: " + c.client_key + "\n  dial_timeout: " + dial_timeout + "\n";
  }

  void StartAgent(const std::string& config) {
    log_path_ = dir_.Sub("agent.log");
    std::vector<std::string> env = {"PATH=" + std::string(std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin:/bin"),
                                    "HOME=" + dir_.path(), "AWS_ACCESS_KEY_ID=S3RVER", "AWS_SECRET_ACCESS_KEY=S3RVER",
                                    "TMPDIR=" + dir_.path()};
    agent_pid_ = testutil::SpawnLogged({kBinary, "agent", "--config", config}, env, log_path_);
  }

  // Sends `sig` and waits up to `limit` for the agent to exit; returns its exit code, or
  // -1 when it is still running (then it is killed).
  int StopAgent(int sig, std::chrono::seconds limit) {
    ::kill(agent_pid_, sig);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      pid_t r = ::waitpid(agent_pid_, &status, WNOHANG);
      if (r == agent_pid_) {
        agent_pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(50ms);
    }
    ::kill(agent_pid_, SIGKILL);
    ::waitpid(agent_pid_, nullptr, 0);
    agent_pid_ = -1;
    return -1;
  }

  std::string Metrics() { return HttpRequest("http://127.0.0.1:" + std::to_string(http_port_) + "/metrics").body; }
  double Metric(const std::string& series) { return Series(Metrics(), series); }

  // Every JSON log line of the agent with this event name, in order.
  std::vector<nlohmann::json> Events(const std::string& event) const {
    std::vector<nlohmann::json> out;
    std::istringstream in(ReadFile(log_path_));
    std::string line;
    while (std::getline(in, line)) {
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.value("event", "") == event) out.push_back(j);
    }
    return out;
  }
  std::string LogText() const { return ReadFile(log_path_); }

  // Backup ids in a repository, from `etcdsafe backups list -w json`.
  std::vector<std::string> ListIds(const std::vector<std::string>& repo_args, uint64_t* newest_stored = nullptr,
                                   uint64_t* total_stored = nullptr) {
    testutil::CmdResult r = testutil::Exec(
        kBinary, testutil::Concat({"backups", "list", "-w", "json"}, repo_args),
        "AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER");
    EXPECT_EQ(r.code, 0) << r.err;
    std::vector<std::string> ids;
    nlohmann::json arr = nlohmann::json::parse(r.out, nullptr, false);
    if (!arr.is_array()) return ids;
    uint64_t total = 0;
    for (const auto& m : arr) {
      ids.push_back(m["id"].get<std::string>());
      total += m["stored_size"].get<uint64_t>();
      if (newest_stored != nullptr) *newest_stored = m["stored_size"].get<uint64_t>();
    }
    if (total_stored != nullptr) *total_stored = total;
    return ids;
  }

  TempDir dir_;
  testutil::TlsFiles certs_;
  int client_port_ = 0, peer_port_ = 0;
  std::unique_ptr<EtcdServer> etcd_;
  pid_t agent_pid_ = -1;
  std::string log_path_;
  int http_port_ = 0;
};

// The integration test: backups appear on a one-second schedule in a local and an
// S3 repository, retention keeps exactly the newest three, a drill runs, /metrics moves
// and matches the repositories, stopping etcd raises the failure counter and sends the
// failure webhook, Prometheus (with the shipped rules) fires EtcdBackupStale, and when etcd
// is back the recovery webhook arrives and the alert resolves. SIGTERM then exits 0.
TEST_F(AgentTest, SchedulesRetentionDrillMetricsWebhooksAndPrometheusAlerts) {
  StartEtcd();
  {
    auto c = client::EtcdClient::Connect(etcd_->client_config());
    for (int i = 0; i < 200; i++) c->Put("/app/key-" + std::to_string(i), std::string(100, 'v'));
  }
  S3Server s3;
  s3.CreateBucket("backups");
  WebhookReceiver hook;
  http_port_ = agent::testing::FreeLocalPort();
  const std::string local = dir_.Sub("repo");
  const std::string config = dir_.Sub("agent.yaml");
  WriteFile(config, "timezone: Europe/Berlin\n" + EtcdYaml() +
                        "repositories:\n"
                        "  - {name: local, url: \"file://" + local + "\"}\n"
                        "  - name: s3\n"
                        "    url: s3://backups/etcd\n"
                        "    s3: {endpoint: \"" + s3.endpoint() + "\"}\n"
                        "jobs:\n"
                        "  backup:\n"
                        "    schedule: \"@every 1s\"\n"
                        "    retention: {keep_last: 3}\n"
                        "    retry: {max_attempts: 2, initial_backoff: 1s}\n"
                        "    max_age: 4s\n"
                        "  drill: {schedule: \"@every 3s\", not_kubernetes: true}\n"
                        "http: {listen: \"127.0.0.1:" + std::to_string(http_port_) + "\"}\n"
                        "alerts:\n"
                        "  webhooks:\n"
                        "    - {url: \"" + hook.url() + "\", format: alertmanager, max_attempts: 3}\n"
                        "state_dir: " + dir_.Sub("state") + "\n"
                        "log: {format: json}\n");
  StartAgent(config);
  PrometheusServer prom("127.0.0.1:" + std::to_string(http_port_), {kSourceDir + "/deploy/prometheus/alerts.yaml"});

  // Backups, retention and a drill.
  ASSERT_TRUE(WaitFor([&] {
    std::string m = Metrics();
    return Series(m, "etcdsafe_repository_backups{repo=\"local\"}") == 3 &&
           Series(m, "etcdsafe_repository_backups{repo=\"s3\"}") == 3 &&
           Series(m, "etcdsafe_retention_deleted_total{repo=\"local\"}") >= 2 &&
           Series(m, "etcdsafe_drill_last_result") == 1;
  }, 90s)) << Metrics() << LogText();
  // Timestamps advance.
  const double t1 = Metric("etcdsafe_backup_last_success_timestamp_seconds{repo=\"s3\"}");
  ASSERT_TRUE(WaitFor([&] { return Metric("etcdsafe_backup_last_success_timestamp_seconds{repo=\"s3\"}") > t1; }, 20s));
  EXPECT_GT(Metric("etcdsafe_drill_last_success_timestamp_seconds"), 0);
  // Sizes equal the repository's (no writes to etcd: every backup has the same size).
  uint64_t newest = 0, total = 0;
  ASSERT_TRUE(WaitFor([&] {
    ListIds({"--repo", "file://" + local}, &newest, &total);
    std::string m = Metrics();
    return Series(m, "etcdsafe_backup_stored_bytes{repo=\"local\"}") == static_cast<double>(newest) &&
           Series(m, "etcdsafe_repository_bytes{repo=\"local\"}") == static_cast<double>(total);
  }, 20s)) << Metrics();
  EXPECT_GT(newest, 0u);
  EXPECT_GE(Metric("etcdsafe_backup_keys"), 200);
  EXPECT_EQ(Metric("etcdsafe_etcd_up{endpoint=\"" + etcd_->client_url() + "\"}"), 1);
  // Prometheus scrapes the agent and nothing fires.
  ASSERT_TRUE(WaitFor([&] { return prom.Query("etcdsafe_backup_last_result") == 1; }, 30s)) << prom.Log();
  EXPECT_EQ(prom.AlertStates().count("EtcdBackupStale"), 0u);

  // etcd goes away: attempts fail, the failure webhook arrives, the backup goes stale.
  const double failures_before = Metric("etcdsafe_backup_failures_total{reason=\"unreachable\"}");
  etcd_->Stop();
  ASSERT_TRUE(WaitFor([&] { return Metric("etcdsafe_backup_failures_total{reason=\"unreachable\"}") > failures_before; },
                      30s)) << LogText();
  EXPECT_EQ(Metric("etcdsafe_backup_last_result"), 0);
  ASSERT_TRUE(WaitFor([&] { return !hook.Alerts("EtcdBackupFailed").empty(); }, 30s)) << LogText();
  EXPECT_FALSE(IsResolved(hook.Alerts("EtcdBackupFailed").front()));
  EXPECT_EQ(hook.Alerts("EtcdBackupFailed").front()["labels"].value("job", ""), "backup");
  ASSERT_TRUE(WaitFor([&] {
    auto s = prom.AlertStates();
    return s.count("EtcdBackupStale") && s["EtcdBackupStale"] == "firing";
  }, 60s)) << prom.Log();

  // etcd is back: the next backup succeeds, the recovery webhook arrives, the alert resolves.
  RestartEtcd();
  ASSERT_TRUE(WaitFor([&] {
    auto a = hook.Alerts("EtcdBackupFailed");
    return a.size() >= 2 && IsResolved(a.back());
  }, 60s)) << LogText();
  ASSERT_TRUE(WaitFor([&] { return prom.AlertStates().count("EtcdBackupStale") == 0; }, 60s)) << prom.Log();
  EXPECT_EQ(Metric("etcdsafe_backup_last_result"), 1);

  // SIGTERM: exit 0. Then retention kept exactly the three newest backups the agent
  // committed, in both repositories, and nothing else is left (no lock, no intent record).
  ASSERT_EQ(StopAgent(SIGTERM, 60s), 0) << LogText();
  std::vector<std::string> committed;
  for (const auto& e : Events("backup.done")) committed.push_back(e["backup"].get<std::string>());
  ASSERT_GE(committed.size(), 5u);
  std::vector<std::string> expected(committed.end() - 3, committed.end());
  EXPECT_EQ(ListIds({"--repo", "file://" + local}), expected);
  // The S3 repository names its backups alike (same time stems).
  EXPECT_EQ(ListIds({"--repo", "s3://backups/etcd", "--s3-endpoint", s3.endpoint()}), expected);
  for (const auto& entry : std::filesystem::directory_iterator(local)) {
    const std::string name = entry.path().filename().string();
    EXPECT_EQ(name.find(".pending"), std::string::npos) << name;
    EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
  }
  EXPECT_TRUE(std::filesystem::is_empty(local + "/locks"));
  EXPECT_NE(LogText().find("\"event\":\"agent.stopped\""), std::string::npos);
}

// SIGTERM while a backup streams: the agent waits out the grace period, cancels the
// backup and exits 0; the repositories hold no partial backup, no intent record and no
// lock, and a later backup and prune find nothing to clean.
TEST_F(AgentTest, SigtermMidBackupLeavesTheRepositoryClean) {
  StartEtcd();
  {
    // ~300 MB of incompressible values: the backup streams for seconds (150 MB was done
    // ~0.6 s after the cancel once etcd's stream stopped waiting for the pipeline).
    auto c = client::EtcdClient::Connect(etcd_->client_config());
    std::mt19937_64 rng(7);
    std::string value(1 << 20, '\0');
    for (int i = 0; i < 300; i++) {
      for (size_t j = 0; j + 8 <= value.size(); j += 8) {
        uint64_t x = rng();
        std::memcpy(&value[j], &x, 8);
      }
      c->Put("/big/" + std::to_string(i), value);
    }
  }
  S3Server s3;
  s3.CreateBucket("backups");
  http_port_ = agent::testing::FreeLocalPort();
  const std::string local = dir_.Sub("repo");
  const std::string config = dir_.Sub("agent.yaml");
  WriteFile(config, EtcdYaml("2s") +
                        "repositories:\n"
                        "  - {name: local, url: \"file://" + local + "\"}\n"
                        "  - {name: s3, url: \"s3://backups/etcd\", s3: {endpoint: \"" + s3.endpoint() + "\"}}\n"
                        "jobs:\n"
                        "  backup: {schedule: \"@every 1h\"}\n"
                        "http: {listen: \"127.0.0.1:" + std::to_string(http_port_) + "\"}\n"
                        "state_dir: " + dir_.Sub("state") + "\n"
                        "shutdown_grace: 1s\n"
                        "log: {format: json}\n");
  StartAgent(config);
  // The first backup starts at once (no backup anywhere yet).
  ASSERT_TRUE(WaitFor([&] { return !Events("backup.start").empty(); }, 30s)) << LogText();
  std::this_thread::sleep_for(300ms);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(StopAgent(SIGTERM, 30s), 0) << LogText();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // It was really cut short: cancelled after the grace period, not finished.
  ASSERT_TRUE(Events("backup.done").empty()) << "the backup finished before the signal; make it bigger\n" << LogText();
  EXPECT_FALSE(Events("agent.cancel").empty()) << LogText();
  EXPECT_LT(seconds, 15.0);
  // Nothing half-visible: no manifest, no data, no intent record, no lock, no temporary.
  for (const auto& entry : std::filesystem::directory_iterator(local)) {
    const std::string name = entry.path().filename().string();
    EXPECT_TRUE(name == "etcdsafe-repository.json" || name == "locks") << name;
  }
  EXPECT_TRUE(std::filesystem::is_empty(local + "/locks"));
  std::string listing;
  ASSERT_EQ(s3.Aws("s3 ls --recursive s3://backups/etcd/", &listing), 0) << listing;
  std::istringstream in(listing);
  std::string line;
  while (std::getline(in, line)) {
    EXPECT_NE(line.find("etcdsafe-repository.json"), std::string::npos) << "left in S3: " << line;
  }
  EXPECT_TRUE(ListIds({"--repo", "file://" + local}).empty());
}

// Configuration errors name file, line and key; --check-config validates without
// starting; SIGHUP with a broken file keeps the old configuration, with a good one applies it.
TEST_F(AgentTest, CheckConfigAndReload) {
  const std::string bad = dir_.Sub("bad.yaml");
  WriteFile(bad, "etcd: {endpoints: [\"http://127.0.0.1:2379\"]}\nrepositories:\n  - url: file:///tmp/x\njobs:\n"
                 "  backup: {schedule: \"0 */6 * *\"}\n");
  testutil::CmdResult r = testutil::Exec(kBinary, {"agent", "--config", bad, "--check-config"});
  EXPECT_EQ(r.code, 128) << r.err;
  EXPECT_TRUE(testutil::IsOneLineError(r)) << r.err;
  EXPECT_NE(r.err.find(bad + ":5: jobs.backup.schedule"), std::string::npos) << r.err;
  r = testutil::Exec(kBinary, {"agent", "--config", dir_.Sub("missing.yaml"), "--check-config"});
  EXPECT_EQ(r.code, 10) << r.err;
  EXPECT_TRUE(testutil::IsOneLineError(r)) << r.err;

  StartEtcd();
  http_port_ = agent::testing::FreeLocalPort();
  const std::string local = dir_.Sub("repo");
  const std::string config = dir_.Sub("agent.yaml");
  auto write_config = [&](const std::string& schedule) {
    WriteFile(config, EtcdYaml() + "repositories:\n  - {name: local, url: \"file://" + local + "\"}\n" +
                          "jobs:\n  backup: {schedule: \"" + schedule + "\"}\n" + "http: {listen: \"127.0.0.1:" +
                          std::to_string(http_port_) + "\"}\n" + "state_dir: " + dir_.Sub("state") + "\n" +
                          "log: {format: json}\n");
  };
  write_config("@every 1h");
  r = testutil::Exec(kBinary, {"agent", "--config", config, "--check-config"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("is valid"), std::string::npos) << r.out;
  StartAgent(config);
  ASSERT_TRUE(WaitFor([&] { return Events("backup.done").size() == 1; }, 30s)) << LogText();  // none yet: runs now

  // A broken file: rejected, the agent keeps serving.
  WriteFile(config, "jobs: [broken\n");
  ::kill(agent_pid_, SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return !Events("config.reload_failed").empty(); }, 20s)) << LogText();
  EXPECT_NE(Events("config.reload_failed").front().value("error", "").find(config + ":"), std::string::npos);
  EXPECT_EQ(HttpRequest("http://127.0.0.1:" + std::to_string(http_port_) + "/healthz").status, 200);
  EXPECT_EQ(Events("backup.done").size(), 1u);

  // A good one with a faster schedule: applied.
  write_config("@every 1s");
  ::kill(agent_pid_, SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return !Events("config.reloaded").empty(); }, 20s)) << LogText();
  ASSERT_TRUE(WaitFor([&] { return Events("backup.done").size() >= 3; }, 30s)) << LogText();
  EXPECT_EQ(StopAgent(SIGTERM, 60s), 0) << LogText();
}

// A slot missed while the agent was down runs once on start, not once per missed slot;
// a repository whose newest backup is recent enough is not backed up again on start.
TEST_F(AgentTest, MissedSlotRunsOnceOnStart) {
  StartEtcd();
  http_port_ = agent::testing::FreeLocalPort();
  const std::string local = dir_.Sub("repo");
  const std::string config = dir_.Sub("agent.yaml");
  WriteFile(config, EtcdYaml() + "repositories:\n  - {name: local, url: \"file://" + local + "\"}\n" +
                        "jobs:\n  backup: {schedule: \"@every 1h\"}\n" + "http: {listen: \"127.0.0.1:" +
                        std::to_string(http_port_) + "\"}\n" + "state_dir: " + dir_.Sub("state") + "\n" +
                        "log: {format: json}\n");
  // 1. A fresh backup taken by hand: the agent has no state, the repository says the
  //    last backup is recent, so nothing runs on start.
  const auto& c = etcd_->certs();
  testutil::CmdResult r = testutil::Exec(kBinary, {"backup", "--endpoints", etcd_->client_url(), "--cacert", c.ca,
                                                   "--cert", c.client_cert, "--key", c.client_key, "--repo",
                                                   "file://" + local});
  ASSERT_EQ(r.code, 0) << r.err;
  StartAgent(config);
  ASSERT_TRUE(WaitFor([&] { return !Events("agent.started").empty(); }, 20s)) << LogText();
  std::this_thread::sleep_for(3s);
  EXPECT_TRUE(Events("backup.start").empty()) << LogText();
  ASSERT_EQ(StopAgent(SIGTERM, 30s), 0) << LogText();

  // 2. The state says the last slot was three hours ago (three slots missed): one backup
  //    on start, then none until the next slot an hour later.
  const int64_t three_hours_ago =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count() -
      3 * 3600;
  WriteFile(dir_.Sub("state/agent-state.json"),
            "{\"format\":1,\"jobs\":{\"backup\":{\"last_slot\":" + std::to_string(three_hours_ago) + "}}}\n");
  StartAgent(config);
  ASSERT_TRUE(WaitFor([&] { return Events("backup.done").size() == 1; }, 30s)) << LogText();
  std::this_thread::sleep_for(3s);
  EXPECT_EQ(Events("backup.start").size(), 1u) << LogText();
  ASSERT_EQ(StopAgent(SIGTERM, 30s), 0) << LogText();
  EXPECT_EQ(ListIds({"--repo", "file://" + local}).size(), 2u);
  // The state now records the slot just run.
  nlohmann::json st = nlohmann::json::parse(ReadFile(dir_.Sub("state/agent-state.json")));
  EXPECT_GT(st["jobs"]["backup"]["last_slot"].get<int64_t>(), three_hours_ago + 3 * 3600 - 60);
}

}  // namespace
}  // namespace etcdsafe
