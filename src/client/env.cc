// ApplyEnvironment: etcdctl's ETCDCTL_* variables (see etcd_client.h).
#include <cctype>
#include <cstdlib>
#include <string>

#include "base/error.h"
#include "client/etcd_client.h"

namespace etcdsafe::client {
namespace {

// Go's time.ParseDuration subset: one or more "<decimal><unit>", unit in
// ns/us/ms/s/m/h. Returns false on anything else.
bool ParseGoDuration(const std::string& s, std::chrono::milliseconds* out) {
  if (s.empty()) return false;
  if (s == "0") {
    *out = std::chrono::milliseconds(0);
    return true;
  }
  double total_ms = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
    if (start == i) return false;
    double value = std::strtod(s.substr(start, i - start).c_str(), nullptr);
    size_t ustart = i;
    while (i < s.size() && !std::isdigit(static_cast<unsigned char>(s[i])) && s[i] != '.') ++i;
    const std::string unit = s.substr(ustart, i - ustart);
    double scale;
    if (unit == "ns") scale = 1e-6;
    else if (unit == "us" || unit == "\xC2\xB5s") scale = 1e-3;
    else if (unit == "ms") scale = 1;
    else if (unit == "s") scale = 1e3;
    else if (unit == "m") scale = 60e3;
    else if (unit == "h") scale = 3600e3;
    else return false;
    total_ms += value * scale;
  }
  *out = std::chrono::milliseconds(static_cast<int64_t>(total_ms));
  return true;
}

}  // namespace

EnvLookup ProcessEnvironment() {
  return [](const std::string& name, std::string* value) {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return false;
    *value = v;
    return true;
  };
}

ClientConfig ApplyEnvironment(ClientConfig c, const EnvLookup& lookup) {
  const ClientConfig defaults;
  std::string v;
  auto get = [&](const char* name) { return lookup(name, &v); };
  if (c.endpoints.empty() && get("ETCDCTL_ENDPOINTS")) {
    size_t start = 0;
    while (start <= v.size()) {
      size_t comma = v.find(',', start);
      if (comma == std::string::npos) comma = v.size();
      std::string ep = v.substr(start, comma - start);
      if (!ep.empty()) c.endpoints.push_back(ep);
      start = comma + 1;
    }
  }
  if (c.cacert.empty() && get("ETCDCTL_CACERT")) c.cacert = v;
  if (c.cert.empty() && get("ETCDCTL_CERT")) c.cert = v;
  if (c.key.empty() && get("ETCDCTL_KEY")) c.key = v;
  if (!c.insecure_skip_tls_verify && get("ETCDCTL_INSECURE_SKIP_TLS_VERIFY")) {
    if (v == "true" || v == "1") {
      c.insecure_skip_tls_verify = true;
    } else if (v != "false" && v != "0" && !v.empty()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "ETCDCTL_INSECURE_SKIP_TLS_VERIFY: invalid boolean \"" + v + "\"");
    }
  }
  if (c.user.empty() && get("ETCDCTL_USER")) c.user = v;
  if (c.password.empty() && get("ETCDCTL_PASSWORD")) c.password = v;
  auto duration = [&](const char* name, std::chrono::milliseconds* field,
                      std::chrono::milliseconds def) {
    if (*field != def || !get(name)) return;
    if (!ParseGoDuration(v, field)) {
      throw Error(ErrorCode::kInvalidArgument,
                  std::string(name) + ": invalid duration \"" + v + "\"");
    }
  };
  duration("ETCDCTL_DIAL_TIMEOUT", &c.dial_timeout, defaults.dial_timeout);
  duration("ETCDCTL_COMMAND_TIMEOUT", &c.command_timeout, defaults.command_timeout);
  return c;
}

}  // namespace etcdsafe::client
