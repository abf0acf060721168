// Operations on existing backups: restore from a repository, verify, prune.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "backup/backup.h"
#include "backup/repository.h"
#include "catalog/retention.h"
#include "snapshot/restore.h"

namespace etcdsafe::backup {

// Streams download → decrypt → decompress → sha256 and size checked against the manifest
// → the snapshot engine's restore (same flags and guarantees as `snapshot restore`:
// built in a temporary sibling, renamed at the end, nothing left on failure).
// Encrypted backup without `key`: kInvalidArgument; wrong key: kUnauthenticated.
snapshot::RestoreResult RestoreFromRepository(Repository& repo, const std::string& id_or_latest,
                                              const snapshot::RestoreOptions& opts,
                                              const std::optional<pipeline::KeySpec>& key,
                                              const ProgressFn& progress = {});

struct VerifyOutcome {
  Manifest manifest;
  bool ok = false;
  std::string problem;  // one line when !ok
};

// Re-downloads each backup (or only `id`), and checks the stored sha256 and size, that it
// decrypts and decompresses, the db sha256 and size, and the status numbers and bbolt
// consistency of the db against the manifest. Manifests that cannot be read are
// reported as damaged too. Never throws for a damaged backup; only for a repository
// that cannot be listed.
std::vector<VerifyOutcome> VerifyBackups(Repository& repo, const std::optional<std::string>& id,
                                         const std::optional<pipeline::KeySpec>& key,
                                         const ProgressFn& progress = {});

struct PruneReport {
  std::vector<catalog::Decision> decisions;  // newest first
  std::vector<std::string> orphans_removed;  // data objects of interrupted backups
  std::vector<std::string> notes;
};

// Applies the retention policy under the repository lock. Removal order keeps the
// repository consistent if killed at any point: manifest first, then data. With
// dry_run nothing is removed.
PruneReport Prune(Repository& repo, const catalog::RetentionPolicy& policy, bool dry_run,
                  std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

}  // namespace etcdsafe::backup
