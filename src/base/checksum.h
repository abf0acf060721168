// Checksums and digests used by etcd's formats.
//
// CRC-32C (Castagnoli): etcd's snapshot-status hash, the WAL record chain and .snap files.
//   Debian packages no CRC-32C library (zlib only has the IEEE polynomial), so this is a
//   small hand-written one: the SSE4.2 crc32 instruction when the CPU has it, a table
//   otherwise. Both are checked against the RFC 3720 vectors in the tests.
// FNV-1a 64: the bbolt meta page checksum.
// SHA-256 / SHA-1: OpenSSL (snapshot trailer; member and cluster IDs).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string_view>

#include "base/bytes.h"

namespace etcdsafe {

// Continues a CRC-32C: Crc32cExtend(Crc32cExtend(0, a), b) == Crc32c(a||b), the same
// contract as Go's crc32.Update with the Castagnoli table.
uint32_t Crc32cExtend(uint32_t crc, const uint8_t* data, size_t n);
// The table-driven version, whatever the CPU; for tests that compare the two.
uint32_t Crc32cExtendPortable(uint32_t crc, const uint8_t* data, size_t n);
inline uint32_t Crc32cExtend(uint32_t crc, Bytes b) { return Crc32cExtend(crc, b.data(), b.size()); }
inline uint32_t Crc32c(Bytes b) { return Crc32cExtend(0, b); }
// CRC-32C is linear, so the CRC of A||B follows from crc(A), crc(B) and len(B) alone:
// Crc32cCombine(Crc32c(a), Crc32c(b), b.size()) == Crc32c(a||b). A few table lookups per
// set bit of len_b (the tables are built once, on first use, thread-safely).
uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

uint64_t Fnv1a64(Bytes b);

using Sha256Digest = std::array<uint8_t, 32>;

// Incremental SHA-256. Not thread-safe; one instance per stream.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const uint8_t* data, size_t n);
  void Update(Bytes b) { Update(b.data(), b.size()); }
  // Returns the digest; the object must not be updated afterwards.
  Sha256Digest Finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

Sha256Digest Sha256Of(Bytes b);
std::array<uint8_t, 20> Sha1Of(Bytes b);

}  // namespace etcdsafe
