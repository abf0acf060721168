// The agent's log: one line per event, text for people at a terminal, JSON lines for
// log collectors.
//
//   JSON: {"time":"2026-11-30T21:40:00.123Z","level":"info","event":"backup.done","msg":"...","key":value,...}
//   text: 2026-11-30T21:40:00.123Z INFO backup.done msg key=value key2="quoted value"
//
// Contract:
//   * Every call writes exactly one line ending in '\n' with a single write(2) per line
//     (repeated only for a partial write), under a mutex: EventLog is thread-safe and
//     concurrent writers produce whole lines. Write errors are ignored (a log cannot fail a job).
//   * No secret appears in a line. A field whose key contains (case-insensitive) password,
//     passphrase, secret, token, authorization, credential, private_key, key_hex or
//     access_key is written as "[redacted]", whatever its type. Every other string value,
//     the message and the event name pass through RedactSecrets.
//   * Control characters cannot forge lines: JSON escapes them (\n, \u001b, ...); text
//     writes them as \n, \r, \t, \xNN. Invalid UTF-8 is replaced by U+FFFD in JSON.
//   * String values and the message are cut to 16 KiB after redaction ("...(N bytes cut)").
//   * Field keys "time", "level", "event" and "msg" are reserved; a field of that name is
//     written as "field.<key>".
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace etcdsafe::agent {

enum class LogFormat { kText, kJson };

// "text", "json", or "auto": text when `fd` is a terminal, else JSON lines.
// Anything else: Error(kInvalidArgument).
LogFormat ResolveLogFormat(const std::string& setting, int fd);

using LogValue = std::variant<std::string, int64_t, double, bool>;
using LogFields = std::vector<std::pair<std::string, LogValue>>;

enum class LogLevel { kInfo, kWarn, kError };

class EventLog {
 public:
  explicit EventLog(LogFormat format, int fd = 2);
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // `event` is a dotted name ("backup.done"); `message` a human sentence (may be empty).
  void Log(LogLevel level, std::string_view event, std::string_view message, const LogFields& fields = {});

  // The line Log would write now (with its '\n'), without writing it. For tests.
  std::string Format(LogLevel level, std::string_view event, std::string_view message,
                     const LogFields& fields = {}) const;

  LogFormat format() const { return format_; }

 private:
  const LogFormat format_;
  const int fd_;
  std::mutex mu_;
};

// "2026-11-30T21:40:00.123Z": UTC, milliseconds (RFC 3339, as Alertmanager and the log use).
std::string FormatUtcMillis(std::chrono::system_clock::time_point t);

// True when a field of this key is written as "[redacted]".
bool IsSecretKey(std::string_view key);

// Removes secrets from free text:
//   * URL userinfo: scheme://user:pass@host → scheme://***@host
//   * URL query strings: https://h/p?X-Amz-Signature=... → https://h/p?***
//   * Slack and Discord webhook paths: hooks.slack.com/services/T/B/X → hooks.slack.com/services/***,
//     discord.com/api/webhooks/1/x → discord.com/api/webhooks/***
//   * "Bearer <token>" → "Bearer ***"; "Authorization: <anything to end of line>" → "Authorization: ***"
//   * name=value where name is a signature/credential query parameter (X-Amz-Signature,
//     Signature, AWSAccessKeyId, X-Amz-Credential, X-Amz-Security-Token, sig) or contains a
//     secret word (as IsSecretKey): the value becomes "***".
std::string RedactSecrets(std::string_view text);

}  // namespace etcdsafe::agent
