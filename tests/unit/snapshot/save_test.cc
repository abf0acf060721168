// SaveSnapshot with the byte stream of a real etcd snapshot fed in chunks (the
// end-to-end test against a live server is in tests/integration).
#include "snapshot/save.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "base/error.h"
#include "base/file.h"
#include "snapshot/trailer.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::snapshot {
namespace {

const std::string kSmall = std::string(ETCDSAFE_TESTDATA) + "/small.db";

SnapshotStream StreamOf(const std::string& bytes, size_t chunk) {
  return [bytes, chunk](const BlobSink& sink) {
    for (size_t off = 0; off < bytes.size(); off += chunk) {
      size_t n = std::min(chunk, bytes.size() - off);
      sink(reinterpret_cast<const uint8_t*>(bytes.data() + off), n);
    }
  };
}

TEST(Save, WritesExactBytesWithMode0600) {
  testutil::TempDir dir;
  std::string src = testutil::ReadFile(kSmall);
  for (size_t chunk : {size_t(1), size_t(31), size_t(32), size_t(4096), size_t(32768)}) {
    std::string out = dir.Sub("s" + std::to_string(chunk) + ".db");
    uint64_t last_progress = 0;
    SaveResult r = SaveSnapshot(StreamOf(src, chunk), out, [&](uint64_t b) { last_progress = b; });
    EXPECT_EQ(testutil::ReadFile(out), src);
    EXPECT_EQ(r.file_size, src.size());
    EXPECT_EQ(r.db_size, src.size() - 32);
    EXPECT_EQ(last_progress, src.size());
    struct stat st;
    ASSERT_EQ(::stat(out.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    EXPECT_FALSE(PathExists(out + ".part"));
  }
}

TEST(Save, FlippedByteIsCaughtAndNothingIsLeft) {
  testutil::TempDir dir;
  std::string src = testutil::ReadFile(kSmall);
  src[5000] ^= 0x01;
  std::string out = dir.Sub("bad.db");
  try {
    SaveSnapshot(StreamOf(src, 32768), out);
    FAIL() << "corruption not detected";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    EXPECT_NE(std::string(e.what()).find("sha256 mismatch"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(PathExists(out));
  EXPECT_FALSE(PathExists(out + ".part"));
}

TEST(Save, ShortStreamHasNoTrailer) {
  testutil::TempDir dir;
  std::string src = testutil::ReadFile(kSmall).substr(0, 10000);
  std::string out = dir.Sub("short.db");
  try {
    SaveSnapshot(StreamOf(src, 4096), out);
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "sha256 checksum not found [bytes: 10000]");
  }
  EXPECT_FALSE(PathExists(out + ".part"));
}

TEST(Save, StreamErrorPropagatesAndRemovesPart) {
  testutil::TempDir dir;
  std::string out = dir.Sub("x.db");
  SnapshotStream failing = [](const BlobSink& sink) {
    std::string chunk(32768, 'a');
    sink(reinterpret_cast<const uint8_t*>(chunk.data()), chunk.size());
    throw Error(ErrorCode::kUnavailable, "connection reset mid-stream");
  };
  try {
    SaveSnapshot(failing, out);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable);
  }
  EXPECT_FALSE(PathExists(out));
  EXPECT_FALSE(PathExists(out + ".part"));
}

TEST(Save, UnwritableDirectoryIsAnIoError) {
  try {
    SaveSnapshot(StreamOf("x", 1), "/nonexistent-dir/etcdsafe/x.db");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

TEST(Trailer, VerifierMatchesFileTrailer) {
  std::string src = testutil::ReadFile(kSmall);
  TrailerVerifier v;
  v.Update(reinterpret_cast<const uint8_t*>(src.data()), src.size());
  TrailerVerifier::Result r = v.Finish();
  EXPECT_TRUE(r.has_trailer);
  EXPECT_TRUE(r.matches);
  EXPECT_EQ(r.db_size, 20480u);
  EXPECT_EQ(GoByteSlice(Sha256Digest{}).substr(0, 6), "[0 0 0");
}

}  // namespace
}  // namespace etcdsafe::snapshot
