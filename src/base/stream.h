// Byte stream interfaces shared by the backup pipeline and the storage backends.
//
// A backup is one pass over the snapshot bytes through a chain of push-style Sinks
// (hash → compress → encrypt → store); a restore pulls through a chain of Sources
// (store → decrypt → decompress → verify). Every stage holds a bounded buffer, so memory
// does not grow with the snapshot size. Errors are thrown as etcdsafe::Error.
// Not thread-safe: one thread drives a chain.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/bytes.h"

namespace etcdsafe {

class Sink {
 public:
  virtual ~Sink() = default;
  virtual void Write(const uint8_t* data, size_t n) = 0;
  void Write(Bytes b) { Write(b.data(), b.size()); }
  // Flushes everything and finishes downstream stages; for a store object this is the
  // commit point (temp name → final name, multipart complete). A Sink destroyed without
  // Close() must leave nothing visible (abort).
  virtual void Close() = 0;
};

class Source {
 public:
  virtual ~Source() = default;
  // Reads up to n bytes; returns 0 only at the end of the stream.
  virtual size_t Read(uint8_t* buf, size_t n) = 0;
};

// Reads until buf is full or the stream ends; returns bytes read.
inline size_t ReadFull(Source& src, uint8_t* buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    size_t r = src.Read(buf + done, n - done);
    if (r == 0) break;
    done += r;
  }
  return done;
}

// Collects everything written, for tests and small objects (manifests).
class StringSink : public Sink {
 public:
  void Write(const uint8_t* data, size_t n) override {
    out_.append(reinterpret_cast<const char*>(data), n);
  }
  void Close() override { closed_ = true; }
  const std::string& str() const { return out_; }
  bool closed() const { return closed_; }

 private:
  std::string out_;
  bool closed_ = false;
};

class StringSource : public Source {
 public:
  explicit StringSource(std::string data) : data_(std::move(data)) {}
  size_t Read(uint8_t* buf, size_t n) override {
    size_t k = std::min(n, data_.size() - pos_);
    std::copy_n(data_.data() + pos_, k, reinterpret_cast<char*>(buf));
    pos_ += k;
    return k;
  }

 private:
  std::string data_;
  size_t pos_ = 0;
};

}  // namespace etcdsafe
