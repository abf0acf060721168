#include "global_flags.h"

#include <cctype>
#include <cstdio>

#include "base/error.h"

namespace etcdsafe::cli {

void AddGlobalFlags(CLI::App& app, GlobalFlags& f) {
  app.add_option("--endpoints", f.endpoints, "gRPC endpoints, comma separated; tried in order")
      ->envname("ETCDCTL_ENDPOINTS");
  app.add_option("--cacert", f.cacert, "verify the server with this CA bundle")->envname("ETCDCTL_CACERT");
  app.add_option("--cert", f.cert, "TLS client certificate")->envname("ETCDCTL_CERT");
  app.add_option("--key", f.key, "TLS client key")->envname("ETCDCTL_KEY");
  app.add_flag("--insecure-skip-tls-verify", f.insecure_skip_tls_verify,
               "accept any server certificate (testing only)")
      ->envname("ETCDCTL_INSECURE_SKIP_TLS_VERIFY");
  app.add_option("--user", f.user, "etcd user: name[:password]")->envname("ETCDCTL_USER");
  app.add_option("--password", f.password, "etcd password (prefer ETCDCTL_PASSWORD)")
      ->envname("ETCDCTL_PASSWORD");
  app.add_option("--dial-timeout", f.dial_timeout, "connection timeout, e.g. 2s")
      ->envname("ETCDCTL_DIAL_TIMEOUT");
  app.add_option("--command-timeout", f.command_timeout, "per-request timeout (default: none for snapshot save)")
      ->envname("ETCDCTL_COMMAND_TIMEOUT");
  app.add_option("-w,--write-out", f.write_out, "output format: simple, table, json, fields")
      ->envname("ETCDCTL_WRITE_OUT");
  app.add_flag("--debug", f.debug, "print request-level diagnostics to stderr (endpoint, TLS, each RPC and its time)")
      ->envname("ETCDCTL_DEBUG");
}

std::chrono::milliseconds ParseDuration(const std::string& text, const std::string& flag) {
  auto bad = [&]() {
    return Error(ErrorCode::kInvalidArgument,
                 "invalid duration \"" + text + "\" for " + flag + " (examples: 2s, 500ms, 1m30s)");
  };
  if (text.empty()) throw bad();
  double total_ms = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) i++;
    if (start == i) throw bad();
    double value = std::stod(text.substr(start, i - start));
    size_t unit_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) i++;
    std::string unit = text.substr(unit_start, i - unit_start);
    if (unit == "ms") total_ms += value;
    else if (unit == "s") total_ms += value * 1000;
    else if (unit == "m") total_ms += value * 60000;
    else if (unit == "h") total_ms += value * 3600000;
    else if (unit == "us" || unit == "µs") total_ms += value / 1000;
    else throw bad();
  }
  return std::chrono::milliseconds(static_cast<int64_t>(total_ms));
}

client::ClientConfig ToClientConfig(const GlobalFlags& f) {
  client::ClientConfig c;
  size_t start = 0;
  while (start <= f.endpoints.size()) {
    size_t comma = f.endpoints.find(',', start);
    if (comma == std::string::npos) comma = f.endpoints.size();
    std::string ep = f.endpoints.substr(start, comma - start);
    if (!ep.empty()) c.endpoints.push_back(ep);
    start = comma + 1;
  }
  if (c.endpoints.empty()) throw Error(ErrorCode::kInvalidArgument, "--endpoints is empty");
  c.cacert = f.cacert;
  c.cert = f.cert;
  c.key = f.key;
  if (c.cert.empty() != c.key.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "--cert and --key must be given together");
  }
  c.insecure_skip_tls_verify = f.insecure_skip_tls_verify;
  if (!f.user.empty()) {
    size_t colon = f.user.find(':');
    if (colon == std::string::npos) {
      c.user = f.user;
      c.password = f.password;
      if (c.password.empty()) {
        throw Error(ErrorCode::kInvalidArgument,
                    "--user has no password: use --user name:password, --password or ETCDCTL_PASSWORD");
      }
    } else {
      c.user = f.user.substr(0, colon);
      c.password = f.user.substr(colon + 1);
    }
  }
  c.dial_timeout = ParseDuration(f.dial_timeout, "--dial-timeout");
  if (!f.command_timeout.empty()) c.command_timeout = ParseDuration(f.command_timeout, "--command-timeout");
  if (f.debug) {
    c.debug = [](const std::string& line) { std::fprintf(stderr, "etcdsafe debug: %s\n", line.c_str()); };
    std::fprintf(stderr, "etcdsafe debug: endpoints %s, dial timeout %lld ms, command timeout %s\n",
                 f.endpoints.c_str(), static_cast<long long>(c.dial_timeout.count()),
                 f.command_timeout.empty() ? "the command's default" : f.command_timeout.c_str());
  }
  return c;
}

}  // namespace etcdsafe::cli
