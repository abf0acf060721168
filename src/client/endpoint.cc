#include "client/endpoint.h"

#include <charconv>

#include "base/error.h"

namespace etcdsafe::client {

std::string Endpoint::HostPort() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string RedactEndpoint(const std::string& text) {
  const auto at = text.rfind('@');
  if (at == std::string::npos) return text;
  auto scheme = text.find("://");
  const size_t start = (scheme != std::string::npos && scheme < at) ? scheme + 3 : 0;
  const std::string userinfo = text.substr(start, at - start);
  const auto colon = userinfo.find(':');
  const std::string shown = colon == std::string::npos ? "***" : userinfo.substr(0, colon) + ":***";
  return text.substr(0, start) + shown + text.substr(at);
}

Endpoint ParseEndpoint(const std::string& text, bool tls_by_default) {
  const std::string shown = RedactEndpoint(text);
  auto bad = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument, "invalid endpoint \"" + shown + "\": " + why);
  };
  if (shown != text) {
    throw bad("credentials in an endpoint are not supported; use --user NAME with ETCDCTL_PASSWORD or --password");
  }
  Endpoint ep;
  ep.original = shown;
  std::string rest = text;
  ep.tls = tls_by_default;
  if (auto pos = rest.find("://"); pos != std::string::npos) {
    const std::string scheme = rest.substr(0, pos);
    if (scheme == "https") {
      ep.tls = true;
    } else if (scheme == "http") {
      ep.tls = false;
    } else {
      throw bad("unsupported scheme \"" + scheme + "\" (want http or https)");
    }
    rest = rest.substr(pos + 3);
  }
  // Tolerate a trailing path of "/" as etcd's own URLs sometimes carry one.
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    if (rest.find_first_not_of('/', slash) != std::string::npos) throw bad("unexpected path");
    rest.resize(slash);
  }
  std::string port_text;
  if (!rest.empty() && rest[0] == '[') {
    const auto close = rest.find(']');
    if (close == std::string::npos) throw bad("unterminated [");
    ep.host = rest.substr(1, close - 1);
    if (close + 1 >= rest.size() || rest[close + 1] != ':') throw bad("missing port");
    port_text = rest.substr(close + 2);
  } else {
    const auto colon = rest.rfind(':');
    if (colon == std::string::npos) throw bad("missing port");
    ep.host = rest.substr(0, colon);
    if (ep.host.find(':') != std::string::npos) throw bad("IPv6 address must be in [brackets]");
    port_text = rest.substr(colon + 1);
  }
  if (ep.host.empty()) throw bad("missing host");
  int port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port <= 0 ||
      port > 65535) {
    throw bad("bad port \"" + port_text + "\"");
  }
  ep.port = port;
  return ep;
}

}  // namespace etcdsafe::client
