// Tees that hash (SHA-256) and count every byte passing through a Sink or Source chain.
//
// Put a HashSink first in a backup chain to record the snapshot digest and size in the
// manifest; put a HashSource last in a restore chain to verify them. Both forward bytes
// unchanged. Not thread-safe (like every stage).
#pragma once

#include <cstdint>

#include "base/checksum.h"
#include "base/stream.h"

namespace etcdsafe::pipeline {

class HashSink : public Sink {
 public:
  explicit HashSink(Sink& next) : next_(next) {}
  void Write(const uint8_t* data, size_t n) override;
  using Sink::Write;
  // Finishes the digest, then closes `next`.
  void Close() override;
  // Valid only after Close(); throws kInternal before.
  Sha256Digest digest() const;
  uint64_t bytes() const { return bytes_; }

 private:
  Sink& next_;
  Sha256 sha_;
  Sha256Digest digest_{};
  uint64_t bytes_ = 0;
  bool closed_ = false;
};

class HashSource : public Source {
 public:
  explicit HashSource(Source& in) : in_(in) {}
  size_t Read(uint8_t* buf, size_t n) override;
  // Valid once Read() has returned 0 (end of stream); throws kInternal before.
  Sha256Digest digest() const;
  uint64_t bytes() const { return bytes_; }

 private:
  Source& in_;
  Sha256 sha_;
  Sha256Digest digest_{};
  uint64_t bytes_ = 0;
  bool done_ = false;
};

}  // namespace etcdsafe::pipeline
