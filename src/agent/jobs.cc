#include "agent/jobs.h"

#include <absl/time/clock.h>

#include <algorithm>

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

}  // namespace etcdsafe::agent
