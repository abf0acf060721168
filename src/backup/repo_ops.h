// Operations on existing backups: restore from a repository, verify, prune.
//
// Every read is bounded by the manifest: the stored object by `stored_size`, the db it
// decodes to by `db_size`; a stream that goes past either stops at once with kDataLoss
// naming the limit. An encrypted backup's manifest is authenticated (manifest.h) before
// its data is used, when the key is given.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "backup/backup.h"
#include "backup/repository.h"
#include "catalog/retention.h"
#include "snapshot/restore.h"

namespace etcdsafe::backup {

struct ReadOptions {
  // Accept an encrypted backup whose manifest has no MAC (format 1, etcdsafe 0.1).
  bool allow_unauthenticated_manifest = false;
};

// Streams download → decrypt → decompress → sha256 and size checked against the manifest
// → the snapshot engine's restore (same flags and guarantees as `snapshot restore`:
// built in a temporary sibling, renamed at the end, nothing left on failure). The
// restored db's revision, key count and hash must equal the manifest's before the data
// dir is committed. Encrypted backup without `key`: kInvalidArgument; wrong key:
// kUnauthenticated; forged or altered manifest: kUnauthenticated. Notes (invalid
// manifests skipped while looking for "latest") go to *notes.
snapshot::RestoreResult RestoreFromRepository(Repository& repo, const std::string& id_or_latest,
                                              const snapshot::RestoreOptions& opts,
                                              const std::optional<pipeline::KeySpec>& key,
                                              const ProgressFn& progress = {}, const ReadOptions& read = {},
                                              std::vector<std::string>* notes = nullptr);
// `restore --repo --all-members`: the backup downloaded and checked once, every member of
// opts' --initial-cluster restored from it (snapshot::RestoreAllMembersFromDb), with the
// same checks against the manifest as RestoreFromRepository.
snapshot::RestoreAllResult RestoreAllFromRepository(Repository& repo, const std::string& id_or_latest,
                                                    const snapshot::RestoreAllOptions& opts,
                                                    const std::optional<pipeline::KeySpec>& key,
                                                    const ProgressFn& progress = {}, const ReadOptions& read = {},
                                                    std::vector<std::string>* notes = nullptr);

// The checks restore makes before it uses a backup of any kind (key given when encrypted,
// stored size, the manifest's MAC), then its data: stored bytes (bounded by stored_size,
// hashed) → decrypt → decompress → decoded bytes (bounded by db_size, hashed), handed to
// `consume` chunk by chunk. Both sizes and hashes are checked against the manifest after
// the last chunk (kDataLoss): a consumer must not act on the bytes before this returns.
void ReadBackupData(Repository& repo, const Manifest& m, const std::optional<pipeline::KeySpec>& key,
                    const std::function<void(const uint8_t*, size_t)>& consume, const ReadOptions& read = {},
                    const ProgressFn& progress = {});

// Checks the content of a PKI backup's tar once its bytes matched the manifest (the
// controlplane library provides one: backup does not parse tar). Throws kDataLoss.
using PkiArchiveCheck = std::function<void(const Manifest& m, const std::string& tar)>;

struct VerifyOutcome {
  enum class State { kOk, kDamaged, kKeyRequired };
  Manifest manifest;
  std::string name;  // the manifest's object name (for invalid manifests, whose id is unknown)
  State state = State::kDamaged;
  bool ok() const { return state == State::kOk; }
  std::string problem;  // one printable line when not ok
};

// Re-downloads each backup (or only `id`), and checks the .sha256 sidecar, the stored
// sha256 and size, the manifest's MAC, that it decrypts and decompresses, the db sha256
// and size, and the status numbers and bbolt consistency of the db against the manifest.
// Invalid manifests are reported as damaged. Without a key, an encrypted backup's stored
// bytes and sidecar are checked and it is reported kKeyRequired. PKI backups (any id is
// accepted) get the same checks up to the tar's sha256 and size, then `pki_check` (when
// given) on the tar. Never throws for a damaged backup; only for a repository that
// cannot be listed.
std::vector<VerifyOutcome> VerifyBackups(Repository& repo, const std::optional<std::string>& id,
                                         const std::optional<pipeline::KeySpec>& key,
                                         const ProgressFn& progress = {}, const PkiArchiveCheck& pki_check = {});

// The segments named after one base backup (continuous backup, layout.h kSegment), from
// their names alone: nothing is read.
struct ChainNames {
  uint64_t segments = 0;  // segment objects, merged ones (and what they supersede) included
  uint64_t merged = 0;    // of them merged (seq < seq_last)
  int64_t first_revision = 0, last_revision = 0;  // lowest first, highest last of its segments
};

// "backup X" or "backup X (with N segments, revisions A..B)" ("N segments (M merged)"
// when some are merged).
std::string DescribeBackupWithChain(const std::string& id, const ChainNames* chain);

struct PruneReport {
  std::vector<catalog::Decision> decisions;  // newest first
  // Snapshot backups that have segments, by id (DescribeBackupWithChain).
  std::map<std::string, ChainNames> chains;
  // Every object removed (or, with dry_run, that would be), in order: "<name>  (<why>)".
  std::vector<std::string> removed;
  // Top-level objects that look like etcdsafe's but are not provably its leftovers (no
  // intent record, segments without their base), or that a running recorder may be
  // writing: listed, never removed. "<name>  (<why>)".
  std::vector<std::string> left_alone;
  std::vector<std::string> notes;  // stale locks, lock state in a dry run
};

// Applies the retention policy to each kind of backup separately (layout.h BackupKind):
// etcd snapshots and PKI backups are counted in two sets, so neither pushes the other
// out, and each keeps its own newest backup. Refuses a location without the repository marker
// (kNotFound) and a repository holding any invalid manifest (kDataLoss, naming it) before
// anything is removed. The whole plan is computed and checked first (nothing a kept
// backup references is in it), then carried out under the repository lock, each backup
// manifest first, then its data and sidecar, so a prune killed at any point leaves
// complete backups and provable leftovers. Leftovers removed: objects of a backup that
// was killed (its intent record names them) and the file store's temporaries of
// etcdsafe's names. With dry_run nothing is written or removed (no lock is taken).
//
// Chains of continuous backup stay whole, decided by their names alone: a segment belongs
// to the snapshot backup its name continues (its base). Retention decides per base backup,
// as without segments; a kept base keeps every segment; a dropped base's segments go with
// it, from the highest number down and BEFORE its manifest, so a prune killed at any
// point leaves a base with a shorter chain that is still whole, never a segment without
// its base. Segments whose base has no manifest (orphans) are never removed: left_alone.
// Merged segments (follow/compact.h) count as the numbers they replace: a segment a merged
// one of its chain replaces (layout.h SegmentCovers), left by a merge that was killed or
// is still removing them, is removed from a kept chain too ("superseded by <merged>"),
// and a dropped base's merged and superseded segments go with the rest, from the highest
// number down, narrower ones first at one number. Compaction holds a lock that excludes
// prune (lock.h), so no merge is half-way while prune runs.
// A recorder (follow lock, lock.h) runs beside a prune: while one holds a fresh lock, the
// chain it is extending (the one with the most recently written plain segment) is kept with
// its base ("chain being recorded"), and the store temporaries of segment names are
// left alone (it may be writing one).
PruneReport Prune(Repository& repo, const catalog::RetentionPolicy& policy, bool dry_run,
                  std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

}  // namespace etcdsafe::backup
