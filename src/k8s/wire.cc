#include "k8s/wire.h"

namespace etcdsafe::k8s {

bool WireReader::ReadVarint(uint64_t* v) {
  uint64_t result = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos_ >= data_.size()) {
      error_ = "truncated varint at offset " + std::to_string(pos_);
      return false;
    }
    const uint8_t b = data_[pos_++];
    result |= uint64_t(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = result;
      return true;
    }
  }
  error_ = "varint longer than 10 bytes at offset " + std::to_string(pos_);
  return false;
}

bool WireReader::Next(WireField* f) {
  if (!error_.empty() || pos_ >= data_.size()) return false;
  const size_t start = pos_;
  uint64_t tag = 0;
  if (!ReadVarint(&tag)) return false;
  const uint64_t number = tag >> 3;
  const int type = int(tag & 7);
  if (number == 0 || number > 0x1fffffff) {
    error_ = "invalid field number at offset " + std::to_string(start);
    return false;
  }
  f->number = uint32_t(number);
  f->varint = 0;
  f->bytes = {};
  switch (type) {
    case kVarint:
      f->type = kVarint;
      return ReadVarint(&f->varint);
    case kFixed64:
    case kFixed32: {
      const size_t n = type == kFixed64 ? 8 : 4;
      if (data_.size() - pos_ < n) {
        error_ = "truncated fixed field at offset " + std::to_string(start);
        return false;
      }
      f->type = WireType(type);
      f->bytes = data_.subspan(pos_, n);
      f->varint = n == 8 ? LoadLE64(data_.data() + pos_) : LoadLE32(data_.data() + pos_);
      pos_ += n;
      return true;
    }
    case kLengthDelimited: {
      uint64_t len = 0;
      if (!ReadVarint(&len)) return false;
      if (len > data_.size() - pos_) {
        error_ = "field " + std::to_string(number) + " length " + std::to_string(len) + " past the end at offset " +
                 std::to_string(start);
        return false;
      }
      f->type = kLengthDelimited;
      f->bytes = data_.subspan(pos_, size_t(len));
      pos_ += size_t(len);
      return true;
    }
    default:
      error_ = "unsupported wire type " + std::to_string(type) + " at offset " + std::to_string(start);
      return false;
  }
}

void AppendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(char(uint8_t(v) | 0x80));
    v >>= 7;
  }
  out->push_back(char(v));
}
void AppendTag(std::string* out, uint32_t number, WireType type) { AppendVarint(out, (uint64_t(number) << 3) | type); }
void AppendBytesField(std::string* out, uint32_t number, std::string_view bytes) {
  AppendTag(out, number, kLengthDelimited);
  AppendVarint(out, bytes.size());
  out->append(bytes);
}
void AppendVarintField(std::string* out, uint32_t number, uint64_t v) {
  AppendTag(out, number, kVarint);
  AppendVarint(out, v);
}

}  // namespace etcdsafe::k8s
