// Reader: read-only access to a bbolt file (an etcd backend db or snapshot), in bounded
// memory whatever the file size.
//
// Open() validates the file like bbolt 1.3.6 does (see spec §3.2): a file shorter than
// one page is "invalid database", shorter than two pages "file size too small"; the
// valid meta with the larger txid is used, falling back to the other one; when both are
// invalid, meta 0's error is reported ("invalid database", "version mismatch",
// "checksum error"). Unlike bbolt, a file shorter than meta.pgid pages is rejected up
// front ("truncated") instead of crashing later. All errors are Error(kDataLoss) (the
// message names the page when there is one), except a missing file (kNotFound) and a
// missing bucket in ForEach (kNotFound).
//
// Every page id, offset and size read from the file is validated against the file and
// meta.pgid, so corrupt input throws, never reads out of bounds. Keys and values handed
// to callbacks point into mapped pages and are only valid during the callback.
// Thread-compatible: one Reader per thread (it owns a small mmap window cache).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/bytes.h"
#include "bolt/format.h"
#include "bolt/page_source.h"

namespace etcdsafe::bolt {

struct Meta {
  uint32_t page_size = kPageSize;
  uint32_t flags = 0;
  Pgid root = 0;          // root bucket's root page
  uint64_t sequence = 0;  // root bucket's sequence
  Pgid freelist = kPgidNoFreelist;
  Pgid pgid = 0;  // high-water mark: pages [0, pgid) are in use
  uint64_t txid = 0;
  int page = 0;  // which meta page (0 or 1) was chosen
};

// Parses and validates one meta page image (>= 80 bytes). Returns the bbolt error text
// ("invalid database", "version mismatch", "checksum error") or nullopt when valid.
std::optional<std::string> ValidateMeta(Bytes page, Meta* out);

class Reader {
 public:
  using KvFn = std::function<void(Bytes key, Bytes value)>;

  static Reader Open(const std::string& path);
  // `data` must outlive the Reader (used by the fuzzer and tests).
  static Reader FromMemory(Bytes data, std::string name = "<memory>");

  Reader(Reader&&) noexcept;
  Reader& operator=(Reader&&) noexcept;
  ~Reader();

  const Meta& meta() const { return meta_; }
  const std::string& name() const;
  uint64_t file_size() const;
  PageSource& source() { return *source_; }

  // Top-level bucket names in bbolt order (bytewise ascending). Throws kDataLoss
  // "cannot get hash of bucket <name>"-style errors are not raised here: a plain key in
  // the root is reported as kDataLoss "root entry <name> is not a bucket".
  void ForEachBucket(const std::function<void(std::string_view name)>& fn);
  bool HasBucket(std::string_view bucket);

  // Every key/value of `bucket` in key order. A nested bucket's entry is passed with an
  // empty value (etcd has none). Missing bucket: kNotFound.
  void ForEach(std::string_view bucket, const KvFn& fn);
  // Like ForEach, but tells nested-bucket entries apart (value = raw bucket header).
  using EntryFn = std::function<void(Bytes key, Bytes value, bool is_bucket)>;
  void ForEachEntry(std::string_view bucket, const EntryFn& fn);

  // ForEachEntry on up to `threads` threads, for whole-bucket scans that need no order:
  // a page-based bucket in a file of at least `min_pages` pages is cut into subtrees
  // (bolt/tree.h Split) that workers walk in turn, each with its own page source and
  // the same strict checks; fn(worker, key, value, is_bucket) runs with worker in
  // [0, threads) (0 = the calling thread), never twice at once for one worker. Entries of
  // one subtree come in key order; across subtrees there is no order. Otherwise (one
  // thread, a small file, an inline bucket, a tree that does not split) this is
  // ForEachEntry with worker 0. Errors: when a worker fails (a page check or an
  // exception from fn), the others stop and the bucket is walked again by ForEachEntry
  // on the calling thread (worker 0) from the start, so what is thrown is exactly
  // ForEachEntry's error; fn may see entries a second time before that throw. Should the
  // second walk pass (a transient failure), the first error is rethrown. Returning
  // normally, fn saw every entry exactly once.
  using WorkerEntryFn = std::function<void(size_t worker, Bytes key, Bytes value, bool is_bucket)>;
  void ForEachEntryParallel(std::string_view bucket, size_t threads, const WorkerEntryFn& fn,
                            uint64_t min_pages = 16384);

  // Absolute file offset of the value bytes of bucket/key (for an in-place patch of a
  // same-sized value), or nullopt if the bucket or key does not exist.
  std::optional<uint64_t> ValueOffset(std::string_view bucket, std::string_view key);
  std::optional<std::string> Get(std::string_view bucket, std::string_view key);
  // Largest key of the bucket; nullopt if the bucket is missing or empty.
  std::optional<std::string> LastKey(std::string_view bucket);

 private:
  Reader() = default;
  void Init();

  std::unique_ptr<PageSource> source_;
  Meta meta_;
};

}  // namespace etcdsafe::bolt
