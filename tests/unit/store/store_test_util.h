// Shared helpers for the store tests: a process-wide s3rver and deterministic data.
#pragma once

#include <memory>
#include <random>
#include <string>

#include "store/store.h"
#include "testutil/s3_server.h"

namespace etcdsafe::store::testing {

// One s3rver for the whole test binary (starting one takes ~1 s).
inline testutil::S3Server& SharedS3() {
  // Destroyed at exit: the server is stopped and its temp dir removed (a leaked one left a
  // directory in $TMPDIR per test process).
  static testutil::S3Server server;
  return server;
}

inline StoreOptions S3Options(const std::string& endpoint) {
  StoreOptions o;
  o.s3_endpoint = endpoint;
  o.path_style = true;
  o.access_key = "S3RVER";
  o.secret_key = "S3RVER";
  o.part_size = 5 << 20;  // S3's minimum, so multipart kicks in early
  o.parallel_parts = 4;
  o.read_chunk = 3 << 20;  // several ranged GETs per object
  o.retry_base_ms = 20;
  return o;
}

// A fresh bucket per call: tests never see each other's objects.
inline std::string NewBucket(testutil::S3Server& s3) {
  static int n = 0;
  std::string b = "bkt-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
  s3.CreateBucket(b);
  return b;
}

inline std::string RandomData(size_t n, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  for (; i < n; ++i) s[i] = static_cast<char>(rng());
  return s;
}

// Reads a whole Source with odd-sized reads.
inline std::string ReadAllOdd(Source& src) {
  std::string out;
  std::string buf(100003, '\0');
  for (;;) {
    size_t n = src.Read(reinterpret_cast<uint8_t*>(buf.data()), buf.size());
    if (n == 0) break;
    out.append(buf.data(), n);
  }
  return out;
}

}  // namespace etcdsafe::store::testing
