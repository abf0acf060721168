#include "base/file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <thread>

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
  int fd;
  {
    CommitSection section;  // no path appears behind an interrupt cleanup's back
    fd = ::open(path.c_str(), flags, mode);
  }
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

std::string TempDirOr(const std::string& dir) {
  if (!dir.empty()) return dir;
  const char* t = std::getenv("TMPDIR");
  return t != nullptr && *t != '\0' ? t : "/tmp";
}

File OpenUnnamedTemp(const std::string& dir_or_empty, const std::string& what) {
  const std::string dir = TempDirOr(dir_or_empty);
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
    std::string tmpl = dir + "/.etcdsafe-tmp-XXXXXX";
    fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
    if (fd >= 0) ::unlink(tmpl.c_str());
  }
  if (fd < 0) throw SystemError("create a temporary file in " + dir, errno);
  return File(fd, dir + " (" + what + ")");
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
  // Held across the whole chain: after an interrupt cleanup removed a temporary
  // directory, this must not create it again as the parent of something.
  CommitSection section;
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
  CommitSection section;  // never moves entries while an interrupt cleanup walks them
  if (::rename(from.c_str(), to.c_str()) != 0) {
    throw SystemError("rename " + from + " to " + to, errno);
  }
  SyncDir(ParentDir(to));
}

namespace {

// rm -rf of `name` relative to `parent_fd`, never following a symlink; ENOENT anywhere
// (someone else removed it first) is fine.
void RemoveTreeAt(int parent_fd, const char* name, int depth) {
  if (::unlinkat(parent_fd, name, 0) == 0 || errno == ENOENT) return;
  if (errno != EISDIR || depth > 512) return;
  int fd = ::openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) {
    if (DIR* d = ::fdopendir(fd)) {
      std::vector<std::string> names;
      while (dirent* e = ::readdir(d)) {
        if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.emplace_back(e->d_name);
      }
      for (const auto& n : names) RemoveTreeAt(::dirfd(d), n.c_str(), depth + 1);
      ::closedir(d);
    } else {
      ::close(fd);
    }
  }
  ::unlinkat(parent_fd, name, AT_REMOVEDIR);
}

}  // namespace

void RemoveAll(const std::string& path) {
  if (path.empty()) return;
  CommitSection section;  // one remover at a time; none after an interrupt cleanup began
  RemoveTreeAt(AT_FDCWD, path.c_str(), 0);
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
// Never destroyed (like the commit mutex): the interrupt cleanup may still use them while
// another thread runs static destructors.
std::mutex& CleanupMutex() {
  static std::mutex* mu = new std::mutex;
  return *mu;
}
std::set<std::string>& PendingCleanups() {
  static std::set<std::string>* paths = new std::set<std::string>;
  return *paths;
}
// Its own mutex: an action may create files (and so CleanupGuards) on its way.
std::mutex& ActionMutex() {
  static std::mutex* mu = new std::mutex;
  return *mu;
}
std::set<const InterruptCleanup*>& PendingActions() {
  static std::set<const InterruptCleanup*>* actions = new std::set<const InterruptCleanup*>;
  return *actions;
}
std::recursive_mutex& CommitMutex() {
  static std::recursive_mutex* mu = new std::recursive_mutex;  // never destroyed: used at exit
  return *mu;
}
}  // namespace

CleanupGuard::CleanupGuard(std::string path) : path_(std::move(path)) {
  // Lock order everywhere: the commit lock, then the cleanup list's.
  CommitSection section;
  std::lock_guard lock(CleanupMutex());
  PendingCleanups().insert(path_);
}

CleanupGuard::~CleanupGuard() {
  if (path_.empty()) return;
  RemoveAll(path_);
  Release();
}

void CleanupGuard::Release() {
  if (path_.empty()) return;
  std::lock_guard lock(CleanupMutex());
  PendingCleanups().erase(path_);
  path_.clear();
}

InterruptCleanup::InterruptCleanup(std::function<void()> fn) : fn_(std::move(fn)) {
  std::lock_guard lock(ActionMutex());
  PendingActions().insert(this);
}

InterruptCleanup::~InterruptCleanup() {
  std::lock_guard lock(ActionMutex());
  PendingActions().erase(this);
}

CommitSection::CommitSection() { CommitMutex().lock(); }
CommitSection::~CommitSection() { CommitMutex().unlock(); }

size_t RemovePendingCleanups() {
  // Taken and never released: the process exits after cleaning. Every helper that
  // creates, renames or removes a path takes it too, so from here on the other threads
  // stop at their next such step and nothing moves while the paths are removed.
  CommitMutex().lock();
  size_t done = 0;
  {
    std::lock_guard lock(CleanupMutex());
    for (const auto& p : PendingCleanups()) {
      if (PathExists(p)) done++;
      RemoveAll(p);
    }
    PendingCleanups().clear();
  }
  // Last, so a repository lock outlives the temporaries of the work it guarded.
  std::lock_guard lock(ActionMutex());
  for (const InterruptCleanup* a : PendingActions()) {
    a->fn_();
    done++;
  }
  PendingActions().clear();
  return done;
}

namespace {

constexpr char kTempChars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
constexpr size_t kTempRandom = 6;

std::string RandomTempChars() {
  uint8_t raw[kTempRandom];
  size_t got = 0;
  while (got < sizeof raw) {
    ssize_t r = ::getrandom(raw + got, sizeof raw - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw SystemError("getrandom", errno);
    }
    got += static_cast<size_t>(r);
  }
  std::string out;
  for (uint8_t b : raw) out.push_back(kTempChars[b % (sizeof kTempChars - 1)]);
  return out;
}

bool IsTempName(const std::string& name, const std::string& prefix, const std::string& suffix) {
  if (name.size() != prefix.size() + kTempRandom + suffix.size()) return false;
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  if (name.compare(prefix.size() + kTempRandom, suffix.size(), suffix) != 0) return false;
  for (size_t i = prefix.size(); i < prefix.size() + kTempRandom; i++) {
    char c = name[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

// True when `path` (not followed) is the object open as `fd`.
bool SameObject(int fd, const std::string& path) {
  struct stat a, b;
  return ::fstat(fd, &a) == 0 && ::lstat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

}  // namespace

LockedTemp::LockedTemp(const std::string& dir, const std::string& prefix, const std::string& suffix, Kind kind,
                       mode_t mode) {
  for (int attempt = 0;; attempt++) {
    const std::string name = (dir.empty() ? std::string(".") : dir) + "/" + prefix + RandomTempChars() + suffix;
    // Creation, guard and lock form one step for the interrupt cleanup.
    CommitSection section;
    int fd = -1;
    int err = 0;
    if (kind == Kind::kFile) {
      fd = ::open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
      err = errno;
    } else if (::mkdir(name.c_str(), mode) == 0) {
      guard_.emplace(name);
      fd = ::open(name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      err = errno;
    } else {
      err = errno;
    }
    if (fd < 0) {
      guard_.reset();
      if (err == EEXIST && attempt < 100) continue;
      throw SystemError((kind == Kind::kFile ? "create " : "mkdir ") + name, err);
    }
    if (!guard_) guard_.emplace(name);
    // The umask may have narrowed the mode (0600/0700 for secrets).
    if (::fchmod(fd, mode) != 0) {
      err = errno;
      ::close(fd);
      guard_.reset();
      throw SystemError("chmod " + name, err);
    }
    // Another run's RemoveStaleTemps may have locked (and removed) it between our create
    // and our lock: then it is not ours any more, and we take a new name.
    // (A filesystem without flock, ENOLCK, keeps the temporary unlocked: never swept.)
    bool lost = ::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    if (lost || !SameObject(fd, name)) {
      ::close(fd);
      guard_->Release();
      guard_.reset();
      if (attempt < 100) continue;
      throw Error(ErrorCode::kIo, "cannot create a temporary next to " + name);
    }
    path_ = name;
    lock_fd_ = fd;
    return;
  }
}

LockedTemp::~LockedTemp() {
  guard_.reset();  // removed (unless committed) before the lock is released
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

File LockedTemp::OpenForWrite() const {
  int fd = ::fcntl(lock_fd_, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) throw SystemError("dup " + path_, errno);
  return File(fd, path_);
}

void LockedTemp::CommitTo(const std::string& final_path) {
  CommitSection section;
  if (!guard_ || !SameObject(lock_fd_, path_)) {
    throw Error(ErrorCode::kDataLoss, path_ + ": the temporary was removed or replaced by someone else; " +
                                          final_path + " left as it was");
  }
  RenameDurable(path_, final_path);
  guard_->Release();
}

std::vector<std::string> RemoveStaleTemps(const std::string& dir, const std::string& prefix,
                                          const std::string& suffix) {
  std::vector<std::string> removed;
  const std::string d = dir.empty() ? "." : dir;
  std::vector<std::string> names;
  if (DIR* h = ::opendir(d.c_str())) {
    while (dirent* e = ::readdir(h)) {
      if (IsTempName(e->d_name, prefix, suffix)) names.emplace_back(e->d_name);
    }
    ::closedir(h);
  }
  for (const auto& n : names) {
    const std::string path = d + "/" + n;
    // O_NONBLOCK: a FIFO under such a name must not hang us (it is skipped below).
    int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st;
    bool stale = ::fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) &&
                 ::flock(fd, LOCK_EX | LOCK_NB) == 0 && SameObject(fd, path);
    // Removed while we hold its lock: its owner, were it alive, could not be using it.
    if (stale) {
      RemoveAll(path);
      removed.push_back(path);
    }
    ::close(fd);
  }
  return removed;
}

std::string BaseName(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

void TestPause(const char* point) {
  const char* spec = std::getenv("ETCDSAFE_TEST_PAUSE");
  if (spec == nullptr) return;
  std::string s = spec;
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || s.compare(0, colon, point) != 0) return;
  std::this_thread::sleep_for(std::chrono::milliseconds(std::atol(s.c_str() + colon + 1)));
}

struct ScratchDir::State {
  std::mutex mu;
  std::string dir;
};

ScratchDir::ScratchDir(const std::string& prefix) : state_(std::make_shared<State>()) {
  std::shared_ptr<State> s = state_;
  cleanup_ = std::make_unique<InterruptCleanup>([s] {
    std::lock_guard lock(s->mu);
    if (!s->dir.empty()) RemoveAll(s->dir);
    s->dir.clear();
  });
  const std::string base = TempDirOr("");
  std::string templ = base + "/" + prefix + "-XXXXXX";
  CommitSection section;  // an interrupt that began already stops us here
  if (::mkdtemp(templ.data()) == nullptr) throw SystemError("create a scratch directory in " + base, errno);
  std::lock_guard lock(state_->mu);
  state_->dir = templ;
}

ScratchDir::~ScratchDir() {
  CommitSection section;
  std::lock_guard lock(state_->mu);
  if (!state_->dir.empty()) RemoveAll(state_->dir);
  state_->dir.clear();
}

std::string ScratchDir::path() const {
  std::lock_guard lock(state_->mu);
  return state_->dir;
}

}  // namespace etcdsafe
