#include "agent/config.h"

#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "base/bytes.h"
#include "base/error.h"
#include "client/endpoint.h"
#include "follow/segment.h"
#include "store/store.h"

namespace etcdsafe::agent {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// The schema: for each map (by its path without list indices; "" is the top level) the
// keys it may hold. KnownConfigKeys and the unknown-key check both read this table.
const std::map<std::string, std::vector<std::string>>& Schema() {
  static const std::map<std::string, std::vector<std::string>> schema = {
      {"",
       {"timezone", "etcd", "repositories", "encryption", "compression", "compression_level", "name_prefix", "jobs",
        "http", "alerts", "state_dir", "shutdown_grace", "log"}},
      {"etcd",
       {"endpoints", "cacert", "cert", "key", "insecure_skip_tls_verify", "user", "password_file", "dial_timeout",
        "command_timeout"}},
      {"repositories", {"name", "url", "s3"}},
      {"repositories.s3",
       {"endpoint", "region", "path_style", "ca_file", "insecure_skip_tls_verify", "credentials_file", "profile"}},
      {"encryption", {"key_file", "passphrase_file"}},
      {"jobs", {"backup", "drill", "prune", "continuous", "pki_check"}},
      {"jobs.pki_check", {"schedule", "kubernetes_dir", "warn_days"}},
      {"jobs.backup", {"schedule", "retention", "retry", "max_age"}},
      {"jobs.backup.retention",
       {"keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within",
        "utc_offset"}},
      {"jobs.backup.retry", {"max_attempts", "initial_backoff", "max_backoff"}},
      {"jobs.drill", {"schedule", "max_age", "backup", "repository", "not_kubernetes", "etcd_binary"}},
      {"jobs.prune", {"schedule", "retention"}},
      {"jobs.continuous",
       {"repository", "segment_max_age", "segment_max_size", "heartbeat", "hash_every", "full_every",
        "full_every_events", "spill_dir", "max_spill"}},
      {"jobs.prune.retention",
       {"keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within",
        "utc_offset"}},
      {"http", {"listen"}},
      {"alerts", {"webhooks"}},
      {"alerts.webhooks", {"url", "format", "timeout", "max_attempts", "ca_file", "bearer_token_file"}},
      {"log", {"format"}},
  };
  return schema;
}

// Keys that would put a secret into the file, and where the secret goes instead.
std::string SecretAdvice(const std::string& schema_path, const std::string& key) {
  static const std::set<std::string> s3_keys = {"access_key",        "access_key_id",    "aws_access_key_id",
                                                "secret_access_key", "secret_key",       "aws_secret_access_key",
                                                "session_token",     "aws_session_token"};
  if (key == "password") return "use etcd.password_file (a file holding the password)";
  if (s3_keys.count(key)) {
    return "use repositories[].s3.credentials_file or the AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY environment "
           "variables";
  }
  if (key == "passphrase") return "use encryption.passphrase_file (a file holding the passphrase)";
  if (key == "key_hex" || key == "key_base64" || (key == "key" && schema_path == "encryption") ||
      key == "encryption_key") {
    return "use encryption.key_file (a file holding the key)";
  }
  if (key == "bearer_token" || key == "token") return "use alerts.webhooks[].bearer_token_file";
  return "";
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); j++) prev[j] = j;
  for (size_t i = 1; i <= a.size(); i++) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); j++) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

bool IsAbsolute(const std::string& p) { return !p.empty() && p[0] == '/'; }

// The config file being read: errors, paths and typed accessors.
class Reader {
 public:
  Reader(std::string file, const LoadOptions& options)
      : file_(std::move(file)), dir_(std::filesystem::path(file_).parent_path().string()), options_(options) {}

  Error Fail(const YAML::Node& at, const std::string& key_path, const std::string& reason) const {
    int line = at.Mark().is_null() ? 0 : at.Mark().line + 1;
    return Fail(line, key_path, reason);
  }
  Error Fail(int line, const std::string& key_path, const std::string& reason) const {
    std::string prefix = file_ + ":" + std::to_string(std::max(line, 1)) + ": ";
    if (!key_path.empty()) prefix += key_path + ": ";
    std::string msg = prefix + reason;
    std::replace(msg.begin(), msg.end(), '\n', ' ');
    return Error(ErrorCode::kInvalidArgument, msg);
  }

  // Checks that `node` is a map whose keys are all in the schema for `schema_path`; no duplicates.
  void CheckMap(const YAML::Node& node, const std::string& schema_path, const std::string& display) const {
    if (!node.IsMap()) {
      throw Fail(node, display.empty() ? "(top level)" : display, "expected a map of keys, got " + Kind(node));
    }
    const std::vector<std::string>& allowed = Schema().at(schema_path);
    std::set<std::string> seen;
    for (auto it = node.begin(); it != node.end(); ++it) {
      const YAML::Node& k = it->first;
      if (!k.IsScalar()) throw Fail(k, display, "keys must be plain names");
      const std::string key = k.Scalar();
      const std::string path = Join(display, key);
      if (!seen.insert(key).second) throw Fail(k, path, "duplicate key");
      if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) {
        // A null value's mark points past the key; report it at the key's line.
        if (it->second.IsNull()) throw Fail(k, path, "no value given (write \"\" for an empty string)");
        continue;
      }
      std::string advice = SecretAdvice(schema_path, key);
      if (!advice.empty()) throw Fail(k, path, "secrets are not written in the config file: " + advice);
      std::string hint;
      size_t best = 3;
      for (const std::string& a : allowed) {
        size_t d = EditDistance(key, a);
        if (d < best) {
          best = d;
          hint = a;
        }
      }
      std::string reason = "unknown key";
      reason += hint.empty() ? " (known here: " + JoinList(allowed) + ")" : " (did you mean \"" + hint + "\"?)";
      throw Fail(k, path, reason);
    }
  }

  static std::string Join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "." + b; }
  static std::string JoinList(const std::vector<std::string>& v) {
    std::string s;
    for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
  }
  static std::string Kind(const YAML::Node& n) {
    if (n.IsMap()) return "a map";
    if (n.IsSequence()) return "a list";
    if (n.IsNull()) return "nothing (null)";
    return "\"" + n.Scalar() + "\"";
  }

  std::string String(const YAML::Node& n, const std::string& path) const {
    if (!n.IsScalar()) throw Fail(n, path, "expected a string, got " + Kind(n));
    return n.Scalar();
  }
  std::string NonEmpty(const YAML::Node& n, const std::string& path) const {
    std::string s = String(n, path);
    if (s.empty()) throw Fail(n, path, "must not be empty");
    return s;
  }
  bool Bool(const YAML::Node& n, const std::string& path) const {
    std::string s = n.IsScalar() ? n.Scalar() : "";
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    if (s == "true" || s == "yes") return true;
    if (s == "false" || s == "no") return false;
    throw Fail(n, path, "expected true or false, got " + Kind(n));
  }
  int Int(const YAML::Node& n, const std::string& path, int min, int max) const {
    std::string s = n.IsScalar() ? n.Scalar() : "";
    size_t digits = s.size() - (s.starts_with('-') ? 1 : 0);
    if (digits == 0 || digits > 9 ||
        s.find_first_not_of("0123456789", s.starts_with('-') ? 1 : 0) != std::string::npos) {
      throw Fail(n, path, "expected a whole number, got " + Kind(n));
    }
    int v = std::stoi(s);
    if (v < min || v > max) {
      throw Fail(n, path, std::to_string(v) + " is out of range " + std::to_string(min) + ".." + std::to_string(max));
    }
    return v;
  }
  // A duration; zero only when allow_zero.
  std::chrono::nanoseconds Nanos(const YAML::Node& n, const std::string& path, bool allow_zero) const {
    std::string s = String(n, path);
    std::chrono::nanoseconds d;
    try {
      d = ParseGoDuration(s);
    } catch (const Error& e) {
      throw Fail(n, path, e.what());
    }
    if (d.count() == 0 && !allow_zero) throw Fail(n, path, "must be positive, got \"" + s + "\"");
    return d;
  }
  seconds Seconds(const YAML::Node& n, const std::string& path, bool allow_zero = false) const {
    std::chrono::nanoseconds d = Nanos(n, path, allow_zero);
    if (d % seconds(1) != std::chrono::nanoseconds(0)) {
      throw Fail(n, path, "\"" + n.Scalar() + "\" is not a whole number of seconds");
    }
    return std::chrono::duration_cast<seconds>(d);
  }
  milliseconds Millis(const YAML::Node& n, const std::string& path, bool allow_zero = false) const {
    std::chrono::nanoseconds d = Nanos(n, path, allow_zero);
    if (d % milliseconds(1) != std::chrono::nanoseconds(0)) {
      throw Fail(n, path, "\"" + n.Scalar() + "\" is not a whole number of milliseconds");
    }
    return std::chrono::duration_cast<milliseconds>(d);
  }

  // A size ("8MiB", ParseByteSize) within [min, max] bytes.
  uint64_t Size(const YAML::Node& n, const std::string& path, uint64_t min, uint64_t max) const {
    if (!n.IsScalar()) throw Fail(n, path, "expected a size such as 8MiB, got " + Kind(n));
    uint64_t v = 0;
    try {
      v = ParseByteSize(n.Scalar());
    } catch (const Error& e) {
      throw Fail(n, path, e.what());
    }
    if (v < min || v > max) {
      throw Fail(n, path, "\"" + n.Scalar() + "\" is out of range (" + SizeText(min) + " .. " + SizeText(max) + ")");
    }
    return v;
  }
  static std::string SizeText(uint64_t v) {
    for (const auto& [unit, shift] : {std::pair{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}}) {
      if (v != 0 && v % (uint64_t{1} << shift) == 0) return std::to_string(v >> shift) + unit;
    }
    return std::to_string(v) + "B";
  }

  // A file path, made absolute relative to the config file; checked when options.check_files.
  std::string File(const YAML::Node& n, const std::string& path) const {
    std::string p = String(n, path);
    if (p.empty()) return p;
    p = Absolute(p);
    if (options_.check_files) {
      struct stat st;
      if (::stat(p.c_str(), &st) != 0) throw Fail(n, path, p + ": " + std::strerror(errno));
      if (S_ISDIR(st.st_mode)) throw Fail(n, path, p + ": is a directory, want a file");
      if (::access(p.c_str(), R_OK) != 0) throw Fail(n, path, p + ": not readable: " + std::strerror(errno));
    }
    return p;
  }
  std::string Absolute(const std::string& p) const {
    if (IsAbsolute(p)) return std::filesystem::path(p).lexically_normal().string();
    return (std::filesystem::path(dir_) / p).lexically_normal().string();
  }

  Schedule ParseSchedule(const YAML::Node& n, const std::string& path) const {
    std::string text = String(n, path);
    Schedule s;
    try {
      s = Schedule::Parse(text);
    } catch (const Error& e) {
      throw Fail(n, path, e.what());
    }
    return s;
  }

  const std::string& file() const { return file_; }
  const LoadOptions& options() const { return options_; }

 private:
  std::string file_;
  std::string dir_;
  const LoadOptions& options_;
};

// "host:port", "[v6]:port"; port 0..65535.
bool ValidListen(const std::string& s, std::string* why) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos) {
    *why = "want host:port, e.g. 127.0.0.1:9464";
    return false;
  }
  std::string host = s.substr(0, colon), port = s.substr(colon + 1);
  if (host.starts_with('[')) {
    if (!host.ends_with(']') || host.size() < 3) {
      *why = "bad IPv6 host (want [addr]:port)";
      return false;
    }
  } else if (host.find(':') != std::string::npos) {
    *why = "put an IPv6 address in brackets: [addr]:port";
    return false;
  }
  if (host.empty()) {
    *why = "missing host (use 0.0.0.0:PORT to listen on every interface)";
    return false;
  }
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) > 65535) {
    *why = "bad port \"" + port + "\" (want 0..65535)";
    return false;
  }
  return true;
}

// http:// or https:// with a host and no user:password@.
bool ValidHttpUrl(const std::string& s, std::string* why) {
  if (!s.starts_with("http://") && !s.starts_with("https://")) {
    *why = "want an http:// or https:// URL";
    return false;
  }
  std::string rest = s.substr(s.find("://") + 3);
  std::string authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.find('@') != std::string::npos) {
    *why = "credentials in the URL are not allowed (secrets are not written in the config file)";
    return false;
  }
  if (authority.empty() || authority.starts_with(':')) {
    *why = "missing host";
    return false;
  }
  return true;
}

void ParseRetention(const Reader& r, const YAML::Node& n, const std::string& schema_path, const std::string& path,
                    catalog::RetentionPolicy* p) {
  r.CheckMap(n, schema_path, path);
  const std::pair<const char*, int*> counts[] = {
      {"keep_last", &p->keep_last},     {"keep_hourly", &p->keep_hourly},   {"keep_daily", &p->keep_daily},
      {"keep_weekly", &p->keep_weekly}, {"keep_monthly", &p->keep_monthly}, {"keep_yearly", &p->keep_yearly},
  };
  for (const auto& [key, field] : counts) {
    if (n[key]) *field = r.Int(n[key], path + "." + key, 0, 1000000);
  }
  if (const YAML::Node w = n["keep_within"]) {
    const std::string text = r.NonEmpty(w, path + ".keep_within");
    try {
      p->keep_within = catalog::ParseKeepWithin(text);
    } catch (const Error& e) {
      throw r.Fail(w, path + ".keep_within", std::string(e.what()) + " (as prune --keep-within: y, m = 30d, d, h)");
    }
  }
  if (const YAML::Node o = n["utc_offset"]) {
    const std::string text = r.NonEmpty(o, path + ".utc_offset");
    try {
      p->utc_offset = catalog::ParseUtcOffset(text);
    } catch (const Error& e) {
      throw r.Fail(o, path + ".utc_offset", e.what());
    }
  }
  if (!p->Empty()) {
    try {
      catalog::ValidatePolicy(*p);
    } catch (const Error& e) {
      throw r.Fail(n, path, e.what());
    }
  }
}

void ParseEtcd(const Reader& r, const YAML::Node& n, EtcdConfig* c) {
  r.CheckMap(n, "etcd", "etcd");
  const YAML::Node eps = n["endpoints"];
  if (!eps) throw r.Fail(n, "etcd.endpoints", "required (a list such as [https://127.0.0.1:2379])");
  if (!eps.IsSequence()) throw r.Fail(eps, "etcd.endpoints", "expected a list, got " + Reader::Kind(eps));
  if (eps.size() == 0) throw r.Fail(eps, "etcd.endpoints", "needs at least one endpoint");
  c->endpoints.clear();
  for (size_t i = 0; i < eps.size(); i++) {
    const std::string path = "etcd.endpoints[" + std::to_string(i) + "]";
    std::string ep = r.NonEmpty(eps[i], path);
    try {
      client::ParseEndpoint(ep, false);
    } catch (const Error& e) {
      throw r.Fail(eps[i], path, e.what());
    }
    c->endpoints.push_back(ep);
  }
  if (n["cacert"]) c->cacert = r.File(n["cacert"], "etcd.cacert");
  if (n["cert"]) c->cert = r.File(n["cert"], "etcd.cert");
  if (n["key"]) c->key = r.File(n["key"], "etcd.key");
  if (c->cert.empty() != c->key.empty()) {
    const char* missing = c->cert.empty() ? "cert" : "key";
    const char* given = c->cert.empty() ? "key" : "cert";
    throw r.Fail(n[given], std::string("etcd.") + given,
                 std::string("etcd.cert and etcd.key must be given together (etcd.") + missing + " is missing)");
  }
  if (n["insecure_skip_tls_verify"]) {
    c->insecure_skip_tls_verify = r.Bool(n["insecure_skip_tls_verify"], "etcd.insecure_skip_tls_verify");
  }
  if (n["user"]) {
    c->user = r.String(n["user"], "etcd.user");
    if (c->user.find(':') != std::string::npos) {
      throw r.Fail(n["user"], "etcd.user",
                   "secrets are not written in the config file: give the user name only and the password in "
                   "etcd.password_file");
    }
  }
  if (n["password_file"]) c->password_file = r.File(n["password_file"], "etcd.password_file");
  if (!c->user.empty() && c->password_file.empty()) {
    throw r.Fail(n["user"], "etcd.user", "needs etcd.password_file (a file holding the password)");
  }
  if (c->user.empty() && !c->password_file.empty()) {
    throw r.Fail(n["password_file"], "etcd.password_file", "needs etcd.user");
  }
  if (n["dial_timeout"]) c->dial_timeout = r.Millis(n["dial_timeout"], "etcd.dial_timeout");
  if (n["command_timeout"]) c->command_timeout = r.Millis(n["command_timeout"], "etcd.command_timeout", true);
}

// s3://bucket[/prefix], as store::OpenStore accepts.
void CheckS3Url(const Reader& r, const YAML::Node& n, const std::string& path, const std::string& url) {
  std::string rest = url.substr(5);
  size_t slash = rest.find('/');
  std::string bucket = rest.substr(0, slash);
  std::string prefix = slash == std::string::npos ? "" : rest.substr(slash + 1);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  if (bucket.find('@') != std::string::npos || bucket.find(':') != std::string::npos) {
    throw r.Fail(n, path,
                 "credentials in the URL are not allowed: use s3.credentials_file or the AWS_ACCESS_KEY_ID / "
                 "AWS_SECRET_ACCESS_KEY environment variables");
  }
  bool ok = bucket.size() >= 3 && bucket.size() <= 63 &&
            bucket.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") == std::string::npos &&
            bucket.front() != '-' && bucket.front() != '.';
  if (!ok) {
    throw r.Fail(n, path,
                 "bad S3 bucket name \"" + bucket + "\" (3-63 characters: lower-case letters, digits, '.' and '-')");
  }
  if (!prefix.empty()) {
    try {
      store::ValidateName(url, prefix);
    } catch (const Error& e) {
      throw r.Fail(n, path, e.what());
    }
  }
}

void ParseRepositories(const Reader& r, const YAML::Node& top, std::vector<RepositoryConfig>* out) {
  const YAML::Node repos = top["repositories"];
  if (!repos) {
    throw r.Fail(top, "repositories", "required: at least one repository (url: file:///path or s3://bucket/prefix)");
  }
  if (!repos.IsSequence()) throw r.Fail(repos, "repositories", "expected a list, got " + Reader::Kind(repos));
  if (repos.size() == 0) throw r.Fail(repos, "repositories", "needs at least one repository");
  std::map<std::string, size_t> names, urls;
  for (size_t i = 0; i < repos.size(); i++) {
    const std::string p = "repositories[" + std::to_string(i) + "]";
    const YAML::Node n = repos[i];
    r.CheckMap(n, "repositories", p);
    RepositoryConfig rc;
    if (!n["url"]) throw r.Fail(n, p + ".url", "required (file:///path or s3://bucket/prefix)");
    rc.url = r.NonEmpty(n["url"], p + ".url");
    const bool s3 = rc.url.starts_with("s3://");
    if (rc.url.starts_with("file://")) {
      std::string path = rc.url.substr(7);
      if (!IsAbsolute(path)) {
        throw r.Fail(n["url"], p + ".url",
                     "a file URL needs an absolute path (file:///dir), got \"" + client::RedactEndpoint(rc.url) + "\"");
      }
    } else if (s3) {
      CheckS3Url(r, n["url"], p + ".url", rc.url);
    } else {
      throw r.Fail(n["url"], p + ".url",
                   "unknown repository scheme in \"" + client::RedactEndpoint(rc.url) +
                       "\": want file:///path or s3://bucket/prefix");
    }
    while (rc.url.size() > 1 && rc.url.back() == '/' && !rc.url.ends_with(":///")) rc.url.pop_back();
    rc.name = rc.url;
    if (n["name"]) rc.name = r.NonEmpty(n["name"], p + ".name");
    if (const YAML::Node s = n["s3"]) {
      if (!s3) throw r.Fail(s, p + ".s3", "only for s3:// repositories (url is " + rc.url + ")");
      const std::string sp = p + ".s3";
      r.CheckMap(s, "repositories.s3", sp);
      if (s["endpoint"]) {
        rc.s3.endpoint = r.String(s["endpoint"], sp + ".endpoint");
        std::string why;
        if (!rc.s3.endpoint.empty() && !ValidHttpUrl(rc.s3.endpoint, &why)) {
          throw r.Fail(s["endpoint"], sp + ".endpoint", why);
        }
      }
      if (s["region"]) rc.s3.region = r.NonEmpty(s["region"], sp + ".region");
      if (s["path_style"]) rc.s3.path_style = r.Bool(s["path_style"], sp + ".path_style");
      if (s["ca_file"]) rc.s3.ca_file = r.File(s["ca_file"], sp + ".ca_file");
      if (s["insecure_skip_tls_verify"]) {
        rc.s3.insecure_skip_tls_verify = r.Bool(s["insecure_skip_tls_verify"], sp + ".insecure_skip_tls_verify");
      }
      if (s["credentials_file"]) rc.s3.credentials_file = r.File(s["credentials_file"], sp + ".credentials_file");
      if (s["profile"]) rc.s3.profile = r.NonEmpty(s["profile"], sp + ".profile");
    }
    if (auto [it, fresh] = urls.emplace(rc.url, i); !fresh) {
      throw r.Fail(n["url"], p + ".url", "the same repository as repositories[" + std::to_string(it->second) + "]");
    }
    if (auto [it, fresh] = names.emplace(rc.name, i); !fresh) {
      throw r.Fail(
          n["name"] ? n["name"] : n["url"], p + (n["name"] ? ".name" : ".url"),
          "duplicate repository name \"" + rc.name + "\" (also repositories[" + std::to_string(it->second) + "])");
    }
    out->push_back(std::move(rc));
  }
}

// The repository named by `key` in a job block, or the first repository.
std::string JobRepository(const Reader& r, const YAML::Node& job, const std::string& path, const AgentConfig& c) {
  if (!job["repository"]) return c.repositories.front().name;
  std::string name = r.NonEmpty(job["repository"], path);
  bool found = std::any_of(c.repositories.begin(), c.repositories.end(),
                           [&](const RepositoryConfig& rc) { return rc.name == name; });
  if (!found) {
    std::string names;
    for (const RepositoryConfig& rc : c.repositories) names += (names.empty() ? "" : ", ") + rc.name;
    throw r.Fail(job["repository"], path, "no repository named \"" + name + "\" (have: " + names + ")");
  }
  return name;
}

// jobs.continuous: no schedule; every key optional (the defaults of backup --follow).
void ParseContinuous(const Reader& r, const YAML::Node& n, AgentConfig* c) {
  const std::string p = "jobs.continuous";
  r.CheckMap(n, p, p);
  ContinuousJobConfig& j = c->continuous;
  j.enabled = true;
  j.repository = JobRepository(r, n, p + ".repository", *c);
  auto positive = [&](const char* key, milliseconds* out, milliseconds max) {
    if (!n[key]) return;
    *out = r.Millis(n[key], p + "." + key);
    if (*out > max) {
      throw r.Fail(n[key], p + "." + key,
                   "\"" + n[key].Scalar() + "\" is too long (at most " + std::to_string(max.count() / 1000) + "s)");
    }
  };
  positive("segment_max_age", &j.segment_max_age, std::chrono::hours(1));
  positive("heartbeat", &j.heartbeat, std::chrono::hours(24));
  positive("hash_every", &j.hash_every, std::chrono::hours(24 * 366));
  positive("full_every", &j.full_every, std::chrono::hours(24 * 366));
  if (j.heartbeat < j.segment_max_age) {
    throw r.Fail(n["heartbeat"] ? n["heartbeat"] : n["segment_max_age"], p + (n["heartbeat"] ? ".heartbeat" : ".segment_max_age"),
                 "heartbeat (" + std::to_string(j.heartbeat.count()) + "ms) must not be shorter than segment_max_age (" +
                     std::to_string(j.segment_max_age.count()) + "ms)");
  }
  if (n["segment_max_size"]) {
    j.segment_max_bytes = r.Size(n["segment_max_size"], p + ".segment_max_size", 4096, follow::kMaxSegmentBytes);
  }
  if (n["full_every_events"]) {
    j.full_every_events = static_cast<uint64_t>(r.Int(n["full_every_events"], p + ".full_every_events", 0, 999999999));
  }
  if (n["spill_dir"]) j.spill_dir = r.Absolute(r.NonEmpty(n["spill_dir"], p + ".spill_dir"));
  if (n["max_spill"]) j.max_spill_bytes = r.Size(n["max_spill"], p + ".max_spill", 0, uint64_t{1} << 50);
  if (!c->encryption.passphrase_file.empty()) {
    throw r.Fail(n, p,
                 "continuous backup encrypts every segment and needs encryption.key_file, not "
                 "encryption.passphrase_file (a passphrase costs an scrypt per object)");
  }
}

// Schedule of a job block: required, and must fire within the search horizon.
Schedule JobSchedule(const Reader& r, const YAML::Node& job, const std::string& path, const absl::TimeZone& tz) {
  if (!job["schedule"]) {
    throw r.Fail(job, path + ".schedule",
                 "required (e.g. \"0 */6 * * *\", \"@daily\", \"@every 15m\"; remove the " + path +
                     " block to disable the job)");
  }
  Schedule s = r.ParseSchedule(job["schedule"], path + ".schedule");
  if (!s.Next(r.options().now, tz)) {
    throw r.Fail(job["schedule"], path + ".schedule", "\"" + s.text() + "\" never fires (no match in 5 years)");
  }
  return s;
}

void ParseJobs(const Reader& r, const YAML::Node& top, AgentConfig* c) {
  const YAML::Node jobs = top["jobs"];
  if (!jobs) {
    throw r.Fail(top, "jobs",
                 "required: enable at least one of jobs.backup, jobs.drill, jobs.prune, jobs.continuous");
  }
  r.CheckMap(jobs, "jobs", "jobs");
  if (const YAML::Node b = jobs["backup"]) {
    r.CheckMap(b, "jobs.backup", "jobs.backup");
    c->backup.enabled = true;
    c->backup.schedule = JobSchedule(r, b, "jobs.backup", c->tz);
    if (b["retention"]) {
      ParseRetention(r, b["retention"], "jobs.backup.retention", "jobs.backup.retention", &c->backup.retention);
    }
    if (const YAML::Node rt = b["retry"]) {
      r.CheckMap(rt, "jobs.backup.retry", "jobs.backup.retry");
      if (rt["max_attempts"]) {
        c->backup.retry.max_attempts = r.Int(rt["max_attempts"], "jobs.backup.retry.max_attempts", 1, 100);
      }
      if (rt["initial_backoff"]) {
        c->backup.retry.initial_backoff = r.Seconds(rt["initial_backoff"], "jobs.backup.retry.initial_backoff");
      }
      if (rt["max_backoff"]) {
        c->backup.retry.max_backoff = r.Seconds(rt["max_backoff"], "jobs.backup.retry.max_backoff");
      }
      if (c->backup.retry.max_backoff < c->backup.retry.initial_backoff) {
        throw r.Fail(rt["max_backoff"] ? rt["max_backoff"] : rt, "jobs.backup.retry.max_backoff",
                     "must not be shorter than initial_backoff (" +
                         std::to_string(c->backup.retry.initial_backoff.count()) + "s)");
      }
    }
    if (b["max_age"]) {
      c->backup.max_age = r.Seconds(b["max_age"], "jobs.backup.max_age");
    } else {
      auto t1 = c->backup.schedule.Next(r.options().now, c->tz);
      auto t2 = t1 ? c->backup.schedule.Next(*t1, c->tz) : std::nullopt;
      seconds interval = t2 ? std::chrono::duration_cast<seconds>(*t2 - *t1) : seconds(0);
      c->backup.max_age = std::max(seconds(60), 2 * interval);
    }
  }
  if (const YAML::Node d = jobs["drill"]) {
    r.CheckMap(d, "jobs.drill", "jobs.drill");
    c->drill.enabled = true;
    c->drill.schedule = JobSchedule(r, d, "jobs.drill", c->tz);
    if (d["max_age"]) c->drill.max_age = r.Seconds(d["max_age"], "jobs.drill.max_age", /*allow_zero=*/true);
    if (d["backup"]) c->drill.backup = r.NonEmpty(d["backup"], "jobs.drill.backup");
    c->drill.repository = JobRepository(r, d, "jobs.drill.repository", *c);
    if (d["not_kubernetes"]) c->drill.not_kubernetes = r.Bool(d["not_kubernetes"], "jobs.drill.not_kubernetes");
    if (d["etcd_binary"]) {
      const YAML::Node e = d["etcd_binary"];
      std::string bin = r.NonEmpty(e, "jobs.drill.etcd_binary");
      if (bin.find('/') != std::string::npos) {
        bin = r.Absolute(bin);
        if (r.options().check_files && ::access(bin.c_str(), X_OK) != 0) {
          throw r.Fail(e, "jobs.drill.etcd_binary", bin + ": not executable: " + std::strerror(errno));
        }
      }
      c->drill.etcd_binary = bin;
    }
  }
  if (const YAML::Node p = jobs["prune"]) {
    r.CheckMap(p, "jobs.prune", "jobs.prune");
    c->prune.enabled = true;
    c->prune.schedule = JobSchedule(r, p, "jobs.prune", c->tz);
    if (!p["retention"]) throw r.Fail(p, "jobs.prune.retention", "required (e.g. {keep_daily: 7})");
    ParseRetention(r, p["retention"], "jobs.prune.retention", "jobs.prune.retention", &c->prune.retention);
    if (c->prune.retention.Empty()) {
      throw r.Fail(p["retention"], "jobs.prune.retention", "no retention policy given (set at least one keep_* rule)");
    }
  }
  if (const YAML::Node n = jobs["continuous"]) ParseContinuous(r, n, c);
  if (const YAML::Node n = jobs["pki_check"]) {
    const std::string p = "jobs.pki_check";
    r.CheckMap(n, p, p);
    PkiCheckJobConfig& j = c->pki_check;
    j.enabled = true;
    j.schedule = JobSchedule(r, n, p, c->tz);
    if (n["kubernetes_dir"]) j.kubernetes_dir = r.Absolute(r.NonEmpty(n["kubernetes_dir"], p + ".kubernetes_dir"));
    if (r.options().check_files) {
      struct stat st;
      const YAML::Node at = n["kubernetes_dir"] ? n["kubernetes_dir"] : n;
      if (::stat(j.kubernetes_dir.c_str(), &st) != 0) {
        throw r.Fail(at, p + ".kubernetes_dir", j.kubernetes_dir + ": " + std::strerror(errno));
      }
      if (!S_ISDIR(st.st_mode)) throw r.Fail(at, p + ".kubernetes_dir", j.kubernetes_dir + ": not a directory");
    }
    if (n["warn_days"]) j.warn_days = r.Int(n["warn_days"], p + ".warn_days", 0, 3650);
  }
  if (!c->backup.enabled && !c->drill.enabled && !c->prune.enabled && !c->continuous.enabled && !c->pki_check.enabled) {
    throw r.Fail(jobs, "jobs",
                 "no job enabled: give at least one of jobs.backup, jobs.drill, jobs.prune, jobs.pki_check with a "
                 "schedule, or jobs.continuous");
  }
}

void ParseWebhooks(const Reader& r, const YAML::Node& alerts, std::vector<WebhookConfig>* out) {
  r.CheckMap(alerts, "alerts", "alerts");
  const YAML::Node hooks = alerts["webhooks"];
  if (!hooks) return;
  if (!hooks.IsSequence()) throw r.Fail(hooks, "alerts.webhooks", "expected a list, got " + Reader::Kind(hooks));
  for (size_t i = 0; i < hooks.size(); i++) {
    const std::string p = "alerts.webhooks[" + std::to_string(i) + "]";
    const YAML::Node n = hooks[i];
    r.CheckMap(n, "alerts.webhooks", p);
    WebhookConfig w;
    if (!n["url"]) throw r.Fail(n, p + ".url", "required (http:// or https:// URL)");
    w.url = r.NonEmpty(n["url"], p + ".url");
    std::string why;
    if (!ValidHttpUrl(w.url, &why)) throw r.Fail(n["url"], p + ".url", why);
    if (n["format"]) {
      std::string f = r.String(n["format"], p + ".format");
      if (f == "alertmanager") {
        w.format = WebhookConfig::Format::kAlertmanager;
      } else if (f == "slack") {
        w.format = WebhookConfig::Format::kSlack;
      } else if (f == "json") {
        w.format = WebhookConfig::Format::kJson;
      } else {
        throw r.Fail(n["format"], p + ".format", "unknown format \"" + f + "\" (want alertmanager, slack or json)");
      }
    }
    if (n["timeout"]) w.timeout = r.Millis(n["timeout"], p + ".timeout");
    if (n["max_attempts"]) w.max_attempts = r.Int(n["max_attempts"], p + ".max_attempts", 1, 100);
    if (n["ca_file"]) w.ca_file = r.File(n["ca_file"], p + ".ca_file");
    if (n["bearer_token_file"]) w.bearer_token_file = r.File(n["bearer_token_file"], p + ".bearer_token_file");
    out->push_back(std::move(w));
  }
}

AgentConfig Parse(const YAML::Node& top, const Reader& r) {
  AgentConfig c;
  c.path = r.file();
  if (top.IsNull()) throw r.Fail(1, "", "the file is empty");
  r.CheckMap(top, "", "");

  if (const YAML::Node tz = top["timezone"]) {
    c.timezone = r.NonEmpty(tz, "timezone");
    if (!absl::LoadTimeZone(c.timezone, &c.tz)) {
      throw r.Fail(tz, "timezone",
                   "unknown time zone \"" + c.timezone + "\" (want an IANA name such as Europe/Berlin)");
    }
  } else {
    c.tz = absl::UTCTimeZone();
  }
  if (!top["etcd"]) throw r.Fail(top, "etcd", "required (etcd: {endpoints: [https://127.0.0.1:2379], ...})");
  ParseEtcd(r, top["etcd"], &c.etcd);
  ParseRepositories(r, top, &c.repositories);

  if (const YAML::Node e = top["encryption"]) {
    r.CheckMap(e, "encryption", "encryption");
    if (e["key_file"]) c.encryption.key_file = r.File(e["key_file"], "encryption.key_file");
    if (e["passphrase_file"]) c.encryption.passphrase_file = r.File(e["passphrase_file"], "encryption.passphrase_file");
    if (!c.encryption.key_file.empty() && !c.encryption.passphrase_file.empty()) {
      throw r.Fail(e["passphrase_file"], "encryption.passphrase_file",
                   "give only one of encryption.key_file and encryption.passphrase_file");
    }
  }
  if (const YAML::Node n = top["compression"]) {
    c.compression = r.String(n, "compression");
    if (c.compression != "zstd" && c.compression != "gzip" && c.compression != "none") {
      throw r.Fail(n, "compression", "unknown compression \"" + c.compression + "\" (want zstd, gzip or none)");
    }
  }
  if (const YAML::Node n = top["compression_level"]) {
    const int max = c.compression == "zstd" ? 19 : c.compression == "gzip" ? 9 : 0;
    c.compression_level = r.Int(n, "compression_level", 0, max);
  }
  if (const YAML::Node n = top["name_prefix"]) {
    c.name_prefix = r.NonEmpty(n, "name_prefix");
    if (c.name_prefix.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") !=
            std::string::npos ||
        c.name_prefix[0] == '.' || c.name_prefix.size() > 100) {
      throw r.Fail(n, "name_prefix", "use letters, digits, '.', '_' and '-' only (not starting with '.')");
    }
  }
  ParseJobs(r, top, &c);
  if (const YAML::Node h = top["http"]) {
    r.CheckMap(h, "http", "http");
    if (h["listen"]) {
      c.http_listen = r.String(h["listen"], "http.listen");
      std::string why;
      if (!c.http_listen.empty() && !ValidListen(c.http_listen, &why)) throw r.Fail(h["listen"], "http.listen", why);
    }
  }
  if (const YAML::Node a = top["alerts"]) ParseWebhooks(r, a, &c.webhooks);
  c.state_dir = "/var/lib/etcdsafe";
  if (const YAML::Node s = top["state_dir"]) c.state_dir = r.Absolute(r.NonEmpty(s, "state_dir"));
  if (const YAML::Node s = top["shutdown_grace"]) c.shutdown_grace = r.Seconds(s, "shutdown_grace");
  if (c.continuous.enabled && c.continuous.spill_dir.empty()) c.continuous.spill_dir = c.state_dir + "/continuous-spill";
  if (const YAML::Node l = top["log"]) {
    r.CheckMap(l, "log", "log");
    if (l["format"]) {
      c.log_format = r.String(l["format"], "log.format");
      if (c.log_format != "auto" && c.log_format != "text" && c.log_format != "json") {
        throw r.Fail(l["format"], "log.format", "unknown format \"" + c.log_format + "\" (want auto, text or json)");
      }
    }
  }
  return c;
}

}  // namespace

std::chrono::seconds ParseDuration(const std::string& text) {
  std::chrono::nanoseconds d = ParseGoDuration(text);
  if (d % seconds(1) != std::chrono::nanoseconds(0)) {
    throw Error(ErrorCode::kInvalidArgument, "bad duration \"" + text + "\": not a whole number of seconds");
  }
  return std::chrono::duration_cast<seconds>(d);
}

std::chrono::milliseconds ParseDurationMillis(const std::string& text) {
  std::chrono::nanoseconds d = ParseGoDuration(text);
  if (d % milliseconds(1) != std::chrono::nanoseconds(0)) {
    throw Error(ErrorCode::kInvalidArgument, "bad duration \"" + text + "\": not a whole number of milliseconds");
  }
  return std::chrono::duration_cast<milliseconds>(d);
}

std::vector<std::string> KnownConfigKeys() {
  std::set<std::string> keys;
  for (const auto& [path, names] : Schema()) {
    for (const std::string& k : names) keys.insert(path.empty() ? k : path + "." + k);
  }
  return {keys.begin(), keys.end()};
}

AgentConfig ParseConfig(const std::string& yaml_text, const std::string& path, const LoadOptions& options) {
  const std::string file = std::filesystem::absolute(path).lexically_normal().string();
  Reader reader(file, options);
  YAML::Node top;
  try {
    top = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw reader.Fail(e.mark.is_null() ? 1 : e.mark.line + 1, "", "YAML syntax error: " + e.msg);
  }
  try {
    return Parse(top, reader);
  } catch (const YAML::Exception& e) {  // e.g. a conversion yaml-cpp itself refuses
    throw reader.Fail(e.mark.is_null() ? 1 : e.mark.line + 1, "", e.msg);
  }
}

AgentConfig LoadConfig(const std::string& path, const LoadOptions& options) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    throw Error(ErrorCode::kInvalidArgument, path + ": is a directory, want the config file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    if (err == ENOENT) throw Error(ErrorCode::kNotFound, path + ": config file not found");
    throw SystemError(path, err);
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw SystemError(path, errno);
  return ParseConfig(text.str(), path, options);
}

}  // namespace etcdsafe::agent
