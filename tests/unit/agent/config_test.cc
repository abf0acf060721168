// LoadConfig/ParseConfig: the shipped example and the issue's example load; every error
// names file, line and key; relative paths; file checks; durations; time zones.
#include "agent/config.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>

#include "base/bytes.h"
#include "base/error.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::agent {
namespace {

using namespace std::chrono_literals;

const std::string kExample = std::string(ETCDSAFE_SOURCE_DIR) + "/deploy/agent.example.yaml";
const std::string kFile = "/cfg/agent.yaml";

LoadOptions NoFileChecks() {
  LoadOptions o;
  o.check_files = false;
  return o;
}

// A minimal valid file; cases add lines from line 8 on.
const std::string kBase =
    "etcd:\n"                              // 1
    "  endpoints: [127.0.0.1:2379]\n"      // 2
    "repositories:\n"                      // 3
    "  - url: file:///var/backups/etcd\n"  // 4
    "jobs:\n"                              // 5
    "  backup:\n"                          // 6
    "    schedule: \"@hourly\"\n";         // 7

std::string ErrorOf(const std::string& yaml, const LoadOptions& options = NoFileChecks(),
                    const std::string& path = kFile) {
  try {
    ParseConfig(yaml, path, options);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    return e.what();
  }
  return "(no error)";
}

// The message starts with "FILE:LINE: key: " and contains `detail`.
void ExpectError(const std::string& yaml, int line, const std::string& key, const std::string& detail) {
  SCOPED_TRACE(yaml);
  std::string msg = ErrorOf(yaml);
  std::string prefix = kFile + ":" + std::to_string(line) + ": " + (key.empty() ? "" : key + ": ");
  EXPECT_EQ(msg.rfind(prefix, 0), 0u) << "got:  " << msg << "\nwant: " << prefix << "...";
  EXPECT_NE(msg.find(detail), std::string::npos) << "got: " << msg << "\nwant it to contain: " << detail;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

// Dotted key paths (list indices dropped) used in a YAML document.
void CollectKeys(const YAML::Node& n, const std::string& prefix, std::set<std::string>* out) {
  if (n.IsMap()) {
    for (auto it = n.begin(); it != n.end(); ++it) {
      std::string key = prefix.empty() ? it->first.Scalar() : prefix + "." + it->first.Scalar();
      out->insert(key);
      CollectKeys(it->second, key, out);
    }
  } else if (n.IsSequence()) {
    for (const YAML::Node& item : n) CollectKeys(item, prefix, out);
  }
}

TEST(ConfigTest, ExampleLoads) {
  LoadOptions o = NoFileChecks();
  AgentConfig c = LoadConfig(kExample, o);
  const std::string deploy = std::string(ETCDSAFE_SOURCE_DIR) + "/deploy";
  EXPECT_EQ(c.path, std::filesystem::path(kExample).lexically_normal().string());
  EXPECT_EQ(c.timezone, "Europe/Berlin");
  EXPECT_EQ(c.tz.name(), "Europe/Berlin");
  EXPECT_EQ(c.etcd.endpoints, std::vector<std::string>{"https://127.0.0.1:2379"});
  EXPECT_EQ(c.etcd.cacert, "/etc/kubernetes/pki/etcd/ca.crt");
  EXPECT_EQ(c.etcd.key, "/etc/kubernetes/pki/etcd/healthcheck-client.key");
  EXPECT_EQ(c.etcd.user, "");
  EXPECT_EQ(c.etcd.dial_timeout, 5s);
  EXPECT_EQ(c.etcd.command_timeout, 0ms);
  ASSERT_EQ(c.repositories.size(), 2u);
  EXPECT_EQ(c.repositories[0].name, "local");
  EXPECT_EQ(c.repositories[0].url, "file:///var/backups/etcd");
  EXPECT_EQ(c.repositories[1].name, "offsite");
  EXPECT_EQ(c.repositories[1].url, "s3://etcd-backups/cluster-1");
  EXPECT_EQ(c.repositories[1].s3.endpoint, "https://s3.example.com:9000");
  EXPECT_EQ(c.repositories[1].s3.region, "us-east-1");
  EXPECT_EQ(c.repositories[1].s3.path_style, std::optional<bool>(true));
  EXPECT_EQ(c.repositories[1].s3.ca_file, deploy + "/s3-ca.pem");  // relative to the file
  EXPECT_EQ(c.repositories[1].s3.credentials_file, "/etc/etcdsafe/s3-credentials");
  EXPECT_EQ(c.repositories[1].s3.profile, "etcd-backup");
  EXPECT_EQ(c.encryption.key_file, "/etc/etcdsafe/encryption.key");
  EXPECT_EQ(c.encryption.passphrase_file, "");
  EXPECT_EQ(c.compression, "zstd");
  EXPECT_EQ(c.name_prefix, "etcd-snapshot");
  EXPECT_TRUE(c.backup.enabled);
  EXPECT_EQ(c.backup.schedule.text(), "0 */6 * * *");
  EXPECT_EQ(c.backup.retention.keep_last, 24);
  EXPECT_EQ(c.backup.retention.keep_daily, 7);
  EXPECT_EQ(c.backup.retention.keep_weekly, 4);
  EXPECT_EQ(c.backup.retention.keep_monthly, 6);
  EXPECT_EQ(c.backup.retention.keep_within, 48h);
  EXPECT_EQ(c.backup.retry.max_attempts, 3);
  EXPECT_EQ(c.backup.retry.initial_backoff, 10s);
  EXPECT_EQ(c.backup.retry.max_backoff, 300s);
  EXPECT_EQ(c.backup.max_age, 13h);
  EXPECT_TRUE(c.drill.enabled);
  EXPECT_EQ(c.drill.schedule.text(), "@daily");
  EXPECT_EQ(c.drill.max_age, 24h);
  EXPECT_EQ(c.drill.backup, "latest");
  EXPECT_EQ(c.drill.repository, "local");
  EXPECT_EQ(c.drill.etcd_binary, "/usr/local/bin/etcd");
  EXPECT_TRUE(c.prune.enabled);
  EXPECT_EQ(c.prune.retention.keep_yearly, 1);
  EXPECT_TRUE(c.continuous.enabled);
  EXPECT_EQ(c.continuous.repository, "local");
  EXPECT_EQ(c.continuous.segment_max_age, 1s);
  EXPECT_EQ(c.continuous.segment_max_bytes, 8u << 20);
  EXPECT_EQ(c.continuous.heartbeat, 10s);
  EXPECT_EQ(c.continuous.hash_every, 5min);
  EXPECT_EQ(c.continuous.full_every, 24h);
  EXPECT_EQ(c.continuous.full_every_events, 10000000u);
  EXPECT_EQ(c.continuous.spill_dir, "/var/lib/etcdsafe/continuous-spill");
  EXPECT_EQ(c.continuous.max_spill_bytes, uint64_t{1} << 30);
  EXPECT_TRUE(c.pki_check.enabled);
  EXPECT_EQ(c.pki_check.schedule.text(), "@hourly");
  EXPECT_EQ(c.pki_check.kubernetes_dir, "/etc/kubernetes");
  EXPECT_EQ(c.pki_check.warn_days, 30);
  EXPECT_EQ(c.http_listen, "127.0.0.1:9464");
  ASSERT_EQ(c.webhooks.size(), 2u);
  EXPECT_EQ(c.webhooks[0].format, WebhookConfig::Format::kAlertmanager);
  EXPECT_EQ(c.webhooks[1].format, WebhookConfig::Format::kSlack);
  EXPECT_EQ(c.webhooks[1].timeout, 10s);
  EXPECT_EQ(c.webhooks[1].max_attempts, 3);
  EXPECT_EQ(c.state_dir, "/var/lib/etcdsafe");
  EXPECT_EQ(c.shutdown_grace, 30s);
  EXPECT_EQ(c.log_format, "auto");
}

TEST(ConfigTest, ExampleShowsEveryKey) {
  std::string text = testutil::ReadFile(kExample);
  std::set<std::string> used;
  CollectKeys(YAML::Load(text), "", &used);
  std::vector<std::string> known = KnownConfigKeys();
  ASSERT_GT(known.size(), 60u);
  EXPECT_TRUE(std::is_sorted(known.begin(), known.end()));
  for (const char* k :
       {"jobs.backup.retention.keep_daily", "repositories.s3.endpoint", "alerts.webhooks.url", "etcd", "timezone"}) {
    EXPECT_NE(std::find(known.begin(), known.end(), k), known.end()) << k;
  }
  std::vector<std::string> missing;
  for (const std::string& k : known) {
    if (!used.count(k)) missing.push_back(k);
  }
  // passphrase_file is the alternative to key_file (both at once is an error): shown as a comment.
  EXPECT_EQ(missing, std::vector<std::string>{"encryption.passphrase_file"});
  size_t at = text.find("  # passphrase_file: ");
  ASSERT_NE(at, std::string::npos);
  // ... and the file loads with it in place of key_file.
  std::string alt = text;
  alt.replace(at, 4, "  ");
  size_t key_line = alt.find("  key_file: /etc/etcdsafe/encryption.key\n");
  ASSERT_NE(key_line, std::string::npos);
  alt.erase(key_line, std::string("  key_file: /etc/etcdsafe/encryption.key\n").size());
  // The continuous job needs a key file, not a passphrase: an error naming jobs.continuous ...
  EXPECT_NE(ErrorOf(alt, NoFileChecks(), kExample).find(": jobs.continuous: continuous backup encrypts every segment"),
            std::string::npos)
      << ErrorOf(alt, NoFileChecks(), kExample);
  // ... and without that block the file loads.
  size_t cont = alt.find("\n  continuous:\n");
  size_t cont_end = alt.find("\n# HTTP server");
  ASSERT_NE(cont, std::string::npos);
  ASSERT_NE(cont_end, std::string::npos);
  alt.erase(cont + 1, cont_end - cont);
  AgentConfig c = ParseConfig(alt, kExample, NoFileChecks());
  EXPECT_FALSE(c.continuous.enabled);
  EXPECT_EQ(c.encryption.passphrase_file, "/etc/etcdsafe/passphrase");
  EXPECT_EQ(c.encryption.key_file, "");
}

TEST(ConfigTest, IssueExampleLoads) {
  const std::string yaml = R"(timezone: UTC
etcd: {endpoints: [https://127.0.0.1:2379], cacert: ca.crt, cert: client.crt, key: client.key}
repositories:
  - url: file:///var/backups/etcd
  - url: s3://bucket/prefix
    s3: {endpoint: https://s3.example:9000, region: us-east-1, path_style: true, ca_file: ca.pem}
encryption: {key_file: /etc/etcdsafe/key}      # or passphrase_file
compression: zstd
jobs:
  backup: {schedule: "0 */6 * * *", retention: {keep_last: 24, keep_daily: 7, keep_weekly: 4, keep_monthly: 6}}
  drill: {schedule: "@daily", max_age: 24h}
http: {listen: "127.0.0.1:9464"}
alerts: {webhooks: [{url: "http://alertmanager:9093/api/v2/alerts", format: alertmanager}]}
)";
  AgentConfig c = ParseConfig(yaml, "/etc/etcdsafe/agent.yaml", NoFileChecks());
  EXPECT_EQ(c.etcd.endpoints, std::vector<std::string>{"https://127.0.0.1:2379"});
  EXPECT_EQ(c.etcd.cacert, "/etc/etcdsafe/ca.crt");
  EXPECT_EQ(c.etcd.cert, "/etc/etcdsafe/client.crt");
  EXPECT_EQ(c.etcd.key, "/etc/etcdsafe/client.key");
  ASSERT_EQ(c.repositories.size(), 2u);
  EXPECT_EQ(c.repositories[0].name, "file:///var/backups/etcd");  // default name: the url
  EXPECT_EQ(c.repositories[1].name, "s3://bucket/prefix");
  EXPECT_EQ(c.repositories[1].s3.ca_file, "/etc/etcdsafe/ca.pem");
  EXPECT_EQ(c.repositories[1].s3.path_style, std::optional<bool>(true));
  EXPECT_FALSE(c.repositories[0].s3.path_style.has_value());
  EXPECT_EQ(c.backup.retention.keep_weekly, 4);
  EXPECT_EQ(c.backup.retention.keep_hourly, 0);
  EXPECT_EQ(c.drill.repository, "file:///var/backups/etcd");  // default: the first repository
  EXPECT_EQ(c.drill.max_age, 24h);
  EXPECT_FALSE(c.prune.enabled);
  ASSERT_EQ(c.webhooks.size(), 1u);
  EXPECT_EQ(c.webhooks[0].url, "http://alertmanager:9093/api/v2/alerts");
  EXPECT_EQ(c.webhooks[0].timeout, 5s);
  EXPECT_EQ(c.webhooks[0].max_attempts, 5);
  // Defaults of keys not given.
  EXPECT_EQ(c.state_dir, "/var/lib/etcdsafe");
  EXPECT_EQ(c.shutdown_grace, 30s);
  EXPECT_EQ(c.log_format, "auto");
  EXPECT_EQ(c.name_prefix, "etcd-snapshot");
  EXPECT_EQ(c.etcd.dial_timeout, 5s);
}

TEST(ConfigTest, Defaults) {
  AgentConfig c = ParseConfig(kBase, kFile, NoFileChecks());
  EXPECT_EQ(c.timezone, "UTC");
  EXPECT_EQ(c.tz, absl::UTCTimeZone());
  EXPECT_EQ(c.http_listen, "127.0.0.1:9464");
  EXPECT_EQ(c.compression, "zstd");
  EXPECT_EQ(c.compression_level, 0);
  EXPECT_TRUE(c.backup.retention.Empty());
  EXPECT_TRUE(c.webhooks.empty());
  EXPECT_FALSE(c.drill.enabled);
  // http.listen "" disables the server.
  EXPECT_EQ(ParseConfig(kBase + "http: {listen: \"\"}\n", kFile, NoFileChecks()).http_listen, "");
}

TEST(ConfigTest, DefaultBackupMaxAge) {
  auto max_age = [](const std::string& schedule, const std::string& tz = "UTC") {
    LoadOptions o = NoFileChecks();
    o.now = std::chrono::system_clock::from_time_t(1767268800);  // 2026-01-01T12:00:00Z
    std::string yaml = "timezone: " + tz +
                       "\netcd: {endpoints: [h:1]}\nrepositories: [{url: file:///b}]\njobs: {backup: {schedule: \"" +
                       schedule + "\"}}\n";
    return ParseConfig(yaml, kFile, o).backup.max_age;
  };
  EXPECT_EQ(max_age("0 */6 * * *"), 12h);
  EXPECT_EQ(max_age("@daily"), 48h);
  EXPECT_EQ(max_age("@hourly"), 2h);
  EXPECT_EQ(max_age("@every 10s"), 60s);  // at least a minute
  EXPECT_EQ(max_age("@every 45m"), 90min);
  EXPECT_EQ(max_age("0 0 1 * *"), 2 * 28 * 24h);  // the interval after the next firing: Feb 1 → Mar 1
}

TEST(ConfigTest, RelativePathsAndFileChecks) {
  testutil::TempDir dir;
  std::filesystem::create_directories(dir.Sub("conf/pki"));
  std::filesystem::create_directories(dir.Sub("keys"));
  for (const char* f : {"conf/pki/ca.crt", "conf/pki/client.crt", "conf/pki/client.key", "keys/backup.key",
                        "conf/etcd-password", "conf/s3.pem", "conf/creds", "conf/token"}) {
    testutil::WriteFile(dir.Sub(f), "x\n");
  }
  const std::string yaml =
      "etcd:\n"
      "  endpoints: [https://127.0.0.1:2379]\n"
      "  cacert: pki/ca.crt\n"
      "  cert: ./pki/client.crt\n"
      "  key: pki/../pki/client.key\n"
      "  user: backup\n"
      "  password_file: etcd-password\n"
      "repositories:\n"
      "  - url: s3://bucket-1\n"
      "    s3: {ca_file: s3.pem, credentials_file: creds}\n"
      "encryption: {key_file: ../keys/backup.key}\n"
      "jobs: {backup: {schedule: \"@hourly\"}}\n"
      "alerts: {webhooks: [{url: \"https://h/x\", bearer_token_file: token, ca_file: s3.pem}]}\n"
      "state_dir: state\n";
  const std::string file = dir.Sub("conf/agent.yaml");
  testutil::WriteFile(file, yaml);
  AgentConfig c = LoadConfig(file);
  EXPECT_EQ(c.path, file);
  EXPECT_EQ(c.etcd.cacert, dir.Sub("conf/pki/ca.crt"));
  EXPECT_EQ(c.etcd.cert, dir.Sub("conf/pki/client.crt"));
  EXPECT_EQ(c.etcd.key, dir.Sub("conf/pki/client.key"));
  EXPECT_EQ(c.etcd.user, "backup");
  EXPECT_EQ(c.etcd.password_file, dir.Sub("conf/etcd-password"));
  EXPECT_EQ(c.repositories[0].s3.ca_file, dir.Sub("conf/s3.pem"));
  EXPECT_EQ(c.repositories[0].s3.credentials_file, dir.Sub("conf/creds"));
  EXPECT_EQ(c.encryption.key_file, dir.Sub("keys/backup.key"));
  EXPECT_EQ(c.webhooks[0].bearer_token_file, dir.Sub("conf/token"));
  EXPECT_EQ(c.state_dir, dir.Sub("conf/state"));

  // A missing file: the error names the key and the resolved path.
  std::filesystem::remove(dir.Sub("conf/pki/ca.crt"));
  std::string msg;
  try {
    LoadConfig(file);
  } catch (const Error& e) {
    msg = e.what();
  }
  EXPECT_EQ(msg, file + ":3: etcd.cacert: " + dir.Sub("conf/pki/ca.crt") + ": No such file or directory");
  // ... which check_files=false accepts.
  EXPECT_EQ(LoadConfig(file, NoFileChecks()).etcd.cacert, dir.Sub("conf/pki/ca.crt"));
  testutil::WriteFile(dir.Sub("conf/pki/ca.crt"), "x\n");

  // A directory where a file belongs.
  std::filesystem::remove(dir.Sub("conf/token"));
  std::filesystem::create_directories(dir.Sub("conf/token"));
  msg.clear();
  try {
    LoadConfig(file);
  } catch (const Error& e) {
    msg = e.what();
  }
  EXPECT_EQ(msg, file + ":13: alerts.webhooks[0].bearer_token_file: " + dir.Sub("conf/token") +
                     ": is a directory, want a file");
  std::filesystem::remove(dir.Sub("conf/token"));
  testutil::WriteFile(dir.Sub("conf/token"), "t\n");

  // An unreadable key file. Root reads anything, so as root the check runs in a child
  // process that has switched to the user nobody.
  ::chmod(dir.Sub("keys/backup.key").c_str(), 0);
  const std::string want =
      file + ":11: encryption.key_file: " + dir.Sub("keys/backup.key") + ": not readable: Permission denied";
  auto load_message = [&file]() -> std::string {
    try {
      LoadConfig(file);
    } catch (const Error& e) {
      return e.what();
    }
    return "(loaded)";
  };
  if (::geteuid() != 0) {
    EXPECT_EQ(load_message(), want);
  } else {
    ::chmod(dir.path().c_str(), 0755);
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
      std::string m = load_message();
      ssize_t n = ::write(fds[1], m.data(), m.size());
      ::_exit(n == static_cast<ssize_t>(m.size()) ? 0 : 3);
    }
    ::close(fds[1]);
    std::string got;
    char buf[4096];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) got.append(buf, static_cast<size_t>(n));
    ::close(fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    EXPECT_EQ(got, want);
  }
}

TEST(ConfigTest, MissingFileIsNotFound) {
  testutil::TempDir dir;
  EXPECT_THROW(LoadConfig(dir.path()), Error);
  try {
    LoadConfig(dir.Sub("nope.yaml"));
    ADD_FAILURE() << "loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find(dir.Sub("nope.yaml")), std::string::npos) << e.what();
  }
}

TEST(ConfigTest, TimeZones) {
  AgentConfig c = ParseConfig("timezone: Europe/Berlin\n" + kBase, kFile, NoFileChecks());
  EXPECT_EQ(c.tz.name(), "Europe/Berlin");
  // The zone is the one cron is evaluated in: 09:00 Berlin in January is 08:00Z.
  Schedule s = Schedule::Parse("0 9 * * *");
  auto next = s.Next(std::chrono::system_clock::from_time_t(1767225600), c.tz);  // 2026-01-01T00:00Z
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*next), 1767225600 + 8 * 3600);
  ExpectError("timezone: Mars/Olympus\n" + kBase, 1, "timezone", "unknown time zone \"Mars/Olympus\"");
  ExpectError("timezone: \"\"\n" + kBase, 1, "timezone", "must not be empty");
}

TEST(ConfigTest, Durations) {
  EXPECT_EQ(ParseDuration("90s"), 90s);
  EXPECT_EQ(ParseDuration("15m"), 15min);
  EXPECT_EQ(ParseDuration("1h30m"), 90min);
  EXPECT_EQ(ParseDuration("24h"), 24h);
  EXPECT_EQ(ParseDuration("7d"), 168h);
  EXPECT_EQ(ParseDuration("1d12h"), 36h);
  EXPECT_EQ(ParseDuration("2000ms"), 2s);
  EXPECT_EQ(ParseDuration("0"), 0s);
  for (const char* bad : {"", "5", "1500ms", "-1s", "1w", "h", "1h 30m", "1y"}) {
    EXPECT_THROW(ParseDuration(bad), Error) << bad;
  }
  try {
    ParseDuration("1500ms");
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "bad duration \"1500ms\": not a whole number of seconds");
  }
  // Millisecond keys take sub-second values.
  AgentConfig c = ParseConfig(
      "etcd: {endpoints: [h:1], dial_timeout: 1500ms, command_timeout: 2m}\nrepositories: [{url: file:///b}]\n"
      "jobs: {backup: {schedule: \"@hourly\"}}\nalerts: {webhooks: [{url: \"http://h/\", timeout: 250ms}]}\n",
      kFile, NoFileChecks());
  EXPECT_EQ(c.etcd.dial_timeout, 1500ms);
  EXPECT_EQ(c.etcd.command_timeout, 120s);
  EXPECT_EQ(c.webhooks[0].timeout, 250ms);
}

TEST(ConfigTest, SyntaxAndShapeErrors) {
  ExpectError("", 1, "", "the file is empty");
  ExpectError("etcd: [\n", 2, "", "YAML syntax error");
  ExpectError("- a\n- b\n", 1, "(top level)", "expected a map of keys, got a list");
  ExpectError(kBase + "timezone: UTC\ntimezone: UTC\n", 9, "timezone", "duplicate key");
  ExpectError(kBase + "timezon: UTC\n", 8, "timezon", "unknown key (did you mean \"timezone\"?)");
  ExpectError(kBase + "colour: red\n", 8, "colour", "unknown key (known here: timezone, etcd, repositories");
  ExpectError(kBase + "    retention: {keep_dayly: 3}\n", 8, "jobs.backup.retention.keep_dayly",
              "unknown key (did you mean \"keep_daily\"?)");
  ExpectError(kBase + "    schedul: x\n", 8, "jobs.backup.schedul", "did you mean \"schedule\"?");
  ExpectError(kBase + "log: json\n", 8, "log", "expected a map of keys, got \"json\"");
  ExpectError(kBase + "log: {format: xml}\n", 8, "log.format", "unknown format \"xml\" (want auto, text or json)");
  ExpectError(kBase + "shutdown_grace: 0s\n", 8, "shutdown_grace", "must be positive");
  ExpectError(kBase + "shutdown_grace: 30\n", 8, "shutdown_grace", "missing unit");
  ExpectError(kBase + "shutdown_grace: [1s]\n", 8, "shutdown_grace", "expected a string, got a list");
  ExpectError(kBase + "state_dir:\n", 8, "state_dir", "no value given (write \"\" for an empty string)");
  ExpectError(kBase + "  drill:\n  prune: {schedule: \"@daily\"}\n", 8, "jobs.drill", "no value given");
  ExpectError(kBase + "compression: lz4\n", 8, "compression", "unknown compression \"lz4\" (want zstd, gzip or none)");
  ExpectError(kBase + "compression_level: 25\n", 8, "compression_level", "25 is out of range 0..19");
  ExpectError(kBase + "compression: gzip\ncompression_level: 12\n", 9, "compression_level", "12 is out of range 0..9");
  ExpectError(kBase + "compression_level: high\n", 8, "compression_level", "expected a whole number, got \"high\"");
  ExpectError(kBase + "name_prefix: a/b\n", 8, "name_prefix", "letters, digits");
  ExpectError(kBase + "http: {listen: localhost}\n", 8, "http.listen", "want host:port");
  ExpectError(kBase + "http: {listen: \"127.0.0.1:70000\"}\n", 8, "http.listen", "bad port \"70000\" (want 0..65535)");
  ExpectError(kBase + "http: {listen: \":9464\"}\n", 8, "http.listen", "missing host");
  ExpectError(kBase + "http: {listen: \"::1:9464\"}\n", 8, "http.listen", "put an IPv6 address in brackets");
  EXPECT_EQ(ParseConfig(kBase + "http: {listen: \"[::1]:0\"}\n", kFile, NoFileChecks()).http_listen, "[::1]:0");
}

TEST(ConfigTest, SecretsAreRefused) {
  ExpectError(kBase + "encryption: {passphrase: hunter2}\n", 8, "encryption.passphrase",
              "secrets are not written in the config file: use encryption.passphrase_file");
  ExpectError(kBase + "encryption: {key_hex: 00ff}\n", 8, "encryption.key_hex",
              "secrets are not written in the config file: use encryption.key_file");
  ExpectError(kBase + "encryption: {key: 00ff}\n", 8, "encryption.key", "use encryption.key_file");
  ExpectError(
      "etcd:\n  endpoints: [h:1]\n  password: pw\nrepositories: [{url: file:///b}]\njobs: {backup: {schedule: x}}\n", 3,
      "etcd.password", "secrets are not written in the config file: use etcd.password_file");
  ExpectError("etcd: {endpoints: [h:1], user: \"root:pw\"}\n", 1, "etcd.user",
              "give the user name only and the password in etcd.password_file");
  ExpectError("etcd: {endpoints: [h:1]}\nrepositories:\n  - url: s3://bucket\n    s3:\n      secret_access_key: x\n", 5,
              "repositories[0].s3.secret_access_key",
              "use repositories[].s3.credentials_file or the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY");
  ExpectError("etcd: {endpoints: [h:1]}\nrepositories:\n  - url: s3://bucket\n    s3: {access_key_id: AKIA}\n", 4,
              "repositories[0].s3.access_key_id", "secrets are not written");
  ExpectError("etcd: {endpoints: [h:1]}\nrepositories: [{url: \"s3://AKIA:secret@bucket\"}]\n", 2,
              "repositories[0].url", "credentials in the URL are not allowed");
  ExpectError(kBase + "alerts:\n  webhooks:\n    - url: http://h/\n      bearer_token: abc\n", 11,
              "alerts.webhooks[0].bearer_token", "use alerts.webhooks[].bearer_token_file");
  ExpectError(kBase + "alerts: {webhooks: [{url: \"https://u:p@h/x\"}]}\n", 8, "alerts.webhooks[0].url",
              "credentials in the URL are not allowed");
  ExpectError("etcd: {endpoints: [\"http://root:pw@h:1\"]}\n", 1, "etcd.endpoints[0]",
              "invalid endpoint \"http://root:***@h:1\": credentials");
  // The refused secret never shows up in the message.
  EXPECT_EQ(ErrorOf(kBase + "encryption: {passphrase: hunter2}\n").find("hunter2"), std::string::npos);
  EXPECT_EQ(ErrorOf("etcd: {endpoints: [h:1], user: \"root:pw123\"}\n").find("pw123"), std::string::npos);
}

TEST(ConfigTest, EtcdErrors) {
  ExpectError("repositories: [{url: file:///b}]\njobs: {backup: {schedule: \"@daily\"}}\n", 1, "etcd", "required");
  ExpectError("etcd: {}\n", 1, "etcd.endpoints", "required");
  ExpectError("etcd:\n  endpoints: []\n", 2, "etcd.endpoints", "needs at least one endpoint");
  ExpectError("etcd:\n  endpoints: h:1\n", 2, "etcd.endpoints", "expected a list, got \"h:1\"");
  ExpectError("etcd:\n  endpoints:\n    - h:1\n    - https://h\n", 4, "etcd.endpoints[1]",
              "invalid endpoint \"https://h\"");
  ExpectError("etcd:\n  endpoints: [h:1]\n  cert: c.crt\n", 3, "etcd.cert",
              "etcd.cert and etcd.key must be given together (etcd.key is missing)");
  ExpectError("etcd:\n  endpoints: [h:1]\n  key: c.key\n", 3, "etcd.key",
              "etcd.cert and etcd.key must be given together (etcd.cert is missing)");
  ExpectError("etcd:\n  endpoints: [h:1]\n  user: root\n", 3, "etcd.user", "needs etcd.password_file");
  ExpectError("etcd:\n  endpoints: [h:1]\n  password_file: pw\n", 3, "etcd.password_file", "needs etcd.user");
  ExpectError("etcd:\n  endpoints: [h:1]\n  dial_timeout: 0s\n", 3, "etcd.dial_timeout", "must be positive");
  ExpectError("etcd:\n  endpoints: [h:1]\n  dial_timeout: soon\n", 3, "etcd.dial_timeout", "bad duration \"soon\"");
  ExpectError("etcd:\n  endpoints: [h:1]\n  insecure_skip_tls_verify: maybe\n", 3, "etcd.insecure_skip_tls_verify",
              "expected true or false, got \"maybe\"");
}

TEST(ConfigTest, RepositoryErrors) {
  const std::string head = "etcd: {endpoints: [h:1]}\n";  // line 1
  ExpectError(head + "jobs: {backup: {schedule: \"@daily\"}}\n", 1, "repositories",
              "required: at least one repository");
  ExpectError(head + "repositories: []\n", 2, "repositories", "needs at least one repository");
  ExpectError(head + "repositories: {url: file:///b}\n", 2, "repositories", "expected a list, got a map");
  ExpectError(head + "repositories:\n  - name: a\n", 3, "repositories[0].url", "required");
  ExpectError(head + "repositories:\n  - url: file:///a\n  - url: ftp://host/b\n", 4, "repositories[1].url",
              "unknown repository scheme in \"ftp://host/b\": want file:///path or s3://bucket/prefix");
  ExpectError(head + "repositories:\n  - url: \"ftp://user:pw@host/b\"\n", 3, "repositories[0].url",
              "unknown repository scheme in \"ftp://user:***@host/b\"");
  ExpectError(head + "repositories:\n  - url: file://backups\n", 3, "repositories[0].url",
              "a file URL needs an absolute path (file:///dir)");
  ExpectError(head + "repositories:\n  - url: /var/backups\n", 3, "repositories[0].url", "unknown repository scheme");
  ExpectError(head + "repositories:\n  - url: s3://Bad_Bucket/x\n", 3, "repositories[0].url",
              "bad S3 bucket name \"Bad_Bucket\"");
  ExpectError(head + "repositories:\n  - url: s3://bucket/a/../b\n", 3, "repositories[0].url", "s3://bucket/a/../b");
  ExpectError(head + "repositories:\n  - {name: x, url: file:///a}\n  - {name: x, url: file:///b}\n", 4,
              "repositories[1].name", "duplicate repository name \"x\" (also repositories[0])");
  ExpectError(head + "repositories:\n  - url: file:///a\n  - url: file:///a/\n", 4, "repositories[1].url",
              "the same repository as repositories[0]");
  ExpectError(head + "repositories:\n  - url: file:///a\n    s3: {region: eu-west-1}\n", 4, "repositories[0].s3",
              "only for s3:// repositories");
  ExpectError(head + "repositories:\n  - url: s3://bucket\n    s3:\n      endpoint: s3.example.com\n", 5,
              "repositories[0].s3.endpoint", "want an http:// or https:// URL");
  ExpectError(head + "repositories:\n  - url: s3://bucket\n    s3: {path_style: sometimes}\n", 4,
              "repositories[0].s3.path_style", "expected true or false");
  ExpectError(head + "repositories:\n  - url: s3://bucket\n    s3: {regoin: x}\n", 4, "repositories[0].s3.regoin",
              "did you mean \"region\"?");
  ExpectError(head + "repositories:\n  - url: s3://bucket\n    bucket: x\n", 4, "repositories[0].bucket",
              "unknown key");
}

TEST(ConfigTest, EncryptionErrors) {
  ExpectError(kBase + "encryption:\n  key_file: /k\n  passphrase_file: /p\n", 10, "encryption.passphrase_file",
              "give only one of encryption.key_file and encryption.passphrase_file");
}

TEST(ConfigTest, JobErrors) {
  const std::string head = "etcd: {endpoints: [h:1]}\nrepositories: [{name: main, url: file:///b}]\n";  // lines 1-2
  ExpectError(head, 1, "jobs", "required: enable at least one of jobs.backup, jobs.drill, jobs.prune");
  ExpectError(head + "jobs: {}\n", 3, "jobs", "no job enabled");
  ExpectError(head + "jobs:\n  backup:\n    retention: {keep_last: 3}\n", 5, "jobs.backup.schedule", "required (e.g.");
  ExpectError(head + "jobs:\n  backup:\n    schedule: \"0 */6 * *\"\n", 5, "jobs.backup.schedule",
              "\"0 */6 * *\": cron needs 5 fields");
  ExpectError(head + "jobs:\n  backup:\n    schedule: \"0 0 30 2 *\"\n", 5, "jobs.backup.schedule",
              "\"0 0 30 2 *\" never fires");
  ExpectError(head + "jobs:\n  backup:\n    schedule: \"@fortnightly\"\n", 5, "jobs.backup.schedule",
              "unknown descriptor @fortnightly");
  ExpectError(head + "jobs:\n  backup:\n    schedule: \"@daily\"\n    retention:\n      keep_daily: -1\n", 7,
              "jobs.backup.retention.keep_daily", "-1 is out of range 0..1000000");
  ExpectError(head + "jobs:\n  backup:\n    schedule: \"@daily\"\n    retention:\n      keep_within: 7x\n", 7,
              "jobs.backup.retention.keep_within", "as prune --keep-within");
  ExpectError(head + "jobs:\n  backup:\n    schedule: \"@daily\"\n    retention:\n      utc_offset: \"+25:00\"\n", 7,
              "jobs.backup.retention.utc_offset", "");
  ExpectError(head + "jobs:\n  backup:\n    schedule: \"@daily\"\n    retry: {max_attempts: 0}\n", 6,
              "jobs.backup.retry.max_attempts", "0 is out of range 1..100");
  ExpectError(
      head +
          "jobs:\n  backup:\n    schedule: \"@daily\"\n    retry:\n      initial_backoff: 1m\n      max_backoff: 10s\n",
      8, "jobs.backup.retry.max_backoff", "must not be shorter than initial_backoff (60s)");
  ExpectError(head + "jobs:\n  backup:\n    schedule: \"@daily\"\n    max_age: 0s\n", 6, "jobs.backup.max_age",
              "must be positive");
  ExpectError(head + "jobs:\n  backup:\n    schedule: \"@daily\"\n    max_age: 90.5s\n", 6, "jobs.backup.max_age",
              "not a whole number of seconds");
  ExpectError(head + "jobs:\n  drill:\n    schedule: \"@daily\"\n    repository: offsite\n", 6, "jobs.drill.repository",
              "no repository named \"offsite\" (have: main)");
  ExpectError(head + "jobs:\n  drill:\n    schedule: \"@daily\"\n    not_kubernetes: 1\n", 6,
              "jobs.drill.not_kubernetes", "expected true or false");
  ExpectError(head + "jobs:\n  drill:\n    schedule: \"@daily\"\n    backup: \"\"\n", 6, "jobs.drill.backup",
              "must not be empty");
  ExpectError(head + "jobs:\n  prune:\n    schedule: \"@weekly\"\n", 5, "jobs.prune.retention", "required");
  ExpectError(head + "jobs:\n  prune:\n    schedule: \"@weekly\"\n    retention: {}\n", 6, "jobs.prune.retention",
              "no retention policy given");
  ExpectError(head + "jobs:\n  backup:\n    schedule: \"@daily\"\n  backups: {}\n", 6, "jobs.backups",
              "did you mean \"backup\"?");
  // A drill alone is a valid set of jobs; drill.max_age 0 means any age.
  AgentConfig c =
      ParseConfig(head + "jobs: {drill: {schedule: \"@every 1h\", max_age: \"0\"}}\n", kFile, NoFileChecks());
  EXPECT_TRUE(c.drill.enabled);
  EXPECT_FALSE(c.backup.enabled);
  EXPECT_EQ(c.drill.max_age, 0s);
  EXPECT_EQ(c.drill.repository, "main");
  // An empty backup retention is allowed (no pruning after backups).
  EXPECT_TRUE(ParseConfig(head + "jobs: {backup: {schedule: \"@daily\", retention: {}}}\n", kFile, NoFileChecks())
                  .backup.retention.Empty());
}

TEST(ConfigTest, WebhookErrors) {
  ExpectError(kBase + "alerts:\n  webhooks:\n    - url: http://h/\n    - format: slack\n", 11, "alerts.webhooks[1].url",
              "required");
  ExpectError(kBase + "alerts:\n  webhooks:\n    - url: ftp://h/\n", 10, "alerts.webhooks[0].url",
              "want an http:// or https:// URL");
  ExpectError(kBase + "alerts:\n  webhooks:\n    - url: http://h/\n      format: teams\n", 11,
              "alerts.webhooks[0].format", "unknown format \"teams\" (want alertmanager, slack or json)");
  ExpectError(kBase + "alerts:\n  webhooks:\n    - url: http://h/\n      max_attempts: 0\n", 11,
              "alerts.webhooks[0].max_attempts", "out of range 1..100");
  ExpectError(kBase + "alerts:\n  webhooks:\n    - url: http://h/\n      timeout: -1s\n", 11,
              "alerts.webhooks[0].timeout", "bad duration");
  ExpectError(kBase + "alerts: {webhook: []}\n", 8, "alerts.webhook", "did you mean \"webhooks\"?");
  ExpectError(kBase + "alerts: {webhooks: {url: x}}\n", 8, "alerts.webhooks", "expected a list");
  AgentConfig c =
      ParseConfig(kBase + "alerts: {webhooks: [{url: \"http://h/\", format: json}]}\n", kFile, NoFileChecks());
  EXPECT_EQ(c.webhooks[0].format, WebhookConfig::Format::kJson);
}

// jobs.continuous (issue 9): the issue's form, defaults, millisecond durations, sizes.
const std::string kContinuousHead =
    "etcd:\n"                              // 1
    "  endpoints: [127.0.0.1:2379]\n"      // 2
    "repositories:\n"                      // 3
    "  - url: file:///var/backups/etcd\n"  // 4
    "  - {name: far, url: s3://bucket/x}\n"  // 5
    "jobs:\n"                              // 6
    "  continuous:\n";                     // 7 (keys from line 8 on)

TEST(ConfigTest, ContinuousJob) {
  // The issue's example, alone (no scheduled job is needed).
  AgentConfig c = ParseConfig(
      "etcd: {endpoints: [127.0.0.1:2379]}\nrepositories: [{url: file:///r}]\nstate_dir: /st\n"
      "jobs: {continuous: {segment_max_age: 1s, full_every: 24h}}\n",
      kFile, NoFileChecks());
  EXPECT_TRUE(c.continuous.enabled);
  EXPECT_FALSE(c.backup.enabled);
  EXPECT_EQ(c.continuous.repository, "file:///r");  // default: the first repository
  EXPECT_EQ(c.continuous.segment_max_age, 1s);
  EXPECT_EQ(c.continuous.full_every, 24h);
  // Defaults: those of backup --follow; the spill dir under state_dir.
  ContinuousJobConfig d;
  EXPECT_EQ(c.continuous.segment_max_bytes, d.segment_max_bytes);
  EXPECT_EQ(c.continuous.heartbeat, 10s);
  EXPECT_EQ(c.continuous.hash_every, 300s);
  EXPECT_EQ(c.continuous.full_every_events, 10000000u);
  EXPECT_EQ(c.continuous.max_spill_bytes, uint64_t{1} << 30);
  EXPECT_EQ(c.continuous.spill_dir, "/st/continuous-spill");
  // An empty block is the defaults; not given, the job is off.
  EXPECT_TRUE(ParseConfig(kContinuousHead.substr(0, kContinuousHead.size() - 1) + " {}\n", kFile, NoFileChecks())
                  .continuous.enabled);
  EXPECT_FALSE(ParseConfig(kBase, kFile, NoFileChecks()).continuous.enabled);

  c = ParseConfig(kContinuousHead +
                      "    repository: far\n"
                      "    segment_max_age: 500ms\n"
                      "    segment_max_size: 64K\n"
                      "    heartbeat: 1m30s\n"
                      "    hash_every: 1500ms\n"
                      "    full_every: 7d\n"
                      "    full_every_events: 0\n"
                      "    spill_dir: spill\n"
                      "    max_spill: 0\n",
                  kFile, NoFileChecks());
  EXPECT_EQ(c.continuous.repository, "far");
  EXPECT_EQ(c.continuous.segment_max_age, 500ms);
  EXPECT_EQ(c.continuous.segment_max_bytes, 65536u);
  EXPECT_EQ(c.continuous.heartbeat, 90s);
  EXPECT_EQ(c.continuous.hash_every, 1500ms);
  EXPECT_EQ(c.continuous.full_every, 7 * 24h);
  EXPECT_EQ(c.continuous.full_every_events, 0u);
  EXPECT_EQ(c.continuous.spill_dir, "/cfg/spill");  // relative to the file
  EXPECT_EQ(c.continuous.max_spill_bytes, 0u);
}

TEST(ConfigTest, ContinuousJobErrors) {
  const std::string h = kContinuousHead;
  ExpectError(h + "    segment_max_age: 0\n", 8, "jobs.continuous.segment_max_age", "must be positive");
  ExpectError(h + "    segment_max_age: 1500us\n", 8, "jobs.continuous.segment_max_age",
              "not a whole number of milliseconds");
  ExpectError(h + "    segment_max_age: 2h\n", 8, "jobs.continuous.segment_max_age", "too long (at most 3600s)");
  ExpectError(h + "    segment_max_age: fast\n", 8, "jobs.continuous.segment_max_age", "fast");
  ExpectError(h + "    segment_max_age: 5s\n    heartbeat: 2s\n", 9, "jobs.continuous.heartbeat",
              "must not be shorter than segment_max_age (5000ms)");
  ExpectError(h + "    segment_max_age: 20s\n", 8, "jobs.continuous.segment_max_age",
              "heartbeat (10000ms) must not be shorter than segment_max_age (20000ms)");
  ExpectError(h + "    segment_max_size: 8MB\n", 8, "jobs.continuous.segment_max_size", "bad size \"8MB\"");
  ExpectError(h + "    segment_max_size: 1KiB\n", 8, "jobs.continuous.segment_max_size",
              "out of range (4KiB .. 512MiB)");
  ExpectError(h + "    segment_max_size: 1GiB\n", 8, "jobs.continuous.segment_max_size", "out of range");
  ExpectError(h + "    max_spill: 99999999999999999999\n", 8, "jobs.continuous.max_spill", "bad size");
  ExpectError(h + "    max_spill: 100000000T\n", 8, "jobs.continuous.max_spill", "too big");
  ExpectError(h + "    max_spill: [1]\n", 8, "jobs.continuous.max_spill", "expected a size");
  ExpectError(h + "    full_every_events: -1\n", 8, "jobs.continuous.full_every_events", "");
  ExpectError(h + "    full_every: 0s\n", 8, "jobs.continuous.full_every", "must be positive");
  ExpectError(h + "    repository: near\n", 8, "jobs.continuous.repository",
              "no repository named \"near\" (have: file:///var/backups/etcd, far)");
  ExpectError(h + "    segment_max_agee: 1s\n", 8, "jobs.continuous.segment_max_agee",
              "unknown key (did you mean \"segment_max_age\"?)");
  ExpectError(h + "    schedule: \"@hourly\"\n", 8, "jobs.continuous.schedule", "unknown key");
  ExpectError(h + "    spill_dir: \"\"\n", 8, "jobs.continuous.spill_dir", "must not be empty");
  ExpectError("encryption: {passphrase_file: /p}\n" + h + "    heartbeat: 10s\n", 9, "jobs.continuous",
              "needs encryption.key_file, not encryption.passphrase_file");
  ExpectError(kContinuousHead.substr(0, kContinuousHead.size() - 1) + " 1s\n", 7, "jobs.continuous",
              "expected a map of keys");
}

// jobs.pki_check: alone is a job; kubernetes_dir relative to the file and checked to be a
// directory (when files are checked); warn_days bounded; errors name file:line: key.
TEST(ConfigTest, PkiCheckJob) {
  testutil::TempDir dir;
  std::filesystem::create_directories(dir.Sub("conf/kubernetes/pki"));
  testutil::WriteFile(dir.Sub("conf/afile"), "x\n");
  const std::string head = "etcd: {endpoints: [h:1]}\nrepositories: [{url: file:///b}]\njobs:\n  pki_check:\n";  // 1-4
  const std::string file = dir.Sub("conf/agent.yaml");
  testutil::WriteFile(file, head + "    schedule: \"@every 1h\"\n    kubernetes_dir: kubernetes\n    warn_days: 45\n");
  AgentConfig c = LoadConfig(file);
  EXPECT_TRUE(c.pki_check.enabled);
  EXPECT_FALSE(c.backup.enabled);
  EXPECT_EQ(c.pki_check.kubernetes_dir, dir.Sub("conf/kubernetes"));
  EXPECT_EQ(c.pki_check.warn_days, 45);
  testutil::WriteFile(file, head + "    schedule: \"@every 1h\"\n");
  EXPECT_EQ(ParseConfig(testutil::ReadFile(file), file, NoFileChecks()).pki_check.kubernetes_dir, "/etc/kubernetes");
  EXPECT_EQ(ParseConfig(testutil::ReadFile(file), file, NoFileChecks()).pki_check.warn_days, 30);
  // A missing or non-directory kubernetes_dir, with file checks on.
  for (const char* bad : {"nowhere", "afile"}) {
    testutil::WriteFile(file, head + "    schedule: \"@every 1h\"\n    kubernetes_dir: " + bad + "\n");
    std::string msg = ErrorOf(testutil::ReadFile(file), LoadOptions{}, file);
    EXPECT_EQ(msg.rfind(file + ":6: jobs.pki_check.kubernetes_dir: " + dir.Sub("conf/") + bad + ": "), 0u) << msg;
    EXPECT_NE(msg.find(std::string(bad) == "afile" ? "not a directory" : "No such file"), std::string::npos) << msg;
  }
  ExpectError(head + "    kubernetes_dir: /etc/kubernetes\n", 5, "jobs.pki_check.schedule", "required (e.g.");
  ExpectError(head + "    schedule: \"@daily\"\n    warn_days: -1\n", 6, "jobs.pki_check.warn_days",
              "-1 is out of range 0..3650");
  ExpectError(head + "    schedule: \"@daily\"\n    warn_days: soon\n", 6, "jobs.pki_check.warn_days",
              "expected a whole number");
  ExpectError(head + "    schedule: \"@daily\"\n    kubernetes_dir: \"\"\n", 6, "jobs.pki_check.kubernetes_dir",
              "must not be empty");
  ExpectError(head + "    schedule: \"@daily\"\n    warn_day: 3\n", 6, "jobs.pki_check.warn_day",
              "unknown key (did you mean \"warn_days\"?)");
}

TEST(ConfigTest, DurationAndSizeParsers) {
  EXPECT_EQ(ParseDurationMillis("500ms"), 500ms);
  EXPECT_EQ(ParseDurationMillis("1s"), 1000ms);
  EXPECT_EQ(ParseDurationMillis("1m30s"), 90000ms);
  EXPECT_EQ(ParseDurationMillis("0"), 0ms);
  EXPECT_THROW(ParseDurationMillis("1500us"), Error);
  EXPECT_THROW(ParseDurationMillis("1x"), Error);
  EXPECT_THROW(ParseDuration("500ms"), Error);  // whole seconds there
  EXPECT_EQ(ParseByteSize("0"), 0u);
  EXPECT_EQ(ParseByteSize("123"), 123u);
  EXPECT_EQ(ParseByteSize("7B"), 7u);
  EXPECT_EQ(ParseByteSize("8MiB"), 8u << 20);
  EXPECT_EQ(ParseByteSize("8M"), 8u << 20);
  EXPECT_EQ(ParseByteSize("3KiB"), 3072u);
  EXPECT_EQ(ParseByteSize("2GiB"), uint64_t{2} << 30);
  EXPECT_EQ(ParseByteSize("1TiB"), uint64_t{1} << 40);
  for (const char* bad : {"", "MiB", "8 MiB", "8mib", "8MB", "-1", "1.5GiB", "16777216T", "9999999999999999999"}) {
    EXPECT_THROW(ParseByteSize(bad), Error) << bad;
  }
}

}  // namespace
}  // namespace etcdsafe::agent
