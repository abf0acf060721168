#include "backup/repo_ops.h"

#include <vector>

#include "base/file.h"
#include "bolt/stream_inspect.h"
#include "pipeline/encrypt.h"
#include "pipeline/hash.h"

namespace etcdsafe::backup {
namespace {

constexpr size_t kChunk = 1 << 20;

std::optional<pipeline::KeySpec> KeyFor(const Manifest& m, const std::optional<pipeline::KeySpec>& key) {
  if (m.encryption == "none") return std::nullopt;
  if (m.encryption != "aes-256-gcm-chunked") {
    throw Error(ErrorCode::kUnsupported, "backup " + m.id + ": unknown encryption " + m.encryption);
  }
  if (!key) {
    throw Error(ErrorCode::kInvalidArgument, "backup " + m.id + " is encrypted (key id " + m.key_id +
                                                 "): give --encryption-key-file, --encryption-key-env or --passphrase-file");
  }
  return key;
}

// The read side of the pipeline for one backup: stored bytes (hashed) → decrypt →
// decompress → db bytes (hashed), handed to `consume` chunk by chunk. Checks both
// hashes and sizes against the manifest at the end.
void ReadBackup(Repository& repo, const Manifest& m, const std::optional<pipeline::KeySpec>& key,
                const std::function<void(const uint8_t*, size_t)>& consume, const ProgressFn& progress) {
  std::optional<pipeline::KeySpec> k = KeyFor(m, key);
  std::unique_ptr<Source> object = repo.store().Open(m.data_object);
  pipeline::HashSource stored(*object);
  std::unique_ptr<Source> decrypted;
  Source* compressed = &stored;
  if (k) {
    decrypted = pipeline::NewDecryptSource(*k, stored);
    compressed = decrypted.get();
  }
  std::unique_ptr<Source> db = pipeline::NewDecompressSource(pipeline::ParseCompression(m.compression), *compressed);
  pipeline::HashSource db_hash(*db);
  std::vector<uint8_t> buf(kChunk);
  for (;;) {
    size_t n = db_hash.Read(buf.data(), buf.size());
    if (n == 0) break;
    consume(buf.data(), n);
    if (progress) progress(db_hash.bytes());
  }
  const std::string what = repo.Describe() + "/" + m.data_object;
  if (stored.bytes() != m.stored_size || HexBytes(stored.digest()) != m.stored_sha256) {
    throw Error(ErrorCode::kDataLoss, what + ": stored object does not match the manifest (" +
                                          std::to_string(stored.bytes()) + " bytes, sha256 " +
                                          HexBytes(stored.digest()) + "; manifest says " +
                                          std::to_string(m.stored_size) + " bytes, " + m.stored_sha256 + ")");
  }
  if (db_hash.bytes() != m.db_size || HexBytes(db_hash.digest()) != m.db_sha256) {
    throw Error(ErrorCode::kDataLoss, what + ": restored db does not match the manifest (sha256 " +
                                          HexBytes(db_hash.digest()) + ", manifest says " + m.db_sha256 + ")");
  }
}

}  // namespace

snapshot::RestoreResult RestoreFromRepository(Repository& repo, const std::string& id_or_latest,
                                              const snapshot::RestoreOptions& opts,
                                              const std::optional<pipeline::KeySpec>& key,
                                              const ProgressFn& progress) {
  Manifest m = repo.Find(id_or_latest);
  (void)KeyFor(m, key);  // fail on a missing key before creating anything
  return snapshot::RestoreFromDb(opts, m.db_size, [&](const std::string& db_path) {
    File out = File::Create(db_path, 0600);
    ReadBackup(repo, m, key, [&](const uint8_t* p, size_t n) { out.WriteAll(p, n); }, progress);
    out.Sync();
    out.Close();
  });
}

std::vector<VerifyOutcome> VerifyBackups(Repository& repo, const std::optional<std::string>& id,
                                         const std::optional<pipeline::KeySpec>& key, const ProgressFn& progress) {
  std::vector<VerifyOutcome> out;
  std::vector<std::string> damaged;
  std::vector<Manifest> manifests;
  if (id) {
    manifests.push_back(repo.Find(*id));
  } else {
    manifests = repo.ListBackups(&damaged);
    if (manifests.empty() && damaged.empty()) {
      // Verifying nothing must not look like success to a monitoring job.
      throw Error(ErrorCode::kNotFound, repo.Describe() + ": no backups to verify");
    }
  }
  for (const auto& d : damaged) {
    VerifyOutcome o;
    o.manifest.id = d.substr(0, d.find(':'));
    o.problem = d;
    out.push_back(o);
  }
  for (const auto& m : manifests) {
    VerifyOutcome o;
    o.manifest = m;
    try {
      bolt::StreamInspector inspector(m.id);
      ReadBackup(repo, m, key, [&](const uint8_t* p, size_t n) { inspector.Write(p, n); }, progress);
      bolt::InspectResult r = inspector.Finish();
      if (!r.problems.empty()) {
        throw Error(ErrorCode::kDataLoss, "integrity check failed: " + r.problems.front());
      }
      if (r.status.hash != m.status_hash || r.status.revision != m.revision ||
          static_cast<uint64_t>(r.status.total_key) != m.total_keys) {
        throw Error(ErrorCode::kDataLoss, "status numbers differ from the manifest");
      }
      o.ok = true;
    } catch (const Error& e) {
      o.problem = e.what();
    }
    out.push_back(o);
  }
  return out;
}

PruneReport Prune(Repository& repo, const catalog::RetentionPolicy& policy, bool dry_run,
                  std::chrono::system_clock::time_point now) {
  catalog::ValidatePolicy(policy);
  PruneReport report;
  std::unique_ptr<RepositoryLock> lock = repo.Lock("prune", &report.notes);
  std::vector<Manifest> backups = repo.ListBackups();
  std::vector<catalog::BackupRef> refs;
  for (const auto& m : backups) {
    refs.push_back({m.id, std::chrono::system_clock::time_point(std::chrono::seconds(m.time_unix))});
  }
  report.decisions = catalog::ApplyPolicy(refs, policy, now);
  // Orphans first: they are invisible already, and removing them frees space.
  for (const auto& name : repo.Orphans()) {
    if (!dry_run) repo.store().Remove(name);
    report.orphans_removed.push_back(name);
  }
  if (dry_run) return report;
  for (const auto& d : report.decisions) {
    if (d.keep) continue;
    for (const auto& m : backups) {
      if (m.id == d.backup.id) repo.RemoveBackup(m);
    }
  }
  return report;
}

}  // namespace etcdsafe::backup
