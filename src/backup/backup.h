// `etcdsafe backup`: health check → snapshot stream → sha256 checked against etcd's
// trailer → snapshot status numbers and bbolt consistency check (streamed) → compression
// → optional encryption → every repository, in one pass with bounded memory; then the
// .sha256 sidecar and, last, the manifest (the commit point) in each repository.
//
// Each repository is independent: if one fails (lock held, upload error), the others
// still complete and the report says which failed. A failure of the snapshot itself
// (unhealthy endpoint, bad hash, corrupt db) fails every repository and commits nothing.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "backup/manifest.h"
#include "base/error.h"
#include "client/etcd_client.h"
#include "pipeline/compress.h"
#include "pipeline/keys.h"
#include "store/store.h"

namespace etcdsafe::backup {

inline constexpr char kToolVersion[] = "etcdsafe 0.2.0";

struct BackupOptions {
  std::vector<std::string> repos;  // file:///path or s3://bucket/prefix, at least one
  store::StoreOptions store_options;
  // When not empty: one per repo, used instead of store_options (the agent's repositories
  // each have their own S3 settings).
  std::vector<store::StoreOptions> repo_store_options;
  pipeline::Compression compression = pipeline::Compression::kZstd;
  int compression_level = 0;  // 0: the codec's default (zstd 1, gzip 6)
  std::optional<pipeline::KeySpec> key;  // encrypt when set
  std::string name_prefix = "etcd-snapshot";
  // Where the snapshot stream waits while the pipeline lags (see snapshot::PumpStream;
  // "": $TMPDIR, else /tmp), and how much of it may wait there. If no temp file can be
  // created there, the stream runs on a small window instead (slower, as bounded).
  std::string spill_dir;
  uint64_t max_spill_bytes = uint64_t{1} << 30;
};

struct RepoOutcome {
  std::string repo;
  bool ok = false;
  std::string error;  // one line, when !ok
  ErrorCode code = ErrorCode::kInternal;
};

struct BackupReport {
  Manifest manifest;                // as committed (repos that succeeded)
  std::vector<RepoOutcome> repos;   // one per BackupOptions::repos, same order
  std::vector<std::string> notes;   // stale locks removed, key warnings, ...
  bool all_ok() const;
  bool any_ok() const;
};

using ProgressFn = std::function<void(uint64_t bytes)>;

// Throws when nothing could be backed up (unreachable/unhealthy etcd, bad snapshot, or
// every repository failed, with that repository's error). Partial success is a report
// with some repos !ok.
BackupReport RunBackup(client::EtcdClient& client, const BackupOptions& opts, const ProgressFn& progress = {},
                       std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// Opens a repository URL (see store::OpenStore). With `must_exist` (commands that read
// backups), a file:// repository whose directory is missing is kNotFound rather than an
// empty repository: a mistyped path must not look like "no backups".
class Repository;
std::unique_ptr<Repository> OpenRepository(const std::string& url, const store::StoreOptions& options,
                                           bool must_exist = false);

}  // namespace etcdsafe::backup
