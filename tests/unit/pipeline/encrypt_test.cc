#include "pipeline/encrypt.h"

#include <gtest/gtest.h>

#include <chrono>
#include <functional>

#include "base/checksum.h"
#include "base/error.h"
#include "pipeline/compress.h"
#include "pipeline/hash.h"
#include "test_data.h"

namespace etcdsafe::pipeline {
namespace {

using testing::EtcdLike;
using testing::RandomBytes;
using testing::ReadAllInSteps;
using testing::WriteInSteps;

constexpr size_t kTag = 16;

KeySpec RawKey(uint8_t fill) {
  KeySpec k;
  k.kind = KeySpec::Kind::kRawKey;
  for (size_t i = 0; i < 32; i++) k.raw[i] = static_cast<uint8_t>(fill + i);
  return k;
}

KeySpec Pass(const std::string& p) {
  KeySpec k;
  k.kind = KeySpec::Kind::kPassphrase;
  k.passphrase = p;
  return k;
}

// Cheap scrypt so the matrix stays fast; the default cost is tested once below.
EncryptOptions Fast(int chunk_log2 = 20) {
  EncryptOptions o;
  o.chunk_log2 = chunk_log2;
  o.scrypt_log2n = 10;
  return o;
}

// snapshot → hash → compress → [encrypt] → bytes, as a backup does.
std::string Pack(const std::string& data, Compression c, const KeySpec& key, size_t step,
                 EncryptOptions eo = Fast()) {
  StringSink out;
  std::unique_ptr<EncryptSink> enc;
  Sink* next = &out;
  if (key.kind != KeySpec::Kind::kNone) {
    enc = NewEncryptSink(key, out, eo);
    next = enc.get();
  }
  auto comp = NewCompressSink(c, 0, *next);
  HashSink hash(*comp);
  WriteInSteps(hash, data, step);
  hash.Close();
  EXPECT_TRUE(out.closed());
  EXPECT_EQ(hash.bytes(), data.size());
  return out.str();
}

std::string Unpack(std::string packed, Compression c, const KeySpec& key, size_t step) {
  StringSource in(std::move(packed));
  std::unique_ptr<Source> dec;
  Source* next = &in;
  if (key.kind != KeySpec::Kind::kNone) {
    dec = NewDecryptSource(key, in);
    next = dec.get();
  }
  auto decomp = NewDecompressSource(c, *next);
  HashSource hash(*decomp);
  std::string out = ReadAllInSteps(hash, step);
  EXPECT_EQ(hash.digest(), Sha256Of(AsBytes(out)));
  return out;
}

std::string Decrypt(std::string packed, const KeySpec& key, std::string* partial = nullptr) {
  StringSource in(std::move(packed));
  auto dec = NewDecryptSource(key, in);
  std::string out;
  uint8_t buf[4096];
  for (;;) {
    size_t r = dec->Read(buf, sizeof buf);
    if (r == 0) break;
    out.append(reinterpret_cast<char*>(buf), r);
    if (partial) *partial = out;
  }
  return out;
}

std::string Encrypt(const std::string& data, const KeySpec& key, EncryptOptions eo = Fast()) {
  StringSink out;
  auto enc = NewEncryptSink(key, out, eo);
  WriteInSteps(*enc, data, 1 << 20);
  enc->Close();
  return out.str();
}

struct Failure {
  ErrorCode code;
  std::string msg;
};

Failure DecryptFailure(std::string packed, const KeySpec& key, const std::string& plain = "") {
  std::string partial;
  try {
    Decrypt(std::move(packed), key, &partial);
  } catch (const Error& e) {
    // Whatever was returned before the error authenticated, so it is a prefix of the plaintext.
    if (!plain.empty()) {
      EXPECT_EQ(plain.substr(0, partial.size()), partial);
    }
    return {e.code(), e.what()};
  }
  ADD_FAILURE() << "decryption succeeded";
  return {ErrorCode::kInternal, ""};
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "message: " << (haystack)

TEST(Encrypt, RoundTripMatrix) {
  const size_t chunk = 1 << 20;
  const size_t sizes[] = {0, 1, chunk - 1, chunk, chunk + 1, (4 * chunk) + 333};
  const KeySpec keys[] = {KeySpec{}, RawKey(1), Pass("correct horse battery staple")};
  for (Compression c : {Compression::kNone, Compression::kZstd, Compression::kGzip}) {
    for (const KeySpec& key : keys) {
      for (size_t n : sizes) {
        for (int kind = 0; kind < 2; kind++) {
          std::string data = kind == 0 ? RandomBytes(n, n * 3 + 1) : EtcdLike(n, n * 3 + 2);
          for (auto [wstep, rstep] : {std::pair<size_t, size_t>{n > 65536 ? 4099 : 1, 7},
                                      std::pair<size_t, size_t>{size_t{64} << 20, size_t{8} << 20}}) {
            SCOPED_TRACE(std::string(CompressionName(c)) + " key=" + std::to_string(int(key.kind)) +
                         " n=" + std::to_string(n) + " kind=" + std::to_string(kind) + " w=" + std::to_string(wstep));
            std::string packed = Pack(data, c, key, wstep);
            if (key.kind != KeySpec::Kind::kNone) {
              ASSERT_TRUE(LooksEncrypted(AsBytes(packed)));
              if (c == Compression::kNone) {
                // header + ceil(n / chunk) chunks (at least one) with a tag each
                size_t chunks = n == 0 ? 1 : (n + chunk - 1) / chunk;
                EXPECT_EQ(packed.size(), kArchiveHeaderSize + n + chunks * kTag);
              }
            }
            ASSERT_EQ(Unpack(packed, c, key, rstep), data);
          }
        }
      }
    }
  }
}

TEST(Encrypt, SameInputEncryptsDifferently) {
  std::string data = EtcdLike(5000, 1);
  std::string a = Encrypt(data, RawKey(1)), b = Encrypt(data, RawKey(1));
  EXPECT_EQ(a.size(), b.size());
  EXPECT_NE(a.substr(kArchiveHeaderSize), b.substr(kArchiveHeaderSize));  // per-file salt → per-file key
  EXPECT_EQ(ParseArchiveHeader(AsBytes(a).subspan(0, kArchiveHeaderSize)).key_id, KeyId(RawKey(1)));
}

TEST(Encrypt, HeaderFieldsAndKeyIds) {
  KeySpec raw = RawKey(7);
  StringSink out;
  auto enc = NewEncryptSink(raw, out, Fast(16));
  EXPECT_EQ(enc->key_id(), KeyId(raw));
  EXPECT_EQ(enc->key_id().size(), 16u);
  enc->Close();
  ArchiveHeader h = ParseArchiveHeader(AsBytes(out.str()).subspan(0, kArchiveHeaderSize));
  EXPECT_EQ(h.version, 1);
  EXPECT_EQ(h.key_kind, KeySpec::Kind::kRawKey);
  EXPECT_EQ(h.chunk_size, 1u << 16);
  EXPECT_EQ(h.key_id, KeyId(raw));
  EXPECT_NE(KeyId(RawKey(7)), KeyId(RawKey(8)));
  // Passphrase ids are salted per archive: two backups with one passphrase differ.
  StringSink o1, o2;
  auto p1 = NewEncryptSink(Pass("pw"), o1, Fast());
  auto p2 = NewEncryptSink(Pass("pw"), o2, Fast());
  EXPECT_NE(p1->key_id(), p2->key_id());
  EXPECT_THROW(KeyId(Pass("pw")), Error);
}

TEST(Encrypt, DefaultScryptCost) {
  std::string data = EtcdLike(10000, 4);
  std::string packed = Encrypt(data, Pass("pw"), EncryptOptions{});
  ArchiveHeader h = ParseArchiveHeader(AsBytes(packed).subspan(0, kArchiveHeaderSize));
  EXPECT_EQ(h.scrypt_log2n, 17);
  EXPECT_EQ(h.scrypt_r, 8);
  EXPECT_EQ(h.scrypt_p, 1);
  EXPECT_EQ(Decrypt(packed, Pass("pw")), data);
}

// A header asking for more scrypt work than the writer ever uses is refused before any
// derivation: N=2^20, r=8, p=2 used to take 7.9 s and 1.07 GB RSS to reject, p<=16 passed.
TEST(EncryptNegative, HostileScryptParamsRefusedBeforeDeriving) {
  std::string packed = Encrypt("secret", Pass("pw"));
  auto with = [&](int log2n, int r, int p) {
    std::string bad = packed;
    bad[15] = static_cast<char>(log2n);
    bad[16] = static_cast<char>(r);
    bad[17] = static_cast<char>(p);
    uint32_t crc = Crc32c(AsBytes(bad).subspan(0, 76));
    std::memcpy(bad.data() + 76, &crc, 4);
    return bad;
  };
  struct P { int log2n, r, p; };
  for (P q : {P{20, 8, 2}, P{17, 8, 16}, P{10, 8, 2}, P{18, 8, 1}, P{17, 9, 1}, P{21, 1, 1}, P{20, 2, 1},
              P{22, 8, 1}, P{9, 8, 1}, P{17, 0, 1}, P{17, 8, 0}, P{255, 255, 255}}) {
    SCOPED_TRACE(std::to_string(q.log2n) + "/" + std::to_string(q.r) + "/" + std::to_string(q.p));
    std::string bad = with(q.log2n, q.r, q.p);
    auto t0 = std::chrono::steady_clock::now();
    Failure f = DecryptFailure(bad, Pass("pw"));
    EXPECT_EQ(f.code, ErrorCode::kDataLoss);
    EXPECT_CONTAINS(f.msg, "scrypt parameters out of range");
    try {
      ArchiveMasterKey(Pass("pw"), AsBytes(bad).subspan(0, kArchiveHeaderSize));
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    }
    EXPECT_THROW(ParseArchiveHeader(AsBytes(bad).subspan(0, kArchiveHeaderSize)), Error);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(ms, 50);
  }
  // At the budget is fine: r*N = 2^20 with other shapes (reader side, header-only check).
  for (P q : {P{17, 8, 1}, P{20, 1, 1}, P{10, 8, 1}, P{12, 255, 1}}) {
    EXPECT_NO_THROW(ParseArchiveHeader(AsBytes(with(q.log2n, q.r, q.p)).subspan(0, kArchiveHeaderSize)));
  }
  // The writer refuses the same parameters (kInvalidArgument) and accepts the default.
  StringSink out;
  for (P q : {P{17, 8, 2}, P{18, 8, 1}, P{17, 16, 1}, P{9, 8, 1}}) {
    EncryptOptions o;
    o.scrypt_log2n = q.log2n;
    o.scrypt_r = q.r;
    o.scrypt_p = q.p;
    try {
      NewEncryptSink(Pass("x"), out, o);
      ADD_FAILURE() << "accepted " << q.log2n << "/" << q.r << "/" << q.p;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    }
  }
}

TEST(Encrypt, BadOptions) {
  StringSink out;
  EXPECT_THROW(NewEncryptSink(KeySpec{}, out), Error);
  EncryptOptions o = Fast(11);
  EXPECT_THROW(NewEncryptSink(RawKey(1), out, o), Error);
  o = Fast();
  o.scrypt_log2n = 30;
  EXPECT_THROW(NewEncryptSink(Pass("x"), out, o), Error);
  EXPECT_THROW(NewEncryptSink(Pass(""), out, Fast()), Error);
}

// ArchiveMasterKey: the key a manifest MAC is computed with, recovered from a header.
TEST(Encrypt, ArchiveMasterKey) {
  std::string by_key = Encrypt("x", RawKey(1)), by_pass = Encrypt("x", Pass("pw"));
  Bytes hk = AsBytes(by_key).subspan(0, kArchiveHeaderSize);
  Bytes hp = AsBytes(by_pass).subspan(0, kArchiveHeaderSize);
  EXPECT_EQ(ArchiveKeyId(hk), KeyId(RawKey(1)));
  EXPECT_EQ(ArchiveMasterKey(RawKey(1), hk), RawKey(1).raw);
  // A passphrase gives the scrypt-derived key whose id is the header's, the same every time.
  MasterKey m = ArchiveMasterKey(Pass("pw"), hp);
  EXPECT_EQ(KeyIdOf(m), ArchiveKeyId(hp));
  EXPECT_EQ(ArchiveMasterKey(Pass("pw"), hp), m);
  EXPECT_NE(MacHex(m, "manifest", "d"), MacHex(RawKey(1).raw, "manifest", "d"));
  // A second archive with the same passphrase has another salt, so another key.
  std::string by_pass2 = Encrypt("x", Pass("pw"));
  EXPECT_NE(ArchiveMasterKey(Pass("pw"), AsBytes(by_pass2).subspan(0, kArchiveHeaderSize)), m);

  auto fail = [](const KeySpec& k, Bytes h) {
    try {
      ArchiveMasterKey(k, h);
    } catch (const Error& e) {
      return Failure{e.code(), e.what()};
    }
    ADD_FAILURE() << "no error";
    return Failure{ErrorCode::kInternal, ""};
  };
  Failure f = fail(RawKey(2), hk);
  EXPECT_EQ(f.code, ErrorCode::kUnauthenticated);
  EXPECT_CONTAINS(f.msg, KeyId(RawKey(1)));
  EXPECT_CONTAINS(f.msg, KeyId(RawKey(2)));
  f = fail(Pass("wrong"), hp);
  EXPECT_EQ(f.code, ErrorCode::kUnauthenticated);
  EXPECT_CONTAINS(f.msg, ArchiveKeyId(hp));
  f = fail(RawKey(1), hp);
  EXPECT_EQ(f.code, ErrorCode::kUnauthenticated);
  EXPECT_CONTAINS(f.msg, ArchiveKeyId(hp));
  EXPECT_CONTAINS(f.msg, KeyId(RawKey(1)));
  EXPECT_EQ(fail(Pass("pw"), hk).code, ErrorCode::kUnauthenticated);
  EXPECT_EQ(fail(KeySpec{}, hk).code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(fail(RawKey(1), AsBytes(by_key).subspan(0, 40)).code, ErrorCode::kDataLoss);
}

// --- wrong keys ---

TEST(EncryptNegative, WrongRawKey) {
  std::string packed = Encrypt("secret data", RawKey(1));
  Failure f = DecryptFailure(packed, RawKey(2));
  EXPECT_EQ(f.code, ErrorCode::kUnauthenticated);
  EXPECT_CONTAINS(f.msg, "wrong encryption key: backup was encrypted with key " + KeyId(RawKey(1)) +
                             ", given key is " + KeyId(RawKey(2)));
}

TEST(EncryptNegative, WrongPassphrase) {
  std::string packed = Encrypt("secret data", Pass("right"));
  Failure f = DecryptFailure(packed, Pass("wrong"));
  EXPECT_EQ(f.code, ErrorCode::kUnauthenticated);
  EXPECT_CONTAINS(f.msg, "wrong passphrase");
}

TEST(EncryptNegative, KindMismatchAndNoKey) {
  std::string by_key = Encrypt("x", RawKey(1)), by_pass = Encrypt("x", Pass("p"));
  Failure f = DecryptFailure(by_key, Pass("p"));
  EXPECT_EQ(f.code, ErrorCode::kUnauthenticated);
  EXPECT_CONTAINS(f.msg, "encrypted with a key");
  f = DecryptFailure(by_pass, RawKey(1));
  EXPECT_EQ(f.code, ErrorCode::kUnauthenticated);
  EXPECT_CONTAINS(f.msg, "encrypted with a passphrase");
  f = DecryptFailure(by_key, KeySpec{});
  EXPECT_EQ(f.code, ErrorCode::kUnauthenticated);
  EXPECT_CONTAINS(f.msg, "no key was given");
}

TEST(EncryptNegative, NotAnArchive) {
  Failure f = DecryptFailure(EtcdLike(1000, 1), RawKey(1));
  EXPECT_EQ(f.code, ErrorCode::kDataLoss);
  EXPECT_CONTAINS(f.msg, "bad magic");
  f = DecryptFailure("", RawKey(1));
  EXPECT_EQ(f.code, ErrorCode::kDataLoss);
  EXPECT_CONTAINS(f.msg, "truncated header");
}

// --- tampering: 4 KiB chunks, 3 full chunks + a short final one ---

class Tamper : public ::testing::Test {
 protected:
  static constexpr size_t kChunk = 4096;
  static constexpr size_t kSealed = kChunk + kTag;
  void SetUp() override {
    plain_ = RandomBytes(3 * kChunk + 1000, 42);
    packed_ = Encrypt(plain_, key_, Fast(12));
    ASSERT_EQ(packed_.size(), kArchiveHeaderSize + 4 * kTag + plain_.size());
  }
  size_t ChunkOff(size_t i) const { return kArchiveHeaderSize + i * kSealed; }
  std::string Chunk(size_t i) const { return packed_.substr(ChunkOff(i), i < 3 ? kSealed : 1000 + kTag); }
  Failure Fail(const std::string& bad) { return DecryptFailure(bad, key_, plain_); }

  KeySpec key_ = RawKey(9);
  std::string plain_, packed_;
};

TEST_F(Tamper, Untouched) { EXPECT_EQ(Decrypt(packed_, key_), plain_); }

TEST_F(Tamper, EveryHeaderByte) {
  for (size_t i = 0; i < kArchiveHeaderSize; i++) {
    for (uint8_t bit : {uint8_t{0x01}, uint8_t{0x80}}) {
      std::string bad = packed_;
      bad[i] = static_cast<char>(bad[i] ^ bit);
      Failure f = Fail(bad);
      // The header CRC catches every flip first (also in the key-id field): a corrupted
      // header is data loss, never mistaken for a wrong key.
      EXPECT_EQ(f.code, ErrorCode::kDataLoss) << "byte " << i << ": " << f.msg;
      EXPECT_TRUE(f.msg.find("header") != std::string::npos || f.msg.find("magic") != std::string::npos) << f.msg;
    }
  }
}

TEST_F(Tamper, HeaderTamperWithFixedCrcStillFails) {
  // An attacker can recompute the CRC; the chunks authenticate the header hash.
  std::string bad = packed_;
  bad[50] ^= 1;  // file salt
  uint32_t crc = Crc32c(AsBytes(bad).subspan(0, 76));
  std::memcpy(bad.data() + 76, &crc, 4);
  Failure f = Fail(bad);
  EXPECT_EQ(f.code, ErrorCode::kDataLoss);
  EXPECT_CONTAINS(f.msg, "chunk 0");
}

TEST_F(Tamper, EveryChunkCiphertextAndTag) {
  for (size_t i = 0; i < 4; i++) {
    size_t len = Chunk(i).size();
    for (size_t off : {size_t{0}, len / 2, len - kTag - 1, len - kTag, len - 1}) {
      std::string bad = packed_;
      bad[ChunkOff(i) + off] ^= 0x10;
      Failure f = Fail(bad);
      EXPECT_EQ(f.code, ErrorCode::kDataLoss);
      EXPECT_CONTAINS(f.msg, "chunk " + std::to_string(i) + " failed authentication");
    }
  }
}

TEST_F(Tamper, TruncateAtChunkBoundaries) {
  for (size_t i = 1; i <= 3; i++) {
    Failure f = Fail(packed_.substr(0, ChunkOff(i)));
    EXPECT_EQ(f.code, ErrorCode::kDataLoss);
    EXPECT_CONTAINS(f.msg, "truncated: object ends after chunk " + std::to_string(i - 1));
  }
  Failure f = Fail(packed_.substr(0, kArchiveHeaderSize));
  EXPECT_EQ(f.code, ErrorCode::kDataLoss);
  EXPECT_CONTAINS(f.msg, "truncated: no chunks");
}

TEST_F(Tamper, TruncateMidChunkAndHeader) {
  for (size_t cut : {ChunkOff(1) + 100, ChunkOff(3) + 500, packed_.size() - 1, ChunkOff(2) + 5}) {
    Failure f = Fail(packed_.substr(0, cut));
    EXPECT_EQ(f.code, ErrorCode::kDataLoss);
    EXPECT_CONTAINS(f.msg, "truncated");
  }
  for (size_t cut : {size_t{5}, size_t{12}, size_t{79}}) {
    Failure f = Fail(packed_.substr(0, cut));
    EXPECT_EQ(f.code, ErrorCode::kDataLoss);
    EXPECT_CONTAINS(f.msg, "truncated");
  }
}

TEST_F(Tamper, SwapDuplicateDropChunks) {
  std::string head = packed_.substr(0, kArchiveHeaderSize);
  Failure f = Fail(head + Chunk(1) + Chunk(0) + Chunk(2) + Chunk(3));
  EXPECT_EQ(f.code, ErrorCode::kDataLoss);
  EXPECT_CONTAINS(f.msg, "chunk 0");
  f = Fail(head + Chunk(0) + Chunk(2) + Chunk(1) + Chunk(3));
  EXPECT_EQ(f.code, ErrorCode::kDataLoss);
  EXPECT_CONTAINS(f.msg, "chunk 1");
  f = Fail(head + Chunk(0) + Chunk(0) + Chunk(1) + Chunk(2) + Chunk(3));  // duplicate
  EXPECT_EQ(f.code, ErrorCode::kDataLoss);
  EXPECT_CONTAINS(f.msg, "chunk 1");
  f = Fail(head + Chunk(0) + Chunk(2) + Chunk(3));  // drop
  EXPECT_EQ(f.code, ErrorCode::kDataLoss);
  EXPECT_CONTAINS(f.msg, "chunk 1");
  f = Fail(head + Chunk(0) + Chunk(1) + Chunk(2));  // drop the final chunk
  EXPECT_EQ(f.code, ErrorCode::kDataLoss);
  EXPECT_CONTAINS(f.msg, "truncated");
}

TEST_F(Tamper, AppendedData) {
  Failure f = Fail(packed_ + Chunk(3));
  EXPECT_EQ(f.code, ErrorCode::kDataLoss);
  f = Fail(packed_ + "x");
  EXPECT_EQ(f.code, ErrorCode::kDataLoss);
  // A full-size final chunk followed by more data is named precisely.
  std::string full = Encrypt(RandomBytes(2 * kChunk, 1), key_, Fast(12));
  f = DecryptFailure(full + std::string(kSealed, 'A'), key_);
  EXPECT_EQ(f.code, ErrorCode::kDataLoss);
  EXPECT_CONTAINS(f.msg, "unexpected data after the final chunk 1");
}

TEST_F(Tamper, SpliceFromAnotherArchiveWithTheSameKey) {
  std::string other = Encrypt(RandomBytes(3 * kChunk + 1000, 43), key_, Fast(12));
  // Another archive's header + our chunks, and our header + another archive's chunk 1.
  Failure f = Fail(other.substr(0, kArchiveHeaderSize) + packed_.substr(kArchiveHeaderSize));
  EXPECT_EQ(f.code, ErrorCode::kDataLoss);
  EXPECT_CONTAINS(f.msg, "chunk 0");
  std::string mixed = packed_;
  mixed.replace(ChunkOff(1), kSealed, other.substr(ChunkOff(1), kSealed));
  f = Fail(mixed);
  EXPECT_EQ(f.code, ErrorCode::kDataLoss);
  EXPECT_CONTAINS(f.msg, "chunk 1");
}

TEST_F(Tamper, CompressedThenTamperedIsDataLossThroughTheChain) {
  std::string data = EtcdLike(100000, 3);
  std::string packed = Pack(data, Compression::kZstd, key_, 1000, Fast(12));
  packed[packed.size() / 2] ^= 4;
  try {
    Unpack(packed, Compression::kZstd, key_, 4096);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
  }
}

}  // namespace
}  // namespace etcdsafe::pipeline
