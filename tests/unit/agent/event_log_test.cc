// EventLog: both formats parse, one line per event whatever the values hold, no secret in
// any line, whole lines from concurrent writers, and ResolveLogFormat on a real terminal.
#include "agent/event_log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "base/error.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::agent {
namespace {

using testutil::TempDir;

class LogFile {
 public:
  LogFile() : path_(dir_.Sub("log")) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    EXPECT_GE(fd_, 0);
  }
  ~LogFile() { ::close(fd_); }
  int fd() const { return fd_; }
  std::string Read() const { return testutil::ReadFile(path_); }
  std::vector<std::string> Lines() const {
    std::vector<std::string> lines;
    std::string all = Read();
    EXPECT_TRUE(all.empty() || all.back() == '\n') << "last line not terminated";
    std::istringstream in(all);
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }

 private:
  TempDir dir_;
  std::string path_;
  int fd_ = -1;
};

const std::regex kTime(R"(^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$)");

TEST(EventLogTest, JsonLineHasFixedKeysThenFieldsWithTypes) {
  LogFile f;
  EventLog log(LogFormat::kJson, f.fd());
  log.Log(LogLevel::kInfo, "backup.done", "backup finished",
          {{"job_id", std::string("b-17")}, {"db_bytes", int64_t{123456789}}, {"seconds", 1.5}, {"ok", true}});
  log.Log(LogLevel::kError, "backup.failed", "", {});
  auto lines = f.Lines();
  ASSERT_EQ(lines.size(), 2u);
  auto j = nlohmann::ordered_json::parse(lines[0]);
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  EXPECT_EQ(keys, (std::vector<std::string>{"time", "level", "event", "msg", "job_id", "db_bytes", "seconds", "ok"}));
  EXPECT_TRUE(std::regex_match(j["time"].get<std::string>(), kTime)) << j["time"];
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["event"], "backup.done");
  EXPECT_EQ(j["msg"], "backup finished");
  EXPECT_EQ(j["job_id"], "b-17");
  EXPECT_TRUE(j["db_bytes"].is_number_integer());
  EXPECT_EQ(j["db_bytes"].get<int64_t>(), 123456789);
  EXPECT_DOUBLE_EQ(j["seconds"].get<double>(), 1.5);
  EXPECT_EQ(j["ok"], true);
  auto j2 = nlohmann::json::parse(lines[1]);
  EXPECT_EQ(j2["level"], "error");
  EXPECT_EQ(j2["msg"], "");
}

TEST(EventLogTest, TextLineIsTimeLevelEventMessageThenKeyValues) {
  LogFile f;
  EventLog log(LogFormat::kText, f.fd());
  log.Log(LogLevel::kWarn, "backup.retry", "etcd unreachable",
          {{"job_id", std::string("b-17")},
           {"reason", std::string("connection refused")},
           {"quote", std::string("say \"hi\" \\ there")},
           {"empty", std::string()},
           {"n", int64_t{-3}},
           {"secs", 0.25},
           {"ok", false}});
  auto lines = f.Lines();
  ASSERT_EQ(lines.size(), 1u);
  const std::string& l = lines[0];
  size_t sp = l.find(' ');
  ASSERT_NE(sp, std::string::npos);
  EXPECT_TRUE(std::regex_match(l.substr(0, sp), kTime)) << l;
  EXPECT_EQ(l.substr(sp + 1),
            "WARN backup.retry etcd unreachable job_id=b-17 reason=\"connection refused\" "
            "quote=\"say \\\"hi\\\" \\\\ there\" empty=\"\" n=-3 secs=0.25 ok=false");
}

TEST(EventLogTest, ControlCharactersCannotForgeASecondLine) {
  const std::string forged = "x\n2026-01-01T00:00:00.000Z ERROR fake.event injected\r\x1b[31m";
  for (LogFormat fmt : {LogFormat::kJson, LogFormat::kText}) {
    LogFile f;
    EventLog log(fmt, f.fd());
    log.Log(LogLevel::kInfo, "ev\nent", forged, {{"value", forged}, {"bad\nkey", std::string("v")}});
    auto lines = f.Lines();
    ASSERT_EQ(lines.size(), 1u) << f.Read();
    EXPECT_EQ(lines[0].find('\r'), std::string::npos);
    EXPECT_EQ(lines[0].find('\x1b'), std::string::npos);
    if (fmt == LogFormat::kJson) {
      auto j = nlohmann::json::parse(lines[0]);
      EXPECT_EQ(j["msg"], forged);  // escaped in the line, intact once parsed
      EXPECT_EQ(j["value"], forged);
    } else {
      EXPECT_NE(lines[0].find("x\\n2026-01-01"), std::string::npos) << lines[0];
      EXPECT_NE(lines[0].find("\\x1b[31m"), std::string::npos) << lines[0];
      EXPECT_NE(lines[0].find(" bad_key=v"), std::string::npos) << lines[0];
    }
  }
}

TEST(EventLogTest, InvalidUtf8StillGivesValidJson) {
  LogFile f;
  EventLog log(LogFormat::kJson, f.fd());
  log.Log(LogLevel::kInfo, "e", std::string("bad \xff\xfe bytes"), {{"v", std::string("\xc3")}});
  auto lines = f.Lines();
  ASSERT_EQ(lines.size(), 1u);
  auto j = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(j["msg"], "bad \xEF\xBF\xBD\xEF\xBF\xBD bytes");
}

TEST(EventLogTest, ReservedKeysAreRenamedNotOverwritten) {
  EventLog log(LogFormat::kJson, -1);
  auto j = nlohmann::json::parse(log.Format(LogLevel::kInfo, "e", "m", {{"level", std::string("x")}, {"msg", int64_t{1}}}));
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["msg"], "m");
  EXPECT_EQ(j["field.level"], "x");
  EXPECT_EQ(j["field.msg"], 1);
}

TEST(EventLogTest, LongValuesAreCut) {
  EventLog log(LogFormat::kJson, -1);
  auto j = nlohmann::json::parse(log.Format(LogLevel::kInfo, "e", std::string(100000, 'a')));
  std::string msg = j["msg"];
  EXPECT_LT(msg.size(), 17000u);
  EXPECT_NE(msg.find("bytes cut)"), std::string::npos);
}

TEST(EventLogTest, SecretKeysAreRedactedWhateverTheirType) {
  const LogFields fields = {{"password", std::string("hunter2")},
                            {"S3_SECRET_ACCESS_KEY", std::string("wJalrXUtnFEMI")},
                            {"bearer_token", std::string("tok-abc")},
                            {"Authorization", std::string("Basic dXNlcjpwYXNz")},
                            {"aws_access_key_id", std::string("AKIAEXAMPLE")},
                            {"encryption_key_hex", std::string("00112233")},
                            {"private_key", std::string("-----BEGIN")},
                            {"passphrase", int64_t{1234}},
                            {"credentials", true},
                            {"session_token", 3.1415926},
                            {"key_file", std::string("/etc/etcdsafe/key")}};
  for (LogFormat fmt : {LogFormat::kJson, LogFormat::kText}) {
    EventLog log(fmt, -1);
    std::string line = log.Format(LogLevel::kInfo, "e", "m", fields);
    for (const char* secret : {"hunter2", "wJalrXUtnFEMI", "tok-abc", "dXNlcjpwYXNz", "AKIAEXAMPLE", "00112233",
                               "BEGIN", "1234", "true", "3.1415926"}) {
      EXPECT_EQ(line.find(secret), std::string::npos) << secret << " in " << line;
    }
    EXPECT_NE(line.find("/etc/etcdsafe/key"), std::string::npos) << "a key file's path is not a secret: " << line;
    if (fmt == LogFormat::kJson) {
      auto j = nlohmann::json::parse(line);
      EXPECT_EQ(j["password"], "[redacted]");
      EXPECT_EQ(j["passphrase"], "[redacted]");
      EXPECT_EQ(j["credentials"], "[redacted]");
    } else {
      EXPECT_NE(line.find("password=[redacted]"), std::string::npos) << line;
    }
  }
}

struct RedactCase {
  std::string in, want, secret;
};

TEST(RedactSecretsTest, EveryPattern) {
  const std::vector<RedactCase> cases = {
      {"GET https://user:s3cr3t@example.com:9000/b/k failed", "GET https://***@example.com:9000/b/k failed", "s3cr3t"},
      {"s3://AKIA:wJalr@bucket/prefix", "s3://***@bucket/prefix", "wJalr"},
      {"https://ghp_tokenonly@github.com/x", "https://***@github.com/x", "ghp_tokenonly"},
      {"PUT https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4&X-Amz-Signature=deadbeef: 403",
       "PUT https://b.s3.amazonaws.com/k?*** 403", "deadbeef"},
      {"url=\"http://h/p?token=abc123\"", "url=\"http://h/p?***\"", "abc123"},
      {"post to https://hooks.slack.com/services/T000/B000/XXXXsecret failed",
       "post to https://hooks.slack.com/services/*** failed", "XXXXsecret"},
      {"hooks.slack.com/services/T1/B2/C3secret", "hooks.slack.com/services/***", "C3secret"},
      {"https://discord.com/api/webhooks/123/discordsecret", "https://discord.com/api/webhooks/***", "discordsecret"},
      {"query X-Amz-Signature=abcdef0123&X-Amz-Date=2026", "query X-Amz-Signature=***&X-Amz-Date=2026", "abcdef0123"},
      {"Signature=sigval&AWSAccessKeyId=AKIDval&Expires=1", "Signature=***&AWSAccessKeyId=***&Expires=1", "AKIDval"},
      {"X-Amz-Credential=AKIA/2026/us-east-1 rest", "X-Amz-Credential=*** rest", "AKIA/2026"},
      {"header Authorization: Bearer eyJhbGciOi.payload.sig", "header Authorization: ***", "eyJhbGciOi"},
      {"sent bearer abc.def-ghi to it", "sent bearer *** to it", "abc.def-ghi"},
      {"Authorization: Basic dXNlcjpwYXNz\nnext", "Authorization: ***\nnext", "dXNlcjpwYXNz"},
      {"{\"Authorization\":\"Token xyz\"}", "{\"Authorization\":\"***\"}", "xyz"},
      {"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI env", "AWS_SECRET_ACCESS_KEY=*** env", "wJalrXUtnFEMI"},
      {"password=\"two words\" end", "password=\"***\" end", "two words"},
  };
  for (const auto& c : cases) {
    std::string got = RedactSecrets(c.in);
    EXPECT_EQ(got, c.want) << c.in;
    EXPECT_EQ(got.find(c.secret), std::string::npos) << c.in;
    EXPECT_EQ(RedactSecrets(got), got) << "not idempotent: " << c.in;
  }
}

TEST(RedactSecretsTest, LeavesOrdinaryTextAlone) {
  for (std::string s : {"backup b-17 of https://127.0.0.1:2379 done, 12 MiB in 1.5s", "file:///var/backups/etcd",
                        "s3://bucket/prefix", "keep_last=24 retention applied", "http://alertmanager:9093/api/v2/alerts",
                        "a bearer of bad news", "Bearer", "user@example.com wrote"}) {
    EXPECT_EQ(RedactSecrets(s), s);
  }
}

TEST(EventLogTest, SecretsInMessagesAndValuesNeverReachTheLine) {
  for (LogFormat fmt : {LogFormat::kJson, LogFormat::kText}) {
    LogFile f;
    EventLog log(fmt, f.fd());
    log.Log(LogLevel::kError, "notify.failed", "POST https://hooks.slack.com/services/T/B/slacksecret: 500",
            {{"url", std::string("https://admin:pa55word@am.example/api/v2/alerts")},
             {"error", std::string("GET https://b.s3/k?X-Amz-Signature=feedface failed")},
             {"header", std::string("Bearer jwt.token.value")}});
    std::string all = f.Read();
    for (const char* secret : {"slacksecret", "pa55word", "feedface", "jwt.token.value"}) {
      EXPECT_EQ(all.find(secret), std::string::npos) << secret << " in " << all;
    }
    EXPECT_NE(all.find("am.example/api/v2/alerts"), std::string::npos) << all;
  }
}

TEST(EventLogTest, ConcurrentWritersProduceWholeLines) {
  LogFile f;
  EventLog log(LogFormat::kJson, f.fd());
  constexpr int kThreads = 8, kLines = 300;
  // Lines longer than PIPE_BUF, so a torn write would show.
  const std::string payload(6000, 'p');
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kLines; i++) {
        log.Log(LogLevel::kInfo, "load", "line", {{"thread", int64_t{t}}, {"i", int64_t{i}}, {"payload", payload}});
      }
    });
  }
  for (auto& th : threads) th.join();
  auto lines = f.Lines();
  ASSERT_EQ(lines.size(), size_t{kThreads * kLines});
  std::vector<int> next(kThreads, 0);
  for (const auto& l : lines) {
    auto j = nlohmann::json::parse(l);  // throws on a torn line
    int t = j["thread"], i = j["i"];
    EXPECT_EQ(i, next[t]++) << "thread " << t << " out of order";
    EXPECT_EQ(j["payload"], payload);
  }
}

TEST(ResolveLogFormatTest, AutoIsTextOnATerminalAndJsonOtherwise) {
  int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  ASSERT_GE(master, 0);
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  int tty = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
  ASSERT_GE(tty, 0);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  EXPECT_EQ(ResolveLogFormat("auto", tty), LogFormat::kText);
  EXPECT_EQ(ResolveLogFormat("auto", fds[1]), LogFormat::kJson);
  EXPECT_EQ(ResolveLogFormat("json", tty), LogFormat::kJson);
  EXPECT_EQ(ResolveLogFormat("text", fds[1]), LogFormat::kText);
  EXPECT_THROW(ResolveLogFormat("yaml", fds[1]), Error);
  ::close(tty);
  ::close(master);
  ::close(fds[0]);
  ::close(fds[1]);
}

}  // namespace
}  // namespace etcdsafe::agent
