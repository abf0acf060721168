#include "snapshot/inspect.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "bolt/reader.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::snapshot {
namespace {

const std::string kData = ETCDSAFE_TESTDATA;

TEST(Inspect, StatusMatchesEtcdctlOnFixtures) {
  // Numbers from `etcdctl snapshot status -w json` (tests/testdata/*.status.json).
  FileStatus small = ReadStatus(kData + "/small.db");
  EXPECT_EQ(small.numbers.hash, 536506678u);
  EXPECT_EQ(small.numbers.revision, 8);
  EXPECT_EQ(small.numbers.total_key, 12u);
  EXPECT_EQ(small.numbers.total_size, 20480u);
  EXPECT_TRUE(small.has_trailer);
  FileStatus medium = ReadStatus(kData + "/medium.db");
  EXPECT_EQ(medium.numbers.hash, 2856745737u);
  EXPECT_EQ(medium.numbers.revision, 1709);
  EXPECT_EQ(medium.numbers.total_key, 1713u);
  EXPECT_EQ(medium.numbers.total_size, 1478656u);
}

TEST(Inspect, VerifyChecksTrailer) {
  VerifyResult r = VerifySnapshotFile(kData + "/small.db");
  EXPECT_EQ(r.status.numbers.revision, 8);
  testutil::TempDir dir;
  std::string bytes = testutil::ReadFile(kData + "/small.db");
  bytes[bytes.size() - 1] ^= 0x40;  // damage the trailer only: structure stays valid
  testutil::WriteFile(dir.Sub("t.db"), bytes);
  try {
    VerifySnapshotFile(dir.Sub("t.db"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    EXPECT_NE(std::string(e.what()).find("sha256 mismatch"), std::string::npos) << e.what();
  }
  testutil::WriteFile(dir.Sub("nt.db"), bytes.substr(0, bytes.size() - 32));
  EXPECT_FALSE(ReadStatus(dir.Sub("nt.db")).has_trailer);
  EXPECT_THROW(VerifySnapshotFile(dir.Sub("nt.db")), Error);
}

TEST(Inspect, BadInputIsOneLineDataLoss) {
  testutil::TempDir dir;
  std::string full = testutil::ReadFile(kData + "/medium.db");
  struct Case {
    std::string name, bytes;
  } cases[] = {
      {"empty", ""},
      {"garbage", std::string(5000, 'g')},
      {"truncated", full.substr(0, full.size() / 2)},
  };
  for (const auto& c : cases) {
    testutil::WriteFile(dir.Sub(c.name), c.bytes);
    try {
      ReadStatus(dir.Sub(c.name));
      FAIL() << c.name;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << c.name << ": " << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
  }
  try {
    ReadStatus(dir.Sub("missing"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

// Restore checks the db it wrote by reading the snapshot with consistent_index patched
// over it: that must give exactly the status of a file with the patch written in.
TEST(Inspect, PatchedStatusEqualsStatusOfPatchedFile) {
  testutil::TempDir dir;
  for (const char* name : {"small", "medium"}) {
    std::string src = kData + "/" + name + ".db";
    std::optional<uint64_t> at = bolt::Reader::Open(src).ValueOffset("meta", "consistent_index");
    ASSERT_TRUE(at.has_value()) << name;
    BytePatch patch{*at, std::string("\x00\x00\x00\x00\x00\x00\x12\x34", 8)};
    std::string bytes = testutil::ReadFile(src);
    bytes.replace(patch.offset, 8, patch.bytes);
    testutil::WriteFile(dir.Sub(name), bytes);
    FileStatus want = ReadStatus(dir.Sub(name));
    FileStatus got = ReadStatus(src, patch);
    EXPECT_EQ(got.numbers.hash, want.numbers.hash) << name;
    EXPECT_NE(got.numbers.hash, ReadStatus(src).numbers.hash) << name;  // the patch counts
    EXPECT_EQ(got.numbers.revision, want.numbers.revision);
    EXPECT_EQ(got.numbers.total_key, want.numbers.total_key);
    EXPECT_EQ(got.numbers.total_size, want.numbers.total_size);
  }
}

}  // namespace
}  // namespace etcdsafe::snapshot
