// Segments: the unit of continuous backup. A segment holds the watch events of a run of
// consecutive etcd revisions (plus lease, HashKV and progress records) and is stored as ONE
// repository object, written through the same compression and encryption as snapshot
// backups and committed by the store's atomic put. Format: docs/formats/segment.md.
//
// Plain bytes (before compression and encryption):
//   "ETCDSAFE-SEGMENT1\n"  magic (18 bytes)
//   u32 little-endian header length (<= kMaxSegmentHeader), then the header, one JSON object
//   records, each a tag byte followed by unsigned LEB128 varints and length-prefixed bytes:
//     'R' revision: rev, time_ms, n, then n events: kind (0 put, 1 delete), len, bytes
//         put: the mvccpb.KeyValue exactly as etcd stores it in bucket "key" (key, create,
//         mod = rev, version, value, lease); delete: the key. The events' order is their
//         sub-revision order inside the revision (a txn).
//     'L' lease known: id, granted ttl (s), rev (etcd's revision when it was seen), time_ms
//     'X' lease gone:  id, rev, time_ms
//     'H' HashKV:      rev, hash, compact_revision + 1, time_ms  (what etcd answered; -1: never compacted)
//     'P' progress:    rev, time_ms  (etcd proved: revision was still `rev` at time_ms)
// Records are in the order they were observed; revisions strictly increase by exactly one
// from first_revision to last_revision ('R' records), every other record's rev is within
// [first_revision - 1, last_revision]. time_ms never decreases.
//
// The header (SegmentHeader) names its chain (the id of the full backup it continues),
// its sequence number (1, 2, ... within the chain), its revision and time range, the
// counts, the sha256 of the records bytes, and prev_sha256: the sha256 of the whole PLAIN
// bytes (magic, header, records) of segment seq-1 (for seq 1: the base backup's
// stored_sha256). A chain read in seq order therefore detects a missing, reordered,
// duplicated, replaced or altered segment. (The plain bytes, not the stored ones: a
// segment is sealed, and the next one can start, before the previous one is compressed,
// encrypted and stored.)
//
// A MERGED segment (background compaction, follow/compact.h) replaces segments
// seq..seq_last of its chain: its records are theirs, concatenated in order; its
// prev_sha256 is segment seq's, and its header's link_sha256 is the plain sha256 of the
// original segment seq_last, which is what segment seq_last + 1 names as prev_sha256.
// "seq_last" and "link_sha256" are absent from a plain segment's header (seq_last = seq).
//
// DecodeSegment treats its input as hostile: every length is bounded by what is left, the
// header must be a JSON object of known keys with valid values, the records must match the
// header (counts, revisions, sha256), and anything else is kDataLoss "<what>: ...".
// Encoding is deterministic. Thread-compatible values.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/bytes.h"

namespace etcdsafe::follow {

inline constexpr char kSegmentMagic[] = "ETCDSAFE-SEGMENT1\n";
inline constexpr size_t kMaxSegmentHeader = 64 << 10;
// The largest decoded segment a reader accepts (a writer closes a segment at its size
// limit after the revision in progress; one revision larger than this cannot be recorded).
inline constexpr uint64_t kMaxSegmentBytes = uint64_t{512} << 20;
inline constexpr int kSegmentFormat = 1;

struct Event {
  bool is_delete = false;
  // put: mvccpb.KeyValue bytes (EncodeKeyValue); delete: the key.
  std::string data;
};

struct Revision {
  int64_t revision = 0;
  int64_t time_ms = 0;
  std::vector<Event> events;  // sub-revision order; never empty
};

struct LeaseRecord {
  bool gone = false;  // 'X' (false: 'L')
  int64_t id = 0;
  int64_t ttl = 0;    // 'L': granted TTL in seconds
  int64_t revision = 0;
  int64_t time_ms = 0;
};

struct HashRecord {
  int64_t revision = 0;
  uint32_t hash = 0;
  int64_t compact_revision = 0;  // -1: etcd had never compacted
  int64_t time_ms = 0;
};

struct ProgressRecord {
  int64_t revision = 0;
  int64_t time_ms = 0;
};

struct SegmentHeader {
  int format = kSegmentFormat;
  std::string chain;        // base backup id, e.g. "etcd-snapshot-20261201-003000-r1234"
  uint64_t seq = 0;         // 1, 2, ...
  uint64_t seq_last = 0;    // seq, or the last number a merged segment replaces (> seq)
  int64_t first_revision = 0;  // = previous last_revision + 1 (base revision + 1 for seq 1)
  int64_t last_revision = 0;   // first_revision - 1 when the segment has no revisions
  int64_t first_time_ms = 0, last_time_ms = 0;  // of its records (both 0 when none)
  uint64_t revisions = 0, events = 0, leases = 0, hashes = 0, progress = 0;
  uint64_t records_size = 0;
  std::string records_sha256;  // hex
  std::string prev_sha256;     // hex, plain bytes of seq - 1 (seq 1: base's stored_sha256)
  std::string link_sha256;     // merged only: hex, plain bytes of the original seq_last
  // Set on the last segment of a chain that the recorder ended on purpose:
  // "gap: ...", "rebase", "stopped" ...; empty while the chain may continue.
  std::string end;
  bool merged() const { return seq_last > seq; }
};

// One decoded record, in stored order.
struct Record {
  char tag = 0;  // 'R', 'L', 'X', 'H', 'P'
  Revision rev;
  LeaseRecord lease;
  HashRecord hash;
  ProgressRecord progress;
};

// mvccpb.KeyValue encoded as etcd (gogoproto) does: fields 1..6 in order, zero values and
// empty bytes omitted.
struct KeyValue {
  std::string key, value;
  int64_t create_revision = 0, mod_revision = 0, version = 0, lease = 0;
};
std::string EncodeKeyValue(const KeyValue& kv);
// Strict proto3 decode of a KeyValue (unknown fields skipped); kDataLoss on malformed input.
KeyValue DecodeKeyValue(Bytes b, const std::string& what);

// Builds one segment's plain bytes. Add records in observed order (the builder checks the
// ordering rules above and throws kInternal on a violation: a recorder bug, never data).
class SegmentBuilder {
 public:
  // prev_last_revision: last_revision of the previous segment (or the base revision).
  SegmentBuilder(std::string chain, uint64_t seq, int64_t prev_last_revision, std::string prev_sha256);
  void AddRevision(const Revision& r);
  void AddLease(const LeaseRecord& l);
  void AddHash(const HashRecord& h);
  void AddProgress(const ProgressRecord& p);
  // Any decoded record (the four above by its tag): how a merge copies segments' records.
  void AddRecord(const Record& r);
  // Bytes of records so far (the size limit's measure).
  uint64_t size() const { return records_.size(); }
  bool empty() const { return header_.revisions + header_.leases + header_.hashes + header_.progress == 0; }
  const SegmentHeader& header() const { return header_; }
  // The whole plain segment (magic, header, records). `end` goes into the header.
  std::string Finish(const std::string& end = "");
  // A merged segment instead (the builder was made with the seq and prev_sha256 of the
  // first segment it replaces): it replaces seq..seq_last (> seq), and link_sha256 is the
  // plain sha256 of the original segment seq_last; `end` is that segment's.
  std::string FinishMerged(uint64_t seq_last, const std::string& link_sha256, const std::string& end = "");

 private:
  void Touch(int64_t time_ms);
  SegmentHeader header_;
  std::string records_;
};

std::string HeaderToJson(const SegmentHeader& h);

// Parses and checks a whole plain segment; calls on_record for each record in order when
// given (after the header was validated, before the sha256 of the records is checked: a
// consumer must not commit anything before DecodeSegment returns).
SegmentHeader DecodeSegment(Bytes plain, const std::string& what,
                            const std::function<void(const Record&)>& on_record = {});

}  // namespace etcdsafe::follow
