#include "base/checksum.h"

#include <gtest/gtest.h>

#include <string>

namespace etcdsafe {
namespace {

TEST(Crc32c, Rfc3720Vectors) {
  std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(AsBytes(zeros)), 0x8a9136aau);
  std::string ones(32, '\xff');
  EXPECT_EQ(Crc32c(AsBytes(ones)), 0x62a8ab43u);
  std::string inc;
  for (int i = 0; i < 32; i++) inc.push_back(static_cast<char>(i));
  EXPECT_EQ(Crc32c(AsBytes(inc)), 0x46dd794eu);
  EXPECT_EQ(Crc32c(AsBytes("123456789")), 0xe3069283u);
}

TEST(Crc32c, ExtendEqualsWhole) {
  std::string s = "the quick brown fox jumps over the lazy dog, several times over";
  for (size_t cut = 0; cut <= s.size(); cut++) {
    uint32_t c = Crc32cExtend(0, AsBytes(std::string_view(s).substr(0, cut)));
    c = Crc32cExtend(c, AsBytes(std::string_view(s).substr(cut)));
    ASSERT_EQ(c, Crc32c(AsBytes(s))) << cut;
  }
}

TEST(Crc32c, CombineEqualsWhole) {
  std::string s;
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (int i = 0; i < 9000; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    s.push_back(static_cast<char>(x));
  }
  for (size_t cut : {0, 1, 2, 7, 8, 100, 4095, 4096, 4097, 8999, 9000}) {
    auto a = AsBytes(std::string_view(s).substr(0, cut));
    auto b = AsBytes(std::string_view(s).substr(cut));
    ASSERT_EQ(Crc32cCombine(Crc32c(a), Crc32c(b), b.size()), Crc32c(AsBytes(s))) << cut;
  }
  // Empty second part is the identity; a wrong length gives a different CRC.
  EXPECT_EQ(Crc32cCombine(0x12345678u, 0, 0), 0x12345678u);
  auto a = AsBytes(std::string_view(s).substr(0, 10));
  auto b = AsBytes(std::string_view(s).substr(10, 20));
  EXPECT_NE(Crc32cCombine(Crc32c(a), Crc32c(b), 21), Crc32c(AsBytes(std::string_view(s).substr(0, 30))));
}

TEST(Crc32c, HardwareLanesEqualPortableForManyLengths) {
  std::string buf(20000, '\0');
  uint64_t x = 88172645463325252ull;
  for (char& ch : buf) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    ch = static_cast<char>(x);
  }
  for (size_t len : {0, 1, 7, 8, 511, 512, 1535, 1536, 1537, 3072, 4095, 4096, 4097, 10000, 20000}) {
    for (size_t off : {0, 1, 3}) {
      if (off + len > buf.size()) continue;
      const auto* p = reinterpret_cast<const uint8_t*>(buf.data()) + off;
      ASSERT_EQ(Crc32cExtend(0x12345678u, p, len), Crc32cExtendPortable(0x12345678u, p, len))
          << len << "@" << off;
    }
  }
}

TEST(Fnv1a64, KnownValues) {
  EXPECT_EQ(Fnv1a64(AsBytes("")), 0xcbf29ce484222325ull);
  EXPECT_EQ(Fnv1a64(AsBytes("a")), 0xaf63dc4c8601ec8cull);
}

TEST(Sha256, StreamingEqualsOneShot) {
  std::string s(100000, 'x');
  Sha256 h;
  h.Update(AsBytes(std::string_view(s).substr(0, 777)));
  h.Update(AsBytes(std::string_view(s).substr(777)));
  EXPECT_EQ(h.Finish(), Sha256Of(AsBytes(s)));
  EXPECT_EQ(HexBytes(Sha256Of(AsBytes("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha1, Abc) {
  auto d = Sha1Of(AsBytes("abc"));
  EXPECT_EQ(HexBytes(d), "a9993e364706816aba3e25717850c26c9cd0d89d");
}

}  // namespace
}  // namespace etcdsafe
