#include "store/file_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "base/error.h"
#include "base/file.h"

namespace etcdsafe::store {
namespace {

// Owns a file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

const char* TypeName(mode_t mode) {
  if (S_ISLNK(mode)) return "symlink";
  if (S_ISFIFO(mode)) return "FIFO";
  if (S_ISSOCK(mode)) return "socket";
  if (S_ISCHR(mode)) return "character device";
  if (S_ISBLK(mode)) return "block device";
  if (S_ISDIR(mode)) return "directory";
  return "unknown file type";
}

// "a/b/c" -> {"a", "b"} and "c".
std::pair<std::string, std::string> SplitName(const std::string& name) {
  size_t slash = name.rfind('/');
  if (slash == std::string::npos) return {"", name};
  return {name.substr(0, slash), name.substr(slash + 1)};
}

// A directory below the root, opened component by component without following symlinks.
struct DirHandle {
  enum Status { kOk, kMissing, kSymlink, kNotDir };
  Status status = kMissing;
  Fd fd;
  std::string component;  // for kSymlink / kNotDir: the offending relative path
};

class FileSink : public Sink {
 public:
  // dir: the open parent directory of the object; dir_path: its path (for messages and
  // the cleanup guard); base: the object's last name component.
  FileSink(Fd dir, const std::string& dir_path, const std::string& base)
      : dir_(std::move(dir)),
        base_(base),
        tmp_base_(TempName(base)),
        tmp_path_(dir_path + "/" + tmp_base_),
        final_path_(dir_path + "/" + base),
        guard_(tmp_path_) {
    int fd = ::openat(dir_.get(), tmp_base_.c_str(),
                      O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) throw SystemError("create " + tmp_path_, errno);
    file_ = File(fd, tmp_path_);
    // The umask may have narrowed the mode; we want exactly 0600.
    if (::fchmod(fd, 0600) != 0) throw SystemError("chmod " + tmp_path_, errno);
  }
  void Write(const uint8_t* data, size_t n) override {
    if (closed_) throw Error(ErrorCode::kInternal, final_path_ + ": write after Close");
    file_.WriteAll(data, n);
  }
  void Close() override {
    if (closed_) return;
    file_.Sync();
    file_.Close();
    {
      CommitSection commit;
      // renameat never follows a symlink at the destination: it replaces the link.
      if (::renameat(dir_.get(), tmp_base_.c_str(), dir_.get(), base_.c_str()) != 0) {
        throw SystemError("rename " + tmp_path_ + " to " + final_path_, errno);
      }
      guard_.Release();
      closed_ = true;
    }
    if (::fsync(dir_.get()) != 0) {
      throw SystemError("fsync dir " + ParentDir(final_path_), errno);
    }
  }

 private:
  Fd dir_;
  std::string base_, tmp_base_, tmp_path_, final_path_;
  CleanupGuard guard_;  // removes the temp file unless committed
  File file_;
  bool closed_ = false;
};

class FileSource : public Source {
 public:
  explicit FileSource(File f) : file_(std::move(f)) {}
  size_t Read(uint8_t* buf, size_t n) override { return file_.Read(buf, n); }

 private:
  File file_;
};

class FileStore : public Store {
 public:
  FileStore(std::string root, size_t max_entries)
      : root_(std::move(root)), max_entries_(max_entries == 0 ? kMaxListEntries : max_entries) {}

  std::string Describe() const override { return "file://" + root_; }

  std::unique_ptr<Sink> Create(const std::string& name) override {
    ValidateName(Describe(), name);
    auto [dir, base] = SplitName(name);
    DirHandle d = OpenDir(dir, /*create=*/true);
    if (d.status == DirHandle::kSymlink) {
      throw Error(ErrorCode::kDataLoss, Url(name) + ": not writing through path component \"" +
                                            d.component + "\": it is a symlink");
    }
    if (d.status != DirHandle::kOk) {
      throw Error(ErrorCode::kIo, Url(name) + ": path component \"" + d.component +
                                      "\" is not a directory");
    }
    return std::make_unique<FileSink>(std::move(d.fd), DirPath(dir), base);
  }

  std::unique_ptr<Source> Open(const std::string& name) override {
    ValidateName(Describe(), name);
    auto [dir, base] = SplitName(name);
    DirHandle d = OpenDir(dir, false);
    if (d.status == DirHandle::kSymlink) {
      throw Error(ErrorCode::kDataLoss, Url(name) + ": not a regular file (path component \"" +
                                            d.component + "\" is a symlink)");
    }
    if (d.status != DirHandle::kOk) NotFound(name);
    // lstat first: a FIFO or device is never even opened.
    struct stat st {};
    if (::fstatat(d.fd.get(), base.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) NotFound(name);
      throw SystemError("stat " + Path(name), errno);
    }
    if (!S_ISREG(st.st_mode)) NotRegular(name, st.st_mode);
    Fd fd(::openat(d.fd.get(), base.c_str(),
                   O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
    if (fd.get() < 0) {
      if (errno == ENOENT) NotFound(name);
      if (errno == ELOOP) NotRegular(name, S_IFLNK);  // replaced since the lstat
      throw SystemError("open " + Path(name), errno);
    }
    // The descriptor is what we read: check it, not the name.
    if (::fstat(fd.get(), &st) != 0) throw SystemError("stat " + Path(name), errno);
    if (!S_ISREG(st.st_mode)) NotRegular(name, st.st_mode);
    int flags = ::fcntl(fd.get(), F_GETFL);
    if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
      throw SystemError("fcntl " + Path(name), errno);
    }
    return std::make_unique<FileSource>(File(fd.release(), Path(name)));
  }

  std::optional<ObjectInfo> Stat(const std::string& name) override {
    ValidateName(Describe(), name, /*allow_temp=*/true);
    auto [dir, base] = SplitName(name);
    DirHandle d = OpenDir(dir, false);
    if (d.status != DirHandle::kOk) return std::nullopt;
    struct stat st {};
    if (::fstatat(d.fd.get(), base.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
      throw SystemError("stat " + Path(name), errno);
    }
    if (!S_ISREG(st.st_mode)) return std::nullopt;
    return ObjectInfo{name, static_cast<uint64_t>(st.st_size), st.st_mtim.tv_sec};
  }

  std::vector<ObjectInfo> List(const std::string& prefix) override {
    std::vector<ObjectInfo> out;
    // Start at the deepest directory the prefix names, so listing one backup does not
    // walk the whole repository.
    size_t slash = prefix.rfind('/');
    std::string dir = slash == std::string::npos ? "" : prefix.substr(0, slash);
    if (!dir.empty() && !IsValidName(dir)) return out;  // no valid name can match
    DirHandle d = OpenDir(dir, false);
    if (d.status != DirHandle::kOk) return out;  // missing, or not ours to follow
    size_t seen = 0;
    Walk(std::move(d.fd), dir.empty() ? "" : dir + "/", prefix, &out, &seen);
    Sort(&out);
    return out;
  }

  std::vector<ObjectInfo> ListDir(const std::string& dir, bool include_temp) override {
    ValidateDir(Describe(), dir);
    std::vector<ObjectInfo> out;
    std::string d_name = dir.empty() ? "" : dir.substr(0, dir.size() - 1);
    DirHandle d = OpenDir(d_name, false);
    if (d.status == DirHandle::kSymlink) {
      throw Error(ErrorCode::kDataLoss, Url(dir) + ": not listing through path component \"" +
                                            d.component + "\": it is a symlink");
    }
    if (d.status != DirHandle::kOk) return out;
    size_t seen = 0;
    ReadDir(std::move(d.fd), dir, &seen, [&](int dfd, const std::string& rel, const char* n) {
      struct stat st {};
      if (::fstatat(dfd, n, &st, AT_SYMLINK_NOFOLLOW) != 0) return;
      if (!S_ISREG(st.st_mode) || !IsValidName(rel, /*allow_temp=*/true)) return;
      if (!include_temp && IsTempName(rel)) return;
      out.push_back(ObjectInfo{rel, static_cast<uint64_t>(st.st_size), st.st_mtim.tv_sec});
    });
    Sort(&out);
    return out;
  }

  void Remove(const std::string& name) override {
    ValidateName(Describe(), name, /*allow_temp=*/true);
    auto [dir, base] = SplitName(name);
    DirHandle d = OpenDir(dir, false);
    if (d.status == DirHandle::kSymlink) {
      throw Error(ErrorCode::kDataLoss, Url(name) + ": not removed: path component \"" +
                                            d.component + "\" is a symlink");
    }
    if (d.status != DirHandle::kOk) return;
    struct stat st {};
    if (::fstatat(d.fd.get(), base.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return;
      throw SystemError("stat " + Path(name), errno);
    }
    if (!S_ISREG(st.st_mode)) {
      throw Error(ErrorCode::kDataLoss, Url(name) + ": not removed: not a regular file (" +
                                            TypeName(st.st_mode) + ")");
    }
    // unlinkat never follows a symlink: at worst (replaced since the lstat) the link goes.
    if (::unlinkat(d.fd.get(), base.c_str(), 0) != 0 && errno != ENOENT) {
      throw SystemError("remove " + Path(name), errno);
    }
  }

 private:
  std::string Path(const std::string& name) const { return root_ + "/" + name; }
  std::string DirPath(const std::string& dir) const {
    return dir.empty() ? root_ : root_ + "/" + dir;
  }
  std::string Url(const std::string& name) const { return Describe() + "/" + name; }

  [[noreturn]] void NotFound(const std::string& name) const {
    throw Error(ErrorCode::kNotFound, Url(name) + ": not found");
  }
  [[noreturn]] void NotRegular(const std::string& name, mode_t mode) const {
    throw Error(ErrorCode::kDataLoss,
                Url(name) + ": not a regular file (" + TypeName(mode) + ")");
  }

  static void Sort(std::vector<ObjectInfo>* v) {
    std::sort(v->begin(), v->end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.name < b.name; });
  }

  // Opens `dir` ("" = the root, else "a/b": valid name segments) below the root. The
  // root is opened as given (it may be a symlink); every component below it with
  // O_NOFOLLOW. With `create`, missing directories are made with mode 0700.
  DirHandle OpenDir(const std::string& dir, bool create) const {
    DirHandle h;
    int root = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0 && errno == ENOENT && create) {
      MakeDirs(root_, 0700);
      root = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (root < 0) {
      if (errno == ENOENT) return h;
      if (errno == ENOTDIR) {
        h.status = DirHandle::kNotDir;
        h.component = root_;
        return h;
      }
      throw SystemError("open " + root_, errno);
    }
    Fd cur(root);
    size_t start = 0;
    while (start < dir.size()) {
      size_t end = dir.find('/', start);
      if (end == std::string::npos) end = dir.size();
      const std::string seg = dir.substr(start, end - start);
      const std::string rel = dir.substr(0, end);
      bool made = false;
      int next = ::openat(cur.get(), seg.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (next < 0 && errno == ENOENT && create) {
        if (::mkdirat(cur.get(), seg.c_str(), 0700) != 0 && errno != EEXIST) {
          throw SystemError("mkdir " + DirPath(rel), errno);
        }
        made = true;
        next = ::openat(cur.get(), seg.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      }
      if (next < 0) {
        int e = errno;
        struct stat st {};
        if (::fstatat(cur.get(), seg.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
          if (errno == ENOENT) return h;
          throw SystemError("stat " + DirPath(rel), errno);
        }
        h.component = rel;
        if (S_ISLNK(st.st_mode)) {
          h.status = DirHandle::kSymlink;
        } else if (!S_ISDIR(st.st_mode)) {
          h.status = DirHandle::kNotDir;
        } else {
          throw SystemError("open " + DirPath(rel), e);
        }
        return h;
      }
      cur = Fd(next);
      // The umask may have narrowed the mode; we want exactly 0700 on what we made.
      if (made && ::fchmod(cur.get(), 0700) != 0) throw SystemError("chmod " + DirPath(rel), errno);
      start = end + 1;
    }
    h.status = DirHandle::kOk;
    h.fd = std::move(cur);
    return h;
  }

  [[noreturn]] void TooMany(const std::string& dir) const {
    throw Error(ErrorCode::kDataLoss,
                Describe() + (dir.empty() ? "" : "/" + dir) + ": more than " +
                    std::to_string(max_entries_) +
                    " entries; refusing an unbounded listing of the repository");
  }

  // Calls fn(dirfd, rel_dir + entry, entry) for every entry of the open directory `dir`
  // (but "." and ".."), counting them in *seen against the bound.
  template <typename Fn>
  void ReadDir(Fd dir, const std::string& rel_dir, size_t* seen, Fn&& fn) const {
    DIR* d = ::fdopendir(dir.get());
    if (d == nullptr) throw SystemError("list " + DirPath(rel_dir), errno);
    dir.release();
    struct Closer {
      DIR* d;
      ~Closer() { ::closedir(d); }
    } closer{d};
    for (;;) {
      errno = 0;
      dirent* e = ::readdir(d);
      if (e == nullptr) {
        if (errno != 0) throw SystemError("list " + DirPath(rel_dir), errno);
        break;
      }
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      if (++*seen > max_entries_) TooMany(rel_dir);
      fn(::dirfd(d), rel_dir + e->d_name, e->d_name);
    }
  }

  // rel_dir: "" or "a/b/"; collects regular files whose relative name starts with
  // prefix, descending only into real directories (never symlinks).
  void Walk(Fd dir, const std::string& rel_dir, const std::string& prefix,
            std::vector<ObjectInfo>* out, size_t* seen) const {
    // Subdirectories are opened one at a time after this one is read: never one
    // descriptor per subdirectory at once, only one per level.
    Fd self(::fcntl(dir.get(), F_DUPFD_CLOEXEC, 0));
    if (self.get() < 0) throw SystemError("list " + DirPath(rel_dir), errno);
    std::vector<std::string> subdirs;
    ReadDir(std::move(dir), rel_dir, seen, [&](int dfd, const std::string& rel, const char* n) {
      struct stat st {};
      if (::fstatat(dfd, n, &st, AT_SYMLINK_NOFOLLOW) != 0) return;
      if (!IsValidName(rel, /*allow_temp=*/true)) return;
      if (S_ISDIR(st.st_mode)) {
        std::string sub = rel + "/";
        // Only descend where names could still match the prefix.
        size_t k = std::min(sub.size(), prefix.size());
        if (sub.compare(0, k, prefix, 0, k) == 0) subdirs.push_back(n);
      } else if (S_ISREG(st.st_mode) && rel.starts_with(prefix) && !IsTempName(rel)) {
        out->push_back(ObjectInfo{rel, static_cast<uint64_t>(st.st_size), st.st_mtim.tv_sec});
      }
    });
    for (const auto& n : subdirs) {
      int fd = ::openat(self.get(), n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd >= 0) Walk(Fd(fd), rel_dir + n + "/", prefix, out, seen);
    }
  }

  std::string root_;
  size_t max_entries_;
};

}  // namespace

std::unique_ptr<Store> NewFileStore(const std::string& root, const StoreOptions& options) {
  return std::make_unique<FileStore>(root, options.max_list_entries);
}

}  // namespace etcdsafe::store
