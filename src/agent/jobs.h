// The agent's jobs, one attempt each: a backup to every repository (then retention), a
// drill of one backup, a prune, and a scan of a repository's backups. They call the same
// workflows as the CLI (backup::RunBackup, backup::Prune, ops::DrillRepositoryBackup), so a
// backup run by the agent writes exactly what `etcdsafe backup` writes. No scheduling, no
// retries, no metrics here (agent.h does that); nothing throws except for a programming error:
// every failure comes back as a result with a one-line error and a reason label.
//
// Failure reasons (the `reason` label of etcdsafe_*_failures_total): unreachable, unhealthy,
// locked, storage, integrity, auth, interrupted, config, other.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/config.h"
#include "backup/backup.h"
#include "client/etcd_client.h"
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

}  // namespace etcdsafe::agent
