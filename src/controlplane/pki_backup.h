// PKI backups in a repository: `pki backup`, `pki restore --repo`, `pki check --repo`.
//
// A PKI backup is a backup of kind "pki" (backup/manifest.h, layout.h): the tar of
// pki_archive.h, compressed and encrypted by the same pipeline as snapshots, stored as
// "pki-<host>-YYYYmmdd-HHMMSS.tar[.zst|.gz][.enc]" with its .sha256 sidecar, under the
// repository lock, with an intent record written first and the manifest (id
// "<stem>-r0") last: the repository invariants (docs/design.md I1-I7) hold as for
// snapshot backups, and prune keeps each kind's retention separately.
//
// Encryption is required (the archive holds private keys) unless allow_unencrypted. A
// tree in which a private key does not match its certificate is refused before anything
// is written (PkiInconsistentError) unless force.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "backup/backup.h"
#include "backup/repo_ops.h"
#include "backup/repository.h"
#include "controlplane/pki.h"
#include "controlplane/pki_archive.h"
#include "pipeline/compress.h"
#include "pipeline/keys.h"
#include "store/store.h"

namespace etcdsafe::controlplane {

struct PkiBackupOptions {
  std::vector<std::string> repos;  // at least one; each gets its own objects and manifest
  store::StoreOptions store_options;
  pipeline::Compression compression = pipeline::Compression::kZstd;
  int compression_level = 0;
  std::optional<pipeline::KeySpec> key;
  bool allow_unencrypted = false;
  bool force = false;  // archive a tree whose keys do not match their certificates
  PkiPaths paths;
  std::string name_prefix;  // "" = "pki-<host name>"
};

struct PkiBackupReport {
  backup::Manifest manifest;               // as committed (last repository that succeeded)
  std::vector<backup::RepoOutcome> repos;  // one per repo, same order
  std::vector<std::string> notes;
  size_t files = 0;
  bool all_ok() const;
};

// Throws before writing anything for: no key (kInvalidArgument), a key/certificate
// mismatch (PkiInconsistentError), a missing tree. Throws when every repository failed
// (the first one's error); partial success is a report with some repos !ok.
PkiBackupReport RunPkiBackup(const PkiBackupOptions& opts,
                             std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// The verified entries of PKI backup `id_or_latest` ("latest": the newest PKI backup; a
// snapshot backup's id is kInvalidArgument). Every hash, size and the manifest MAC are
// checked before the entries are returned.
std::vector<ArchiveEntry> ReadPkiBackup(backup::Repository& repo, const std::string& id_or_latest,
                                        const std::optional<pipeline::KeySpec>& key, const backup::ReadOptions& read,
                                        backup::Manifest* manifest, std::vector<std::string>* notes);

// CheckPki of the kubernetes/ part of a PKI backup, extracted into a private temporary
// directory (removed afterwards).
PkiReport CheckPkiEntries(const std::vector<ArchiveEntry>& entries, int warn_days, int64_t now_unix);

// "pki-<host>": the host name in the repository's name alphabet.
std::string DefaultPkiPrefix();

}  // namespace etcdsafe::controlplane
