// Connection diagnosis (internal to src/client).
//
// gRPC only says "failed to connect to all addresses". When a dial fails we redo it by
// hand — TCP connect, then (for TLS endpoints) an OpenSSL handshake with the same CA,
// client cert and key — to name the real cause in one line. Also loads and validates
// the PEM files up front so a bad file is reported by name. Thread-safe (no state).
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "base/error.h"
#include "client/endpoint.h"

namespace etcdsafe::client {

struct TlsMaterial {
  std::string ca_pem;    // empty: system roots
  std::string cert_pem;  // client chain; empty: no client cert
  std::string key_pem;
  bool skip_verify = false;
};

// Reads and parses the files. Unreadable / unparsable / mismatched cert and key:
// kInvalidArgument "<role> <path>: <why>".
TlsMaterial LoadTlsMaterial(const std::string& cacert, const std::string& cert,
                            const std::string& key, bool skip_verify);

// Returns why connecting to `ep` fails (code + one-line reason), or nullopt when TCP and
// TLS both work (the caller then falls back to gRPC's own text). `tls` is null for
// plaintext endpoints. Bounded by `budget`.
std::optional<Error> DiagnoseConnect(const Endpoint& ep, const TlsMaterial* tls,
                                     std::chrono::milliseconds budget);

}  // namespace etcdsafe::client
