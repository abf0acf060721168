// `snapshot restore`: turn a snapshot file into an etcd data directory that a real etcd
// 3.4 starts from, byte-compatible with `etcdctl snapshot restore` (spec §5–7): same
// member and cluster IDs for the same flags, same WAL and .snap bytes, same db hash.
//
// Better than etcdctl:
// - Everything is built in a temporary sibling directory and renamed into place at the
//   end, so a failure (bad hash, corrupt db, disk full, ...) leaves nothing behind.
// - The db's structure is checked (bbolt Tx.Check equivalent) before it is accepted.
// - --bump-revision/--mark-compacted as in etcdutl 3.5, so a Kubernetes API server never
//   sees revisions go backwards after a restore.
// - --compact: the db written is the one a physical compaction at the snapshot's revision
//   would leave (see RestoreOptions::compact), so etcd rebuilds a smaller index at start-up.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "bolt/inspect.h"
#include "etcdfmt/membership.h"
#include "snapshot/status_format.h"

namespace etcdsafe::snapshot {

struct RestoreOptions {
  std::string snapshot_path;
  std::string data_dir;  // "" → "<name>.etcd", like etcdctl
  std::string wal_dir;   // "" → "<data_dir>/member/wal"
  std::string name = "default";
  std::string initial_cluster = "default=http://localhost:2380";
  std::string initial_cluster_token = "etcd-cluster";
  std::string initial_advertise_peer_urls = "http://localhost:2380";
  bool skip_hash_check = false;
  uint64_t bump_revision = 0;
  bool mark_compacted = false;
  // Write the db as etcd 3.4's compaction at the snapshot's revision R leaves it
  // (kvstore_compaction.go with treeIndex.Compact(R)): in bucket "key" only each live key's
  // latest revision stays (byte for byte), every older revision of it and every revision of
  // a key whose latest entry is a tombstone (the tombstone too) is dropped; meta gets
  // "finishedCompactRev" and "scheduledCompactRev" = R (17-byte revision key, as etcd writes
  // them; with --mark-compacted scheduledCompactRev is the bumped revision instead). Every
  // other bucket is copied. R = max(main revision of the last "key" entry,
  // finishedCompactRev): what etcd's store restore takes as its current revision, so the
  // restored etcd serves the same revision and the same live keys, values, create/mod
  // revisions, versions and leases; only reads below R fail ("required revision has been
  // compacted"). The db is rebuilt compact (not grown to the snapshot's size). Needs one
  // extra pass over bucket "key" holding each distinct key once in memory (as etcd's own
  // index does), plus one bit per revision. Malformed revision keys or values: kDataLoss.
  bool compact = false;
  // The data dir is used right away and thrown away (a restore drill): the db goes
  // through the page cache, where the etcd started on it finds it, and is not fsynced.
  // Everything else (checks, commit by rename) is as for a durable restore.
  bool scratch = false;
  // One line for the user (leftovers removed, ...); empty: "etcdsafe: note: ..." on stderr.
  std::function<void(const std::string&)> note;
};

struct RestoreResult {
  std::string data_dir;
  std::string wal_dir;
  uint64_t member_id = 0;
  uint64_t cluster_id = 0;
  size_t member_count = 0;
  StatusNumbers restored;      // status of member/snap/db after the restore
  bool hash_checked = false;   // the sha256 trailer was present and verified
  bool db_rewritten = false;   // db was rebuilt (bump/mark/compact or missing buckets) vs patched
  // --compact: the revision compacted at, and how many revisions of bucket "key" were kept
  // and dropped (0, 0, 0 without --compact).
  int64_t compact_revision = 0;
  uint64_t compact_kept = 0, compact_dropped = 0;
};

// Stage names passed to the progress callback: "validate", "copy", "check", "wal", "done".
using RestoreProgress = std::function<void(const std::string& stage, uint64_t bytes)>;

// Errors (all leave nothing behind): kInvalidArgument for flags (etcdctl's messages),
// kAlreadyExists for a non-empty data or WAL dir, a symlink or a non-directory given as
// one, kNotFound for a missing snapshot, kDataLoss for a missing/mismatching trailer or a
// corrupt db, kIo for disk problems.
//
// Crash safety: the data dir (and the WAL dir) are built in temporary siblings named
// ".<base>.etcdsafe-restore-XXXXXX", flock'ed while the restore runs; the next restore to
// the same target removes those of killed runs (a note says so). With --wal-dir the WAL
// is renamed into place first, holding a marker (kPendingMarker) that names the data dir,
// then the data dir, then the marker is removed: a kill between the renames leaves a WAL
// dir that the next restore to the same pair recognises and removes. An interrupt waits
// for a commit in progress (CommitSection): it leaves both dirs or neither.
RestoreResult Restore(const RestoreOptions& opts, const RestoreProgress& progress = {});

// Restore from db bytes that come from elsewhere (a backup repository): `write_db` must
// create the file it is given (mode 0600) holding exactly the db bytes, verified by the
// caller (it throws on a mismatch). opts.snapshot_path is unused. `db_size_hint` is used
// for the free-space check. Same guarantees and errors as Restore.
//
// `check_input` (may be empty) is called with the status numbers of the db exactly as
// write_db wrote it (revision, total_key, hash as `snapshot status` computes them on the
// backed-up snapshot, total_size), after bbolt's consistency check and before anything is
// committed: a throw aborts the restore and leaves nothing behind (the error propagates).
//
// `inspected` (may be null): write_db sets it to bolt::StreamInspector's result over
// exactly the bytes it wrote. Restore then takes bbolt's check and the input's numbers
// from it and does not read the db back (written with O_DIRECT, the db is not in the page
// cache: a read-back is a second pass over the disk, ~1 s per GB). When write_db leaves
// it empty, the db is read back as without it.
using DbWriter = std::function<void(const std::string& db_path)>;
using InputCheck = std::function<void(const StatusNumbers& input)>;
RestoreResult RestoreFromDb(const RestoreOptions& opts, uint64_t db_size_hint, const DbWriter& write_db,
                            const RestoreProgress& progress = {}, const InputCheck& check_input = {},
                            const std::optional<bolt::InspectResult>* inspected = nullptr);

// Checks flags and targets without writing anything (fills in the default data dir):
// what a restore would refuse, it refuses here first. Returns the cluster to create.
// A WAL dir left by an interrupted commit into the same data dir passes (the restore
// removes it).
etcdfmt::RestoreCluster ValidateRestore(RestoreOptions& opts);

// `snapshot restore --all-members`: every member of --initial-cluster restored into
// <output_dir>/<member name> in one pass over the snapshot. Member i's dir is byte for
// byte what Restore writes with name = i, initial_advertise_peer_urls = i's URLs as listed
// in --initial-cluster (joined with ','), data_dir = <output_dir>/<name> and the other
// flags of `base` (same db, WAL and .snap bytes); the db is the same for every member, so
// is read, sha256-checked, planned and bbolt-checked once: from a snapshot file one pass
// writes every member's db and each gets the same 8-byte patch (a rebuilt db, or one from
// RestoreAllMembersFromDb, is built once and copied); each member's WAL and .snap are
// written beside the db (other threads).
//
// base.data_dir, base.wal_dir and base.initial_advertise_peer_urls must be empty (each
// member's come from output_dir and --initial-cluster); `name` non-empty must be one of the
// members (the CLI passes --name when the user gave it). Errors as Restore, checked for
// every member before the snapshot is read: kInvalidArgument for flags (also an empty
// output_dir, a name not in --initial-cluster), kAlreadyExists for an existing non-empty
// member dir (or a symlink), kNotFound, kDataLoss, kIo.
//
// All members or none: each dir is built in a locked temporary sibling inside output_dir
// (".<name>.etcdsafe-restore-XXXXXX", removed on failure or interrupt, stale ones of killed
// runs removed by the next restore) and all are renamed into place in one CommitSection at
// the end; a failed rename removes the members already renamed. Only a kill -9 in the
// middle of those renames (microseconds) can leave some members committed.
struct RestoreAllOptions {
  RestoreOptions base;     // snapshot_path, initial_cluster, token, hash/bump flags, note
  std::string output_dir;  // created (0700) if missing
  std::string name;        // "" or a member that must be in --initial-cluster
};

struct RestoreAllResult {
  std::vector<RestoreResult> members;             // in --initial-cluster order of first appearance
  std::vector<std::string> names;                 // same order
  std::vector<std::string> peer_urls;             // each member's URLs as listed, joined with ','
  std::string initial_cluster, initial_cluster_token;
};

RestoreAllResult RestoreAllMembers(const RestoreAllOptions& opts, const RestoreProgress& progress = {});
// The same from db bytes that come from elsewhere (a backup repository), as RestoreFromDb:
// write_db and check_input are called once, for the first member's db.
RestoreAllResult RestoreAllMembersFromDb(const RestoreAllOptions& opts, uint64_t db_size_hint,
                                         const DbWriter& write_db, const RestoreProgress& progress = {},
                                         const InputCheck& check_input = {},
                                         const std::optional<bolt::InspectResult>* inspected = nullptr);

// The start plan printed after RestoreAllMembers: per member its data dir and the etcd
// command line (--name, --data-dir, --initial-cluster, --initial-cluster-token,
// --initial-advertise-peer-urls, --listen-peer-urls, --initial-cluster-state new, and the
// client URL flags with the placeholder CLIENT_URLS: restore flags do not know them).
std::string FormatStartPlan(const RestoreAllResult& r);

// Name of the marker file in a WAL dir whose data dir is not committed yet.
inline constexpr const char* kPendingMarker = ".etcdsafe-restore-pending";

}  // namespace etcdsafe::snapshot
