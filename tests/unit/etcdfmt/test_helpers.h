// Small helpers shared by the etcdfmt tests.
#pragma once

#include <string>

#include "base/bytes.h"
#include "base/checksum.h"
#include "base/file.h"

namespace etcdsafe::etcdfmt::test {

inline std::string Sha256Hex(std::string_view s) {
  auto d = Sha256Of(AsBytes(s));
  return HexBytes(Bytes(d.data(), d.size()));
}

inline std::string Sha256FileHex(const std::string& path) {
  File f = File::OpenRead(path);
  Sha256 h;
  std::string buf(1 << 20, '\0');
  size_t n;
  while ((n = f.Read(reinterpret_cast<uint8_t*>(buf.data()), buf.size())) > 0) {
    h.Update(reinterpret_cast<const uint8_t*>(buf.data()), n);
  }
  auto d = h.Finish();
  return HexBytes(Bytes(d.data(), d.size()));
}

inline std::string FromHex(std::string_view hex) {
  std::string out;
  int hi = -1;
  for (char c : hex) {
    int v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else continue;  // spaces, offsets' colons are stripped by the caller
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<char>(hi << 4 | v));
      hi = -1;
    }
  }
  return out;
}

}  // namespace etcdsafe::etcdfmt::test
