// The repository lock on s3:// (a local s3rver): ages come from the objects' Last-Modified
// (s3rver serves the mtime of its object file, which the tests set with utimensat), and a
// lock removed behind its holder's back is noticed before a commit.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/lock.h"
#include "base/error.h"
#include "testutil/s3_server.h"
#include "unit/backup/lock_test_util.h"

namespace etcdsafe::backup {
namespace {

using testing::LockJson;
using testing::Now;

class LockS3Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { s3_ = new testutil::S3Server(); }
  static void TearDownTestSuite() { delete s3_; }
  void SetUp() override {
    static int n = 0;
    bucket_ = "locks-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
    s3_->CreateBucket(bucket_);
    store::StoreOptions o;
    o.s3_endpoint = s3_->endpoint();
    o.path_style = true;
    o.access_key = "S3RVER";
    o.secret_key = "S3RVER";
    o.retry_base_ms = 20;
    store_ = store::OpenStore("s3://" + bucket_ + "/repo", o);
  }
  // Puts `body` as `name` and sets its Last-Modified (the mtime of s3rver's object file).
  void WriteLock(const std::string& name, const std::string& body, int64_t mtime) {
    store_->Put(name, body);
    const std::string file = s3_->data_dir() + "/" + bucket_ + "/repo/" + name + "._S3rver_object";
    timespec times[2] = {{mtime, 0}, {mtime, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, file.c_str(), times, 0), 0) << file;
    ASSERT_EQ(store_->Stat(name)->mtime_unix, mtime);
  }
  bool Exists(const std::string& name) { return store_->Stat(name).has_value(); }

  static testutil::S3Server* s3_;
  std::string bucket_;
  std::unique_ptr<store::Store> store_;
};
testutil::S3Server* LockS3Test::s3_ = nullptr;

TEST_F(LockS3Test, AgesAreTheStoresLastModified) {
  WriteLock("locks/skewed.json", LockJson({{"refreshed_unix", Now() + 86400 * 365}}), Now() - 31 * 60);
  WriteLock("locks/behind.json", LockJson({{"refreshed_unix", Now() - 31 * 60}}), Now() - 5);
  std::vector<std::string> notes;
  try {
    AcquireLock(*store_, "prune", &notes);
    ADD_FAILURE() << "locks/behind.json is live";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kLocked);
    EXPECT_NE(std::string(e.what()).find("s3://" + bucket_ + "/repo is locked by backup on host other-host"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(Exists("locks/skewed.json"));
  EXPECT_TRUE(Exists("locks/behind.json"));
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("removed stale lock locks/skewed.json"), std::string::npos) << notes[0];
  // Only behind.json is left: ours was removed.
  EXPECT_EQ(store_->ListDir("locks/").size(), 1u);
}

TEST_F(LockS3Test, OversizedAndForeignLocksAreHeld) {
  std::string big = LockJson({});
  big.insert(big.size() - 2, ",\"pad\":\"" + std::string(100 << 10, 'x') + "\"");
  WriteLock("locks/big.json", big, Now() - 86400);
  WriteLock("locks/v9.json", LockJson({{"etcdsafe_lock", 9}}), Now() - 86400);
  try {
    AcquireLock(*store_, "backup", nullptr);
    ADD_FAILURE() << "acquired";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kLocked);
    EXPECT_NE(std::string(e.what()).find("locks/big.json, which this etcdsafe cannot read (larger than 64 KiB)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(Exists("locks/big.json"));
  EXPECT_TRUE(Exists("locks/v9.json"));
  UnlockReport r = Unlock(*store_, false, false);
  EXPECT_TRUE(r.removed.empty());
  EXPECT_EQ(r.kept.size(), 2u);
  r = Unlock(*store_, true, false);
  EXPECT_EQ(r.removed.size(), 2u);
  EXPECT_TRUE(store_->ListDir("locks/").empty());
}

TEST_F(LockS3Test, CheckHeldNoticesARemovedLock) {
  auto lock = AcquireLock(*store_, "backup", nullptr);
  lock->CheckHeld();
  EXPECT_EQ(Unlock(*store_, true, false).removed.size(), 1u);
  try {
    lock->CheckHeld();
    ADD_FAILURE() << "CheckHeld passed without the lock";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kLocked);
    EXPECT_NE(std::string(e.what()).find("lost its repository lock"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace etcdsafe::backup
