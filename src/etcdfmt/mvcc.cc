#include "etcdfmt/mvcc.h"

namespace etcdsafe::etcdfmt {
namespace {

bool ReadVarint(const uint8_t*& p, const uint8_t* end, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (p >= end) return false;
    const uint8_t b = *p++;
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *out = v;
      return true;
    }
  }
  return false;
}

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void PutNumber(std::string& out, int field, int64_t v) {
  if (v == 0) return;
  PutVarint(out, static_cast<uint64_t>(field) << 3);
  PutVarint(out, static_cast<uint64_t>(v));
}

void PutBytes(std::string& out, int field, std::string_view b) {
  if (b.empty()) return;
  PutVarint(out, (static_cast<uint64_t>(field) << 3) | 2);
  PutVarint(out, b.size());
  out.append(b);
}

}  // namespace

std::optional<KeyValueView> ParseKeyValueView(Bytes pb) {
  const uint8_t* p = pb.data();
  const uint8_t* end = p + pb.size();
  KeyValueView kv;
  while (p < end) {
    uint64_t tag = 0;
    if (!ReadVarint(p, end, &tag)) return std::nullopt;
    const uint64_t field = tag >> 3;
    const uint64_t wire = tag & 7;
    if (field == 0) return std::nullopt;
    const bool known = field <= 6;
    const bool bytes_field = field == 1 || field == 5;
    switch (wire) {
      case 0: {
        uint64_t x = 0;
        if (!ReadVarint(p, end, &x)) return std::nullopt;
        if (known && bytes_field) return std::nullopt;
        const auto v = static_cast<int64_t>(x);
        if (field == 2) kv.create_revision = v;
        if (field == 3) kv.mod_revision = v;
        if (field == 4) kv.version = v;
        if (field == 6) kv.lease = v;
        break;
      }
      case 1:
        if (known || end - p < 8) return std::nullopt;
        p += 8;
        break;
      case 5:
        if (known || end - p < 4) return std::nullopt;
        p += 4;
        break;
      case 2: {
        uint64_t n = 0;
        if (!ReadVarint(p, end, &n) || n > static_cast<uint64_t>(end - p)) return std::nullopt;
        if (known && !bytes_field) return std::nullopt;
        const std::string_view s(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
        if (field == 1) kv.key = s;
        if (field == 5) kv.value = s;
        p += n;
        break;
      }
      default:
        return std::nullopt;
    }
  }
  return kv;
}

std::string EncodeKeyValue(const KeyValueView& kv) {
  std::string out;
  out.reserve(kv.key.size() + kv.value.size() + 48);
  PutBytes(out, 1, kv.key);
  PutNumber(out, 2, kv.create_revision);
  PutNumber(out, 3, kv.mod_revision);
  PutNumber(out, 4, kv.version);
  PutBytes(out, 5, kv.value);
  PutNumber(out, 6, kv.lease);
  return out;
}

}  // namespace etcdsafe::etcdfmt
