#include "testutil/cli.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <stdexcept>

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

CmdResult Run(const std::string& program, const std::vector<std::string>& args) {
  TempDir tmp;
  const std::string out = tmp.Sub("out"), err = tmp.Sub("err");
  std::vector<std::string> argv_s = {program};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int in = ::open("/dev/null", O_RDONLY);
    int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || o < 0 || e < 0) ::_exit(127);
    ::dup2(in, 0);
    ::dup2(o, 1);
    ::dup2(e, 2);
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
  int status = 0;
  rusage ru{};
  while (::wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
  }
  CmdResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = ReadFile(out);
  r.err = ReadFile(err);
  r.max_rss_kib = ru.ru_maxrss;
  return r;
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

std::set<std::string> ListDir(const std::string& path) {
  std::set<std::string> out;
  if (DIR* d = ::opendir(path.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.insert(n);
    }
    ::closedir(d);
  }
  return out;
}

}  // namespace etcdsafe::testutil
