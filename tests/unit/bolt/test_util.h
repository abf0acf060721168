// Helpers shared by the bolt tests: random etcd-shaped databases, etcdctl status.
#pragma once

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "base/checksum.h"
#include "bolt/builder.h"
#include "bolt/inspect.h"

namespace etcdsafe::bolt::testing {

// bucket -> (key -> value), both in byte order (std::string compares as unsigned char).
using Content = std::map<std::string, std::map<std::string, std::string>>;

inline std::string RevKey(uint64_t main, uint64_t sub) {
  std::string k;
  AppendBE64(&k, main);
  k.push_back('_');
  AppendBE64(&k, sub);
  return k;
}

inline std::string RandomBytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

inline void WriteContent(const Content& c, const std::string& path, BuilderOptions opts = {}) {
  Builder b(path, opts);
  for (const auto& [bucket, kvs] : c) {
    b.BeginBucket(bucket);
    for (const auto& [k, v] : kvs) b.Put(k, v);
    b.EndBucket();
  }
  b.Finish();
}

inline Content ReadContent(const std::string& path) {
  Content c;
  Reader r = Reader::Open(path);
  std::vector<std::string> names;
  r.ForEachBucket([&](std::string_view n) { names.emplace_back(n); });
  for (const auto& n : names) {
    auto& m = c[n];
    r.ForEach(n, [&](Bytes k, Bytes v) { m.emplace(AsString(k), AsString(v)); });
  }
  return c;
}

// The status numbers computed straight from the content (spec §2.1), independent of
// the reader.
inline Status ExpectedStatus(const Content& c) {
  Status s;
  for (const auto& [bucket, kvs] : c) {
    s.hash = Crc32cExtend(s.hash, AsBytes(bucket));
    for (const auto& [k, v] : kvs) {
      s.hash = Crc32cExtend(s.hash, AsBytes(k));
      s.hash = Crc32cExtend(s.hash, AsBytes(v));
      s.total_key++;
      if (bucket == "key") s.revision = static_cast<int64_t>(LoadBE64(AsBytes(k).data()));
    }
  }
  return s;
}

}  // namespace etcdsafe::bolt::testing
