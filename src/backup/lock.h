// The repository lock: one object under "locks/" per running backup or prune.
//
// Held while a backup or prune runs. A lock is stale when its owner is a dead process on
// this host, or when it was not refreshed for `kLockStaleAfter` (owners refresh it every
// minute). Released (deleted) on destruction, and by the interrupt handler on SIGINT/TERM.
// Thread-compatible.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/file.h"
#include "store/store.h"

namespace etcdsafe::backup {

inline constexpr char kLockPrefix[] = "locks/";
inline constexpr std::chrono::minutes kLockStaleAfter{30};

class RepositoryLock {
 public:
  ~RepositoryLock();
  RepositoryLock(const RepositoryLock&) = delete;
  RepositoryLock& operator=(const RepositoryLock&) = delete;

 private:
  friend std::unique_ptr<RepositoryLock> AcquireLock(store::Store&, const std::string&, std::vector<std::string>*);
  RepositoryLock(store::Store& store, std::string name, std::string body_prefix);
  void Refresh();

  store::Store& store_;
  std::string name_, body_prefix_;
  std::atomic<bool> stop_{false};
  std::thread refresher_;
  // Declared last: unregistered before the members it uses go away.
  InterruptCleanup on_interrupt_;
};

// Takes the repository lock for `operation` ("backup", "prune"). Stale locks are
// removed and described in *removed_stale. Held by someone else: kLocked naming the
// owner.
std::unique_ptr<RepositoryLock> AcquireLock(store::Store& store, const std::string& operation,
                                            std::vector<std::string>* removed_stale);

}  // namespace etcdsafe::backup
