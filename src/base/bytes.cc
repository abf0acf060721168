#include "base/bytes.h"

#include "base/error.h"

namespace etcdsafe {

std::string HexNoPad(uint64_t v) {
  static const char kDigits[] = "0123456789abcdef";
  if (v == 0) return "0";
  char buf[16];
  int n = 0;
  while (v != 0) {
    buf[n++] = kDigits[v & 0xf];
    v >>= 4;
  }
  std::string out;
  out.reserve(n);
  while (n > 0) out.push_back(buf[--n]);
  return out;
}

uint64_t ParseByteSize(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') i++;
  const std::string bad = "bad size \"" + text + "\" (want e.g. 8MiB; units B, KiB, MiB, GiB, TiB)";
  if (i == 0 || i > 18) throw Error(ErrorCode::kInvalidArgument, bad);
  const uint64_t n = std::stoull(text.substr(0, i));
  const std::string unit = text.substr(i);
  int shift = 0;
  if (unit.empty() || unit == "B") {
    shift = 0;
  } else if (unit == "KiB" || unit == "K") {
    shift = 10;
  } else if (unit == "MiB" || unit == "M") {
    shift = 20;
  } else if (unit == "GiB" || unit == "G") {
    shift = 30;
  } else if (unit == "TiB" || unit == "T") {
    shift = 40;
  } else {
    throw Error(ErrorCode::kInvalidArgument, bad);
  }
  if (shift > 0 && n > (UINT64_MAX >> shift)) throw Error(ErrorCode::kInvalidArgument, bad + ": too big");
  return n << shift;
}

std::string HexBytes(Bytes b) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(b.size() * 2);
  for (uint8_t c : b) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

uint64_t ByteReader::Varint() {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    uint8_t b = U8();
    v |= uint64_t(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return v;
  }
  Fail("varint longer than 10 bytes");
}

Bytes ByteReader::Take(size_t n) {
  if (n > remaining()) {
    Fail("truncated: need " + std::to_string(n) + " bytes, " + std::to_string(remaining()) +
         " left");
  }
  Bytes out = data_.subspan(pos_, n);
  pos_ += n;
  return out;
}

void ByteReader::Fail(std::string_view why) const {
  throw Error(ErrorCode::kDataLoss,
              what_ + " at offset " + std::to_string(pos_) + ": " + std::string(why));
}

}  // namespace etcdsafe
