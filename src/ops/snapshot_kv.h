// SnapshotKv: etcd's MVCC key space read straight from a bbolt snapshot (or backend db)
// file, without any etcd running: what `etcdctl get` would answer from an etcd restored
// from that file.
//
// Format (etcd 3.4 mvcc): bucket "key" maps revision keys to mvccpb.KeyValue protobufs.
// A revision key is 8 bytes big-endian main revision, one separator byte ('_'), 8 bytes
// big-endian sub revision, and an optional 18th byte 't' marking a tombstone (a delete of
// the value's key). Bucket "meta" may hold "finishedCompactRev" / "scheduledCompactRev"
// (revision keys, main revision only is meaningful).
//
// Semantics, as etcd 3.4's store restore + rangeKeys:
//  * current revision = max(main revision of the last "key" entry, finished compaction);
//    1 when the bucket is empty and nothing was compacted.
//  * compacted revision = max(finished, scheduled) compaction: a restored etcd resumes a
//    scheduled compaction before it answers.
//  * Range at revision R (R <= 0: current): R > current is kInvalidArgument
//    "etcdserver: mvcc: required revision is a future revision"; R < compacted is
//    kInvalidArgument "etcdserver: mvcc: required revision has been compacted". Each key
//    in [key, range_end) (etcd's range conventions: empty end = the key alone, "\0" = every
//    key >= key) whose latest entry at main revision <= R is not a tombstone, in bytewise
//    key order; count = how many, kvs = the first `limit` (0 = all) as stored, more =
//    count > limit. keys_only drops values.
//
// Memory: one pass over "key" keeps, per live key in the range, the key bytes and its
// revision (no values, no history); the values of the returned kvs are then read by
// point lookups and streamed to a sink one at a time. So memory grows with the number and size of the distinct keys that
// match (etcd's own in-memory index holds the same), never with values or history; the
// file is read through bolt::Reader's bounded page windows. The walk stops at the
// first entry above R.
//
// Corrupt input: anything that is not a valid bbolt file, a revision key of the wrong
// size, a value that is not a KeyValue protobuf, or a bucket inside "key" is
// Error(kDataLoss) naming the file and the entry; never an out-of-bounds read.
// Thread-compatible.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "bolt/reader.h"
#include "client/etcd_client.h"

namespace etcdsafe::ops {

struct RevisionKey {
  int64_t main = 0;
  int64_t sub = 0;
  bool tombstone = false;
};

// Parses a revision key (17 bytes, or 18 with a trailing 't'); nullopt when malformed.
std::optional<RevisionKey> ParseRevisionKey(Bytes key);
// The 17-byte key of (main, sub), as etcd writes it.
std::string RevisionKeyBytes(int64_t main, int64_t sub);

using KeyValue = client::EtcdClient::KV;

// Decodes an mvccpb.KeyValue (key=1, create_revision=2, mod_revision=3, version=4,
// value=5, lease=6; unknown fields skipped, as Go's proto.Unmarshal does). Returns the
// reason when the bytes are not a valid protobuf message.
std::optional<std::string> DecodeKeyValue(Bytes pb, KeyValue* out);
// Just field 1 (the key), without copying; the last occurrence wins like in proto3.
std::optional<std::string> DecodeKeyField(Bytes pb, Bytes* key);

// DecodeKeyValue without copies: key and value point into `pb`. Same validity rules.
struct KeyValueView {
  Bytes key, value;
  int64_t create_revision = 0, mod_revision = 0, version = 0, lease = 0;
};
std::optional<std::string> DecodeKeyValueView(Bytes pb, KeyValueView* out);

struct KvRange {
  std::string key;
  std::string range_end;  // "" = key alone; "\0" = every key >= key
  int64_t limit = 0;      // <= 0: all
  int64_t revision = 0;   // <= 0: current
  bool keys_only = false;
};

struct KvRangeResult {
  std::vector<KeyValue> kvs;
  int64_t count = 0;
  bool more = false;
  int64_t revision = 0;  // the store's current revision (etcd's header revision)
};

class SnapshotKv {
 public:
  // Opens a file (missing: kNotFound; not bbolt: kDataLoss) and reads the revisions.
  static SnapshotKv Open(const std::string& path);
  // `data` must outlive the SnapshotKv (fuzzer, tests).
  static SnapshotKv FromMemory(Bytes data);

  int64_t current_revision() const { return current_; }
  int64_t compacted_revision() const { return compacted_; }

  // Streams the kvs to `sink` in key order instead of collecting them (result.kvs stays
  // empty): memory does not grow with the answer. Every entry the answer depends on is
  // decoded and checked before the first kv is passed, so corrupt data fails before any
  // output.
  using KvSink = std::function<void(const KeyValue&)>;
  KvRangeResult Range(const KvRange& request, const KvSink& sink);
  // Collects the kvs into result.kvs.
  KvRangeResult Range(const KvRange& request);

  // The entry of bucket "key" at revision (main, sub) (not a tombstone), by one point
  // lookup: what Range reads for each kv it returns, and diff for each key it reports.
  // Missing: kDataLoss "<file>: bucket key: revision M_S: vanished on the second read";
  // not a KeyValue: kDataLoss naming it.
  KeyValue EntryAt(int64_t main, int64_t sub);

  // For whole-bucket scans (ops/live_keys.h): the file, and whether it has bucket "key".
  bolt::Reader& reader() { return reader_; }
  bool has_key_bucket() const { return has_key_bucket_; }

 private:
  explicit SnapshotKv(bolt::Reader reader);
  std::optional<int64_t> MetaRevision(const char* name);

  bolt::Reader reader_;
  bool has_key_bucket_ = false;
  int64_t current_ = 1;
  int64_t compacted_ = 0;
};

}  // namespace etcdsafe::ops
