#include "agent/jobs.h"

#include <absl/time/clock.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "backup/repo_ops.h"
#include "backup/repository.h"
#include "base/error.h"
#include "base/file.h"
#include "pipeline/compress.h"

namespace etcdsafe::agent {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string TrimNewline(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

const RepositoryConfig& RepoByName(const AgentConfig& cfg, const std::string& name) {
  for (const auto& r : cfg.repositories) {
    if (r.name == name) return r;
  }
  if (name.empty() && !cfg.repositories.empty()) return cfg.repositories.front();
  throw Error(ErrorCode::kInvalidArgument, "no repository named \"" + name + "\"");
}

// Retention's calendar buckets (daily, weekly, ...) in the configured time zone: its UTC
// offset now (catalog::RetentionPolicy takes a fixed offset; across a DST change a bucket
// boundary is off by the hour of the change).
// A retention.utc_offset given in the file wins.
catalog::RetentionPolicy InZone(catalog::RetentionPolicy p, const absl::TimeZone& tz) {
  if (p.utc_offset.count() == 0) p.utc_offset = std::chrono::minutes(tz.At(absl::Now()).offset / 60);
  return p;
}

}  // namespace

client::ClientConfig ClientConfigFor(const EtcdConfig& etcd) {
  client::ClientConfig c;
  c.endpoints = etcd.endpoints;
  c.cacert = etcd.cacert;
  c.cert = etcd.cert;
  c.key = etcd.key;
  c.user = etcd.user;
  if (!etcd.user.empty() && !etcd.password_file.empty()) {
    c.password = TrimNewline(ReadSmallFile(etcd.password_file, 4096));
  }
  c.insecure_skip_tls_verify = etcd.insecure_skip_tls_verify;
  c.dial_timeout = etcd.dial_timeout;
  c.command_timeout = etcd.command_timeout;
  return c;
}

store::StoreOptions StoreOptionsFor(const RepositoryConfig& repo) {
  store::StoreOptions o;
  o.s3_endpoint = repo.s3.endpoint;
  if (!repo.s3.region.empty()) o.region = repo.s3.region;
  o.path_style = repo.s3.path_style.value_or(false);  // false: chosen as the AWS CLI does
  o.ca_file = repo.s3.ca_file;
  o.insecure_skip_tls_verify = repo.s3.insecure_skip_tls_verify;
  o.credentials_file = repo.s3.credentials_file;
  o.profile = repo.s3.profile;
  o.part_size = size_t{5} << 20;  // as the CLI (repo_flags.cc): bounds a backup's memory
  return o;
}

std::optional<pipeline::KeySpec> KeyFor(const EncryptionConfig& enc) {
  if (!enc.key_file.empty()) return pipeline::LoadKeyFile(enc.key_file);
  if (!enc.passphrase_file.empty()) return pipeline::LoadPassphraseFile(enc.passphrase_file);
  return std::nullopt;
}

std::string FailureReason(const Error& e) {
  const std::string what = e.what();
  switch (e.code()) {
    case ErrorCode::kUnavailable:
      return what.find("unhealthy") != std::string::npos ? "unhealthy" : "unreachable";
    case ErrorCode::kLocked: return "locked";
    case ErrorCode::kDataLoss: return "integrity";
    case ErrorCode::kUnauthenticated:
    case ErrorCode::kPermissionDenied: return "auth";
    case ErrorCode::kIo:
    case ErrorCode::kNotFound:
    case ErrorCode::kAlreadyExists: return "storage";
    case ErrorCode::kInvalidArgument: return "config";
    default: return "other";
  }
}

BackupResult RunBackupOnce(const AgentConfig& cfg, const std::atomic<bool>& cancel,
                           std::chrono::system_clock::time_point now) {
  const auto start = std::chrono::steady_clock::now();
  BackupResult out;
  for (const auto& r : cfg.repositories) out.repos.push_back(RepoBackupResult{r.name, false, "", "", 0, ""});
  try {
    backup::BackupOptions opts;
    for (const auto& r : cfg.repositories) {
      opts.repos.push_back(r.url);
      opts.repo_store_options.push_back(StoreOptionsFor(r));
    }
    opts.compression = pipeline::ParseCompression(cfg.compression);
    opts.compression_level = cfg.compression_level;
    opts.key = KeyFor(cfg.encryption);
    opts.name_prefix = cfg.name_prefix;
    std::unique_ptr<client::EtcdClient> client = client::EtcdClient::Connect(ClientConfigFor(cfg.etcd));
    backup::BackupReport report = backup::RunBackup(
        *client, opts,
        [&](uint64_t) {
          if (cancel.load(std::memory_order_relaxed)) {
            throw Error(ErrorCode::kUnavailable, "interrupted: the agent is stopping");
          }
        },
        now);
    out.manifest = report.manifest;
    out.notes = report.notes;
    for (size_t i = 0; i < report.repos.size() && i < out.repos.size(); i++) {
      RepoBackupResult& rr = out.repos[i];
      rr.ok = report.repos[i].ok;
      if (!rr.ok) {
        rr.error = report.repos[i].error;
        rr.reason = FailureReason(Error(report.repos[i].code, report.repos[i].error));
      }
    }
    out.ok = report.any_ok();
  } catch (const Error& e) {
    out.ok = false;
    out.error = e.what();
    out.reason = cancel.load() ? "interrupted" : FailureReason(e);
    for (auto& rr : out.repos) {
      rr.ok = false;
      rr.error = out.error;
      rr.reason = out.reason;
    }
  } catch (const std::exception& e) {
    out.ok = false;
    out.error = std::string("internal: ") + e.what();
    out.reason = "other";
  }
  // Retention, per repository that has the new backup. A failure here does not make the
  // backup a failure; it is reported on its own.
  if (out.ok && !cfg.backup.retention.Empty()) {
    for (size_t i = 0; i < out.repos.size(); i++) {
      RepoBackupResult& rr = out.repos[i];
      if (!rr.ok) continue;
      try {
        auto repo = backup::OpenRepository(cfg.repositories[i].url, StoreOptionsFor(cfg.repositories[i]), true);
        backup::PruneReport pr = backup::Prune(*repo, InZone(cfg.backup.retention, cfg.tz), false, std::chrono::system_clock::now());
        for (const auto& d : pr.decisions) rr.retention_removed += d.keep ? 0 : 1;
      } catch (const std::exception& e) {
        rr.retention_error = e.what();
      }
    }
  }
  out.seconds = SecondsSince(start);
  return out;
}

DrillResult RunDrillOnce(const AgentConfig& cfg) {
  const auto start = std::chrono::steady_clock::now();
  DrillResult out;
  try {
    const RepositoryConfig& rc = RepoByName(cfg, cfg.drill.repository);
    auto repo = backup::OpenRepository(rc.url, StoreOptionsFor(rc), true);
    backup::Manifest m = repo->Find(cfg.drill.backup);
    out.backup_id = m.id;
    ops::DrillOptions o;
    o.not_kubernetes = cfg.drill.not_kubernetes;
    if (cfg.drill.max_age.count() > 0) o.max_age = cfg.drill.max_age;
    o.etcd_binary = cfg.drill.etcd_binary;
    if (!cfg.state_dir.empty()) {
      o.work_parent = cfg.state_dir + "/drill";
      MakeDirs(o.work_parent, 0700);
    }
    out.report = ops::DrillRepositoryBackup(*repo, m.id, KeyFor(cfg.encryption), {}, o);
    out.ok = out.report.ok;
    if (!out.ok) {
      out.error = ops::DrillSummaryLine(out.report);
      out.reason = "check";
      for (const auto& c : out.report.checks) {
        if (!c.ok) {
          out.reason = c.name == "freshness" ? "stale" : c.name == "etcd binary" ? "etcd_binary" : "check";
          break;
        }
      }
    }
  } catch (const Error& e) {
    out.ok = false;
    out.error = e.what();
    out.reason = FailureReason(e);
  } catch (const std::exception& e) {
    out.ok = false;
    out.error = std::string("internal: ") + e.what();
    out.reason = "other";
  }
  out.seconds = SecondsSince(start);
  return out;
}

std::vector<PruneResult> RunPruneOnce(const AgentConfig& cfg, const catalog::RetentionPolicy& policy) {
  std::vector<PruneResult> out;
  for (const auto& rc : cfg.repositories) {
    PruneResult pr;
    pr.repo = rc.name;
    try {
      auto repo = backup::OpenRepository(rc.url, StoreOptionsFor(rc), true);
      backup::PruneReport report = backup::Prune(*repo, InZone(policy, cfg.tz), false, std::chrono::system_clock::now());
      for (const auto& d : report.decisions) pr.removed += d.keep ? 0 : 1;
      pr.ok = true;
    } catch (const Error& e) {
      pr.error = e.what();
      pr.reason = FailureReason(e);
    } catch (const std::exception& e) {
      pr.error = std::string("internal: ") + e.what();
      pr.reason = "other";
    }
    out.push_back(std::move(pr));
  }
  return out;
}

RepoScan ScanRepository(const RepositoryConfig& rc) {
  RepoScan s;
  s.repo = rc.name;
  try {
    auto repo = backup::OpenRepository(rc.url, StoreOptionsFor(rc), false);
    std::vector<backup::Manifest> all = repo->ListBackups();  // oldest first
    s.backups = all.size();
    for (const auto& m : all) s.stored_bytes += m.stored_size;
    if (!all.empty()) s.newest = all.back();
    if (all.size() >= 2) s.previous = all[all.size() - 2];
    s.ok = true;
  } catch (const std::exception& e) {
    s.error = e.what();
  }
  return s;
}

bool ProbeEndpoint(const EtcdConfig& etcd, const std::string& endpoint, std::string* why) {
  try {
    EtcdConfig one = etcd;
    one.endpoints = {endpoint};
    client::ClientConfig c = ClientConfigFor(one);
    c.command_timeout = std::max(c.dial_timeout, std::chrono::milliseconds(2000));
    std::unique_ptr<client::EtcdClient> client = client::EtcdClient::Connect(c);
    client->Health();
    return true;
  } catch (const std::exception& e) {
    if (why != nullptr) *why = e.what();
    return false;
  }
}

// ------------------------------------------------------------------ continuous job

follow::FollowOptions FollowOptionsFor(const AgentConfig& cfg) {
  const ContinuousJobConfig& j = cfg.continuous;
  const RepositoryConfig& rc = RepoByName(cfg, j.repository);
  follow::FollowOptions o;
  o.repo_url = rc.url;
  o.store_options = StoreOptionsFor(rc);
  o.client = ClientConfigFor(cfg.etcd);
  o.compression = pipeline::ParseCompression(cfg.compression);
  o.compression_level = cfg.compression_level;
  o.key = KeyFor(cfg.encryption);
  o.name_prefix = cfg.name_prefix;
  o.segment_max_age = j.segment_max_age;
  o.segment_max_bytes = j.segment_max_bytes;
  o.heartbeat = j.heartbeat;
  o.hash_every = j.hash_every;
  o.full_every = j.full_every;
  o.full_every_events = j.full_every_events;
  o.spill_dir = j.spill_dir;
  o.max_spill_bytes = j.max_spill_bytes;
  return o;
}

std::string ContinuousFingerprint(const AgentConfig& cfg) {
  if (!cfg.continuous.enabled) return "";
  const ContinuousJobConfig& j = cfg.continuous;
  nlohmann::json f;
  f["job"] = {j.repository, j.segment_max_age.count(), j.segment_max_bytes, j.heartbeat.count(), j.hash_every.count(),
              j.full_every.count(), j.full_every_events, j.spill_dir, j.max_spill_bytes};
  const RepositoryConfig& rc = RepoByName(cfg, j.repository);
  f["repo"] = {rc.url, rc.s3.endpoint, rc.s3.region, rc.s3.path_style.has_value() ? int(*rc.s3.path_style) : -1,
               rc.s3.ca_file, rc.s3.credentials_file, rc.s3.profile, rc.s3.insecure_skip_tls_verify};
  const EtcdConfig& e = cfg.etcd;
  f["etcd"] = {e.endpoints, e.cacert, e.cert, e.key, e.user, e.password_file, e.dial_timeout.count(),
               e.command_timeout.count(), e.insecure_skip_tls_verify};
  f["data"] = {cfg.encryption.key_file, cfg.encryption.passphrase_file, cfg.compression, cfg.compression_level,
               cfg.name_prefix, cfg.shutdown_grace.count()};
  return f.dump();
}

ContinuousJob::ContinuousJob(const AgentConfig& cfg, EventLog& log, std::chrono::milliseconds stop_timeout,
                             FailureHook on_failure)
    : cfg_(cfg), log_(log), stop_timeout_(stop_timeout), on_failure_(std::move(on_failure)) {
  snap_.repo = cfg_.continuous.repository;
  snap_.started_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  thread_ = std::thread([this] { Loop(); });
}

ContinuousJob::~ContinuousJob() {
  RequestStop();
  Join(std::chrono::milliseconds::max());
}

void ContinuousJob::RequestStop() {
  std::lock_guard<std::mutex> l(mu_);
  stop_ = true;
  cv_.notify_all();
}

bool ContinuousJob::Join(std::chrono::milliseconds limit) {
  {
    std::unique_lock<std::mutex> l(mu_);
    auto ended = [this] { return done_; };
    if (limit == std::chrono::milliseconds::max()) {
      cv_.wait(l, ended);
    } else if (!cv_.wait_for(l, limit, ended)) {
      return false;
    }
  }
  std::lock_guard<std::mutex> j(join_mu_);
  if (thread_.joinable()) thread_.join();
  return true;
}

void ContinuousJob::Fold(ContinuousSnapshot* s, const follow::FollowStatus& run) {
  follow::FollowStatus& t = s->totals;
  t.segments_stored += run.segments_stored;
  t.events_recorded += run.events_recorded;
  t.bytes_stored += run.bytes_stored;
  t.gaps += run.gaps;
  t.chains_started += run.chains_started;
  t.upload_failures += run.upload_failures;
  t.reconnects += run.reconnects;
  if (!run.chain.empty()) t.chain = run.chain;
  if (run.base_revision > 0) t.base_revision = run.base_revision;
  if (run.recorded_revision > 0) t.recorded_revision = run.recorded_revision;
  if (run.stored_revision > 0) t.stored_revision = run.stored_revision;
  t.stored_time_ms = std::max(t.stored_time_ms, run.stored_time_ms);
  t.pending_bytes = run.pending_bytes;
  if (!run.last_error.empty()) t.last_error = run.last_error;
  s->ever_stored = s->ever_stored || run.stored_time_ms > 0;
}

ContinuousSnapshot ContinuousJob::Snapshot() const {
  std::lock_guard<std::mutex> l(mu_);
  ContinuousSnapshot out = snap_;
  if (current_) Fold(&out, current_->status());  // the running recorder's counters on top
  return out;
}

void ContinuousJob::Loop() {
  using std::chrono::milliseconds;
  const std::string repo = cfg_.continuous.repository;
  const LogFields where = {{"job", std::string("continuous")}, {"repo", repo}};
  auto with = [&](LogFields extra) {
    LogFields f = where;
    for (auto& x : extra) f.push_back(std::move(x));
    return f;
  };
  milliseconds backoff(1000);
  while (!stop_) {
    const auto run_start = std::chrono::steady_clock::now();
    std::string error, reason;
    try {
      MakeDirs(cfg_.continuous.spill_dir, 0700);
      follow::FollowOptions o = FollowOptionsFor(cfg_);
      o.stop_timeout = stop_timeout_;
      o.should_stop = [this] { return stop_.load(); };
      o.log = [this, with](const std::string& line) {
        const bool gap = line.find("gap") != std::string::npos;
        const bool bad = gap || line.find("failed") != std::string::npos || line.rfind("etcd: ", 0) == 0 ||
                         line.find("not stored") != std::string::npos;
        log_.Log(bad ? LogLevel::kWarn : LogLevel::kInfo, gap ? "continuous.gap" : "continuous.recorder", line,
                 with({}));
      };
      auto rec = std::make_shared<follow::Recorder>(std::move(o));
      {
        std::lock_guard<std::mutex> l(mu_);
        current_ = rec;
        snap_.running = true;
      }
      log_.Log(LogLevel::kInfo, "continuous.start", "continuous backup started",
               with({{"segment_max_age_ms", static_cast<int64_t>(cfg_.continuous.segment_max_age.count())}}));
      auto finish = [&] {
        std::lock_guard<std::mutex> l(mu_);
        Fold(&snap_, rec->status());
        current_.reset();
        snap_.running = false;
      };
      try {
        rec->Run();
      } catch (...) {
        finish();
        throw;
      }
      finish();
      if (!stop_) {
        error = "the recorder returned without being stopped";
        reason = "other";
      }
    } catch (const Error& e) {
      error = e.what();
      reason = FailureReason(e);
    } catch (const std::exception& e) {
      error = std::string("internal: ") + e.what();
      reason = "other";
    }
    if (!error.empty()) {
      {
        std::lock_guard<std::mutex> l(mu_);
        snap_.failures++;
        snap_.totals.last_error = error;
      }
      if (std::chrono::steady_clock::now() - run_start > std::chrono::minutes(5)) backoff = milliseconds(1000);
      log_.Log(LogLevel::kError, "continuous.failed", "continuous backup failed; retrying",
               with({{"reason", reason}, {"error", error}, {"retry_in_ms", static_cast<int64_t>(backoff.count())}}));
      if (on_failure_) on_failure_(reason, error);
    }
    if (stop_) break;
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait_for(l, backoff, [this] { return stop_.load(); });
    backoff = std::min(backoff * 2, milliseconds(60000));
  }
  log_.Log(LogLevel::kInfo, "continuous.stopped", "continuous backup stopped", where);
  std::lock_guard<std::mutex> l(mu_);
  done_ = true;
  snap_.running = false;
  cv_.notify_all();
}

}  // namespace etcdsafe::agent
