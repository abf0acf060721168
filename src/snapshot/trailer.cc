#include "snapshot/trailer.h"

#include <cstring>

namespace etcdsafe::snapshot {

void TrailerVerifier::Update(const uint8_t* data, size_t n) {
  bytes_ += n;
  if (n >= kTrailerSize) {
    sha_.Update(reinterpret_cast<const uint8_t*>(tail_.data()), tail_.size());
    sha_.Update(data, n - kTrailerSize);
    tail_.assign(reinterpret_cast<const char*>(data + n - kTrailerSize), kTrailerSize);
    return;
  }
  tail_.append(reinterpret_cast<const char*>(data), n);
  if (tail_.size() > kTrailerSize) {
    size_t extra = tail_.size() - kTrailerSize;
    sha_.Update(reinterpret_cast<const uint8_t*>(tail_.data()), extra);
    tail_.erase(0, extra);
  }
}

TrailerVerifier::Result TrailerVerifier::Finish() {
  Result r;
  r.has_trailer = bytes_ >= kTrailerSize && HasTrailer(bytes_);
  if (!r.has_trailer) {
    // No trailer: every byte is db content.
    sha_.Update(reinterpret_cast<const uint8_t*>(tail_.data()), tail_.size());
    r.db_size = bytes_;
    r.computed = sha_.Finish();
    return r;
  }
  r.db_size = bytes_ - kTrailerSize;
  r.computed = sha_.Finish();
  std::memcpy(r.trailer.data(), tail_.data(), kTrailerSize);
  r.matches = r.computed == r.trailer;
  return r;
}

std::string GoByteSlice(const Sha256Digest& d) {
  std::string out = "[";
  for (size_t i = 0; i < d.size(); i++) {
    if (i > 0) out += " ";
    out += std::to_string(d[i]);
  }
  return out + "]";
}

}  // namespace etcdsafe::snapshot
