// Thin POSIX file helpers that throw etcdsafe::Error with the path in the message.
//
// The rule they serve: nothing half-written ever appears under a final name. Writers
// create "<final>.part" (or a temporary sibling directory), fsync, then rename and fsync
// the parent directory. Thread-compatible: one File per thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>

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
// rm -rf; missing path is fine.
void RemoveAll(const std::string& path);
// Free bytes available to an unprivileged writer on the filesystem holding `path`.
uint64_t FreeSpace(const std::string& path);
// Reads a whole small file (keys, certs). Refuses files over `limit` bytes.
std::string ReadSmallFile(const std::string& path, size_t limit = 16 << 20);

// Deletes the path on destruction unless Release()d: the "no leftovers" guard. Live
// guards are also registered process-wide so a signal handler thread can remove them
// before exiting (RemovePendingCleanups), since a signal skips destructors.
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
  friend void RemovePendingCleanups();
  std::function<void()> fn_;
};

// Removes the paths of every live CleanupGuard, then runs every live InterruptCleanup.
// For the interrupt handler only: it first takes the commit lock (CommitSection), so it
// never runs while a commit is half done, and no commit starts after it began.
void RemovePendingCleanups();

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

}  // namespace etcdsafe
