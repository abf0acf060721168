// Restore drills (`snapshot verify FILE --drill`, `backups verify --repo R --backup ID
// --drill`): prove that a backup can be restored by restoring it into a scratch
// directory, starting a real etcd on it (loopback only) and checking what that etcd
// serves against what the snapshot and the manifest say.
//
// Checks, in order (a check that cannot run because an earlier one failed is left out):
//   freshness    (--max-age) the snapshot is not older than the limit: the manifest's time
//                for a repository backup, the file's mtime for a snapshot file
//   etcd binary  the etcd to run exists (--etcd-binary, else PATH)
//   integrity    (file) sha256 trailer and bbolt consistency check (`snapshot verify`)
//   restore      the data dir is built (file: `snapshot restore`; repository: download,
//                decrypt, decompress, sha256/size/revision/keys/hash against the manifest,
//                bbolt check: `restore --repo`)
//   key space    the db's key space read offline (kv_hash.h): revision, live keys, HashKV;
//                read on another thread beside the restore (file: from the snapshot) or
//                beside etcd's start (repository: from the restored db), reported once
//                that is done, with the time the read took
//   etcd start   etcd starts on the restored dir and answers a linearizable read
//   revision     etcd's revision == the snapshot's (raised to its compaction, as etcd does)
//   key count    keys etcd serves == keys live in the snapshot
//   hashkv       etcd's HashKV at the snapshot revision == the hash computed offline
//   kubernetes objects   (unless not_kubernetes) live keys per RegistryGroup
//                ("pods/default", "namespaces", ...) == the snapshot's
//   essentials   (unless not_kubernetes) /registry/namespaces/default,
//                /registry/namespaces/kube-system and a /registry/ranges/ key are served
// The etcd is always stopped and the scratch directory removed before the drill returns,
// also when a check fails or throws, and on an interrupt (etcd_process.h). The report
// file, when asked for, is written atomically (temporary sibling, fsync, rename) whether
// the drill passes or fails.
//
// Exit codes (the CLI uses DrillReport::exit_code): 0 every check passed;
// kExitDrillFailed (14) a check failed; 10 the etcd binary or the backup is missing
// (nothing else ran).
// Usage errors (a bad --max-age, a key needed and not given) throw kInvalidArgument
// before anything runs, and no report is written.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "backup/repo_ops.h"
#include "backup/repository.h"

namespace etcdsafe::ops {

// "A drill check failed": published in docs/cli.md (Drills).
inline constexpr int kExitDrillFailed = 14;
inline constexpr int kExitDrillNotFound = 10;  // = the CLI's kExitNotFound

struct DrillOptions {
  bool not_kubernetes = false;
  std::optional<std::chrono::seconds> max_age;  // freshness limit
  std::string report_path;                      // "" = no JSON report
  std::string etcd_binary;                      // "" = etcd from PATH
  std::string work_parent;                      // "" = $TMPDIR or /tmp
  std::chrono::milliseconds start_timeout{60000};
  // One line for the user (notes of the restore, invalid manifests skipped); may be empty.
  std::function<void(const std::string&)> note;
};

struct DrillCheck {
  std::string name;
  bool ok = false;
  std::string expected, found;  // one printable line each
  int64_t ms = 0;
};

struct DrillReport {
  std::string source;  // what was drilled, for the summary line
  std::vector<DrillCheck> checks;
  bool ok = false;
  int exit_code = 0;  // 0, kExitDrillFailed or kExitDrillNotFound
};

// Parses --max-age: one or more <number><unit>, units d, h, m, s ("24h", "1d12h", "90m").
// Throws kInvalidArgument "invalid --max-age "<text>": ..." for anything else or zero.
std::chrono::seconds ParseMaxAge(const std::string& text);

DrillReport DrillSnapshotFile(const std::string& path, const DrillOptions& options);

// id_or_latest as for `restore --repo`. An encrypted backup without `key` is
// kInvalidArgument before anything runs.
DrillReport DrillRepositoryBackup(backup::Repository& repo, const std::string& id_or_latest,
                                  const std::optional<pipeline::KeySpec>& key, const backup::ReadOptions& read,
                                  const DrillOptions& options);

// {"ok": bool, "checks": [{"name", "ok", "expected", "found", "ms"}, ...]}
std::string DrillReportJson(const DrillReport& report);
// Atomic: "<dir>/.<name>.XXXXXX.tmp", fsync, rename.
void WriteDrillReport(const std::string& path, const DrillReport& report);
// The table the CLI prints: CHECK | RESULT | EXPECTED | FOUND | MS.
std::string FormatDrillTable(const DrillReport& report);
// One line: "drill passed: ..." or "drill failed: <check>: expected ..., found ...".
std::string DrillSummaryLine(const DrillReport& report);

}  // namespace etcdsafe::ops
