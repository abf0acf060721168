// Endpoint parsing (internal to src/client): "https://h:p", "http://h:p", "h:p",
// "[::1]:p". Pure functions; thread-safe.
#pragma once

#include <string>

namespace etcdsafe::client {

struct Endpoint {
  std::string original;  // as the user wrote it, for messages
  std::string host;      // without brackets
  int port = 0;
  bool tls = false;
  // "host:port" with brackets around IPv6 literals, as gRPC and getaddrinfo users want.
  std::string HostPort() const;
};

// Scheme-less endpoints use TLS when `tls_by_default` (cert flags given), like etcdctl.
// Malformed (no port, bad port, unknown scheme): kInvalidArgument naming the endpoint.
Endpoint ParseEndpoint(const std::string& text, bool tls_by_default);

}  // namespace etcdsafe::client
