// The agent's jobs, one attempt each: a backup to every repository (then retention), a
// drill of one backup, a prune, and a scan of a repository's backups. They call the same
// workflows as the CLI (backup::RunBackup, backup::Prune, ops::DrillRepositoryBackup), so a
// backup run by the agent writes exactly what `etcdsafe backup` writes. No scheduling, no
// retries, no metrics here (agent.h does that); nothing throws except for a programming error:
// every failure comes back as a result with a one-line error and a reason label.
//
// Failure reasons (the `reason` label of etcdsafe_*_failures_total): unreachable, unhealthy,
// locked, storage, integrity, auth, interrupted, config, other.
//
// The continuous job (ContinuousJob below) is the exception to "one attempt each": it is a
// thread that runs follow::Recorder for the agent's whole life and retries it itself.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/config.h"
#include "agent/event_log.h"
#include "backup/backup.h"
#include "client/etcd_client.h"
#include "follow/recorder.h"
#include "ops/drill.h"
#include "pipeline/keys.h"
#include "store/store.h"

namespace etcdsafe::agent {

// Converters from the configuration to the workflows' options.
client::ClientConfig ClientConfigFor(const EtcdConfig& etcd);
store::StoreOptions StoreOptionsFor(const RepositoryConfig& repo);
std::optional<pipeline::KeySpec> KeyFor(const EncryptionConfig& enc);

// The reason label for an error.
std::string FailureReason(const Error& e);

struct RepoBackupResult {
  std::string repo;  // RepositoryConfig::name
  bool ok = false;
  std::string error, reason;    // when !ok
  uint64_t retention_removed = 0;  // backups removed by retention after this backup
  std::string retention_error;     // retention failed (the backup itself is fine)
};

struct BackupResult {
  bool ok = false;  // at least one repository has the backup
  std::string error, reason;  // when nothing was backed up
  backup::Manifest manifest;  // when ok
  std::vector<RepoBackupResult> repos;  // one per repository, config order
  std::vector<std::string> notes;
  double seconds = 0;
};

// One backup attempt to every repository, then (per repository that got it) retention
// when the policy is not empty. `cancel` is checked while the snapshot streams: when set
// the attempt stops with reason "interrupted", leaving nothing half-visible.
BackupResult RunBackupOnce(const AgentConfig& cfg, const std::atomic<bool>& cancel,
                           std::chrono::system_clock::time_point now);

struct DrillResult {
  bool ok = false;
  std::string error, reason;  // failed check or error
  std::string backup_id;
  ops::DrillReport report;
  double seconds = 0;
};
DrillResult RunDrillOnce(const AgentConfig& cfg);

struct PruneResult {
  std::string repo;
  bool ok = false;
  std::string error, reason;
  uint64_t removed = 0;
};
std::vector<PruneResult> RunPruneOnce(const AgentConfig& cfg, const catalog::RetentionPolicy& policy);

struct RepoScan {
  std::string repo;
  bool ok = false;
  std::string error;
  uint64_t backups = 0;       // valid manifests
  uint64_t stored_bytes = 0;  // sum of their stored sizes
  std::optional<backup::Manifest> newest;
  std::optional<backup::Manifest> previous;  // the one before the newest
};
RepoScan ScanRepository(const RepositoryConfig& repo);

// Probes one endpoint's health; true when it answers healthy within the dial timeout.
bool ProbeEndpoint(const EtcdConfig& etcd, const std::string& endpoint, std::string* why);

// The recorder's options for jobs.continuous (without should_stop and log). Reads the key
// and password files: throws their errors.
follow::FollowOptions FollowOptionsFor(const AgentConfig& cfg);
// Everything FollowOptionsFor depends on, as one string: a reload restarts the recorder
// when this changes.
std::string ContinuousFingerprint(const AgentConfig& cfg);

struct ContinuousSnapshot {
  std::string repo;              // RepositoryConfig::name
  bool running = false;          // a recorder is running now (not waiting to retry)
  // Counters (segments_stored, events_recorded, bytes_stored, gaps, chains_started,
  // upload_failures, reconnects) summed over every recorder run of this job; the other
  // fields from the newest run (stored_revision/stored_time_ms keep the newest known value
  // across runs).
  follow::FollowStatus totals;
  uint64_t failures = 0;         // recorder runs that ended by an error
  int64_t started_unix_ms = 0;   // when the job (the thread) started
  bool ever_stored = false;      // some run stored a segment
};

// The continuous job: follow::Recorder on its own thread, from construction until
// RequestStop(). A recorder that throws (repository locked by another recorder, unusable
// repository, bad key) is logged (event continuous.failed) and reported to `on_failure`
// (on the job's thread), then retried after a backoff (1 s, doubled up to 1 min; back to 1 s
// after a run that lasted 5 min); the agent never crashes on it. Recorder log lines become
// events continuous.recorder (warn for gaps and failures). Stop: the recorder stores what it
// recorded within `stop_timeout` (FollowOptions::stop_timeout) and returns.
// Thread-safe: every method may be called from any thread.
class ContinuousJob {
 public:
  using FailureHook = std::function<void(const std::string& reason, const std::string& error)>;
  ContinuousJob(const AgentConfig& cfg, EventLog& log, std::chrono::milliseconds stop_timeout, FailureHook on_failure);
  ~ContinuousJob();  // RequestStop(), then waits for the thread (unbounded)
  ContinuousJob(const ContinuousJob&) = delete;
  ContinuousJob& operator=(const ContinuousJob&) = delete;

  void RequestStop();
  // Waits up to `limit` for the thread to end (after RequestStop); true when it ended.
  bool Join(std::chrono::milliseconds limit);
  ContinuousSnapshot Snapshot() const;

 private:
  void Loop();
  static void Fold(ContinuousSnapshot* s, const follow::FollowStatus& run);

  const AgentConfig cfg_;
  EventLog& log_;
  const std::chrono::milliseconds stop_timeout_;
  FailureHook on_failure_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::shared_ptr<follow::Recorder> current_;  // the running recorder, or null
  ContinuousSnapshot snap_;                     // finished runs folded in
  std::mutex join_mu_;
  std::thread thread_;
};

}  // namespace etcdsafe::agent
