// The agent's configuration file (`etcdsafe agent --config FILE`), YAML via yaml-cpp.
//
// Every key is documented in deploy/agent.example.yaml. LoadConfig parses and validates the
// whole file before returning: unknown keys, wrong types, bad durations, bad schedules,
// unknown time zones, unreadable or missing referenced files (TLS files, key files) and
// contradictory settings are errors. An error is one line naming the file, the line and the
// key path, e.g.
//   /etc/etcdsafe/agent.yaml:12: jobs.backup.schedule: "0 */6 * *": cron needs 5 fields
// and is thrown as etcdsafe::Error(kInvalidArgument). Relative paths in the file (TLS files,
// key files, state_dir, ca_file) are made absolute relative to the file's directory.
//
// Durations are written as Go-style "1s", "15m", "24h", "1h30m", "7d" (d = 24h); most keys
// take whole seconds, jobs.continuous' durations (and the etcd/webhook timeouts) milliseconds
// ("500ms"). Sizes are written "8MiB" (B, KiB, MiB, GiB, TiB; K, M, G, T mean the same).
#pragma once

#include <absl/time/time.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "agent/schedule.h"
#include "catalog/retention.h"

namespace etcdsafe::agent {

struct EtcdConfig {
  std::vector<std::string> endpoints;  // at least one; http:// or https:// URLs or host:port
  std::string cacert, cert, key;       // absolute paths or empty
  std::string user;                    // "name:password" is refused in the file; name only,
  std::string password_file;           // with the password read from this file at use
  std::chrono::milliseconds dial_timeout{5000};
  std::chrono::milliseconds command_timeout{0};  // 0: none (snapshots of big dbs take long)
  bool insecure_skip_tls_verify = false;         // as --insecure-skip-tls-verify (testing only)
};

struct S3Config {
  std::string endpoint;           // empty: AWS
  std::string region;             // empty: us-east-1
  std::optional<bool> path_style; // unset: as the CLI decides (IP/localhost → path style)
  std::string ca_file;            // absolute path or empty
  std::string credentials_file;   // optional AWS shared-credentials-style file; else env
  std::string profile;            // profile in that file
  bool insecure_skip_tls_verify = false;  // as --s3-insecure-skip-tls-verify (testing only)
};

struct RepositoryConfig {
  std::string name;  // label used in metrics/logs; default: the url with credentials removed
  std::string url;   // file:///abs/path or s3://bucket/prefix
  S3Config s3;
};

struct EncryptionConfig {
  std::string key_file;         // exactly one of these two, or neither (no encryption)
  std::string passphrase_file;
};

struct RetryConfig {
  int max_attempts = 3;                       // 1 = no retry
  std::chrono::seconds initial_backoff{10};   // doubled after each failure
  std::chrono::seconds max_backoff{300};
};

struct BackupJobConfig {
  bool enabled = false;
  Schedule schedule;
  catalog::RetentionPolicy retention;  // empty: no pruning after the backup
  RetryConfig retry;
  // Stale after this long without a successful backup (readyz, staleness alert and metric).
  // Default (computed by LoadConfig): twice the schedule's interval after the load time,
  // 2 × (Next(Next(now)) - Next(now)), at least 60 s ("@every 10s" → 60 s, "0 */6 * * *" → 12 h).
  std::chrono::seconds max_age{0};
};

struct DrillJobConfig {
  bool enabled = false;
  Schedule schedule;
  std::chrono::seconds max_age{0};  // the drilled backup must be newer (0: any age)
  std::string backup = "latest";    // backup id or "latest"
  std::string repository;           // repository name; default: the first repository
  bool not_kubernetes = false;
  std::string etcd_binary;          // default: "etcd" from PATH
};

struct PruneJobConfig {  // separate prune schedule (besides prune-after-backup)
  bool enabled = false;
  Schedule schedule;
  catalog::RetentionPolicy retention;  // required when enabled
};

// jobs.pki_check: the control plane's certificates (controlplane::CheckPki, as `etcdsafe
// pki check`) checked on a schedule and once at start, exported as metrics
// (etcdsafe_certificate_expiry_timestamp_seconds and friends, agent.h).
struct PkiCheckJobConfig {
  bool enabled = false;
  Schedule schedule;
  std::string kubernetes_dir = "/etc/kubernetes";  // absolute (relative: to the file)
  int warn_days = 30;                              // 0..3650: "expiring" below this many days left
};

// jobs.continuous: continuous backup (follow/recorder.h) into ONE repository, for the
// agent's whole life (not a scheduled job). The defaults are those of `backup --follow`.
struct ContinuousJobConfig {
  bool enabled = false;
  std::string repository;                           // repository name; default: the first
  std::chrono::milliseconds segment_max_age{1000};  // > 0, at most 1h
  uint64_t segment_max_bytes = 8u << 20;            // segment_max_size: 4 KiB .. 512 MiB
  std::chrono::milliseconds heartbeat{10000};       // >= segment_max_age
  std::chrono::milliseconds hash_every{300000};     // > 0
  std::chrono::milliseconds full_every{24 * 3600 * 1000};  // > 0
  uint64_t full_every_events = 10000000;            // 0: never by volume
  std::string spill_dir;                            // absolute; default <state_dir>/continuous-spill
  uint64_t max_spill_bytes = uint64_t{1} << 30;     // max_spill; 0: no spill (memory only)
  bool operator==(const ContinuousJobConfig&) const = default;
};

struct WebhookConfig {
  enum class Format { kAlertmanager, kSlack, kJson };
  std::string url;
  Format format = Format::kAlertmanager;
  std::chrono::milliseconds timeout{5000};
  int max_attempts = 5;
  std::string ca_file;
  std::string bearer_token_file;  // optional "Authorization: Bearer <contents>"
};

struct AgentConfig {
  std::string path;                 // absolute path of the file read
  std::string timezone = "UTC";     // IANA name
  absl::TimeZone tz;                // loaded from `timezone`
  EtcdConfig etcd;
  std::vector<RepositoryConfig> repositories;  // at least one; names unique
  EncryptionConfig encryption;
  std::string compression = "zstd";  // zstd | gzip | none
  int compression_level = 0;         // 0: codec default
  std::string name_prefix = "etcd-snapshot";
  BackupJobConfig backup;
  DrillJobConfig drill;
  PruneJobConfig prune;
  ContinuousJobConfig continuous;
  PkiCheckJobConfig pki_check;
  std::string http_listen = "127.0.0.1:9464";  // host:port; "" disables the HTTP server
  std::vector<WebhookConfig> webhooks;          // alerts.webhooks
  std::string state_dir;             // default: /var/lib/etcdsafe; holds agent-state.json
  std::chrono::seconds shutdown_grace{30};
  std::string log_format = "auto";   // auto | text | json
};

struct LoadOptions {
  // Check that referenced files (TLS, key, password, CA files) exist and are readable.
  // Off only for checking deployment files whose paths exist inside a container.
  bool check_files = true;
  // "Now" for computing defaults that depend on the schedule (backup.max_age).
  std::chrono::system_clock::time_point now = std::chrono::system_clock::now();
};

// Reads, parses and validates `path`. Throws Error(kInvalidArgument) as described above,
// kNotFound when the file itself does not exist.
AgentConfig LoadConfig(const std::string& path, const LoadOptions& options = {});
// The same for YAML text already in memory; `path` names it in errors and anchors
// relative paths (its directory).
AgentConfig ParseConfig(const std::string& yaml_text, const std::string& path, const LoadOptions& options = {});

// Parses a duration ("90s", "15m", "1h30m", "7d"). Throws kInvalidArgument.
// Go syntax (see ParseGoDuration in schedule.h); "0" is zero; a fraction of a second
// ("1500ms") is an error here, since the result is whole seconds.
std::chrono::seconds ParseDuration(const std::string& text);
// The same with millisecond resolution ("500ms", "1s", "1m30s"); a fraction of a
// millisecond is an error.
std::chrono::milliseconds ParseDurationMillis(const std::string& text);

// Every key LoadConfig accepts, as dotted paths without list indices, containers
// included: "etcd", "etcd.endpoints", "repositories", "repositories.s3.endpoint",
// "jobs.backup.retention.keep_daily", "alerts.webhooks.url", ... (sorted). The test
// checks that deploy/agent.example.yaml uses every one.
std::vector<std::string> KnownConfigKeys();

}  // namespace etcdsafe::agent
