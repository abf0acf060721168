// Thin POSIX file helpers that throw etcdsafe::Error with the path in the message.
//
// The rule they serve: nothing half-written ever appears under a final name. Writers
// create a uniquely named temporary sibling (LockedTemp), fsync, then rename it into place
// and fsync the parent directory, inside a CommitSection. Thread-compatible: one File per
// thread.
//
// Interrupts (the CLI's signal thread runs RemovePendingCleanups) and the main thread:
// - Every helper here that creates, renames or removes a path (File::Create, MakeDirs,
//   RenameDurable, RemoveAll, LockedTemp, DirectWriter, CleanupGuard's constructor) holds
//   the CommitSection lock while it does so. RemovePendingCleanups takes that lock first and
//   never releases it, so once the cleanup began the main thread stops at the next such
//   call (a safe point) and can neither recreate a temporary directory the cleanup just
//   removed (MakeDirs of its parent chain) nor move entries under the cleanup's feet.
// - A commit (rename into place + CleanupGuard::Release) holds a CommitSection around
//   both, so the cleanup either runs before the commit (and removes the temporary) or
//   after it (and finds the guard released): a committed path is never cleaned.
// - Repository locks are InterruptCleanup actions: they run after the paths, under the
//   same lock, so a lock is never removed while its holder still deletes or commits
//   (those hold a CommitSection).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "base/bytes.h"

namespace etcdsafe {

class File {
 public:
  File() = default;
  File(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~File();
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  // Opens for reading. Missing file: kNotFound "open <path>: No such file or directory".
  static File OpenRead(const std::string& path);
  // Creates (O_CREAT|O_EXCL unless `truncate`) for writing with `mode`.
  static File Create(const std::string& path, mode_t mode, bool truncate = false);
  // Opens an existing file read-write.
  static File OpenReadWrite(const std::string& path);

  int fd() const { return fd_; }
  const std::string& path() const { return path_; }
  bool is_open() const { return fd_ >= 0; }

  uint64_t Size() const;
  // Reads exactly n bytes at offset; a short read is kDataLoss "<path>: truncated ...".
  void ReadAt(uint64_t offset, uint8_t* buf, size_t n) const;
  // Reads up to n bytes from the current position; returns 0 at EOF.
  size_t Read(uint8_t* buf, size_t n);
  void WriteAll(const uint8_t* data, size_t n);
  void WriteAll(Bytes b) { WriteAll(b.data(), b.size()); }
  void WriteAt(uint64_t offset, const uint8_t* data, size_t n);
  void Truncate(uint64_t size);
  // Reserves `size` bytes (fallocate, falling back to ftruncate), like etcd's WAL.
  void Preallocate(uint64_t size);
  void Sync();
  void Close();

 private:
  int fd_ = -1;
  std::string path_;
};

bool PathExists(const std::string& path);
bool IsDirectory(const std::string& path);
// mkdir -p with `mode` on every level created.
void MakeDirs(const std::string& path, mode_t mode);
void SyncDir(const std::string& dir);
std::string ParentDir(const std::string& path);
// rename(2) then fsync of the destination's parent directory.
void RenameDurable(const std::string& from, const std::string& to);
// rm -rf without following symlinks; a missing path is fine, errors are ignored.
void RemoveAll(const std::string& path);
// Free bytes available to an unprivileged writer on the filesystem holding `path`.
uint64_t FreeSpace(const std::string& path);
// The directory for scratch files: `dir` when not empty, else $TMPDIR, else /tmp.
std::string TempDirOr(const std::string& dir);
// A read-write temporary file without a name in TempDirOr(dir) (O_TMPFILE; where the
// filesystem lacks it, a mkostemp name unlinked at once), so nothing is left behind
// whatever happens to the process. `what` names it in errors ("<dir> (<what>)").
// Failure: SystemError "create a temporary file in <dir>: ...".
File OpenUnnamedTemp(const std::string& dir, const std::string& what);
// Reads a whole small file (keys, certs). Refuses files over `limit` bytes.
std::string ReadSmallFile(const std::string& path, size_t limit = 16 << 20);

// Deletes the path on destruction unless Release()d: the "no leftovers" guard. Live
// guards are also registered process-wide so a signal handler thread can remove them
// before exiting (RemovePendingCleanups), since a signal skips destructors. Construct the
// guard before creating its path: after an interrupt began the constructor blocks (the
// process is exiting), so a path is never created unguarded behind the cleanup's back.
class CleanupGuard {
 public:
  explicit CleanupGuard(std::string path);
  ~CleanupGuard();
  CleanupGuard(const CleanupGuard&) = delete;
  CleanupGuard& operator=(const CleanupGuard&) = delete;
  void Release();

 private:
  std::string path_;
};

// Runs `fn` if the process is interrupted while this object lives (RemovePendingCleanups,
// after the CleanupGuard paths): for leftovers that are not a local path, such as a lock
// object in a repository's store. Never runs otherwise: the owner cleans up on its normal
// path. `fn` must not throw; the destructor waits while it runs.
class InterruptCleanup {
 public:
  explicit InterruptCleanup(std::function<void()> fn);
  ~InterruptCleanup();
  InterruptCleanup(const InterruptCleanup&) = delete;
  InterruptCleanup& operator=(const InterruptCleanup&) = delete;

 private:
  friend size_t RemovePendingCleanups();
  std::function<void()> fn_;
};

// A mkdtemp directory "$TMPDIR/<prefix>-XXXXXX" (TMPDIR unset: /tmp), removed with its
// contents when this object goes, or by the interrupt cleanup (RemovePendingCleanups) if
// the process is interrupted first. Creating it after an interrupt began blocks, as every
// creation does (CommitSection). Thread-safe.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string path() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
  std::unique_ptr<InterruptCleanup> cleanup_;
};

// Removes the paths of every live CleanupGuard, then runs every live InterruptCleanup.
// For the interrupt handler only: it first takes the commit lock (CommitSection), so it
// never runs while a commit is half done, and no commit starts after it began. Returns
// how many guarded paths existed and were removed plus how many actions ran (0: the
// interrupt found no partial output, e.g. it came after the last commit).
size_t RemovePendingCleanups();

// Serialises commits against the interrupt handler. Code that makes work final (renames
// a file or directory into place and releases its CleanupGuard, writes a manifest,
// deletes a backup's objects) holds a CommitSection around it. The interrupt handler
// takes the same lock before cleaning: cleanup never races a commit, and never removes
// what a commit made final (the guard was released inside the section). Constructing a
// CommitSection after an interrupt began blocks until the process exits. Reentrant.
class CommitSection {
 public:
  CommitSection();
  ~CommitSection();
  CommitSection(const CommitSection&) = delete;
  CommitSection& operator=(const CommitSection&) = delete;
};

// A uniquely named temporary sibling, "<dir>/<prefix>XXXXXX<suffix>" (X: [A-Za-z0-9]),
// created exclusively (never an existing name: two runs never share one), held under
// flock(LOCK_EX) while this object lives and registered for cleanup (CleanupGuard), all
// before an interrupt cleanup can run. flock locks die with their process, so a later
// run tells a killed run's leftover (lock free) from a live run's temporary (lock held):
// RemoveStaleTemps. Not thread-safe.
class LockedTemp {
 public:
  enum class Kind { kFile, kDirectory };
  LockedTemp(const std::string& dir, const std::string& prefix, const std::string& suffix, Kind kind,
             mode_t mode);
  // Removes the temporary unless committed, then releases the lock.
  ~LockedTemp();
  LockedTemp(const LockedTemp&) = delete;
  LockedTemp& operator=(const LockedTemp&) = delete;

  const std::string& path() const { return path_; }
  // kFile: a descriptor for writing the file (a dup of the locked one, so closing it
  // keeps the lock).
  File OpenForWrite() const;
  // Renames the temporary to `final_path` (durably) and releases its guard, inside a
  // CommitSection, after checking that its name still refers to what this object created
  // (kDataLoss otherwise). The lock stays held until destruction.
  void CommitTo(const std::string& final_path);

 private:
  std::string path_;
  int lock_fd_ = -1;
  std::optional<CleanupGuard> guard_;
};

// Removes the entries of `dir` named exactly <prefix> + 6 of [A-Za-z0-9] + <suffix> that
// are leftovers of killed runs: regular files or directories (never a symlink) whose
// flock is free, locked while they are removed. Returns the paths removed. Best effort:
// never throws; an unreadable `dir` removes nothing.
std::vector<std::string> RemoveStaleTemps(const std::string& dir, const std::string& prefix,
                                          const std::string& suffix);

// The last path component ("a/b/" -> "b").
std::string BaseName(const std::string& path);

// Test hook: if ETCDSAFE_TEST_PAUSE is "<point>:<milliseconds>", sleeps that long when the
// code reaches `point`; otherwise does nothing. Lets tests land a signal or kill -9 at a
// named instant (e.g. between the two renames of a restore with --wal-dir).
void TestPause(const char* point);

}  // namespace etcdsafe
