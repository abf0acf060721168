#include "base/checksum.h"

#include <openssl/evp.h>

#include <vector>

#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>
#endif

namespace etcdsafe {
namespace {

constexpr uint32_t kCastagnoliReflected = 0x82F63B78u;

struct Crc32cTable {
  uint32_t t[8][256];
  constexpr Crc32cTable() : t{} {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ kCastagnoliReflected : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
      for (int s = 1; s < 8; s++) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
    }
  }
};
constexpr Crc32cTable kTable;

// Slicing-by-8 on the raw (non-inverted) register.
uint32_t Crc32cSoftware(uint32_t c, const uint8_t* p, size_t n) {
  while (n >= 8) {
    uint64_t w = LoadLE64(p) ^ c;
    c = kTable.t[7][w & 0xff] ^ kTable.t[6][(w >> 8) & 0xff] ^ kTable.t[5][(w >> 16) & 0xff] ^
        kTable.t[4][(w >> 24) & 0xff] ^ kTable.t[3][(w >> 32) & 0xff] ^
        kTable.t[2][(w >> 40) & 0xff] ^ kTable.t[1][(w >> 48) & 0xff] ^ kTable.t[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n-- > 0) c = kTable.t[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return c;
}

// GF(2) product of two polynomials modulo the reflected Castagnoli polynomial; used only
// to build the shift tables below (the same algebra zlib uses for crc32_combine).
uint32_t MultModP(uint32_t a, uint32_t b) {
  uint32_t m = 1u << 31, p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = (b & 1) ? (b >> 1) ^ kCastagnoliReflected : b >> 1;
  }
  return p;
}

// x^(8*n) mod P: the operator that appends n zero bytes to a CRC register.
uint32_t ZerosOperator(size_t n) {
  uint32_t x2n = 1u << 30;  // x^1
  uint32_t op = 1u << 31;   // x^0
  size_t bits = n * 8;
  while (bits != 0) {
    if (bits & 1) op = MultModP(x2n, op);
    x2n = MultModP(x2n, x2n);
    bits >>= 1;
  }
  return op;
}

// Appending n zero bytes is linear in the register, so it is four table lookups.
struct ShiftTable {
  uint32_t t[4][256];
  explicit ShiftTable(size_t n) { Fill(ZerosOperator(n)); }
  // Appends 2^k zero bytes: the operator is x^(8 * 2^k), i.e. squared k times from x^8.
  ShiftTable(size_t, int k) {
    uint32_t op = ZerosOperator(1);
    for (int i = 0; i < k; i++) op = MultModP(op, op);
    Fill(op);
  }
  void Fill(uint32_t op) {
    for (int k = 0; k < 4; k++) {
      for (uint32_t b = 0; b < 256; b++) t[k][b] = MultModP(op, b << (8 * k));
    }
  }
  uint32_t Shift(uint32_t r) const {
    return t[0][r & 0xff] ^ t[1][(r >> 8) & 0xff] ^ t[2][(r >> 16) & 0xff] ^ t[3][r >> 24];
  }
};

#if defined(__x86_64__)
// The crc32 instruction has a 3-cycle latency but a 1-cycle throughput, so one dependent
// chain runs at a third of the speed the CPU offers: split each block into three lanes,
// run them interleaved, and join the lanes with the shift tables.
constexpr size_t kLane = 512;

__attribute__((target("sse4.2"))) uint32_t Crc32cHardware(uint32_t c, const uint8_t* p,
                                                          size_t n) {
  static const ShiftTable kShift1(kLane), kShift2(2 * kLane);
  uint64_t c64 = c;
  while (n >= 3 * kLane) {
    uint64_t a = c64, b = 0, d = 0;
    for (size_t i = 0; i < kLane; i += 8) {
      a = _mm_crc32_u64(a, LoadLE64(p + i));
      b = _mm_crc32_u64(b, LoadLE64(p + kLane + i));
      d = _mm_crc32_u64(d, LoadLE64(p + 2 * kLane + i));
    }
    c64 = kShift2.Shift(static_cast<uint32_t>(a)) ^ kShift1.Shift(static_cast<uint32_t>(b)) ^
          static_cast<uint32_t>(d);
    p += 3 * kLane;
    n -= 3 * kLane;
  }
  while (n >= 8) {
    c64 = _mm_crc32_u64(c64, LoadLE64(p));
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c64);
  while (n-- > 0) c32 = _mm_crc32_u8(c32, *p++);
  return c32;
}

bool CpuHasSse42() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  return (c & bit_SSE4_2) != 0;
}
#endif

using CrcFn = uint32_t (*)(uint32_t, const uint8_t*, size_t);

CrcFn PickCrc() {
#if defined(__x86_64__)
  if (CpuHasSse42()) return Crc32cHardware;
#endif
  return Crc32cSoftware;
}

// Shift tables for x^(8 * 2^k) mod P, k = 0..63: appending 2^k zero bytes.
struct PowerShiftTables {
  std::vector<ShiftTable> t;
  PowerShiftTables() {
    t.reserve(64);
    for (int k = 0; k < 64; k++) t.emplace_back(ShiftTable(size_t{1}, k));
  }
};

}  // namespace

uint32_t Crc32cCombine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
  static const PowerShiftTables kPowers;
  uint32_t r = crc_a;
  for (int k = 0; len_b != 0; k++, len_b >>= 1) {
    if (len_b & 1) r = kPowers.t[static_cast<size_t>(k)].Shift(r);
  }
  return r ^ crc_b;
}

uint32_t Crc32cExtendPortable(uint32_t crc, const uint8_t* data, size_t n) {
  return ~Crc32cSoftware(~crc, data, n);
}

uint32_t Crc32cExtend(uint32_t crc, const uint8_t* data, size_t n) {
  static const CrcFn fn = PickCrc();
  return ~fn(~crc, data, n);
}

uint64_t Fnv1a64(Bytes b) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint8_t c : b) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  if (impl_->ctx == nullptr || EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1) {
    throw Error(ErrorCode::kInternal, "OpenSSL: cannot initialise SHA-256");
  }
}

Sha256::~Sha256() { EVP_MD_CTX_free(impl_->ctx); }

void Sha256::Update(const uint8_t* data, size_t n) {
  if (n != 0) EVP_DigestUpdate(impl_->ctx, data, n);
}

Sha256Digest Sha256::Finish() {
  Sha256Digest out{};
  unsigned int len = 0;
  EVP_DigestFinal_ex(impl_->ctx, out.data(), &len);
  return out;
}

Sha256Digest Sha256Of(Bytes b) {
  Sha256 h;
  h.Update(b);
  return h.Finish();
}

std::array<uint8_t, 20> Sha1Of(Bytes b) {
  std::array<uint8_t, 20> out{};
  unsigned int len = 0;
  if (EVP_Digest(b.data(), b.size(), out.data(), &len, EVP_sha1(), nullptr) != 1) {
    throw Error(ErrorCode::kInternal, "OpenSSL: SHA-1 failed");
  }
  return out;
}

}  // namespace etcdsafe
