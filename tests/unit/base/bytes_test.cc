#include "base/bytes.h"

#include <gtest/gtest.h>

namespace etcdsafe {
namespace {

TEST(Bytes, HexNoPadLikeGo) {
  EXPECT_EQ(HexNoPad(0), "0");
  EXPECT_EQ(HexNoPad(0xabcdef), "abcdef");
  EXPECT_EQ(HexNoPad(0x8e9e05c52164694dull), "8e9e05c52164694d");
}

TEST(Bytes, VarintRoundTrip) {
  for (uint64_t v : {0ull, 1ull, 127ull, 128ull, 300ull, 0xffffffffffffffffull}) {
    std::string s;
    AppendVarint(&s, v);
    ByteReader r(AsBytes(s), "test");
    EXPECT_EQ(r.Varint(), v);
    EXPECT_TRUE(r.empty());
  }
}

TEST(Bytes, ReaderFailsPastEndWithOffset) {
  std::string s = "abc";
  ByteReader r(AsBytes(s), "thing");
  r.Take(2);
  try {
    r.Take(2);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    EXPECT_STREQ(e.what(), "thing at offset 2: truncated: need 2 bytes, 1 left");
  }
}

TEST(Bytes, BigEndian) {
  uint8_t b[8];
  StoreBE64(b, 0x0102030405060708ull);
  EXPECT_EQ(b[0], 1);
  EXPECT_EQ(b[7], 8);
  EXPECT_EQ(LoadBE64(b), 0x0102030405060708ull);
}

}  // namespace
}  // namespace etcdsafe
