#include "backup/repo_ops.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "base/checksum.h"
#include "base/direct_writer.h"
#include "base/file.h"
#include "bolt/stream_inspect.h"
#include "pipeline/encrypt.h"
#include "pipeline/hash.h"
#include "snapshot/save.h"

namespace etcdsafe::backup {
namespace {

constexpr size_t kChunk = 1 << 20;
// Decoded db bytes between ReadBackup's two threads.
constexpr size_t kReadAhead = 8 << 20;
constexpr size_t kSidecarLimit = 4 << 10;

std::optional<pipeline::KeySpec> KeyFor(const Manifest& m, const std::optional<pipeline::KeySpec>& key) {
  if (m.encryption == "none") return std::nullopt;
  if (!key) {
    throw Error(ErrorCode::kInvalidArgument, "backup " + m.id + " is encrypted (key id " + m.key_id +
                                                 "): give --encryption-key-file, --encryption-key-env or --passphrase-file");
  }
  return key;
}

// Passes at most `limit` bytes of `in`; one byte more is kDataLoss `message`: a hostile
// object (or one that decompresses to far more than the manifest says) is stopped at the
// manifest's size, not at a full disk.
class LimitSource : public Source {
 public:
  LimitSource(Source& in, uint64_t limit, std::string message)
      : in_(in), limit_(limit), message_(std::move(message)) {}
  size_t Read(uint8_t* buf, size_t n) override {
    if (got_ == limit_) {
      uint8_t extra = 0;
      if (in_.Read(&extra, 1) > 0) throw Error(ErrorCode::kDataLoss, message_);
      return 0;
    }
    size_t r = in_.Read(buf, static_cast<size_t>(std::min<uint64_t>(n, limit_ - got_)));
    got_ += r;
    return r;
  }

 private:
  Source& in_;
  uint64_t limit_, got_ = 0;
  std::string message_;
};

std::string What(Repository& repo, const Manifest& m) { return repo.Describe() + "/" + m.data_object; }

// The data object must exist with the manifest's size before anything is read.
void CheckStoredSize(Repository& repo, const Manifest& m) {
  std::optional<store::ObjectInfo> info = repo.store().Stat(m.data_object);
  if (!info) throw Error(ErrorCode::kDataLoss, What(repo, m) + ": data object is missing (backup " + m.id + ")");
  if (info->size != m.stored_size) {
    throw Error(ErrorCode::kDataLoss, What(repo, m) + ": stored object is " + std::to_string(info->size) +
                                          " bytes, the manifest says " + std::to_string(m.stored_size));
  }
}

// Authenticates an encrypted backup's manifest with the key (manifest.h): its MAC is
// under the archive's master key, whose derivation needs the data object's header.
void CheckManifestMac(Repository& repo, const Manifest& m, const pipeline::KeySpec& key, const ReadOptions& read) {
  if (m.encryption == "none") return;
  if (m.mac.empty()) {
    if (read.allow_unauthenticated_manifest) return;
    throw Error(ErrorCode::kUnauthenticated,
                "backup " + m.id + ": the manifest carries no MAC (format 1, written by etcdsafe 0.1), so a forged "
                "one cannot be told apart; pass --allow-unauthenticated-manifest if you trust this repository");
  }
  std::unique_ptr<Source> object = repo.store().Open(m.data_object);
  uint8_t header[pipeline::kArchiveHeaderSize];
  if (ReadFull(*object, header, sizeof header) != sizeof header) {
    throw Error(ErrorCode::kDataLoss, What(repo, m) + ": truncated: no archive header");
  }
  pipeline::MasterKey master = pipeline::ArchiveMasterKey(key, Bytes(header, sizeof header));
  const std::string want = kMacPrefix + pipeline::MacHex(master, kManifestMacPurpose, ManifestMacInput(m));
  OPENSSL_cleanse(master.data(), master.size());
  if (want.size() != m.mac.size() || CRYPTO_memcmp(want.data(), m.mac.data(), want.size()) != 0) {
    throw Error(ErrorCode::kUnauthenticated, "backup " + m.id +
                                                 ": manifest authentication failed: it was altered or forged "
                                                 "(its MAC does not match under this key); refusing to use it");
  }
}

// The stored object, read at most to the manifest's stored_size and hashed; Check()
// compares size and sha256 with the manifest once it was read to the end.
class StoredObject {
 public:
  StoredObject(Repository& repo, const Manifest& m)
      : m_(m),
        what_(What(repo, m)),
        object_(repo.store().Open(m.data_object)),
        bounded_(*object_, m.stored_size,
                 what_ + ": stored object is larger than the manifest's stored_size (" +
                     std::to_string(m.stored_size) + " bytes): stopped reading"),
        hash_(bounded_) {}
  Source& source() { return hash_; }
  const std::string& what() const { return what_; }
  void Check() {
    if (hash_.bytes() != m_.stored_size || HexBytes(hash_.digest()) != m_.stored_sha256) {
      throw Error(ErrorCode::kDataLoss, what_ + ": stored object does not match the manifest (" +
                                            std::to_string(hash_.bytes()) + " bytes, sha256 " +
                                            HexBytes(hash_.digest()) + "; manifest says " +
                                            std::to_string(m_.stored_size) + " bytes, " + m_.stored_sha256 + ")");
    }
  }

 private:
  const Manifest& m_;
  std::string what_;
  std::unique_ptr<Source> object_;
  LimitSource bounded_;
  pipeline::HashSource hash_;
};

// The read side of the pipeline for one backup: stored bytes (bounded by stored_size,
// hashed) → decrypt → decompress → db bytes (bounded by db_size, hashed unless
// !hash_db), handed to `consume` chunk by chunk. Checks sizes and the hashes against the
// manifest at the end. A caller passing hash_db = false proves the db's content itself
// (restore: see PrepareRepoDb).
void ReadBackup(Repository& repo, const Manifest& m, const std::optional<pipeline::KeySpec>& key,
                const std::function<void(const uint8_t*, size_t)>& consume, const ProgressFn& progress,
                bool hash_db = true) {
  std::optional<pipeline::KeySpec> k = KeyFor(m, key);
  StoredObject stored(repo, m);
  std::unique_ptr<Source> decrypted;
  Source* compressed = &stored.source();
  if (k) {
    decrypted = pipeline::NewDecryptSource(*k, stored.source());
    compressed = decrypted.get();
  }
  std::unique_ptr<Source> db = pipeline::NewDecompressSource(pipeline::ParseCompression(m.compression), *compressed);
  LimitSource bounded_db(*db, m.db_size,
                         stored.what() + ": decodes to more than the manifest's db_size (" +
                             std::to_string(m.db_size) + " bytes): stopped");
  // Two threads (snapshot::PumpStream): this one reads, decrypts and decompresses; the
  // other hashes the db and hands it to `consume` (a restore's bbolt check and O_DIRECT
  // writer), so decompression and sha256 (each ~1 CPU second per GB) run side by side.
  // At most kReadAhead bytes of decoded db wait between them.
  Sha256 sha;
  uint64_t db_bytes = 0;
  snapshot::PumpStream(
      [&](const snapshot::BlobSink& sink) {
        std::vector<uint8_t> buf(kChunk);
        while (size_t n = bounded_db.Read(buf.data(), buf.size())) sink(buf.data(), n);
      },
      {snapshot::StreamConsumer{[&](const uint8_t* p, size_t n) {
                                  if (hash_db) sha.Update(p, n);
                                  db_bytes += n;
                                  consume(p, n);
                                  if (progress) progress(db_bytes);
                                },
                                {}}},
      kReadAhead);
  stored.Check();
  if (!hash_db) {
    if (db_bytes != m.db_size) {
      throw Error(ErrorCode::kDataLoss, stored.what() + ": restored db does not match the manifest (" +
                                            std::to_string(db_bytes) + " bytes; manifest says " +
                                            std::to_string(m.db_size) + " bytes)");
    }
    return;
  }
  const std::string digest = HexBytes(sha.Finish());
  if (db_bytes != m.db_size || digest != m.db_sha256) {
    throw Error(ErrorCode::kDataLoss, stored.what() + ": restored db does not match the manifest (" +
                                          std::to_string(db_bytes) + " bytes, sha256 " + digest +
                                          "; manifest says " +
                                          std::to_string(m.db_size) + " bytes, " + m.db_sha256 + ")");
  }
}

// A PKI backup's tar, in memory (bounded by the manifest's db_size, which the parser
// bounds by kMaxPkiArchiveBytes).
std::string ReadPkiTar(Repository& repo, const Manifest& m, const std::optional<pipeline::KeySpec>& key,
                       const ProgressFn& progress) {
  std::string tar;
  tar.reserve(static_cast<size_t>(std::min<uint64_t>(m.db_size, kMaxPkiArchiveBytes)));
  ReadBackup(repo, m, key, [&](const uint8_t* p, size_t n) { tar.append(reinterpret_cast<const char*>(p), n); },
             progress);
  return tar;
}

// The stored bytes alone (no key needed): size and sha256 against the manifest.
void CheckStoredBytes(Repository& repo, const Manifest& m) {
  StoredObject stored(repo, m);
  std::vector<uint8_t> buf(kChunk);
  while (stored.source().Read(buf.data(), buf.size()) > 0) {
  }
  stored.Check();
}

void CheckSidecar(Repository& repo, const Manifest& m) {
  const std::string name = m.data_object + kSidecarSuffix;
  std::string body;
  try {
    body = repo.store().Get(name, kSidecarLimit);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kNotFound) throw Error(ErrorCode::kDataLoss, "sidecar " + name + " is missing");
    throw;
  }
  if (body != m.stored_sha256 + "  " + m.data_object + "\n") {
    throw Error(ErrorCode::kDataLoss, "sidecar " + name + " does not match the manifest (sha256sum -c would fail)");
  }
}

template <typename S>
bool SameStatus(const S& s, const Manifest& m) {
  return s.revision == m.revision && static_cast<uint64_t>(s.total_key) == m.total_keys && s.hash == m.status_hash;
}

// Restore checks the db with its new consistent_index, so its hash differs from the
// snapshot's: revision and key count are what it can compare.
bool SameContent(const snapshot::StatusNumbers& s, const Manifest& m) {
  return s.revision == m.revision && static_cast<uint64_t>(s.total_key) == m.total_keys;
}

}  // namespace

void ReadBackupData(Repository& repo, const Manifest& m, const std::optional<pipeline::KeySpec>& key,
                    const std::function<void(const uint8_t*, size_t)>& consume, const ReadOptions& read,
                    const ProgressFn& progress) {
  std::optional<pipeline::KeySpec> k = KeyFor(m, key);
  CheckStoredSize(repo, m);
  if (k) CheckManifestMac(repo, m, *k, read);
  ReadBackup(repo, m, key, consume, progress);
}

namespace {

// What RestoreFromRepository and RestoreAllFromRepository hand the snapshot engine: the
// writer of the db (download, decrypt, decompress, the stored object's sha256 and the
// decoded db's status hash against the manifest, writes, bbolt's check on the same bytes)
// and the check of the restored numbers against the manifest.
struct RepoDbSource {
  Manifest m;
  std::optional<bolt::InspectResult> inspected;
  snapshot::DbWriter write;
  snapshot::InputCheck check;
};

void PrepareRepoDb(Repository& repo, const std::string& id_or_latest, const std::optional<pipeline::KeySpec>& key,
                   const ProgressFn& progress, const ReadOptions& read, std::vector<std::string>* notes,
                   bool scratch, RepoDbSource& src) {
  std::vector<std::string> skipped;
  src.m = repo.Find(id_or_latest, &skipped);
  if (notes != nullptr) {
    for (const auto& s : skipped) notes->push_back("skipped invalid manifest " + s);
  }
  // Every check that needs no download comes before anything is created.
  std::optional<pipeline::KeySpec> k = KeyFor(src.m, key);
  CheckStoredSize(repo, src.m);
  if (k) CheckManifestMac(repo, src.m, *k, read);
  src.write = [&repo, &src, key, progress, scratch](const std::string& db_path) {
    const Manifest& m = src.m;
    // As `snapshot restore`: O_DIRECT writes from a second thread while the next chunk
    // is downloaded, decrypted and decompressed (see DirectWriter). bbolt's check and
    // the status numbers are computed on the same bytes as they go by, so the db is
    // not read back from the disk.
    DirectWriter out(db_path, 0600, scratch ? WriteMode::kScratch : WriteMode::kCached);
    bolt::StreamInspector inspector(db_path);
    // A db that is not bbolt fails the inspector early; the download's own checks
    // (size, sha256 against the manifest) come first, as they did for a read-back.
    std::exception_ptr inspect_error;
    uint8_t* buf = nullptr;
    size_t filled = 0;
    ReadBackup(
        repo, m, key,
        [&](const uint8_t* p, size_t n) {
          if (!inspect_error) {
            try {
              inspector.Write(p, n);
            } catch (const Error&) {
              inspect_error = std::current_exception();
            }
          }
          while (n > 0) {
            if (buf == nullptr) {
              buf = out.Buffer();
              filled = 0;
            }
            size_t take = std::min(n, DirectWriter::kChunkSize - filled);
            std::memcpy(buf + filled, p, take);
            filled += take;
            p += take;
            n -= take;
            if (filled == DirectWriter::kChunkSize) {
              out.Submit(filled);
              buf = nullptr;
            }
          }
        },
        progress, /*hash_db=*/false);
    if (buf != nullptr) out.Submit(filled);
    out.Finish();  // fsyncs
    if (inspect_error) std::rethrow_exception(inspect_error);
    src.inspected = inspector.Finish();
    // The decoded db is not hashed with sha256 (ReadBackup's hash_db = false): that was
    // the restore's longest thread, ~0.9 CPU-s per GB. What proves the db instead: the
    // stored object's size and sha256 against the manifest (checked by ReadBackup, as the
    // seeds' `sha256sum -c` of their .gz), AES-GCM's tag on every chunk of an encrypted
    // backup, zstd's content checksum (every frame `backup` writes carries one and the
    // decoder checks it), and here etcdctl's status hash of the decoded bytes (every key
    // and value of every bucket) with revision and key count against the manifest, which
    // is MAC-authenticated when encrypted. A db with bbolt problems is refused by the
    // restore that reads `inspected` next, naming them.
    if (src.inspected->problem_count == 0 && !SameStatus(src.inspected->status, m)) {
      throw Error(ErrorCode::kDataLoss,
                  "backup " + m.id + ": decoded db has revision " + std::to_string(src.inspected->status.revision) +
                      ", " + std::to_string(src.inspected->status.total_key) + " keys, hash " +
                      std::to_string(src.inspected->status.hash) + "; the manifest says revision " +
                      std::to_string(m.revision) + ", " + std::to_string(m.total_keys) + " keys, hash " +
                      std::to_string(m.status_hash) + ": nothing was restored");
    }
  };
  src.check = [&src](const snapshot::StatusNumbers& s) {
    const Manifest& m = src.m;
    // A manifest that lies about what it holds (a rolled-back object under a newer
    // manifest) is caught here when it is not authenticated.
    if (!SameContent(s, m)) {
      throw Error(ErrorCode::kDataLoss, "backup " + m.id + ": restored db has revision " + std::to_string(s.revision) +
                                            " and " + std::to_string(s.total_key) +
                                            " keys; the manifest says revision " + std::to_string(m.revision) +
                                            " and " + std::to_string(m.total_keys) + " keys: nothing was restored");
    }
  };
}

}  // namespace

snapshot::RestoreResult RestoreFromRepository(Repository& repo, const std::string& id_or_latest,
                                              const snapshot::RestoreOptions& opts,
                                              const std::optional<pipeline::KeySpec>& key,
                                              const ProgressFn& progress, const ReadOptions& read,
                                              std::vector<std::string>* notes) {
  RepoDbSource src;
  PrepareRepoDb(repo, id_or_latest, key, progress, read, notes, opts.scratch, src);
  return snapshot::RestoreFromDb(opts, src.m.db_size, src.write, {}, src.check, &src.inspected);
}

snapshot::RestoreAllResult RestoreAllFromRepository(Repository& repo, const std::string& id_or_latest,
                                                    const snapshot::RestoreAllOptions& opts,
                                                    const std::optional<pipeline::KeySpec>& key,
                                                    const ProgressFn& progress, const ReadOptions& read,
                                                    std::vector<std::string>* notes) {
  RepoDbSource src;
  PrepareRepoDb(repo, id_or_latest, key, progress, read, notes, opts.base.scratch, src);
  return snapshot::RestoreAllMembersFromDb(opts, src.m.db_size, src.write, {}, src.check, &src.inspected);
}

std::vector<VerifyOutcome> VerifyBackups(Repository& repo, const std::optional<std::string>& id,
                                         const std::optional<pipeline::KeySpec>& key, const ProgressFn& progress,
                                         const PkiArchiveCheck& pki_check) {
  std::vector<VerifyOutcome> out;
  std::vector<Manifest> manifests;
  if (id) {
    manifests.push_back(repo.Find(*id, nullptr, std::nullopt));
  } else {
    Repository::Scan scan = repo.ScanTop();
    manifests = std::move(scan.backups);
    if (manifests.empty() && scan.invalid.empty()) {
      // Verifying nothing must not look like success to a monitoring job.
      throw Error(ErrorCode::kNotFound, repo.Describe() + ": no backups to verify");
    }
    for (const auto& d : scan.invalid) {
      VerifyOutcome o;
      o.name = d.substr(0, d.find(": "));
      o.problem = d.substr(std::min(d.size(), o.name.size() + 2));
      out.push_back(o);
    }
  }
  for (const auto& m : manifests) {
    VerifyOutcome o;
    o.manifest = m;
    o.name = m.id + kManifestSuffix;
    try {
      CheckSidecar(repo, m);
      CheckStoredSize(repo, m);
      if (m.encryption != "none" && !key) {
        CheckStoredBytes(repo, m);
        o.state = VerifyOutcome::State::kKeyRequired;
        o.problem = "encrypted (key id " + m.key_id +
                    "): stored bytes and sidecar match the manifest; give the key to check the snapshot inside";
        out.push_back(o);
        continue;
      }
      if (key && m.encryption != "none") CheckManifestMac(repo, m, *key, ReadOptions{});
      if (m.Kind() == BackupKind::kPki) {
        const std::string tar = ReadPkiTar(repo, m, key, progress);
        if (pki_check) pki_check(m, tar);
        o.state = VerifyOutcome::State::kOk;
        out.push_back(o);
        continue;
      }
      bolt::StreamInspector inspector(m.id);
      ReadBackup(repo, m, key, [&](const uint8_t* p, size_t n) { inspector.Write(p, n); }, progress);
      bolt::InspectResult r = inspector.Finish();
      if (!r.problems.empty()) {
        throw Error(ErrorCode::kDataLoss, "integrity check failed: " + r.problems.front());
      }
      if (!SameStatus(r.status, m)) throw Error(ErrorCode::kDataLoss, "status numbers differ from the manifest");
      o.state = VerifyOutcome::State::kOk;
    } catch (const Error& e) {
      o.state = VerifyOutcome::State::kDamaged;
      o.problem = EscapeForTerminal(e.what());
    }
    out.push_back(o);
  }
  return out;
}

std::string DescribeBackupWithChain(const std::string& id, const ChainNames* chain) {
  if (chain == nullptr || chain->segments == 0) return "backup " + id;
  return "backup " + id + " (with " + std::to_string(chain->segments) + " segment" +
         (chain->segments == 1 ? "" : "s") +
         (chain->merged == 0 ? std::string() : " (" + std::to_string(chain->merged) + " merged)") + ", revisions " + std::to_string(chain->first_revision) + ".." +
         std::to_string(chain->last_revision) + ")";
}

PruneReport Prune(Repository& repo, const catalog::RetentionPolicy& policy, bool dry_run,
                  std::chrono::system_clock::time_point now) {
  catalog::ValidatePolicy(policy);
  repo.RequireMarker("prune");
  PruneReport report;
  std::unique_ptr<RepositoryLock> lock;
  if (!dry_run) {
    lock = repo.Lock("prune", &report.notes);
  } else {
    report.notes.push_back("dry run: no lock taken, nothing written or removed");
    for (const LockInfo& l : InspectLocks(repo.store())) {
      report.notes.push_back(std::string(l.stale ? "stale lock " : "lock held: ") + l.DisplayName() + " (" +
                             l.Describe() + (l.why.empty() ? "" : "; " + l.why) + ")" +
                             (l.stale ? " would be removed by a real run" : ": a real run would stop here (exit 11)"));
    }
  }

  // 1. Read and validate everything; refuse before removing anything.
  Repository::Scan scan = repo.ScanTop();
  if (!scan.invalid.empty()) {
    std::string list;
    for (size_t i = 0; i < scan.invalid.size() && i < 3; i++) list += (i ? "; " : "") + scan.invalid[i];
    throw Error(ErrorCode::kDataLoss, "refusing to prune " + repo.Describe() + ": " +
                                          std::to_string(scan.invalid.size()) +
                                          " invalid manifest(s), nothing was removed (inspect or move them away): " + list);
  }
  // Each kind is its own set: a PKI backup never uses up a snapshot's keep-last slot (or
  // is "the newest backup" in its place), and the other way round.
  for (BackupKind kind : {BackupKind::kSnapshot, BackupKind::kPki}) {
    std::vector<catalog::BackupRef> refs;
    for (const auto& m : scan.backups) {
      if (m.Kind() != kind) continue;
      refs.push_back({m.id, std::chrono::system_clock::time_point(std::chrono::seconds(m.time_unix))});
    }
    if (refs.empty()) continue;
    std::vector<catalog::Decision> d = catalog::ApplyPolicy(refs, policy, now);
    report.decisions.insert(report.decisions.end(), d.begin(), d.end());
  }
  // Newest first, as ApplyPolicy orders one set.
  std::stable_sort(report.decisions.begin(), report.decisions.end(),
                   [](const catalog::Decision& a, const catalog::Decision& b) {
                     return a.backup.time != b.backup.time ? a.backup.time > b.backup.time : a.backup.id < b.backup.id;
                   });

  // Chains of continuous backup, by their names: each segment belongs to the snapshot
  // backup its name continues.
  struct Segment {
    std::string name;
    ParsedName parsed;
    int64_t mtime = 0;
    std::string superseded_by;  // the merged segment of its chain that replaces it
  };
  std::map<std::string, const Manifest*> snapshots;
  for (const auto& m : scan.backups) {
    if (m.Kind() == BackupKind::kSnapshot) snapshots[m.id] = &m;
  }
  std::map<std::string, std::vector<Segment>> segments;  // by base id, highest seq first
  std::vector<std::pair<std::string, std::string>> orphans;  // name, base id
  for (const auto& o : scan.objects) {
    ParsedName p = ClassifyName(o.name);
    if (p.kind != NameKind::kSegment) continue;
    const std::string base = p.stem + "-r" + std::to_string(p.revision);
    if (!snapshots.count(base)) {
      orphans.push_back({o.name, base});
      continue;
    }
    segments[base].push_back({o.name, p, o.mtime_unix, ""});
    ChainNames& c = report.chains[base];
    if (p.seq_last > p.seq) c.merged++;
    c.first_revision = c.segments == 0 ? p.first_revision : std::min(c.first_revision, p.first_revision);
    c.last_revision = c.segments == 0 ? p.last_revision : std::max(c.last_revision, p.last_revision);
    c.segments++;
  }
  for (auto& [base, segs] : segments) {
    // Superseded segments, by names (as follow::ScanChains).
    std::vector<ParsedName> names;
    for (const auto& sg : segs) names.push_back(sg.parsed);
    const std::vector<std::optional<size_t>> by = SupersededSegments(names);
    for (size_t i = 0; i < segs.size(); i++) {
      if (by[i]) segs[i].superseded_by = segs[*by[i]].name;
    }
    // Removal order: the highest number first, the narrower first at one number (what a
    // merged segment replaces before it), so every prefix left is a whole chain.
    std::sort(segs.begin(), segs.end(), [](const Segment& a, const Segment& b) {
      if (a.parsed.seq != b.parsed.seq) return a.parsed.seq > b.parsed.seq;
      if (a.parsed.seq_last != b.parsed.seq_last) return a.parsed.seq_last < b.parsed.seq_last;
      return a.name > b.name;
    });
  }
  // A recorder may be extending a chain right now (its lock does not exclude ours): listed
  // after the objects, so a recorder whose segments or temporaries we saw is in it.
  std::vector<LockInfo> recorders;
  for (LockInfo& l : HeldLocks(repo.store(), lock ? lock->name() : "")) {
    if (LocksConflict(kFollowOperation, l)) recorders.push_back(std::move(l));
  }
  if (!recorders.empty() && !segments.empty()) {
    // Its chain is the one written last (its newest plain segment); ties: the newest base.
    std::string live;
    int64_t newest = -1;
    for (const auto& [base, segs] : segments) {
      int64_t t = 0;
      // Plain segments only: a merged one is written by a compaction, which may be working
      // on any chain, not by the recorder extending its own.
      for (const auto& sg : segs) {
        if (sg.parsed.seq_last == sg.parsed.seq) t = std::max(t, sg.mtime);
      }
      const bool later = !live.empty() && (snapshots[base]->time_unix > snapshots[live]->time_unix ||
                                           (snapshots[base]->time_unix == snapshots[live]->time_unix && base > live));
      if (t > newest || (t == newest && later)) {
        newest = t;
        live = base;
      }
    }
    for (auto& d : report.decisions) {
      if (d.backup.id != live || d.keep) continue;
      d.keep = true;
      d.reasons = {"chain being recorded (lock " + recorders.front().DisplayName() + " is held)"};
    }
  }

  // 2. The plan.
  std::set<std::string> present;
  std::map<std::string, ParsedName> parsed;
  for (const auto& o : scan.objects) {
    present.insert(o.name);
    parsed[o.name] = ClassifyName(o.name);
  }
  std::set<std::string> drop_ids;
  for (const auto& d : report.decisions) {
    if (!d.keep) drop_ids.insert(d.backup.id);
  }
  std::set<std::string> kept_names, committed_data, planned_names;
  for (const auto& m : scan.backups) {
    committed_data.insert(m.data_object);
    if (drop_ids.count(m.id)) continue;
    kept_names.insert(m.id + kManifestSuffix);
    kept_names.insert(m.data_object);
    kept_names.insert(m.data_object + kSidecarSuffix);
    if (auto it = segments.find(m.id); it != segments.end()) {
      for (const auto& sg : it->second) {
        if (sg.superseded_by.empty()) kept_names.insert(sg.name);
      }
    }
  }
  std::vector<std::pair<std::string, std::string>> plan;  // name, why
  auto add = [&](const std::string& name, const std::string& why) {
    if (present.count(name) && planned_names.insert(name).second) plan.push_back({name, why});
  };
  auto add_temps_of = [&](const std::string& stem, const std::string& why) {
    for (const auto& [name, p] : parsed) {
      if (p.kind == NameKind::kTemp && p.base_kind != NameKind::kSegment && p.stem == stem) add(name, why);
    }
  };
  for (const auto& m : scan.backups) {
    if (!drop_ids.count(m.id)) continue;
    auto chain = report.chains.find(m.id);
    const std::string why =
        DescribeBackupWithChain(m.id, chain == report.chains.end() ? nullptr : &chain->second) +
        ", not kept by the policy";
    // Its segments first, the highest number first: killed at any point, the base keeps a
    // shorter chain that is still whole, and no segment outlives its base.
    if (auto it = segments.find(m.id); it != segments.end()) {
      for (const auto& sg : it->second) add(sg.name, why);
    }
    add(m.id + kManifestSuffix, why);  // then the backup stops existing at once
    add(m.data_object, why);
    add(m.data_object + kSidecarSuffix, why);
  }
  // Kept chains lose only what a merged segment of theirs replaces.
  for (const auto& [base, segs] : segments) {
    if (drop_ids.count(base)) continue;
    for (const auto& sg : segs) {
      if (!sg.superseded_by.empty()) add(sg.name, "superseded by " + EscapeForTerminal(sg.superseded_by));
    }
  }
  for (const auto& [name, p] : parsed) {
    if (p.kind != NameKind::kPending) continue;
    const std::string data = p.stem + p.ext;
    if (committed_data.count(data)) {
      add(name, "intent record of committed backup data " + data);
      continue;
    }
    const std::string why = "left by an interrupted backup (intent record " + name + ")";
    add(data, why);
    add(data + kSidecarSuffix, why);
    add_temps_of(p.stem, why);
    add(name, why);  // last: until it goes, it still proves the rest is ours
  }
  for (const auto& [name, p] : parsed) {
    if (p.kind != NameKind::kTemp) continue;
    if (p.base_kind == NameKind::kSegment && !recorders.empty()) {
      if (!planned_names.count(name)) {
        report.left_alone.push_back(EscapeForTerminal(name) + "  (a segment's temporary: a recorder holds lock " +
                                    recorders.front().DisplayName() + " and may be writing it)");
      }
      continue;
    }
    add(name, "uncommitted temporary of a killed run");
  }
  for (const auto& [name, p] : parsed) {
    if ((p.kind == NameKind::kData || p.kind == NameKind::kSidecar) && !kept_names.count(name) &&
        !planned_names.count(name)) {
      report.left_alone.push_back(EscapeForTerminal(name) +
                                  "  (no manifest and no intent record: not provably etcdsafe's)");
    }
  }
  for (const auto& [name, base] : orphans) {
    report.left_alone.push_back(EscapeForTerminal(name) + "  (segment continuing backup " + EscapeForTerminal(base) +
                                ", which has no manifest: a segment without its base is never removed "
                                "automatically)");
  }
  // 3. The plan's check: nothing a kept backup references, nothing foreign.
  for (const auto& [name, why] : plan) {
    if (kept_names.count(name) || ClassifyName(name).kind == NameKind::kForeign ||
        ClassifyName(name).kind == NameKind::kMarker) {
      throw Error(ErrorCode::kInternal, "prune plan would remove " + name + " (" + why + "); refusing");
    }
  }
  // 4. Carry it out.
  if (dry_run) {
    for (const auto& [name, why] : plan) report.removed.push_back(name + "  (" + why + ")");
    return report;
  }
  if (!plan.empty()) lock->CheckHeld();
  for (const auto& [name, why] : plan) {
    CommitSection section;  // an interrupt waits for this removal, and none starts after it
    repo.store().Remove(name);
    report.removed.push_back(name + "  (" + why + ")");
  }
  // Uploads a killed backup started and never completed (S3 multipart): invisible but
  // billed. Only those of etcdsafe's names, started over a day ago (no backup runs that
  // long while holding the lock we hold).
  const int64_t day_ago =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count() - 24 * 3600;
  try {
    lock->CheckHeld();
    for (const auto& a : repo.store().AbortStaleUploads(day_ago, [](const std::string& name) {
           NameKind k = ClassifyName(name).kind;
           return k != NameKind::kForeign && k != NameKind::kTemp;
         })) {
      report.removed.push_back("incomplete upload of " + a + "  (started over a day ago by a run that is gone)");
    }
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kUnsupported) throw;
    report.notes.push_back(e.what() + std::string("; incomplete uploads of killed backups are not aborted here: "
                                                  "set a bucket lifecycle rule (AbortIncompleteMultipartUpload)"));
  }
  return report;
}

}  // namespace etcdsafe::backup
