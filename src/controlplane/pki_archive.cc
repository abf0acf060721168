#include "controlplane/pki_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <openssl/crypto.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "backup/layout.h"
#include "base/file.h"

namespace etcdsafe::controlplane {
namespace {

struct DirCloser {
  void operator()(DIR* d) const { closedir(d); }
};

constexpr size_t kMaxEntries = 10000;
constexpr size_t kMaxEntryBytes = 16 << 20;
constexpr size_t kMaxPath = 4096;
constexpr int kMaxDepth = 16;
constexpr char kKubernetes[] = "kubernetes";
constexpr char kRoot[] = "root";

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<std::string> Split(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t slash = path.find('/', start);
    out.push_back(path.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return out;
}

// "/a/b/" -> "/a/b"; must be absolute.
std::string CleanHostPath(const std::string& p, const char* what) {
  if (p.empty() || p[0] != '/') throw Error(ErrorCode::kInvalidArgument, std::string(what) + " " + p + " is not an absolute path");
  std::string out = p;
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  for (const auto& c : Split(out.substr(1))) {
    if (c == ".." || c == "." || (c.empty() && out != "/")) {
      throw Error(ErrorCode::kInvalidArgument, std::string(what) + " " + p + " is not a clean absolute path");
    }
  }
  return out;
}

// A link target, resolved lexically from the link's directory (components below the
// area's top), stays inside the area.
bool LinkStaysInside(const std::vector<std::string>& link_dir, const std::string& target) {
  if (target.empty() || target[0] == '/' || target.size() > kMaxPath) return false;
  std::vector<std::string> at = link_dir;
  for (const auto& c : Split(target)) {
    if (c.empty() || c == ".") continue;
    if (c == "..") {
      if (at.empty()) return false;
      at.pop_back();
    } else {
      at.push_back(c);
    }
  }
  return true;
}

std::string UserName(uid_t uid) {
  struct passwd pw {};
  struct passwd* out = nullptr;
  char buf[4096];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &out) == 0 && out != nullptr) return out->pw_name;
  return "";
}
std::string GroupName(gid_t gid) {
  struct group gr {};
  struct group* out = nullptr;
  char buf[4096];
  if (getgrgid_r(gid, &gr, buf, sizeof buf, &out) == 0 && out != nullptr) return out->gr_name;
  return "";
}

class Collector {
 public:
  Collector(std::vector<std::string>* notes) : notes_(notes) {}

  // `fs`: the path on disk; `name`: its archive name; `area_dir`: the components of its
  // directory below the area's top (for link checks).
  void Add(const std::string& fs, const std::string& name, const std::vector<std::string>& area_dir, bool recurse,
           int depth = 0) {
    if (!seen_.insert(name).second) return;
    struct stat st {};
    if (lstat(fs.c_str(), &st) != 0) throw SystemError("stat " + fs, errno);
    ArchiveEntry e;
    e.path = name;
    e.source = fs;
    e.mode = st.st_mode & 07777;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.uname = UserName(st.st_uid);
    e.gname = GroupName(st.st_gid);
    e.mtime_sec = st.st_mtim.tv_sec;
    e.mtime_nsec = st.st_mtim.tv_nsec;
    if (S_ISLNK(st.st_mode)) {
      char buf[kMaxPath + 1];
      ssize_t n = readlink(fs.c_str(), buf, sizeof buf);
      if (n < 0) throw SystemError("readlink " + fs, errno);
      e.type = ArchiveEntry::Type::kSymlink;
      e.data.assign(buf, static_cast<size_t>(n));
      if (static_cast<size_t>(n) > kMaxPath || !LinkStaysInside(area_dir, e.data)) {
        notes_->push_back("skipped symlink " + fs + " -> " + backup::EscapeForTerminal(e.data) +
                          ": its target is outside the archived tree (links are never followed)");
        return;
      }
    } else if (S_ISDIR(st.st_mode)) {
      e.type = ArchiveEntry::Type::kDir;
    } else if (S_ISREG(st.st_mode)) {
      e.type = ArchiveEntry::Type::kFile;
      ReadBounded(fs, &e.data);
    } else {
      notes_->push_back("skipped " + fs + ": not a regular file, directory or symlink");
      return;
    }
    Push(std::move(e));
    if (S_ISDIR(st.st_mode) && recurse) {
      if (depth >= kMaxDepth) throw Error(ErrorCode::kInvalidArgument, fs + ": nested deeper than 16 directories");
      std::vector<std::string> sub = area_dir;
      sub.push_back(Split(name).back());
      for (const auto& n : List(fs)) Add(fs + "/" + n, name + "/" + n, sub, true, depth + 1);
    }
  }

  static std::vector<std::string> List(const std::string& dir) {
    std::unique_ptr<DIR, DirCloser> d(opendir(dir.c_str()));
    if (!d) throw SystemError("open directory " + dir, errno);
    std::vector<std::string> names;
    while (dirent* e = readdir(d.get())) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  std::vector<ArchiveEntry> Take() { return std::move(entries_); }

 private:
  void ReadBounded(const std::string& path, std::string* out) {
    int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) throw SystemError("open " + path, errno);
    File f(fd, path);
    if (f.Size() > kMaxEntryBytes) {
      throw Error(ErrorCode::kInvalidArgument, path + ": larger than 16 MiB; not a certificate or configuration file");
    }
    uint8_t buf[65536];
    for (size_t n; (n = f.Read(buf, sizeof buf)) > 0;) {
      out->append(reinterpret_cast<const char*>(buf), n);
      if (out->size() > kMaxEntryBytes) throw Error(ErrorCode::kInvalidArgument, path + ": grew past 16 MiB while read");
    }
  }
  void Push(ArchiveEntry e) {
    total_ += e.data.size() + 1024;
    if (entries_.size() >= kMaxEntries) throw Error(ErrorCode::kInvalidArgument, "more than 10000 files to archive");
    if (total_ > backup::kMaxPkiArchiveBytes) {
      throw Error(ErrorCode::kInvalidArgument, "the files to archive exceed " +
                                                   std::to_string(backup::kMaxPkiArchiveBytes >> 20) + " MiB");
    }
    entries_.push_back(std::move(e));
  }

  std::vector<std::string>* notes_;
  std::set<std::string> seen_;
  std::vector<ArchiveEntry> entries_;
  uint64_t total_ = 0;
};

[[noreturn]] void Hostile(const std::string& what, const std::string& why) {
  throw Error(ErrorCode::kDataLoss, what + ": hostile or damaged pki archive: " + why);
}

struct ArchiveFree {
  void operator()(archive* a) const { archive_read_free(a); }
};

// Area of an archive name and the components below its top.
struct AreaPath {
  std::string area;  // kubernetes | root
  std::vector<std::string> rest;
};

AreaPath SplitArea(const std::string& path) {
  std::vector<std::string> c = Split(path);
  AreaPath a;
  a.area = c.front();
  a.rest.assign(c.begin() + 1, c.end());
  return a;
}

std::string Join(const std::vector<std::string>& parts, size_t n) {
  std::string out;
  for (size_t i = 0; i < n && i < parts.size(); i++) out += (i ? "/" : "") + parts[i];
  return out;
}

}  // namespace

bool HoldsPrivateKey(const ArchiveEntry& e) {
  if (e.type != ArchiveEntry::Type::kFile) return false;
  return EndsWith(e.path, ".key") || e.data.find("PRIVATE KEY-----") != std::string::npos ||
         e.data.find("client-key-data") != std::string::npos;
}

std::vector<ArchiveEntry> CollectPkiEntries(const PkiPaths& paths, std::vector<std::string>* notes) {
  std::vector<std::string> scratch;
  if (notes == nullptr) notes = &scratch;
  const std::string kdir = CleanHostPath(paths.kubernetes_dir, "--kubernetes-dir");
  const std::string kfs = paths.Fs(kdir);
  struct stat st {};
  if (lstat(kfs.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw Error(ErrorCode::kNotFound, kfs + ": not a directory (give --kubernetes-dir)");
  }
  Collector c(notes);
  c.Add(kfs, kKubernetes, {}, false);
  for (const auto& n : Collector::List(kfs)) {
    const std::string fs = kfs + "/" + n;
    if (lstat(fs.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      if (n == "pki") c.Add(fs, std::string(kKubernetes) + "/" + n, {}, true);
      if (n == "manifests") {
        c.Add(fs, std::string(kKubernetes) + "/manifests", {}, false);
        for (const auto& m : Collector::List(fs)) {
          struct stat ms {};
          if (lstat((fs + "/" + m).c_str(), &ms) == 0 && !S_ISDIR(ms.st_mode)) {
            c.Add(fs + "/" + m, std::string(kKubernetes) + "/manifests/" + m, {"manifests"}, false);
          }
        }
      }
      continue;
    }
    if (EndsWith(n, ".conf") || EndsWith(n, ".yaml") || EndsWith(n, ".yml")) {
      c.Add(fs, std::string(kKubernetes) + "/" + n, {}, false);
    }
  }
  auto add_host = [&](const std::string& host, bool must_exist, const char* what) {
    const std::string clean = CleanHostPath(host, what);
    const std::string fs = paths.Fs(clean);
    if (lstat(fs.c_str(), &st) != 0) {
      if (must_exist) throw Error(ErrorCode::kNotFound, std::string(what) + " " + fs + ": no such file or directory");
      return;
    }
    if (clean == kdir) return;
    if (clean.rfind(kdir + "/", 0) == 0) {
      const std::string rel = clean.substr(kdir.size() + 1);
      std::vector<std::string> parts = Split(rel);
      parts.pop_back();
      c.Add(fs, std::string(kKubernetes) + "/" + rel, parts, true);
      return;
    }
    if (clean == "/") throw Error(ErrorCode::kInvalidArgument, "--extra / would archive the whole host");
    std::vector<std::string> parts = Split(clean.substr(1));
    parts.pop_back();
    c.Add(fs, std::string(kRoot) + clean, parts, true);
  };
  if (!paths.kubelet_config.empty()) add_host(paths.kubelet_config, false, "kubelet config");
  for (const auto& x : paths.extra) add_host(x, true, "--extra");
  return c.Take();
}

std::string WriteTar(const std::vector<ArchiveEntry>& entries) {
  std::string out;
  std::unique_ptr<archive, decltype(&archive_write_free)> a(archive_write_new(), archive_write_free);
  auto fail = [&](const char* step) {
    const char* msg = archive_error_string(a.get());
    throw Error(ErrorCode::kInternal, std::string("writing the pki archive: ") + step + ": " + (msg ? msg : "?"));
  };
  // Full pax (not pax_restricted): mtimes keep their nanoseconds.
  if (archive_write_set_format_pax(a.get()) != ARCHIVE_OK) fail("format");
  if (archive_write_set_bytes_in_last_block(a.get(), 1) != ARCHIVE_OK) fail("block");
  auto write_cb = [](archive*, void* client, const void* buf, size_t n) -> la_ssize_t {
    static_cast<std::string*>(client)->append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
  };
  if (archive_write_open(a.get(), &out, nullptr, write_cb, nullptr) != ARCHIVE_OK) fail("open");
  for (const auto& e : entries) {
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> ae(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(ae.get(), e.path.c_str());
    archive_entry_set_perm(ae.get(), e.mode & 07777);
    archive_entry_set_uid(ae.get(), e.uid);
    archive_entry_set_gid(ae.get(), e.gid);
    if (!e.uname.empty()) archive_entry_set_uname(ae.get(), e.uname.c_str());
    if (!e.gname.empty()) archive_entry_set_gname(ae.get(), e.gname.c_str());
    archive_entry_set_mtime(ae.get(), e.mtime_sec, e.mtime_nsec);
    switch (e.type) {
      case ArchiveEntry::Type::kFile:
        archive_entry_set_filetype(ae.get(), AE_IFREG);
        archive_entry_set_size(ae.get(), static_cast<la_int64_t>(e.data.size()));
        break;
      case ArchiveEntry::Type::kDir:
        archive_entry_set_filetype(ae.get(), AE_IFDIR);
        archive_entry_set_size(ae.get(), 0);
        break;
      case ArchiveEntry::Type::kSymlink:
        archive_entry_set_filetype(ae.get(), AE_IFLNK);
        archive_entry_set_symlink(ae.get(), e.data.c_str());
        archive_entry_set_size(ae.get(), 0);
        break;
    }
    if (archive_write_header(a.get(), ae.get()) != ARCHIVE_OK) fail(e.path.c_str());
    if (e.type == ArchiveEntry::Type::kFile && !e.data.empty()) {
      if (archive_write_data(a.get(), e.data.data(), e.data.size()) != static_cast<la_ssize_t>(e.data.size())) {
        fail(e.path.c_str());
      }
    }
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) fail("close");
  return out;
}

std::vector<ArchiveEntry> ReadTar(const std::string& tar, const std::string& what) {
  if (tar.size() > backup::kMaxPkiArchiveBytes) Hostile(what, "larger than the pki archive limit");
  std::unique_ptr<archive, ArchiveFree> a(archive_read_new());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_memory(a.get(), tar.data(), tar.size()) != ARCHIVE_OK) {
    Hostile(what, std::string("not a tar archive: ") + (archive_error_string(a.get()) ?: "?"));
  }
  std::vector<ArchiveEntry> out;
  std::map<std::string, ArchiveEntry::Type> types;
  uint64_t total = 0;
  for (;;) {
    archive_entry* ae = nullptr;
    int r = archive_read_next_header(a.get(), &ae);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK) Hostile(what, std::string("bad entry header: ") + (archive_error_string(a.get()) ?: "?"));
    if (out.size() >= kMaxEntries) Hostile(what, "more than 10000 entries");
    ArchiveEntry e;
    const char* name = archive_entry_pathname(ae);
    e.path = name != nullptr ? name : "";
    const std::string shown = backup::EscapeForTerminal(e.path);
    if (e.path.size() > kMaxPath) Hostile(what, "a name longer than 4096 bytes");
    if (shown != e.path) Hostile(what, "entry \"" + shown + "\": control, backslash or non-UTF-8 bytes in its name");
    const mode_t type = archive_entry_filetype(ae);
    if (archive_entry_hardlink(ae) != nullptr) Hostile(what, "entry \"" + shown + "\" is a hard link");
    if (type == AE_IFDIR && e.path.size() > 1 && e.path.back() == '/') e.path.pop_back();
    std::vector<std::string> parts = Split(e.path);
    for (const auto& p : parts) {
      if (p.empty() || p == "." || p == "..") Hostile(what, "entry \"" + shown + "\": absolute, empty, \".\" or \"..\" path component");
    }
    if (parts.front() != kKubernetes && parts.front() != kRoot) {
      Hostile(what, "entry \"" + shown + "\" is neither under kubernetes/ nor root/");
    }
    if (parts.front() == kRoot && parts.size() < 2) Hostile(what, "entry \"root\" itself");
    if (type == AE_IFREG) {
      e.type = ArchiveEntry::Type::kFile;
    } else if (type == AE_IFDIR) {
      e.type = ArchiveEntry::Type::kDir;
    } else if (type == AE_IFLNK) {
      e.type = ArchiveEntry::Type::kSymlink;
    } else {
      Hostile(what, "entry \"" + shown + "\" is not a file, directory or symlink");
    }
    if (parts.size() == 1 && e.type != ArchiveEntry::Type::kDir) Hostile(what, "entry \"kubernetes\" is not a directory");
    if (!types.emplace(e.path, e.type).second) Hostile(what, "entry \"" + shown + "\" appears twice");
    e.mode = archive_entry_perm(ae) & 07777;
    e.uid = archive_entry_uid(ae);
    e.gid = archive_entry_gid(ae);
    if (e.uid < 0 || e.gid < 0 || e.uid > 0xfffffffe || e.gid > 0xfffffffe) Hostile(what, "entry \"" + shown + "\": bad owner");
    const char* un = archive_entry_uname(ae);
    const char* gn = archive_entry_gname(ae);
    e.uname = un != nullptr ? un : "";
    e.gname = gn != nullptr ? gn : "";
    if (backup::EscapeForTerminal(e.uname) != e.uname || backup::EscapeForTerminal(e.gname) != e.gname ||
        e.uname.size() > 256 || e.gname.size() > 256) {
      Hostile(what, "entry \"" + shown + "\": bad owner name");
    }
    e.mtime_sec = archive_entry_mtime(ae);
    e.mtime_nsec = archive_entry_mtime_nsec(ae);
    if (e.mtime_nsec < 0 || e.mtime_nsec > 999999999) e.mtime_nsec = 0;
    if (e.type == ArchiveEntry::Type::kSymlink) {
      const char* target = archive_entry_symlink(ae);
      e.data = target != nullptr ? target : "";
      std::vector<std::string> dir(parts.begin() + 1, parts.end() - 1);
      if (backup::EscapeForTerminal(e.data) != e.data || !LinkStaysInside(dir, e.data)) {
        Hostile(what, "symlink \"" + shown + "\" points outside its tree");
      }
    } else if (e.type == ArchiveEntry::Type::kFile) {
      la_int64_t size = archive_entry_size(ae);
      if (size < 0 || static_cast<uint64_t>(size) > kMaxEntryBytes) Hostile(what, "entry \"" + shown + "\" is over 16 MiB");
      total += static_cast<uint64_t>(size);
      if (total > backup::kMaxPkiArchiveBytes) Hostile(what, "entries larger than the pki archive limit");
      e.data.resize(static_cast<size_t>(size));
      size_t got = 0;
      while (got < e.data.size()) {
        la_ssize_t n = archive_read_data(a.get(), e.data.data() + got, e.data.size() - got);
        if (n < 0) Hostile(what, "entry \"" + shown + "\": " + (archive_error_string(a.get()) ?: "read error"));
        if (n == 0) Hostile(what, "entry \"" + shown + "\" is truncated");
        got += static_cast<size_t>(n);
      }
    }
    out.push_back(std::move(e));
  }
  // Nothing below a symlink or a file: a later entry must never be written through a link.
  for (const auto& e : out) {
    std::vector<std::string> parts = Split(e.path);
    for (size_t n = 1; n < parts.size(); n++) {
      auto it = types.find(Join(parts, n));
      if (it != types.end() && it->second != ArchiveEntry::Type::kDir) {
        Hostile(what, "entry \"" + e.path + "\" lies below a symlink or file");
      }
    }
  }
  return out;
}

void CheckPkiArchive(const backup::Manifest& m, const std::string& tar) {
  std::vector<ArchiveEntry> entries = ReadTar(tar, m.id);
  if (entries.size() != m.total_keys) {
    throw Error(ErrorCode::kDataLoss, m.id + ": the archive holds " + std::to_string(entries.size()) +
                                          " entries, the manifest says " + std::to_string(m.total_keys));
  }
  for (auto& e : entries) OPENSSL_cleanse(e.data.data(), e.data.size());
}

namespace {

struct Planned {
  const ArchiveEntry* entry;
  std::string target;
  std::string base;  // the area's directory
  std::string action;
  bool differs = false;
};

// Every existing component from `base` (exclusive) to `target` (exclusive) must be a real
// directory; `base` itself a directory or missing.
void CheckParents(const std::string& base, const std::string& target) {
  struct stat st {};
  if (lstat(base.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
    throw Error(ErrorCode::kAlreadyExists, base + " is not a directory (a symlink or file): refusing to restore into it");
  }
  std::string at = base;
  std::vector<std::string> parts = Split(target.substr(base.size() + 1));
  for (size_t i = 0; i + 1 < parts.size(); i++) {
    at += "/" + parts[i];
    if (lstat(at.c_str(), &st) != 0) return;  // missing from here on: created as directories
    if (!S_ISDIR(st.st_mode)) {
      throw Error(ErrorCode::kAlreadyExists, at + " is not a directory (a symlink or file): refusing to write below it");
    }
  }
}

bool SameContent(const std::string& path, const std::string& data) {
  int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  File f(fd, path);
  if (f.Size() != data.size()) return false;
  std::string got;
  uint8_t buf[65536];
  for (size_t n; (n = f.Read(buf, sizeof buf)) > 0;) got.append(reinterpret_cast<const char*>(buf), n);
  bool same = got == data;
  OPENSSL_cleanse(got.data(), got.size());
  return same;
}

uid_t OwnerUid(const ArchiveEntry& e) {
  if (!e.uname.empty()) {
    struct passwd pw {};
    struct passwd* out = nullptr;
    char buf[4096];
    if (getpwnam_r(e.uname.c_str(), &pw, buf, sizeof buf, &out) == 0 && out != nullptr) return out->pw_uid;
  }
  return static_cast<uid_t>(e.uid);
}
gid_t OwnerGid(const ArchiveEntry& e) {
  if (!e.gname.empty()) {
    struct group gr {};
    struct group* out = nullptr;
    char buf[4096];
    if (getgrnam_r(e.gname.c_str(), &gr, buf, sizeof buf, &out) == 0 && out != nullptr) return out->gr_gid;
  }
  return static_cast<gid_t>(e.gid);
}

mode_t ModeFor(const ArchiveEntry& e) { return HoldsPrivateKey(e) ? (e.mode & 0600) : (e.mode & 07777); }

void SetOwnerAndTimes(int dirfd_or_fd, const char* name, const ArchiveEntry& e, bool is_link,
                      std::vector<std::string>* notes, const std::string& shown) {
  int flags = is_link ? AT_SYMLINK_NOFOLLOW : 0;
  int rc = name != nullptr ? fchownat(dirfd_or_fd, name, OwnerUid(e), OwnerGid(e), flags)
                           : fchown(dirfd_or_fd, OwnerUid(e), OwnerGid(e));
  if (rc != 0) notes->push_back(shown + ": owner not set (" + std::string(strerror(errno)) + ")");
  timespec ts[2] = {{e.mtime_sec, e.mtime_nsec}, {e.mtime_sec, e.mtime_nsec}};
  rc = name != nullptr ? utimensat(dirfd_or_fd, name, ts, flags) : futimens(dirfd_or_fd, ts);
  if (rc != 0) notes->push_back(shown + ": mtime not set (" + std::string(strerror(errno)) + ")");
}

}  // namespace

std::vector<PkiRestoreItem> RestorePkiEntries(const std::vector<ArchiveEntry>& entries, const PkiRestoreOptions& opts,
                                              std::vector<std::string>* notes) {
  std::vector<std::string> scratch;
  if (notes == nullptr) notes = &scratch;
  if (opts.kubernetes_dir.empty()) throw Error(ErrorCode::kInvalidArgument, "--kubernetes-dir is required");
  std::string kdir = opts.kubernetes_dir;
  while (kdir.size() > 1 && kdir.back() == '/') kdir.pop_back();
  std::string root = opts.root;
  while (!root.empty() && root.back() == '/') root.pop_back();  // "/" -> ""

  // 1. The plan: every target checked before anything is written.
  std::vector<Planned> plan;
  std::vector<PkiRestoreItem> items;
  size_t differing = 0;
  std::string first_differing;
  for (const auto& e : entries) {
    AreaPath ap = SplitArea(e.path);
    Planned p{&e, "", "", "", false};
    if (ap.area == kKubernetes) {
      p.base = kdir;
      p.target = ap.rest.empty() ? kdir : kdir + "/" + Join(ap.rest, ap.rest.size());
    } else {
      if (opts.root.empty()) {
        items.push_back({"/" + Join(ap.rest, ap.rest.size()), "skip (outside the kubernetes dir: give --root / to restore)"});
        continue;
      }
      p.base = root.empty() ? "" : root;
      p.target = p.base + "/" + Join(ap.rest, ap.rest.size());
    }
    if (p.target != p.base) CheckParents(p.base.empty() ? "/" : p.base, p.target);
    struct stat st {};
    const bool exists = lstat(p.target.c_str(), &st) == 0;
    switch (e.type) {
      case ArchiveEntry::Type::kDir:
        if (exists && !S_ISDIR(st.st_mode)) {
          p.differs = true;
          p.action = "overwrite";
        } else {
          p.action = exists ? "unchanged" : "create";
        }
        break;
      case ArchiveEntry::Type::kFile:
        if (!exists) {
          p.action = "create";
        } else if (S_ISREG(st.st_mode) && SameContent(p.target, e.data)) {
          p.action = "unchanged";
        } else if (S_ISDIR(st.st_mode)) {
          throw Error(ErrorCode::kAlreadyExists, p.target + " is a directory; the archive holds a file there: refusing");
        } else {
          p.differs = true;
          p.action = "overwrite";
        }
        break;
      case ArchiveEntry::Type::kSymlink: {
        char buf[kMaxPath + 1];
        ssize_t n = exists && S_ISLNK(st.st_mode) ? readlink(p.target.c_str(), buf, sizeof buf) : -1;
        if (!exists) {
          p.action = "create";
        } else if (n >= 0 && std::string(buf, static_cast<size_t>(n)) == e.data) {
          p.action = "unchanged";
        } else if (S_ISDIR(st.st_mode)) {
          throw Error(ErrorCode::kAlreadyExists, p.target + " is a directory; the archive holds a symlink there: refusing");
        } else {
          p.differs = true;
          p.action = "overwrite";
        }
        break;
      }
    }
    if (p.differs && e.type == ArchiveEntry::Type::kDir) {
      throw Error(ErrorCode::kAlreadyExists, p.target + " is not a directory; the archive holds a directory there: refusing");
    }
    if (p.differs && differing++ == 0) first_differing = p.target;
    items.push_back({p.target, p.action});
    plan.push_back(std::move(p));
  }
  if (opts.dry_run) {
    if (!opts.force) {
      for (auto& i : items) {
        if (i.action == "overwrite") i.action = "overwrite (differs: needs --force)";
      }
    }
    return items;
  }
  if (differing > 0 && !opts.force) {
    throw Error(ErrorCode::kAlreadyExists,
                "refusing to overwrite " + backup::EscapeForTerminal(first_differing) + ", which differs from the archive" +
                    (differing > 1 ? " (and " + std::to_string(differing - 1) + " more)" : "") +
                    "; nothing was written (--dry-run lists them, --force overwrites)");
  }

  // 2. Directories (parents first), then files and links; directory times last, since
  //    writing inside a directory changes its mtime.
  if (!kdir.empty()) MakeDirs(kdir, 0755);
  for (const auto& p : plan) {
    if (p.entry->type != ArchiveEntry::Type::kDir) continue;
    const std::string shown = backup::EscapeForTerminal(p.target);
    if (p.action == "create") MakeDirs(p.target, ModeFor(*p.entry));
    if (chmod(p.target.c_str(), ModeFor(*p.entry)) != 0) throw SystemError("chmod " + p.target, errno);
  }
  for (const auto& p : plan) {
    const ArchiveEntry& e = *p.entry;
    if (e.type == ArchiveEntry::Type::kDir || p.action == "unchanged") continue;
    const std::string dir = ParentDir(p.target);
    const std::string name = BaseName(p.target);
    const std::string shown = backup::EscapeForTerminal(p.target);
    MakeDirs(dir, 0755);
    CheckParents(p.base.empty() ? "/" : p.base, p.target);  // again, right before writing
    if (e.type == ArchiveEntry::Type::kFile) {
      LockedTemp tmp(dir, "." + name + ".", ".etcdsafe-tmp", LockedTemp::Kind::kFile, 0600);
      File f = tmp.OpenForWrite();
      f.WriteAll(reinterpret_cast<const uint8_t*>(e.data.data()), e.data.size());
      SetOwnerAndTimes(f.fd(), nullptr, e, false, notes, shown);
      if (fchmod(f.fd(), ModeFor(e)) != 0) throw SystemError("chmod " + tmp.path(), errno);
      timespec ts[2] = {{e.mtime_sec, e.mtime_nsec}, {e.mtime_sec, e.mtime_nsec}};
      futimens(f.fd(), ts);
      f.Sync();
      f.Close();
      tmp.CommitTo(p.target);
    } else {
      const std::string tmp = dir + "/." + name + ".etcdsafe-link";
      CleanupGuard guard(tmp);
      ::unlink(tmp.c_str());
      if (symlink(e.data.c_str(), tmp.c_str()) != 0) throw SystemError("symlink " + tmp, errno);
      SetOwnerAndTimes(AT_FDCWD, tmp.c_str(), e, true, notes, shown);
      CommitSection section;
      RenameDurable(tmp, p.target);
      guard.Release();
    }
  }
  std::vector<const Planned*> dirs;
  for (const auto& p : plan) {
    if (p.entry->type == ArchiveEntry::Type::kDir) dirs.push_back(&p);
  }
  std::sort(dirs.begin(), dirs.end(), [](const Planned* a, const Planned* b) { return a->target.size() > b->target.size(); });
  for (const Planned* p : dirs) {
    SetOwnerAndTimes(AT_FDCWD, p->target.c_str(), *p->entry, false, notes, backup::EscapeForTerminal(p->target));
  }
  return items;
}

}  // namespace etcdsafe::controlplane
