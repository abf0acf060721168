// The backup manifest: one small JSON object per backup, written LAST, after the data
// object and its .sha256 sidecar are stored. Its existence is the commit point: a data
// object without a manifest is not a backup (list/restore ignore it; prune deletes it
// only when its intent record proves a killed backup wrote it, see layout.h).
//
// A manifest read back from a repository is hostile input. It is valid only if
//  - it is one JSON object of known keys, each once, with values of the right type and
//    range (strings printable and bounded, hashes 64 lowercase hex, sizes <= 2^48);
//  - its id is its file name without ".manifest.json", the id's revision is `revision`,
//    the id's UTC date-time is `time_unix`, and `data_object` is the id's stem plus the
//    extension its compression and encryption imply (ValidateManifestName);
//  - "kind" is absent (an etcd snapshot backup, as every manifest before PKI backups),
//    "snapshot" or "pki"; a PKI backup (`pki backup`: a tar of certificates, keys,
//    kubeconfigs and manifests) has revision 0 and status_hash 0, its db_size/db_sha256
//    are the tar's (at most kMaxPkiArchiveBytes), total_keys its number of entries, and
//    its data object a ".tar..." extension (layout.h);
//  - encrypted (format 2): `mac` is HMAC-SHA256 under a key derived from the archive's
//    master key over the manifest's canonical JSON without `mac` (ManifestMacInput), so
//    a forged or altered manifest is refused by whoever holds the key. Format 1 (etcdsafe
//    0.1) manifests carry no MAC.
#pragma once

#include <cstdint>
#include <string>

#include "backup/layout.h"

namespace etcdsafe::backup {

inline constexpr int kManifestFormat = 2;
// The largest tar a PKI backup may hold (and a reader will decode): a kubernetes dir is
// a few hundred KiB.
inline constexpr uint64_t kMaxPkiArchiveBytes = uint64_t{64} << 20;

struct Manifest {
  int format = kManifestFormat;
  // "" (absent: a snapshot backup), "snapshot" or "pki". Serialised, and so covered by
  // the MAC, only when not empty: manifests written before kinds existed keep their MAC.
  std::string kind;
  std::string id;           // "etcd-snapshot-20261122-020000-r105106": sorts by time
  int64_t time_unix = 0;    // when the snapshot was taken (UTC seconds)
  std::string data_object;  // "etcd-snapshot-20261122-020000.db.zst.enc", same repository
  // Where it came from.
  std::string cluster_id, member_id;  // hex, as etcdctl prints them
  std::string etcd_version, source_endpoint;
  // What it holds: identical to `etcdctl snapshot status` of the snapshot.
  int64_t revision = 0;
  uint64_t total_keys = 0;
  uint32_t status_hash = 0;
  uint64_t db_size = 0;       // bytes of the bbolt db (the snapshot without its trailer)
  std::string db_sha256;      // of the db bytes (what etcd's trailer said, verified)
  uint64_t stored_size = 0;   // bytes of the data object
  std::string stored_sha256;  // of the data object, also in the .sha256 sidecar
  // How it is stored.
  std::string compression = "none";  // none | zstd | gzip
  int compression_level = 0;
  std::string encryption = "none";   // none | aes-256-gcm-chunked
  std::string key_id;                // public id of the key; never the key
  std::string tool_version;
  std::string mac;  // "hmac-sha256:<hex>" (format 2, encrypted); empty otherwise

  BackupKind Kind() const { return kind == "pki" ? BackupKind::kPki : BackupKind::kSnapshot; }
};

std::string ManifestToJson(const Manifest& m);
// Untrusted input: anything but a valid manifest (above) is kDataLoss naming `what`; a
// newer format is kUnsupported.
Manifest ManifestFromJson(const std::string& json, const std::string& what);
// Checks the manifest against the name of the object it was read from (see above).
void ValidateManifestName(const Manifest& m, const std::string& object_name, const std::string& what);
// The bytes the MAC covers: ManifestToJson of `m` with `mac` cleared.
std::string ManifestMacInput(Manifest m);
inline constexpr char kManifestMacPurpose[] = "manifest";
inline constexpr char kMacPrefix[] = "hmac-sha256:";

// strftime of a UTC time; the default gives "2026-11-22T02:00:00Z".
std::string FormatUtc(int64_t unix_seconds, const char* format = "%Y-%m-%dT%H:%M:%SZ");

}  // namespace etcdsafe::backup
