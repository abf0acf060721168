// The PKI archive: one POSIX pax tar of a control plane's certificates, keys, kubeconfigs,
// static-pod manifests and kubeadm/kubelet configuration. GNU tar and libarchive (bsdtar)
// list and extract it like any pax tar.
//
// The tar codec is our own (ustar headers plus pax 'x' extended headers), not libarchive:
// loading libarchive drags libxml2, ICU, nettle, acl, lzma, lz4, bz2 ... into every
// etcdsafe process (+1.8 MiB RSS, against the agent's 20 MiB budget), and a multi-format
// reader is attack surface for an input that is only ever our own pax output. The reader
// accepts exactly that output (this writer's, and libarchive's pax writer's from older
// etcdsafe versions) and nothing else: GNU/v7 headers, bad checksums, global or GNU long
// name or sparse headers, unknown pax keys and a missing end-of-archive marker are refused
// (the full rules are in pki_archive.cc, above ReadTar).
//
// Entry names (validated on read; anything else makes the whole archive hostile):
//   kubernetes[/<rel>]     the kubernetes directory (/etc/kubernetes) and what it holds;
//                          restored under --kubernetes-dir
//   root/<abs path>        files outside it (--extra, /var/lib/kubelet/config.yaml), by
//                          their absolute host path; restored only under an explicit --root
// Entries are regular files, directories and symlinks (recorded as links, never followed;
// a link whose target is absolute or climbs out of its area is skipped at backup time and
// refused at restore), each with mode, uid/gid, user/group names and mtime (ns). Bounds:
// 10,000 entries, 16 MiB a file, backup::kMaxPkiArchiveBytes in all, paths of 4096 bytes.
//
// Thread-compatible. Errors: etcdsafe::Error, one line.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "backup/manifest.h"

namespace etcdsafe::controlplane {

// Where the tree is. Every path is a host path; `root` prefixes all of them (tests, or a
// node's disk mounted elsewhere).
struct PkiPaths {
  std::string root;                                     // "" = /
  std::string kubernetes_dir = "/etc/kubernetes";
  std::vector<std::string> extra;                       // files or directories, absolute
  std::string kubelet_config = "/var/lib/kubelet/config.yaml";  // included when present
  std::string Fs(const std::string& host_path) const { return root + host_path; }
};

struct ArchiveEntry {
  enum class Type { kFile, kDir, kSymlink };
  std::string path;  // archive name, see above
  Type type = Type::kFile;
  mode_t mode = 0;   // permission bits (07777)
  int64_t uid = 0, gid = 0;
  std::string uname, gname;
  int64_t mtime_sec = 0;
  long mtime_nsec = 0;
  std::string data;    // kFile: content; kSymlink: target
  std::string source;  // backup side: the file it was read from (not archived)
};

// What `pki backup` archives from `paths`: the kubernetes dir itself, pki/ (recursively),
// top-level *.conf, *.yaml and *.yml (kubeconfigs, kubeadm config), manifests/ (its
// files), the kubelet config when present, and every --extra path (a directory
// recursively). Missing kubernetes dir or --extra path: kNotFound. Notes (skipped links,
// special files) go to *notes.
std::vector<ArchiveEntry> CollectPkiEntries(const PkiPaths& paths, std::vector<std::string>* notes);

// The pax tar of `entries` (in order).
std::string WriteTar(const std::vector<ArchiveEntry>& entries);

// Reads and validates a tar from a repository (hostile input): formats tar/pax only, entry
// types file/dir/symlink only, names as above (no absolute, "..", "." or empty
// components, no duplicates, no entry below a symlink entry, printable UTF-8), link
// targets relative and inside their area, sizes bounded. Any violation: kDataLoss
// "<what>: hostile or damaged pki archive: <why>".
std::vector<ArchiveEntry> ReadTar(const std::string& tar, const std::string& what);

// backup::PkiArchiveCheck for `backups verify`: ReadTar, and the entry count equals the
// manifest's total_keys.
void CheckPkiArchive(const backup::Manifest& m, const std::string& tar);

struct PkiRestoreOptions {
  std::string kubernetes_dir;  // required: where kubernetes/ entries go
  std::string root;            // "" = root/ entries are skipped (listed as such)
  bool dry_run = false;
  bool force = false;          // overwrite files whose content differs
};

struct PkiRestoreItem {
  std::string target;  // the path written (or that would be)
  std::string action;  // "create" | "overwrite" | "unchanged" | "skip (...)"
};

// Writes the entries back: directories first (created with their mode when missing),
// then each file via a temporary sibling + fsync + rename, with its mode (a private key
// never more open than 0600), owner (by name when the name exists here, else by id) and
// mtime; symlinks as symlinks. Nothing is written through a symlink: every existing
// parent must be a real directory. Before anything is written, every target is
// compared: a file whose content differs, without `force`, refuses the whole restore
// (kAlreadyExists naming the first and how many). Returns one item per entry.
std::vector<PkiRestoreItem> RestorePkiEntries(const std::vector<ArchiveEntry>& entries, const PkiRestoreOptions& opts,
                                              std::vector<std::string>* notes);

// True for what must stay private: *.key, PEM private keys, kubeconfigs with client-key-data.
bool HoldsPrivateKey(const ArchiveEntry& e);

}  // namespace etcdsafe::controlplane
