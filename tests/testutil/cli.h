// Helpers for tests that drive the etcdsafe binary (or etcdctl, sha256sum, ...) as a user
// would: run a shell command with stdout and stderr kept apart, quote arguments, and
// read back everything an etcd serves for comparisons.
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "client/etcd_client.h"

namespace etcdsafe::testutil {

struct CmdResult {
  int code = -1;  // exit code, or 128 + signal
  std::string out, err;
  long max_rss_kib = -1;  // peak RSS of the process (Run only)
};

// Single-quotes a word for /bin/sh.
std::string ShellQuote(const std::string& s);
// Runs `cmd` with sh (redirections apply to the whole pipeline), stdin from /dev/null.
CmdResult Shell(const std::string& cmd);
// Runs `env program args...` with every argument quoted.
CmdResult Exec(const std::string& program, const std::vector<std::string>& args, const std::string& env = "");

// Runs program (no shell) with args and measures its own peak RSS (wait4's rusage).
CmdResult Run(const std::string& program, const std::vector<std::string>& args);

// The names in a directory (no "." and ".."); empty when it cannot be opened.
std::set<std::string> ListDir(const std::string& path);

std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b);

// Errors are printed as one "Error: ..." line, last on stderr.
bool IsOneLineError(const CmdResult& r);

// Every key, value and mod revision an etcd serves, in key order.
using KvDump = std::vector<std::tuple<std::string, std::string, int64_t>>;
KvDump DumpAll(client::EtcdClient& c);

}  // namespace etcdsafe::testutil
