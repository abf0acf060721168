// End-to-end tests of the repository lock with the real etcdsafe binary: a lock held in
// another PID namespace (`unshare --pid`, as a `--network host` container or a
// hostNetwork pod shares the node's host name) is never taken for a dead process on this
// host; a lock removed behind its holder's back is noticed before a commit (CheckHeld);
// `etcdsafe unlock` shows what it removes. file:// and s3:// (a local s3rver).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "testutil/cli.h"
#include "testutil/etcd_server.h"
#include "testutil/s3_server.h"
#include "testutil/temp_dir.h"

namespace etcdsafe {
namespace {

using testutil::CmdResult;
using testutil::Concat;
using testutil::EtcdServer;
using testutil::TempDir;

CmdResult Etcdsafe(const std::vector<std::string>& args) { return testutil::Exec(ETCDSAFE_BINARY, args); }

// A child process with a pipe to its stdin and one from its stdout.
class Child {
 public:
  explicit Child(const std::vector<std::string>& args) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      std::vector<char*> argv;
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    in_ = in[1];
    out_ = out[0];
  }
  ~Child() {
    CloseStdin();
    if (out_ >= 0) ::close(out_);
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  // The next line of its stdout, "" after 20 s or at EOF.
  std::string ReadLine() {
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (;;) {
      size_t nl = buf_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
      if (left.count() <= 0) return "";
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[4096];
      ssize_t n = ::read(out_, chunk, sizeof chunk);
      if (n <= 0) return "";
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }
  std::string Ask(const std::string& command) {
    std::string line = command + "\n";
    if (::write(in_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return "";
    return ReadLine();
  }
  void CloseStdin() {
    if (in_ >= 0) ::close(in_);
    in_ = -1;
  }
  // Exit code after closing stdin; -1 if it is still running after 20 s.
  int Finish() {
    CloseStdin();
    for (int i = 0; i < 2000; i++) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      ::usleep(10000);
    }
    return -1;
  }
  void Kill() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1;
  std::string buf_;
};

// A pid that no process on this host has right now, from the top of the range (pids
// are handed out upwards from the last one, so it stays free for the test's seconds).
pid_t FreePid() {
  long max = std::strtol(testutil::ReadFile("/proc/sys/kernel/pid_max").c_str(), nullptr, 10);
  for (pid_t p = static_cast<pid_t>(max) - 100; p > 300; p--) {
    if (::kill(p, 0) != 0 && errno == ESRCH) return p;
  }
  throw std::runtime_error("no free pid");
}

uint64_t OurPidNamespace() {
  struct stat st {};
  if (::stat("/proc/self/ns/pid", &st) != 0) throw std::runtime_error("stat /proc/self/ns/pid");
  return st.st_ino;
}

std::string HostName() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

class LockCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ::setenv("AWS_ACCESS_KEY_ID", "S3RVER", 1);
    ::setenv("AWS_SECRET_ACCESS_KEY", "S3RVER", 1);
    server_ = new EtcdServer();
    auto c = client::EtcdClient::Connect(server_->client_config());
    for (int i = 0; i < 50; i++) c->Put("/registry/configmaps/default/cm-" + std::to_string(i), std::string(300, 'v'));
  }
  static void TearDownTestSuite() { delete server_; }

  // Makes `repo` a repository with one backup (as users do: the first backup creates it).
  void FirstBackup(const std::string& repo, const std::vector<std::string>& extra = {}) {
    CmdResult r = Etcdsafe(Concat({"backup", "--repo", repo, "--endpoints", server_->client_url()}, extra));
    ASSERT_EQ(r.code, 0) << r.err;
  }

  // The holder's lock survives a prune on this host (exit 11, naming it), the holder
  // still holds it; `unlock` keeps it, `unlock --force` removes it and says so, and the
  // holder then knows it lost it.
  void ProveHolderSurvives(Child& holder, const std::string& repo, const std::vector<std::string>& flags,
                           pid_t pid, const std::string& lock_name, const std::function<bool()>& lock_exists) {
    CmdResult prune = Etcdsafe(Concat({"prune", "--repo", repo, "--keep-last", "1"}, flags));
    EXPECT_EQ(prune.code, 11) << prune.out << prune.err;
    EXPECT_NE(prune.err.find("is locked by backup on host " + HostName() + " (pid " + std::to_string(pid) + ")"),
              std::string::npos)
        << prune.err;
    EXPECT_TRUE(testutil::IsOneLineError(prune)) << prune.err;
    EXPECT_TRUE(lock_exists());
    CmdResult backup = Etcdsafe(Concat({"backup", "--repo", repo, "--endpoints", server_->client_url()}, flags));
    EXPECT_EQ(backup.code, 11) << backup.err;
    EXPECT_EQ(holder.Ask("check"), "held");

    CmdResult unlock = Etcdsafe(Concat({"unlock", "--repo", repo}, flags));
    EXPECT_EQ(unlock.code, 0) << unlock.err;
    EXPECT_NE(unlock.out.find("kept " + lock_name + ": backup on host " + HostName() + " (pid " +
                              std::to_string(pid) + ")"),
              std::string::npos)
        << unlock.out;
    EXPECT_NE(unlock.out.find("no stale locks to remove"), std::string::npos) << unlock.out;
    EXPECT_TRUE(lock_exists());
    EXPECT_EQ(holder.Ask("check"), "held");

    CmdResult force = Etcdsafe(Concat({"unlock", "--repo", repo, "--force"}, flags));
    EXPECT_EQ(force.code, 0) << force.err;
    EXPECT_NE(force.out.find("removed " + lock_name + ": backup on host " + HostName() + " (pid " +
                             std::to_string(pid) + ")"),
              std::string::npos)
        << force.out;
    EXPECT_NE(force.out.find("removed by --force"), std::string::npos) << force.out;
    EXPECT_FALSE(lock_exists());
    std::string check = holder.Ask("check");
    EXPECT_NE(check.find("lost: "), std::string::npos) << check;
    EXPECT_NE(check.find("this backup lost its repository lock " + lock_name), std::string::npos) << check;
    EXPECT_EQ(holder.Finish(), 0);
    // Nothing is left, and the repository works again.
    EXPECT_FALSE(lock_exists());
    CmdResult ok = Etcdsafe(Concat({"prune", "--repo", repo, "--keep-last", "1"}, flags));
    EXPECT_EQ(ok.code, 0) << ok.err;
  }

  static EtcdServer* server_;
  TempDir dir_;
};
EtcdServer* LockCli::server_ = nullptr;

std::vector<std::string> Unshare(const std::vector<std::string>& holder_args) {
  return Concat({"/usr/bin/unshare", "--pid", "--fork", "--mount-proc", "--kill-child", LOCK_HOLDER}, holder_args);
}

// Invariant (docs/design.md, "What a lock proves"): a pid is checked only inside the
// lock writer's own host, boot and PID namespace.
TEST_F(LockCli, LockHeldInAnotherPidNamespaceSurvivesAPruneOnTheHost) {
  const std::string repo = "file://" + dir_.Sub("repo");
  FirstBackup(repo);
  // The holder's pid is one that is free on this host: a PID check here would call it dead.
  const pid_t pid = FreePid();
  Child holder(Unshare({"--as-pid", std::to_string(pid), repo}));
  std::string line = holder.ReadLine();
  ASSERT_EQ(line.rfind("locked locks/", 0), 0u) << line;
  ASSERT_NE(line.find(" pid " + std::to_string(pid)), std::string::npos) << line;
  const std::string name = line.substr(7, line.find(" pid ") - 7);
  ASSERT_EQ(::kill(pid, 0), -1);  // no such process out here
  nlohmann::json lock = nlohmann::json::parse(testutil::ReadFile(dir_.Sub("repo/" + name)));
  EXPECT_EQ(lock["host"], HostName());
  EXPECT_EQ(lock["pid"], pid);
  EXPECT_NE(lock["pid_ns"], OurPidNamespace());
  EXPECT_EQ(lock["boot_id"], testutil::ReadFile("/proc/sys/kernel/random/boot_id").substr(0, 36));
  ProveHolderSurvives(holder, repo, {}, pid, name, [&] { return ::access(dir_.Sub("repo/" + name).c_str(), F_OK) == 0; });
}

TEST_F(LockCli, LockHeldInAnotherPidNamespaceSurvivesAPruneOnTheHostS3) {
  testutil::S3Server s3;
  s3.CreateBucket("etcd-backups");
  const std::string repo = "s3://etcd-backups/prod";
  const std::vector<std::string> flags = {"--s3-endpoint", s3.endpoint(), "--s3-path-style"};
  FirstBackup(repo, flags);
  const pid_t pid = FreePid();
  Child holder(Unshare({"--as-pid", std::to_string(pid), "--s3-endpoint", s3.endpoint(), repo}));
  std::string line = holder.ReadLine();
  ASSERT_EQ(line.rfind("locked locks/", 0), 0u) << line;
  const std::string name = line.substr(7, line.find(" pid ") - 7);
  ProveHolderSurvives(holder, repo, flags, pid, name, [&] {
    return ::access((s3.data_dir() + "/etcd-backups/prod/" + name + "._S3rver_object").c_str(), F_OK) == 0;
  });
}

// The PID check still works where it is trusted: a backup killed with -9 on this host
// does not lock the repository for 30 minutes.
TEST_F(LockCli, LockOfAKilledProcessInOurNamespaceIsRemovedAtOnce) {
  const std::string repo = "file://" + dir_.Sub("repo");
  FirstBackup(repo);
  Child holder({LOCK_HOLDER, repo});
  std::string line = holder.ReadLine();
  ASSERT_EQ(line.rfind("locked locks/", 0), 0u) << line;
  const std::string name = line.substr(7, line.find(" pid ") - 7);
  const pid_t pid = holder.pid();
  CmdResult locked = Etcdsafe({"prune", "--repo", repo, "--keep-last", "1"});
  EXPECT_EQ(locked.code, 11) << locked.err;
  EXPECT_NE(locked.err.find("its process " + std::to_string(pid) + " on this host is running"), std::string::npos)
      << locked.err;
  holder.Kill();
  ASSERT_EQ(::access(dir_.Sub("repo/" + name).c_str(), F_OK), 0);  // left behind by kill -9
  CmdResult prune = Etcdsafe({"prune", "--repo", repo, "--keep-last", "1"});
  EXPECT_EQ(prune.code, 0) << prune.err;
  EXPECT_NE(prune.err.find("removed stale lock " + name), std::string::npos) << prune.err;
  EXPECT_NE(prune.err.find("its process " + std::to_string(pid) +
                           " on this host (same boot, same PID namespace) is gone"),
            std::string::npos)
      << prune.err;
  EXPECT_NE(::access(dir_.Sub("repo/" + name).c_str(), F_OK), 0);
}

TEST_F(LockCli, UnlockShowsWhatItRemoves) {
  const std::string repo = "file://" + dir_.Sub("repo");
  FirstBackup(repo);
  // A stale lock (old mtime, content dated in the future) and a lock etcdsafe cannot read.
  const std::string stale = dir_.Sub("repo/locks/stale.json");
  ::mkdir(dir_.Sub("repo/locks").c_str(), 0700);
  testutil::WriteFile(stale, "{\"host\":\"node-7\",\"pid\":99,\"operation\":\"prune\",\"since_unix\":4102444800,"
                             "\"refreshed_unix\":4102444800}");
  timespec old[2] = {{::time(nullptr) - 7200, 0}, {::time(nullptr) - 7200, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, stale.c_str(), old, 0), 0);
  testutil::WriteFile(dir_.Sub("repo/locks/other-tool.json"), "{\"owner\":\"someone else\"}");

  CmdResult dry = Etcdsafe({"unlock", "--repo", repo, "--dry-run"});
  EXPECT_EQ(dry.code, 0) << dry.err;
  EXPECT_NE(dry.out.find("would remove locks/stale.json: prune on host node-7 (pid 99) since 2100-01-01T00:00:00Z, "
                         "last written 2 h 0 min ago; stale"),
            std::string::npos)
      << dry.out;
  EXPECT_NE(dry.out.find("dry run: nothing was removed"), std::string::npos) << dry.out;
  EXPECT_EQ(::access(stale.c_str(), F_OK), 0);

  CmdResult r = Etcdsafe({"unlock", "--repo", repo});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("removed locks/stale.json: prune on host node-7 (pid 99)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("kept locks/other-tool.json: unreadable lock (not an etcdsafe lock"), std::string::npos)
      << r.out;
  EXPECT_NE(::access(stale.c_str(), F_OK), 0);
  // The unreadable lock blocks backups, with a way out in the message.
  CmdResult backup = Etcdsafe({"backup", "--repo", repo, "--endpoints", server_->client_url()});
  EXPECT_EQ(backup.code, 11) << backup.err;
  EXPECT_NE(backup.err.find("locks/other-tool.json, which this etcdsafe cannot read"), std::string::npos)
      << backup.err;
  EXPECT_NE(backup.err.find("etcdsafe unlock --force"), std::string::npos) << backup.err;
  CmdResult force = Etcdsafe({"unlock", "--repo", repo, "--force"});
  EXPECT_EQ(force.code, 0) << force.err;
  EXPECT_NE(force.out.find("removed locks/other-tool.json"), std::string::npos) << force.out;
  CmdResult none = Etcdsafe({"unlock", "--repo", repo});
  EXPECT_EQ(none.code, 0) << none.err;
  EXPECT_NE(none.out.find("file://" + dir_.Sub("repo") + ": no stale locks to remove"), std::string::npos)
      << none.out;
  EXPECT_EQ(Etcdsafe({"backup", "--repo", repo, "--endpoints", server_->client_url()}).code, 0);
}

TEST_F(LockCli, UnlockBadInput) {
  CmdResult none = Etcdsafe({"unlock"});
  EXPECT_EQ(none.code, 128) << none.err;
  EXPECT_TRUE(testutil::IsOneLineError(none)) << none.err;
  CmdResult missing = Etcdsafe({"unlock", "--repo", "file://" + dir_.Sub("nothing-here")});
  EXPECT_EQ(missing.code, 10) << missing.err;
  EXPECT_TRUE(testutil::IsOneLineError(missing)) << missing.err;
  // A directory with locks/ that is not a repository (no marker): its locks are not ours.
  ::mkdir(dir_.Sub("other").c_str(), 0700);
  ::mkdir(dir_.Sub("other/locks").c_str(), 0700);
  testutil::WriteFile(dir_.Sub("other/locks/app.json"), "{}");
  CmdResult foreign = Etcdsafe({"unlock", "--repo", "file://" + dir_.Sub("other"), "--force"});
  EXPECT_EQ(foreign.code, 10) << foreign.err;
  EXPECT_NE(foreign.err.find("is not an etcdsafe repository"), std::string::npos) << foreign.err;
  EXPECT_EQ(::access(dir_.Sub("other/locks/app.json").c_str(), F_OK), 0);
  CmdResult scheme = Etcdsafe({"unlock", "--repo", "ftp://x/y"});
  EXPECT_EQ(scheme.code, 128) << scheme.err;
}

}  // namespace
}  // namespace etcdsafe
