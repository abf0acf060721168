#include "pipeline/hash.h"

#include "base/error.h"

namespace etcdsafe::pipeline {

void HashSink::Write(const uint8_t* data, size_t n) {
  if (closed_) throw Error(ErrorCode::kInternal, "HashSink: write after close");
  sha_.Update(data, n);
  bytes_ += n;
  next_.Write(data, n);
}

void HashSink::Close() {
  if (closed_) return;
  closed_ = true;
  digest_ = sha_.Finish();
  next_.Close();
}

Sha256Digest HashSink::digest() const {
  if (!closed_) throw Error(ErrorCode::kInternal, "HashSink: digest before close");
  return digest_;
}

size_t HashSource::Read(uint8_t* buf, size_t n) {
  if (done_) return 0;
  size_t r = in_.Read(buf, n);
  if (r == 0) {
    if (n == 0) return 0;  // a zero-length request says nothing about the end
    done_ = true;
    digest_ = sha_.Finish();
    return 0;
  }
  sha_.Update(buf, r);
  bytes_ += r;
  return r;
}

Sha256Digest HashSource::digest() const {
  if (!done_) throw Error(ErrorCode::kInternal, "HashSource: digest before end of stream");
  return digest_;
}

}  // namespace etcdsafe::pipeline
