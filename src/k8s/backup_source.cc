#include "k8s/backup_source.h"

#include <stdlib.h>

#include <cerrno>
#include <memory>
#include <mutex>

#include "backup/repo_ops.h"
#include "base/error.h"
#include "base/file.h"

namespace etcdsafe::k8s {

void WithBackupDb(backup::Repository& repo, const std::string& id_or_latest,
                  const std::optional<pipeline::KeySpec>& key, std::vector<std::string>* notes,
                  const std::function<void(ops::SnapshotKv&)>& fn) {
  ScratchDir scratch("etcdsafe-inspect");
  snapshot::RestoreOptions opts;
  opts.data_dir = scratch.path() + "/restored";
  opts.note = [notes](const std::string& n) {
    if (notes != nullptr) notes->push_back(n);
  };
  backup::RestoreFromRepository(repo, id_or_latest, opts, key, {}, {}, notes);
  ops::SnapshotKv kv = ops::SnapshotKv::Open(opts.data_dir + "/member/snap/db");
  fn(kv);
}

}  // namespace etcdsafe::k8s
