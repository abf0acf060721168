// LiveKeys: the live keys of an etcd snapshot at its current revision, in key order, from
// one sequential pass over the file plus an external sort. For the inspections that look at
// every key (`inspect inventory`, `inspect diff`), where SnapshotKv::Range's per-key index
// and point lookups (random reads, one per key) are what costs.
//
// Semantics: the keys SnapshotKv::Range answers at the current revision for [begin, end)
// (etcd's range conventions: empty end = the key alone, "\0" = every key >= begin), each with
// the fields of its latest revision; a key whose latest entry is a tombstone is not live.
//
// How: Scan() walks bucket "key" once in key order (bbolt keeps it sorted by revision, so
// this reads the file mostly front to back; with several workers, each walks its subtrees
// so, see Threads); for every entry in the range it keeps a compact
// record: key, revision, tombstone flag, create/mod revision, version, lease, value size and
// a summary of the value made by the caller's Summarizer (called on every put in the range,
// including those a later revision supersedes, with the value pointing into the page: the
// value is never copied). Records collect in a buffer of `memory_bytes`; a full buffer is
// sorted by (key, revision descending), cut to the newest record per key (tombstones kept,
// they hide older runs) and written as a sorted run to an unlinked temporary file. Next()
// merges the runs and the last buffer (a heap over the runs), hands out per key the record
// of the highest revision, and skips tombstones. When everything fits in the buffer (no
// history to speak of, or a small db) nothing is written to disk.
//
// Threads: with options.threads > 1 a large file's bucket "key" is walked by that many
// workers at once (bolt::Reader::ForEachEntryParallel: subtrees of the bucket's tree),
// each summarizing the entries of its subtrees in place into a buffer of its own
// (memory_bytes / threads each); nothing is copied between threads. The records do not
// depend on which worker made them, so the output is the same for any thread count.
// Memory: the buffers (memory_bytes in all, default 16 MiB, plus the sort's 4 bytes per record),
// the merge's read buffers (together at most memory_bytes, 16 KiB to 1 MiB per run), the
// Reader's page windows (~8 MiB) and whatever the Summarizer keeps; never the values. A
// summary plus key over the whole buffer is stored once, so very large summaries make more
// runs, not more memory. Temp file: $TMPDIR (or /tmp, or options.temp_dir), O_TMPFILE; when
// it cannot be created or written, runs stay in memory (spill_error() says why): more memory
// beats a failed inspection.
//
// Corrupt input: as SnapshotKv: a bbolt error, a revision key of the wrong size, a bucket
// inside "key" or a value that is not a KeyValue protobuf is Error(kDataLoss) naming the file
// and the entry, thrown by Scan(), so nothing is handed out from a corrupt file. A temp file
// that cannot be read back is Error(kIo).
// Thread-compatible: one instance per thread; two instances over two SnapshotKv may Scan()
// on two threads at once (diff does).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "ops/snapshot_kv.h"

namespace etcdsafe::ops {

struct LiveKeysOptions {
  std::string begin = std::string(1, '\0');  // default: every key
  std::string end = std::string(1, '\0');
  size_t memory_bytes = size_t{16} << 20;
  std::string temp_dir;  // "": $TMPDIR, else /tmp
  // Workers that walk and summarize (1..8), see above.
  size_t threads = 1;
  // Files with fewer pages are walked by one worker (tests set 0 to force the split).
  uint64_t min_parallel_pages = 16384;
};

// One live key. Views stay valid until the next call to Next().
struct LiveKey {
  std::string_view key;
  int64_t create_revision = 0, mod_revision = 0, version = 0, lease = 0;
  int64_t value_size = 0;
  // Where the entry sits: its revision, the key of bucket "key" (ops::RevisionKeyBytes).
  int64_t main_revision = 0, sub_revision = 0;
  std::string_view summary;  // what the Summarizer appended for this revision's value
};

struct LiveKeysStats {
  int64_t entries = 0;     // entries of bucket "key" in the range (puts and tombstones)
  int64_t runs = 0;        // sorted runs written out (0: everything fitted in memory)
  uint64_t spilled_bytes = 0;
};

class LiveKeys {
 public:
  // Appends a summary of `kv` (key, fields, value) to *summary, which arrives empty. With
  // options.threads > 1 it is called from that many threads at once (and must be
  // thread-safe); the value points into the page and is valid only during the call.
  using Summarizer = std::function<void(const KeyValueView& kv, std::string* summary)>;

  // `kv` must outlive this object; a null summarizer keeps no summary.
  LiveKeys(SnapshotKv& kv, LiveKeysOptions options, Summarizer summarizer);
  ~LiveKeys();
  LiveKeys(const LiveKeys&) = delete;
  LiveKeys& operator=(const LiveKeys&) = delete;

  // Reads the file (once). Throws on corrupt input, see above.
  void Scan();
  // After Scan(): the next live key in key order; false at the end.
  bool Next(LiveKey* out);

  int64_t current_revision() const;
  const LiveKeysStats& stats() const;
  const std::string& spill_error() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace etcdsafe::ops
