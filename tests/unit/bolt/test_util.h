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
#include "testutil/temp_dir.h"

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

// A mutable in-memory image of a bbolt file, for corruption tests.
struct Image {
  std::string b;
  uint8_t* at(uint64_t off) { return reinterpret_cast<uint8_t*>(b.data()) + off; }
  uint8_t* page(Pgid id) { return at(id * kPageSize); }
  uint64_t meta(int m, size_t off) { return LoadLE64(page(m) + off); }
  // Sets a meta field in both metas, with valid checksums.
  void SetMeta(size_t off, uint64_t v) {
    for (int m = 0; m < 2; m++) {
      StoreLE64(page(m) + off, v);
      StoreLE64(page(m) + kMetaChecksumOffset,
                Fnv1a64(Bytes{page(m) + kMetaMagicOffset, kMetaChecksumOffset - kMetaMagicOffset}));
    }
  }
  // Bucket root page of the first entry of the root bucket's leaf.
  Pgid FirstBucketRoot() {
    uint8_t* root = page(meta(0, kMetaRootOffset));
    uint8_t* e = root + kPageHeaderSize;
    return LoadLE64(e + LoadLE32(e + 4) + LoadLE32(e + 8));
  }
  void Write(const std::string& path) const { etcdsafe::testutil::WriteFile(path, b); }
  // Appends a stored freelist page (with overflow as needed) at pgid listing `ids`, plus
  // `extra` unused pages, and points both metas at it.
  void AddFreelist(const std::vector<Pgid>& ids, bool big_form, size_t extra) {
    Pgid pgid = meta(0, kMetaPgidOffset);
    size_t need = kPageHeaderSize + 8 + 8 * ids.size();
    size_t npages = (need + kPageSize - 1) / kPageSize;
    std::string fl(npages * kPageSize, '\0');
    uint8_t* p = reinterpret_cast<uint8_t*>(fl.data());
    StoreLE64(p, pgid);
    StoreLE16(p + kPageFlagsOffset, kFreelistPageFlag);
    StoreLE32(p + kPageOverflowOffset, static_cast<uint32_t>(npages - 1));
    size_t off = kPageHeaderSize;
    if (big_form) {
      StoreLE16(p + kPageCountOffset, 0xFFFF);
      StoreLE64(p + off, ids.size());
      off += 8;
    } else {
      StoreLE16(p + kPageCountOffset, static_cast<uint16_t>(ids.size()));
    }
    for (Pgid id : ids) {
      StoreLE64(p + off, id);
      off += 8;
    }
    b += fl;
    b += std::string(extra * kPageSize, '\0');
    SetMeta(kMetaFreelistOffset, pgid);
    SetMeta(kMetaPgidOffset, pgid + npages + extra);
  }
};

}  // namespace etcdsafe::bolt::testing
