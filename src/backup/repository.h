// A backup repository: the layout of backups inside a Store, and its lock.
//
// Layout (flat, so `ls` and `sha256sum -c` work as in the shell scripts it replaces):
//   <stem><ext>                 data object, e.g. etcd-snapshot-20261122-020000.db.zst.enc
//   <stem><ext>.sha256          "<hex>  <data object>\n", accepted by `sha256sum -c`
//   <stem>-r<rev>.manifest.json the commit point, written last (see manifest.h)
//   locks/<host>-<pid>-<nonce>.json
// Thread-compatible.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backup/lock.h"
#include "backup/manifest.h"
#include "base/file.h"
#include "store/store.h"

namespace etcdsafe::backup {

inline constexpr char kManifestSuffix[] = ".manifest.json";
inline constexpr char kSidecarSuffix[] = ".sha256";

class Repository {
 public:
  explicit Repository(std::unique_ptr<store::Store> store);

  store::Store& store() { return *store_; }
  std::string Describe() const { return store_->Describe(); }

  // Complete backups (those with a readable manifest), oldest first. Manifests that
  // cannot be read are skipped and named in *damaged (if given).
  std::vector<Manifest> ListBackups(std::vector<std::string>* damaged = nullptr);
  // "latest" or an id (with or without the manifest suffix). Missing: kNotFound.
  Manifest Find(const std::string& id_or_latest);
  // Data objects and sidecars that no manifest references: leftovers of interrupted
  // backups. Only meaningful while holding the lock.
  std::vector<std::string> Orphans();

  // Takes the repository lock for `operation` ("backup", "prune"). Stale locks are
  // removed and described in *removed_stale. Held by someone else: kLocked naming the
  // owner.
  std::unique_ptr<RepositoryLock> Lock(const std::string& operation,
                                       std::vector<std::string>* removed_stale = nullptr);

  // `stem`, or `stem-2`, `stem-3`, ... : a stem no earlier backup's objects use.
  std::string FreshStem(const std::string& stem);

  void WriteSidecar(const std::string& data_object, const std::string& sha256_hex);
  void WriteManifest(const Manifest& m);
  // Deletes a backup: manifest first (so it stops existing at once), then the data.
  void RemoveBackup(const Manifest& m);

 private:
  std::unique_ptr<store::Store> store_;
};

}  // namespace etcdsafe::backup
