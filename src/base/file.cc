#include "base/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <mutex>
#include <set>
#include <system_error>

namespace etcdsafe {

File::~File() {
  if (fd_ >= 0) ::close(fd_);
}

File::File(File&& other) noexcept : fd_(other.fd_), path_(std::move(other.path_)) {
  other.fd_ = -1;
}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    path_ = std::move(other.path_);
    other.fd_ = -1;
  }
  return *this;
}

File File::OpenRead(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw SystemError("open " + path, errno);
  return File(fd, path);
}

File File::Create(const std::string& path, mode_t mode, bool truncate) {
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : O_EXCL);
  int fd = ::open(path.c_str(), flags, mode);
  if (fd < 0) throw SystemError("create " + path, errno);
  // The umask may have narrowed the mode; we want exactly `mode` (0600 for secrets).
  if (::fchmod(fd, mode) != 0) {
    int e = errno;
    ::close(fd);
    throw SystemError("chmod " + path, e);
  }
  return File(fd, path);
}

File File::OpenReadWrite(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw SystemError("open " + path, errno);
  return File(fd, path);
}

uint64_t File::Size() const {
  struct stat st;
  if (::fstat(fd_, &st) != 0) throw SystemError("stat " + path_, errno);
  return static_cast<uint64_t>(st.st_size);
}

void File::ReadAt(uint64_t offset, uint8_t* buf, size_t n) const {
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd_, buf + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw SystemError("read " + path_, errno);
    }
    if (r == 0) {
      throw Error(ErrorCode::kDataLoss, path_ + ": truncated: cannot read " +
                                            std::to_string(n) + " bytes at offset " +
                                            std::to_string(offset));
    }
    done += static_cast<size_t>(r);
  }
}

size_t File::Read(uint8_t* buf, size_t n) {
  for (;;) {
    ssize_t r = ::read(fd_, buf, n);
    if (r >= 0) return static_cast<size_t>(r);
    if (errno != EINTR) throw SystemError("read " + path_, errno);
  }
}

void File::WriteAll(const uint8_t* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd_, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw SystemError("write " + path_, errno);
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
}

void File::WriteAt(uint64_t offset, const uint8_t* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd_, data, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw SystemError("write " + path_, errno);
    }
    data += w;
    offset += static_cast<uint64_t>(w);
    n -= static_cast<size_t>(w);
  }
}

void File::Truncate(uint64_t size) {
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) throw SystemError("truncate " + path_, errno);
}

void File::Preallocate(uint64_t size) {
  int r = ::fallocate(fd_, 0, 0, static_cast<off_t>(size));
  if (r == 0) return;
  if (errno != EOPNOTSUPP && errno != ENOSYS) throw SystemError("preallocate " + path_, errno);
  Truncate(size);
}

void File::Sync() {
  if (::fsync(fd_) != 0) throw SystemError("fsync " + path_, errno);
}

void File::Close() {
  if (fd_ < 0) return;
  int fd = fd_;
  fd_ = -1;
  // close() can report a deferred write error (NFS); it must not be ignored.
  if (::close(fd) != 0) throw SystemError("close " + path_, errno);
}

bool PathExists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void MakeDirs(const std::string& path, mode_t mode) {
  if (path.empty() || IsDirectory(path)) return;
  std::string parent = ParentDir(path);
  if (parent != path) MakeDirs(parent, mode);
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) throw SystemError("mkdir " + path, errno);
  if (::chmod(path.c_str(), mode) != 0) throw SystemError("chmod " + path, errno);
}

void SyncDir(const std::string& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw SystemError("open dir " + dir, errno);
  int r = ::fsync(fd);
  int e = errno;
  ::close(fd);
  if (r != 0) throw SystemError("fsync dir " + dir, e);
}

std::string ParentDir(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t slash = p.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return p.substr(0, slash);
}

void RenameDurable(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    throw SystemError("rename " + from + " to " + to, errno);
  }
  SyncDir(ParentDir(to));
}

void RemoveAll(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

uint64_t FreeSpace(const std::string& path) {
  struct statvfs s;
  if (::statvfs(path.c_str(), &s) != 0) throw SystemError("statvfs " + path, errno);
  return static_cast<uint64_t>(s.f_bavail) * s.f_frsize;
}

std::string ReadSmallFile(const std::string& path, size_t limit) {
  File f = File::OpenRead(path);
  uint64_t size = f.Size();
  if (size > limit) {
    throw Error(ErrorCode::kInvalidArgument,
                path + ": file is " + std::to_string(size) + " bytes, expected at most " +
                    std::to_string(limit));
  }
  std::string out(size, '\0');
  if (size > 0) f.ReadAt(0, reinterpret_cast<uint8_t*>(out.data()), size);
  return out;
}

namespace {
std::mutex g_cleanup_mu;
std::set<std::string>& PendingCleanups() {
  static std::set<std::string> paths;
  return paths;
}
// Its own mutex: an action may create files (and so CleanupGuards) on its way.
std::mutex g_action_mu;
std::set<const InterruptCleanup*>& PendingActions() {
  static std::set<const InterruptCleanup*> actions;
  return actions;
}
}  // namespace

CleanupGuard::CleanupGuard(std::string path) : path_(std::move(path)) {
  std::lock_guard lock(g_cleanup_mu);
  PendingCleanups().insert(path_);
}

CleanupGuard::~CleanupGuard() {
  if (path_.empty()) return;
  RemoveAll(path_);
  Release();
}

void CleanupGuard::Release() {
  if (path_.empty()) return;
  std::lock_guard lock(g_cleanup_mu);
  PendingCleanups().erase(path_);
  path_.clear();
}

InterruptCleanup::InterruptCleanup(std::function<void()> fn) : fn_(std::move(fn)) {
  std::lock_guard lock(g_action_mu);
  PendingActions().insert(this);
}

InterruptCleanup::~InterruptCleanup() {
  std::lock_guard lock(g_action_mu);
  PendingActions().erase(this);
}

namespace {
std::recursive_mutex& CommitMutex() {
  static std::recursive_mutex* mu = new std::recursive_mutex;  // never destroyed: used at exit
  return *mu;
}
}  // namespace

CommitSection::CommitSection() { CommitMutex().lock(); }
CommitSection::~CommitSection() { CommitMutex().unlock(); }

void RemovePendingCleanups() {
  // Taken and never released: the process exits after cleaning.
  CommitMutex().lock();
  {
    std::lock_guard lock(g_cleanup_mu);
    for (const auto& p : PendingCleanups()) RemoveAll(p);
    PendingCleanups().clear();
  }
  // Last, so a repository lock outlives the temporaries of the work it guarded.
  std::lock_guard lock(g_action_mu);
  for (const InterruptCleanup* a : PendingActions()) a->fn_();
  PendingActions().clear();
}

}  // namespace etcdsafe
