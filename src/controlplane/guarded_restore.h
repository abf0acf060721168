// Guarded restore of a control-plane node's etcd: the kubeadm runbook (move the static-pod
// manifests away, move the data dir aside, restore with the node's own flags, fix owner and
// mode, put the manifests back, wait, check) as one command with a journal, and the same
// swap for etcd run as a systemd unit.
//
// Steps, in order (kStepNames): preflight, last-snapshot, stop, move-aside, restore, swap,
// start, health. Each is recorded in the journal (JSON, written atomically: temp + fsync +
// rename) before and after it runs. Every path is prefixed by `root` ("" = none), so a
// temp dir can stand in for a node.
//  - preflight: the etcd manifest (kubeadm) or the flags (systemd) give the member; the
//    source (snapshot file or backup) is read and checked; its cluster must be the one in
//    the data dir or the running etcd (same cluster ID, or a member ID or a name+peer URLs
//    in common) unless allow_other_cluster; enough free space next to the data dir; the
//    lock file (flock) beside the journal, taken once the checks pass. A refusal creates
//    nothing; after it, the lock file stays (empty) and the journal lives until the end.
//  - last-snapshot: a snapshot of the running etcd, if it answers, kept beside the old dir.
//  - stop: kubeadm: etcd.yaml and kube-apiserver.yaml move to <manifests>/../manifests-
//    etcdsafe-moved/; systemd: `systemctl stop UNIT`. Then waits until the client port is
//    closed and the db's flock (bbolt) is free.
//  - move-aside: the data dir is renamed to <dir>.etcdsafe-old-<stamp>; a mount point
//    (st_dev differs from its parent's) keeps its place and its entries move into
//    <dir>/.etcdsafe-old-<stamp>/ instead (the restore is built in <dir>/.etcdsafe-new-<stamp>).
//  - restore: the snapshot engine writes <dir>.etcdsafe-new-<stamp> (or the mount's
//    .etcdsafe-new-<stamp>) with bump_revision / mark_compacted / compact.
//  - swap: renamed into place (mount: its entries moved in), owner and mode of the old dir
//    applied to every entry.
//  - start: the manifests move back / `systemctl start UNIT`.
//  - health: etcd's health through its client URL and TLS files; with more than one member
//    in initial_cluster only that the client port is open (quorum needs the other nodes);
//    then the API server's /readyz when kube-apiserver.yaml names a port that is open
//    right after etcd is healthy (else skipped): polled every second (HTTPS, not
//    verified, 5 s per request) for up to wait_timeout more. An API server that does not
//    answer 200 in that time does not fail the restore (etcd is restored and healthy;
//    the old data would not help it): a warning (result.warnings, "warning: ..." log).
// A failure undoes what was done, in reverse order (the restored dir, if swapped in, is
// kept as <dir>.etcdsafe-failed-<stamp>), and the error names the failed step. The old
// data dir is never deleted.
//
// Crash recovery: a run that finds a journal finishes the interrupted restore if its swap
// was done (start, health) and rolls it back otherwise; RunGuardedRestore then returns
// Outcome::kFinished or kRolledBack without starting a new restore.
//
// Errors: kInvalidArgument (bad flags or manifest, a snapshot of another cluster),
// kNotFound (no manifest, snapshot, backup), kIo (not enough disk), kLocked (another
// restore runs); a step failure keeps its cause's code. Messages are
// one line. Not thread-safe; one restore per node (the lock).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "backup/repo_ops.h"
#include "backup/repository.h"
#include "pipeline/keys.h"

namespace etcdsafe::controlplane {

// etcd's recovery guide: "--bump-revision 1000000000 --mark-compacted" for Kubernetes.
inline constexpr uint64_t kDefaultBumpRevision = 1000000000;
inline constexpr const char* kJournalName = ".etcdsafe-restore-journal.json";
inline constexpr const char* kLockName = ".etcdsafe-restore.lock";
inline constexpr const char* kMovedManifestsDir = "manifests-etcdsafe-moved";
inline constexpr const char* kStepNames[] = {"preflight", "last-snapshot", "stop",  "move-aside",
                                            "restore",   "swap",          "start", "health"};

struct GuardedRestoreOptions {
  bool systemd = false;  // false: kubeadm
  std::string root;      // prefix of every path ("" = /)
  // kubeadm
  std::string manifests_dir = "/etc/kubernetes/manifests";
  // Checked against the manifest when set (a --plan command run on the wrong node).
  std::string expect_name, expect_peer_urls;
  // systemd (no manifest): the unit, the data dir and the member's flags.
  std::string unit, data_dir, name, peer_urls;
  std::string client_url, cacert, cert, key;  // systemd health check (kubeadm: manifest)
  // Source: a snapshot file or a repository backup.
  std::string snapshot_path;
  backup::Repository* repo = nullptr;
  std::string backup_id = "latest";
  std::optional<pipeline::KeySpec> repo_key;
  backup::ReadOptions read;
  // Restore flags.
  std::string initial_cluster;        // "" = this member alone
  std::string initial_cluster_token;  // "" = the manifest's, else etcd's default
  uint64_t bump_revision = kDefaultBumpRevision;
  bool mark_compacted = true;
  bool compact = false;  // snapshot::RestoreOptions::compact (restore --compact)
  bool skip_hash_check = false;
  bool allow_other_cluster = false;
  bool dry_run = false;
  std::string journal_dir;  // "" = the data dir's parent
  std::chrono::seconds wait_timeout{120};
};

struct StepTiming {
  std::string step;
  std::string state;  // done, skipped, failed, undone
  double seconds = 0;
  std::string detail;
};

struct GuardedRestoreResult {
  enum class Outcome { kRestored, kDryRun, kFinished, kRolledBack };
  Outcome outcome = Outcome::kRestored;
  std::vector<StepTiming> steps;
  std::string data_dir, aside_dir, last_snapshot;  // host paths (with root)
  std::string interrupted_step;                    // kFinished / kRolledBack: where it stopped
  std::vector<std::string> plan;                   // kDryRun: every step, one line each
  // Things that did not stop the restore, one line each (also logged as "warning: ..."):
  // an API server whose /readyz did not answer 200 within wait_timeout.
  std::vector<std::string> warnings;
};

// One line per event (step started/done with duration, notes). Never null-checked twice:
// pass {} to discard.
using LogFn = std::function<void(const std::string&)>;

GuardedRestoreResult RunGuardedRestore(const GuardedRestoreOptions& opts, const LogFn& log);

// `restore --kubeadm --plan`: for every member of initial_cluster, the command to run on
// that node: `source_args` (e.g. --snapshot FILE or --repo R --backup ID, identical on all
// nodes) plus --initial-cluster, --initial-cluster-token (opts' or a fresh
// "etcdsafe-restore-<stamp>", so members still on the old data cannot join), that node's
// --name and --initial-advertise-peer-urls and `extra_args`. Reads this node's manifest
// (opts.root + manifests_dir) to check that it is one of the members with those URLs.
std::string FormatRestorePlan(const GuardedRestoreOptions& opts, const std::vector<std::string>& source_args,
                              const std::vector<std::string>& extra_args);

// Step hook for tests: ETCDSAFE_TEST_CRASH_AFTER=<step> makes the process _exit(137) right
// after that step is journaled done (a kill -9 at that point).
inline constexpr const char* kCrashHookEnv = "ETCDSAFE_TEST_CRASH_AFTER";

}  // namespace etcdsafe::controlplane
