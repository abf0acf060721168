// A bounded protobuf wire-format reader for untrusted bytes (Kubernetes values), with no
// schema: Next() yields one field (number, wire type, and the varint or the bytes of a
// length-delimited/fixed field as a view into the input) at a time. Malformed input
// (truncated varint or length, length past the end, field number 0, wire types 3/4
// (groups) or 6/7) makes Next() return false with error() set; it never reads out of
// bounds. Nesting is the caller's business (a new WireReader over a field's bytes), so
// the depth is bounded by the caller's code, not by the input.
// Thread-compatible; views point into the input, which must outlive them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/bytes.h"

namespace etcdsafe::k8s {

enum WireType : int { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

struct WireField {
  uint32_t number = 0;
  WireType type = kVarint;
  uint64_t varint = 0;  // kVarint; the little-endian value for kFixed32/kFixed64
  Bytes bytes;          // kLengthDelimited (and the raw 4/8 bytes of fixed fields)
  std::string_view str() const { return AsString(bytes); }
};

class WireReader {
 public:
  explicit WireReader(Bytes data) : data_(data) {}
  // Reads the next field; false at the end (error() empty) or on malformed input.
  bool Next(WireField* f);
  const std::string& error() const { return error_; }

 private:
  bool ReadVarint(uint64_t* v);
  Bytes data_;
  size_t pos_ = 0;
  std::string error_;
};

// Appends protobuf encodings (tests, fixtures and fuzz seeds).
void AppendVarint(std::string* out, uint64_t v);
void AppendTag(std::string* out, uint32_t number, WireType type);
void AppendBytesField(std::string* out, uint32_t number, std::string_view bytes);
void AppendVarintField(std::string* out, uint32_t number, uint64_t v);

}  // namespace etcdsafe::k8s
