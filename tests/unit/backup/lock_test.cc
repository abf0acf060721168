// The repository lock's rules against real stores: file:// here (mtimes set with
// utimensat), s3:// on a local s3rver in lock_s3_test.cc. Each test names the invariant
// of docs/design.md ("What a lock proves") it checks.
#include "backup/lock.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "unit/backup/lock_test_util.h"
#include "base/error.h"
#include "base/file.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::backup {
namespace {

using testing::LockJson;
using testing::Now;

class LockTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = store::OpenStore("file://" + dir_.path()); }

  std::string Path(const std::string& name) { return dir_.Sub(name); }
  // Writes `body` as locks/<name> with the given mtime.
  void WriteLock(const std::string& name, const std::string& body, int64_t mtime) {
    store_->Put(name, body);
    timespec times[2] = {{mtime, 0}, {mtime, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, Path(name).c_str(), times, 0), 0);
  }
  bool Exists(const std::string& name) { return store_->Stat(name).has_value(); }
  // AcquireLock's kLocked message, or "" when it succeeded.
  std::string LockedError(std::vector<std::string>* notes = nullptr) {
    try {
      AcquireLock(*store_, "prune", notes);
      return "";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kLocked) << e.what();
      return e.what();
    }
  }

  testutil::TempDir dir_;
  std::unique_ptr<store::Store> store_;
};

// Invariant: ages are the store's (object mtime), never the writer's clock.
TEST_F(LockTest, ContentDatedInTheFutureButOldMtimeIsStale) {
  // A writer whose clock runs 10 years ahead, silent for 31 minutes.
  WriteLock("locks/skewed.json", LockJson({{"refreshed_unix", Now() + 10 * 365 * 86400}}), Now() - 31 * 60);
  std::vector<std::string> notes;
  EXPECT_EQ(LockedError(&notes), "");
  EXPECT_FALSE(Exists("locks/skewed.json"));
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("removed stale lock locks/skewed.json"), std::string::npos) << notes[0];
  EXPECT_NE(notes[0].find("by the store's clock"), std::string::npos) << notes[0];
}

TEST_F(LockTest, ContentThirtyOneMinutesOldButFreshMtimeIsHeld) {
  // A live writer whose clock runs 31 minutes behind.
  WriteLock("locks/behind.json", LockJson({{"refreshed_unix", Now() - 31 * 60}}), Now() - 10);
  std::string err = LockedError();
  EXPECT_NE(err.find("is locked by backup on host other-host (pid 4242)"), std::string::npos) << err;
  EXPECT_NE(err.find("lock locks/behind.json"), std::string::npos) << err;
  EXPECT_NE(err.find("etcdsafe unlock"), std::string::npos) << err;
  EXPECT_TRUE(Exists("locks/behind.json"));
  // Ours was removed on the way out.
  EXPECT_EQ(store_->ListDir("locks/").size(), 1u);
}

TEST_F(LockTest, FreshMtimeHoldsNoMatterWhatTheContentSays) {
  WriteLock("locks/zero.json", LockJson({{"refreshed_unix", 0}, {"since_unix", 0}}), Now());
  EXPECT_NE(LockedError(), "");
  EXPECT_TRUE(Exists("locks/zero.json"));
}

// Invariant: a lock etcdsafe cannot read is held, never removed automatically.
TEST_F(LockTest, OversizedLockIsHeldNotAnError) {
  std::string big = LockJson({});
  big.insert(big.size() - 2, ",\"pad\":\"" + std::string(100 << 10, 'x') + "\"");
  WriteLock("locks/big.json", big, Now() - 86400);  // old as well: still never removed
  std::string err = LockedError();
  EXPECT_NE(err.find("locks/big.json, which this etcdsafe cannot read (larger than 64 KiB)"), std::string::npos)
      << err;
  EXPECT_NE(err.find("etcdsafe unlock --force"), std::string::npos) << err;
  EXPECT_TRUE(Exists("locks/big.json"));
}

TEST_F(LockTest, LockOfANewerFormatIsHeld) {
  WriteLock("locks/v2.json", LockJson({{"etcdsafe_lock", 2}, {"lease", "something new"}}), Now() - 86400);
  std::string err = LockedError();
  EXPECT_NE(err.find("lock format 2, written by a newer etcdsafe"), std::string::npos) << err;
  EXPECT_TRUE(Exists("locks/v2.json"));
}

TEST_F(LockTest, ForeignObjectsUnderLocksAreHeld) {
  const int64_t old = Now() - 86400;
  for (const auto& [name, body] : std::vector<std::pair<std::string, std::string>>{
           {"locks/a.json", "{\"owner\":\"terraform\",\"id\":\"x\"}"},
           {"locks/b.json", "[1,2,3]"},
           {"locks/c.json", "not json at all"},
           {"locks/d.json", ""},
           {"locks/e.json", R"({"host":"h","pid":1,"operation":"backup","since_unix":1,"refreshed_unix":1,"pid":2})"},
           {"locks/f.json", R"({"host":"h","pid":-5,"operation":"backup","since_unix":1,"refreshed_unix":1})"}}) {
    SCOPED_TRACE(name);
    WriteLock(name, body, old);
    std::string err = LockedError();
    EXPECT_NE(err.find(name + ", which this etcdsafe cannot read (not an etcdsafe lock"), std::string::npos) << err;
    EXPECT_TRUE(Exists(name));
    store_->Remove(name);
  }
  WriteLock("locks/e.json", R"({"host":"h","pid":1,"operation":"backup","since_unix":1,"refreshed_unix":1,"pid":2})",
            old);
  EXPECT_NE(LockedError().find("duplicate key \"pid\""), std::string::npos);
}

// Invariant: a PID check is trusted only inside our own host, boot and PID namespace.
TEST_F(LockTest, DeadProcessInOurPidNamespaceIsStale) {
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  LockIdentity self = LockIdentity::Self();
  ASSERT_FALSE(self.boot_id.empty());
  ASSERT_NE(self.pid_ns, 0u);
  WriteLock("locks/dead.json", LockJson({{"host", self.host}, {"pid", child}, {"boot_id", self.boot_id},
                                         {"pid_ns", self.pid_ns}}),
            Now());
  std::vector<std::string> notes;
  EXPECT_EQ(LockedError(&notes), "");
  EXPECT_FALSE(Exists("locks/dead.json"));
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("its process " + std::to_string(child) + " on this host (same boot, same PID namespace) is gone"),
            std::string::npos)
      << notes[0];
}

TEST_F(LockTest, DeadPidInAnotherPidNamespaceIsHeld) {
  // Same host name and boot (a `--network host` container), another PID namespace: the
  // pid means nothing here.
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  LockIdentity self = LockIdentity::Self();
  WriteLock("locks/container.json", LockJson({{"host", self.host}, {"pid", child}, {"boot_id", self.boot_id},
                                              {"pid_ns", self.pid_ns + 1}}),
            Now());
  EXPECT_NE(LockedError().find("is locked by backup on host " + self.host), std::string::npos);
  EXPECT_TRUE(Exists("locks/container.json"));
  // Another boot: the same.
  WriteLock("locks/container.json", LockJson({{"host", self.host}, {"pid", child}, {"boot_id", "another-boot"},
                                              {"pid_ns", self.pid_ns}}),
            Now());
  EXPECT_NE(LockedError(), "");
  EXPECT_TRUE(Exists("locks/container.json"));
}

TEST_F(LockTest, LockOfAnEarlierBuildIsJudgedByMtimeOnly) {
  // Format 0 (no version, no namespace): a dead pid on "this host" proves nothing.
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  const std::string v0 = "{\"host\":\"" + LockIdentity::Self().host + "\",\"pid\":" + std::to_string(child) +
                         ",\"operation\":\"backup\",\"since_unix\":1,\"refreshed_unix\":1}";
  WriteLock("locks/v0.json", v0, Now() - 60);
  EXPECT_NE(LockedError(), "");
  EXPECT_TRUE(Exists("locks/v0.json"));
  WriteLock("locks/v0.json", v0, Now() - 31 * 60);
  EXPECT_EQ(LockedError(), "");
  EXPECT_FALSE(Exists("locks/v0.json"));
}

TEST_F(LockTest, ReusedPidInOurNamespaceIsStale) {
  // Our own pid, alive, but started at another time than the lock says.
  LockIdentity self = LockIdentity::Self();
  ASSERT_NE(self.pid_start, 0u);
  WriteLock("locks/reused.json", LockJson({{"host", self.host}, {"pid", self.pid}, {"boot_id", self.boot_id},
                                           {"pid_ns", self.pid_ns}, {"pid_start", self.pid_start - 1}}),
            Now());
  EXPECT_EQ(LockedError(), "");
  EXPECT_FALSE(Exists("locks/reused.json"));
  // With the right start time it is this (live) process: held.
  WriteLock("locks/reused.json", LockJson({{"host", self.host}, {"pid", self.pid}, {"boot_id", self.boot_id},
                                           {"pid_ns", self.pid_ns}, {"pid_start", self.pid_start}}),
            Now());
  EXPECT_NE(LockedError().find("its process " + std::to_string(self.pid) + " on this host is running"),
            std::string::npos);
}

TEST_F(LockTest, OurLockRecordsFormatBootAndNamespace) {
  auto lock = AcquireLock(*store_, "backup", nullptr);
  nlohmann::json j = nlohmann::json::parse(store_->Get(lock->name()));
  LockIdentity self = LockIdentity::Self();
  EXPECT_EQ(j["etcdsafe_lock"], kLockFormat);
  EXPECT_EQ(j["operation"], "backup");
  EXPECT_EQ(j["host"], self.host);
  EXPECT_EQ(j["pid"], ::getpid());
  EXPECT_EQ(j["boot_id"], self.boot_id);
  struct stat st {};
  ASSERT_EQ(::stat("/proc/self/ns/pid", &st), 0);
  EXPECT_EQ(j["pid_ns"], static_cast<uint64_t>(st.st_ino));
  EXPECT_EQ(j["pid_start"], self.pid_start);
  EXPECT_EQ(j["token"].get<std::string>().size(), 32u);
  lock.reset();
  EXPECT_TRUE(store_->ListDir("locks/").empty());
}

TEST_F(LockTest, TwoRunsExcludeEachOther) {
  auto first = AcquireLock(*store_, "backup", nullptr);
  std::string err = LockedError();
  EXPECT_NE(err.find("its process " + std::to_string(::getpid()) + " on this host is running"), std::string::npos)
      << err;
  first.reset();
  EXPECT_EQ(LockedError(), "");
}

// Invariant: a writer commits only while its own lock object exists.
TEST_F(LockTest, CheckHeldNoticesALockRemovedOrReplaced) {
  auto lock = AcquireLock(*store_, "backup", nullptr);
  lock->CheckHeld();  // untouched: fine
  store_->Remove(lock->name());
  try {
    lock->CheckHeld();
    ADD_FAILURE() << "CheckHeld passed without the lock";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kLocked);
    EXPECT_NE(std::string(e.what()).find("this backup lost its repository lock " + lock->name()), std::string::npos)
        << e.what();
  }
  // Someone else's lock under our name (a copy of another run's lock).
  auto other = AcquireLock(*store_, "prune", nullptr);
  store_->Put(lock->name(), store_->Get(other->name()));
  other.reset();
  try {
    lock->CheckHeld();
    ADD_FAILURE() << "CheckHeld passed with another run's lock";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kLocked);
    EXPECT_NE(std::string(e.what()).find("is not this run's lock any more"), std::string::npos) << e.what();
  }
}

// Invariant: the holder keeps its lock fresh by rewriting it (a new mtime) ...
TEST_F(LockTest, RefreshRewritesTheLock) {
  auto lock = AcquireLock(*store_, "backup", nullptr, std::chrono::milliseconds(50));
  const int64_t old = Now() - 20 * 60;
  timespec times[2] = {{old, 0}, {old, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, Path(lock->name()).c_str(), times, 0), 0);
  for (int i = 0; i < 200 && store_->Stat(lock->name())->mtime_unix == old; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(store_->Stat(lock->name())->mtime_unix, Now() - 5);
  lock->CheckHeld();
}

// ... but never brings back a lock that another run removed. (Removed at the very instant
// of a refresh, between its check and its write, it is written again: stores offer no
// conditional write to file://. A run removes another's lock only when it is 30 minutes
// old by the store's clock, long after its holder stopped writing it (kLockGiveUpAfter),
// or by `unlock --force`.) Here the lock is removed right after a refresh replaced it.
TEST_F(LockTest, RefreshNeverRevivesARemovedLock) {
  auto lock = AcquireLock(*store_, "backup", nullptr, std::chrono::milliseconds(300));
  auto inode = [&] {
    struct stat st {};
    return ::stat(Path(lock->name()).c_str(), &st) == 0 ? st.st_ino : 0;
  };
  const ino_t first = inode();
  for (int i = 0; i < 5000 && inode() == first; i++) ::usleep(1000);  // a refresh renames a new file in
  ASSERT_NE(inode(), first);
  store_->Remove(lock->name());
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));  // three more refresh rounds
  EXPECT_FALSE(Exists(lock->name()));
  try {
    lock->CheckHeld();
    ADD_FAILURE() << "CheckHeld passed without the lock";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("it was removed by another process"), std::string::npos) << e.what();
  }
}

// CheckHeld runs inside a commit (CommitSection) while the refresher writes the lock,
// which on file:// takes the commit lock too: one lock order, no deadlock.
TEST_F(LockTest, CheckHeldInsideACommitWhileTheLockIsRefreshed) {
  auto lock = AcquireLock(*store_, "backup", nullptr, std::chrono::milliseconds(1));
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> finished = done->get_future();
  std::thread([&lock, done] {
    try {
      for (int i = 0; i < 300; i++) {
        CommitSection commit;
        lock->CheckHeld();
      }
      done->set_value();
    } catch (...) {
      done->set_exception(std::current_exception());
    }
  }).detach();
  if (finished.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    std::fprintf(stderr, "deadlock: CheckHeld inside a CommitSection never returned\n");
    std::_Exit(1);
  }
  EXPECT_NO_THROW(finished.get());
}

// Invariant: inspection (prune --dry-run, unlock --dry-run) writes and deletes nothing.
TEST_F(LockTest, InspectLocksIsReadOnly) {
  WriteLock("locks/stale.json", LockJson({}), Now() - 3600);
  WriteLock("locks/held.json", LockJson({}), Now() - 60);
  WriteLock("locks/junk.json", "junk", Now() - 3600);
  const std::vector<store::ObjectInfo> before = store_->ListDir("locks/");
  std::vector<LockInfo> locks = InspectLocks(*store_);
  ASSERT_EQ(locks.size(), 3u);
  EXPECT_EQ(locks[0].name, "locks/held.json");
  EXPECT_FALSE(locks[0].stale);
  EXPECT_GE(locks[0].age_seconds, 60);
  EXPECT_LT(locks[0].age_seconds, 120);
  EXPECT_NE(locks[0].Describe().find("backup on host other-host (pid 4242) since "), std::string::npos);
  EXPECT_EQ(locks[1].name, "locks/junk.json");
  EXPECT_FALSE(locks[1].readable);
  EXPECT_FALSE(locks[1].stale);
  EXPECT_EQ(locks[2].name, "locks/stale.json");
  EXPECT_TRUE(locks[2].stale);
  const std::vector<store::ObjectInfo> after = store_->ListDir("locks/");
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); i++) {
    EXPECT_EQ(after[i].name, before[i].name);
    EXPECT_EQ(after[i].mtime_unix, before[i].mtime_unix);
  }
}

TEST_F(LockTest, UnlockRemovesStaleOrWithForceEverything) {
  WriteLock("locks/stale.json", LockJson({}), Now() - 3600);
  WriteLock("locks/held.json", LockJson({}), Now() - 60);
  WriteLock("locks/junk.json", "junk", Now() - 3600);
  UnlockReport dry = Unlock(*store_, false, true);
  ASSERT_EQ(dry.removed.size(), 1u);
  EXPECT_EQ(dry.removed[0].name, "locks/stale.json");
  EXPECT_EQ(dry.kept.size(), 2u);
  EXPECT_EQ(store_->ListDir("locks/").size(), 3u);

  UnlockReport r = Unlock(*store_, false, false);
  ASSERT_EQ(r.removed.size(), 1u);
  EXPECT_EQ(r.removed[0].name, "locks/stale.json");
  ASSERT_EQ(r.kept.size(), 2u);
  EXPECT_EQ(r.kept[0].name, "locks/held.json");
  EXPECT_EQ(r.kept[1].name, "locks/junk.json");
  EXPECT_EQ(store_->ListDir("locks/").size(), 2u);  // unlock's own lock is gone too

  EXPECT_EQ(Unlock(*store_, true, true).removed.size(), 2u);
  EXPECT_EQ(store_->ListDir("locks/").size(), 2u);
  UnlockReport force = Unlock(*store_, true, false);
  EXPECT_EQ(force.removed.size(), 2u);
  EXPECT_TRUE(force.kept.empty());
  EXPECT_TRUE(store_->ListDir("locks/").empty());
}

TEST_F(LockTest, ControlCharactersInALockNeverReachMessages) {
  WriteLock("locks/esc.json", LockJson({{"host", "evil\x1b[2J\nok"}, {"operation", "backup\r"}}), Now());
  std::string err = LockedError();
  EXPECT_EQ(err.find('\x1b'), std::string::npos);
  EXPECT_EQ(err.find('\n'), std::string::npos);
  EXPECT_NE(err.find("evil\\x1b[2J\\x0aok"), std::string::npos) << err;
}

}  // namespace
}  // namespace etcdsafe::backup
