#include "base/file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

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

}  // namespace
}  // namespace etcdsafe
