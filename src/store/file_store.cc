#include "store/file_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/error.h"
#include "base/file.h"

namespace etcdsafe::store {
namespace {

class FileSink : public Sink {
 public:
  FileSink(std::string tmp, std::string final_path)
      : tmp_(std::move(tmp)), final_(std::move(final_path)), guard_(tmp_) {
    file_ = File::Create(tmp_, 0600);
  }
  void Write(const uint8_t* data, size_t n) override {
    if (closed_) throw Error(ErrorCode::kInternal, final_ + ": write after Close");
    file_.WriteAll(data, n);
  }
  void Close() override {
    if (closed_) return;
    file_.Sync();
    file_.Close();
    RenameDurable(tmp_, final_);
    guard_.Release();
    closed_ = true;
  }

 private:
  std::string tmp_, final_;
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
  explicit FileStore(std::string root) : root_(std::move(root)) {}

  std::string Describe() const override { return "file://" + root_; }

  std::unique_ptr<Sink> Create(const std::string& name) override {
    ValidateName(Describe(), name);
    std::string path = Path(name);
    MakeDirs(ParentDir(path), 0700);
    return std::make_unique<FileSink>(TempName(path), path);
  }

  std::unique_ptr<Source> Open(const std::string& name) override {
    ValidateName(Describe(), name);
    try {
      return std::make_unique<FileSource>(File::OpenRead(Path(name)));
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kNotFound) NotFound(name);
      throw;
    }
  }

  std::optional<ObjectInfo> Stat(const std::string& name) override {
    ValidateName(Describe(), name);
    struct stat st {};
    if (::stat(Path(name).c_str(), &st) != 0) {
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
    std::string dir = slash == std::string::npos ? "" : prefix.substr(0, slash + 1);
    Walk(dir, prefix, &out);
    std::sort(out.begin(), out.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.name < b.name; });
    return out;
  }

  void Remove(const std::string& name) override {
    ValidateName(Describe(), name);
    if (::unlink(Path(name).c_str()) != 0 && errno != ENOENT && errno != ENOTDIR) {
      throw SystemError("remove " + Path(name), errno);
    }
  }

 private:
  std::string Path(const std::string& name) const { return root_ + "/" + name; }

  [[noreturn]] void NotFound(const std::string& name) const {
    throw Error(ErrorCode::kNotFound, Describe() + "/" + name + ": not found");
  }

  // rel_dir: "" or "a/b/"; collects regular files whose relative name starts with prefix.
  void Walk(const std::string& rel_dir, const std::string& prefix,
            std::vector<ObjectInfo>* out) const {
    std::string abs = rel_dir.empty() ? root_ : root_ + "/" + rel_dir;
    DIR* d = ::opendir(abs.c_str());
    if (d == nullptr) {
      if (errno == ENOENT || errno == ENOTDIR) return;
      throw SystemError("list " + abs, errno);
    }
    std::vector<std::string> subdirs;
    errno = 0;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      std::string rel = rel_dir + n;
      struct stat st {};
      if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        std::string sub = rel + "/";
        // Only descend where names could still match the prefix.
        size_t k = std::min(sub.size(), prefix.size());
        if (sub.compare(0, k, prefix, 0, k) == 0) subdirs.push_back(sub);
      } else if (S_ISREG(st.st_mode) && rel.starts_with(prefix) && !IsTempName(rel)) {
        out->push_back(ObjectInfo{rel, static_cast<uint64_t>(st.st_size), st.st_mtim.tv_sec});
      }
    }
    ::closedir(d);
    for (const auto& s : subdirs) Walk(s, prefix, out);
  }

  std::string root_;
};

}  // namespace

std::unique_ptr<Store> NewFileStore(const std::string& root) {
  return std::make_unique<FileStore>(root);
}

}  // namespace etcdsafe::store
