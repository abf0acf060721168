// Test PKI for TLS integration tests, made with the `openssl` CLI.
//
// MakeTestCerts(dir) writes a CA, a server cert (SAN IP:127.0.0.1, DNS:localhost,
// usable as server and client so etcd's own loopback gateway can use it), a client cert
// with CN=root (so etcd's --client-cert-auth maps it to the root user) and an unrelated
// CA for wrong-CA tests. EC P-256 keys (fast), PKCS#8 PEM. Throws std::runtime_error with
// openssl's output on failure. Thread-safe (touches only `dir`).
#pragma once

#include <string>

namespace etcdsafe::testutil {

struct TlsFiles {
  std::string ca, server_cert, server_key, client_cert, client_key;
  std::string other_ca;  // a CA that did not sign anything here
};

TlsFiles MakeTestCerts(const std::string& dir);

// Issues a client certificate signed by files.ca with CN=`common_name`; writes
// <dir>/<common_name>.pem and .key and returns their paths in *cert / *key.
void MakeClientCert(const TlsFiles& files, const std::string& dir, const std::string& common_name,
                    std::string* cert, std::string* key);

}  // namespace etcdsafe::testutil
