#include "backup/backup.h"

#include <openssl/crypto.h>

#include <atomic>

#include "backup/layout.h"
#include "backup/repository.h"
#include "base/file.h"
#include "base/spill_fifo.h"
#include "bolt/stream_inspect.h"
#include "pipeline/encrypt.h"
#include "pipeline/hash.h"
#include "snapshot/save.h"
#include "snapshot/trailer.h"

namespace etcdsafe::backup {
namespace {

// The snapshot bytes received but not yet through both consumers (checks, store).
constexpr size_t kStreamQueueBytes = 8 << 20;

// Forwards every byte but the last 32 (etcd's sha256 trailer) to `next`: the repository
// stores the db, not the trailer, and the manifest carries the verified sha256 instead.
class HoldBackTrailer {
 public:
  explicit HoldBackTrailer(std::function<void(const uint8_t*, size_t)> next) : next_(std::move(next)) {}
  void Write(const uint8_t* p, size_t n) {
    if (n >= snapshot::kTrailerSize) {
      if (!tail_.empty()) next_(reinterpret_cast<const uint8_t*>(tail_.data()), tail_.size());
      next_(p, n - snapshot::kTrailerSize);
      tail_.assign(reinterpret_cast<const char*>(p + n - snapshot::kTrailerSize), snapshot::kTrailerSize);
      return;
    }
    tail_.append(reinterpret_cast<const char*>(p), n);
    if (tail_.size() > snapshot::kTrailerSize) {
      size_t extra = tail_.size() - snapshot::kTrailerSize;
      next_(reinterpret_cast<const uint8_t*>(tail_.data()), extra);
      tail_.erase(0, extra);
    }
  }

 private:
  std::function<void(const uint8_t*, size_t)> next_;
  std::string tail_;
};

// Writes to every live repository; a repository that fails is dropped (its object
// aborted) and recorded, the others go on. Throws only when none is left.
class FanoutSink : public Sink {
 public:
  struct Target {
    size_t index;  // into the report's repos
    std::unique_ptr<Sink> sink;
  };
  FanoutSink(std::vector<Target> targets, std::vector<RepoOutcome>& outcomes)
      : targets_(std::move(targets)), outcomes_(outcomes) {}

  void Write(const uint8_t* data, size_t n) override {
    ForEach([&](Sink& s) { s.Write(data, n); });
  }
  void Close() override {
    ForEach([](Sink& s) { s.Close(); });
  }
  std::vector<size_t> live() const {
    std::vector<size_t> out;
    for (const auto& t : targets_) out.push_back(t.index);
    return out;
  }

 private:
  template <typename Fn>
  void ForEach(Fn fn) {
    for (auto it = targets_.begin(); it != targets_.end();) {
      try {
        fn(*it->sink);
        ++it;
      } catch (const Error& e) {
        RepoOutcome& o = outcomes_[it->index];
        o.ok = false;
        o.error = e.what();
        o.code = e.code();
        it = targets_.erase(it);  // destroying the sink aborts the upload
      }
    }
    if (targets_.empty()) {
      // Report the first repository's error as the error of the whole backup.
      for (const auto& o : outcomes_) {
        if (!o.error.empty()) throw Error(o.code, o.repo + ": " + o.error);
      }
      throw Error(ErrorCode::kInternal, "no repository left");
    }
  }

  std::vector<Target> targets_;
  std::vector<RepoOutcome>& outcomes_;
};

// file:// repositories live on a local filesystem whose free space we can check first.
void CheckLocalFreeSpace(const std::string& url, uint64_t need) {
  const std::string scheme = "file://";
  if (url.rfind(scheme, 0) != 0) return;
  std::string path = url.substr(scheme.size());
  while (!path.empty() && !PathExists(path)) path = ParentDir(path);
  if (path.empty()) return;
  uint64_t free = FreeSpace(path);
  if (free < need) {
    throw Error(ErrorCode::kIo, "not enough free space for the backup in " + path + ": need up to " +
                                    std::to_string(need >> 20) + " MiB, have " + std::to_string(free >> 20) + " MiB");
  }
}

}  // namespace

bool BackupReport::all_ok() const {
  for (const auto& r : repos) {
    if (!r.ok) return false;
  }
  return !repos.empty();
}

bool BackupReport::any_ok() const {
  for (const auto& r : repos) {
    if (r.ok) return true;
  }
  return false;
}

std::unique_ptr<Repository> OpenRepository(const std::string& url, const store::StoreOptions& options,
                                           bool must_exist) {
  auto repo = std::make_unique<Repository>(store::OpenStore(url, options));
  const std::string scheme = "file://";
  if (must_exist && url.rfind(scheme, 0) == 0 && !IsDirectory(url.substr(scheme.size()))) {
    throw Error(ErrorCode::kNotFound, url + ": repository does not exist");
  }
  return repo;
}

BackupReport RunBackup(client::EtcdClient& client, const BackupOptions& opts, const ProgressFn& progress,
                       std::chrono::system_clock::time_point now) {
  if (opts.repos.empty()) throw Error(ErrorCode::kInvalidArgument, "no --repo given");
  if (!opts.repo_store_options.empty() && opts.repo_store_options.size() != opts.repos.size()) {
    throw Error(ErrorCode::kInvalidArgument, "one set of store options per repository expected");
  }
  BackupReport report;
  if (opts.key && !opts.key->warning.empty()) report.notes.push_back(opts.key->warning);

  // 1. The endpoint must be healthy before anything is written anywhere.
  client.Health();
  client::EtcdClient::Status status = client.EndpointStatus();

  Manifest m;
  m.time_unix = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  m.cluster_id = HexNoPad(status.cluster_id);
  m.member_id = HexNoPad(status.member_id);
  m.etcd_version = status.version;
  m.source_endpoint = client.endpoint();
  m.compression = std::string(pipeline::CompressionName(opts.compression));
  m.compression_level = opts.compression_level;
  m.encryption = opts.key ? "aes-256-gcm-chunked" : "none";
  m.tool_version = kToolVersion;
  const std::string ext = *DataExtension(m.compression, m.encryption);
  const std::string stem = opts.name_prefix + "-" + FormatUtc(m.time_unix, "%Y%m%d-%H%M%S");

  // 2. Open, lock and prepare every repository; a failing one is recorded, not fatal.
  struct Prepared {
    std::unique_ptr<Repository> repo;
    std::unique_ptr<RepositoryLock> lock;
    std::string data_object;
    std::unique_ptr<Uncommitted> uncommitted;
  };
  std::vector<Prepared> prepared(opts.repos.size());
  std::vector<FanoutSink::Target> targets;
  for (size_t i = 0; i < opts.repos.size(); i++) {
    report.repos.push_back(RepoOutcome{opts.repos[i], false, "", ErrorCode::kInternal});
    try {
      CheckLocalFreeSpace(opts.repos[i], static_cast<uint64_t>(std::max<int64_t>(status.db_size, 0)) + (64 << 20));
      Prepared& p = prepared[i];
      const store::StoreOptions& so = opts.repo_store_options.empty() ? opts.store_options : opts.repo_store_options.at(i);
      p.repo = OpenRepository(opts.repos[i], so);
      p.lock = p.repo->Lock("backup", &report.notes);
      p.repo->EnsureMarker();
      p.data_object = p.repo->FreshStem(stem) + ext;
      // The intent record first: whatever a kill leaves of this backup is provably ours.
      p.repo->WritePending(p.data_object, "backup");
      p.uncommitted = std::make_unique<Uncommitted>(*p.repo, p.data_object);
      targets.push_back({i, p.repo->store().Create(p.data_object)});
    } catch (const Error& e) {
      report.repos[i].error = e.what();
      report.repos[i].code = e.code();
      prepared[i] = Prepared{};
    }
  }
  if (targets.empty()) {
    const RepoOutcome& first = report.repos.front();
    throw Error(first.code, first.repo + ": " + first.error);
  }

  // 3. One pass: stream → (trailer check, status, consistency check) → compress →
  //    encrypt → hash of the stored bytes → every repository.
  FanoutSink fanout(std::move(targets), report.repos);
  pipeline::HashSink stored_hash(fanout);
  pipeline::HeaderTap header_tap(stored_hash);
  std::unique_ptr<pipeline::EncryptSink> encrypt;
  Sink* after_compress = &stored_hash;
  if (opts.key) {
    encrypt = pipeline::NewEncryptSink(*opts.key, header_tap);
    after_compress = encrypt.get();
    // From the sink: a passphrase's key id depends on this backup's scrypt salt.
    m.key_id = encrypt->key_id();
  }
  pipeline::CompressOptions copts;
  copts.level = opts.compression_level;
  // The store consumer below has a thread of its own: zstd compresses on it rather than on
  // a libzstd worker (same ratio; per GB ~0.3 s less CPU and ~13 MiB less peak RSS).
  copts.zstd_workers = 0;
  std::unique_ptr<Sink> compress = pipeline::NewCompressSink(opts.compression, copts, *after_compress);
  // Two consumers of the stream, each on its own thread, so the stream is the only
  // bottleneck: one checks (sha256 trailer, status numbers, consistency), the other
  // stores (compress → encrypt → hash → repositories). Finish() of the checks runs as soon
  // as the last byte is in, beside the store's last writes.
  snapshot::TrailerVerifier verifier;
  bolt::StreamInspector inspector("snapshot from " + client.endpoint());  // ignores the trailer itself
  snapshot::TrailerVerifier::Result v;
  bolt::InspectResult inspected;
  HoldBackTrailer db_bytes([&](const uint8_t* p, size_t n) { compress->Write(p, n); });
  // The stream on gRPC's probed window, never held up by the pipeline: what the pipeline
  // has no room for waits in a temp file (gRPC would buffer it in memory instead). Where
  // no temp file can be made, a small window bounds gRPC's buffers.
  SpillFifo spill(opts.spill_dir, opts.max_spill_bytes);
  const bool spill_usable = spill.Open();
  if (!spill_usable) {
    report.notes.push_back("the snapshot stream ran on a small window, slower (" + spill.error() +
                           "); point TMPDIR or --spill-dir at a writable directory");
  }
  snapshot::PumpStream(
      [&](const snapshot::BlobSink& sink) { client.Snapshot(sink, {.small_window = !spill_usable}); },
      {snapshot::StreamConsumer{[&](const uint8_t* p, size_t n) {
                                  verifier.Update(p, n);
                                  inspector.Write(p, n);
                                  if (progress) progress(verifier.bytes_seen());
                                },
                                [&] {
                                  v = verifier.Finish();
                                  // Nothing is committed unless the snapshot is exactly what etcd sent and sound.
                                  if (!v.has_trailer) {
                                    throw Error(ErrorCode::kDataLoss, "sha256 checksum not found [bytes: " +
                                                                          std::to_string(verifier.bytes_seen()) + "]");
                                  }
                                  if (!v.matches) {
                                    throw Error(ErrorCode::kDataLoss, "snapshot sha256 mismatch: server sent " +
                                                                          HexBytes(v.trailer) + ", received db hashes to " +
                                                                          HexBytes(v.computed));
                                  }
                                  inspected = inspector.Finish();
                                }},
       snapshot::StreamConsumer{[&](const uint8_t* p, size_t n) { db_bytes.Write(p, n); }, {}}},
      kStreamQueueBytes, spill_usable ? &spill : nullptr);
  if (spill_usable && !spill.error().empty()) {
    report.notes.push_back("the snapshot stream waited in memory while the pipeline lagged (" + spill.error() + ")");
  }

  // 4. The checks passed (or PumpStream threw).
  if (std::string why = inspector.spill_error(); !why.empty()) {
    report.notes.push_back("the snapshot's page summaries were kept in memory (" + why +
                           "); point TMPDIR at a writable directory to bound memory");
  }
  if (!inspected.problems.empty()) {
    throw Error(ErrorCode::kDataLoss, "snapshot failed the integrity check (" + std::to_string(inspected.problem_count) +
                                          " problems), first: " + inspected.problems.front());
  }
  compress->Close();  // flushes through encryption and hashing, then commits every data object

  m.revision = inspected.status.revision;
  m.total_keys = static_cast<uint64_t>(inspected.status.total_key);
  m.status_hash = inspected.status.hash;
  m.db_size = v.db_size;
  m.db_sha256 = HexBytes(v.computed);
  m.stored_size = stored_hash.bytes();
  m.stored_sha256 = HexBytes(stored_hash.digest());
  m.id = stem + "-r" + std::to_string(m.revision);
  std::optional<pipeline::MasterKey> mac_key;
  if (opts.key) mac_key = pipeline::ArchiveMasterKey(*opts.key, header_tap.header());

  // 5. Sidecar, then the manifest: the commit point, per repository.
  for (size_t i : fanout.live()) {
    Prepared& p = prepared[i];
    try {
      Manifest mine = m;
      mine.data_object = p.data_object;
      const std::string data_stem = p.data_object.substr(0, p.data_object.size() - ext.size());
      mine.id = data_stem + "-r" + std::to_string(m.revision);
      if (mac_key) mine.mac = kMacPrefix + pipeline::MacHex(*mac_key, kManifestMacPurpose, ManifestMacInput(mine));
      p.repo->WriteSidecar(p.data_object, m.stored_sha256);
      {
        CommitSection section;  // an interrupt cleans either before the manifest or not at all
        p.lock->CheckHeld();    // a writer whose lock was taken away must not commit
        p.repo->WriteManifest(mine);
        p.uncommitted->Committed();
      }
      try {
        p.repo->RemovePending(p.data_object);
      } catch (const Error& e) {
        report.notes.push_back(p.repo->Describe() + ": intent record left behind (prune removes it): " + e.what());
      }
      report.repos[i].ok = true;
      report.manifest = mine;
    } catch (const Error& e) {
      report.repos[i].error = e.what();
      report.repos[i].code = e.code();
    }
  }
  if (mac_key) OPENSSL_cleanse(mac_key->data(), mac_key->size());
  if (!report.any_ok()) {
    const RepoOutcome& first = report.repos.front();
    throw Error(first.code, first.repo + ": " + first.error);
  }
  return report;
}

}  // namespace etcdsafe::backup
