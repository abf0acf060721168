// Builder: streaming bulk writer of a compact, valid bbolt file; Rewrite: copy a bbolt
// file through the Builder while applying a few mutations.
//
// Contract: buckets are given in strictly increasing bytewise order, keys strictly
// increasing within each bucket; names and keys must be non-empty and <= 32768 bytes,
// values <= 2^31-2 bytes. Violations throw Error(kInvalidArgument) and leave the
// Builder unusable. Memory is bounded: one in-progress page per B+tree level (plus the
// list of top-level bucket headers); pages are written sequentially from page 2 through
// a 1 MiB buffer. The output follows spec §3.4/§3.8: branch key == first key of its
// child, no empty non-root pages, <= 65534 elements per page, overflow pages for big
// elements, small buckets inline (like bbolt: 16 + sum(16+k+v) <= 1024), freelist =
// none, meta page 0 with txid T and page 1 with T-1, both with real FNV checksums, and
// file length exactly pgid * 4096. Finish() fsyncs the file; publishing it under a
// final name (rename) is the caller's job. I/O errors throw (kIo...). Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"
#include "base/file.h"
#include "bolt/reader.h"

namespace etcdsafe::bolt {

struct BuilderOptions {
  uint64_t txid = 2;  // >= 2: page 0 gets txid, page 1 gets txid - 1
  bool inline_small_buckets = true;
};

class Builder {
 public:
  // Creates (or truncates) `path` with mode 0600.
  explicit Builder(const std::string& path, BuilderOptions options = {});
  // Writes into an already open, empty, writable file from offset 0.
  explicit Builder(File file, BuilderOptions options = {});
  ~Builder();
  Builder(const Builder&) = delete;
  Builder& operator=(const Builder&) = delete;

  void BeginBucket(std::string_view name);
  void Put(Bytes key, Bytes value);
  void Put(std::string_view key, std::string_view value) { Put(AsBytes(key), AsBytes(value)); }
  void EndBucket();
  // Writes the root bucket and both metas, flushes and fsyncs. Returns meta page 0.
  Meta Finish();

  // Releases the written file (after Finish), e.g. to keep using the descriptor.
  File TakeFile();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct Mutation {
  enum class Kind { kPut, kDelete, kCreateBucket };
  Kind kind = Kind::kPut;
  std::string bucket;
  std::string key;  // unused for kCreateBucket
  std::string value;

  static Mutation Put(std::string bucket, std::string key, std::string value) {
    return {Kind::kPut, std::move(bucket), std::move(key), std::move(value)};
  }
  static Mutation Delete(std::string bucket, std::string key) {
    return {Kind::kDelete, std::move(bucket), std::move(key), {}};
  }
  static Mutation CreateBucket(std::string bucket) {
    return {Kind::kCreateBucket, std::move(bucket), {}, {}};
  }
};

// Copies every bucket and key/value of `src` into a new bbolt file `dst` (created or
// truncated) while applying `mutations`: kPut inserts or replaces a key (creating the
// bucket if missing), kDelete removes a key (no-op if absent), kCreateBucket makes sure
// a bucket exists. Mutations may come in any order; two mutations of the same
// bucket/key are kInvalidArgument. Nested buckets in src are kUnsupported (etcd has
// none). Corrupt src: kDataLoss. Returns the written meta.
Meta Rewrite(const std::string& src, const std::string& dst, std::vector<Mutation> mutations,
             BuilderOptions options = {});

}  // namespace etcdsafe::bolt
