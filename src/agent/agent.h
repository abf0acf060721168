// `etcdsafe agent`: one long-running process that runs the backup, prune and drill jobs of
// its configuration (config.h) at their scheduled times, exports Prometheus metrics and
// health on HTTP (http_server.h), sends webhook notifications (notify.h) and logs one line
// per event (event_log.h).
//
// Scheduling:
//   * Jobs run one at a time, in the agent's own thread (never two jobs against one
//     repository at once; the repository lock also guards against other processes).
//   * The time each job last started (its scheduled slot) is kept in
//     <state_dir>/agent-state.json (written atomically). On start, a job whose next slot
//     after that time has passed (the agent was down, the machine suspended) runs once,
//     not once per missed slot. A backup job without state uses the newest backup in the
//     repositories instead, and runs at once when there is none.
//   * A slot that passes while another job runs is run when that job ends, once.
//   * A failed backup attempt is retried with exponential backoff (config retry) while the
//     next slot has not come; an unreachable etcd fails each attempt within the dial timeout.
// Signals (HandleSignal, called by the CLI's signal thread):
//   * SIGHUP: the configuration file is read again between jobs; a bad file keeps the old
//     configuration running and logs why (event config.reload_failed).
//   * SIGTERM/SIGINT: no new job starts; a running job gets `shutdown_grace` to finish, then
//     it is cancelled (a backup stops at its next chunk and removes what it wrote: nothing
//     half-visible, lock removed); if it has not unwound 10 s later, the process-wide
//     interrupt cleanup (base/file.h) removes partial output and locks and the process
//     exits 0 at once. Run() returns 0 after a clean stop.
// The continuous job (jobs.continuous, jobs.h ContinuousJob) is not scheduled: it records on
// its own thread from Run() until the stop, beside the scheduled jobs (a backup or prune may
// run meanwhile: follow locks do not conflict with theirs).
//   * SIGTERM/SIGINT asks it to stop at once (with the scheduled job's grace running in
//     parallel): it stores what it recorded within shutdown_grace; if its thread has not
//     ended 10 s after that, the process exits as above.
//   * SIGHUP: when what the recorder depends on changed (ContinuousFingerprint: the job's
//     keys, its repository, etcd, encryption, compression, name_prefix, shutdown_grace), the
//     recorder is stopped (storing what it recorded) and started again with the new
//     configuration; a removed block stops it, an added one starts it.
//   * A recorder that fails is logged, counted (etcdsafe_continuous_failures_total) and
//     retried by the job after a backoff; the agent goes on.
//   * /readyz: while a continuous job is configured, not ready until its recorder has
//     stored a segment (besides the backup job's staleness rule).
// jobs.pki_check runs controlplane::CheckPki (what `etcdsafe pki check` runs) on its schedule
// and once at every start (not caught up from the state file: the start is the catch-up),
// and exports etcdsafe_certificate_expiry_timestamp_seconds{path,subject} (not-after of
// every certificate, Unix time; path as pki check labels it, e.g. "pki/apiserver.crt",
// "pki/ca.crt#2" in a bundle, "admin.conf client-certificate-data"; the set is replaced at
// each check), etcdsafe_certificate_problems (how many problems the check found: expired,
// expiring within warn_days, not yet valid, key mismatch, chain, unreadable file) and
// etcdsafe_pki_check_last_success_timestamp_seconds. A directory that cannot be read fails
// the job (etcdsafe_job_failures_total{job="pki_check"}); the last values stay.
// Metrics: see DeclareMetrics in agent.cc; names are those used by deploy/prometheus/alerts.yaml.
// The continuous job's metrics are read from the recorder at each scrape (RenderMetrics).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "agent/config.h"
#include "agent/event_log.h"
#include "agent/jobs.h"
#include "agent/metrics.h"
#include "agent/notify.h"

namespace etcdsafe::agent {

class HttpServer;

class Agent {
 public:
  Agent(AgentConfig config, EventLog& log);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Starts the HTTP server (throws when its address cannot be bound) and runs the jobs
  // until a stop is requested. Returns the exit code (0).
  int Run();

  // From any thread; return at once.
  void RequestStop();
  void RequestReload();
  // The signal policy above; may block for the grace period; may exit the process.
  void HandleSignal(int sig);

  // The HTTP port actually bound (after Run started it; 0 before or when disabled).
  int http_port() const { return http_port_.load(); }
  std::string RenderMetrics();

 private:
  enum class JobKind { kBackup, kPrune, kDrill, kPkiCheck };
  struct JobState {
    std::optional<std::chrono::system_clock::time_point> last_slot;  // persisted
    std::optional<std::chrono::system_clock::time_point> next;
  };

  void DeclareMetrics();
  void ApplyConfigMetrics();
  void StartHttp();
  void LoadState();
  void SaveState();
  void ScanRepositories(bool initial);
  void PlanJobs(std::chrono::system_clock::time_point now, bool startup);
  void RunDue(std::chrono::system_clock::time_point now);
  void RunBackupJob(std::chrono::system_clock::time_point slot);
  void RunPruneJob();
  void RunDrillJob();
  void RunPkiCheckJob();
  void CheckStaleness(std::chrono::system_clock::time_point now);
  void ProbeEtcd();
  void DoReload();
  std::pair<bool, std::string> Ready() const;
  std::string NextJobId(const char* kind);
  bool WaitIdle(std::chrono::milliseconds limit);
  const Schedule& ScheduleOf(JobKind k) const;
  bool Enabled(JobKind k) const;
  // The continuous job (main thread only, except where noted).
  void StartContinuous();
  bool StopContinuous(std::chrono::milliseconds limit);  // false: its thread did not end in time
  void RefreshContinuousMetrics();                       // any thread
  void RefreshContinuousMetricsLocked();                 // REQUIRES: cont_mu_ held

  AgentConfig cfg_;
  EventLog& log_;
  Metrics metrics_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<Notifier> notifier_;
  std::atomic<int> http_port_{0};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  bool reload_ = false;
  bool job_running_ = false;
  std::atomic<bool> cancel_{false};
  std::atomic<bool> stopping_{false};

  std::map<JobKind, JobState> jobs_;
  uint64_t job_counter_ = 0;
  std::chrono::steady_clock::time_point next_probe_{};
  // Alert state for notifications (failure → recovery, stale → fresh).
  bool backup_failing_ = false, backup_stale_ = false, drill_failing_ = false, etcd_down_ = false;
  // Last successful backup across repositories (readyz, staleness).
  std::atomic<int64_t> last_backup_success_unix_{0};
  std::atomic<int64_t> backup_max_age_s_{0};
  double last_db_bytes_ = 0;
  // Firing alerts sent and not yet recovered, by alert name: re-sent every minute with an
  // endsAt a few minutes ahead, so Alertmanager keeps them active until the recovery.
  std::map<std::string, Notification> active_alerts_;
  std::chrono::steady_clock::time_point next_resend_{};
  void Notify(Notification n);
  void ResendActive();

  // Guards continuous_ (reset only by the main thread) and cont_exported_.
  mutable std::mutex cont_mu_;
  std::unique_ptr<ContinuousJob> continuous_;
  std::string continuous_fp_;           // ContinuousFingerprint of the running job's config
  follow::FollowStatus cont_exported_;  // counters already added to the metrics
};

}  // namespace etcdsafe::agent
