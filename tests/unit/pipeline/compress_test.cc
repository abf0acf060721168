#include "pipeline/compress.h"

#include <gtest/gtest.h>

#include "base/checksum.h"
#include "base/error.h"
#include "pipeline/hash.h"
#include "test_data.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::pipeline {
namespace {

using testing::EtcdLike;
using testing::RandomBytes;
using testing::ReadAllInSteps;
using testing::WriteInSteps;

std::string Compress(Compression c, const std::string& data, size_t step = 1 << 20, CompressOptions opts = {}) {
  StringSink out;
  auto sink = NewCompressSink(c, opts, out);
  WriteInSteps(*sink, data, step);
  sink->Close();
  EXPECT_TRUE(out.closed());
  return out.str();
}

std::string Decompress(Compression c, std::string packed, size_t step = 1 << 16) {
  StringSource in(std::move(packed));
  auto src = NewDecompressSource(c, in);
  return ReadAllInSteps(*src, step);
}

ErrorCode DecompressError(Compression c, std::string packed, std::string* msg = nullptr) {
  try {
    Decompress(c, std::move(packed));
  } catch (const Error& e) {
    if (msg) *msg = e.what();
    return e.code();
  }
  ADD_FAILURE() << "no error";
  return ErrorCode::kInternal;
}

const Compression kAll[] = {Compression::kNone, Compression::kZstd, Compression::kGzip};

TEST(Compression, ParseAndName) {
  for (Compression c : kAll) EXPECT_EQ(ParseCompression(CompressionName(c)), c);
  try {
    ParseCompression("lz4");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("lz4"), std::string::npos);
  }
}

TEST(Compression, Sniff) {
  std::string data = EtcdLike(5000, 1);
  EXPECT_EQ(SniffCompression(AsBytes(Compress(Compression::kZstd, data))), Compression::kZstd);
  EXPECT_EQ(SniffCompression(AsBytes(Compress(Compression::kGzip, data))), Compression::kGzip);
  EXPECT_EQ(SniffCompression(AsBytes(data)), Compression::kNone);
  EXPECT_EQ(SniffCompression(AsBytes(std::string("\x50\x2a\x4d\x18", 4))), Compression::kZstd);  // skippable
  EXPECT_EQ(SniffCompression(AsBytes(std::string("\x1f"))), Compression::kNone);
  EXPECT_EQ(SniffCompression(Bytes{}), Compression::kNone);
}

TEST(Compression, LevelValidation) {
  StringSink out;
  EXPECT_THROW(NewCompressSink(Compression::kZstd, 20, out), Error);
  EXPECT_THROW(NewCompressSink(Compression::kZstd, -1, out), Error);
  EXPECT_THROW(NewCompressSink(Compression::kGzip, 10, out), Error);
  EXPECT_THROW(NewCompressSink(Compression::kNone, 3, out), Error);
  EXPECT_NO_THROW(NewCompressSink(Compression::kZstd, 19, out));
  EXPECT_NO_THROW(NewCompressSink(Compression::kGzip, 1, out));
}

TEST(Compression, RoundTripSizesAndWriteSizes) {
  const size_t sizes[] = {0, 1, 1000, (1 << 20) - 1, 1 << 20, (1 << 20) + 1, (5 << 20) + 17};
  for (Compression c : kAll) {
    for (size_t n : sizes) {
      for (int kind = 0; kind < 2; kind++) {
        std::string data = kind == 0 ? RandomBytes(n, n + 1) : EtcdLike(n, n + 2);
        for (size_t step : {size_t{7}, size_t{64} << 20}) {
          if (step < 64 && n > (2 << 20)) step = 4093;  // keep the tiny-write case fast
          SCOPED_TRACE(std::string(CompressionName(c)) + " n=" + std::to_string(n) + " kind=" +
                       std::to_string(kind) + " step=" + std::to_string(step));
          std::string packed = Compress(c, data, step);
          if (kind == 1 && n > 4096 && c != Compression::kNone) {
            EXPECT_LT(packed.size(), n / 3);
          }
          EXPECT_EQ(Decompress(c, packed, step < 64 ? 13 : 1 << 20), data);
        }
      }
    }
  }
}

TEST(Compression, ZstdWorkersProduceSameData) {
  std::string data = EtcdLike(9 << 20, 5);
  for (int workers : {0, 1, 2}) {
    CompressOptions o;
    o.zstd_workers = workers;
    EXPECT_EQ(Decompress(Compression::kZstd, Compress(Compression::kZstd, data, 1 << 16, o)), data);
  }
}

TEST(Compression, HashTeesMatch) {
  std::string data = EtcdLike(3 << 20, 9);
  StringSink out;
  auto comp = NewCompressSink(Compression::kZstd, 0, out);
  HashSink hs(*comp);
  WriteInSteps(hs, data, 100000);
  EXPECT_THROW(hs.digest(), Error);
  hs.Close();
  EXPECT_EQ(hs.digest(), Sha256Of(AsBytes(data)));
  EXPECT_EQ(hs.bytes(), data.size());

  StringSource in(out.str());
  auto dec = NewDecompressSource(Compression::kZstd, in);
  HashSource hsrc(*dec);
  EXPECT_EQ(ReadAllInSteps(hsrc, 5000).size(), data.size());
  EXPECT_EQ(hsrc.digest(), Sha256Of(AsBytes(data)));
  EXPECT_EQ(hsrc.bytes(), data.size());
}

// --- interop with the command-line tools ---

std::string Tool(const std::string& cmd) {
  std::string output;
  int rc = testutil::RunCommand(cmd, &output);
  EXPECT_EQ(rc, 0) << cmd << ": " << output;
  return output;
}

TEST(CompressionInterop, ToolsReadOurOutput) {
  testutil::TempDir dir;
  std::string data = EtcdLike((3 << 20) + 5, 11);
  for (auto [c, tool] : {std::pair{Compression::kGzip, "gzip"}, std::pair{Compression::kZstd, "zstd"}}) {
    testutil::WriteFile(dir.Sub("in"), Compress(c, data, 12345));
    Tool(std::string(tool) + " -dc < " + dir.Sub("in") + " > " + dir.Sub("out"));
    EXPECT_EQ(testutil::ReadFile(dir.Sub("out")), data) << tool;
    Tool(std::string(tool) + " -t < " + dir.Sub("in"));
  }
  // Empty input still makes a valid, tool-readable stream.
  for (auto [c, tool] : {std::pair{Compression::kGzip, "gzip"}, std::pair{Compression::kZstd, "zstd"}}) {
    testutil::WriteFile(dir.Sub("in"), Compress(c, ""));
    Tool(std::string(tool) + " -dc < " + dir.Sub("in") + " > " + dir.Sub("out"));
    EXPECT_EQ(testutil::ReadFile(dir.Sub("out")), "");
  }
}

TEST(CompressionInterop, WeReadToolOutput) {
  testutil::TempDir dir;
  std::string data = EtcdLike((2 << 20) + 3, 12);
  testutil::WriteFile(dir.Sub("plain"), data);
  for (auto [c, cmd] : {std::pair{Compression::kGzip, "gzip -c"}, std::pair{Compression::kGzip, "gzip -9 -c"},
                        std::pair{Compression::kZstd, "zstd -q -c"}, std::pair{Compression::kZstd, "zstd -q -19 -c"},
                        std::pair{Compression::kZstd, "zstd -q -T2 -c"}}) {
    Tool(std::string(cmd) + " < " + dir.Sub("plain") + " > " + dir.Sub("packed"));
    EXPECT_EQ(Decompress(c, testutil::ReadFile(dir.Sub("packed"))), data) << cmd;
  }
  // Concatenated members/frames are one stream for the tools and for us.
  for (auto [c, cmd] : {std::pair{Compression::kGzip, "gzip -c"}, std::pair{Compression::kZstd, "zstd -q -c"}}) {
    Tool(std::string(cmd) + " < " + dir.Sub("plain") + " > " + dir.Sub("a"));
    std::string two = testutil::ReadFile(dir.Sub("a")) + testutil::ReadFile(dir.Sub("a"));
    EXPECT_EQ(Decompress(c, two), data + data) << cmd;
  }
}

// --- corrupt input ---

TEST(CompressionCorrupt, TruncatedEmptyGarbage) {
  std::string data = EtcdLike(1 << 20, 13);
  for (Compression c : {Compression::kZstd, Compression::kGzip}) {
    SCOPED_TRACE(CompressionName(c));
    std::string packed = Compress(c, data);
    std::string msg;
    EXPECT_EQ(DecompressError(c, "", &msg), ErrorCode::kDataLoss);
    EXPECT_NE(msg.find("empty"), std::string::npos) << msg;
    for (size_t cut : {size_t{1}, size_t{10}, packed.size() / 2, packed.size() - 1}) {
      EXPECT_EQ(DecompressError(c, packed.substr(0, cut), &msg), ErrorCode::kDataLoss) << cut;
    }
    EXPECT_EQ(DecompressError(c, packed + "garbage!", &msg), ErrorCode::kDataLoss);
    EXPECT_EQ(DecompressError(c, packed + std::string(1, '\0'), &msg), ErrorCode::kDataLoss);
    EXPECT_EQ(DecompressError(c, "this is not compressed data at all", &msg), ErrorCode::kDataLoss);
    // A flipped byte is caught by the codec or its checksum (zstd content checksum, gzip CRC-32).
    for (size_t pos : {packed.size() / 3, packed.size() / 2, packed.size() - 3}) {
      std::string bad = packed;
      bad[pos] = static_cast<char>(bad[pos] ^ 0x40);
      EXPECT_EQ(DecompressError(c, bad, &msg), ErrorCode::kDataLoss) << pos;
    }
  }
}

TEST(CompressionCorrupt, ZstdHugeWindowRefused) {
  testutil::TempDir dir;
  testutil::WriteFile(dir.Sub("plain"), RandomBytes(1 << 20, 3));
  Tool("zstd -q --ultra -22 --long=27 -c < " + dir.Sub("plain") + " > " + dir.Sub("packed"));
  std::string msg;
  EXPECT_EQ(DecompressError(Compression::kZstd, testutil::ReadFile(dir.Sub("packed")), &msg), ErrorCode::kDataLoss);
  EXPECT_NE(msg.find("window"), std::string::npos) << msg;
}

}  // namespace
}  // namespace etcdsafe::pipeline
