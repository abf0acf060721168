#include "base/file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <set>
#include <thread>
#include <filesystem>
#include <memory>
#include <vector>

#include "testutil/temp_dir.h"

namespace etcdsafe {
namespace {

TEST(File, CreateIsExclusiveAndExactMode) {
  testutil::TempDir dir;
  std::string p = dir.Sub("f");
  File f = File::Create(p, 0600);
  f.WriteAll(AsBytes("hello"));
  f.Sync();
  f.Close();
  struct stat st;
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  try {
    File::Create(p, 0600);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kAlreadyExists);
  }
}

TEST(File, ReadAtPastEndIsDataLoss) {
  testutil::TempDir dir;
  testutil::WriteFile(dir.Sub("f"), "abc");
  File f = File::OpenRead(dir.Sub("f"));
  uint8_t buf[8];
  EXPECT_THROW(f.ReadAt(0, buf, 8), Error);
  f.ReadAt(1, buf, 2);
  EXPECT_EQ(buf[0], 'b');
}

TEST(File, MissingFileIsNotFound) {
  try {
    File::OpenRead("/nonexistent/etcdsafe");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_STREQ(e.what(), "open /nonexistent/etcdsafe: No such file or directory");
  }
}

TEST(File, MakeDirsAndParent) {
  testutil::TempDir dir;
  MakeDirs(dir.Sub("a/b/c"), 0700);
  EXPECT_TRUE(IsDirectory(dir.Sub("a/b/c")));
  EXPECT_EQ(ParentDir("/x/y/z"), "/x/y");
  EXPECT_EQ(ParentDir("z"), ".");
  EXPECT_EQ(ParentDir("/z"), "/");
}

// What the CLI's signal thread runs: live guards' paths are removed, then live
// InterruptCleanup actions run (after the paths: a lock outlives the temporaries it
// guarded); released guards and destroyed actions are left alone.
TEST(File, InterruptCleanupRunsLiveActionsAfterGuardedPaths) {
  testutil::TempDir dir;
  testutil::WriteFile(dir.Sub("tmp"), "partial");
  testutil::WriteFile(dir.Sub("kept"), "final");
  std::vector<std::string> log;
  {
    CleanupGuard tmp(dir.Sub("tmp"));
    CleanupGuard kept(dir.Sub("kept"));
    kept.Release();
    InterruptCleanup live([&] { log.push_back(PathExists(dir.Sub("tmp")) ? "lock before tmp" : "lock"); });
    { InterruptCleanup gone([&] { log.push_back("destroyed action ran"); }); }
    RemovePendingCleanups();
    EXPECT_EQ(log, std::vector<std::string>{"lock"});
    RemovePendingCleanups();  // each action runs once
    EXPECT_EQ(log.size(), 1u);
  }
  EXPECT_FALSE(PathExists(dir.Sub("tmp")));
  EXPECT_TRUE(PathExists(dir.Sub("kept")));
}

std::set<std::string> Names(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

// Issue 12 §5: temporaries are unique per run and locked while their run lives; a later
// run removes only exact-pattern leftovers whose lock is free (their writer is dead).
TEST(LockedTemp, UniqueNamesAndOnlyUnlockedExactLeftoversAreSwept) {
  testutil::TempDir dir;
  const std::string prefix = "x.db.etcdsafe-", suffix = ".part";
  std::set<std::string> live;
  {
    LockedTemp a(dir.path(), prefix, suffix, LockedTemp::Kind::kFile, 0600);
    LockedTemp b(dir.path(), prefix, suffix, LockedTemp::Kind::kFile, 0600);
    LockedTemp c(dir.path(), ".d.etcdsafe-restore-", "", LockedTemp::Kind::kDirectory, 0700);
    EXPECT_NE(a.path(), b.path());
    struct stat st;
    ASSERT_EQ(::stat(a.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ASSERT_EQ(::stat(c.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    testutil::WriteFile(dir.Sub("x.db.etcdsafe-AbC123.part"), "killed run");       // stale
    MakeDirs(dir.Sub(".d.etcdsafe-restore-Zz9Zz9/member"), 0700);                    // stale
    testutil::WriteFile(dir.Sub(".d.etcdsafe-restore-Zz9Zz9/member/db"), "secret");
    for (const char* keep : {"x.db.etcdsafe-AbC12.part", "x.db.etcdsafe-AbC1234.part", "x.db.etcdsafe-AbC-23.part",
                             "y.db.etcdsafe-AbC123.part", "x.db.etcdsafe-AbC123.partial", "x.db"}) {
      testutil::WriteFile(dir.Sub(keep), "not a leftover of ours");
    }
    ASSERT_EQ(::symlink(dir.Sub("x.db").c_str(), dir.Sub("x.db.etcdsafe-Sym123.part").c_str()), 0);
    // A live run of another process: its lock is held (flock conflicts across open files).
    testutil::WriteFile(dir.Sub("x.db.etcdsafe-Live12.part"), "being written");
    int held = ::open(dir.Sub("x.db.etcdsafe-Live12.part").c_str(), O_RDONLY);
    ASSERT_EQ(::flock(held, LOCK_EX), 0);

    std::vector<std::string> removed = RemoveStaleTemps(dir.path(), prefix, suffix);
    EXPECT_EQ(removed, std::vector<std::string>{dir.Sub("x.db.etcdsafe-AbC123.part")});
    removed = RemoveStaleTemps(dir.path(), ".d.etcdsafe-restore-", "");
    EXPECT_EQ(removed, std::vector<std::string>{dir.Sub(".d.etcdsafe-restore-Zz9Zz9")});
    EXPECT_TRUE(PathExists(a.path()));
    EXPECT_TRUE(PathExists(b.path()));
    EXPECT_TRUE(PathExists(c.path()));
    EXPECT_TRUE(PathExists(dir.Sub("x.db.etcdsafe-Live12.part")));
    EXPECT_TRUE(PathExists(dir.Sub("x.db.etcdsafe-Sym123.part")));
    ::close(held);
    // Once its holder is gone, the same file is a leftover.
    EXPECT_EQ(RemoveStaleTemps(dir.path(), prefix, suffix),
              std::vector<std::string>{dir.Sub("x.db.etcdsafe-Live12.part")});
    live = {BaseName(a.path()), BaseName(b.path()), BaseName(c.path())};
  }
  std::set<std::string> left = Names(dir.path());
  for (const auto& n : live) EXPECT_EQ(left.count(n), 0u) << n << " survived its LockedTemp";
  EXPECT_EQ(left, (std::set<std::string>{"x.db.etcdsafe-AbC12.part", "x.db.etcdsafe-AbC1234.part",
                                         "x.db.etcdsafe-AbC-23.part", "y.db.etcdsafe-AbC123.part",
                                         "x.db.etcdsafe-AbC123.partial", "x.db", "x.db.etcdsafe-Sym123.part"}));
}

TEST(LockedTemp, CommitRenamesTheObjectItCreated) {
  testutil::TempDir dir;
  LockedTemp t(dir.path(), "f.etcdsafe-", ".part", LockedTemp::Kind::kFile, 0600);
  File w = t.OpenForWrite();
  w.WriteAll(AsBytes("mine"));
  w.Close();
  t.CommitTo(dir.Sub("f"));
  EXPECT_EQ(testutil::ReadFile(dir.Sub("f")), "mine");
  EXPECT_EQ(Names(dir.path()), std::set<std::string>{"f"});
  // A temporary replaced under our name is never committed.
  LockedTemp u(dir.path(), "g.etcdsafe-", ".part", LockedTemp::Kind::kFile, 0600);
  ASSERT_EQ(::unlink(u.path().c_str()), 0);
  testutil::WriteFile(u.path(), "someone else's");
  EXPECT_THROW(u.CommitTo(dir.Sub("g")), Error);
  EXPECT_FALSE(PathExists(dir.Sub("g")));
}

// Issue 12 §5: once the interrupt cleanup began, the main thread stops at its next file
// step: a MakeDirs under a temporary directory the cleanup removed must not create that
// directory again (it did: a leftover nobody guards).
TEST(InterruptCleanup, FileStepsStopOnceTheCleanupBegan) {
  testutil::TempDir dir;
  const std::string tmp = dir.Sub(".d.etcdsafe-restore-AAAAAA");
  CleanupGuard guard(tmp);
  MakeDirs(tmp + "/member", 0700);
  EXPECT_EQ(RemovePendingCleanups(), 1u);  // this thread now holds the commit lock for good
  EXPECT_FALSE(PathExists(tmp));
  std::atomic<int> done{0};
  std::thread main_thread([&] {
    MakeDirs(tmp + "/member/snap", 0700);  // blocks: the process is exiting
    File::Create(dir.Sub("late"), 0600);
    done = 1;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(done.load(), 0);
  EXPECT_FALSE(PathExists(tmp)) << "the removed temporary directory was created again";
  EXPECT_FALSE(PathExists(dir.Sub("late")));
  main_thread.detach();  // stays blocked, as the real main thread would until _exit
  EXPECT_EQ(RemovePendingCleanups(), 0u);  // nothing left: says so
}

// A commit in progress finishes before the cleanup runs, and what it committed (its guard
// released inside the section) is never removed.
TEST(InterruptCleanup, WaitsForACommitAndNeverRemovesWhatItCommitted) {
  testutil::TempDir dir;
  testutil::WriteFile(dir.Sub("tmp"), "complete");
  auto guard = std::make_unique<CleanupGuard>(dir.Sub("tmp"));
  std::atomic<bool> in_section{false};
  std::thread committer([&] {
    CommitSection section;
    in_section = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ASSERT_EQ(::rename(dir.Sub("tmp").c_str(), dir.Sub("final").c_str()), 0);
    guard->Release();
  });
  while (!in_section) std::this_thread::yield();
  EXPECT_EQ(RemovePendingCleanups(), 0u);
  committer.join();
  EXPECT_EQ(testutil::ReadFile(dir.Sub("final")), "complete");
}

}  // namespace
}  // namespace etcdsafe
