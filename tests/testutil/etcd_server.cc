#include "testutil/etcd_server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "base/error.h"
#include "testutil/process.h"

extern char** environ;

namespace etcdsafe::testutil {
namespace {

constexpr char kEtcd[] = "/usr/bin/etcd";
constexpr char kEtcdctl[] = "/usr/bin/etcdctl";
using Clock = std::chrono::steady_clock;

// The kernel's range for ephemeral (outgoing and port-0) ports.
std::pair<int, int> EphemeralRange() {
  int lo = 32768, hi = 60999;
  std::ifstream f("/proc/sys/net/ipv4/ip_local_port_range");
  f >> lo >> hi;
  return {lo, hi};
}

// n distinct free loopback ports, picked at random *below* the ephemeral range: a port
// from the ephemeral range can be taken, between our check and etcd's bind, as the
// source port of any outgoing connection (parallel tests' clients and etcd peers make
// many), which made cluster tests fail now and then with "address already in use". Each
// candidate is checked by binding it; all are held until all are found.
std::vector<int> FreePorts(int n) {
  auto [eph_lo, eph_hi] = EphemeralRange();
  int lo = 10000, hi = eph_lo - 1;
  if (hi - lo < 1000) {  // unusual range: use the ports above it instead
    lo = eph_hi + 1;
    hi = 65535;
  }
  static std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> pick(lo, hi);
  std::vector<int> fds, ports;
  for (int tries = 0; static_cast<int>(ports.size()) < n; ++tries) {
    if (tries > 10000) throw std::runtime_error("no free loopback ports in " + std::to_string(lo) + "-" + std::to_string(hi));
    int port = pick(rng);
    if (port == 2379 || port == 2380) continue;  // never etcd's well-known ports
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      continue;  // in use (or the same port twice): try another
    }
    fds.push_back(fd);
    ports.push_back(port);
  }
  for (int fd : fds) ::close(fd);
  return ports;
}

std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string ReadAll(const std::string& path) {
  try {
    return ReadFile(path);
  } catch (const std::exception&) {
    return "";
  }
}

std::string RandomToken() {
  std::random_device rd;
  return "etcdsafe-test-" + std::to_string(rd()) + std::to_string(rd());
}

}  // namespace

int FreePort() { return FreePorts(1)[0]; }

EtcdctlResult RunEtcdctl(const client::ClientConfig& config,
                         const std::vector<std::string>& args) {
  if (::access(kEtcdctl, X_OK) != 0) {
    throw std::runtime_error(std::string(kEtcdctl) + " not found: install etcd-client");
  }
  std::string cmd =
      "env -u ETCDCTL_ENDPOINTS -u ETCDCTL_CACERT -u ETCDCTL_CERT -u ETCDCTL_KEY"
      " -u ETCDCTL_USER -u ETCDCTL_PASSWORD -u ETCDCTL_INSECURE_SKIP_TLS_VERIFY"
      " -u ETCDCTL_DIAL_TIMEOUT -u ETCDCTL_COMMAND_TIMEOUT ETCDCTL_API=3 ";
  cmd += kEtcdctl;
  std::string eps;
  for (const auto& e : config.endpoints) eps += (eps.empty() ? "" : ",") + e;
  if (!eps.empty()) cmd += " --endpoints=" + Quote(eps);
  if (!config.cacert.empty()) cmd += " --cacert=" + Quote(config.cacert);
  if (!config.cert.empty()) cmd += " --cert=" + Quote(config.cert);
  if (!config.key.empty()) cmd += " --key=" + Quote(config.key);
  if (config.insecure_skip_tls_verify) cmd += " --insecure-skip-tls-verify";
  if (!config.user.empty()) {
    cmd += " --user=" + Quote(config.password.empty() ? config.user
                                                      : config.user + ":" + config.password);
  }
  for (const auto& a : args) cmd += " " + Quote(a);
  char err_path[] = "/tmp/etcdsafe-etcdctl-err-XXXXXX";
  int efd = ::mkstemp(err_path);
  if (efd < 0) throw std::runtime_error("mkstemp failed");
  ::close(efd);
  cmd += " 2>" + Quote(err_path);
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) throw std::runtime_error("popen failed: " + cmd);
  EtcdctlResult r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = ::pclose(p);
  r.err = ReadAll(err_path);
  ::unlink(err_path);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

EtcdServer::EtcdServer(EtcdServerOptions options)
    : options_(std::move(options)), temp_(std::make_unique<TempDir>()) {
  if (::access(kEtcd, X_OK) != 0) {
    throw std::runtime_error(std::string(kEtcd) + " not found: install etcd-server");
  }
  log_path_ = temp_->Sub("etcd.log");
  if (options_.data_dir.empty()) options_.data_dir = temp_->Sub(options_.name + ".etcd");
  if (options_.tls && !options_.certs) options_.certs = MakeTestCerts(temp_->Sub("certs"));
  auto_ports_ = options_.client_port == 0 && options_.peer_port == 0 &&
                options_.initial_cluster.empty();
  if (options_.client_port == 0 || options_.peer_port == 0) {
    auto ports = FreePorts(2);
    if (options_.client_port == 0) options_.client_port = ports[0];
    if (options_.peer_port == 0) options_.peer_port = ports[1];
  }
  Spawn();
  if (options_.wait_healthy) WaitHealthy();
}

EtcdServer::~EtcdServer() {
  try {
    Stop();
  } catch (...) {
  }
}

std::string EtcdServer::client_url() const {
  return std::string(options_.tls ? "https" : "http") + "://127.0.0.1:" +
         std::to_string(options_.client_port);
}

std::string EtcdServer::peer_url() const {
  return "http://127.0.0.1:" + std::to_string(options_.peer_port);
}

client::ClientConfig EtcdServer::client_config() const {
  client::ClientConfig c;
  c.endpoints = {client_url()};
  if (options_.tls) {
    c.cacert = options_.certs->ca;
    c.cert = options_.certs->client_cert;
    c.key = options_.certs->client_key;
  }
  return c;
}

EtcdctlResult EtcdServer::etcdctl(const std::vector<std::string>& args) const {
  return RunEtcdctl(client_config(), args);
}

void EtcdServer::Spawn() {
  const auto& o = options_;
  std::vector<std::string> args = {
      kEtcd,
      "--name=" + o.name,
      "--data-dir=" + o.data_dir,
      "--listen-client-urls=" + client_url(),
      "--advertise-client-urls=" + client_url(),
      "--listen-peer-urls=" + peer_url(),
      "--initial-advertise-peer-urls=" + peer_url(),
      "--initial-cluster=" + (o.initial_cluster.empty() ? o.name + "=" + peer_url()
                                                        : o.initial_cluster),
      "--initial-cluster-state=" + o.initial_cluster_state,
      "--logger=zap",
      "--log-outputs=stderr",
  };
  if (!o.initial_cluster_token.empty()) {
    args.push_back("--initial-cluster-token=" + o.initial_cluster_token);
  }
  if (o.tls) {
    args.push_back("--cert-file=" + o.certs->server_cert);
    args.push_back("--key-file=" + o.certs->server_key);
    args.push_back("--trusted-ca-file=" + o.certs->ca);
    args.push_back("--client-cert-auth");
  }
  for (const auto& f : o.extra_flags) args.push_back(f);

  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view v(*e);
    if (v.starts_with("ETCD_") || v.starts_with("ETCDCTL_")) continue;  // no stray config
    env.emplace_back(v);
  }
  {
    std::ofstream log(log_path_, std::ios::app);
    log << "=== etcdsafe test harness starts:";
    for (auto& a : args) log << " " << a;
    log << "\n";
  }
  pid_ = SpawnLogged(args, env, log_path_);
}

bool EtcdServer::Reap(bool block) {
  if (pid_ <= 0) return true;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  if (r == pid_ || (r < 0 && errno == ECHILD)) {
    pid_ = -1;
    exit_status_ = status;
    return true;
  }
  return false;
}

std::string EtcdServer::LogTail(int lines) const {
  std::string log = ReadAll(log_path_);
  size_t pos = log.size();
  for (int i = 0; i <= lines && pos > 0; ++i) {
    pos = log.rfind('\n', pos - 1);
    if (pos == std::string::npos) {
      pos = 0;
      break;
    }
  }
  return log.substr(pos);
}

void EtcdServer::Fail(const std::string& why) {
  Kill();
  throw std::runtime_error("etcd " + options_.name + " (" + client_url() + "): " + why +
                           "\n--- log tail (" + log_path_ + ") ---\n" + LogTail());
}

void EtcdServer::WaitHealthy() {
  const auto deadline = Clock::now() + options_.start_timeout;
  std::string last = "not tried";
  int respawns = 0;
  for (;;) {
    if (Reap(false)) {
      // Another process may have taken a port we picked; retry with new ones.
      if (auto_ports_ && respawns < 3 &&
          ReadAll(log_path_).find("address already in use") != std::string::npos) {
        ++respawns;
        auto ports = FreePorts(2);
        options_.client_port = ports[0];
        options_.peer_port = ports[1];
        Spawn();
        continue;
      }
      Fail("exited with status " + std::to_string(WIFEXITED(exit_status_)
                                                      ? WEXITSTATUS(exit_status_)
                                                      : 128 + WTERMSIG(exit_status_)) +
           " before becoming healthy");
    }
    try {
      client::ClientConfig c = client_config();
      c.dial_timeout = std::chrono::milliseconds(500);
      c.command_timeout = std::chrono::milliseconds(2000);
      client::EtcdClient::Connect(c)->Health();
      return;
    } catch (const Error& e) {
      last = e.what();
    }
    if (Clock::now() > deadline) {
      Fail("not healthy after " + std::to_string(options_.start_timeout.count()) +
           " s; last check: " + last);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

void EtcdServer::Stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!Reap(false)) {
    if (Clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      Reap(true);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void EtcdServer::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  Reap(true);
}

std::vector<std::unique_ptr<EtcdServer>> EtcdServer::StartCluster(
    std::vector<EtcdServerOptions> members) {
  std::vector<std::unique_ptr<EtcdServer>> out;
  for (auto& o : members) {
    o.wait_healthy = false;
    // One PKI for the whole cluster so one client config works for every member.
    if (o.tls && !o.certs && !out.empty() && out[0]->tls()) o.certs = out[0]->certs();
    out.push_back(std::make_unique<EtcdServer>(std::move(o)));
  }
  for (auto& m : out) m->WaitHealthy();
  return out;
}

std::vector<std::unique_ptr<EtcdServer>> EtcdServer::StartNewCluster(int n, bool tls) {
  auto ports = FreePorts(2 * n);
  std::vector<EtcdServerOptions> members(static_cast<size_t>(n));
  std::string initial;
  for (int i = 0; i < n; ++i) {
    auto& o = members[static_cast<size_t>(i)];
    o.name = "m" + std::to_string(i);
    o.tls = tls;
    o.client_port = ports[static_cast<size_t>(2 * i)];
    o.peer_port = ports[static_cast<size_t>(2 * i + 1)];
    initial += (i ? "," : "") + o.name + "=http://127.0.0.1:" + std::to_string(o.peer_port);
  }
  const std::string token = RandomToken();
  for (auto& o : members) {
    o.initial_cluster = initial;
    o.initial_cluster_token = token;
  }
  return StartCluster(std::move(members));
}

}  // namespace etcdsafe::testutil
