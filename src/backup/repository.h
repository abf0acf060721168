// A backup repository: the layout of backups inside a Store (layout.h), its marker and
// its lock (lock.h). Everything read back from the store is validated before use: names
// are classified (layout.h), manifests parsed strictly and checked against their names
// and each other (manifest.h). Only the top level is listed (Store::ListDir), never a
// sub-prefix. Thread-compatible.
#pragma once

#include <atomic>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backup/layout.h"
#include "backup/lock.h"
#include "backup/manifest.h"
#include "base/file.h"
#include "store/store.h"

namespace etcdsafe::backup {

class Repository {
 public:
  explicit Repository(std::unique_ptr<store::Store> store);

  store::Store& store() { return *store_; }
  std::string Describe() const { return store_->Describe(); }

  // The marker (layout.h) says this location is an etcdsafe repository. Commands that
  // delete (prune, unlock) refuse a location without one: a directory that only looks like
  // a repository is not one. The first backup writes it.
  // HasMarker: false when absent; a marker that is not ours or is corrupt: kDataLoss; of
  // a newer format: kUnsupported.
  bool HasMarker();
  // kNotFound "<url> is not an etcdsafe repository (no etcdsafe-repository.json): refusing
  // to <action>" when absent.
  void RequireMarker(const std::string& action);
  // Writes the marker when absent (after validating one that exists).
  void EnsureMarker();

  // One listing of the top level, classified and validated.
  struct Scan {
    std::vector<store::ObjectInfo> objects;  // every top-level object, temporaries included
    std::vector<Manifest> backups;           // valid manifests, oldest first
    std::vector<std::string> invalid;        // "<name>: <why>", printable, for invalid manifests
  };
  Scan ScanTop();

  // Complete backups (valid manifests) of `kind` (nullopt: every kind), oldest first.
  // Invalid manifests are skipped and named in *damaged (if given). The default is etcd
  // snapshot backups: what freshness, drills and restores are about.
  std::vector<Manifest> ListBackups(std::vector<std::string>* damaged = nullptr,
                                    std::optional<BackupKind> kind = BackupKind::kSnapshot);
  // "latest" or an id (with or without the manifest suffix). Missing: kNotFound; the
  // id's manifest invalid: kDataLoss with the reason. "latest" is the newest valid
  // backup of `kind`; invalid manifests skipped on the way are named in *skipped. An id
  // of another kind than `kind` is kInvalidArgument ("... is a pki backup, not an etcd
  // snapshot"): restoring etcd from a PKI archive, or certificates from a snapshot, is
  // refused. nullopt accepts every kind (verify).
  Manifest Find(const std::string& id_or_latest, std::vector<std::string>* skipped = nullptr,
                std::optional<BackupKind> kind = BackupKind::kSnapshot);

  // Takes the repository lock for `operation` ("backup", "prune"); see lock.h.
  std::unique_ptr<RepositoryLock> Lock(const std::string& operation,
                                       std::vector<std::string>* removed_stale = nullptr);

  // `stem`, or `stem-2`, `stem-3`, ... : a stem no object of the repository uses.
  std::string FreshStem(const std::string& stem);

  // The intent record of a backup about to write `data_object` (layout.h), and its removal
  // once the manifest is committed or the data is gone.
  void WritePending(const std::string& data_object, const std::string& operation);
  void RemovePending(const std::string& data_object);
  void WriteSidecar(const std::string& data_object, const std::string& sha256_hex);
  // Write-once: an existing manifest of that id is kAlreadyExists.
  void WriteManifest(const Manifest& m);

 private:
  std::unique_ptr<store::Store> store_;
};

// A backup's objects in one repository until its manifest is committed: on failure,
// interrupt included, they are removed (data, sidecar, then the intent record). A kill -9
// leaves the intent record, which lets the next prune prove the rest is ours. Used by every
// writer of backups (snapshot and PKI backups).
class Uncommitted {
 public:
  Uncommitted(Repository& repo, std::string data_object);
  ~Uncommitted();
  Uncommitted(const Uncommitted&) = delete;
  Uncommitted& operator=(const Uncommitted&) = delete;
  // Call inside the CommitSection that wrote the manifest.
  void Committed() { committed_ = true; }

 private:
  void Remove();
  Repository& repo_;
  std::string data_;
  std::atomic<bool> committed_{false};
  InterruptCleanup on_interrupt_;  // last: unregistered first
};

}  // namespace etcdsafe::backup
