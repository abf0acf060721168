// Chains of segments in a backup repository: what continuous backup stores and what a
// point-in-time restore reads.
//
// A chain continues one full snapshot backup (its BASE, backup/manifest.h) with segments
// (follow/segment.h) numbered 1, 2, ... whose revisions run on without a gap from the
// base revision + 1. Segment objects are named after their chain and place in it
// (backup/layout.h NameKind::kSegment), so a listing alone shows every chain, its range
// and its holes; their content is read only to restore or verify.
//
// Everything read back is hostile (docs/design.md): segments are read whole but bounded
// (kMaxStoredSegment stored, kMaxSegmentBytes decoded), their names must agree with their
// headers, and ReadChain checks the link of every segment to the one before it
// (prev_sha256 = sha256 of the plain bytes of seq - 1, or the base's stored_sha256 for
// seq 1) before handing any of its records on. Thread-compatible.
//
// Merged segments (follow/compact.h) take the place of the segments they replace: in a
// chain, a merged segment of numbers s1..s2 counts as segments s1..s2, and the link after
// it is its link_sha256. A merge is committed by writing the merged object, then removing
// the originals: in between (or after a merge killed there), an object whose numbers and
// revisions lie inside a merged one's (backup::SegmentCovers) is SUPERSEDED: left out of
// the chain, never a problem, removed by the next compaction or prune.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "backup/manifest.h"
#include "backup/repository.h"
#include "follow/segment.h"
#include "pipeline/compress.h"
#include "pipeline/keys.h"

namespace etcdsafe::follow {

inline constexpr uint64_t kMaxStoredSegment = kMaxSegmentBytes + (kMaxSegmentBytes >> 6) + (1 << 20);

struct SegmentObject {
  std::string name;
  backup::ParsedName parsed;  // kind kSegment
  uint64_t stored_size = 0;
  int64_t mtime_unix = 0;     // the store's modification time (listing)
  bool merged() const { return parsed.seq_last > parsed.seq; }
};

// The last revision a base backup covers: its revision, except that an etcd nothing was
// ever written to reports revision 0 (`snapshot status`) while its store is at revision 1,
// which has no events. Segment 1 of a chain starts at ChainStart(base) + 1.
inline int64_t ChainStart(const backup::Manifest& base) { return base.revision < 1 ? 1 : base.revision; }

struct Chain {
  backup::Manifest base;               // a valid snapshot backup manifest
  std::vector<SegmentObject> segments;  // ascending seq; merged ones in place of what they replace
  // Objects a merged segment of `segments` replaces (left over by a merge being committed
  // or killed while it removed them): not part of the chain, ascending seq.
  std::vector<SegmentObject> superseded;
  // Problems visible from the names alone (a missing seq, a revision that does not follow
  // on, two objects of one seq): a chain with problems is usable only up to the last
  // revision before the first of them (usable_last_revision).
  std::vector<std::string> problems;
  int64_t usable_last_revision = 0;  // ChainStart(base) when no segment is usable
  size_t usable_segments = 0;        // segments before the first problem
  uint64_t merged_segments() const {
    uint64_t n = 0;
    for (const auto& s : segments) n += s.merged() ? 1 : 0;
    return n;
  }
  int64_t last_revision() const {
    return segments.empty() ? ChainStart(base) : segments.back().parsed.last_revision;
  }
};

struct ChainScan {
  std::vector<Chain> chains;                // by base, oldest first; only bases that have segments
  std::vector<SegmentObject> orphans;       // segments whose base has no valid manifest
};

// One listing of the repository (Repository::ScanTop), no object read beyond manifests.
ChainScan ScanChains(backup::Repository& repo);
// The same from a scan already made (no request at all).
ChainScan ScanChains(const backup::Repository::Scan& scan);

struct SegmentWriteOptions {
  pipeline::Compression compression = pipeline::Compression::kZstd;
  int compression_level = 0;
  std::optional<pipeline::KeySpec> key;  // encrypt when set (a raw key: see recorder.h)
};

struct StoredSegment {
  std::string name;
  std::string stored_sha256;  // hex
  uint64_t stored_size = 0;
};

// Compresses and encrypts `plain` (SegmentBuilder::Finish) and stores it under its name
// (atomic put: visible whole or not at all). Errors: the store's.
StoredSegment WriteSegment(backup::Repository& repo, const SegmentHeader& header, const std::string& plain,
                           const SegmentWriteOptions& options);

struct ReadSegmentResult {
  SegmentHeader header;
  std::string stored_sha256;  // of the stored object
  std::string plain_sha256;   // of the decoded segment
  std::string link_sha256;    // what the next segment's prev_sha256 names: plain_sha256, or a
                              // merged segment's header link_sha256
};

// Reads one segment (bounded), checks its stored sha256 and that its header agrees with
// its name (chain, seq, seq_last, revisions), and decodes it, calling on_record for each record.
// Encrypted without a key: kInvalidArgument; wrong key: kUnauthenticated; anything wrong
// with the bytes: kDataLoss naming the object.
ReadSegmentResult ReadSegment(backup::Repository& repo, const SegmentObject& seg,
                              const std::optional<pipeline::KeySpec>& key,
                              const std::function<void(const Record&)>& on_record = {});

struct ChainReadResult {
  uint64_t segments = 0;
  int64_t last_revision = 0;     // the last revision read (base.revision if none)
  int64_t last_time_ms = 0;      // time of the last record read
  std::string last_link_sha256;  // link of the last segment read (base's stored_sha256 if none)
  std::string end;               // the last segment's "end" (a chain ended on purpose)
  std::vector<HashRecord> hashes;
};

// Reads the chain's segments in order up to the one holding `up_to_revision` (0: every
// usable segment, trailing ones without revisions included), checking each link; records go to on_record in order. The chain must
// reach up_to_revision (kNotFound otherwise, naming what it does reach). A broken link is
// kDataLoss naming both segments.
ChainReadResult ReadChain(backup::Repository& repo, const Chain& chain, const std::optional<pipeline::KeySpec>& key,
                          int64_t up_to_revision = 0, const std::function<void(const Record&)>& on_record = {},
                          const std::function<void(uint64_t segments_done)>& progress = {});

}  // namespace etcdsafe::follow
