#include "backup/lock.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "base/error.h"

namespace etcdsafe::backup {
namespace {

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string FormatUtc(int64_t unix_seconds) {
  time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm {};
  char buf[64];
  if (::gmtime_r(&t, &tm) == nullptr || std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
    return std::to_string(unix_seconds);
  }
  return buf;
}

// "45 s", "12 min", "3 h 5 min", "2 d 4 h".
std::string FormatAge(int64_t seconds) {
  if (seconds < 120) return std::to_string(seconds) + " s";
  int64_t m = seconds / 60;
  if (m < 120) return std::to_string(m) + " min";
  int64_t h = m / 60;
  if (h < 48) return std::to_string(h) + " h " + std::to_string(m % 60) + " min";
  return std::to_string(h / 24) + " d " + std::to_string(h % 24) + " h";
}

// Lock contents come from anyone who can write to the repository: no control
// characters reach the terminal.
std::string Printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

// A small /proc or /sys file, or "" when it cannot be read.
std::string ReadProcFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || out.size() > (64 << 10)) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
  return buf;
}

std::string BootId() {
  std::string id = ReadProcFile("/proc/sys/kernel/random/boot_id");
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id;
}

uint64_t PidNamespace() {
  struct stat st {};
  if (::stat("/proc/self/ns/pid", &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_ino);
}

// True when /proc shows our PID namespace (not, e.g., the host's /proc inside
// `unshare --pid` without --mount-proc): only then do /proc/<pid> paths mean our pids.
bool ProcIsOurs() {
  char buf[64] = {};
  ssize_t n = ::readlink("/proc/self", buf, sizeof buf - 1);
  return n > 0 && std::string(buf, static_cast<size_t>(n)) == std::to_string(::getpid());
}

// Field 22 of /proc/<pid>/stat (start time in clock ticks after boot), 0 if unknown.
uint64_t StartTime(int64_t pid) {
  std::string stat = ReadProcFile("/proc/" + std::to_string(pid) + "/stat");
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream in(stat.substr(paren + 1));
  std::string field;
  for (int i = 3; i <= 22; i++) {
    if (!(in >> field)) return 0;
  }
  try {
    return std::stoull(field);
  } catch (const std::exception&) {
    return 0;
  }
}

std::string RandomHex(int bytes) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < bytes * 2; i++) out.push_back(kDigits[rng() % 16]);
  return out;
}

// Host names become part of object names: keep them to what every store accepts.
std::string NameSafe(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 64)) {
    out.push_back((std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_') ? c : '_');
  }
  return out.empty() ? "host" : out;
}

// Strict JSON: a duplicate key makes the text unreadable rather than "last one wins".
nlohmann::json ParseStrict(const std::string& text) {
  std::vector<std::set<std::string>> keys;
  return nlohmann::json::parse(text, [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    switch (event) {
      case nlohmann::json::parse_event_t::object_start: keys.emplace_back(); break;
      case nlohmann::json::parse_event_t::object_end: keys.pop_back(); break;
      case nlohmann::json::parse_event_t::key:
        if (!keys.back().insert(parsed.get<std::string>()).second) {
          throw std::invalid_argument("duplicate key \"" + Printable(parsed.get<std::string>()) + "\"");
        }
        break;
      default: break;
    }
    return true;
  });
}

// Reads `key` of `j` as a T within [lo, hi]; throws std::invalid_argument naming it.
template <typename T>
T Field(const nlohmann::json& j, const char* key, T lo, T hi) {
  auto it = j.find(key);
  if (it == j.end()) throw std::invalid_argument(std::string("no \"") + key + "\"");
  bool ok = std::is_same_v<T, uint64_t> ? it->is_number_unsigned() : it->is_number_integer();
  if (!ok) throw std::invalid_argument(std::string("\"") + key + "\" is not an integer in range");
  T v = it->get<T>();
  if (v < lo || v > hi) throw std::invalid_argument(std::string("\"") + key + "\" is out of range");
  return v;
}

std::string StringField(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) throw std::invalid_argument(std::string("no string \"") + key + "\"");
  std::string s = it->get<std::string>();
  if (s.size() > 1024) throw std::invalid_argument(std::string("\"") + key + "\" is too long");
  return s;
}

// Fills the parsed part of *info from a lock object's text (readable, format, owner,
// times) or says why it is unreadable. Returns the writer's token ("" for format 0).
std::string ParseLock(const std::string& text, LockInfo* info) {
  constexpr int64_t kMaxPid = 1 << 22;  // PID_MAX_LIMIT
  constexpr int64_t kMaxTime = 253402300799;  // 9999-12-31T23:59:59Z
  std::string token;
  try {
    nlohmann::json j = ParseStrict(text);
    if (!j.is_object()) throw std::invalid_argument("not a JSON object");
    if (j.contains("etcdsafe_lock")) {
      const auto& v = j["etcdsafe_lock"];
      if (!v.is_number_integer()) throw std::invalid_argument("\"etcdsafe_lock\" is not a format number");
      int64_t format = v.get<int64_t>();
      if (format > kLockFormat) {
        info->why = "lock format " + std::to_string(format) + ", written by a newer etcdsafe";
        return "";
      }
      if (format != kLockFormat) throw std::invalid_argument("unknown lock format " + std::to_string(format));
      info->owner.boot_id = StringField(j, "boot_id");
      info->owner.pid_ns = Field<uint64_t>(j, "pid_ns", 0, std::numeric_limits<uint64_t>::max());
      info->owner.pid_start = Field<uint64_t>(j, "pid_start", 0, std::numeric_limits<uint64_t>::max());
      token = StringField(j, "token");
      info->format = kLockFormat;
    } else {
      info->format = 0;  // written by etcdsafe before lock formats were numbered
    }
    info->owner.host = StringField(j, "host");
    info->owner.pid = Field<int64_t>(j, "pid", 0, kMaxPid);
    info->operation = StringField(j, "operation");
    info->since_unix = Field<int64_t>(j, "since_unix", 0, kMaxTime);
    info->refreshed_unix = Field<int64_t>(j, "refreshed_unix", 0, kMaxTime);
    info->readable = true;
  } catch (const std::exception& e) {
    // nlohmann's parse errors, our std::invalid_argument.
    info->readable = false;
    info->format = -1;
    info->why = std::string("not an etcdsafe lock: ") + Printable(e.what());
  }
  return token;
}

// Reads and parses one listed lock object. nullopt when it is gone meanwhile.
std::optional<LockInfo> ReadLock(store::Store& store, const store::ObjectInfo& obj, std::string* token) {
  LockInfo info;
  info.name = obj.name;
  info.mtime_unix = obj.mtime_unix;
  if (obj.size > kMaxLockSize) {
    info.why = "larger than " + std::to_string(kMaxLockSize / 1024) + " KiB";
    return info;
  }
  std::string text;
  try {
    text = store.Get(obj.name, kMaxLockSize);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kNotFound) return std::nullopt;  // released meanwhile
    if (e.code() != ErrorCode::kDataLoss) throw;
    info.why = Printable(e.what());  // grew past the limit, not a regular file, ...
    return info;
  }
  std::string t = ParseLock(text, &info);
  if (token != nullptr) *token = t;
  return info;
}

// Judges a readable or unreadable lock; `now` on the same clock as its mtime.
void Judge(LockInfo* info, const LockIdentity& self, int64_t now) {
  info->age_seconds = info->mtime_unix > 0 ? std::max<int64_t>(0, now - info->mtime_unix) : 0;
  info->stale = false;
  if (!info->readable) return;  // never removed automatically; why says what it is
  const int64_t stale_after = std::chrono::seconds(kLockStaleAfter).count();
  if (info->mtime_unix > 0 && info->age_seconds > stale_after) {
    info->stale = true;
    info->why = "not written for " + FormatAge(info->age_seconds) + " by the store's clock";
    return;
  }
  const LockIdentity& o = info->owner;
  const bool same_pid_space = info->format >= 1 && o.host == self.host && !self.boot_id.empty() &&
                              o.boot_id == self.boot_id && self.pid_ns != 0 && o.pid_ns == self.pid_ns;
  if (same_pid_space && o.pid > 0) {
    if (::kill(static_cast<pid_t>(o.pid), 0) != 0 && errno == ESRCH) {
      info->stale = true;
      info->why = "its process " + std::to_string(o.pid) + " on this host (same boot, same PID namespace) is gone";
      return;
    }
    if (self.pid_start != 0 && o.pid_start != 0) {
      uint64_t start = StartTime(o.pid);
      if (start != 0 && start != o.pid_start) {
        info->stale = true;
        info->why = "its process " + std::to_string(o.pid) + " on this host is gone (the pid was reused)";
        return;
      }
    }
    info->why = "its process " + std::to_string(o.pid) + " on this host is running";
    return;
  }
  info->why = info->mtime_unix > 0 ? "written " + FormatAge(info->age_seconds) + " ago, stale after " +
                                         std::to_string(kLockStaleAfter.count()) + " min without a write"
                                   : "the store gives no modification time";
}

std::string WhatToDo() {
  return "if no etcdsafe is using the repository, `etcdsafe unlock` removes a lock once it is stale (" +
         std::to_string(kLockStaleAfter.count()) + " min without a write), `etcdsafe unlock --force` at once";
}

// Every other lock object, read and judged against `now`.
std::vector<LockInfo> JudgeOthers(store::Store& store, const std::vector<store::ObjectInfo>& listing,
                                  const std::string& ours, const LockIdentity& self, int64_t now) {
  std::vector<LockInfo> out;
  for (const auto& obj : listing) {
    if (obj.name == ours) continue;
    std::optional<LockInfo> info = ReadLock(store, obj, nullptr);
    if (!info) continue;
    Judge(&*info, self, now);
    out.push_back(std::move(*info));
  }
  return out;
}

}  // namespace

LockIdentity LockIdentity::Self() {
  LockIdentity id;
  id.host = HostName();
  id.pid = ::getpid();
  id.boot_id = BootId();
  id.pid_ns = PidNamespace();
  id.pid_start = ProcIsOurs() ? StartTime(id.pid) : 0;
  return id;
}

std::string LockInfo::Describe() const {
  if (!readable) return "unreadable lock (" + why + ")";
  std::string s = Printable(operation) + " on host " + Printable(owner.host) + " (pid " + std::to_string(owner.pid) +
                  ") since " + FormatUtc(since_unix);
  if (mtime_unix > 0) s += ", last written " + FormatAge(age_seconds) + " ago";
  return s;
}

std::string LockInfo::DisplayName() const { return Printable(name); }

RepositoryLock::RepositoryLock(store::Store& store, std::string name, std::string operation, LockIdentity self)
    : store_(store),
      name_(std::move(name)),
      operation_(std::move(operation)),
      token_(RandomHex(16)),
      self_(std::move(self)),
      since_unix_(NowUnix()),
      // A signal skips the destructor: without this the lock would stay until it is
      // found stale. Runs after the commit lock (CommitSection) is taken.
      on_interrupt_([this] {
        stop_ = true;
        try {
          // A refresh in flight may still land after this: on file:// it cannot (its
          // rename needs the commit lock, which the interrupt cleanup holds); on S3 the
          // lock is left to go stale, or to the PID check of the next run on this host.
          store_.Remove(name_);
        } catch (...) {
          // Left behind, it goes stale.
        }
      }) {}

void RepositoryLock::StartRefresher(std::chrono::milliseconds refresh_every) {
  refresher_ = std::thread([this, refresh_every] {
    auto next = std::chrono::steady_clock::now() + refresh_every;
    for (;;) {
      {
        std::unique_lock<std::mutex> l(stop_mu_);
        if (stop_cv_.wait_until(l, next, [this] { return stop_.load(); })) return;
      }
      next += refresh_every;
      Refresh();
    }
  });
}

std::string RepositoryLock::Body() const {
  nlohmann::ordered_json j;
  j["etcdsafe_lock"] = kLockFormat;
  j["operation"] = operation_;
  j["host"] = self_.host;
  j["pid"] = self_.pid;
  j["boot_id"] = self_.boot_id;
  j["pid_ns"] = self_.pid_ns;
  j["pid_start"] = self_.pid_start;
  j["since_unix"] = since_unix_;
  j["refreshed_unix"] = NowUnix();  // informational: ages are the store's mtimes
  j["token"] = token_;
  return j.dump() + "\n";
}

void RepositoryLock::Write() {
  // The store stamps the object after this instant: measured from it, our own idea of the
  // lock's age is never smaller than the store's.
  const int64_t started = SteadyNs();
  store_.Put(name_, Body());
  last_write_ok_ = started;
}

void RepositoryLock::MarkLost(const std::string& why) {
  std::lock_guard<std::mutex> l(mu_);
  if (lost_) return;
  lost_why_ = why;
  lost_ = true;
}

std::string RepositoryLock::NotWrittenFor() const {
  const auto unwritten = std::chrono::nanoseconds(SteadyNs() - last_write_ok_.load());
  if (unwritten <= kLockGiveUpAfter) return "";
  return "it could not be written for " +
         FormatAge(std::chrono::duration_cast<std::chrono::seconds>(unwritten).count()) +
         ", so another run may have removed it as stale";
}

void RepositoryLock::Refresh() {
  // No mutex is held across store requests (the file store's writes take the commit lock,
  // which a CheckHeld caller may hold).
  if (stop_ || lost_) return;
  if (std::string why = NotWrittenFor(); !why.empty()) {
    MarkLost(why);  // others may judge it stale from now on: never bring it back
    return;
  }
  try {
    std::optional<store::ObjectInfo> info = store_.Stat(name_);
    std::string token;
    std::optional<LockInfo> mine;
    if (info) mine = ReadLock(store_, *info, &token);
    if (!mine) {
      MarkLost("it was removed by another process: a run that judged it stale, or `etcdsafe unlock --force`");
      return;
    }
    if (token != token_) {
      MarkLost("the object under its name is not this run's lock any more");
      return;
    }
    if (stop_) return;
    Write();
  } catch (const Error&) {
    // A missed refresh only brings staleness closer; CheckHeld decides before a commit.
  }
}

void RepositoryLock::Lost(const std::string& why) {
  throw Error(ErrorCode::kLocked, store_.Describe() + ": this " + operation_ + " lost its repository lock " + name_ +
                                      " (" + why + "); nothing more is committed");
}

void RepositoryLock::CheckHeld() {
  if (lost_) {
    std::string why;
    {
      std::lock_guard<std::mutex> l(mu_);
      why = lost_why_;
    }
    Lost(why);
  }
  if (std::string why = NotWrittenFor(); !why.empty()) Lost(why);
  std::optional<store::ObjectInfo> info = store_.Stat(name_);
  std::string token;
  std::optional<LockInfo> mine;
  if (info) mine = ReadLock(store_, *info, &token);
  if (!mine) Lost("it was removed by another process: a run that judged it stale, or `etcdsafe unlock --force`");
  if (token != token_) Lost("the object under its name is not this run's lock any more");
}

RepositoryLock::~RepositoryLock() {
  {
    std::lock_guard<std::mutex> l(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (refresher_.joinable()) refresher_.join();
  try {
    // Even when lost: the name is ours alone (host, pid and a random nonce).
    store_.Remove(name_);
  } catch (const Error&) {
    // Left behind, it becomes stale and the next run removes it.
  }
}

class LockFactory {
 public:
  static std::unique_ptr<RepositoryLock> New(store::Store& store, const std::string& operation,
                                             const LockIdentity& self, std::chrono::milliseconds refresh_every) {
    const std::string name = std::string(kLockPrefix) + NameSafe(self.host) + "-" + std::to_string(self.pid) + "-" +
                             RandomHex(4) + ".json";
    auto lock = std::unique_ptr<RepositoryLock>(new RepositoryLock(store, name, operation, self));
    lock->Write();
    lock->StartRefresher(refresh_every);  // only once the lock exists
    return lock;
  }
};

namespace {

// Writes a new lock of ours and returns it with store-now (its mtime) and the listing.
std::unique_ptr<RepositoryLock> WriteOwnLock(store::Store& store, const std::string& operation,
                                             const LockIdentity& self, std::chrono::milliseconds refresh_every,
                                             std::vector<store::ObjectInfo>* listing, int64_t* store_now) {
  std::unique_ptr<RepositoryLock> lock = LockFactory::New(store, operation, self, refresh_every);
  *listing = store.ListDir(kLockPrefix);
  *store_now = 0;
  for (const auto& obj : *listing) {
    if (obj.name == lock->name()) *store_now = obj.mtime_unix;
  }
  if (*store_now == 0) {
    std::optional<store::ObjectInfo> mine = store.Stat(lock->name());
    if (!mine) {
      throw Error(ErrorCode::kLocked, store.Describe() + ": lock " + lock->name() +
                                          " was removed right after it was written (a concurrent `etcdsafe unlock "
                                          "--force`?); try again");
    }
    *store_now = mine->mtime_unix;
  }
  if (*store_now == 0) *store_now = NowUnix();  // a store without mtimes: our clock
  return lock;
}

}  // namespace

std::unique_ptr<RepositoryLock> AcquireLock(store::Store& store, const std::string& operation,
                                            std::vector<std::string>* removed_stale,
                                            std::chrono::milliseconds refresh_every) {
  const LockIdentity self = LockIdentity::Self();
  std::vector<store::ObjectInfo> listing;
  int64_t store_now = 0;
  std::unique_ptr<RepositoryLock> lock = WriteOwnLock(store, operation, self, refresh_every, &listing, &store_now);
  const LockInfo* held = nullptr;
  std::vector<LockInfo> others = JudgeOthers(store, listing, lock->name(), self, store_now);
  for (const auto& other : others) {
    if (!other.stale) {
      if (held == nullptr && LocksConflict(operation, other)) held = &other;
      continue;
    }
    store.Remove(other.name);
    if (removed_stale != nullptr) {
      removed_stale->push_back("removed stale lock " + Printable(other.name) + " (" + other.Describe() + "; " +
                               other.why + ")");
    }
  }
  if (held != nullptr) {
    lock.reset();  // removes ours
    if (!held->readable) {
      throw Error(ErrorCode::kLocked, store.Describe() + " is locked by " + Printable(held->name) +
                                          ", which this etcdsafe cannot read (" + held->why +
                                          "); such a lock is never removed automatically: if no etcdsafe is using "
                                          "the repository, remove it with `etcdsafe unlock --force`");
    }
    throw Error(ErrorCode::kLocked, store.Describe() + " is locked by " + held->Describe() + " (" + held->why +
                                        "); lock " + Printable(held->name) + "; " + WhatToDo());
  }
  return lock;
}

std::vector<LockInfo> InspectLocks(store::Store& store) {
  return JudgeOthers(store, store.ListDir(kLockPrefix), "", LockIdentity::Self(), NowUnix());
}

bool LocksConflict(const std::string& operation, const LockInfo& held) {
  if (!held.readable) return true;
  if (operation == kCompactOperation || held.operation == kCompactOperation) {
    const std::string& other = operation == kCompactOperation ? held.operation : operation;
    return other == kCompactOperation || other == "prune";
  }
  return (operation == kFollowOperation) == (held.operation == kFollowOperation);
}

std::vector<LockInfo> HeldLocks(store::Store& store, const std::string& ours) {
  std::vector<store::ObjectInfo> listing = store.ListDir(kLockPrefix);
  int64_t now = 0;
  for (const auto& obj : listing) {
    if (!ours.empty() && obj.name == ours) now = obj.mtime_unix;
  }
  if (now == 0) now = NowUnix();
  std::vector<LockInfo> out;
  for (auto& l : JudgeOthers(store, listing, ours, LockIdentity::Self(), now)) {
    if (!l.stale) out.push_back(std::move(l));
  }
  return out;
}

UnlockReport Unlock(store::Store& store, bool force, bool dry_run) {
  UnlockReport report;
  std::vector<LockInfo> locks;
  std::unique_ptr<RepositoryLock> probe;
  if (dry_run) {
    locks = InspectLocks(store);
  } else {
    const LockIdentity self = LockIdentity::Self();
    std::vector<store::ObjectInfo> listing;
    int64_t store_now = 0;
    probe = WriteOwnLock(store, "unlock", self, kLockRefreshEvery, &listing, &store_now);
    locks = JudgeOthers(store, listing, probe->name(), self, store_now);
  }
  for (auto& l : locks) {
    if (!force && !l.stale) {
      report.kept.push_back(std::move(l));
      continue;
    }
    if (!dry_run) store.Remove(l.name);
    report.removed.push_back(std::move(l));
  }
  return report;  // the probe is removed here
}

}  // namespace etcdsafe::backup
