#include "agent/notify.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "store/http_error.h"

namespace etcdsafe::agent {
namespace {

using Clock = std::chrono::steady_clock;
using SysClock = std::chrono::system_clock;

const char* KindName(Notification::Kind k) {
  switch (k) {
    case Notification::Kind::kFailure: return "failure";
    case Notification::Kind::kRecovery: return "recovery";
    case Notification::Kind::kStale: return "stale";
  }
  return "failure";
}

const char* FormatName(WebhookConfig::Format f) {
  switch (f) {
    case WebhookConfig::Format::kAlertmanager: return "alertmanager";
    case WebhookConfig::Format::kSlack: return "slack";
    case WebhookConfig::Format::kJson: return "json";
  }
  return "json";
}

bool IsSet(SysClock::time_point t) { return t.time_since_epoch().count() != 0; }

std::string SlackEscape(std::string_view s) {
  std::string r;
  for (char c : s) {
    if (c == '&') {
      r += "&amp;";
    } else if (c == '<') {
      r += "&lt;";
    } else if (c == '>') {
      r += "&gt;";
    } else {
      r.push_back(c);
    }
  }
  return r;
}

std::string OneLine(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

std::string Dump(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// "https://host:port/path?q#frag" → {"https://host:port", "/path?q"} (the config checked
// the scheme and that there is a host and no credentials).
std::pair<std::string, std::string> SplitUrl(const std::string& url) {
  const size_t host_at = url.find("://") + 3;
  size_t path_at = url.find_first_of("/?#", host_at);
  if (path_at == std::string::npos) path_at = url.size();
  std::string path = url.substr(path_at);
  path = path.substr(0, path.find('#'));
  if (path.empty() || path[0] != '/') path = "/" + path;
  return {url.substr(0, path_at), path};
}

std::string ReadToken(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("bearer_token_file " + path + ": cannot read");
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string tok = ss.str();
  while (!tok.empty() && (tok.back() == '\n' || tok.back() == '\r' || tok.back() == ' ' || tok.back() == '\t')) {
    tok.pop_back();
  }
  if (tok.empty()) throw std::runtime_error("bearer_token_file " + path + ": empty");
  if (tok.find_first_of("\r\n") != std::string::npos) {
    throw std::runtime_error("bearer_token_file " + path + ": more than one line");
  }
  return tok;
}

}  // namespace

std::string RenderNotification(const Notification& n, WebhookConfig::Format format, SysClock::time_point now) {
  const bool resolved = n.kind == Notification::Kind::kRecovery;
  const SysClock::time_point starts = IsSet(n.starts_at) ? n.starts_at : now;
  std::optional<SysClock::time_point> ends;
  if (resolved) {
    ends = IsSet(n.ends_at) && n.ends_at <= now ? n.ends_at : now;
  } else if (IsSet(n.ends_at)) {
    ends = n.ends_at;
  }
  const std::string alertname = n.alertname.empty() ? "EtcdsafeNotification" : n.alertname;
  const std::string repo = RedactSecrets(n.repo), summary = RedactSecrets(n.summary),
                    description = RedactSecrets(n.description), generator = RedactSecrets(n.generator_url);
  switch (format) {
    case WebhookConfig::Format::kAlertmanager: {
      nlohmann::ordered_json labels = nlohmann::ordered_json::object();
      labels["alertname"] = alertname;
      if (!n.job.empty()) labels["job"] = n.job;
      if (!repo.empty()) labels["repo"] = repo;
      if (!n.severity.empty()) labels["severity"] = n.severity;
      labels["service"] = "etcdsafe";
      nlohmann::ordered_json annotations = nlohmann::ordered_json::object();
      if (!summary.empty()) annotations["summary"] = summary;
      if (!description.empty()) annotations["description"] = description;
      nlohmann::ordered_json alert;
      alert["labels"] = labels;
      alert["annotations"] = annotations;
      alert["startsAt"] = FormatUtcMillis(starts);
      if (ends) alert["endsAt"] = FormatUtcMillis(*ends);
      if (!generator.empty()) alert["generatorURL"] = generator;
      return Dump(nlohmann::ordered_json::array({alert}));
    }
    case WebhookConfig::Format::kSlack: {
      const char* header = resolved ? "[RESOLVED]" : n.kind == Notification::Kind::kStale ? "[STALE]" : "[FIRING]";
      std::string text = std::string(header) + " " + alertname;
      if (!summary.empty()) text += ": " + summary;
      std::string where;
      if (!n.job.empty()) where += "job " + n.job;
      if (!repo.empty()) where += (where.empty() ? "" : ", ") + ("repo " + repo);
      if (!where.empty()) text += " (" + where + ")";
      text = SlackEscape(OneLine(text));
      if (!description.empty()) text += "\n" + SlackEscape(description);
      nlohmann::ordered_json j;
      j["text"] = text;
      return Dump(j);
    }
    case WebhookConfig::Format::kJson: {
      nlohmann::ordered_json j;
      j["kind"] = KindName(n.kind);
      j["status"] = resolved ? "resolved" : "firing";
      j["alertname"] = alertname;
      j["job"] = n.job;
      j["repo"] = repo;
      j["severity"] = n.severity;
      j["service"] = "etcdsafe";
      j["summary"] = summary;
      j["description"] = description;
      j["starts_at"] = FormatUtcMillis(starts);
      if (ends) j["ends_at"] = FormatUtcMillis(*ends);
      if (!generator.empty()) j["generator_url"] = generator;
      return Dump(j);
    }
  }
  return "{}";
}

struct Notifier::Target {
  struct Pending {
    std::string body;
    std::string alertname, kind;
  };
  struct Attempt {
    long status = 0;          // HTTP status, 0 when there was no response
    std::string error;        // why it failed (empty on 2xx)
    bool retryable = false;
    long retry_after_s = -1;
  };

  WebhookConfig cfg;
  std::string log_url;  // the URL with secrets removed
  EventLog* log;
  NotifierOptions opt;

  mutable std::mutex mu;
  std::condition_variable cv;       // work queued, or stopping
  std::condition_variable idle_cv;  // queue drained and nothing in flight
  std::deque<Pending> queue;
  bool busy = false;
  bool stopping = false;
  Stats stats;
  std::atomic<bool> abort{false};   // set with stopping; transfers end at abort_at
  std::atomic<int64_t> abort_at_ns{0};
  bool done = false;                // Run() returned (under mu)
  std::mutex client_mu;             // guards active and cut
  httplib::Client* active = nullptr;
  bool cut = false;
  std::thread thread;

  Target(WebhookConfig c, EventLog* l, NotifierOptions o)
      : cfg(std::move(c)), log_url(RedactSecrets(cfg.url)), log(l), opt(o) {}

  bool Expired() const {
    return abort.load(std::memory_order_acquire) &&
           Clock::now().time_since_epoch().count() >= abort_at_ns.load(std::memory_order_relaxed);
  }
  Clock::time_point AbortAt() const { return Clock::time_point(Clock::duration(abort_at_ns.load())); }

  void Log(LogLevel level, std::string_view event, std::string_view msg, LogFields fields) {
    if (log == nullptr) return;
    fields.insert(fields.begin(), {"url", log_url});
    fields.insert(fields.begin() + 1, {"format", std::string(FormatName(cfg.format))});
    log->Log(level, event, msg, fields);
  }

  void Enqueue(Pending p) {
    uint64_t dropped_now = 0;
    {
      std::lock_guard lock(mu);
      if (stopping) {
        stats.dropped++;
        dropped_now = stats.dropped;
      } else {
        if (queue.size() >= std::max<size_t>(opt.queue_capacity, 1)) {
          queue.pop_front();
          stats.dropped++;
          dropped_now = stats.dropped;
        }
        queue.push_back(std::move(p));
        cv.notify_all();
      }
    }
    // Powers of two only: a flood of drops must not become a flood of log lines.
    if (dropped_now != 0 && (dropped_now & (dropped_now - 1)) == 0) {
      Log(LogLevel::kWarn, "notify.dropped", "notification queue full or notifier stopping: oldest dropped",
          {{"dropped_total", static_cast<int64_t>(dropped_now)}});
    }
  }

  Attempt Post(const std::string& body) {
    Attempt a;
    std::string auth;
    if (!cfg.bearer_token_file.empty()) {
      try {
        auth = "Bearer " + ReadToken(cfg.bearer_token_file);
      } catch (const std::exception& e) {
        a.error = e.what();
        a.retryable = true;
        return a;
      }
    }
    const auto [base, path] = SplitUrl(cfg.url);
    auto client = std::make_unique<httplib::Client>(base);
    if (!client->is_valid()) {
      a.error = "not a usable URL";
      return a;
    }
    const time_t timeout_ms = std::max<time_t>(1, static_cast<time_t>(cfg.timeout.count()));
    client->set_connection_timeout(timeout_ms / 1000, (timeout_ms % 1000) * 1000);
    client->set_read_timeout(timeout_ms / 1000, (timeout_ms % 1000) * 1000);
    client->set_write_timeout(timeout_ms / 1000, (timeout_ms % 1000) * 1000);
    client->set_follow_location(false);
    if (!cfg.ca_file.empty()) client->set_ca_cert_path(cfg.ca_file);
    httplib::Request req;
    req.method = "POST";
    req.path = path;
    req.body = body;
    req.headers.emplace("Content-Type", "application/json");
    req.headers.emplace("User-Agent", "etcdsafe-agent");
    if (!auth.empty()) req.headers.emplace("Authorization", auth);
    std::string body_head;  // the first bytes of the response, for log lines
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      if (body_head.size() < 300) body_head.append(data, std::min(n, 300 - body_head.size()));
      return true;
    };
    // The destructor cuts a transfer still running at its deadline (Cut()).
    {
      std::lock_guard lock(client_mu);
      if (cut) {
        a.error = "aborted: notifier stopping";
        return a;
      }
      active = client.get();
    }
    httplib::Response res;
    httplib::Error err = httplib::Error::Success;
    const bool sent = client->send(req, res, err);
    {
      std::lock_guard lock(client_mu);
      active = nullptr;
    }
    if (!sent && Expired()) {
      a.error = "aborted: notifier stopping";
      a.retryable = false;
    } else if (!sent || err != httplib::Error::Success) {
      a.error = store::HttpErrorText(err);
      a.retryable = true;
    } else {
      a.status = res.status;
      if (a.status < 200 || a.status > 299) {
        a.error = "HTTP " + std::to_string(a.status);
        std::string head = OneLine(body_head);
        if (!head.empty()) a.error += ": " + head;
        a.retryable = a.status >= 500 || a.status == 429;
        if (a.status == 429 && res.has_header("Retry-After")) {
          const std::string v = res.get_header_value("Retry-After");
          char* end = nullptr;
          long secs = std::strtol(v.c_str(), &end, 10);
          if (end != v.c_str() && secs >= 0) a.retry_after_s = secs;
        }
      }
    }
    return a;
  }

  // Shuts down the transfer in flight, if any, and refuses new ones.
  void Cut() {
    std::lock_guard lock(client_mu);
    cut = true;
    if (active != nullptr) active->stop();
  }

  // One notification: attempts with backoff. Returns true when delivered.
  bool Deliver(const Pending& p) {
    const int max_attempts = std::max(1, cfg.max_attempts);
    std::chrono::milliseconds backoff = opt.initial_backoff;
    for (int attempt = 1;; attempt++) {
      if (Expired()) {
        Log(LogLevel::kError, "notify.failed", "notification not delivered: notifier stopped",
            {{"alertname", p.alertname}, {"kind", p.kind}, {"attempts", static_cast<int64_t>(attempt - 1)}});
        return false;
      }
      Attempt a = Post(p.body);
      {
        std::lock_guard lock(mu);
        stats.attempts++;
      }
      if (a.error.empty()) {
        Log(LogLevel::kInfo, "notify.sent", "notification delivered",
            {{"alertname", p.alertname}, {"kind", p.kind}, {"attempts", static_cast<int64_t>(attempt)},
             {"status", static_cast<int64_t>(a.status)}});
        return true;
      }
      if (!a.retryable || attempt >= max_attempts) {
        Log(LogLevel::kError, "notify.failed", "notification not delivered",
            {{"alertname", p.alertname}, {"kind", p.kind}, {"attempts", static_cast<int64_t>(attempt)},
             {"status", static_cast<int64_t>(a.status)}, {"error", a.error}});
        return false;
      }
      std::chrono::milliseconds wait = backoff;
      if (a.retry_after_s >= 0) wait = std::max(wait, std::chrono::milliseconds(a.retry_after_s * 1000));
      wait = std::min(wait, opt.max_backoff);
      backoff = std::min(backoff * 2, opt.max_backoff);
      Log(LogLevel::kWarn, "notify.retry", "notification attempt failed, retrying",
          {{"alertname", p.alertname}, {"kind", p.kind}, {"attempt", static_cast<int64_t>(attempt)},
           {"status", static_cast<int64_t>(a.status)}, {"error", a.error},
           {"retry_in_ms", static_cast<int64_t>(wait.count())}});
      const Clock::time_point until = Clock::now() + wait;
      std::unique_lock lock(mu);
      // Stopping: wait out the backoff only if the retry still starts before the deadline.
      bool give_up = cv.wait_until(lock, until, [&] { return stopping && until > AbortAt(); });
      if (give_up) {
        lock.unlock();
        Log(LogLevel::kError, "notify.failed", "notification not delivered: notifier stopped during backoff",
            {{"alertname", p.alertname}, {"kind", p.kind}, {"attempts", static_cast<int64_t>(attempt)},
             {"error", a.error}});
        return false;
      }
    }
  }

  void Run() {
    for (;;) {
      Pending p;
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return stopping || !queue.empty(); });
        if (queue.empty()) break;
        if (Expired()) {
          stats.dropped += queue.size();
          queue.clear();
          idle_cv.notify_all();
          break;
        }
        p = std::move(queue.front());
        queue.pop_front();
        busy = true;
      }
      bool ok = Deliver(p);
      std::lock_guard lock(mu);
      (ok ? stats.delivered : stats.failed)++;
      busy = false;
      if (queue.empty()) idle_cv.notify_all();
    }
    std::lock_guard lock(mu);
    done = true;
    idle_cv.notify_all();
  }
};

Notifier::Notifier(std::vector<WebhookConfig> targets, EventLog* log, NotifierOptions options) {
  for (auto& cfg : targets) {
    targets_.push_back(std::make_unique<Target>(std::move(cfg), log, options));
  }
  for (auto& t : targets_) t->thread = std::thread([p = t.get()] { p->Run(); });
}

Notifier::~Notifier() {
  for (auto& t : targets_) {
    std::lock_guard lock(t->mu);
    t->abort_at_ns.store((Clock::now() + t->opt.stop_grace).time_since_epoch().count());
    t->abort.store(true, std::memory_order_release);
    t->stopping = true;
    t->cv.notify_all();
  }
  // Deliveries still running at their deadline are cut.
  for (auto& t : targets_) {
    {
      std::unique_lock lock(t->mu);
      t->idle_cv.wait_until(lock, t->AbortAt(), [&] { return t->done; });
    }
    t->Cut();
  }
  for (auto& t : targets_) {
    if (t->thread.joinable()) t->thread.join();
  }
}

void Notifier::Send(const Notification& n) {
  const SysClock::time_point now = SysClock::now();
  for (auto& t : targets_) {
    if (n.repeat && t->cfg.format != WebhookConfig::Format::kAlertmanager) continue;
    Target::Pending p;
    p.body = RenderNotification(n, t->cfg.format, now);
    p.alertname = n.alertname;
    p.kind = KindName(n.kind);
    t->Enqueue(std::move(p));
  }
}

Notifier::Stats Notifier::stats() const {
  Stats s;
  for (const auto& t : targets_) {
    std::lock_guard lock(t->mu);
    s.delivered += t->stats.delivered;
    s.failed += t->stats.failed;
    s.dropped += t->stats.dropped;
    s.attempts += t->stats.attempts;
  }
  return s;
}

Notifier::Stats Notifier::stats(const std::string& url) const {
  Stats s;
  for (const auto& t : targets_) {
    if (t->cfg.url != url) continue;
    std::lock_guard lock(t->mu);
    s.delivered += t->stats.delivered;
    s.failed += t->stats.failed;
    s.dropped += t->stats.dropped;
    s.attempts += t->stats.attempts;
  }
  return s;
}

bool Notifier::WaitIdle(std::chrono::milliseconds limit) {
  const Clock::time_point deadline = Clock::now() + limit;
  for (auto& t : targets_) {
    std::unique_lock lock(t->mu);
    if (!t->idle_cv.wait_until(lock, deadline, [&] { return t->queue.empty() && !t->busy; })) return false;
  }
  return true;
}

}  // namespace etcdsafe::agent
