#include "ops/etcd_process.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "base/error.h"
#include "base/file.h"
#include "client/etcd_client.h"

extern char** environ;

namespace etcdsafe::ops {

using Clock = std::chrono::steady_clock;

constexpr char kPrefix[] = "etcdsafe-drill-";

struct EtcdSandbox::State {
  std::mutex mu;
  pid_t pid = -1;  // the running etcd, -1 when none (reaped)
  int exit_status = 0;
  std::string dir;
  bool cleaned = false;

  // Under mu: true when the process is gone (reaped now or before).
  bool ReapLocked(bool block) {
    if (pid <= 0) return true;
    int status = 0;
    pid_t r;
    do {
      r = ::waitpid(pid, &status, block ? 0 : WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == pid || (r < 0 && errno == ECHILD)) {
      pid = -1;
      exit_status = status;
      return true;
    }
    return false;
  }
  // SIGTERM, poll until `limit`, then SIGKILL. Never throws.
  void Stop(std::chrono::milliseconds limit) {
    {
      std::lock_guard lock(mu);
      if (pid <= 0) return;
      ::kill(pid, SIGTERM);
    }
    const auto deadline = Clock::now() + limit;
    for (;;) {
      {
        std::lock_guard lock(mu);
        if (ReapLocked(false)) return;
        if (Clock::now() >= deadline) {
          ::kill(pid, SIGKILL);
          ReapLocked(true);
          return;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
};

namespace {

std::pair<int, int> EphemeralRange() {
  int lo = 32768, hi = 60999;
  std::ifstream f("/proc/sys/net/ipv4/ip_local_port_range");
  int a = 0, b = 0;
  if (f >> a >> b && a > 0 && b >= a) {
    lo = a;
    hi = b;
  }
  return {lo, hi};
}

bool IsExecutableFile(const std::string& path, std::string* why) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    *why = std::strerror(errno);
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    *why = "not a regular file";
    return false;
  }
  if (::access(path.c_str(), X_OK) != 0) {
    *why = "not executable";
    return false;
  }
  return true;
}

std::string SearchPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string p = path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin";
  std::stringstream ss(p);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) dir = ".";
    std::string candidate = dir + "/" + name;
    std::string why;
    if (IsExecutableFile(candidate, &why)) return candidate;
  }
  return "";
}

// One printable line of at most `limit` bytes.
std::string OneLine(std::string s, size_t limit = 300) {
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  if (s.size() > limit) s = s.substr(0, limit) + "...";
  return s;
}

std::string ReadLog(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "";
  f.seekg(0, std::ios::end);
  std::streamoff size = f.tellg();
  const std::streamoff keep = 64 << 10;
  f.seekg(size > keep ? size - keep : 0);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The "msg" (and "error") of a zap JSON log line, else the line itself.
std::string Field(const std::string& line, const std::string& name) {
  std::string pat = "\"" + name + "\":\"";
  size_t at = line.find(pat);
  if (at == std::string::npos) return "";
  at += pat.size();
  std::string out;
  for (size_t i = at; i < line.size() && line[i] != '"'; i++) {
    if (line[i] == '\\' && i + 1 < line.size()) i++;
    out += line[i];
  }
  return out;
}

}  // namespace

std::string FindEtcdBinary(const std::string& given) {
  if (given.empty()) {
    std::string found = SearchPath("etcd");
    if (found.empty()) {
      throw Error(ErrorCode::kNotFound, "etcd binary not found in PATH (install etcd or give --etcd-binary)");
    }
    return found;
  }
  if (given.find('/') == std::string::npos) {
    std::string found = SearchPath(given);
    if (found.empty()) throw Error(ErrorCode::kNotFound, "--etcd-binary " + OneLine(given) + ": not found in PATH");
    return found;
  }
  std::string why;
  if (!IsExecutableFile(given, &why)) throw Error(ErrorCode::kNotFound, "--etcd-binary " + OneLine(given) + ": " + why);
  return given;
}

std::vector<int> FreeLoopbackPorts(int n) {
  auto [eph_lo, eph_hi] = EphemeralRange();
  int lo = 10000, hi = eph_lo - 1;
  if (hi - lo < 1000) {  // an unusual ephemeral range: use the ports above it
    lo = eph_hi + 1;
    hi = 65535;
  }
  if (hi < lo) throw Error(ErrorCode::kUnavailable, "no free loopback port: the ephemeral range covers every port");
  static std::mutex rng_mu;
  static std::mt19937 rng(std::random_device{}());
  std::vector<int> fds, ports;
  std::string failure;
  for (int tries = 0; static_cast<int>(ports.size()) < n; ++tries) {
    if (tries > 10000) {
      failure = "no free loopback port in " + std::to_string(lo) + "-" + std::to_string(hi);
      break;
    }
    int port;
    {
      std::lock_guard lock(rng_mu);
      port = std::uniform_int_distribution<int>(lo, hi)(rng);
    }
    if (port == 2379 || port == 2380) continue;  // never etcd's well-known ports
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      failure = std::string("socket: ") + std::strerror(errno);
      break;
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      continue;  // in use, or picked twice
    }
    fds.push_back(fd);
    ports.push_back(port);
  }
  for (int fd : fds) ::close(fd);
  if (!failure.empty()) throw Error(ErrorCode::kUnavailable, failure);
  return ports;
}

EtcdSandbox::EtcdSandbox(const std::string& parent) : state_(std::make_shared<State>()) {
  std::shared_ptr<State> s = state_;
  // Registered before anything exists, so an interrupt from here on undoes what follows.
  cleanup_ = std::make_unique<InterruptCleanup>([s] {
    s->Stop(std::chrono::milliseconds(5000));
    std::lock_guard lock(s->mu);
    if (!s->cleaned && !s->dir.empty()) RemoveAll(s->dir);
    s->cleaned = true;
  });
  const std::string base = TempDirOr(parent);
  // Scratch dirs of drills that were killed (SIGKILL: no cleanup ran; their etcd died
  // with them, PR_SET_PDEATHSIG): their lock is free.
  for (const auto& p : RemoveStaleTemps(base, kPrefix, "")) removed_stale_.push_back(p);
  {
    CommitSection section;  // an interrupt that began already stops us here
    // Created under a name the sweep above ignores, locked, then renamed (never over an
    // existing name): another run's sweep never sees it unlocked.
    std::string templ = base + "/.etcdsafe-drill-new-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) throw SystemError("create a drill directory in " + base, errno);
    const std::string created = buf.data();
    {
      std::lock_guard lock(state_->mu);
      state_->dir = created;
    }
    const std::string final_name = base + "/" + kPrefix + created.substr(created.size() - 6);
    lock_fd_ = ::open(created.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int err = 0;
    std::string what;
    if (lock_fd_ < 0 || ::flock(lock_fd_, LOCK_EX) != 0) {
      err = errno;
      what = "lock " + created;
    } else if (::renameat2(AT_FDCWD, created.c_str(), AT_FDCWD, final_name.c_str(), RENAME_NOREPLACE) != 0) {
      err = errno;
      what = "rename " + created + " to " + final_name;
    }
    if (!what.empty()) {  // the destructor will not run: undo here
      RemoveAll(created);
      if (lock_fd_ >= 0) ::close(lock_fd_);
      std::lock_guard lock(state_->mu);
      state_->cleaned = true;
      throw SystemError(what, err);
    }
    dir_ = final_name;
    std::lock_guard lock(state_->mu);
    state_->dir = dir_;
  }
}

EtcdSandbox::~EtcdSandbox() {
  StopEtcd();
  {
    CommitSection section;  // blocks forever if the interrupt cleanup runs: it removes the dir
    std::lock_guard lock(state_->mu);
    if (!state_->cleaned && !state_->dir.empty()) RemoveAll(state_->dir);
    state_->cleaned = true;
  }
  cleanup_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

bool EtcdSandbox::running() const {
  std::lock_guard lock(state_->mu);
  return !state_->ReapLocked(false);
}

pid_t EtcdSandbox::pid() const {
  std::lock_guard lock(state_->mu);
  return state_->pid;
}

std::string EtcdSandbox::client_url() const { return "http://127.0.0.1:" + std::to_string(client_port_); }

void EtcdSandbox::StopEtcd() { state_->Stop(stop_timeout_); }

std::string EtcdSandbox::LogSummary() const {
  std::string log = ReadLog(log_path());
  std::stringstream ss(log);
  std::string line, last, last_bad;
  while (std::getline(ss, line)) {
    if (line.empty()) continue;
    last = line;
    if (line.find("\"level\":\"fatal\"") != std::string::npos || line.find("\"level\":\"panic\"") != std::string::npos ||
        line.find("\"level\":\"error\"") != std::string::npos || line.starts_with("panic:")) {
      last_bad = line;
    }
  }
  std::string pick = last_bad.empty() ? last : last_bad;
  if (pick.empty()) return "etcd wrote no log (" + log_path() + ")";
  std::string msg = Field(pick, "msg");
  if (msg.empty()) return "etcd: " + OneLine(pick);
  std::string err = Field(pick, "error");
  return "etcd: " + OneLine(msg + (err.empty() ? "" : ": " + err));
}

void EtcdSandbox::Spawn(const EtcdStartOptions& o) {
  const std::string client = "http://127.0.0.1:" + std::to_string(client_port_);
  const std::string peer = "http://127.0.0.1:" + std::to_string(o.peer_port);
  std::vector<std::string> args = {
      o.binary,
      "--name=" + o.name,
      "--data-dir=" + o.data_dir,
      "--listen-client-urls=" + client,
      "--advertise-client-urls=" + client,
      "--listen-peer-urls=" + peer,
      "--initial-advertise-peer-urls=" + peer,
      "--initial-cluster=" + o.name + "=" + peer,
      "--logger=zap",
      "--log-outputs=stderr",
  };
  if (o.quota_backend_bytes > 0) args.push_back("--quota-backend-bytes=" + std::to_string(o.quota_backend_bytes));
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view v(*e);
    if (v.starts_with("ETCD_") || v.starts_with("ETCDCTL_")) continue;  // no stray configuration
    env.emplace_back(v);
  }
  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string log = log_path();
  int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) throw SystemError("open " + log, errno);
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) {
    int err = errno;
    ::close(log_fd);
    throw SystemError("open /dev/null", err);
  }
  const pid_t parent = ::getpid();
  pid_t pid;
  {
    CommitSection section;  // the interrupt cleanup sees this pid, or we never fork
    std::lock_guard lock(state_->mu);
    pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);  // etcdsafe blocks SIGINT/SIGTERM/SIGHUP
      struct sigaction dfl{};
      dfl.sa_handler = SIG_DFL;
      ::sigaction(SIGPIPE, &dfl, nullptr);
      ::dup2(null_fd, 0);
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      ::execve(argv[0], argv.data(), envp.data());
      static const char kMsg[] = "etcdsafe: exec of the etcd binary failed\n";
      ssize_t ignored = ::write(2, kMsg, sizeof kMsg - 1);
      (void)ignored;
      ::_exit(127);
    }
    if (pid > 0) state_->pid = pid;
  }
  int fork_errno = errno;
  ::close(log_fd);
  ::close(null_fd);
  if (pid < 0) throw SystemError("fork", fork_errno);
}

void EtcdSandbox::StartEtcd(const EtcdStartOptions& options) {
  if (running()) throw Error(ErrorCode::kInternal, "etcd already runs in " + dir_);
  EtcdStartOptions o = options;
  stop_timeout_ = o.stop_timeout;
  const bool pick_ports = o.client_port == 0 || o.peer_port == 0;
  if (pick_ports) {
    std::vector<int> ports = FreeLoopbackPorts(2);
    if (o.client_port == 0) o.client_port = ports[0];
    if (o.peer_port == 0) o.peer_port = ports[1];
  }
  client_port_ = o.client_port;
  Spawn(o);
  const auto deadline = Clock::now() + o.start_timeout;
  int respawns = 0;
  std::string last = "not tried";
  for (;;) {
    bool exited;
    int status = 0;
    {
      std::lock_guard lock(state_->mu);
      exited = state_->ReapLocked(false);
      status = state_->exit_status;
    }
    if (exited) {
      if (pick_ports && respawns < 3 && ReadLog(log_path()).find("address already in use") != std::string::npos) {
        ++respawns;  // another process took a port between our check and etcd's bind
        std::vector<int> ports = FreeLoopbackPorts(2);
        o.client_port = client_port_ = ports[0];
        o.peer_port = ports[1];
        Spawn(o);
        continue;
      }
      const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      throw Error(ErrorCode::kUnavailable,
                  "etcd exited with status " + std::to_string(code) + " before becoming healthy: " + LogSummary());
    }
    try {
      client::ClientConfig c;
      c.endpoints = {client_url()};
      c.dial_timeout = std::chrono::milliseconds(500);
      c.command_timeout = std::chrono::milliseconds(2000);
      client::EtcdClient::Connect(c)->Health();
      return;
    } catch (const Error& e) {
      last = e.what();
    }
    if (Clock::now() > deadline) {
      StopEtcd();
      const int64_t ms = o.start_timeout.count();
      throw Error(ErrorCode::kUnavailable,
                  "etcd not healthy after " + (ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms") +
                      " (last check: " + OneLine(last) + "); " + LogSummary());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace etcdsafe::ops
