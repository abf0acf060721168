#include "controlplane/guarded_restore.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "base/bytes.h"
#include "base/error.h"
#include "base/file.h"
#include "bolt/reader.h"
#include "client/etcd_client.h"
#include "controlplane/static_pod.h"
#include "snapshot/restore.h"
#include "snapshot/save.h"
#include "snapshot/status_format.h"

namespace etcdsafe::controlplane {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::ordered_json;
constexpr uint64_t kDiskMargin = uint64_t{64} << 20;  // etcd's WAL segment

std::string Join(const std::string& root, const std::string& path) {
  std::string r = root;
  while (!r.empty() && r.back() == '/') r.pop_back();
  if (r.empty()) return path;
  return r + (path.empty() || path.front() != '/' ? "/" : "") + path;
}

std::string Base(const std::string& path) {
  auto p = path.find_last_of('/');
  return p == std::string::npos ? path : path.substr(p + 1);
}

std::string Stamp() {
  time_t now = time(nullptr);
  struct tm tm {};
  gmtime_r(&now, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

std::string Seconds(double s) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.1fs", s);
  return buf;
}

std::string Quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,@+%") ==
                        std::string::npos) {
    return s;
  }
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (!d) throw SystemError(dir, errno);
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

bool Exists(const std::string& p) {
  struct stat st {};
  return lstat(p.c_str(), &st) == 0;
}

// ---- cluster identity ------------------------------------------------------------------

struct Identity {
  std::string from;  // where it was read, for messages
  uint64_t cluster_id = 0;
  std::set<uint64_t> member_ids;
  std::set<std::string> name_urls;  // "name=url,url"
  bool known() const { return cluster_id != 0 || !member_ids.empty(); }
};

Identity IdentityFromDb(const std::string& db, const std::string& label) {
  Identity id;
  id.from = label;
  bolt::Reader r = bolt::Reader::Open(db);
  if (!r.HasBucket("members")) return id;
  r.ForEach("members", [&](Bytes k, Bytes v) {
    std::string key(reinterpret_cast<const char*>(k.data()), k.size());
    try {
      id.member_ids.insert(std::stoull(key, nullptr, 16));
      auto j = nlohmann::json::parse(std::string(reinterpret_cast<const char*>(v.data()), v.size()));
      std::vector<std::string> urls = j.value("peerURLs", std::vector<std::string>{});
      std::sort(urls.begin(), urls.end());
      if (j.contains("name") && !urls.empty()) id.name_urls.insert(j["name"].get<std::string>() + "=" + JoinComma(urls));
    } catch (const std::exception&) {
      throw Error(ErrorCode::kDataLoss, db + ": members bucket: unreadable member " + key);
    }
  });
  return id;
}

std::string Describe(const Identity& id) {
  std::string s = id.from + ": ";
  if (id.cluster_id) s += "cluster " + HexNoPad(id.cluster_id) + ", ";
  s += "members";
  for (uint64_t m : id.member_ids) s += " " + HexNoPad(m);
  return s;
}

bool SameCluster(const Identity& a, const Identity& b) {
  if (a.cluster_id && a.cluster_id == b.cluster_id) return true;
  for (uint64_t m : a.member_ids) {
    if (b.member_ids.count(m)) return true;
  }
  for (const auto& n : a.name_urls) {
    if (b.name_urls.count(n)) return true;
  }
  return false;
}

// ---- ports, locks, processes -------------------------------------------------------------

struct HostPort {
  std::string host;
  int port = 0;
};

HostPort ParseHostPort(const std::string& url) {
  std::string rest = url;
  if (auto p = rest.find("://"); p != std::string::npos) rest = rest.substr(p + 3);
  if (auto p = rest.find('/'); p != std::string::npos) rest = rest.substr(0, p);
  HostPort hp;
  auto colon = rest.rfind(':');
  if (colon == std::string::npos) throw Error(ErrorCode::kInvalidArgument, "URL " + url + " has no port");
  hp.host = rest.substr(0, colon);
  if (hp.host.size() > 2 && hp.host.front() == '[') hp.host = hp.host.substr(1, hp.host.size() - 2);
  hp.port = std::atoi(rest.substr(colon + 1).c_str());
  if (hp.port <= 0 || hp.port > 65535) throw Error(ErrorCode::kInvalidArgument, "URL " + url + ": bad port");
  return hp;
}

// True when something accepts TCP connections on host:port (within 1 s).
bool PortOpen(const HostPort& hp) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(hp.host.c_str(), std::to_string(hp.port).c_str(), &hints, &res) != 0) return false;
  bool open = false;
  for (addrinfo* a = res; a && !open; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int rc = connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc == 0) {
      open = true;
    } else if (errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, 1000) == 1) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        open = err == 0;
      }
    }
    close(fd);
  }
  freeaddrinfo(res);
  return open;
}

// True while another process holds the flock bbolt takes on the db.
bool DbLocked(const std::string& db) {
  int fd = open(db.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool locked = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  close(fd);
  return locked;
}

// Runs argv (PATH lookup), its output to our stderr; returns the exit status (128+sig).
int RunProgram(const std::vector<std::string>& argv) {
  pid_t pid = fork();
  if (pid < 0) throw SystemError("fork", errno);
  if (pid == 0) {
    dup2(2, 1);
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execvp(a[0], a.data());
    _exit(127);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// GET url (https) without verifying the server (the probe only asks "are you ready?"):
// an HTTP status, or -1 with *why when there is no answer. Connect, handshake, write and
// read are bounded by `timeout` each (a server that accepts and stays silent must not
// hang the restore).
int HttpsGetStatus(const std::string& url, std::chrono::milliseconds timeout, std::string* why) {
  HostPort hp = ParseHostPort(url);
  std::string path = "/readyz";
  if (auto p = url.find('/', url.find("://") + 3); p != std::string::npos) path = url.substr(p);
  const std::string target = hp.host + ":" + std::to_string(hp.port);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(hp.host.c_str(), std::to_string(hp.port).c_str(), &hints, &res) != 0) {
    *why = "cannot resolve " + hp.host;
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = res; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    bool ok = connect(fd, a->ai_addr, a->ai_addrlen) == 0;
    if (!ok && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof err;
      ok = poll(&p, 1, static_cast<int>(timeout.count())) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
           err == 0;
    }
    if (!ok) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) {
    *why = "cannot connect to " + target;
    return -1;
  }
  // Blocking from here on, each call bounded by the socket timeouts.
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int status = -1;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL* ssl = ctx ? SSL_new(ctx) : nullptr;
  if (!ssl) {
    *why = "TLS setup failed";
  } else {
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, hp.host.c_str());
    if (SSL_connect(ssl) != 1) {
      *why = "TLS handshake with " + target + " failed";
    } else {
      std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + target + "\r\nConnection: close\r\n\r\n";
      std::string head;
      char buf[256];
      if (SSL_write(ssl, req.data(), static_cast<int>(req.size())) == static_cast<int>(req.size())) {
        // The status line: "HTTP/1.x NNN ..." (may come in pieces).
        while (head.size() < 12) {
          int n = SSL_read(ssl, buf, sizeof buf);
          if (n <= 0) break;
          head.append(buf, static_cast<size_t>(n));
        }
      }
      if (head.size() >= 12 && head.compare(0, 5, "HTTP/") == 0 && head[8] == ' ') {
        status = std::atoi(head.c_str() + 9);
      } else {
        *why = "no HTTP answer from " + target;
      }
    }
  }
  if (ssl) SSL_free(ssl);
  if (ctx) SSL_CTX_free(ctx);
  ERR_clear_error();
  close(fd);
  return status;
}

// ---- the journal -----------------------------------------------------------------------

struct Move {
  std::string from, to;
};

// Everything a rerun needs, without the manifest (which may be moved away).
struct Plan {
  bool systemd = false;
  std::string unit;
  std::string data_dir, parent, aside, new_dir, failed, last_snapshot;
  bool mount_point = false, data_exists = true;
  uint32_t uid = 0, gid = 0, mode = 0700;
  std::vector<Move> moves;
  std::string client_url, cacert, cert, key, readyz;
  std::string name, peer_urls, initial_cluster, token;
  size_t members = 1;
  std::string source;  // for messages
  std::string journal, lock;
  std::map<std::string, std::string> steps;  // step -> running|done|skipped
  std::string db() const { return data_dir + "/member/snap/db"; }
};

json PlanToJson(const Plan& p) {
  json j;
  j["format"] = 1;
  j["mode"] = p.systemd ? "systemd" : "kubeadm";
  j["unit"] = p.unit;
  j["pid"] = getpid();
  j["source"] = p.source;
  j["data_dir"] = p.data_dir;
  j["parent"] = p.parent;
  j["aside_dir"] = p.aside;
  j["new_dir"] = p.new_dir;
  j["failed_dir"] = p.failed;
  j["last_snapshot"] = p.last_snapshot;
  j["mount_point"] = p.mount_point;
  j["data_existed"] = p.data_exists;
  j["owner"] = {{"uid", p.uid}, {"gid", p.gid}, {"mode", p.mode}};
  j["manifests"] = json::array();
  for (const auto& m : p.moves) j["manifests"].push_back({{"from", m.from}, {"to", m.to}});
  j["etcd"] = {{"client_url", p.client_url}, {"cacert", p.cacert}, {"cert", p.cert}, {"key", p.key},
               {"readyz", p.readyz}, {"name", p.name}, {"peer_urls", p.peer_urls},
               {"initial_cluster", p.initial_cluster}, {"token", p.token}, {"members", p.members}};
  j["steps"] = json::array();
  for (const char* s : kStepNames) {
    auto it = p.steps.find(s);
    if (it != p.steps.end()) j["steps"].push_back({{"step", s}, {"state", it->second}});
  }
  return j;
}

Plan PlanFromJson(const std::string& text, const std::string& path) {
  Plan p;
  try {
    json j = json::parse(text);
    if (j.at("format").get<int>() != 1) throw Error(ErrorCode::kUnsupported, path + ": unknown journal format");
    p.systemd = j.at("mode") == "systemd";
    p.unit = j.at("unit");
    p.source = j.at("source");
    p.data_dir = j.at("data_dir");
    p.parent = j.at("parent");
    p.aside = j.at("aside_dir");
    p.new_dir = j.at("new_dir");
    p.failed = j.at("failed_dir");
    p.last_snapshot = j.at("last_snapshot");
    p.mount_point = j.at("mount_point");
    p.data_exists = j.at("data_existed");
    p.uid = j.at("owner").at("uid");
    p.gid = j.at("owner").at("gid");
    p.mode = j.at("owner").at("mode");
    for (const auto& m : j.at("manifests")) p.moves.push_back({m.at("from"), m.at("to")});
    const auto& e = j.at("etcd");
    p.client_url = e.at("client_url");
    p.cacert = e.at("cacert");
    p.cert = e.at("cert");
    p.key = e.at("key");
    p.readyz = e.at("readyz");
    p.name = e.at("name");
    p.peer_urls = e.at("peer_urls");
    p.initial_cluster = e.at("initial_cluster");
    p.token = e.at("token");
    p.members = e.at("members");
    for (const auto& s : j.at("steps")) p.steps[s.at("step")] = s.at("state");
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kDataLoss, path + ": unreadable restore journal (" + e.what() +
                                          "); inspect it and the dirs it names, then remove it");
  }
  p.journal = path;
  return p;
}

void WriteJournal(const Plan& p) {
  std::string text = PlanToJson(p).dump(2) + "\n";
  std::string tmp = p.journal + ".tmp";
  {
    File f = File::Create(tmp, 0600, true);
    f.WriteAll(reinterpret_cast<const uint8_t*>(text.data()), text.size());
    f.Sync();
  }
  RenameDurable(tmp, p.journal);
}

std::string State(const Plan& p, const std::string& step) {
  auto it = p.steps.find(step);
  return it == p.steps.end() ? "" : it->second;
}

class Lock {
 public:
  explicit Lock(const std::string& path) {
    fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) throw SystemError(path, errno);
    if (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      close(fd_);
      throw Error(ErrorCode::kLocked, path + ": another etcdsafe restore runs on this node");
    }
  }
  ~Lock() { close(fd_); }

 private:
  int fd_ = -1;
};

// ---- the engine ------------------------------------------------------------------------

class Engine {
 public:
  Engine(const GuardedRestoreOptions& o, const LogFn& log, GuardedRestoreResult* result)
      : o_(o), log_(log), result_(result) {}

  void Log(const std::string& line) {
    if (log_) log_(line);
  }

  client::ClientConfig Client(const Plan& p, std::chrono::milliseconds cmd_timeout) const {
    client::ClientConfig c;
    c.endpoints = {p.client_url};
    c.cacert = p.cacert;
    c.cert = p.cert;
    c.key = p.key;
    c.dial_timeout = std::chrono::milliseconds(2000);
    c.command_timeout = cmd_timeout;
    return c;
  }

  // Starts (kubeadm: manifests back; systemd: systemctl start).
  void Start(const Plan& p) {
    if (p.systemd) {
      int rc = RunProgram({"systemctl", "start", p.unit});
      if (rc != 0) throw Error(ErrorCode::kUnavailable, "systemctl start " + p.unit + " exited with status " + std::to_string(rc));
      return;
    }
    for (auto it = p.moves.rbegin(); it != p.moves.rend(); ++it) {
      if (Exists(it->to) && !Exists(it->from)) RenameDurable(it->to, it->from);
    }
  }

  void Stop(const Plan& p) {
    if (p.systemd) {
      int rc = RunProgram({"systemctl", "stop", p.unit});
      if (rc != 0) throw Error(ErrorCode::kUnavailable, "systemctl stop " + p.unit + " exited with status " + std::to_string(rc));
    } else {
      if (!p.moves.empty()) MakeDirs(ParentDir(p.moves.front().to), 0700);
      for (const auto& m : p.moves) {
        if (Exists(m.from) && !Exists(m.to)) RenameDurable(m.from, m.to);
      }
    }
    WaitStopped(p);
  }

  void WaitStopped(const Plan& p) {
    HostPort hp = ParseHostPort(p.client_url);
    auto deadline = Clock::now() + o_.wait_timeout;
    for (;;) {
      bool open = PortOpen(hp);
      bool locked = DbLocked(p.db());
      if (!open && !locked) return;
      if (Clock::now() > deadline) {
        throw Error(ErrorCode::kUnavailable,
                    open ? "etcd still listening on " + hp.host + ":" + std::to_string(hp.port) + " after " +
                               std::to_string(o_.wait_timeout.count()) + "s"
                         : p.db() + " still locked by a process after " + std::to_string(o_.wait_timeout.count()) + "s");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  // Waits for etcd (and the API server when reachable); returns a detail line.
  std::string WaitHealthy(const Plan& p) {
    auto deadline = Clock::now() + o_.wait_timeout;
    std::string last = "no attempt";
    std::string detail;
    if (p.members > 1) {
      HostPort hp = ParseHostPort(p.client_url);
      while (!PortOpen(hp)) {
        if (Clock::now() > deadline) {
          throw Error(ErrorCode::kUnavailable, "etcd not listening on " + p.client_url + " after " +
                                                   std::to_string(o_.wait_timeout.count()) + "s");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
      }
      detail = "etcd listening on " + p.client_url + "; quorum needs the other " + std::to_string(p.members - 1) +
               " members restored";
    } else {
      for (;;) {
        try {
          auto c = client::EtcdClient::Connect(Client(p, std::chrono::milliseconds(3000)));
          c->Health();
          break;
        } catch (const Error& e) {
          last = e.what();
        }
        if (Clock::now() > deadline) {
          throw Error(ErrorCode::kUnavailable, "etcd not healthy after " + std::to_string(o_.wait_timeout.count()) +
                                                   "s: " + last);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
      }
      detail = "etcd healthy at " + p.client_url;
    }
    if (p.readyz.empty()) return detail;
    // The API server: etcd is restored and healthy by now, so an API server that does not
    // become ready is reported (a warning line and the step's detail), not rolled back:
    // putting the old data back would not make it ready either. It gets its own wait.
    HostPort api = ParseHostPort(p.readyz);
    if (!PortOpen(api)) return detail + "; API server " + p.readyz + " not reachable: /readyz skipped";
    auto api_deadline = Clock::now() + o_.wait_timeout;
    int tries = 0;
    for (;;) {
      std::string why;
      int status = HttpsGetStatus(p.readyz, std::chrono::milliseconds(5000), &why);
      tries++;
      if (status == 200) {
        return detail + "; API server ready (" + p.readyz + (tries > 1 ? ", after " + std::to_string(tries) + " tries" : "") + ")";
      }
      if (Clock::now() > api_deadline) {
        std::string answer = status > 0 ? "HTTP " + std::to_string(status) : why;
        std::string warning = "the API server is not ready after " + std::to_string(o_.wait_timeout.count()) + "s (" +
                              p.readyz + ": " + answer + "); etcd itself is restored and healthy: check kube-apiserver";
        Log("warning: " + warning);
        result_->warnings.push_back(warning);
        return detail + "; API server NOT ready after " + std::to_string(o_.wait_timeout.count()) + "s (" + answer + ")";
      }
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
  }

  void ApplyOwner(const Plan& p) {
    std::vector<std::string> todo{p.data_dir};
    while (!todo.empty()) {
      std::string path = todo.back();
      todo.pop_back();
      struct stat st {};
      if (lstat(path.c_str(), &st) != 0) throw SystemError(path, errno);
      if ((st.st_uid != p.uid || st.st_gid != p.gid) && lchown(path.c_str(), p.uid, p.gid) != 0) {
        throw SystemError("chown " + path, errno);
      }
      if (S_ISDIR(st.st_mode)) {
        for (const auto& n : ListDir(path)) {
          if (path == p.data_dir && n.rfind(".etcdsafe-", 0) == 0) continue;
          todo.push_back(path + "/" + n);
        }
      }
    }
    if (chmod(p.data_dir.c_str(), p.mode) != 0) throw SystemError("chmod " + p.data_dir, errno);
  }

  // Entries of a mount point that are its own data (not etcdsafe's dirs).
  static std::vector<std::string> DataEntries(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& n : ListDir(dir)) {
      if (n.rfind(".etcdsafe-", 0) != 0 && n != "lost+found") out.push_back(n);
    }
    return out;
  }

  static void MoveEntries(const std::string& from, const std::string& to, const std::vector<std::string>& names) {
    for (const auto& n : names) RenameDurable(from + "/" + n, to + "/" + n);
  }

  void MoveAside(const Plan& p) {
    if (!p.data_exists) return;
    if (!p.mount_point) {
      if (Exists(p.data_dir)) RenameDurable(p.data_dir, p.aside);
      return;
    }
    if (!Exists(p.aside)) MakeDirs(p.aside, 0700);
    MoveEntries(p.data_dir, p.aside, DataEntries(p.data_dir));
  }

  void Swap(const Plan& p) {
    if (!p.mount_point) {
      if (Exists(p.new_dir)) RenameDurable(p.new_dir, p.data_dir);
    } else {
      if (Exists(p.new_dir)) {
        MoveEntries(p.new_dir, p.data_dir, ListDir(p.new_dir));
        if (rmdir(p.new_dir.c_str()) != 0) throw SystemError(p.new_dir, errno);
      }
    }
    ApplyOwner(p);
  }

  bool Swapped(const Plan& p) const {
    std::string s = State(p, "swap");
    return s == "done" || (s == "running" && !Exists(p.new_dir));
  }

  void RemoveRestoreLeftovers(const Plan& p) {
    RemoveAll(p.new_dir);
    std::string dir = ParentDir(p.new_dir);
    std::string prefix = "." + Base(p.new_dir) + ".etcdsafe-restore-";
    if (!IsDirectory(dir)) return;
    for (const auto& n : ListDir(dir)) {
      if (n.rfind(prefix, 0) == 0) RemoveAll(dir + "/" + n);
    }
  }

  // Puts back the old data dir and the manifests, from whatever state `p` records. The
  // restored dir, if it was swapped in, is kept as p.failed.
  std::string Rollback(Plan& p) {
    std::vector<std::string> did;
    bool swap_started = !State(p, "swap").empty();
    if (swap_started) {
      Stop(p);
      if (!p.mount_point) {
        if (Exists(p.data_dir) && (Exists(p.aside) || !p.data_exists)) {
          RenameDurable(p.data_dir, p.failed);
          did.push_back("restored dir kept as " + p.failed);
        }
      } else {
        auto entries = DataEntries(p.data_dir);
        if (!entries.empty() && (Exists(p.aside) || !p.data_exists)) {
          MakeDirs(p.failed, 0700);
          MoveEntries(p.data_dir, p.failed, entries);
          did.push_back("restored data kept in " + p.failed);
        }
      }
    }
    if (Exists(p.aside)) {
      if (!p.mount_point) {
        if (Exists(p.data_dir)) {
          if (rmdir(p.data_dir.c_str()) != 0) throw SystemError(p.data_dir + " is in the way of the old data dir", errno);
        }
        RenameDurable(p.aside, p.data_dir);
      } else {
        MoveEntries(p.aside, p.data_dir, ListDir(p.aside));
        if (rmdir(p.aside.c_str()) != 0) throw SystemError(p.aside, errno);
      }
      did.push_back("old data dir back");
    }
    RemoveRestoreLeftovers(p);
    if (!State(p, "stop").empty()) {
      Start(p);
      did.push_back(p.systemd ? "unit started" : "manifests back");
      try {
        did.push_back(WaitHealthy(p));
      } catch (const Error& e) {
        did.push_back(std::string("old etcd: ") + e.what());
      }
    }
    RemoveAll(p.journal);
    std::string s;
    for (size_t i = 0; i < did.size(); i++) s += (i ? "; " : "") + did[i];
    return s.empty() ? "nothing had been moved" : s;
  }

  void CrashHook(const std::string& step) {
    const char* v = getenv(kCrashHookEnv);
    if (v && step == v) {
      Log("test hook: exiting after step " + step);
      _exit(137);
    }
  }

  void RunStep(Plan& p, int index, const std::string& step, const std::function<std::string()>& fn) {
    p.steps[step] = "running";
    WriteJournal(p);
    Log("step " + std::to_string(index) + "/8 " + step + " ...");
    auto t0 = Clock::now();
    std::string detail = fn();
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    p.steps[step] = "done";
    WriteJournal(p);
    Log("step " + std::to_string(index) + "/8 " + step + ": done in " + Seconds(secs) +
        (detail.empty() ? "" : " (" + detail + ")"));
    result_->steps.push_back({step, "done", secs, detail});
    CrashHook(step);
  }

  GuardedRestoreResult Run();

 private:
  Plan Prepare(const EtcdManifest* m, const std::string& journal_dir);
  void Preflight(Plan& p, std::vector<std::string>* lines);
  std::string Recover(Plan& p);
  snapshot::RestoreOptions RestoreOptionsFor(const Plan& p) const;
  std::string RestoreData(const Plan& p);
  std::string LastSnapshot(Plan& p);

  const GuardedRestoreOptions& o_;
  LogFn log_;
  GuardedRestoreResult* result_;
  uint64_t db_size_ = 0;
  Identity source_id_;
  std::string backup_id_;
};

Plan Engine::Prepare(const EtcdManifest* m, const std::string& journal_dir) {
  Plan p;
  p.systemd = o_.systemd;
  p.unit = o_.unit;
  if (m) {
    p.data_dir = Join(o_.root, m->data_dir_host);
    p.client_url = m->LocalClientUrl();
    if (m->client_tls()) {
      p.cacert = m->trusted_ca_file.empty() ? "" : Join(o_.root, m->Host(m->trusted_ca_file));
      p.cert = Join(o_.root, m->Host(m->cert_file));
      p.key = Join(o_.root, m->Host(m->key_file));
    }
    p.name = m->name;
    p.peer_urls = JoinComma(m->initial_advertise_peer_urls);
    p.token = !o_.initial_cluster_token.empty() ? o_.initial_cluster_token : m->initial_cluster_token;
    std::string manifests = Join(o_.root, o_.manifests_dir);
    std::string moved = ParentDir(manifests) + "/" + kMovedManifestsDir;
    for (const char* f : {"etcd.yaml", "kube-apiserver.yaml"}) {
      std::string from = manifests + "/" + f;
      if (Exists(from) || std::string(f) == "etcd.yaml") p.moves.push_back({from, moved + "/" + f});
    }
    std::string api = manifests + "/kube-apiserver.yaml";
    if (auto u = ApiServerReadyzUrl(api)) p.readyz = *u;
  } else {
    p.data_dir = Join(o_.root, o_.data_dir);
    p.client_url = o_.client_url;
    p.cacert = o_.cacert;
    p.cert = o_.cert;
    p.key = o_.key;
    p.name = o_.name;
    p.peer_urls = o_.peer_urls;
    p.token = o_.initial_cluster_token;
  }
  while (p.data_dir.size() > 1 && p.data_dir.back() == '/') p.data_dir.pop_back();
  if (p.token.empty()) p.token = "etcd-cluster";
  p.initial_cluster = o_.initial_cluster;
  if (p.initial_cluster.empty()) {
    for (const auto& u : SplitComma(p.peer_urls)) p.initial_cluster += (p.initial_cluster.empty() ? "" : ",") + p.name + "=" + u;
  }
  std::set<std::string> names;
  for (const auto& item : SplitComma(p.initial_cluster)) names.insert(item.substr(0, item.find('=')));
  p.members = names.size();
  p.parent = ParentDir(p.data_dir);
  p.journal = (journal_dir.empty() ? p.parent : Join(o_.root, journal_dir)) + "/" + kJournalName;
  p.lock = ParentDir(p.journal) + "/" + kLockName;
  // Names: unique per run (a second restore the same second gets a suffix).
  std::string stamp = Stamp();
  std::string base = Base(p.data_dir);
  for (int n = 1;; n++) {
    std::string s = stamp + (n > 1 ? "-" + std::to_string(n) : "");
    struct stat st {}, pst {};
    p.data_exists = stat(p.data_dir.c_str(), &st) == 0;
    p.mount_point = p.data_exists && stat(p.parent.c_str(), &pst) == 0 && st.st_dev != pst.st_dev;
    std::string in = p.mount_point ? p.data_dir + "/." : p.parent + "/" + base + ".";
    p.aside = in + "etcdsafe-old-" + s;
    p.new_dir = in + "etcdsafe-new-" + s;
    p.failed = in + "etcdsafe-failed-" + s;
    p.last_snapshot = in + "etcdsafe-last-" + s + ".db";
    if (!Exists(p.aside) && !Exists(p.new_dir) && !Exists(p.failed) && !Exists(p.last_snapshot)) break;
  }
  return p;
}

void Engine::Preflight(Plan& p, std::vector<std::string>* lines) {
  // The data dir.
  if (p.data_exists) {
    struct stat st {};
    if (stat(p.data_dir.c_str(), &st) != 0) throw SystemError(p.data_dir, errno);
    if (!S_ISDIR(st.st_mode)) throw Error(ErrorCode::kInvalidArgument, p.data_dir + ": the data dir is not a directory");
    p.uid = st.st_uid;
    p.gid = st.st_gid;
    p.mode = st.st_mode & 07777;
  } else if (!IsDirectory(p.parent)) {
    throw Error(ErrorCode::kNotFound, p.parent + ": the data dir's parent does not exist");
  }
  for (const auto& mv : p.moves) {
    if (Exists(mv.to)) {
      throw Error(ErrorCode::kAlreadyExists, mv.to + " exists (left by an earlier restore?): put it back or remove it first");
    }
  }
  if (!p.systemd && !Exists(p.moves.front().from)) {
    throw Error(ErrorCode::kNotFound, p.moves.front().from + ": no such file");
  }
  // The source.
  if (!o_.snapshot_path.empty()) {
    struct stat st {};
    if (stat(o_.snapshot_path.c_str(), &st) != 0) throw SystemError(o_.snapshot_path, errno);
    if (!S_ISREG(st.st_mode)) throw Error(ErrorCode::kInvalidArgument, o_.snapshot_path + ": not a regular file");
    db_size_ = static_cast<uint64_t>(st.st_size);
    source_id_ = IdentityFromDb(o_.snapshot_path, "snapshot " + o_.snapshot_path);
    p.source = o_.snapshot_path;
  } else if (o_.repo) {
    backup::Manifest bm = o_.repo->Find(o_.backup_id);
    if (!bm.kind.empty() && bm.kind != "snapshot") {
      throw Error(ErrorCode::kInvalidArgument, "backup " + bm.id + " is a " + bm.kind + " backup, not an etcd snapshot");
    }
    backup_id_ = bm.id;
    db_size_ = bm.db_size;
    source_id_.from = "backup " + bm.id;
    try {
      if (!bm.cluster_id.empty()) source_id_.cluster_id = std::stoull(bm.cluster_id, nullptr, 16);
      if (!bm.member_id.empty()) source_id_.member_ids.insert(std::stoull(bm.member_id, nullptr, 16));
    } catch (const std::exception&) {
      throw Error(ErrorCode::kDataLoss, "backup " + bm.id + ": manifest cluster/member id is not hex");
    }
    p.source = o_.repo->Describe() + " backup " + bm.id;
  } else {
    throw Error(ErrorCode::kInvalidArgument, "a source is required: --snapshot FILE or --repo R --backup ID");
  }
  // Same cluster?
  Identity current;
  bool live = false;
  try {
    auto c = client::EtcdClient::Connect(Client(p, std::chrono::milliseconds(5000)));
    auto st = c->EndpointStatus();
    current.from = "the running etcd at " + p.client_url;
    current.cluster_id = st.header.cluster_id;
    for (const auto& mi : c->MemberList()) {
      current.member_ids.insert(mi.id);
      std::vector<std::string> urls = mi.peer_urls;
      std::sort(urls.begin(), urls.end());
      if (!mi.name.empty()) current.name_urls.insert(mi.name + "=" + JoinComma(urls));
    }
    live = true;
  } catch (const Error&) {
    if (p.data_exists && Exists(p.db())) current = IdentityFromDb(p.db(), "data dir " + p.data_dir);
  }
  std::string cluster_line;
  if (!current.known() || !source_id_.known()) {
    cluster_line = "cluster check: nothing to compare (" +
                   std::string(!current.known() ? "no running etcd and no data dir" : "source names no members") + ")";
  } else if (SameCluster(source_id_, current)) {
    cluster_line = "cluster check: same cluster as " + current.from;
  } else if (o_.allow_other_cluster) {
    cluster_line = "cluster check: ANOTHER cluster (" + Describe(source_id_) + " vs " + Describe(current) +
                   "), allowed by --allow-other-cluster";
  } else {
    throw Error(ErrorCode::kInvalidArgument, "the " + source_id_.from + " is from another cluster than " + current.from +
                                                 " (" + Describe(source_id_) + "; " + Describe(current) +
                                                 "): --allow-other-cluster to restore it anyway");
  }
  // Disk: the restored dir and the last snapshot live beside the old dir.
  uint64_t last_estimate = 0;
  if (live && Exists(p.db())) {
    struct stat st {};
    if (stat(p.db().c_str(), &st) == 0) last_estimate = static_cast<uint64_t>(st.st_size);
  }
  std::string fs = p.mount_point ? p.data_dir : p.parent;
  uint64_t need = db_size_ + last_estimate + kDiskMargin;
  uint64_t have = FreeSpace(fs);
  if (have < need) {
    throw Error(ErrorCode::kIo, "not enough free space on " + fs + " for the restore: need " +
                                    snapshot::HumanizeBytes(need) + " (db " + snapshot::HumanizeBytes(db_size_) +
                                    ", last snapshot " + snapshot::HumanizeBytes(last_estimate) + ", WAL " +
                                    snapshot::HumanizeBytes(kDiskMargin) + "), have " + snapshot::HumanizeBytes(have));
  }
  // Validate the restore flags now (what the restore would refuse, it refuses here).
  snapshot::RestoreOptions ro = RestoreOptionsFor(p);
  snapshot::ValidateRestore(ro);

  std::string ts = p.cacert.empty() && p.cert.empty() ? "" : " (TLS: --cacert " + p.cacert + " --cert " + p.cert + " --key " + p.key + ")";
  lines->push_back("1 preflight: member " + p.name + ", data dir " + p.data_dir +
                   (p.data_exists ? (p.mount_point ? " (a mount point: its entries move, it stays)" : "") : " (missing: nothing to move aside)") +
                   ", source " + p.source + " (db " + snapshot::HumanizeBytes(db_size_) + "), " + cluster_line +
                   ", free space on " + fs + " " + snapshot::HumanizeBytes(have) + " >= " + snapshot::HumanizeBytes(need) +
                   ", lock " + p.lock + ", journal " + p.journal);
  lines->push_back("2 last-snapshot: " + std::string(live ? "snapshot of the running etcd at " + p.client_url + ts + " into " + p.last_snapshot
                                                           : "etcd does not answer at " + p.client_url + ": skipped"));
  std::string stop;
  if (p.systemd) {
    stop = "systemctl stop " + p.unit;
  } else {
    for (const auto& mv : p.moves) stop += (stop.empty() ? "" : ", ") + std::string("mv ") + mv.from + " " + mv.to;
  }
  lines->push_back("3 stop: " + stop + "; wait until " + p.client_url + " is closed and " + p.db() +
                   " is unlocked (timeout " + std::to_string(o_.wait_timeout.count()) + "s)");
  if (!p.data_exists) {
    lines->push_back("4 move-aside: nothing to move (no data dir)");
  } else if (p.mount_point) {
    lines->push_back("4 move-aside: move the entries of mount point " + p.data_dir + " into " + p.aside);
  } else {
    lines->push_back("4 move-aside: mv " + p.data_dir + " " + p.aside);
  }
  std::string src = !o_.snapshot_path.empty() ? "snapshot restore " + Quote(o_.snapshot_path)
                                              : "restore --repo " + Quote(o_.repo->Describe()) + " --backup " + backup_id_;
  lines->push_back("5 restore: etcdsafe " + src + " --data-dir " + p.new_dir + " --name " + Quote(p.name) +
                   " --initial-cluster " + Quote(p.initial_cluster) + " --initial-cluster-token " + Quote(p.token) +
                   " --initial-advertise-peer-urls " + Quote(p.peer_urls) +
                   (o_.bump_revision ? " --bump-revision " + std::to_string(o_.bump_revision) : "") +
                   (o_.mark_compacted ? " --mark-compacted" : "") + (o_.compact ? " --compact" : "") +
                   (o_.skip_hash_check ? " --skip-hash-check" : ""));
  char owner[64];
  snprintf(owner, sizeof owner, "chown -R %u:%u, chmod %04o", p.uid, p.gid, p.mode);
  lines->push_back("6 swap: " + (p.mount_point ? "move the entries of " + p.new_dir + " into " + p.data_dir
                                                 : "mv " + p.new_dir + " " + p.data_dir) +
                   "; " + owner + " " + p.data_dir);
  std::string start;
  if (p.systemd) {
    start = "systemctl start " + p.unit;
  } else {
    for (auto it = p.moves.rbegin(); it != p.moves.rend(); ++it) start += (start.empty() ? "" : ", ") + std::string("mv ") + it->to + " " + it->from;
  }
  lines->push_back("7 start: " + start);
  lines->push_back("8 health: " + std::string(p.members > 1 ? "etcd listening at " : "etcd healthy at ") + p.client_url + ts +
                   (p.readyz.empty() ? "" : ", then GET " + p.readyz + " if reachable") + " (timeout " +
                   std::to_string(o_.wait_timeout.count()) + "s)");
}

std::string Engine::LastSnapshot(Plan& p) {
  std::unique_ptr<client::EtcdClient> c;
  try {
    c = client::EtcdClient::Connect(Client(p, std::chrono::milliseconds(0)));
    c->EndpointStatus();
  } catch (const Error& e) {
    p.last_snapshot.clear();
    return std::string("skipped: etcd does not answer: ") + e.what();
  }
  try {
    auto r = snapshot::SaveSnapshot([&](const snapshot::BlobSink& sink) { c->Snapshot(sink); }, p.last_snapshot);
    result_->last_snapshot = p.last_snapshot;
    return p.last_snapshot + ", " + snapshot::HumanizeBytes(r.db_size);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kUnavailable) throw;
    p.last_snapshot.clear();
    return std::string("skipped: ") + e.what();
  }
}

// The restore flags for this node: validated in the preflight, used by the restore step.
snapshot::RestoreOptions Engine::RestoreOptionsFor(const Plan& p) const {
  snapshot::RestoreOptions ro;
  ro.snapshot_path = o_.snapshot_path;
  ro.data_dir = p.new_dir;
  ro.name = p.name;
  ro.initial_cluster = p.initial_cluster;
  ro.initial_cluster_token = p.token;
  ro.initial_advertise_peer_urls = p.peer_urls;
  ro.bump_revision = o_.bump_revision;
  ro.mark_compacted = o_.mark_compacted;
  ro.skip_hash_check = o_.skip_hash_check;
  ro.compact = o_.compact;
  return ro;
}

std::string Engine::RestoreData(const Plan& p) {
  snapshot::RestoreOptions ro = RestoreOptionsFor(p);
  ro.note = [this](const std::string& n) { Log("note: " + n); };
  snapshot::RestoreResult r;
  if (!o_.snapshot_path.empty()) {
    r = snapshot::Restore(ro);
  } else {
    std::vector<std::string> notes;
    r = backup::RestoreFromRepository(*o_.repo, backup_id_, ro, o_.repo_key, {}, o_.read, &notes);
    for (const auto& n : notes) Log("note: " + n);
  }
  std::string detail = "member " + HexNoPad(r.member_id) + ", cluster " + HexNoPad(r.cluster_id) + ", revision " +
                       std::to_string(r.restored.revision) + ", " + std::to_string(r.restored.total_key) + " keys";
  if (r.compact_revision > 0) {
    detail += "; compacted at revision " + std::to_string(r.compact_revision) + ": kept " + std::to_string(r.compact_kept) +
              " revisions, dropped " + std::to_string(r.compact_dropped);
  }
  return detail;
}

std::string Engine::Recover(Plan& p) {
  std::string where;
  for (const char* s : kStepNames) {
    if (State(p, s) == "running") where = s;
  }
  if (where.empty()) {
    for (const char* s : kStepNames) {
      if (State(p, s) == "done") where = std::string("after ") + s;
    }
  }
  result_->interrupted_step = where;
  Log("found the journal of an interrupted restore (" + p.journal + ", " + where + ", source " + p.source + ")");
  if (Swapped(p)) {
    try {
      if (State(p, "swap") != "done") {
        ApplyOwner(p);
        p.steps["swap"] = "done";
        WriteJournal(p);
      }
      RunStep(p, 7, "start", [&] {
        Start(p);
        return std::string(p.systemd ? "systemctl start " + p.unit : "manifests back");
      });
      RunStep(p, 8, "health", [&] { return WaitHealthy(p); });
      RemoveAll(p.journal);
      result_->outcome = GuardedRestoreResult::Outcome::kFinished;
      return "finished: the restored data dir is in place and etcd runs";
    } catch (const Error& e) {
      Log(std::string("finishing failed: ") + e.what() + "; rolling back");
    }
  }
  std::string what = Rollback(p);
  result_->outcome = GuardedRestoreResult::Outcome::kRolledBack;
  return "rolled back: " + what;
}

GuardedRestoreResult Engine::Run() {
  std::optional<EtcdManifest> m;
  if (!o_.systemd) {
    std::string manifests = Join(o_.root, o_.manifests_dir);
    std::string file = manifests + "/etcd.yaml";
    std::string moved = ParentDir(manifests) + "/" + kMovedManifestsDir + "/etcd.yaml";
    if (!Exists(file) && Exists(moved)) {
      m = ParseEtcdManifest(moved);  // an interrupted restore moved it: the journal says more
      if (!Exists(ParentDir(Join(o_.root, m->data_dir_host)) + "/" + kJournalName) && o_.journal_dir.empty()) {
        throw Error(ErrorCode::kNotFound, file + ": no such file (but " + moved +
                                              " exists without a restore journal: put it back first)");
      }
    } else {
      m = ParseEtcdManifest(file);
    }
    if (m->container.Flag("--wal-dir")) {
      throw Error(ErrorCode::kUnsupported, file + ": --wal-dir in the etcd manifest is not supported by restore --kubeadm");
    }
    if (!o_.expect_name.empty() && o_.expect_name != m->name) {
      throw Error(ErrorCode::kInvalidArgument, "--name " + o_.expect_name + " but " + file + " is member " + m->name +
                                                   ": run this node's command from the plan");
    }
    if (!o_.expect_peer_urls.empty() && o_.expect_peer_urls != JoinComma(m->initial_advertise_peer_urls)) {
      throw Error(ErrorCode::kInvalidArgument, "--initial-advertise-peer-urls " + o_.expect_peer_urls + " but " + file +
                                                   " says " + JoinComma(m->initial_advertise_peer_urls));
    }
  } else {
    if (o_.unit.empty() || o_.data_dir.empty()) throw Error(ErrorCode::kInvalidArgument, "--systemd-unit needs --data-dir");
    if (o_.client_url.empty()) throw Error(ErrorCode::kInvalidArgument, "--systemd-unit needs --endpoints (etcd's client URL)");
    if (o_.name.empty() || o_.peer_urls.empty()) {
      throw Error(ErrorCode::kInvalidArgument, "--systemd-unit needs --name and --initial-advertise-peer-urls");
    }
  }
  Plan p = Prepare(m ? &*m : nullptr, o_.journal_dir);
  result_->data_dir = p.data_dir;
  // An interrupted restore first.
  if (Exists(p.journal)) {
    if (o_.dry_run) {
      throw Error(ErrorCode::kAlreadyExists, p.journal + ": an interrupted restore left its journal; rerun without --dry-run to finish or roll it back");
    }
    Lock lock(p.lock);
    Plan old = PlanFromJson(ReadSmallFile(p.journal), p.journal);
    std::string said = Recover(old);
    Log(said);
    result_->aside_dir = old.aside;
    result_->plan.push_back(said);
    return *result_;
  }
  std::vector<std::string> lines;
  if (o_.dry_run) {
    Preflight(p, &lines);
    result_->outcome = GuardedRestoreResult::Outcome::kDryRun;
    result_->plan = lines;
    return *result_;
  }
  // Preflight only reads, so a refusal creates nothing (not even the lock file); the lock
  // is taken after it, and a journal that appeared meanwhile is another run's.
  auto t0 = Clock::now();
  Preflight(p, &lines);
  Lock lock(p.lock);
  if (Exists(p.journal)) throw Error(ErrorCode::kLocked, p.journal + ": another etcdsafe restore started on this node");
  for (const auto& l : lines) Log("plan: " + l);
  p.steps["preflight"] = "done";
  WriteJournal(p);
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  result_->steps.push_back({"preflight", "done", secs, ""});
  Log("step 1/8 preflight: done in " + Seconds(secs));
  CrashHook("preflight");
  std::string current = "last-snapshot";
  try {
    RunStep(p, 2, "last-snapshot", [&] { return LastSnapshot(p); });
    current = "stop";
    RunStep(p, 3, "stop", [&] {
      Stop(p);
      return std::string(p.systemd ? "unit stopped" : "manifests moved aside") + ", etcd down";
    });
    current = "move-aside";
    RunStep(p, 4, "move-aside", [&] {
      MoveAside(p);
      return p.data_exists ? "old data in " + p.aside : std::string("no old data dir");
    });
    result_->aside_dir = p.data_exists ? p.aside : "";
    current = "restore";
    RunStep(p, 5, "restore", [&] { return RestoreData(p); });
    current = "swap";
    RunStep(p, 6, "swap", [&] {
      Swap(p);
      return std::string("restored dir in place");
    });
    current = "start";
    RunStep(p, 7, "start", [&] {
      Start(p);
      return std::string(p.systemd ? "unit started" : "manifests back");
    });
    current = "health";
    RunStep(p, 8, "health", [&] { return WaitHealthy(p); });
  } catch (const Error& e) {
    p.steps[current] = "failed";
    Log("step " + current + " failed: " + e.what() + "; rolling back");
    std::string undone;
    try {
      p.steps[current] = "running";
      undone = Rollback(p);
    } catch (const Error& re) {
      throw Error(e.code(), "step " + current + " failed: " + e.what() + "; rollback failed too: " + re.what() +
                                "; the journal " + p.journal + " is kept: run the command again to retry");
    }
    throw Error(e.code(), "step " + current + " failed: " + e.what() + "; rolled back (" + undone + ")");
  }
  RemoveAll(p.journal);
  result_->outcome = GuardedRestoreResult::Outcome::kRestored;
  return *result_;
}

}  // namespace

GuardedRestoreResult RunGuardedRestore(const GuardedRestoreOptions& opts, const LogFn& log) {
  GuardedRestoreResult result;
  Engine e(opts, log, &result);
  return e.Run();
}

std::string FormatRestorePlan(const GuardedRestoreOptions& opts, const std::vector<std::string>& source_args,
                              const std::vector<std::string>& extra_args) {
  std::string file = Join(opts.root, opts.manifests_dir) + "/etcd.yaml";
  EtcdManifest m = ParseEtcdManifest(file);
  if (opts.initial_cluster.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "--plan needs --initial-cluster with every control-plane member");
  }
  std::vector<std::pair<std::string, std::vector<std::string>>> members;  // name -> urls, in order
  for (const auto& item : SplitComma(opts.initial_cluster)) {
    auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw Error(ErrorCode::kInvalidArgument, "--initial-cluster: \"" + item + "\" is not name=peer-url");
    }
    std::string name = item.substr(0, eq);
    auto it = std::find_if(members.begin(), members.end(), [&](const auto& x) { return x.first == name; });
    if (it == members.end()) {
      members.push_back({name, {item.substr(eq + 1)}});
    } else {
      it->second.push_back(item.substr(eq + 1));
    }
  }
  bool self = false;
  for (const auto& [name, urls] : members) {
    if (name == m.name) {
      self = true;
      if (JoinComma(urls) != JoinComma(m.initial_advertise_peer_urls)) {
        throw Error(ErrorCode::kInvalidArgument, "--initial-cluster gives " + name + " the peer URLs " + JoinComma(urls) +
                                                     " but " + file + " says " + JoinComma(m.initial_advertise_peer_urls));
      }
    }
  }
  if (!self) {
    throw Error(ErrorCode::kInvalidArgument, file + ": member " + m.name + " is not in --initial-cluster " + opts.initial_cluster);
  }
  // A fresh token by default: the restored members get new IDs and a new cluster ID, so a
  // member still running the old data (not restored yet) cannot talk raft with them.
  std::string token = !opts.initial_cluster_token.empty() ? opts.initial_cluster_token : "etcdsafe-restore-" + Stamp();
  std::ostringstream out;
  out << "# Restore plan: " << members.size() << " control-plane members, cluster token " << token << ".\n"
      << "# Run each command on its node (any order; the source must be readable there at the same path).\n"
      << "# The cluster forms when every member is restored.\n";
  for (const auto& [name, urls] : members) {
    out << "# node " << name << " (peer " << JoinComma(urls) << ")\n";
    std::string cmd = "etcdsafe restore --kubeadm";
    for (const auto& a : source_args) cmd += " " + Quote(a);
    cmd += " --initial-cluster " + Quote(opts.initial_cluster) + " --initial-cluster-token " + Quote(token) +
           " --name " + Quote(name) + " --initial-advertise-peer-urls " + Quote(JoinComma(urls));
    for (const auto& a : extra_args) cmd += " " + Quote(a);
    out << cmd << "\n";
  }
  return out.str();
}

}  // namespace etcdsafe::controlplane
