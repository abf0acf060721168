#include "controlplane/pki_backup.h"

#include <openssl/crypto.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>

#include "backup/layout.h"
#include "base/checksum.h"
#include "base/file.h"
#include "pipeline/encrypt.h"
#include "pipeline/hash.h"

namespace etcdsafe::controlplane {
namespace {

std::string HostName() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return host;
}

void Wipe(std::vector<ArchiveEntry>& entries) {
  for (auto& e : entries) OPENSSL_cleanse(e.data.data(), e.data.size());
}

}  // namespace

bool PkiBackupReport::all_ok() const {
  for (const auto& r : repos) {
    if (!r.ok) return false;
  }
  return !repos.empty();
}

std::string DefaultPkiPrefix() {
  std::string out = "pki-";
  for (char ch : HostName()) {
    char c = (ch >= 'A' && ch <= 'Z') ? static_cast<char>(ch - 'A' + 'a') : ch;
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    out.push_back(ok ? c : '-');
    if (out.size() >= 64) break;
  }
  if (out == "pki-") out = "pki-host";
  return out;
}

PkiBackupReport RunPkiBackup(const PkiBackupOptions& opts, std::chrono::system_clock::time_point now) {
  if (opts.repos.empty()) throw Error(ErrorCode::kInvalidArgument, "--repo is required");
  if (!opts.key && !opts.allow_unencrypted) {
    throw Error(ErrorCode::kInvalidArgument,
                "a pki backup holds private keys: give --encryption-key-file, --encryption-key-env or "
                "--passphrase-file (or --allow-unencrypted to store them in the clear)");
  }
  PkiBackupReport report;
  if (opts.key && !opts.key->warning.empty()) report.notes.push_back(opts.key->warning);
  const std::string prefix = opts.name_prefix.empty() ? DefaultPkiPrefix() : opts.name_prefix;
  if (!backup::IsBackupId(prefix + "-20000101-000000-r0")) {
    throw Error(ErrorCode::kInvalidArgument, "name prefix \"" + backup::EscapeForTerminal(prefix) +
                                                 "\" is not [a-z0-9][a-z0-9._-]* of at most 64 characters");
  }

  // 1. Before anything is written: the tree, its consistency, the archive.
  const std::string kfs = opts.paths.Fs(opts.paths.kubernetes_dir);
  const int64_t now_unix = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  PkiReport check = CheckPki(kfs, 0, now_unix);
  if (!check.mismatches.empty()) {
    if (!opts.force) {
      throw PkiInconsistentError("refusing a pki archive whose keys do not match their certificates (" +
                                 backup::EscapeForTerminal(check.mismatches.front()) +
                                 (check.mismatches.size() > 1 ? "; " + std::to_string(check.mismatches.size() - 1) + " more" : "") +
                                 "); nothing was written (--force archives it anyway)");
    }
    for (const auto& m : check.mismatches) report.notes.push_back("archived despite --force: " + m);
  }
  std::vector<ArchiveEntry> entries = CollectPkiEntries(opts.paths, &report.notes);
  report.files = entries.size();
  std::string tar = WriteTar(entries);
  Wipe(entries);
  {
    // The archive must read back under the rules a restore applies to a hostile one: what
    // the reader would refuse fails here, before anything is written.
    std::vector<ArchiveEntry> back = ReadTar(tar, "the pki archive just built (nothing was written)");
    Wipe(back);
  }
  const Sha256Digest tar_sha = Sha256Of(AsBytes(tar));

  backup::Manifest m;
  m.kind = "pki";
  m.time_unix = now_unix;
  m.compression = std::string(pipeline::CompressionName(opts.compression));
  m.compression_level = opts.compression_level;
  m.encryption = opts.key ? "aes-256-gcm-chunked" : "none";
  m.tool_version = backup::kToolVersion;
  m.revision = 0;
  m.total_keys = entries.size();
  m.db_size = tar.size();
  m.db_sha256 = HexBytes(tar_sha);
  std::string source = HostName() + ":" + opts.paths.kubernetes_dir;
  if (backup::EscapeForTerminal(source) == source && source.size() <= 1024) m.source_endpoint = source;
  const std::string ext = *backup::DataExtension(m.compression, m.encryption, backup::BackupKind::kPki);
  const std::string stem = prefix + "-" + backup::FormatUtc(m.time_unix, "%Y%m%d-%H%M%S");

  // 2. Each repository on its own: lock, marker, intent record, data, sidecar, manifest.
  for (const auto& url : opts.repos) {
    report.repos.push_back(backup::RepoOutcome{url, false, "", ErrorCode::kInternal});
    backup::RepoOutcome& outcome = report.repos.back();
    try {
      std::unique_ptr<backup::Repository> repo = backup::OpenRepository(url, opts.store_options);
      std::unique_ptr<backup::RepositoryLock> lock = repo->Lock("backup", &report.notes);
      repo->EnsureMarker();
      const std::string data_object = repo->FreshStem(stem) + ext;
      repo->WritePending(data_object, "pki backup");
      backup::Uncommitted uncommitted(*repo, data_object);
      std::unique_ptr<Sink> object = repo->store().Create(data_object);
      pipeline::HashSink stored(*object);
      pipeline::HeaderTap tap(stored);
      std::unique_ptr<pipeline::EncryptSink> encrypt;
      Sink* after_compress = &stored;
      backup::Manifest mine = m;
      if (opts.key) {
        encrypt = pipeline::NewEncryptSink(*opts.key, tap);
        after_compress = encrypt.get();
        mine.key_id = encrypt->key_id();
      }
      std::unique_ptr<Sink> compress = pipeline::NewCompressSink(opts.compression, opts.compression_level, *after_compress);
      compress->Write(reinterpret_cast<const uint8_t*>(tar.data()), tar.size());
      compress->Close();  // through encryption and hashing: commits the data object
      mine.stored_size = stored.bytes();
      mine.stored_sha256 = HexBytes(stored.digest());
      mine.data_object = data_object;
      mine.id = data_object.substr(0, data_object.size() - ext.size()) + "-r0";
      if (opts.key) {
        pipeline::MasterKey mac_key = pipeline::ArchiveMasterKey(*opts.key, tap.header());
        mine.mac = backup::kMacPrefix + pipeline::MacHex(mac_key, backup::kManifestMacPurpose, backup::ManifestMacInput(mine));
        OPENSSL_cleanse(mac_key.data(), mac_key.size());
      }
      repo->WriteSidecar(data_object, mine.stored_sha256);
      {
        CommitSection section;
        lock->CheckHeld();
        repo->WriteManifest(mine);
        uncommitted.Committed();
      }
      try {
        repo->RemovePending(data_object);
      } catch (const Error& e) {
        report.notes.push_back(repo->Describe() + ": intent record left behind (prune removes it): " + e.what());
      }
      outcome.ok = true;
      report.manifest = mine;
    } catch (const Error& e) {
      outcome.error = e.what();
      outcome.code = e.code();
    }
  }
  OPENSSL_cleanse(tar.data(), tar.size());
  bool any = false;
  for (const auto& r : report.repos) any = any || r.ok;
  if (!any) {
    const backup::RepoOutcome& first = report.repos.front();
    throw Error(first.code, first.repo + ": " + first.error);
  }
  return report;
}

std::vector<ArchiveEntry> ReadPkiBackup(backup::Repository& repo, const std::string& id_or_latest,
                                        const std::optional<pipeline::KeySpec>& key, const backup::ReadOptions& read,
                                        backup::Manifest* manifest, std::vector<std::string>* notes) {
  std::vector<std::string> skipped;
  backup::Manifest m = repo.Find(id_or_latest, &skipped, backup::BackupKind::kPki);
  if (notes != nullptr) {
    for (const auto& s : skipped) notes->push_back("skipped invalid manifest " + s);
  }
  std::string tar;
  backup::ReadBackupData(
      repo, m, key, [&](const uint8_t* p, size_t n) { tar.append(reinterpret_cast<const char*>(p), n); }, read);
  std::vector<ArchiveEntry> entries = ReadTar(tar, repo.Describe() + " backup " + m.id);
  OPENSSL_cleanse(tar.data(), tar.size());
  if (entries.size() != m.total_keys) {
    throw Error(ErrorCode::kDataLoss, "backup " + m.id + ": the archive holds " + std::to_string(entries.size()) +
                                          " entries, the manifest says " + std::to_string(m.total_keys));
  }
  if (manifest != nullptr) *manifest = m;
  return entries;
}

PkiReport CheckPkiEntries(const std::vector<ArchiveEntry>& entries, int warn_days, int64_t now_unix) {
  LockedTemp scratch(TempDirOr(""), "etcdsafe-pki-check-", "", LockedTemp::Kind::kDirectory, 0700);
  std::vector<ArchiveEntry> kube;
  for (const auto& e : entries) {
    if (e.path == "kubernetes" || e.path.rfind("kubernetes/", 0) == 0) kube.push_back(e);
  }
  PkiRestoreOptions o;
  o.kubernetes_dir = scratch.path() + "/kubernetes";
  std::vector<std::string> notes;
  RestorePkiEntries(kube, o, &notes);
  Wipe(kube);
  PkiReport r = CheckPki(o.kubernetes_dir, warn_days, now_unix);
  r.dir = "kubernetes/ of the backup";
  return r;
}

}  // namespace etcdsafe::controlplane
