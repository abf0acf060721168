// The parts of restore drills that need no etcd: --max-age parsing, the report (JSON,
// atomic write, summary line), the etcd binary lookup, free loopback ports, and the
// sandbox's guarantees with stand-in etcd binaries (one that exits, one that ignores
// SIGTERM): the process is reaped and the scratch dir removed.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "ops/drill.h"
#include "ops/etcd_process.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::ops {
namespace {

using testutil::TempDir;

TEST(ParseMaxAge, UnitsAndCombinations) {
  EXPECT_EQ(ParseMaxAge("24h").count(), 86400);
  EXPECT_EQ(ParseMaxAge("1d12h").count(), 129600);
  EXPECT_EQ(ParseMaxAge("90m").count(), 5400);
  EXPECT_EQ(ParseMaxAge("45s").count(), 45);
  EXPECT_EQ(ParseMaxAge("1h30m").count(), 5400);
}

TEST(ParseMaxAge, RefusesWithOneLine) {
  for (const char* bad : {"", "0h", "5", "h", "5x", "-1h", "1h-", "1.5h", "99999999999d"}) {
    try {
      ParseMaxAge(bad);
      ADD_FAILURE() << "accepted \"" << bad << "\"";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << bad;
      EXPECT_EQ(std::string(e.what()).rfind("invalid --max-age \"", 0), 0u) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
  }
}

DrillReport Sample(bool ok) {
  DrillReport r;
  r.source = "snap.db";
  r.checks.push_back({"revision", true, "8 (snapshot)", "8", 3});
  r.checks.push_back({"hashkv", ok, "1 at revision 8 (computed offline)", ok ? "1 at revision 8" : "2 at revision 8", 1});
  if (!ok) r.checks.push_back({"essentials", false, "/registry/namespaces/default", "missing", 0});
  r.ok = ok;
  r.exit_code = ok ? 0 : kExitDrillFailed;
  return r;
}

TEST(DrillReport, JsonHasTheDocumentedShape) {
  nlohmann::json j = nlohmann::json::parse(DrillReportJson(Sample(false)));
  EXPECT_EQ(j.size(), 2u);
  EXPECT_FALSE(j["ok"].get<bool>());
  ASSERT_EQ(j["checks"].size(), 3u);
  const auto& c = j["checks"][1];
  EXPECT_EQ(c.size(), 5u);
  EXPECT_EQ(c["name"], "hashkv");
  EXPECT_FALSE(c["ok"].get<bool>());
  EXPECT_EQ(c["expected"], "1 at revision 8 (computed offline)");
  EXPECT_EQ(c["found"], "2 at revision 8");
  EXPECT_EQ(c["ms"], 1);
}

TEST(DrillReport, SummaryNamesEveryFailedCheck) {
  EXPECT_EQ(DrillSummaryLine(Sample(true)).rfind("drill passed: 2 checks on snap.db in 4 ms", 0), 0u);
  EXPECT_EQ(DrillSummaryLine(Sample(false)),
            "drill failed (hashkv, essentials): hashkv: expected 1 at revision 8 (computed offline), found 2 at "
            "revision 8");
  DrillReport one = Sample(true);
  one.checks[0].ok = false;
  one.ok = false;
  EXPECT_EQ(DrillSummaryLine(one), "drill failed (revision): expected 8 (snapshot), found 8");
  std::string table = FormatDrillTable(Sample(false));
  EXPECT_NE(table.find("FAILED"), std::string::npos);
  EXPECT_NE(table.find("CHECK"), std::string::npos);
}

TEST(DrillReport, WrittenAtomicallyOverAnOldOne) {
  TempDir dir;
  const std::string path = dir.Sub("report.json");
  testutil::WriteFile(path, "old");
  WriteDrillReport(path, Sample(true));
  EXPECT_TRUE(nlohmann::json::parse(testutil::ReadFile(path))["ok"].get<bool>());
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) names.push_back(e.path().filename());
  EXPECT_EQ(names, std::vector<std::string>{"report.json"});
}

TEST(FindEtcdBinary, MissingDirectoryOrNotExecutable) {
  TempDir dir;
  auto expect_not_found = [](const std::string& given, const std::string& why) {
    try {
      FindEtcdBinary(given);
      ADD_FAILURE() << given;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kNotFound);
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  };
  expect_not_found(dir.Sub("none"), "No such file or directory");
  expect_not_found(dir.path(), "not a regular file");
  testutil::WriteFile(dir.Sub("plain"), "#!/bin/sh\n");
  ::chmod(dir.Sub("plain").c_str(), 0644);
  expect_not_found(dir.Sub("plain"), "not executable");
  ::chmod(dir.Sub("plain").c_str(), 0755);
  EXPECT_EQ(FindEtcdBinary(dir.Sub("plain")), dir.Sub("plain"));
  expect_not_found("no-such-etcd-binary-here", "not found in PATH");
}

TEST(FreeLoopbackPorts, DistinctBindableBelowTheEphemeralRange) {
  int lo = 32768;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> lo;
  std::vector<int> ports = FreeLoopbackPorts(5);
  ASSERT_EQ(ports.size(), 5u);
  std::sort(ports.begin(), ports.end());
  EXPECT_EQ(std::unique(ports.begin(), ports.end()), ports.end());
  for (int p : ports) {
    EXPECT_NE(p, 2379);
    EXPECT_NE(p, 2380);
    if (lo > 11000) {
      EXPECT_LT(p, lo);
    }
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(p));
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << p;
    ::close(fd);
  }
}

bool Alive(pid_t pid) { return pid > 0 && ::kill(pid, 0) == 0; }

TEST(EtcdSandbox, RemovesScratchDirsOfKilledDrillsOnly) {
  TempDir dir;
  // A killed drill's dir (lock free) and a live one's (locked by "another run": us).
  std::filesystem::create_directories(dir.Sub("etcdsafe-drill-Killed/data/member"));
  std::filesystem::create_directory(dir.Sub("etcdsafe-drill-Living"));
  std::filesystem::create_directory(dir.Sub("etcdsafe-drill-notours-x"));
  int held = ::open(dir.Sub("etcdsafe-drill-Living").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(held, 0);
  ASSERT_EQ(::flock(held, LOCK_EX), 0);
  {
    EtcdSandbox s(dir.path());
    EXPECT_EQ(s.removed_stale(), std::vector<std::string>{dir.Sub("etcdsafe-drill-Killed")});
    EXPECT_TRUE(std::filesystem::is_directory(s.dir()));
    // Our own dir is locked while we live: another run's sweep leaves it alone.
    int probe = ::open(s.dir().c_str(), O_RDONLY | O_DIRECTORY);
    EXPECT_NE(::flock(probe, LOCK_EX | LOCK_NB), 0);
    ::close(probe);
  }
  ::close(held);
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"etcdsafe-drill-Living", "etcdsafe-drill-notours-x"}));
}

TEST(EtcdSandbox, EtcdThatExitsIsReportedWithItsLogAndNothingStays) {
  TempDir dir;
  const std::string fake = dir.Sub("etcd");
  testutil::WriteFile(fake, "#!/bin/sh\necho '{\"level\":\"fatal\",\"msg\":\"cannot start\",\"error\":\"bad db\"}' >&2\n"
                            "exit 3\n");
  ::chmod(fake.c_str(), 0755);
  std::string sandbox_dir;
  {
    EtcdSandbox s(dir.path());
    sandbox_dir = s.dir();
    EXPECT_EQ(sandbox_dir.rfind(dir.Sub("etcdsafe-drill-"), 0), 0u);
    struct stat st{};
    ASSERT_EQ(::stat(sandbox_dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    EtcdStartOptions o;
    o.binary = fake;
    o.data_dir = s.dir() + "/data";
    o.name = "drill";
    try {
      s.StartEtcd(o);
      ADD_FAILURE() << "started";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
      EXPECT_STREQ(e.what(), "etcd exited with status 3 before becoming healthy: etcd: cannot start: bad db");
    }
    EXPECT_FALSE(s.running());
  }
  EXPECT_FALSE(std::filesystem::exists(sandbox_dir));
}

TEST(EtcdSandbox, EtcdIgnoringSigtermIsKilled) {
  TempDir dir;
  const std::string fake = dir.Sub("etcd");
  // One process (exec) that never becomes healthy and ignores SIGTERM.
  testutil::WriteFile(fake,
                      "#!/bin/sh\necho $$ > " + dir.Sub("pid") + "\nexec python3 -c 'import signal, time; signal.signal(signal.SIGTERM, "
                      "signal.SIG_IGN); time.sleep(60)'\n");
  ::chmod(fake.c_str(), 0755);
  std::string sandbox_dir;
  pid_t pid = -1;
  {
    EtcdSandbox s(dir.path());
    sandbox_dir = s.dir();
    EtcdStartOptions o;
    o.binary = fake;
    o.data_dir = s.dir() + "/data";
    o.name = "drill";
    o.start_timeout = std::chrono::milliseconds(700);
    o.stop_timeout = std::chrono::milliseconds(300);
    const auto start = std::chrono::steady_clock::now();
    try {
      s.StartEtcd(o);
      ADD_FAILURE() << "started";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
      EXPECT_EQ(std::string(e.what()).rfind("etcd not healthy after 700 ms", 0), 0u) << e.what();
    }
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
    pid = s.pid();
    EXPECT_EQ(pid, -1);  // reaped
    EXPECT_FALSE(s.running());
  }
  EXPECT_FALSE(std::filesystem::exists(sandbox_dir));
  const pid_t fake_pid = static_cast<pid_t>(std::stol(testutil::ReadFile(dir.Sub("pid"))));
  EXPECT_FALSE(Alive(fake_pid)) << "the stand-in etcd ignoring SIGTERM still runs";
}

}  // namespace
}  // namespace etcdsafe::ops
