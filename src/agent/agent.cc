#include "agent/agent.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "agent/http_server.h"
#include "agent/jobs.h"
#include "agent/notify.h"
#include "backup/backup.h"
#include "base/error.h"
#include "base/file.h"
#include "base/idle_memory.h"
#include "controlplane/pki.h"

namespace etcdsafe::agent {
namespace {

using Clock = std::chrono::system_clock;
constexpr auto kProbeInterval = std::chrono::seconds(60);
constexpr auto kMaxSleep = std::chrono::seconds(60);
constexpr auto kCancelLimit = std::chrono::seconds(10);
constexpr auto kResendInterval = std::chrono::seconds(60);
constexpr auto kFiringExpiry = std::chrono::minutes(4);  // endsAt of a firing alert, renewed by re-sends

int64_t Unix(Clock::time_point t) { return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count(); }
double UnixD(Clock::time_point t) { return std::chrono::duration<double>(t.time_since_epoch()).count(); }
Clock::time_point FromUnix(int64_t s) { return Clock::time_point(std::chrono::seconds(s)); }

std::string Iso(Clock::time_point t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromChrono(t), absl::UTCTimeZone());
}

constexpr int kJobKinds = 4;
const char* KindName(int k) {
  switch (k) {
    case 0: return "backup";
    case 1: return "prune";
    case 2: return "drill";
    default: return "pki_check";
  }
}

std::string Join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); i++) out += (i ? sep : "") + v[i];
  return out;
}

Notification Note(Notification::Kind kind, std::string alertname, std::string job, std::string repo,
                  std::string summary, std::string description) {
  Notification n;
  n.kind = kind;
  n.alertname = std::move(alertname);
  n.job = std::move(job);
  n.repo = std::move(repo);
  n.summary = std::move(summary);
  n.description = std::move(description);
  n.starts_at = Clock::now();
  n.ends_at = kind == Notification::Kind::kRecovery ? n.starts_at : n.starts_at + kFiringExpiry;
  return n;
}

const std::vector<double> kDurationBuckets = {1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};

// Every family of the continuous job (label repo): removed together when its repository changes.
const char* const kContinuousFamilies[] = {
    "etcdsafe_continuous_up",
    "etcdsafe_continuous_recorded_revision",
    "etcdsafe_continuous_stored_revision",
    "etcdsafe_continuous_last_stored_timestamp_seconds",
    "etcdsafe_continuous_pending_bytes",
    "etcdsafe_continuous_segments_stored_total",
    "etcdsafe_continuous_events_recorded_total",
    "etcdsafe_continuous_stored_bytes_total",
    "etcdsafe_continuous_gaps_total",
    "etcdsafe_continuous_chains_started_total",
    "etcdsafe_continuous_upload_failures_total",
    "etcdsafe_continuous_reconnects_total",
    "etcdsafe_continuous_failures_total",
};

}  // namespace

Agent::Agent(AgentConfig config, EventLog& log) : cfg_(std::move(config)), log_(log) { DeclareMetrics(); }

Agent::~Agent() = default;

void Agent::DeclareMetrics() {
  auto& m = metrics_;
  m.DeclareGauge("etcdsafe_build_info", "etcdsafe version (value 1).");
  m.DeclareGauge("etcdsafe_agent_start_timestamp_seconds", "When the agent started (Unix time).");
  m.DeclareGauge("etcdsafe_backup_last_success_timestamp_seconds",
                 "Time of the newest successful backup in each repository (Unix time).");
  m.DeclareGauge("etcdsafe_backup_last_attempt_timestamp_seconds",
                 "Time of the last backup attempt per repository (Unix time).");
  m.DeclareGauge("etcdsafe_backup_max_age_seconds", "Configured staleness limit of backups (jobs.backup.max_age).");
  m.DeclareHistogram("etcdsafe_backup_duration_seconds", "Duration of backup attempts by result.", kDurationBuckets);
  m.DeclareHistogram("etcdsafe_job_duration_seconds", "Duration of job runs by job and result.", kDurationBuckets);
  m.DeclareGauge("etcdsafe_job_last_success_timestamp_seconds", "Last successful run per job and repository.");
  m.DeclareGauge("etcdsafe_job_last_attempt_timestamp_seconds", "Last run per job and repository.");
  m.DeclareCounter("etcdsafe_backup_failures_total", "Failed backup attempts by reason.");
  m.DeclareCounter("etcdsafe_job_failures_total", "Failed job runs by job and reason.");
  m.DeclareGauge("etcdsafe_backup_last_result", "1 if the last backup attempt succeeded in every repository, else 0.");
  m.DeclareGauge("etcdsafe_backup_db_bytes", "Size of the etcd db in the newest backup.");
  m.DeclareGauge("etcdsafe_backup_previous_db_bytes", "Size of the etcd db in the successful backup before the newest.");
  m.DeclareGauge("etcdsafe_backup_stored_bytes", "Stored (compressed, encrypted) size of the newest backup per repository.");
  m.DeclareGauge("etcdsafe_backup_revision", "etcd revision of the newest backup.");
  m.DeclareGauge("etcdsafe_backup_keys", "Number of keys in the newest backup.");
  m.DeclareCounter("etcdsafe_retention_deleted_total", "Backups removed by retention per repository.");
  m.DeclareGauge("etcdsafe_drill_last_success_timestamp_seconds", "Time of the last successful restore drill.");
  m.DeclareGauge("etcdsafe_drill_last_attempt_timestamp_seconds", "Time of the last restore drill.");
  m.DeclareGauge("etcdsafe_drill_duration_seconds", "Duration of the last restore drill.");
  m.DeclareGauge("etcdsafe_drill_last_result", "1 if the last restore drill passed, else 0.");
  m.DeclareCounter("etcdsafe_drill_failures_total", "Failed restore drills by reason.");
  m.DeclareGauge("etcdsafe_drill_max_age_seconds", "Configured staleness limit of drills (twice the drill interval).");
  m.DeclareGauge("etcdsafe_repository_backups", "Complete backups per repository.");
  m.DeclareGauge("etcdsafe_repository_bytes", "Stored bytes of all backups per repository.");
  m.DeclareGauge("etcdsafe_etcd_up", "1 if the etcd endpoint answered the last health probe, else 0.");
  // The continuous job (jobs.continuous), label repo: the repository recorded into.
  m.DeclareGauge("etcdsafe_continuous_up",
                 "1 while the continuous backup recorder runs, 0 while it waits to retry after a failure.");
  m.DeclareGauge("etcdsafe_continuous_recorded_revision", "Last etcd revision the continuous backup received.");
  m.DeclareGauge("etcdsafe_continuous_stored_revision",
                 "Last etcd revision whose segment is stored in the repository (what a restore can reach).");
  m.DeclareGauge("etcdsafe_continuous_last_stored_timestamp_seconds",
                 "When the newest segment was stored (Unix time); before the first one, when the job started.");
  m.DeclareGauge("etcdsafe_continuous_pending_bytes", "Sealed segments waiting to be stored (memory and spill).");
  m.DeclareCounter("etcdsafe_continuous_segments_stored_total", "Segments stored by the continuous backup.");
  m.DeclareCounter("etcdsafe_continuous_events_recorded_total", "etcd events recorded by the continuous backup.");
  m.DeclareCounter("etcdsafe_continuous_stored_bytes_total", "Bytes of segments stored by the continuous backup.");
  m.DeclareCounter("etcdsafe_continuous_gaps_total",
                   "Chains ended by a gap (etcd compacted past the watch, or too much waiting to be stored).");
  m.DeclareCounter("etcdsafe_continuous_chains_started_total", "Chains started or resumed by the continuous backup.");
  m.DeclareCounter("etcdsafe_continuous_upload_failures_total", "Failed segment uploads (retried).");
  m.DeclareCounter("etcdsafe_continuous_reconnects_total", "Watch reconnects of the continuous backup.");
  m.DeclareCounter("etcdsafe_continuous_failures_total",
                   "Continuous backup recorder runs that ended by an error, by reason (retried after a backoff).");
  // jobs.pki_check.
  m.DeclareGauge("etcdsafe_certificate_expiry_timestamp_seconds",
                 "Not-after of each control-plane certificate (Unix time), by path and subject, as of the last pki check.");
  m.DeclareGauge("etcdsafe_certificate_problems",
                 "Problems the last pki check found (expired, expiring within warn_days, key mismatch, chain, unreadable).");
  m.DeclareGauge("etcdsafe_pki_check_last_success_timestamp_seconds", "When the last pki check ran to the end (Unix time).");
}

void Agent::ApplyConfigMetrics() {
  metrics_.Set("etcdsafe_build_info", {{"version", backup::kToolVersion}}, 1);
  backup_max_age_s_ = cfg_.backup.enabled ? cfg_.backup.max_age.count() : 0;
  metrics_.Set("etcdsafe_backup_max_age_seconds", {}, static_cast<double>(backup_max_age_s_.load()));
  if (cfg_.drill.enabled) {
    // A drill is stale after twice its interval (as for backups without max_age).
    const Clock::time_point now = Clock::now();
    std::optional<Clock::time_point> a = cfg_.drill.schedule.Next(now, cfg_.tz);
    std::optional<Clock::time_point> b = a ? cfg_.drill.schedule.Next(*a, cfg_.tz) : std::nullopt;
    double limit = (a && b) ? 2 * std::chrono::duration<double>(*b - *a).count() : 0;
    metrics_.Set("etcdsafe_drill_max_age_seconds", {}, std::max(limit, 60.0));
  }
  for (const auto& r : cfg_.repositories) {
    metrics_.Touch("etcdsafe_retention_deleted_total", {{"repo", r.name}});
    // 0 = never: present from the start, so EtcdBackupNeverSucceeded can see a repository
    // that was tried and never got a backup (the stale alerts ignore 0).
    metrics_.Touch("etcdsafe_backup_last_success_timestamp_seconds", {{"repo", r.name}});
    metrics_.Touch("etcdsafe_backup_last_attempt_timestamp_seconds", {{"repo", r.name}});
  }
  if (cfg_.drill.enabled) {
    metrics_.Touch("etcdsafe_drill_last_success_timestamp_seconds", {});
    metrics_.Touch("etcdsafe_drill_last_attempt_timestamp_seconds", {});
  }
  for (const char* reason : {"unreachable", "unhealthy", "locked", "storage", "integrity", "auth", "interrupted", "other"}) {
    metrics_.Touch("etcdsafe_backup_failures_total", {{"reason", reason}});
  }
  for (const char* reason : {"check", "stale", "storage", "integrity", "auth", "other"}) {
    metrics_.Touch("etcdsafe_drill_failures_total", {{"reason", reason}});
  }
}

void Agent::StartHttp() {
  http_.reset();
  http_port_ = 0;
  if (cfg_.http_listen.empty()) return;
  HttpServer::Handlers h;
  h.metrics = [this] { return RenderMetrics(); };
  h.ready = [this] { return Ready(); };
  http_ = std::make_unique<HttpServer>(cfg_.http_listen, std::move(h));
  http_port_ = http_->port();
}

// ------------------------------------------------------------------ state file

void Agent::LoadState() {
  const std::string path = cfg_.state_dir + "/agent-state.json";
  if (!PathExists(path)) return;
  try {
    nlohmann::json j = nlohmann::json::parse(ReadSmallFile(path, 64 << 10));
    if (!j.is_object() || j.value("format", 0) != 1 || !j.contains("jobs") || !j["jobs"].is_object()) {
      throw Error(ErrorCode::kDataLoss, "unknown format");
    }
    for (int k = 0; k < kJobKinds; k++) {
      const auto& jobs = j["jobs"];
      const char* name = KindName(k);
      if (!jobs.contains(name)) continue;
      const auto& e = jobs[name];
      if (e.is_object() && e.contains("last_slot") && e["last_slot"].is_number_integer()) {
        int64_t s = e["last_slot"].get<int64_t>();
        if (s > 0 && s < (int64_t{1} << 40)) jobs_[static_cast<JobKind>(k)].last_slot = FromUnix(s);
      }
    }
  } catch (const std::exception& e) {
    log_.Log(LogLevel::kWarn, "state.ignored", "the agent's state file is unreadable; starting without it",
             {{"path", path}, {"error", std::string(e.what())}});
  }
}

void Agent::SaveState() {
  nlohmann::json j;
  j["format"] = 1;
  j["jobs"] = nlohmann::json::object();
  for (const auto& [k, st] : jobs_) {
    if (st.last_slot) j["jobs"][KindName(static_cast<int>(k))]["last_slot"] = Unix(*st.last_slot);
  }
  const std::string path = cfg_.state_dir + "/agent-state.json";
  const std::string tmp = path + ".tmp";
  try {
    File f = File::Create(tmp, 0600, /*truncate=*/true);
    std::string text = j.dump() + "\n";
    f.WriteAll(reinterpret_cast<const uint8_t*>(text.data()), text.size());
    f.Sync();
    f.Close();
    RenameDurable(tmp, path);
  } catch (const std::exception& e) {
    ::unlink(tmp.c_str());
    log_.Log(LogLevel::kWarn, "state.write_failed", "could not record the job times", {{"path", path}, {"error", std::string(e.what())}});
  }
}

// ------------------------------------------------------------------ scheduling

const Schedule& Agent::ScheduleOf(JobKind k) const {
  switch (k) {
    case JobKind::kBackup: return cfg_.backup.schedule;
    case JobKind::kPrune: return cfg_.prune.schedule;
    case JobKind::kDrill: return cfg_.drill.schedule;
    default: return cfg_.pki_check.schedule;
  }
}

bool Agent::Enabled(JobKind k) const {
  switch (k) {
    case JobKind::kBackup: return cfg_.backup.enabled;
    case JobKind::kPrune: return cfg_.prune.enabled;
    case JobKind::kDrill: return cfg_.drill.enabled;
    default: return cfg_.pki_check.enabled;
  }
}

void Agent::PlanJobs(Clock::time_point now, bool startup) {
  for (JobKind k : {JobKind::kBackup, JobKind::kPrune, JobKind::kDrill, JobKind::kPkiCheck}) {
    JobState& st = jobs_[k];
    if (!Enabled(k)) {
      st.next.reset();
      continue;
    }
    if (k == JobKind::kPkiCheck && (startup || !st.next)) {
      st.next = now;  // at every start (and when added by a reload): certificates are cheap to check
      continue;
    }
    const Schedule& s = ScheduleOf(k);
    std::optional<Clock::time_point> last = st.last_slot;
    if (startup && !last && k == JobKind::kBackup) {
      // No record of our own: the repositories say when the last backup was taken.
      if (last_backup_success_unix_ > 0) {
        last = FromUnix(last_backup_success_unix_);
      } else {
        st.next = now;  // no backup anywhere: take one now
        continue;
      }
    }
    if (startup && last) {
      std::optional<Clock::time_point> n = s.Next(*last, cfg_.tz);
      st.next = (n && *n <= now) ? std::optional(now) : n;  // missed while down: once, now
    } else {
      st.next = s.Next(now, cfg_.tz);
    }
  }
}

void Agent::RunDue(Clock::time_point now) {
  // The certificate check first: it takes milliseconds, a backup may retry for minutes.
  for (JobKind k : {JobKind::kPkiCheck, JobKind::kBackup, JobKind::kPrune, JobKind::kDrill}) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stop_) return;
    }
    JobState& st = jobs_[k];
    if (!st.next || *st.next > now) continue;
    const Clock::time_point slot = *st.next;
    st.last_slot = slot;
    SaveState();
    switch (k) {
      case JobKind::kBackup: RunBackupJob(slot); break;
      case JobKind::kPrune: RunPruneJob(); break;
      case JobKind::kDrill: RunDrillJob(); break;
      case JobKind::kPkiCheck: RunPkiCheckJob(); break;
    }
    // The next slot after the job ended: slots that passed while it ran are not run again.
    st.next = ScheduleOf(k).Next(std::max(Clock::now(), slot), cfg_.tz);
  }
}

std::string Agent::NextJobId(const char* kind) {
  return std::string(kind) + "-" + absl::FormatTime("%Y%m%dT%H%M%SZ", absl::FromChrono(Clock::now()), absl::UTCTimeZone()) + "-" +
         std::to_string(++job_counter_);
}

// ------------------------------------------------------------------ jobs

void Agent::RunBackupJob(Clock::time_point slot) {
  const std::string id = NextJobId("backup");
  const RetryConfig& retry = cfg_.backup.retry;
  const std::optional<Clock::time_point> next_slot = cfg_.backup.schedule.Next(std::max(slot, Clock::now()), cfg_.tz);
  std::chrono::seconds backoff = retry.initial_backoff;
  const auto job_start = std::chrono::steady_clock::now();
  for (int attempt = 1;; attempt++) {
    log_.Log(LogLevel::kInfo, "backup.start", "backup started",
             {{"job", std::string("backup")}, {"id", id}, {"attempt", int64_t{attempt}},
              {"repositories", static_cast<int64_t>(cfg_.repositories.size())}});
    const Clock::time_point started = Clock::now();
    BackupResult r = RunBackupOnce(cfg_, cancel_, started);
    const double attempt_end = UnixD(Clock::now());
    bool all_ok = r.ok;
    std::vector<std::string> failed_repos;
    for (const auto& rr : r.repos) {
      metrics_.Set("etcdsafe_backup_last_attempt_timestamp_seconds", {{"repo", rr.repo}}, attempt_end);
      metrics_.Set("etcdsafe_job_last_attempt_timestamp_seconds", {{"job", "backup"}, {"repo", rr.repo}}, attempt_end);
      if (rr.ok) {
        metrics_.Set("etcdsafe_backup_last_success_timestamp_seconds", {{"repo", rr.repo}}, static_cast<double>(r.manifest.time_unix));
        metrics_.Set("etcdsafe_job_last_success_timestamp_seconds", {{"job", "backup"}, {"repo", rr.repo}}, attempt_end);
        metrics_.Set("etcdsafe_backup_stored_bytes", {{"repo", rr.repo}}, static_cast<double>(r.manifest.stored_size));
        if (rr.retention_removed > 0) {
          metrics_.Add("etcdsafe_retention_deleted_total", {{"repo", rr.repo}}, static_cast<double>(rr.retention_removed));
          log_.Log(LogLevel::kInfo, "retention.removed", "retention removed old backups",
                   {{"id", id}, {"repo", rr.repo}, {"removed", static_cast<int64_t>(rr.retention_removed)}});
        }
        if (!rr.retention_error.empty()) {
          metrics_.Add("etcdsafe_job_failures_total", {{"job", "prune"}, {"reason", "retention"}});
          log_.Log(LogLevel::kError, "retention.failed", "retention after the backup failed",
                   {{"id", id}, {"repo", rr.repo}, {"error", rr.retention_error}});
        }
      } else {
        all_ok = false;
        failed_repos.push_back(rr.repo);
        if (r.ok) {  // partial: this repository's own reason
          metrics_.Add("etcdsafe_backup_failures_total", {{"reason", rr.reason}});
          log_.Log(LogLevel::kError, "backup.repo_failed", "backup not written to a repository",
                   {{"id", id}, {"repo", rr.repo}, {"reason", rr.reason}, {"error", rr.error}});
        }
      }
    }
    const char* result = all_ok ? "success" : "failure";
    metrics_.Observe("etcdsafe_backup_duration_seconds", {{"result", result}}, r.seconds);
    metrics_.Set("etcdsafe_backup_last_result", {}, all_ok ? 1 : 0);
    for (const auto& n : r.notes) log_.Log(LogLevel::kInfo, "backup.note", n, {{"id", id}});
    if (r.ok) {
      const backup::Manifest& m = r.manifest;
      if (last_db_bytes_ > 0) metrics_.Set("etcdsafe_backup_previous_db_bytes", {}, last_db_bytes_);
      last_db_bytes_ = static_cast<double>(m.db_size);
      metrics_.Set("etcdsafe_backup_db_bytes", {}, last_db_bytes_);
      metrics_.Set("etcdsafe_backup_revision", {}, static_cast<double>(m.revision));
      metrics_.Set("etcdsafe_backup_keys", {}, static_cast<double>(m.total_keys));
      last_backup_success_unix_ = std::max<int64_t>(last_backup_success_unix_, m.time_unix);
      log_.Log(all_ok ? LogLevel::kInfo : LogLevel::kWarn, all_ok ? "backup.done" : "backup.partial",
               all_ok ? "backup committed" : "backup committed to some repositories only",
               {{"job", std::string("backup")},
                {"id", id},
                {"backup", m.id},
                {"attempt", int64_t{attempt}},
                {"duration_s", r.seconds},
                {"revision", static_cast<int64_t>(m.revision)},
                {"keys", static_cast<int64_t>(m.total_keys)},
                {"db_bytes", static_cast<int64_t>(m.db_size)},
                {"stored_bytes", static_cast<int64_t>(m.stored_size)},
                {"failed_repositories", Join(failed_repos, ",")}});
      metrics_.Observe("etcdsafe_job_duration_seconds", {{"job", "backup"}, {"result", result}},
                       std::chrono::duration<double>(std::chrono::steady_clock::now() - job_start).count());
      if (backup_stale_) {
        backup_stale_ = false;
        Notify(Note(Notification::Kind::kRecovery, "EtcdBackupStale", "backup", "",
                                     "etcd backups are fresh again", "backup " + m.id + " committed"));
      }
      if (all_ok && backup_failing_) {
        backup_failing_ = false;
        Notify(Note(Notification::Kind::kRecovery, "EtcdBackupFailed", "backup", "",
                                     "etcd backup succeeded again", "backup " + m.id + " committed"));
      }
      if (!all_ok && !backup_failing_) {
        backup_failing_ = true;
        Notify(Note(Notification::Kind::kFailure, "EtcdBackupFailed", "backup",
                                     Join(failed_repos, ","), "etcd backup failed in some repositories",
                                     "backup " + m.id + " not written to " + Join(failed_repos, ", ")));
      }
      ScanRepositories(false);
      return;
    }
    // Nothing was backed up.
    metrics_.Add("etcdsafe_backup_failures_total", {{"reason", r.reason}});
    metrics_.Add("etcdsafe_job_failures_total", {{"job", "backup"}, {"reason", r.reason}});
    if (r.reason == "unreachable" || r.reason == "unhealthy") {
      for (const auto& ep : cfg_.etcd.endpoints) metrics_.Set("etcdsafe_etcd_up", {{"endpoint", ep}}, 0);
    }
    bool stopping;
    {
      std::lock_guard<std::mutex> l(mu_);
      stopping = stop_;
    }
    const bool retryable = r.reason != "config" && r.reason != "interrupted" && !stopping;
    const Clock::time_point retry_at = Clock::now() + backoff;
    const bool again = retryable && attempt < retry.max_attempts && (!next_slot || retry_at < *next_slot);
    log_.Log(again ? LogLevel::kWarn : LogLevel::kError, again ? "backup.attempt_failed" : "backup.failed",
             again ? "backup attempt failed; retrying" : "backup failed",
             {{"job", std::string("backup")},
              {"id", id},
              {"attempt", int64_t{attempt}},
              {"reason", r.reason},
              {"error", r.error},
              {"duration_s", r.seconds},
              {"retry_in_s", again ? static_cast<int64_t>(backoff.count()) : int64_t{0}}});
    if (!again) {
      metrics_.Observe("etcdsafe_job_duration_seconds", {{"job", "backup"}, {"result", "failure"}},
                       std::chrono::duration<double>(std::chrono::steady_clock::now() - job_start).count());
      if (!backup_failing_ && r.reason != "interrupted") {
        backup_failing_ = true;
        Notify(Note(Notification::Kind::kFailure, "EtcdBackupFailed", "backup", "",
                                     "etcd backup failed (" + r.reason + ")", r.error));
      }
      return;
    }
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, backoff, [this] { return stop_; });
    if (stop_) return;
    backoff = std::min(backoff * 2, retry.max_backoff);
  }
}

void Agent::RunPruneJob() {
  const std::string id = NextJobId("prune");
  const auto start = std::chrono::steady_clock::now();
  log_.Log(LogLevel::kInfo, "prune.start", "prune started", {{"job", std::string("prune")}, {"id", id}});
  std::vector<PruneResult> results = RunPruneOnce(cfg_, cfg_.prune.retention);
  const double end = UnixD(Clock::now());
  bool all_ok = true;
  for (const auto& r : results) {
    metrics_.Set("etcdsafe_job_last_attempt_timestamp_seconds", {{"job", "prune"}, {"repo", r.repo}}, end);
    if (r.ok) {
      metrics_.Set("etcdsafe_job_last_success_timestamp_seconds", {{"job", "prune"}, {"repo", r.repo}}, end);
      metrics_.Add("etcdsafe_retention_deleted_total", {{"repo", r.repo}}, static_cast<double>(r.removed));
      log_.Log(LogLevel::kInfo, "prune.done", "prune done",
               {{"id", id}, {"repo", r.repo}, {"removed", static_cast<int64_t>(r.removed)}});
    } else {
      all_ok = false;
      metrics_.Add("etcdsafe_job_failures_total", {{"job", "prune"}, {"reason", r.reason}});
      log_.Log(LogLevel::kError, "prune.failed", "prune failed",
               {{"id", id}, {"repo", r.repo}, {"reason", r.reason}, {"error", r.error}});
    }
  }
  metrics_.Observe("etcdsafe_job_duration_seconds", {{"job", "prune"}, {"result", all_ok ? "success" : "failure"}},
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  ScanRepositories(false);
}

void Agent::RunDrillJob() {
  const std::string id = NextJobId("drill");
  const std::string repo = cfg_.drill.repository.empty() ? cfg_.repositories.front().name : cfg_.drill.repository;
  log_.Log(LogLevel::kInfo, "drill.start", "restore drill started",
           {{"job", std::string("drill")}, {"id", id}, {"repo", repo}, {"backup", cfg_.drill.backup}});
  DrillResult r = RunDrillOnce(cfg_);
  const double end = UnixD(Clock::now());
  metrics_.Set("etcdsafe_drill_last_attempt_timestamp_seconds", {}, end);
  metrics_.Set("etcdsafe_job_last_attempt_timestamp_seconds", {{"job", "drill"}, {"repo", repo}}, end);
  metrics_.Set("etcdsafe_drill_duration_seconds", {}, r.seconds);
  metrics_.Set("etcdsafe_drill_last_result", {}, r.ok ? 1 : 0);
  metrics_.Observe("etcdsafe_job_duration_seconds", {{"job", "drill"}, {"result", r.ok ? "success" : "failure"}}, r.seconds);
  if (r.ok) {
    metrics_.Set("etcdsafe_drill_last_success_timestamp_seconds", {}, end);
    metrics_.Set("etcdsafe_job_last_success_timestamp_seconds", {{"job", "drill"}, {"repo", repo}}, end);
    log_.Log(LogLevel::kInfo, "drill.done", ops::DrillSummaryLine(r.report),
             {{"job", std::string("drill")}, {"id", id}, {"backup", r.backup_id}, {"duration_s", r.seconds},
              {"checks", static_cast<int64_t>(r.report.checks.size())}});
    if (drill_failing_) {
      drill_failing_ = false;
      Notify(Note(Notification::Kind::kRecovery, "EtcdBackupDrillFailed", "drill", repo,
                                   "restore drill passed again", ops::DrillSummaryLine(r.report)));
    }
  } else {
    metrics_.Add("etcdsafe_drill_failures_total", {{"reason", r.reason}});
    metrics_.Add("etcdsafe_job_failures_total", {{"job", "drill"}, {"reason", r.reason}});
    log_.Log(LogLevel::kError, "drill.failed", "restore drill failed",
             {{"job", std::string("drill")}, {"id", id}, {"backup", r.backup_id}, {"reason", r.reason},
              {"error", r.error}, {"duration_s", r.seconds}});
    if (!drill_failing_) {
      drill_failing_ = true;
      Notify(Note(Notification::Kind::kFailure, "EtcdBackupDrillFailed", "drill", repo,
                                   "restore drill failed (" + r.reason + ")", r.error));
    }
  }
}

void Agent::RunPkiCheckJob() {
  const std::string id = NextJobId("pki_check");
  const auto start = std::chrono::steady_clock::now();
  const PkiCheckJobConfig& j = cfg_.pki_check;
  controlplane::PkiReport report;
  try {
    report = controlplane::CheckPki(j.kubernetes_dir, j.warn_days, Unix(Clock::now()));
  } catch (const Error& e) {
    const std::string reason = FailureReason(e);
    metrics_.Add("etcdsafe_job_failures_total", {{"job", "pki_check"}, {"reason", reason}});
    metrics_.Observe("etcdsafe_job_duration_seconds", {{"job", "pki_check"}, {"result", "failure"}},
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    log_.Log(LogLevel::kError, "pki_check.failed", "certificate check failed",
             {{"job", std::string("pki_check")}, {"id", id}, {"dir", j.kubernetes_dir}, {"reason", reason},
              {"error", std::string(e.what())}});
    return;
  }
  std::vector<std::pair<Labels, double>> expiry;
  int64_t earliest = 0;
  std::string earliest_label;
  for (const auto& c : report.certs) {
    expiry.push_back({{{"path", c.label}, {"subject", c.subject}}, static_cast<double>(c.not_after)});
    if (earliest_label.empty() || c.not_after < earliest) {
      earliest = c.not_after;
      earliest_label = c.label;
    }
  }
  metrics_.ReplaceGauges("etcdsafe_certificate_expiry_timestamp_seconds", expiry);
  metrics_.Set("etcdsafe_certificate_problems", {}, static_cast<double>(report.problems.size()));
  metrics_.Set("etcdsafe_pki_check_last_success_timestamp_seconds", {}, UnixD(Clock::now()));
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  metrics_.Observe("etcdsafe_job_duration_seconds", {{"job", "pki_check"}, {"result", "success"}}, secs);
  LogFields f{{"job", std::string("pki_check")},
              {"id", id},
              {"dir", j.kubernetes_dir},
              {"certificates", static_cast<int64_t>(report.certs.size())},
              {"problems", static_cast<int64_t>(report.problems.size())},
              {"duration_s", secs}};
  if (!earliest_label.empty()) {
    f.emplace_back("earliest_expiry", Iso(FromUnix(earliest)));
    f.emplace_back("earliest_path", earliest_label);
  }
  if (report.ok()) {
    log_.Log(LogLevel::kInfo, "pki_check.done", "certificates checked", f);
  } else {
    f.emplace_back("first_problem", report.problems.front());
    log_.Log(LogLevel::kWarn, "pki_check.problems",
             std::to_string(report.problems.size()) + " certificate problem" + (report.problems.size() == 1 ? "" : "s"), f);
  }
}

void Agent::ScanRepositories(bool initial) {
  for (const auto& rc : cfg_.repositories) {
    RepoScan s = ScanRepository(rc);
    if (!s.ok) {
      log_.Log(LogLevel::kWarn, "repository.unreadable", "could not list the repository's backups",
               {{"repo", rc.name}, {"error", s.error}});
      continue;
    }
    metrics_.Set("etcdsafe_repository_backups", {{"repo", rc.name}}, static_cast<double>(s.backups));
    metrics_.Set("etcdsafe_repository_bytes", {{"repo", rc.name}}, static_cast<double>(s.stored_bytes));
    if (initial && s.newest) {
      const backup::Manifest& m = *s.newest;
      metrics_.Set("etcdsafe_backup_last_success_timestamp_seconds", {{"repo", rc.name}}, static_cast<double>(m.time_unix));
      metrics_.Set("etcdsafe_backup_stored_bytes", {{"repo", rc.name}}, static_cast<double>(m.stored_size));
      if (m.time_unix >= last_backup_success_unix_) {
        last_backup_success_unix_ = m.time_unix;
        last_db_bytes_ = static_cast<double>(m.db_size);
        metrics_.Set("etcdsafe_backup_db_bytes", {}, last_db_bytes_);
        metrics_.Set("etcdsafe_backup_revision", {}, static_cast<double>(m.revision));
        metrics_.Set("etcdsafe_backup_keys", {}, static_cast<double>(m.total_keys));
        if (s.previous) metrics_.Set("etcdsafe_backup_previous_db_bytes", {}, static_cast<double>(s.previous->db_size));
      }
    }
  }
}

void Agent::CheckStaleness(Clock::time_point now) {
  if (!cfg_.backup.enabled || backup_max_age_s_ <= 0) return;
  const int64_t last = last_backup_success_unix_;
  const bool stale = last == 0 ? false : Unix(now) - last > backup_max_age_s_;
  if (stale && !backup_stale_) {
    backup_stale_ = true;
    const std::string why = "the newest backup is " + std::to_string(Unix(now) - last) + " s old (max_age " +
                            std::to_string(backup_max_age_s_.load()) + " s)";
    log_.Log(LogLevel::kError, "backup.stale", why, {{"last_success", Iso(FromUnix(last))}});
    Notify(Note(Notification::Kind::kStale, "EtcdBackupStale", "backup", "", "etcd backups are stale",
                                 why));
  }
}

void Agent::ProbeEtcd() {
  bool any_up = false;
  std::string last_why;
  for (const auto& ep : cfg_.etcd.endpoints) {
    std::string why;
    bool up = ProbeEndpoint(cfg_.etcd, ep, &why);
    metrics_.Set("etcdsafe_etcd_up", {{"endpoint", ep}}, up ? 1 : 0);
    any_up = any_up || up;
    if (!up) last_why = why;
  }
  if (!any_up && !etcd_down_) {
    etcd_down_ = true;
    log_.Log(LogLevel::kError, "etcd.unreachable", "no etcd endpoint answers", {{"error", last_why}});
    Notify(Note(Notification::Kind::kFailure, "EtcdUnreachable", "probe", "", "etcd is unreachable",
                                 last_why));
  } else if (any_up && etcd_down_) {
    etcd_down_ = false;
    log_.Log(LogLevel::kInfo, "etcd.reachable", "etcd answers again");
    Notify(Note(Notification::Kind::kRecovery, "EtcdUnreachable", "probe", "", "etcd answers again",
                                 ""));
  }
}

std::pair<bool, std::string> Agent::Ready() const {
  std::pair<bool, std::string> backup{true, "no backup job configured"};
  if (cfg_.backup.enabled) {
    const int64_t last = last_backup_success_unix_;
    const int64_t age = Unix(Clock::now()) - last;
    const int64_t limit = backup_max_age_s_;
    if (last == 0) {
      backup = {false, "no successful backup yet"};
    } else if (limit > 0 && age > limit) {
      backup = {false, "newest backup is " + std::to_string(age) + "s old (max_age " + std::to_string(limit) + "s)"};
    } else {
      backup = {true, "newest backup is " + std::to_string(std::max<int64_t>(age, 0)) + "s old"};
    }
  }
  std::lock_guard<std::mutex> l(cont_mu_);
  if (!continuous_ || !backup.first) return backup;
  ContinuousSnapshot s = continuous_->Snapshot();
  if (!s.ever_stored) return {false, "continuous backup has not stored a segment yet"};
  return {true, backup.second + "; continuous backup stored up to revision " + std::to_string(s.totals.stored_revision)};
}

// ------------------------------------------------------------------ continuous job

void Agent::StartContinuous() {
  const std::string fp = ContinuousFingerprint(cfg_);
  if (fp.empty()) return;
  const std::string repo = cfg_.continuous.repository;
  const auto grace = std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.shutdown_grace);
  auto job = std::make_unique<ContinuousJob>(cfg_, log_, grace, [this, repo](const std::string& reason, const std::string&) {
    metrics_.Add("etcdsafe_continuous_failures_total", {{"repo", repo}, {"reason", reason}});
  });
  std::lock_guard<std::mutex> l(cont_mu_);
  for (const char* fam : kContinuousFamilies) {
    if (std::string(fam).ends_with("_total") && std::string(fam) != "etcdsafe_continuous_failures_total") {
      metrics_.Touch(fam, {{"repo", repo}});
    }
  }
  cont_exported_ = {};
  continuous_ = std::move(job);
  continuous_fp_ = fp;
  RefreshContinuousMetricsLocked();
}

bool Agent::StopContinuous(std::chrono::milliseconds limit) {
  ContinuousJob* job;
  {
    std::lock_guard<std::mutex> l(cont_mu_);
    job = continuous_.get();
  }
  if (job == nullptr) return true;
  job->RequestStop();
  if (!job->Join(limit)) return false;
  std::lock_guard<std::mutex> l(cont_mu_);
  RefreshContinuousMetricsLocked();  // the last segments stored while stopping
  continuous_.reset();
  continuous_fp_.clear();
  return true;
}

void Agent::RefreshContinuousMetrics() {
  std::lock_guard<std::mutex> l(cont_mu_);
  RefreshContinuousMetricsLocked();
}

void Agent::RefreshContinuousMetricsLocked() {
  if (!continuous_) return;
  const ContinuousSnapshot s = continuous_->Snapshot();
  const Labels repo = {{"repo", s.repo}};
  const follow::FollowStatus& t = s.totals;
  metrics_.Set("etcdsafe_continuous_up", repo, s.running ? 1 : 0);
  metrics_.Set("etcdsafe_continuous_recorded_revision", repo, static_cast<double>(t.recorded_revision));
  metrics_.Set("etcdsafe_continuous_stored_revision", repo, static_cast<double>(t.stored_revision));
  const int64_t stored_ms = t.stored_time_ms > 0 ? t.stored_time_ms : s.started_unix_ms;
  metrics_.Set("etcdsafe_continuous_last_stored_timestamp_seconds", repo, static_cast<double>(stored_ms) / 1000);
  metrics_.Set("etcdsafe_continuous_pending_bytes", repo, static_cast<double>(t.pending_bytes));
  // The snapshot's counters only grow (summed over the job's runs): add what is new.
  follow::FollowStatus& e = cont_exported_;
  const std::pair<const char*, std::pair<uint64_t, uint64_t*>> counters[] = {
      {"etcdsafe_continuous_segments_stored_total", {t.segments_stored, &e.segments_stored}},
      {"etcdsafe_continuous_events_recorded_total", {t.events_recorded, &e.events_recorded}},
      {"etcdsafe_continuous_stored_bytes_total", {t.bytes_stored, &e.bytes_stored}},
      {"etcdsafe_continuous_gaps_total", {t.gaps, &e.gaps}},
      {"etcdsafe_continuous_chains_started_total", {t.chains_started, &e.chains_started}},
      {"etcdsafe_continuous_upload_failures_total", {t.upload_failures, &e.upload_failures}},
      {"etcdsafe_continuous_reconnects_total", {t.reconnects, &e.reconnects}},
  };
  for (const auto& [name, v] : counters) {
    const auto [now, exported] = v;
    if (now > *exported) {
      metrics_.Add(name, repo, static_cast<double>(now - *exported));
      *exported = now;
    }
  }
}

std::string Agent::RenderMetrics() {
  RefreshContinuousMetrics();
  return metrics_.Render();
}

void Agent::Notify(Notification n) {
  if (n.kind == Notification::Kind::kRecovery) {
    // Alertmanager resolves by label set: the recovery carries the firing alert's labels.
    if (auto it = active_alerts_.find(n.alertname); it != active_alerts_.end()) {
      n.job = it->second.job;
      n.repo = it->second.repo;
      n.severity = it->second.severity;
      active_alerts_.erase(it);
    }
  } else {
    active_alerts_[n.alertname] = n;
  }
  if (notifier_) notifier_->Send(n);
}

void Agent::ResendActive() {
  for (auto& [name, n] : active_alerts_) {
    Notification again = n;
    again.repeat = true;
    again.ends_at = Clock::now() + kFiringExpiry;  // starts_at stays: the same alert
    if (notifier_) notifier_->Send(again);
  }
}

// ------------------------------------------------------------------ reload, stop

void Agent::DoReload() {
  AgentConfig next;
  try {
    next = LoadConfig(cfg_.path);
  } catch (const std::exception& e) {
    log_.Log(LogLevel::kError, "config.reload_failed", "new configuration rejected; the old one keeps running",
             {{"path", cfg_.path}, {"error", std::string(e.what())}});
    return;
  }
  const bool listen_changed = next.http_listen != cfg_.http_listen;
  std::vector<std::string> gone;
  for (const auto& old : cfg_.repositories) {
    bool kept = false;
    for (const auto& n : next.repositories) kept = kept || n.name == old.name;
    if (!kept) gone.push_back(old.name);
  }
  const std::string continuous_fp = ContinuousFingerprint(next);
  const std::string old_continuous_repo = cfg_.continuous.enabled ? cfg_.continuous.repository : "";
  AgentConfig previous = std::move(cfg_);
  cfg_ = std::move(next);
  if (continuous_fp != continuous_fp_) {
    const bool running = !continuous_fp_.empty();
    if (running) {
      log_.Log(LogLevel::kInfo, "continuous.restart",
               continuous_fp.empty() ? "continuous backup removed from the configuration: stopping it"
                                     : "continuous backup configuration changed: restarting the recorder",
               {{"repo", old_continuous_repo}});
      StopContinuous(std::chrono::milliseconds::max());
    }
    if (!old_continuous_repo.empty() && (continuous_fp.empty() || old_continuous_repo != cfg_.continuous.repository)) {
      for (const char* fam : kContinuousFamilies) metrics_.RemoveMatching(fam, {{"repo", old_continuous_repo}});
    }
    StartContinuous();
  }
  if (listen_changed) {
    try {
      http_.reset();
      StartHttp();
    } catch (const std::exception& e) {
      log_.Log(LogLevel::kError, "http.failed", "could not listen on the new address; metrics are not served",
               {{"listen", cfg_.http_listen}, {"error", std::string(e.what())}});
    }
  }
  for (const auto& name : gone) {
    for (const char* fam : {"etcdsafe_backup_last_success_timestamp_seconds", "etcdsafe_backup_last_attempt_timestamp_seconds",
                            "etcdsafe_backup_stored_bytes", "etcdsafe_repository_backups", "etcdsafe_repository_bytes",
                            "etcdsafe_retention_deleted_total"}) {
      metrics_.Remove(fam, {{"repo", name}});
    }
  }
  notifier_ = std::make_unique<Notifier>(cfg_.webhooks, &log_);
  ApplyConfigMetrics();
  ScanRepositories(false);
  PlanJobs(Clock::now(), false);
  log_.Log(LogLevel::kInfo, "config.reloaded", "configuration reloaded",
           {{"path", cfg_.path}, {"repositories", static_cast<int64_t>(cfg_.repositories.size())}});
}

void Agent::RequestStop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  // The continuous job stops at once, in parallel with a running scheduled job's grace.
  std::lock_guard<std::mutex> l(cont_mu_);
  if (continuous_) continuous_->RequestStop();
}

void Agent::RequestReload() {
  std::lock_guard<std::mutex> l(mu_);
  reload_ = true;
  cv_.notify_all();
}

bool Agent::WaitIdle(std::chrono::milliseconds limit) {
  std::unique_lock<std::mutex> l(mu_);
  return cv_.wait_for(l, limit, [this] { return !job_running_; });
}

void Agent::HandleSignal(int sig) {
  if (sig == SIGHUP) {
    log_.Log(LogLevel::kInfo, "config.reload_requested", "SIGHUP: reloading the configuration between jobs");
    RequestReload();
    return;
  }
  if (stopping_.exchange(true)) return;  // the first signal's handling is under way
  bool running;
  {
    std::lock_guard<std::mutex> l(mu_);
    running = job_running_;
  }
  log_.Log(LogLevel::kInfo, "agent.stopping", running ? "stopping after the running job" : "stopping",
           {{"signal", int64_t{sig}}, {"grace_s", static_cast<int64_t>(cfg_.shutdown_grace.count())}});
  RequestStop();
  if (WaitIdle(cfg_.shutdown_grace)) return;
  log_.Log(LogLevel::kWarn, "agent.cancel", "the running job did not end within the grace period; cancelling it");
  cancel_ = true;
  if (WaitIdle(kCancelLimit)) return;
  log_.Log(LogLevel::kError, "agent.abort", "the job did not stop; removing its partial output and exiting");
  RemovePendingCleanups();
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(0);
}

// ------------------------------------------------------------------ main loop

int Agent::Run() {
  ApplyConfigMetrics();
  metrics_.Set("etcdsafe_agent_start_timestamp_seconds", {}, UnixD(Clock::now()));
  MakeDirs(cfg_.state_dir, 0700);
  LoadState();
  StartHttp();
  notifier_ = std::make_unique<Notifier>(cfg_.webhooks, &log_);
  ScanRepositories(true);
  PlanJobs(Clock::now(), true);
  StartContinuous();
  {
    LogFields f{{"config", cfg_.path},
                {"repositories", static_cast<int64_t>(cfg_.repositories.size())},
                {"timezone", cfg_.timezone},
                {"http", cfg_.http_listen.empty() ? std::string("off") : cfg_.http_listen + " (port " + std::to_string(http_port_.load()) + ")"}};
    for (JobKind k : {JobKind::kBackup, JobKind::kPrune, JobKind::kDrill, JobKind::kPkiCheck}) {
      if (jobs_[k].next) f.emplace_back(std::string(KindName(static_cast<int>(k))) + "_next", Iso(*jobs_[k].next));
    }
    if (cfg_.continuous.enabled) f.emplace_back("continuous_repo", cfg_.continuous.repository);
    log_.Log(LogLevel::kInfo, "agent.started", "agent started", f);
  }
  ReleaseIdleMemory();  // what only the start-up (CLI, config, repository scan, TLS set-up) used
  next_probe_ = std::chrono::steady_clock::now();
  next_resend_ = next_probe_ + kResendInterval;
  for (;;) {
    {
      std::unique_lock<std::mutex> l(mu_);
      if (stop_) break;
      if (reload_) {
        reload_ = false;
        l.unlock();
        DoReload();
        continue;
      }
    }
    Clock::time_point now = Clock::now();
    bool due = false;
    for (auto& [k, st] : jobs_) due = due || (st.next && *st.next <= now);
    if (due) {
      {
        std::lock_guard<std::mutex> l(mu_);
        if (stop_) break;
        job_running_ = true;
      }
      RunDue(now);
      {
        std::lock_guard<std::mutex> l(mu_);
        job_running_ = false;
      }
      // What the job freed and the code only it ran go back while the agent idles
      // (base/idle_memory.h).
      ReleaseIdleMemory();
      cv_.notify_all();
      continue;
    }
    if (std::chrono::steady_clock::now() >= next_resend_) {
      ResendActive();
      next_resend_ = std::chrono::steady_clock::now() + kResendInterval;
    }
    if (std::chrono::steady_clock::now() >= next_probe_) {
      ProbeEtcd();
      next_probe_ = std::chrono::steady_clock::now() + kProbeInterval;
      continue;
    }
    CheckStaleness(now);
    // Sleep until the next job, probe or staleness deadline (at most a minute, so that a
    // wall-clock jump or a suspend is noticed soon).
    auto sleep = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::min(next_probe_, next_resend_) - std::chrono::steady_clock::now());
    for (auto& [k, st] : jobs_) {
      if (st.next) sleep = std::min(sleep, std::chrono::duration_cast<std::chrono::milliseconds>(*st.next - now));
    }
    if (cfg_.backup.enabled && last_backup_success_unix_ > 0 && !backup_stale_ && backup_max_age_s_ > 0) {
      auto deadline = FromUnix(last_backup_success_unix_ + backup_max_age_s_) + std::chrono::seconds(1);
      sleep = std::min(sleep, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now));
    }
    sleep = std::clamp<std::chrono::milliseconds>(sleep, std::chrono::milliseconds(5), kMaxSleep);
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, sleep, [this] { return stop_ || reload_; });
  }
  // The continuous job was asked to stop with the agent (RequestStop); it stores what it
  // recorded within shutdown_grace.
  if (!StopContinuous(std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.shutdown_grace + kCancelLimit))) {
    log_.Log(LogLevel::kError, "agent.abort",
             "the continuous backup did not stop; exiting (what it did not store is still in etcd's history)");
    RemovePendingCleanups();
    std::fflush(stdout);
    std::fflush(stderr);
    std::_Exit(0);
  }
  log_.Log(LogLevel::kInfo, "agent.stopped", "agent stopped");
  http_.reset();
  notifier_.reset();
  return 0;
}

}  // namespace etcdsafe::agent
