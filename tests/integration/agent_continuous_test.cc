// The agent's continuous job (issue 9, jobs.continuous) end to end, with real parts only:
// etcd 3.4, the etcdsafe binary run as `etcdsafe agent`, a second recorder
// (`backup --follow`) holding the repository, Debian's promtool.
//   * writes reach stored segments within ~2 s (read back with follow::ScanChains/ReadChain,
//     and etcdsafe_continuous_stored_revision reaches etcd's revision), beside a scheduled
//     backup job; the metrics pass `promtool check metrics`; /readyz turns ready;
//   * SIGHUP with a changed continuous block restarts the recorder, which resumes the chain;
//   * SIGTERM right after writes exits 0 with every write stored;
//   * a recorder refused by the repository lock is logged, counted and retried, and takes
//     over once the lock is free, without the agent dying;
//   * a bad continuous block is a one-line FILE:LINE: key error, exit 128.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "backup/backup.h"
#include "backup/repository.h"
#include "client/etcd_client.h"
#include "follow/chain.h"
#include "follow/segment.h"
#include "testutil/cli.h"
#include "testutil/etcd_server.h"
#include "testutil/process.h"
#include "testutil/temp_dir.h"
#include "unit/agent/prometheus_util.h"

namespace etcdsafe {
namespace {

using agent::testing::HttpRequest;
using agent::testing::WaitFor;
using testutil::EtcdServer;
using testutil::TempDir;
using namespace std::chrono_literals;

const std::string kBinary = ETCDSAFE_BINARY;

// The value of one series in a Prometheus text exposition, or NaN when absent.
double Series(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nan("");
}

// Every put in the repository's chains: key -> (value, mod revision), the newest put of a
// key winning; and the last revision stored.
struct ChainContents {
  std::map<std::string, std::pair<std::string, int64_t>> puts;
  int64_t last_revision = 0;
  size_t chains = 0;
};

ChainContents ReadChains(const std::string& repo_dir) {
  ChainContents out;
  auto repo = backup::OpenRepository("file://" + repo_dir, {}, false);
  follow::ChainScan scan = follow::ScanChains(*repo);
  out.chains = scan.chains.size();
  for (const auto& c : scan.chains) {
    EXPECT_TRUE(c.problems.empty()) << c.problems.front();
    follow::ChainReadResult r = follow::ReadChain(*repo, c, std::nullopt, 0, [&](const follow::Record& rec) {
      if (rec.tag != 'R') return;
      for (const auto& e : rec.rev.events) {
        if (e.is_delete) continue;
        follow::KeyValue kv = follow::DecodeKeyValue(
            Bytes(reinterpret_cast<const uint8_t*>(e.data.data()), e.data.size()), "test");
        out.puts[kv.key] = {kv.value, kv.mod_revision};
      }
    });
    out.last_revision = std::max(out.last_revision, r.last_revision);
  }
  return out;
}

class AgentContinuousTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (pid_t* pid : {&agent_pid_, &follow_pid_}) {
      if (*pid > 0) {
        ::kill(*pid, SIGKILL);
        ::waitpid(*pid, nullptr, 0);
      }
    }
  }

  std::string Config(const std::string& continuous, const std::string& extra_jobs = "") {
    return "etcd: {endpoints: [\"" + etcd_.client_url() + "\"], dial_timeout: 2s}\n"
           "repositories:\n"
           "  - {name: local, url: \"file://" + repo_ + "\"}\n"
           "jobs:\n" + extra_jobs +
           "  continuous: " + continuous + "\n"
           "http: {listen: \"127.0.0.1:" + std::to_string(http_port_) + "\"}\n"
           "state_dir: " + dir_.Sub("state") + "\n"
           "shutdown_grace: 10s\n"
           "log: {format: json}\n";
  }

  void StartAgent(const std::string& config_text) {
    config_ = dir_.Sub("agent.yaml");
    testutil::WriteFile(config_, config_text);
    log_path_ = dir_.Sub("agent.log");
    agent_pid_ = testutil::SpawnLogged({kBinary, "agent", "--config", config_},
                                       {"PATH=" + std::string(std::getenv("PATH") ? std::getenv("PATH") : "/usr/bin"),
                                        "HOME=" + dir_.path(), "TMPDIR=" + dir_.path()},
                                       log_path_);
  }

  // Sends `sig`, waits up to `limit`; the exit code, or -1 (then killed).
  int Stop(pid_t* pid, int sig, std::chrono::seconds limit) {
    ::kill(*pid, sig);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      if (::waitpid(*pid, &status, WNOHANG) == *pid) {
        *pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(20ms);
    }
    ::kill(*pid, SIGKILL);
    ::waitpid(*pid, nullptr, 0);
    *pid = -1;
    return -1;
  }

  std::string Url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(http_port_) + path; }
  std::string Metrics() { return HttpRequest(Url("/metrics"), "GET", "", 2000).body; }
  double Metric(const std::string& series) { return Series(Metrics(), series); }
  std::string LogText() const { return testutil::ReadFile(log_path_); }
  std::vector<nlohmann::json> Events(const std::string& event) const {
    std::vector<nlohmann::json> out;
    std::istringstream in(LogText());
    std::string line;
    while (std::getline(in, line)) {
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.value("event", "") == event) out.push_back(j);
    }
    return out;
  }
  int64_t EtcdRevision() { return client_->EndpointStatus().header.revision; }

  TempDir dir_;
  EtcdServer etcd_;
  std::unique_ptr<client::EtcdClient> client_ = client::EtcdClient::Connect(etcd_.client_config());
  std::string repo_ = dir_.Sub("repo");
  int http_port_ = agent::testing::FreeLocalPort();
  std::string config_, log_path_;
  pid_t agent_pid_ = -1, follow_pid_ = -1;
};

TEST_F(AgentContinuousTest, RecordsWithinSecondsReloadsAndStoresEverythingOnSigterm) {
  for (int i = 0; i < 50; i++) client_->Put("/before/" + std::to_string(i), "v" + std::to_string(i));
  // A scheduled backup job beside the continuous one (follow and backup locks do not clash).
  StartAgent(Config("{segment_max_age: 1s, heartbeat: 2s, full_every: 24h}",
                    "  backup: {schedule: \"@every 2s\"}\n"));
  const std::string repo = "{repo=\"local\"}";
  ASSERT_TRUE(WaitFor([&] { return Metric("etcdsafe_continuous_up" + repo) == 1; }, 20s)) << LogText();
  ASSERT_TRUE(WaitFor([&] { return Metric("etcdsafe_continuous_stored_revision" + repo) >= EtcdRevision(); }, 20s))
      << Metrics() << LogText();
  ASSERT_TRUE(WaitFor([&] { return HttpRequest(Url("/readyz")).status == 200; }, 10s))
      << HttpRequest(Url("/readyz")).body;

  // A write is stored within ~2 s (segment_max_age 1 s + the upload).
  client_->Put("/rpo/key", "written");
  const int64_t rev = EtcdRevision();
  const auto written = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitFor([&] { return Metric("etcdsafe_continuous_stored_revision" + repo) >= rev; }, 10s))
      << Metrics() << LogText();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - written).count();
  EXPECT_LT(seconds, 2.5) << "stored after " << seconds << " s";
  ChainContents c = ReadChains(repo_);
  EXPECT_GE(c.last_revision, rev);
  ASSERT_TRUE(c.puts.count("/rpo/key"));
  EXPECT_EQ(c.puts["/rpo/key"], std::make_pair(std::string("written"), rev));

  // The metrics: values that follow from what happened, in a valid exposition.
  const std::string m = Metrics();
  EXPECT_GE(Series(m, "etcdsafe_continuous_recorded_revision" + repo), rev);
  EXPECT_GE(Series(m, "etcdsafe_continuous_segments_stored_total" + repo), 1);
  EXPECT_GE(Series(m, "etcdsafe_continuous_events_recorded_total" + repo), 1);
  EXPECT_GT(Series(m, "etcdsafe_continuous_stored_bytes_total" + repo), 0);
  EXPECT_EQ(Series(m, "etcdsafe_continuous_chains_started_total" + repo), 1);
  EXPECT_EQ(Series(m, "etcdsafe_continuous_gaps_total" + repo), 0);
  EXPECT_EQ(Series(m, "etcdsafe_continuous_upload_failures_total" + repo), 0);
  EXPECT_LT(Series(m, "etcdsafe_continuous_pending_bytes" + repo), 1 << 20);  // present, small
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_NEAR(Series(m, "etcdsafe_continuous_last_stored_timestamp_seconds" + repo), now, 5);
  testutil::WriteFile(dir_.Sub("metrics.txt"), m);
  testutil::CmdResult check =
      testutil::Shell("/usr/bin/promtool check metrics < " + testutil::ShellQuote(dir_.Sub("metrics.txt")));
  EXPECT_EQ(check.code, 0) << check.out << check.err;
  // The scheduled backup ran beside the recorder.
  ASSERT_TRUE(WaitFor([&] { return Metric("etcdsafe_backup_last_result") == 1; }, 20s)) << LogText();

  // SIGHUP with a changed continuous block: the recorder restarts (and goes on from what the
  // repository holds: its chain, or the scheduled job's newer backup as a new base).
  testutil::WriteFile(config_, Config("{segment_max_age: 500ms, heartbeat: 2s, full_every: 24h}",
                                      "  backup: {schedule: \"@every 2s\"}\n"));
  ::kill(agent_pid_, SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return Events("continuous.start").size() == 2; }, 20s)) << LogText();
  EXPECT_EQ(Events("continuous.restart").size(), 1u);
  EXPECT_EQ(Events("continuous.start").back().value("segment_max_age_ms", 0), 500);
  ASSERT_TRUE(WaitFor([&] { return Metric("etcdsafe_continuous_chains_started_total" + repo) == 2; }, 20s));
  EXPECT_EQ(Metric("etcdsafe_continuous_up" + repo), 1);
  // Counters go on from where they were (not reset by the restart).
  EXPECT_GE(Metric("etcdsafe_continuous_segments_stored_total" + repo),
            Series(m, "etcdsafe_continuous_segments_stored_total" + repo));

  // Writes, then SIGTERM at once: the agent exits 0 with every write stored.
  for (int i = 0; i < 30; i++) client_->Put("/last/" + std::to_string(i), "x" + std::to_string(i));
  const int64_t last = EtcdRevision();
  ASSERT_EQ(Stop(&agent_pid_, SIGTERM, 30s), 0) << LogText();
  c = ReadChains(repo_);
  EXPECT_EQ(c.last_revision, last);
  for (int i = 0; i < 30; i++) EXPECT_EQ(c.puts["/last/" + std::to_string(i)].first, "x" + std::to_string(i)) << i;
  EXPECT_EQ(c.puts["/before/7"].first, "");  // written before the base: in the base, not the chain
  EXPECT_EQ(Events("continuous.stopped").size(), 2u);
  EXPECT_EQ(Events("agent.stopped").size(), 1u);
  EXPECT_TRUE(Events("continuous.failed").empty()) << LogText();
}

TEST_F(AgentContinuousTest, LockedRepositoryIsRetriedUntilFree) {
  // Another recorder holds the repository.
  follow_pid_ = testutil::SpawnLogged(
      {kBinary, "backup", "--follow", "--repo", "file://" + repo_, "--endpoints", etcd_.client_url()}, {},
      dir_.Sub("follow.log"));
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(repo_ + "/locks") &&
                                   !std::filesystem::is_empty(repo_ + "/locks"); }, 20s))
      << testutil::ReadFile(dir_.Sub("follow.log"));
  StartAgent(Config("{segment_max_age: 1s}"));
  const std::string repo = "{repo=\"local\"}";
  ASSERT_TRUE(WaitFor([&] { return Metric("etcdsafe_continuous_failures_total{reason=\"locked\",repo=\"local\"}") >= 2; },
                      20s))
      << Metrics() << LogText();
  EXPECT_EQ(Metric("etcdsafe_continuous_up" + repo), 0);
  EXPECT_EQ(HttpRequest(Url("/healthz")).status, 200);
  EXPECT_EQ(HttpRequest(Url("/readyz")).status, 503);
  EXPECT_NE(HttpRequest(Url("/readyz")).body.find("continuous backup has not stored a segment yet"), std::string::npos);
  std::vector<nlohmann::json> failed = Events("continuous.failed");
  ASSERT_GE(failed.size(), 2u);
  EXPECT_EQ(failed[0].value("reason", ""), "locked");
  EXPECT_EQ(failed[0].value("level", ""), "error");

  // The other recorder stops: the agent's takes over and records what follows.
  ASSERT_EQ(Stop(&follow_pid_, SIGTERM, 20s), 0) << testutil::ReadFile(dir_.Sub("follow.log"));
  ASSERT_TRUE(WaitFor([&] { return Metric("etcdsafe_continuous_up" + repo) == 1; }, 20s)) << LogText();
  client_->Put("/after/lock", "free");
  const int64_t rev = EtcdRevision();
  ASSERT_TRUE(WaitFor([&] { return Metric("etcdsafe_continuous_stored_revision" + repo) >= rev; }, 20s))
      << Metrics() << LogText();
  EXPECT_EQ(HttpRequest(Url("/readyz")).status, 200);
  EXPECT_EQ(ReadChains(repo_).puts["/after/lock"].first, "free");
  ASSERT_EQ(Stop(&agent_pid_, SIGTERM, 30s), 0) << LogText();
}

TEST_F(AgentContinuousTest, BadContinuousConfigIsOneLineError) {
  const std::string path = dir_.Sub("bad.yaml");
  testutil::WriteFile(path, "etcd: {endpoints: [\"" + etcd_.client_url() + "\"]}\n"
                            "repositories: [{url: \"file://" + repo_ + "\"}]\n"
                            "jobs:\n"
                            "  continuous:\n"
                            "    segment_max_age: 1s\n"
                            "    segment_max_size: 8MB\n");
  testutil::CmdResult r = testutil::Exec(kBinary, {"agent", "--config", path});
  EXPECT_EQ(r.code, 128) << r.out << r.err;
  EXPECT_TRUE(testutil::IsOneLineError(r)) << r.err;
  EXPECT_NE(r.err.find(path + ":6: jobs.continuous.segment_max_size: bad size \"8MB\""), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(repo_));  // nothing was started
}

}  // namespace
}  // namespace etcdsafe
