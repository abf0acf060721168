// Byte coding helpers: fixed-width little/big-endian integers, protobuf varints, and a
// bounds-checked reading cursor for untrusted input.
//
// bbolt stores its integers in host order (little-endian on every platform we run on);
// etcd's own payloads (revisions, consistent_index, member IDs in cluster-ID hashing)
// are big-endian. Keep the two apart by always calling the named helper.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "base/error.h"

namespace etcdsafe {

using Bytes = std::span<const uint8_t>;

inline Bytes AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline std::string_view AsString(Bytes b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

inline uint16_t LoadLE16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
inline uint32_t LoadLE32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;  // x86-64/arm64 are little-endian; static_assert below guards it
}
inline uint64_t LoadLE64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline void StoreLE16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }
inline void StoreLE32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
inline void StoreLE64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }

inline uint64_t LoadBE64(const uint8_t* p) { return __builtin_bswap64(LoadLE64(p)); }
inline void StoreBE64(uint8_t* p, uint64_t v) { StoreLE64(p, __builtin_bswap64(v)); }

inline void AppendLE64(std::string* out, uint64_t v) {
  uint8_t b[8];
  StoreLE64(b, v);
  out->append(reinterpret_cast<char*>(b), 8);
}
inline void AppendBE64(std::string* out, uint64_t v) {
  uint8_t b[8];
  StoreBE64(b, v);
  out->append(reinterpret_cast<char*>(b), 8);
}

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "bbolt files are host-order; etcdsafe only supports little-endian hosts");

// Protobuf base-128 varint.
inline void AppendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// A size: digits with an optional unit B, KiB, MiB, GiB, TiB (K, M, G, T are the same
// binary units): "8MiB" = 8388608, "0" = 0. Anything else, or more than 2^64 - 1 bytes:
// Error(kInvalidArgument) "bad size ..." naming the text.
uint64_t ParseByteSize(const std::string& text);

// Lowercase hex without zero padding, like Go's %x / types.ID.String().
std::string HexNoPad(uint64_t v);
// Lowercase hex of every byte ("0a1b...").
std::string HexBytes(Bytes b);

// A bounds-checked cursor over untrusted bytes. Every read past the end throws
// Error(kDataLoss) naming `what` and the offset, so decoders never read out of bounds.
class ByteReader {
 public:
  ByteReader(Bytes data, std::string what) : data_(data), what_(std::move(what)) {}

  size_t offset() const { return pos_; }
  size_t remaining() const { return data_.size() - pos_; }
  bool empty() const { return pos_ >= data_.size(); }

  uint8_t U8() { return Take(1)[0]; }
  uint64_t LE64() { return LoadLE64(Take(8).data()); }
  uint64_t Varint();
  Bytes Take(size_t n);

  [[noreturn]] void Fail(std::string_view why) const;

 private:
  Bytes data_;
  size_t pos_ = 0;
  std::string what_;
};

}  // namespace etcdsafe
