// Point-in-time restore: a full backup plus the events of its chain, replayed OFFLINE
// into the bbolt db an etcd restore starts from. No etcd process, no gRPC message limit,
// no quota, no lease expiring while the replay runs.
//
// The replayed db is the base's db with
//  - bucket "key": every base entry, then for each recorded revision R <= target and each
//    of its events i (sub-revision order), key = R as 8 bytes big-endian, '_', i as 8 bytes
//    big-endian (+ 't' for a delete), value = the event's mvccpb.KeyValue (a delete: the
//    KeyValue holding only the key), exactly what etcd's own put/delete wrote; these keys
//    sort after the base's, so the B+tree builder only appends;
//  - bucket "lease": the base's leases, plus leases recorded as known ('L') at or before
//    the target, minus those recorded as gone ('X') at or before it; every lease a live key
//    refers to exists (one never recorded gets kUnknownLeaseTtl and a note);
//  - every other bucket copied unchanged.
// Then the ordinary restore (snapshot/restore.h RestoreFromDb) writes the member, WAL and
// snap files with every flag of `restore`. The replayed key space is checked against the
// newest HashKV recorded at or before the target (ops/kv_hash.h with the compact revision
// etcd reported), and the result says which revision was proven and how.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backup/repository.h"
#include "follow/chain.h"
#include "pipeline/keys.h"
#include "snapshot/restore.h"

namespace etcdsafe::follow {

inline constexpr int64_t kUnknownLeaseTtl = 60;

struct PointInTime {
  enum class Kind { kLatest, kRevision, kTime };
  Kind kind = Kind::kLatest;
  int64_t revision = 0;  // kRevision
  int64_t time_ms = 0;   // kTime (Unix milliseconds, UTC)
};

// RFC 3339 ("2026-11-30T10:15:00Z", "2026-11-30T11:15:00.250+01:00") → Unix ms;
// anything else: kInvalidArgument naming the text.
int64_t ParseTimeArg(std::string_view text);

struct PitrResult {
  snapshot::RestoreResult restore;
  std::string base_id;
  int64_t base_revision = 0;
  int64_t revision = 0;      // the revision restored
  int64_t time_ms = 0;       // when the recorder saw that revision (base: its backup time)
  uint64_t segments = 0, revisions = 0, events = 0;
  // The HashKV check: the revision checked (0: none), etcd's hash and compact revision
  // there; hash_note says why no check was possible when hash_revision is 0.
  int64_t hash_revision = 0;
  uint32_t hash = 0;
  int64_t hash_compact_revision = 0;
  std::string hash_note;
  std::vector<std::string> notes;  // unknown leases, chain problems after the target, ...
};

// Chooses the chain and target, replays and restores. kRevision N: the newest base with a
// revision <= N whose usable chain reaches N (a base at exactly N needs no segment).
// kTime T: the newest base taken at or before T; the target is the last revision the
// recorder saw at or before T, and the chain must prove T (a record after T, or a
// progress record at T): else kNotFound naming the newest provable time. kLatest: the
// highest revision any base or usable chain reaches (a base alone when equal); a chain
// whose names show a problem (a missing, duplicated or out-of-place segment) is refused
// for kLatest (kDataLoss naming it and the last usable revision, to restore with
// --to-revision), never silently cut short.
// Everything that needs no download (chain choice, flags, targets) is checked before
// anything is written; the db is then built inside the restore's temporary data dir, so
// a broken link, a tampered segment or a HashKV mismatch found during the replay leaves
// nothing behind. Errors: as RestoreFromRepository; no base/chain reaching the target:
// kNotFound; a broken chain or a HashKV mismatch: kDataLoss (nothing is committed).
PitrResult RestoreToPoint(backup::Repository& repo, const PointInTime& target, const snapshot::RestoreOptions& opts,
                          const std::optional<pipeline::KeySpec>& key,
                          const std::function<void(const std::string& stage, uint64_t n)>& progress = {});

// The replay alone: base db file (already verified) + the chain up to `target` → a new
// bbolt file at out_db (created or truncated, mode 0600). For kRevision the chain must
// reach it (kNotFound), and it must not be below the base (kInvalidArgument). The base's
// bucket "key" must end at or below the base revision (kDataLoss). Memory: one segment's
// records, the leases, and one entry per key whose latest value has a lease.
struct ReplayStats {
  int64_t revision = 0, time_ms = 0;
  uint64_t segments = 0, revisions = 0, events = 0;
  std::vector<HashRecord> hashes;  // recorded at or before the target, in order
  std::vector<std::string> notes;
};
ReplayStats ReplayChain(backup::Repository& repo, const Chain& chain, const std::string& base_db,
                        const std::string& out_db, const PointInTime& target,
                        const std::optional<pipeline::KeySpec>& key,
                        const std::function<void(uint64_t segments_done)>& progress = {});

// The HashKV check of a replayed db: the newest hash recorded at or before the target
// (stats.hashes) recomputed offline (ops/kv_hash.h, with the compact revision etcd
// reported). Returns the record checked, or nullopt when none was recorded; a different
// hash, or a record the db cannot be checked against, is kDataLoss.
std::optional<HashRecord> CheckReplayedHash(const std::string& db, const ReplayStats& stats);

}  // namespace etcdsafe::follow
