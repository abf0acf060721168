// The repository lock: one object under "locks/" per running backup, prune or recorder.
//
// What a lock proves. A run holds the repository while its lock object exists and is
// fresh. Owners rewrite it every minute (kLockRefreshEvery); every write gives the object
// a new modification time stamped by the STORE (file:// mtime, S3 Last-Modified), so ages
// are measured on one clock, the store's, and the writers' clocks never matter: a lock
// whose content says it was refreshed in 2030, or 31 minutes ago, is judged by its
// object's mtime alone ("refreshed_unix" inside is informational). "Store now" is read
// from the mtime of the lock we have just written ourselves.
//
// Another lock is STALE, and removed by the next backup/prune/unlock, when
//  - its mtime is more than kLockStaleAfter older than store-now, or
//  - it was written in our own PID namespace on our own boot of our own host (host name,
//    /proc/sys/kernel/random/boot_id and the /proc/self/ns/pid inode all equal ours) and
//    its process is gone (or its pid now belongs to a process started at another time).
//    Containers with `--network host` and hostNetwork pods share the host name but not
//    the PID namespace: for them only the mtime counts.
// Otherwise it is HELD. A lock etcdsafe cannot read (not JSON, not an etcdsafe lock,
// larger than kMaxLockSize, a newer lock format) is always HELD: it is never removed
// automatically, the error names it and points to `etcdsafe unlock --force`.
//
// Continuous backup. The recorder (`backup --follow`) runs for days and holds a lock of
// operation kFollowOperation all along. A follow lock conflicts only with another follow
// lock (two recorders on one repository are refused); backup and prune locks neither stop
// nor are stopped by it (LocksConflict): they never touch what a recorder writes, which is
// new segments of its chain and their store temporaries (repository.h, repo_ops.h Prune).
// Every other pair of locks conflicts, and an unreadable lock conflicts with everything.
// Compaction (`backups compact`, and the recorder's own merges) holds a lock of operation
// kCompactOperation while it merges segments: it conflicts only with another compaction
// and with prune (which removes what a merge reads or leaves), not with backups or
// recorders (a merge never touches a chain's newest segments).
//
// An owner that could not refresh its lock for kLockGiveUpAfter (5 minutes before anyone
// may judge it stale) stops refreshing and considers it lost, so a lock that was judged
// stale is never brought back; CheckHeld() is called right before every commit.
// Released (removed) on destruction, and by the interrupt cleanup on SIGINT/SIGTERM: that
// runs under the commit lock (base/file.h), so never while the holder commits.
// Thread-compatible, except that CheckHeld may run while the refresher thread works.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/file.h"
#include "store/store.h"

namespace etcdsafe::backup {

inline constexpr char kLockPrefix[] = "locks/";
inline constexpr std::chrono::minutes kLockStaleAfter{30};
inline constexpr std::chrono::minutes kLockRefreshEvery{1};
inline constexpr std::chrono::minutes kLockGiveUpAfter = kLockStaleAfter - std::chrono::minutes(5);
// Lock objects are a few hundred bytes; a larger one is not read (and is HELD).
inline constexpr size_t kMaxLockSize = 64 << 10;
// "etcdsafe_lock": the lock format version this build writes. Version 0 is the format
// of earlier builds (no version, no boot id or PID namespace): read, judged by mtime only.
inline constexpr int kLockFormat = 1;

// Who this process is, as written into its locks and compared with others'.
struct LockIdentity {
  std::string host;
  int64_t pid = 0;
  std::string boot_id;     // empty: unknown (then no PID check is trusted)
  uint64_t pid_ns = 0;     // inode of /proc/self/ns/pid; 0: unknown
  uint64_t pid_start = 0;  // /proc/self/stat starttime (clock ticks after boot); 0: unknown
  static LockIdentity Self();
};

// One object under locks/, as judged by a backup, prune, unlock or an inspection.
struct LockInfo {
  std::string name;        // "locks/<host>-<pid>-<nonce>.json"
  bool readable = false;   // an etcdsafe lock of a format this build knows
  int format = -1;         // 0 or kLockFormat when readable
  std::string operation;   // "backup", "prune", ...
  LockIdentity owner;
  int64_t since_unix = 0, refreshed_unix = 0;  // the owner's clock, informational
  int64_t mtime_unix = 0;  // the store's clock
  int64_t age_seconds = 0; // now - mtime (never negative)
  bool stale = false;
  std::string why;         // why stale, or why held
  // "backup on host h (pid 12), last written 3 min ago" (or "unreadable lock: ...").
  std::string Describe() const;
  // The name with control characters escaped, for messages.
  std::string DisplayName() const;
};

inline constexpr char kFollowOperation[] = "follow";
inline constexpr char kCompactOperation[] = "compact";

// True when a run of `operation` must not take the repository lock while `held` (a lock
// judged HELD, not stale) exists: `held` is unreadable; or one of them is a compact lock
// and the other a compact or prune lock; or, neither being a compact lock, both are
// follow locks or neither is.
bool LocksConflict(const std::string& operation, const LockInfo& held);

class LockFactory;

class RepositoryLock {
 public:
  ~RepositoryLock();
  RepositoryLock(const RepositoryLock&) = delete;
  RepositoryLock& operator=(const RepositoryLock&) = delete;

  const std::string& name() const { return name_; }

  // Right before a commit (a manifest written, a backup's objects deleted): throws kLocked
  // "<repo>: lost its repository lock <name> (...); nothing was committed" when our lock
  // object is gone, is not ours any more, or went unrefreshed so long that another run
  // may have judged it stale. Does not write.
  void CheckHeld();

 private:
  friend class LockFactory;
  RepositoryLock(store::Store& store, std::string name, std::string operation, LockIdentity self);
  void StartRefresher(std::chrono::milliseconds refresh_every);
  std::string Body() const;
  void Write();
  void Refresh();
  void MarkLost(const std::string& why);
  // Why the lock may have been judged stale by now ("" if it was written recently).
  std::string NotWrittenFor() const;
  [[noreturn]] void Lost(const std::string& why);

  store::Store& store_;
  const std::string name_, operation_, token_;
  const LockIdentity self_;
  const int64_t since_unix_;
  // Guards lost_why_ only; never held across a store request (the file store's writes
  // take the commit lock, which CheckHeld's caller and the interrupt cleanup hold).
  std::mutex mu_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;  // wakes the refresher when stop_ is set
  std::atomic<bool> stop_{false};
  std::atomic<bool> lost_{false};
  std::string lost_why_;  // under mu_
  // steady_clock time at which the last successful write started (rep, ns).
  std::atomic<int64_t> last_write_ok_{0};
  std::thread refresher_;
  // Declared last: unregistered before the members it uses go away.
  InterruptCleanup on_interrupt_;
};

// Takes the repository lock for `operation` ("backup", "prune", kFollowOperation). Stale
// locks (of any operation) are removed and described in *removed_stale. A held lock that
// conflicts (LocksConflict): kLocked naming its owner (or why it cannot be read) and
// `etcdsafe unlock`. `refresh_every` other than kLockRefreshEvery is
// for tests.
std::unique_ptr<RepositoryLock> AcquireLock(store::Store& store, const std::string& operation,
                                            std::vector<std::string>* removed_stale,
                                            std::chrono::milliseconds refresh_every = kLockRefreshEvery);

// Read-only: every object under locks/, judged by the rules above, but ages by this
// host's clock (nothing is written, so the store's clock cannot be read). For dry runs.
std::vector<LockInfo> InspectLocks(store::Store& store);

// Read-only: the locks other than `ours` (a lock name, or "" for none) judged HELD, i.e.
// runs that may be writing right now. Whether one of them may be writing an object of
// the kind a run of operation X writes (segments: kFollowOperation; anything else:
// "backup") is LocksConflict(X, lock). Ages by the store's clock when `ours` is listed
// (its mtime; an older "now" only makes others look fresher), else by this host's clock.
// List the objects you are about to act on BEFORE calling this: every writer writes its
// lock before any object, so a temporary in that listing whose writer still runs has
// its lock in this one.
std::vector<LockInfo> HeldLocks(store::Store& store, const std::string& ours);

// `etcdsafe unlock`: removes stale locks, or with `force` every lock, and returns what it
// removed and what it kept. Ages by the store's clock: it writes (and removes) a lock of
// its own, operation "unlock", to read it. With dry_run nothing is written or removed
// (ages by this host's clock, as InspectLocks).
struct UnlockReport {
  std::vector<LockInfo> removed, kept;
};
UnlockReport Unlock(store::Store& store, bool force, bool dry_run);

}  // namespace etcdsafe::backup
