#include "backup/lock.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <nlohmann/json.hpp>
#include <random>

#include "backup/manifest.h"
#include "base/error.h"

namespace etcdsafe::backup {
namespace {

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown-host";
  return buf;
}

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string RandomHex(int bytes) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < bytes * 2; i++) out.push_back(kDigits[rng() % 16]);
  return out;
}

std::string LockBody(const std::string& prefix) {
  return prefix + ",\"refreshed_unix\":" + std::to_string(NowUnix()) + "}\n";
}

}  // namespace

RepositoryLock::RepositoryLock(store::Store& store, std::string name, std::string body_prefix)
    : store_(store),
      name_(std::move(name)),
      body_prefix_(std::move(body_prefix)),
      // A signal skips the destructor: without this the lock would stay until it is
      // found stale.
      on_interrupt_([this] {
        stop_ = true;
        try {
          store_.Remove(name_);
        } catch (...) {
          // Left behind, it goes stale: a run on this host removes it at once.
        }
      }) {
  refresher_ = std::thread([this] {
    auto next = std::chrono::steady_clock::now() + std::chrono::minutes(1);
    while (!stop_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      if (stop_.load() || std::chrono::steady_clock::now() < next) continue;
      next += std::chrono::minutes(1);
      Refresh();
    }
  });
}

void RepositoryLock::Refresh() {
  try {
    store_.Put(name_, LockBody(body_prefix_));
  } catch (const Error&) {
    // A missed refresh only brings staleness closer; the operation itself decides.
  }
}

RepositoryLock::~RepositoryLock() {
  stop_ = true;
  if (refresher_.joinable()) refresher_.join();
  try {
    store_.Remove(name_);
  } catch (const Error&) {
    // Left behind, it becomes stale and the next run removes it.
  }
}

std::unique_ptr<RepositoryLock> AcquireLock(store::Store& store, const std::string& operation,
                                            std::vector<std::string>* removed_stale) {
  store::Store* store_ = &store;
  auto Describe = [&] { return store.Describe(); };
  const std::string host = HostName();
  const int pid = static_cast<int>(::getpid());
  const std::string name = std::string(kLockPrefix) + host + "-" + std::to_string(pid) + "-" + RandomHex(4) + ".json";
  nlohmann::json owner = {{"host", host}, {"pid", pid}, {"operation", operation}, {"since_unix", NowUnix()}};
  std::string prefix = owner.dump();
  prefix.pop_back();  // reopen the object to append the refresh time
  auto lock = std::unique_ptr<RepositoryLock>(new RepositoryLock(store, name, prefix));
  store_->Put(name, LockBody(prefix));

  for (const auto& obj : store_->List(kLockPrefix)) {
    if (obj.name == name) continue;
    std::string why_stale;
    nlohmann::json other;
    try {
      other = nlohmann::json::parse(store_->Get(obj.name, 64 << 10));
      int64_t refreshed = other.value("refreshed_unix", int64_t{0});
      std::string other_host = other.value("host", "");
      int other_pid = other.value("pid", 0);
      if (other_host == host && other_pid > 0 && ::kill(other_pid, 0) != 0 && errno == ESRCH) {
        why_stale = "its process " + std::to_string(other_pid) + " on this host is gone";
      } else if (NowUnix() - refreshed > std::chrono::seconds(kLockStaleAfter).count()) {
        why_stale = "not refreshed for " + std::to_string((NowUnix() - refreshed) / 60) + " minutes";
      }
    } catch (const nlohmann::json::exception&) {
      why_stale = "unreadable";
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kNotFound) continue;  // released meanwhile
      throw;
    }
    if (!why_stale.empty()) {
      store_->Remove(obj.name);
      if (removed_stale != nullptr) removed_stale->push_back("removed stale lock " + obj.name + " (" + why_stale + ")");
      continue;
    }
    lock.reset();  // removes ours
    throw Error(ErrorCode::kLocked,
                Describe() + " is locked by " + other.value("operation", "?") + " on host " +
                    other.value("host", "?") + " (pid " + std::to_string(other.value("pid", 0)) + ") since " +
                    FormatUtc(other.value("since_unix", int64_t{0})) + "; lock " + obj.name);
  }
  return lock;
}

}  // namespace etcdsafe::backup
