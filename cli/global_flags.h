// Flags shared by every command that talks to etcd, named and defaulted like etcdctl's,
// with the same ETCDCTL_* environment variables (a flag given on the command line wins).
#pragma once

#include <CLI/CLI.hpp>

#include <chrono>
#include <string>

#include "client/etcd_client.h"

namespace etcdsafe::cli {

struct GlobalFlags {
  std::string endpoints = "127.0.0.1:2379";
  std::string cacert, cert, key;
  bool insecure_skip_tls_verify = false;
  std::string user;      // "name" or "name:password"
  std::string password;  // etcdctl 3.4 --password
  std::string dial_timeout = "2s";
  std::string command_timeout;  // empty: none (snapshot save streams as long as it takes)
  std::string write_out = "simple";
  bool debug = false;  // --debug: request-level diagnostics on stderr
};

void AddGlobalFlags(CLI::App& app, GlobalFlags& flags);

// Parses a Go-style duration ("2s", "500ms", "1m30s"). Bad input: kInvalidArgument.
std::chrono::milliseconds ParseDuration(const std::string& text, const std::string& flag);

// Builds the client configuration; splits --user "name:password". With --debug the
// client's diagnostics go to stderr as "etcdsafe debug: <line>".
client::ClientConfig ToClientConfig(const GlobalFlags& flags);

}  // namespace etcdsafe::cli
