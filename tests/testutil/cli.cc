#include "testutil/cli.h"

#include <sys/wait.h>

#include <cstdlib>

#include "testutil/temp_dir.h"

namespace etcdsafe::testutil {

std::string ShellQuote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

CmdResult Shell(const std::string& cmd) {
  TempDir tmp;
  int status =
      std::system(("{ " + cmd + "; } >" + tmp.Sub("out") + " 2>" + tmp.Sub("err") + " </dev/null").c_str());
  CmdResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = ReadFile(tmp.Sub("out"));
  r.err = ReadFile(tmp.Sub("err"));
  return r;
}

CmdResult Exec(const std::string& program, const std::vector<std::string>& args, const std::string& env) {
  std::string cmd = env + " " + program;
  for (const auto& a : args) cmd += " " + ShellQuote(a);
  return Shell(cmd);
}

std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

bool IsOneLineError(const CmdResult& r) {
  size_t pos = r.err.rfind("Error: ");
  return pos != std::string::npos && r.err.find('\n', pos) == r.err.size() - 1;
}

KvDump DumpAll(client::EtcdClient& c) {
  KvDump out;
  for (const auto& kv : c.Range("/", std::string(1, '\0')).kvs) out.emplace_back(kv.key, kv.value, kv.mod_revision);
  return out;
}

}  // namespace etcdsafe::testutil
