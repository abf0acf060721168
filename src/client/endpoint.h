// Endpoint parsing (internal to src/client): "https://h:p", "http://h:p", "h:p",
// "[::1]:p". Pure functions; thread-safe.
#pragma once

#include <string>

namespace etcdsafe::client {

struct Endpoint {
  std::string original;  // as the user wrote it, for messages (RedactEndpoint'ed)
  std::string host;      // without brackets
  int port = 0;
  bool tls = false;
  // "host:port" with brackets around IPv6 literals, as gRPC and getaddrinfo users want.
  std::string HostPort() const;
};

// Scheme-less endpoints use TLS when `tls_by_default` (cert flags given), like etcdctl.
// Malformed (no port, bad port, unknown scheme) or with credentials ("http://u:pw@h:p"):
// kInvalidArgument naming the endpoint as RedactEndpoint shows it.
Endpoint ParseEndpoint(const std::string& text, bool tls_by_default);

// `text` with any userinfo hidden, for messages: "http://root:Pw@h:1" → "http://root:***@h:1",
// "tok@h:1" → "***@h:1". Everything up to the last '@' counts as userinfo (a password may
// itself hold '@', ':' or '/'); text without '@' is returned unchanged.
std::string RedactEndpoint(const std::string& text);

}  // namespace etcdsafe::client
