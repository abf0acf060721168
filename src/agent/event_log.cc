#include "agent/event_log.h"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

#include "base/error.h"

namespace etcdsafe::agent {
namespace {

constexpr size_t kMaxValueBytes = 16 * 1024;

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string ToLower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = Lower(c);
  return r;
}

// Case-insensitive "does `text` at `pos` start with `word`" (word is lower case).
bool StartsWithAt(std::string_view text, size_t pos, std::string_view word) {
  if (pos + word.size() > text.size()) return false;
  for (size_t i = 0; i < word.size(); i++) {
    if (Lower(text[pos + i]) != word[i]) return false;
  }
  return true;
}

bool IsAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// Where a URL written in free text ends.
bool IsUrlEnd(char c) {
  auto u = static_cast<unsigned char>(c);
  return u <= 0x20 || u == 0x7f || c == '"' || c == '\'' || c == '<' || c == '>' || c == '`' || c == '\\';
}

size_t SkipToUrlEnd(std::string_view t, size_t i) {
  while (i < t.size() && !IsUrlEnd(t[i])) i++;
  return i;
}

bool AlreadyRedacted(std::string_view t, size_t i) { return t.substr(i, 3) == "***"; }

// scheme://user:pass@host → scheme://***@host; ?query → ?***.
std::string RedactUrls(std::string_view t) {
  std::string out;
  out.reserve(t.size());
  size_t i = 0;
  while (i < t.size()) {
    size_t p = t.find("://", i);
    if (p == std::string_view::npos) {
      out.append(t.substr(i));
      break;
    }
    out.append(t.substr(i, p + 3 - i));
    size_t a = p + 3, e = a;
    while (e < t.size() && t[e] != '/' && t[e] != '?' && t[e] != '#' && !IsUrlEnd(t[e])) e++;
    std::string_view authority = t.substr(a, e - a);
    size_t at = authority.rfind('@');
    if (at != std::string_view::npos) {
      out.append("***");
      out.append(authority.substr(at));
    } else {
      out.append(authority);
    }
    size_t k = e;
    while (k < t.size() && t[k] != '?' && !IsUrlEnd(t[k])) k++;
    out.append(t.substr(e, k - e));
    if (k < t.size() && t[k] == '?') {
      size_t q = SkipToUrlEnd(t, k + 1);
      out.append(q > k + 1 ? "?***" : "?");
      k = q;
    }
    i = k;
  }
  return out;
}

// hooks.slack.com/services/T/B/X → hooks.slack.com/services/***, and the token part of
// /api/webhooks/, /webhook/, /webhookb2/ paths (Discord, Teams).
std::string RedactWebhookPaths(std::string_view t) {
  std::string out;
  out.reserve(t.size());
  size_t i = 0;
  while (i < t.size()) {
    size_t redact_from = std::string_view::npos;
    if (StartsWithAt(t, i, "hooks.slack.com/")) {
      size_t seg = i + std::string_view("hooks.slack.com/").size();
      size_t slash = seg;
      while (slash < t.size() && t[slash] != '/' && !IsUrlEnd(t[slash])) slash++;
      if (slash < t.size() && t[slash] == '/') redact_from = slash + 1;
    } else {
      for (std::string_view w : {"/api/webhooks/", "/webhooks/", "/webhook/", "/webhookb2/"}) {
        if (StartsWithAt(t, i, w)) {
          redact_from = i + w.size();
          break;
        }
      }
    }
    if (redact_from == std::string_view::npos) {
      out.push_back(t[i++]);
      continue;
    }
    out.append(t.substr(i, redact_from - i));
    size_t end = SkipToUrlEnd(t, redact_from);
    if (end > redact_from && !AlreadyRedacted(t, redact_from)) {
      out.append("***");
    } else {
      out.append(t.substr(redact_from, end - redact_from));
    }
    i = end;
  }
  return out;
}

bool IsTokenChar(char c) { return !IsUrlEnd(c) && c != ',' && c != ';'; }

// "Bearer xyz" → "Bearer ***".
std::string RedactBearer(std::string_view t) {
  std::string out;
  out.reserve(t.size());
  size_t i = 0;
  while (i < t.size()) {
    if (StartsWithAt(t, i, "bearer") && (i == 0 || (!IsAlnum(t[i - 1]) && t[i - 1] != '_'))) {
      size_t j = i + 6;
      size_t s = j;
      while (s < t.size() && (t[s] == ' ' || t[s] == '\t')) s++;
      size_t e = s;
      while (e < t.size() && IsTokenChar(t[e])) e++;
      // "Bearer" as HTTP writes it: any token. Lower-case prose ("a bearer of bad news"):
      // only what looks like a token (long, or with digits or punctuation).
      bool looks_like_token = t[i] == 'B' || e - s >= 12;
      for (size_t k = s; k < e && !looks_like_token; k++) looks_like_token = !IsAlnum(t[k]) || (t[k] >= '0' && t[k] <= '9');
      if (s > j && e > s && looks_like_token) {
        out.append(t.substr(i, s - i));
        out.append("***");
        i = e;
        continue;
      }
    }
    out.push_back(t[i++]);
  }
  return out;
}

// "Authorization: <value to end of line>" (also "authorization=", JSON "authorization":"...").
std::string RedactAuthorization(std::string_view t) {
  std::string out;
  out.reserve(t.size());
  size_t i = 0;
  while (i < t.size()) {
    if (StartsWithAt(t, i, "authorization") && (i == 0 || !IsAlnum(t[i - 1]))) {
      size_t j = i + 13;
      if (j < t.size() && t[j] == '"') j++;
      while (j < t.size() && t[j] == ' ') j++;
      if (j < t.size() && (t[j] == ':' || t[j] == '=')) {
        j++;
        while (j < t.size() && t[j] == ' ') j++;
        bool quoted = j < t.size() && t[j] == '"';
        if (quoted) j++;
        size_t e = j;
        while (e < t.size() && t[e] != '\n' && t[e] != '\r' && t[e] != '"' && (quoted || t[e] != ',')) e++;
        if (e > j) {
          out.append(t.substr(i, j - i));
          out.append("***");
          i = e;
          continue;
        }
      }
    }
    out.push_back(t[i++]);
  }
  return out;
}

bool IsNameChar(char c) { return IsAlnum(c) || c == '_' || c == '-' || c == '.'; }

bool IsSecretParam(std::string_view name) {
  std::string n = ToLower(name);
  for (std::string_view s : {"x-amz-signature", "signature", "awsaccesskeyid", "x-amz-credential", "x-amz-security-token",
                             "sig", "x-goog-signature", "x-goog-credential", "access_token", "api_key", "apikey"}) {
    if (n == s) return true;
  }
  return IsSecretKey(n);
}

// name=value with a secret name → name=***.
std::string RedactAssignments(std::string_view t) {
  std::string out;
  out.reserve(t.size());
  size_t i = 0;
  while (i < t.size()) {
    size_t eq = t.find('=', i);
    if (eq == std::string_view::npos) {
      out.append(t.substr(i));
      break;
    }
    size_t b = eq;
    while (b > i && IsNameChar(t[b - 1])) b--;
    out.append(t.substr(i, eq + 1 - i));
    size_t v = eq + 1;
    if (b == eq || !IsSecretParam(t.substr(b, eq - b))) {
      i = v;
      continue;
    }
    bool quoted = v < t.size() && t[v] == '"';
    size_t s = quoted ? v + 1 : v, e = s;
    if (quoted) {
      while (e < t.size() && t[e] != '"' && t[e] != '\n') e++;
    } else {
      while (e < t.size() && IsTokenChar(t[e]) && t[e] != '&') e++;
    }
    if (e > s && !(e - s == 3 && AlreadyRedacted(t, s))) {
      out.append(t.substr(v, s - v));
      out.append("***");
      i = e;
    } else {
      i = v;
    }
  }
  return out;
}

// Cuts after redaction, on a UTF-8 boundary.
std::string Cut(std::string s) {
  if (s.size() <= kMaxValueBytes) return s;
  size_t n = kMaxValueBytes;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) n--;
  size_t cut = s.size() - n;
  s.resize(n);
  s += "...(" + std::to_string(cut) + " bytes cut)";
  return s;
}

std::string Clean(std::string_view s) { return Cut(RedactSecrets(s)); }

// Text format: control characters as \n, \r, \t, \xNN; with `quote`, also \" and \\.
void AppendEscaped(std::string& out, std::string_view s, bool quote) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else if (quote && (c == '"' || c == '\\')) {
      out.push_back('\\');
      out.push_back(c);
    } else {
      out.push_back(c);
    }
  }
}

bool NeedsQuotes(std::string_view s) {
  if (s.empty()) return true;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '"' || c == '=' || c == '\\') return true;
  }
  return false;
}

std::string TextKey(std::string_view key) {
  std::string k;
  for (char c : key) k.push_back(IsNameChar(c) ? c : '_');
  return k.empty() ? "_" : k;
}

std::string FieldKey(const std::string& key) {
  if (key == "time" || key == "level" || key == "event" || key == "msg") return "field." + key;
  return key;
}

std::string DoubleText(double d) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, r.ptr);
}

std::string_view LevelJson(LogLevel l) {
  switch (l) {
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

std::string_view LevelText(LogLevel l) {
  switch (l) {
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kWarn: return "WARN";
    case LogLevel::kError: return "ERROR";
  }
  return "INFO";
}

}  // namespace

LogFormat ResolveLogFormat(const std::string& setting, int fd) {
  if (setting == "text") return LogFormat::kText;
  if (setting == "json") return LogFormat::kJson;
  if (setting == "auto") return ::isatty(fd) == 1 ? LogFormat::kText : LogFormat::kJson;
  throw Error(ErrorCode::kInvalidArgument, "log format \"" + setting + "\": want auto, text or json");
}

std::string FormatUtcMillis(std::chrono::system_clock::time_point t) {
  int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  int64_t secs = ms / 1000, frac = ms % 1000;
  if (frac < 0) {
    frac += 1000;
    secs -= 1;
  }
  time_t tt = static_cast<time_t>(secs);
  struct tm tm {};
  ::gmtime_r(&tt, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(frac));
  return buf;
}

bool IsSecretKey(std::string_view key) {
  std::string k = ToLower(key);
  for (std::string_view w : {"password", "passphrase", "secret", "token", "authorization", "credential",
                             "private_key", "key_hex", "access_key"}) {
    if (k.find(w) != std::string::npos) return true;
  }
  return false;
}

std::string RedactSecrets(std::string_view text) {
  std::string s = RedactUrls(text);
  s = RedactWebhookPaths(s);
  s = RedactBearer(s);
  s = RedactAuthorization(s);
  return RedactAssignments(s);
}

EventLog::EventLog(LogFormat format, int fd) : format_(format), fd_(fd) {}

std::string EventLog::Format(LogLevel level, std::string_view event, std::string_view message,
                             const LogFields& fields) const {
  const std::string time = FormatUtcMillis(std::chrono::system_clock::now());
  const std::string ev = Clean(event), msg = Clean(message);
  if (format_ == LogFormat::kJson) {
    nlohmann::ordered_json j;
    j["time"] = time;
    j["level"] = LevelJson(level);
    j["event"] = ev;
    j["msg"] = msg;
    for (const auto& [key, value] : fields) {
      const std::string k = FieldKey(key);
      if (IsSecretKey(key)) {
        j[k] = "[redacted]";
      } else if (const auto* s = std::get_if<std::string>(&value)) {
        j[k] = Clean(*s);
      } else if (const auto* i = std::get_if<int64_t>(&value)) {
        j[k] = *i;
      } else if (const auto* d = std::get_if<double>(&value)) {
        if (std::isfinite(*d)) {
          j[k] = *d;
        } else {
          j[k] = DoubleText(*d);
        }
      } else {
        j[k] = std::get<bool>(value);
      }
    }
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  std::string line = time;
  line += ' ';
  line += LevelText(level);
  line += ' ';
  AppendEscaped(line, ev, false);
  if (!msg.empty()) {
    line += ' ';
    AppendEscaped(line, msg, false);
  }
  for (const auto& [key, value] : fields) {
    line += ' ';
    line += TextKey(FieldKey(key));
    line += '=';
    std::string v;
    if (IsSecretKey(key)) {
      v = "[redacted]";
    } else if (const auto* s = std::get_if<std::string>(&value)) {
      v = Clean(*s);
    } else if (const auto* i = std::get_if<int64_t>(&value)) {
      v = std::to_string(*i);
    } else if (const auto* d = std::get_if<double>(&value)) {
      v = DoubleText(*d);
    } else {
      v = std::get<bool>(value) ? "true" : "false";
    }
    if (NeedsQuotes(v)) {
      line += '"';
      AppendEscaped(line, v, true);
      line += '"';
    } else {
      line += v;
    }
  }
  line += '\n';
  return line;
}

void EventLog::Log(LogLevel level, std::string_view event, std::string_view message, const LogFields& fields) {
  const std::string line = Format(level, event, message, fields);
  std::lock_guard lock(mu_);
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace etcdsafe::agent
