// Reading a repository backup as a snapshot (`inspect ... --repo R --backup ID|latest`):
// the backup read pipeline (backup/repo_ops.h RestoreFromRepository: download, decrypt,
// decompress, sha256, size, revision, key count and hash checked against the manifest)
// restores it into a scratch directory under $TMPDIR (default /tmp; it needs room for the
// db), and `fn` reads the restored db through ops::SnapshotKv. The directory is removed on
// return, on failure and on an interrupt. Repository errors as for `restore --repo`;
// notes (manifests skipped while looking for "latest") go to *notes.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "backup/repository.h"
#include "ops/snapshot_kv.h"
#include "pipeline/keys.h"

namespace etcdsafe::k8s {

void WithBackupDb(backup::Repository& repo, const std::string& id_or_latest,
                  const std::optional<pipeline::KeySpec>& key, std::vector<std::string>* notes,
                  const std::function<void(ops::SnapshotKv&)>& fn);

}  // namespace etcdsafe::k8s
