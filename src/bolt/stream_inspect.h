// StreamInspector: Inspect() (etcdctl `snapshot status` numbers + bbolt Tx.Check
// problems) computed from a bbolt file that arrives once, in file order, in chunks of any
// size, without a copy on disk: for the backup pipeline (hash -> compress -> encrypt ->
// upload) that consumes an etcd snapshot stream.
//
// Contract: Write() the bytes in order (page 0, 1, ..., then anything: bytes at offsets
// >= meta.pgid * 4096, e.g. etcd's 32-byte sha256 trailer, are ignored), then call
// Finish() once. Finish() returns exactly what Inspect() returns for the same bytes:
// same Status, same problems in the same order, same Meta, and throws the same
// Error(kDataLoss) texts for unreadable input ("invalid database", "file size too small",
// "checksum error", "page N: leaf element i is out of page bounds", "cannot get hash of
// bucket ...", ...), the file name in messages being `name`. Differences:
//  * a stream shorter than meta.pgid pages is Error(kDataLoss) "<name>: snapshot stream
//    truncated: got N bytes, meta says M" (Reader says "truncated: file is ...");
//  * when both metas are invalid (or pgid < 2) Write() already throws, as soon as page 1
//    is complete; after any throw the object is unusable (every call rethrows);
//  * a single logical page (a page plus its overflow pages) larger than kMaxWindowBytes
//    cannot be kept: if the walk needs it, Finish() throws Error(kUnsupported). bbolt
//    pages of etcd stay far below (etcd's request limit is 1.5 MiB by default).
//
// How: every page is summarised when its last byte arrives, because a stream cannot go
// back: the 16-byte header of every page; for a leaf without bucket elements the CRC-32C
// of its packed key/value bytes (k1 v1 k2 v2 ...), their length, its first and last key
// and any in-page key-order faults; for a leaf holding bucket elements (the root
// bucket's leaves) and for branch pages a compact image (element table + keys, + values
// for leaves). Every page is summarised as if it were a page head, even inside another
// page's overflow range, since a stale header of a freed page may claim the overflow of
// live pages. Finish() walks from meta.root through these summaries exactly as Inspect
// walks the file, joining leaf CRCs in tree order with Crc32cCombine.
//
// Memory bound, independent of the db size: the summaries (24 bytes per page plus, per
// leaf, ~30 bytes + its first and last key; per branch page 16 bytes + a key per child;
// the full image of leaves that hold buckets) go to two SpillStores that keep a few MiB
// in memory (Limits) and move the rest to an unlinked temporary file in $TMPDIR (~120
// bytes per page for etcd-shaped data: ~33 MB of file for a 1.1 GB snapshot, ~250 MB for
// 8 GiB), read back mostly in order by Finish(). Plus a window holding the logical page
// being assembled (<= kMaxWindowBytes, reserved on first use), the stored freelist ids
// (8 bytes each) and 2 bitmaps of pgid bits in Finish().
// Thread-compatible: one instance per stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "base/bytes.h"
#include "bolt/inspect.h"

namespace etcdsafe::bolt {

// How much of a StreamInspector's summaries stays in memory (the rest is spilled).
struct StreamInspectorLimits {
  size_t record_chunk_bytes = size_t{1} << 20;
  size_t resident_record_chunks = 8;  // 8 MiB
  size_t pages_per_chunk = 32768;     // x 24 bytes = 768 KiB
  size_t resident_page_chunks = 4;    // 3 MiB
};

class StreamInspector {
 public:
  // A logical page (with overflow) larger than this is not kept; see above.
  // 16 MiB: ten times etcd's default request limit, and reserved once when first needed
  // so the window never doubles (a growing vector peaked at ~200 MB on a 1 GB snapshot
  // whose freed pages still carry stale overflow counts).
  static constexpr size_t kMaxWindowBytes = size_t{16} << 20;

  using Limits = StreamInspectorLimits;

  explicit StreamInspector(std::string name = "<stream>", Limits limits = {});
  ~StreamInspector();
  StreamInspector(const StreamInspector&) = delete;
  StreamInspector& operator=(const StreamInspector&) = delete;

  void Write(const uint8_t* data, size_t n);
  void Write(Bytes b) { Write(b.data(), b.size()); }
  // Ends the stream and returns Inspect()'s result. Call once.
  InspectResult Finish();

  // Bytes written so far (including ignored tail bytes).
  uint64_t bytes() const;
  // Bytes currently held by the summaries and buffers (capacity), for tests and metrics.
  size_t memory_bytes() const;
  // Why summaries could not be spilled and stay in memory ("" when spilling works).
  std::string spill_error() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace etcdsafe::bolt
