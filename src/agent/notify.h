// Webhook notifications: failure, recovery and staleness of backups and drills, POSTed as
// JSON to the targets of `alerts.webhooks` (agent/config.h), with cpp-httplib.
//
// Contract:
//   * Send() never blocks on the network: it copies the notification into each target's
//     bounded queue (default 100 entries; when full the oldest entry is dropped and counted)
//     and returns. Each target has its own delivery thread, so a hanging target delays only
//     its own notifications; one target's notifications are delivered in Send() order.
//   * A delivery is retried with exponential backoff (1 s, ×2, capped at 60 s; a 429's
//     Retry-After is honoured up to the cap) until WebhookConfig::max_attempts attempts
//     have been made, on connection errors, timeouts, 5xx and 429. Any other status
//     outside 2xx fails at once. WebhookConfig::timeout bounds each attempt.
//   * WebhookConfig::ca_file verifies HTTPS targets; bearer_token_file is read at each
//     attempt ("Authorization: Bearer <file contents, trailing whitespace removed>").
//     Environment proxies are not used.
//   * Payloads (summary, description and repo pass through RedactSecrets first):
//       kAlertmanager: Alertmanager API v2 body, POSTed to the configured URL (the full
//         .../api/v2/alerts): [{"labels":{"alertname","job","repo","severity",
//         "service":"etcdsafe"},"annotations":{"summary","description"},"startsAt",
//         "endsAt","generatorURL"}]. Empty labels are left out. Firing kinds send endsAt only
//         when Notification::ends_at is set (else Alertmanager applies its resolve_timeout);
//         kRecovery sends endsAt = ends_at if set and not in the future, else now: that
//         resolves the alert.
//       kSlack: {"text":"[FIRING] <alertname>: <summary> (job <job>, repo <repo>)\n<description>"}
//         for kFailure, "[STALE]" for kStale, "[RESOLVED]" for kRecovery; the header line has
//         no line breaks; &, <, > escaped as Slack requires.
//       kJson: {"kind":"failure|recovery|stale","status":"firing|resolved","alertname",
//         "job","repo","severity","service":"etcdsafe","summary","description",
//         "starts_at","ends_at"(when set)}.
//   * Outcomes go to the EventLog (if any): notify.sent (info), notify.retry (warn, per
//     failed attempt), notify.failed (error, after the last attempt), notify.dropped
//     (warn). URLs in log lines are redacted (RedactSecrets); tokens are never logged.
//   * The destructor stops accepting work and gives queued and in-flight deliveries about
//     2 s (NotifierOptions::stop_grace) to finish; transfers still running then are aborted
//     and count as failed, entries never started count as dropped.
//   * All public methods are thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "agent/config.h"
#include "agent/event_log.h"

namespace etcdsafe::agent {

struct Notification {
  enum class Kind { kFailure, kRecovery, kStale };
  Kind kind = Kind::kFailure;
  std::string alertname;  // e.g. EtcdBackupFailed
  std::string job;        // backup, drill, prune
  std::string repo;       // repository name
  std::string summary;
  std::string description;
  std::chrono::system_clock::time_point starts_at;  // epoch (default): now at send time
  std::chrono::system_clock::time_point ends_at;    // recovery time; for firing kinds an optional expiry
  std::string severity = "critical";
  std::string generator_url;  // optional (Alertmanager generatorURL)
  // A re-send of a firing alert that is still active: delivered to Alertmanager targets
  // only (which resolve an alert by themselves after resolve_timeout or its endsAt unless
  // it is re-sent); chat-style targets get each transition once.
  bool repeat = false;
};

struct NotifierOptions {
  size_t queue_capacity = 100;  // per target
  std::chrono::milliseconds initial_backoff{1000};
  std::chrono::milliseconds max_backoff{60000};
  std::chrono::milliseconds stop_grace{2000};
};

class Notifier {
 public:
  Notifier(std::vector<WebhookConfig> targets, EventLog* log /* may be null; must outlive the Notifier */,
           NotifierOptions options = {});
  ~Notifier();
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  // Queues `n` for every target and returns at once.
  void Send(const Notification& n);

  struct Stats {
    uint64_t delivered = 0, failed = 0, dropped = 0;
    uint64_t attempts = 0;  // HTTP requests made (including retries)
  };
  // Sums over all targets.
  Stats stats() const;
  // Sums over the targets with this URL (zeros for an unknown URL).
  Stats stats(const std::string& url) const;

  // Waits until every queue is empty and nothing is in flight (or being retried).
  // Returns false if that did not happen within `limit`.
  bool WaitIdle(std::chrono::milliseconds limit);

 private:
  struct Target;
  std::vector<std::unique_ptr<Target>> targets_;
};

// The request body for one target format (exposed for tests and for `agent --check-config`).
std::string RenderNotification(const Notification& n, WebhookConfig::Format format,
                               std::chrono::system_clock::time_point now);

}  // namespace etcdsafe::agent
