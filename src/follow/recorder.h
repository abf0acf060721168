// The event recorder behind `etcdsafe backup --follow` (and the agent's continuous job):
// a full backup at revision B, then every change of the whole key space from B+1 on,
// written to ONE repository as a chain of segments (follow/chain.h), so a restore can
// reach any revision or time (follow/replay.h).
//
// Contract:
//  - Start: resumes the newest chain when it belongs to the newest snapshot backup, is not
//    ended, has no problem, and etcd still has its next revision; a newest snapshot backup
//    without segments, younger than full_every, is reused the same way. Otherwise (or when
//    etcd compacted past it: a GAP) a new full backup starts a new chain; a gap ends the old
//    chain with an event-less last segment saying so ("end": "gap: ...") and is counted.
//  - Recording: events are grouped by revision (sub-revision order kept) into the open
//    segment; a segment is sealed when its first record is segment_max_age old or it holds
//    segment_max_bytes, so at most ~segment_max_age of writes is only in memory (it is
//    sealed early by the recent time a store takes, so that it is STORED by then). Idle: a
//    progress request every segment_max_age; a progress answer equal to the last recorded
//    revision becomes a 'P' record, and an event-less segment carrying it is stored at
//    most every `heartbeat` (so an idle cluster costs one small object per heartbeat).
//    Leases: a lease first seen on an event is looked up at once (LeaseTimeToLive: its
//    granted TTL); LeaseLeases every lease_poll finds leases granted without keys and
//    leases gone. HashKV of the last recorded revision every hash_every.
//  - Uploads run on their own thread in seal order (compress, encrypt, store; retried
//    with backoff). Sealed segments waiting for upload are held in memory up to
//    max_memory_bytes, then spilled to a file under spill_dir up to max_spill_bytes; past
//    that the chain ENDS (the watch stops, what was recorded is still uploaded, the loss of
//    continuity is logged and counted as a gap) and a new full backup starts a new chain
//    once uploads work again: memory never grows without limit.
//  - A broken watch (endpoint down, leader lost) reconnects, trying the other endpoints
//    first, and resumes at the last recorded revision + 1: nothing lost, nothing twice.
//  - Every full_every (or full_every_events events), a new full backup is taken beside the
//    recording (its own connection); the old chain is recorded up to the new base's
//    revision, ended ("end": "rebase: <id>"), and the new chain continues from there.
//  - One recorder per repository: a "follow" lock (backup/lock.h) held for the whole run;
//    a second recorder is refused (kLocked). Backups and prunes may run meanwhile.
//  - Stop (should_stop() true): the open segment is sealed and everything queued is stored
//    (bounded by stop_timeout), then Run returns normally. A kill -9 loses only what was
//    not stored: the next run resumes from the repository (the watch replays the rest from
//    etcd's history, unless compacted: then a gap, as above).
//  - Compaction (follow/compact.h): every compact_every (0: never) a thread of its own,
//    with its own connection to the repository and the compact lock (skipped while another
//    compaction or a prune holds theirs), merges the small segments of every chain of the
//    repository (this one's included, but never its newest compact_keep_last segments nor
//    objects younger than compact_min_age) into segments of up to compact_target_bytes.
//    Its failures are logged, never fatal to the recording.
//  - Encryption needs a raw key (a passphrase costs an scrypt per object): kInvalidArgument.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "client/etcd_client.h"
#include "pipeline/compress.h"
#include "pipeline/keys.h"
#include "store/store.h"

namespace etcdsafe::follow {

struct FollowOptions {
  std::string repo_url;
  store::StoreOptions store_options;
  client::ClientConfig client;
  pipeline::Compression compression = pipeline::Compression::kZstd;
  int compression_level = 0;
  std::optional<pipeline::KeySpec> key;
  std::string name_prefix = "etcd-snapshot";
  std::chrono::milliseconds segment_max_age{1000};
  uint64_t segment_max_bytes = 8u << 20;
  std::chrono::milliseconds heartbeat{10000};
  std::chrono::milliseconds hash_every{300000};
  std::chrono::milliseconds full_every{24 * 3600 * 1000};
  uint64_t full_every_events = 10000000;  // 0: never by volume
  std::chrono::milliseconds lease_poll{5000};
  uint64_t max_memory_bytes = 24u << 20;
  uint64_t max_spill_bytes = uint64_t{1} << 30;
  std::string spill_dir;  // "": $TMPDIR, else /tmp
  std::chrono::milliseconds stop_timeout{30000};
  std::chrono::milliseconds compact_every{600000};  // 0: never
  std::chrono::milliseconds compact_min_age{3600000};
  uint64_t compact_target_bytes = uint64_t{64} << 20;
  size_t compact_keep_last = 16;
  std::function<bool()> should_stop;
  // One line per event ("chain X started at revision B", "segment N stored", "gap: ...").
  std::function<void(const std::string&)> log;
};

struct FollowStatus {
  std::string chain;                 // current chain (base backup id)
  int64_t base_revision = 0;
  int64_t recorded_revision = 0;     // last revision received from etcd
  int64_t stored_revision = 0;       // last revision whose segment is stored
  int64_t stored_time_ms = 0;        // when that segment was stored
  uint64_t segments_stored = 0, events_recorded = 0, bytes_stored = 0;
  uint64_t gaps = 0, chains_started = 0, upload_failures = 0, reconnects = 0;
  uint64_t pending_bytes = 0;        // sealed, not yet stored (memory + spill)
  uint64_t merged_written = 0, segments_replaced = 0;  // by the compaction thread
  std::string last_error;
};

class Recorder {
 public:
  explicit Recorder(FollowOptions options);
  ~Recorder();
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  // Runs until should_stop() (returns normally) or a fatal error (throws: repository
  // locked or unusable, bad options). etcd being down is not fatal: it is retried.
  void Run();
  FollowStatus status() const;  // thread-safe

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace etcdsafe::follow
