#include "snapshot/inspect.h"

#include <gtest/gtest.h>

#include "base/error.h"
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

}  // namespace
}  // namespace etcdsafe::snapshot
