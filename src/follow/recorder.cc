#include "follow/recorder.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <map>
#include <set>
#include <thread>

#include "backup/backup.h"
#include "backup/repository.h"
#include "base/checksum.h"
#include "base/error.h"
#include "base/file.h"
#include "follow/chain.h"
#include "follow/compact.h"
#include "follow/segment.h"

namespace etcdsafe::follow {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

int64_t NowMs() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string Ms(milliseconds d) { return std::to_string(d.count()) + " ms"; }

// A sealed segment waiting for its upload: in memory, or spilled to a local file.
struct Sealed {
  SegmentHeader header;
  Clock::time_point sealed_at{};
  std::string plain;       // empty when spilled
  std::string spill_path;  // set when spilled
  uint64_t size = 0;
};

}  // namespace

struct Recorder::Impl {
  FollowOptions o;
  std::unique_ptr<backup::Repository> repo;
  std::unique_ptr<backup::RepositoryLock> lock;

  mutable std::mutex status_mu;
  FollowStatus st;

  // The chain being recorded (main thread only).
  bool active = false;
  std::string chain;
  int64_t base_revision = 0;
  int64_t last_rev = 0;
  uint64_t seq = 1;
  std::string prev_sha;
  std::unique_ptr<SegmentBuilder> builder;
  Clock::time_point builder_started{};
  Clock::time_point last_store{};
  Clock::time_point chain_started{};
  uint64_t chain_events = 0;
  std::set<int64_t> known_leases;
  std::vector<LeaseRecord> pending_gone;  // waiting for their revision to be recorded
  int64_t hashed_rev = 0;                 // the last revision a HashKV was recorded at

  // Upload queue.
  std::mutex q_mu;
  std::condition_variable q_cv;
  std::deque<Sealed> queue;
  uint64_t mem_bytes = 0, spill_bytes = 0;
  bool uploader_stop = false;
  std::string fatal;  // set by the uploader: the lock is lost
  std::thread uploader;
  uint64_t spill_counter = 0;
  // Recent time from seal to stored (EWMA, ms): a segment is sealed that much before it is
  // segment_max_age old, so that it is STORED by then.
  std::atomic<int64_t> store_ms{20};

  // Rebase (a new full backup beside the recording).
  std::mutex rb_mu;
  std::thread rebase_thread;
  bool rebase_running = false;
  std::optional<backup::Manifest> rebase_done;
  std::string rebase_error;

  // Compaction (its own thread, repository connection and lock).
  std::thread compact_thread;
  std::mutex cp_mu;
  std::condition_variable cp_cv;
  bool cp_stop = false;
  std::map<std::string, uint64_t> known_sizes;  // compaction thread only

  explicit Impl(FollowOptions opts) : o(std::move(opts)) {}

  bool Stopping() const { return o.should_stop && o.should_stop(); }
  void Log(const std::string& s) {
    if (o.log) o.log(s);
  }
  template <typename F>
  void Status(F f) {
    std::lock_guard<std::mutex> g(status_mu);
    f(st);
  }
  // Sleeps up to d, waking early when stopping.
  void Nap(milliseconds d) {
    auto end = Clock::now() + d;
    while (Clock::now() < end && !Stopping()) std::this_thread::sleep_for(std::min(milliseconds(50), d));
  }

  // ---- uploads ----
  void Enqueue(Sealed s) {
    std::unique_lock<std::mutex> g(q_mu);
    if (mem_bytes + s.size > o.max_memory_bytes && !queue.empty()) {
      std::string path = TempDirOr(o.spill_dir) + "/.etcdsafe-follow-" + std::to_string(getpid()) + "-" +
                         std::to_string(++spill_counter);
      int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd >= 0) {
        File f(fd, path);
        f.WriteAll(AsBytes(s.plain));
        s.spill_path = path;
        std::string().swap(s.plain);
        spill_bytes += s.size;
      } else {
        mem_bytes += s.size;  // no spill possible: memory, and Overflowing() ends the chain
      }
    } else {
      mem_bytes += s.size;
    }
    queue.push_back(std::move(s));
    Status([&](FollowStatus& x) { x.pending_bytes = mem_bytes + spill_bytes; });
    q_cv.notify_all();
  }

  bool Overflowing() {
    std::lock_guard<std::mutex> g(q_mu);
    return spill_bytes > o.max_spill_bytes || mem_bytes > o.max_memory_bytes + o.max_spill_bytes;
  }
  bool QueueEmpty() {
    std::lock_guard<std::mutex> g(q_mu);
    return queue.empty();
  }
  std::string Fatal() {
    std::lock_guard<std::mutex> g(q_mu);
    return fatal;
  }

  void UploadLoop() {
    SegmentWriteOptions w;
    w.compression = o.compression;
    w.compression_level = o.compression_level;
    w.key = o.key;
    milliseconds backoff(200);
    for (;;) {
      Sealed* s = nullptr;
      {
        std::unique_lock<std::mutex> g(q_mu);
        q_cv.wait(g, [&] { return uploader_stop || !queue.empty(); });
        if (queue.empty() || !fatal.empty() || (uploader_stop && !drain_on_stop)) return;
        s = &queue.front();  // only this thread pops; push_back keeps front valid
      }
      try {
        std::string plain = s->plain;
        if (!s->spill_path.empty()) plain = ReadSmallFile(s->spill_path, kMaxSegmentBytes);
        lock->CheckHeld();
        StoredSegment out;
        {
          CommitSection section;
          out = WriteSegment(*repo, s->header, plain, w);
        }
        backoff = milliseconds(200);
        const SegmentHeader h = s->header;
        const int64_t took = std::chrono::duration_cast<milliseconds>(Clock::now() - s->sealed_at).count();
        store_ms = (store_ms.load() * 7 + took) / 8;
        {
          std::lock_guard<std::mutex> g(q_mu);
          if (!s->spill_path.empty()) {
            ::unlink(s->spill_path.c_str());
            spill_bytes -= s->size;
          } else {
            mem_bytes -= s->size;
          }
          queue.pop_front();
          q_cv.notify_all();
        }
        Status([&](FollowStatus& x) {
          x.stored_revision = h.last_revision;
          x.stored_time_ms = NowMs();
          x.segments_stored++;
          x.bytes_stored += out.stored_size;
          x.pending_bytes = mem_bytes + spill_bytes;
        });
      } catch (const Error& e) {
        if (e.code() == ErrorCode::kLocked) {
          std::lock_guard<std::mutex> g(q_mu);
          fatal = e.what();
          q_cv.notify_all();
          return;
        }
        Status([&](FollowStatus& x) {
          x.upload_failures++;
          x.last_error = e.what();
        });
        Log(std::string("segment upload failed (retrying in ") + Ms(backoff) + "): " + e.what());
        std::unique_lock<std::mutex> g(q_mu);
        q_cv.wait_for(g, backoff, [&] { return uploader_stop && !drain_on_stop; });
        if (uploader_stop && !drain_on_stop) return;
        backoff = std::min(backoff * 2, milliseconds(10000));
      }
    }
  }
  bool drain_on_stop = true;

  // ---- compaction ----
  bool CompactStopped() {
    std::lock_guard<std::mutex> g(cp_mu);
    return cp_stop;
  }

  void CompactLoop() {
    for (;;) {
      {
        std::unique_lock<std::mutex> g(cp_mu);
        if (cp_cv.wait_for(g, o.compact_every, [&] { return cp_stop; })) return;
      }
      CompactOptions co;
      co.target_bytes = o.compact_target_bytes;
      co.min_age = std::chrono::duration_cast<std::chrono::seconds>(o.compact_min_age);
      co.keep_last = o.compact_keep_last;
      co.compression = o.compression;
      co.compression_level = o.compression_level;
      co.known_sizes = &known_sizes;
      co.should_stop = [this] { return Stopping() || CompactStopped(); };
      CompactReport rep;
      try {
        std::unique_ptr<backup::Repository> r = backup::OpenRepository(o.repo_url, o.store_options);
        CompactRepository(*r, o.key, co, &rep);
      } catch (const Error& e) {
        Log(std::string("compaction ") + (e.code() == ErrorCode::kLocked ? "skipped" : "failed") + ": " + e.what());
      }
      for (const auto& a : rep.actions) {
        if (a.rfind("wrote ", 0) == 0) Log("compaction " + a);
      }
      for (const auto& n : rep.notes) Log("compaction: " + n);
      if (rep.merged_written > 0) {
        Status([&](FollowStatus& x) {
          x.merged_written += rep.merged_written;
          x.segments_replaced += rep.segments_replaced;
        });
      }
    }
  }

  void StopCompaction() {
    {
      std::lock_guard<std::mutex> g(cp_mu);
      cp_stop = true;
      cp_cv.notify_all();
    }
    if (compact_thread.joinable()) compact_thread.join();
  }

  // ---- the open segment ----
  SegmentBuilder& B() {
    if (!builder) {
      builder = std::make_unique<SegmentBuilder>(chain, seq, last_rev, prev_sha);
      builder_started = Clock::now();
    }
    return *builder;
  }

  void Seal(const std::string& end = "") {
    if (!builder && end.empty()) return;
    SegmentBuilder& b = B();
    Sealed s;
    s.plain = b.Finish(end);
    s.header = b.header();
    s.size = s.plain.size();
    s.sealed_at = Clock::now();
    prev_sha = HexBytes(Sha256Of(AsBytes(s.plain)));
    seq++;
    builder.reset();
    last_store = Clock::now();
    Enqueue(std::move(s));
  }

  // When the open segment must be sealed to be stored within segment_max_age of its first
  // record: the expected time to store it is taken off (at most half the age).
  Clock::time_point SealDue() const {
    milliseconds margin(std::min<int64_t>(2 * store_ms.load() + 30, o.segment_max_age.count() / 2));
    return builder_started + o.segment_max_age - margin;
  }

  void MaybeSeal() {
    if (!builder) return;
    const auto age = Clock::now() - builder_started;
    if (builder->header().revisions > 0) {
      if (Clock::now() >= SealDue() || builder->size() >= o.segment_max_bytes) Seal();
    } else if (Clock::now() - last_store >= o.heartbeat && age >= o.segment_max_age) {
      Seal();
    }
  }

  // ---- chains ----
  void BeginChain(const backup::Manifest& base, const std::string& how) {
    active = true;
    chain = base.id;
    base_revision = ChainStart(base);
    last_rev = base_revision;
    seq = 1;
    prev_sha = base.stored_sha256;
    builder.reset();
    chain_started = Clock::now();
    last_store = Clock::now();
    chain_events = 0;
    known_leases.clear();
    pending_gone.clear();
    Status([&](FollowStatus& x) {
      x.chain = chain;
      x.base_revision = base_revision;
      x.recorded_revision = last_rev;
      x.chains_started++;
    });
    Log("chain " + chain + " " + how + " at revision " + std::to_string(base_revision));
  }

  void EndChain(const std::string& end) {
    if (!active) return;
    Seal(end);
    active = false;
    Log("chain " + chain + " ended at revision " + std::to_string(last_rev) + ": " + end);
  }

  backup::BackupOptions BackupOpts() const {
    backup::BackupOptions b;
    b.repos = {o.repo_url};
    b.store_options = o.store_options;
    b.compression = o.compression;
    b.compression_level = o.compression_level;
    b.key = o.key;
    b.name_prefix = o.name_prefix;
    b.spill_dir = o.spill_dir;
    return b;
  }

  backup::Manifest FullBackup(client::EtcdClient& c) {
    backup::BackupReport r = backup::RunBackup(c, BackupOpts());
    if (!r.all_ok()) throw Error(r.repos[0].code, "full backup: " + r.repos[0].error);
    Log("full backup " + r.manifest.id + " stored");
    return r.manifest;
  }

  // Resumes what the repository holds, or starts a new chain on a new full backup.
  void StartChain(client::EtcdClient& c) {
    ChainScan scan = ScanChains(*repo);
    std::vector<backup::Manifest> bases = repo->ListBackups();
    if (!bases.empty()) {
      const backup::Manifest& newest = bases.back();
      const Chain* ch = nullptr;
      for (const auto& x : scan.chains) {
        if (x.base.id == newest.id) ch = &x;
      }
      if (ch && ch->problems.empty() && !ch->segments.empty()) {
        try {
          ReadSegmentResult last = ReadSegment(*repo, ch->segments.back(), o.key);
          if (last.header.end.empty()) {
            BeginChain(newest, "resumed");
            last_rev = last.header.last_revision;
            seq = last.header.seq_last + 1;  // the last may be a merged segment
            prev_sha = last.link_sha256;
            Status([&](FollowStatus& x) { x.recorded_revision = last_rev; x.stored_revision = last_rev; });
            Log("resuming after revision " + std::to_string(last_rev) + " (segment " + std::to_string(seq - 1) + ")");
            return;
          }
        } catch (const Error& e) {
          Log(std::string("not resuming chain ") + newest.id + ": " + e.what());
        }
      } else if (!ch) {
        auto age = std::chrono::seconds(std::time(nullptr) - newest.time_unix);
        if (age < o.full_every) {
          BeginChain(newest, "continues backup");
          return;
        }
      }
    }
    BeginChain(FullBackup(c), "started on a new full backup");
  }

  // ---- leases ----
  void LearnLease(client::EtcdClient& c, int64_t id) {
    if (known_leases.count(id)) return;
    known_leases.insert(id);
    client::EtcdClient::LeaseTtl t = c.LeaseTimeToLive(id);
    // Already gone (revoked or expired before we asked): nothing true to record. Its keys'
    // deletions follow as events; a restore to a revision in between gives the lease the
    // replay's default TTL and says so (replay.h).
    if (t.ttl < 0) return;
    LeaseRecord l;
    l.id = id;
    l.ttl = t.granted_ttl;
    l.revision = last_rev;
    l.time_ms = NowMs();
    B().AddLease(l);
  }

  void PollLeases(client::EtcdClient& c) {
    client::EtcdClient::ResponseHeader h;
    std::vector<int64_t> ids = c.LeaseLeases(&h);
    std::set<int64_t> live(ids.begin(), ids.end());
    for (int64_t id : ids) LearnLease(c, id);
    for (auto it = known_leases.begin(); it != known_leases.end();) {
      if (!live.count(*it)) {
        LeaseRecord l;
        l.gone = true;
        l.id = *it;
        l.revision = h.revision;
        pending_gone.push_back(l);
        it = known_leases.erase(it);
      } else {
        ++it;
      }
    }
    FlushGone();
  }

  void FlushGone() {
    for (auto it = pending_gone.begin(); it != pending_gone.end();) {
      if (it->revision <= last_rev) {
        it->time_ms = NowMs();
        B().AddLease(*it);
        it = pending_gone.erase(it);
      } else {
        ++it;
      }
    }
  }

  // ---- recording ----
  // Returns when stopping or when the chain switched (rebase, gap); throws kUnavailable
  // when the watch breaks.
  void RecordLoop(client::EtcdClient& c, client::WatchStream& w) {
    Clock::time_point last_event = Clock::now(), last_progress_req{}, last_lease_poll{}, last_hash = Clock::now();
    while (!Stopping()) {
      if (std::string f = Fatal(); !f.empty()) throw Error(ErrorCode::kLocked, f);
      if (Overflowing()) {
        Status([&](FollowStatus& x) { x.gaps++; });
        EndChain("overflow: uploads fell behind by more than " + std::to_string(o.max_spill_bytes) + " bytes");
        return;
      }
      milliseconds wait(50);
      if (builder && builder->header().revisions > 0) {
        auto left = std::chrono::duration_cast<milliseconds>(SealDue() - Clock::now());
        wait = std::clamp(left, milliseconds(0), milliseconds(50));
      }
      std::optional<client::WatchResponse> r = w.Next(wait);
      const auto now = Clock::now();
      if (r) {
        if (r->canceled) {
          if (r->compact_revision > 0) {
            Status([&](FollowStatus& x) { x.gaps++; });
            EndChain("gap: etcd compacted to revision " + std::to_string(r->compact_revision) + ", revision " +
                     std::to_string(last_rev + 1) + " is gone");
            return;
          }
          throw Error(ErrorCode::kUnavailable, "watch canceled: " + r->cancel_reason);
        }
        size_t i = 0;
        while (i < r->events.size()) {
          const int64_t rev = r->events[i].kv.mod_revision;
          Revision rv;
          rv.revision = rev;
          rv.time_ms = NowMs();
          std::vector<int64_t> leases;
          for (; i < r->events.size() && r->events[i].kv.mod_revision == rev; i++) {
            const auto& e = r->events[i];
            Event ev;
            ev.is_delete = e.is_delete;
            if (e.is_delete) {
              ev.data = e.kv.key;
            } else {
              KeyValue kv{e.kv.key, e.kv.value, e.kv.create_revision, e.kv.mod_revision, e.kv.version, e.kv.lease};
              ev.data = EncodeKeyValue(kv);
              if (e.kv.lease != 0) leases.push_back(e.kv.lease);
            }
            rv.events.push_back(std::move(ev));
          }
          if (rev <= last_rev) continue;  // already recorded (cannot happen with a fresh watch)
          if (rev != last_rev + 1) {
            throw Error(ErrorCode::kDataLoss, "watch skipped from revision " + std::to_string(last_rev) + " to " +
                                                  std::to_string(rev));
          }
          B().AddRevision(rv);
          last_rev = rev;
          chain_events += rv.events.size();
          for (int64_t id : leases) LearnLease(c, id);
          Status([&](FollowStatus& x) {
            x.recorded_revision = last_rev;
            x.events_recorded += rv.events.size();
          });
          FlushGone();
          if (builder && builder->size() >= o.segment_max_bytes) Seal();
        }
        if (!r->events.empty()) last_event = now;
        if (r->IsProgressNotify() && r->header.revision == last_rev) {
          ProgressRecord p{last_rev, NowMs()};
          if (builder || Clock::now() - last_store >= o.heartbeat) B().AddProgress(p);
        }
      }
      if (now - last_event >= o.segment_max_age && now - last_progress_req >= o.segment_max_age) {
        w.RequestProgress();
        last_progress_req = now;
      }
      if (now - last_lease_poll >= o.lease_poll) {
        PollLeases(c);
        last_lease_poll = now;
      }
      if (now - last_hash >= o.hash_every && last_rev > base_revision && last_rev != hashed_rev) {
        client::EtcdClient::HashKVResult h = c.HashKV(last_rev);
        hashed_rev = last_rev;
        B().AddHash(HashRecord{last_rev, h.hash, h.compact_revision, NowMs()});
        last_hash = now;
      }
      MaybeSeal();
      if (RebaseSwitch()) return;
    }
  }

  // ---- rebase ----
  void MaybeStartRebase() {
    std::lock_guard<std::mutex> g(rb_mu);
    if (rebase_running || rebase_done) return;
    if (Clock::now() - chain_started < o.full_every &&
        (o.full_every_events == 0 || chain_events < o.full_every_events)) {
      return;
    }
    if (rebase_thread.joinable()) rebase_thread.join();
    rebase_running = true;
    rebase_thread = std::thread([this] {
      std::optional<backup::Manifest> m;
      std::string err;
      try {
        auto c = client::EtcdClient::Connect(o.client);
        m = FullBackup(*c);
      } catch (const Error& e) {
        err = e.what();
      }
      std::lock_guard<std::mutex> g2(rb_mu);
      rebase_running = false;
      rebase_done = m;
      rebase_error = err;
    });
  }

  // When the new base is stored and recorded up to: end the chain, begin the next.
  bool RebaseSwitch() {
    MaybeStartRebase();
    std::optional<backup::Manifest> m;
    {
      std::lock_guard<std::mutex> g(rb_mu);
      if (!rebase_error.empty()) {
        Log("new full backup failed (the chain goes on): " + rebase_error);
        rebase_error.clear();
        chain_started = Clock::now() - o.full_every + std::chrono::minutes(1);  // retry in a minute
        return false;
      }
      if (!rebase_done || last_rev < rebase_done->revision) return false;
      m = rebase_done;
      rebase_done.reset();
    }
    EndChain("rebase: " + m->id);
    BeginChain(*m, "started on a new full backup");
    return true;  // the watch restarts at the new base's revision + 1
  }

  std::unique_ptr<client::EtcdClient> Connect(int attempt) {
    client::ClientConfig cfg = o.client;
    if (!cfg.endpoints.empty()) {
      std::rotate(cfg.endpoints.begin(), cfg.endpoints.begin() + (attempt % cfg.endpoints.size()), cfg.endpoints.end());
    }
    return client::EtcdClient::Connect(cfg);
  }

  void Run() {
    if (o.key && o.key->kind == pipeline::KeySpec::Kind::kPassphrase) {
      throw Error(ErrorCode::kInvalidArgument,
                  "--follow encrypts every segment: use a key file (--encryption-key-file), not a passphrase "
                  "(each object would cost a 0.4 s scrypt)");
    }
    if (o.segment_max_age.count() <= 0 || o.segment_max_bytes == 0) {
      throw Error(ErrorCode::kInvalidArgument, "segment limits must be positive");
    }
    repo = backup::OpenRepository(o.repo_url, o.store_options);
    lock = repo->Lock("follow");
    repo->EnsureMarker();
    uploader = std::thread([this] { UploadLoop(); });
    if (o.compact_every.count() > 0) compact_thread = std::thread([this] { CompactLoop(); });
    int attempt = 0;
    milliseconds backoff(500);
    std::exception_ptr fatal_error;
    while (!Stopping()) {
      try {
        if (std::string f = Fatal(); !f.empty()) throw Error(ErrorCode::kLocked, f);
        auto c = Connect(attempt);
        if (!active) {
          if (!QueueEmpty()) {  // a new chain only once the old one is stored
            Nap(milliseconds(200));
            continue;
          }
          StartChain(*c);
        }
        client::WatchOptions wo;
        wo.key = "";
        wo.range_end = std::string(1, '\0');
        wo.start_revision = last_rev + 1;
        wo.max_buffered_bytes = 8u << 20;  // the recorder keeps up; a lagging one lets etcd hold the rest
        auto w = c->Watch(wo);
        Log("watching from revision " + std::to_string(last_rev + 1) + " on " + c->endpoint());
        backoff = milliseconds(500);
        RecordLoop(*c, *w);
        if (Stopping() && active && last_rev > base_revision && last_rev != hashed_rev) {
          // A last proof at the last revision recorded: a restore to it is checked too.
          try {
            client::EtcdClient::HashKVResult h = c->HashKV(last_rev);
            hashed_rev = last_rev;
            B().AddHash(HashRecord{last_rev, h.hash, h.compact_revision, NowMs()});
          } catch (const Error& e) {
            Log(std::string("no HashKV at stop: ") + e.what());
          }
        }
      } catch (const Error& e) {
        if (e.code() == ErrorCode::kLocked || e.code() == ErrorCode::kInvalidArgument ||
            e.code() == ErrorCode::kPermissionDenied || e.code() == ErrorCode::kUnauthenticated) {
          if (e.code() != ErrorCode::kLocked || !Fatal().empty()) {
            fatal_error = std::current_exception();
            break;
          }
        }
        if (e.code() == ErrorCode::kDataLoss && active) {
          Status([&](FollowStatus& x) { x.gaps++; });
          EndChain(std::string("gap: ") + e.what());
        }
        Seal();  // what was received is stored now, not a second later
        attempt++;
        Status([&](FollowStatus& x) {
          x.reconnects++;
          x.last_error = e.what();
        });
        Log(std::string("etcd: ") + e.what() + " (retrying in " + Ms(backoff) + ")");
        Nap(backoff);
        backoff = std::min(backoff * 2, milliseconds(5000));
      }
    }
    // Stop: seal, store what is queued (bounded), then return.
    if (active && !fatal_error) Seal();
    {
      std::unique_lock<std::mutex> g(q_mu);
      q_cv.wait_for(g, o.stop_timeout, [&] { return queue.empty() || !fatal.empty(); });
      if (!queue.empty()) Log(std::to_string(queue.size()) + " segments not stored at stop");
      drain_on_stop = false;
      uploader_stop = true;
      q_cv.notify_all();
    }
    uploader.join();
    StopCompaction();
    if (rebase_thread.joinable()) rebase_thread.join();
    {
      std::lock_guard<std::mutex> g(q_mu);
      for (auto& s : queue) {
        if (!s.spill_path.empty()) ::unlink(s.spill_path.c_str());
      }
    }
    lock.reset();
    if (fatal_error) std::rethrow_exception(fatal_error);
  }
};

Recorder::Recorder(FollowOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Recorder::~Recorder() {
  if (impl_->uploader.joinable()) {
    {
      std::lock_guard<std::mutex> g(impl_->q_mu);
      impl_->uploader_stop = true;
      impl_->drain_on_stop = false;
      impl_->q_cv.notify_all();
    }
    impl_->uploader.join();
  }
  impl_->StopCompaction();
  if (impl_->rebase_thread.joinable()) impl_->rebase_thread.join();
}
void Recorder::Run() { impl_->Run(); }
FollowStatus Recorder::status() const {
  std::lock_guard<std::mutex> g(impl_->status_mu);
  return impl_->st;
}

}  // namespace etcdsafe::follow
