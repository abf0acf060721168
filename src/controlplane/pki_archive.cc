#include "controlplane/pki_archive.h"

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
#include <string_view>

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
constexpr size_t kMaxOwnerName = 256;

// A user or group name the archive may carry: plain text (what EscapeForTerminal keeps as
// it is), at most kMaxOwnerName bytes. The reader refuses others; the collector drops them.
bool OwnerNameOk(const std::string& n) { return n.size() <= kMaxOwnerName && backup::EscapeForTerminal(n) == n; }

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
    // What ReadTar would refuse is not archived (a backup that cannot be restored is worse
    // than one file fewer, said in a note).
    if (backup::EscapeForTerminal(name) != name) {
      notes_->push_back("skipped " + backup::EscapeForTerminal(fs) +
                        ": control, backslash or non-UTF-8 bytes in its name (a pki archive cannot hold it)");
      return;
    }
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
    // Names the reader would refuse are left out; the numeric ids are what restore uses.
    if (!OwnerNameOk(e.uname)) e.uname.clear();
    if (!OwnerNameOk(e.gname)) e.gname.clear();
    e.mtime_sec = st.st_mtim.tv_sec;
    e.mtime_nsec = st.st_mtim.tv_nsec;
    if (S_ISLNK(st.st_mode)) {
      char buf[kMaxPath + 1];
      ssize_t n = readlink(fs.c_str(), buf, sizeof buf);
      if (n < 0) throw SystemError("readlink " + fs, errno);
      e.type = ArchiveEntry::Type::kSymlink;
      e.data.assign(buf, static_cast<size_t>(n));
      if (static_cast<size_t>(n) > kMaxPath || backup::EscapeForTerminal(e.data) != e.data ||
          !LinkStaysInside(area_dir, e.data)) {
        notes_->push_back("skipped symlink " + fs + " -> " + backup::EscapeForTerminal(e.data) +
                          ": its target is outside the archived tree or not a plain name (links are never followed)");
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

// ---- The tar codec -------------------------------------------------------------------
// POSIX.1-2001 pax: 512-byte ustar headers ("ustar\0" "00"), each optionally preceded by
// one 'x' extended header of "<len> <key>=<value>\n" records, file data padded to 512
// bytes, and two zero blocks at the end. Not libarchive: linking it loads libxml2, ICU,
// nettle, acl, lzma, lz4, bz2 ... into every etcdsafe process (+1.8 MiB RSS, against the
// agent's 20 MiB budget), and its multi-format reader is attack surface for an input that
// is only ever our own pax output. The reader therefore accepts exactly that output (from
// this writer and from libarchive's pax writer, which older versions used) and nothing
// else; see ReadTar for the rules.

constexpr size_t kBlock = 512;
constexpr uint64_t kMaxPaxBytes = 64 << 10;           // one 'x' header's records
constexpr int64_t kMaxAbsMtime = 999999999999999999;  // 18 digits: fits pax and int64
constexpr uint64_t kMaxId = 0xfffffffe;
constexpr uint64_t kMaxNumeric = uint64_t{1} << 62;   // any numeric field, before its own bound

struct Field {
  size_t off, len;
};
constexpr Field kName{0, 100}, kMode{100, 8}, kUid{108, 8}, kGid{116, 8}, kSize{124, 12}, kMtime{136, 12},
    kChksum{148, 8}, kTypeflag{156, 1}, kLinkname{157, 100}, kMagic{257, 6}, kVersion{263, 2}, kUname{265, 32},
    kGname{297, 32}, kDevmajor{329, 8}, kDevminor{337, 8}, kPrefix{345, 155};

uint64_t Padded(uint64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }
uint64_t OctalMax(Field f) { return (uint64_t{1} << (3 * (f.len - 1))) - 1; }

bool AllZero(const char* p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (p[i] != '\0') return false;
  }
  return true;
}

unsigned HeaderSum(const char* h) {
  unsigned sum = 0;
  for (size_t i = 0; i < kBlock; i++) {
    const bool in_chksum = i >= kChksum.off && i < kChksum.off + kChksum.len;
    sum += in_chksum ? ' ' : static_cast<unsigned char>(h[i]);
  }
  return sum;
}

// ---- writer ----

// One ustar header block, checksummed. Strings longer than their field are cut (the
// caller has put the full value in a pax record); numbers must fit (callers clamp).
struct Ustar {
  std::string name, prefix, linkname, uname, gname;
  uint64_t mode = 0, uid = 0, gid = 0, size = 0, mtime = 0;
  char typeflag = '0';

  void AppendTo(std::string* out) const {
    char h[kBlock] = {};
    auto put = [&](Field f, const std::string& s) { memcpy(h + f.off, s.data(), std::min(s.size(), f.len)); };
    auto octal = [&](Field f, uint64_t v) {
      for (size_t i = f.len - 1; i-- > 0; v >>= 3) h[f.off + i] = static_cast<char>('0' + (v & 7));
    };
    put(kName, name);
    octal(kMode, mode);
    octal(kUid, uid);
    octal(kGid, gid);
    octal(kSize, size);
    octal(kMtime, mtime);
    h[kTypeflag.off] = typeflag;
    put(kLinkname, linkname);
    memcpy(h + kMagic.off, "ustar", 6);  // with its NUL
    memcpy(h + kVersion.off, "00", 2);
    put(kUname, uname);
    put(kGname, gname);
    octal(kDevmajor, 0);
    octal(kDevminor, 0);
    put(kPrefix, prefix);
    unsigned sum = HeaderSum(h);  // six octal digits, NUL, space (as GNU tar and libarchive)
    for (size_t i = 6; i-- > 0; sum >>= 3) h[kChksum.off + i] = static_cast<char>('0' + (sum & 7));
    h[kChksum.off + 6] = '\0';
    h[kChksum.off + 7] = ' ';
    out->append(h, kBlock);
  }
};

// "<len> key=value\n", where len counts the whole record including its own digits.
void AppendPaxRecord(std::string* out, const std::string& key, const std::string& value) {
  const size_t body = 1 + key.size() + 1 + value.size() + 1;
  size_t len = body + 1;
  while (std::to_string(len).size() + body != len) len = std::to_string(len).size() + body;
  *out += std::to_string(len) + " " + key + "=" + value + "\n";
}

// Splits `path` into ustar prefix (<= 155) and name (<= 100) at a slash; false if it cannot.
bool SplitUstarName(const std::string& path, std::string* prefix, std::string* name) {
  if (path.size() <= kName.len) {
    *name = path;
    return true;
  }
  for (size_t slash = path.find('/'); slash != std::string::npos && slash <= kPrefix.len; slash = path.find('/', slash + 1)) {
    const size_t rest = path.size() - slash - 1;
    if (rest > 0 && rest <= kName.len) {
      *prefix = path.substr(0, slash);
      *name = path.substr(slash + 1);
      return true;
    }
  }
  return false;
}

// The pax mtime value: the exact decimal of sec + nsec / 1e9 (negative times too).
std::string PaxTime(int64_t sec, long nsec) {
  std::string whole, frac;
  if (sec < 0 && nsec > 0) {  // -(|sec| - 1) - (1e9 - nsec) / 1e9
    whole = "-" + std::to_string(-(sec + 1));
    frac = std::to_string(1000000000 - nsec);
  } else {
    whole = std::to_string(sec);
    frac = std::to_string(nsec);
  }
  if (nsec == 0) return whole;
  frac = std::string(9 - frac.size(), '0') + frac;
  while (frac.back() == '0') frac.pop_back();
  return whole + "." + frac;
}

// ---- reader ----

// A numeric header field: octal digits (after optional spaces, then only NULs or spaces
// to the field's end; at least one digit), or base-256 (first byte 0x80; 0xff for a
// negative two's complement value, accepted only with `negative_ok`). False when
// malformed or beyond +-2^62.
bool ParseNumeric(const char* h, Field f, bool negative_ok, int64_t* out) {
  const auto* p = reinterpret_cast<const unsigned char*>(h + f.off);
  if (p[0] == 0x80 || p[0] == 0xff) {
    const bool negative = p[0] == 0xff;
    if (negative && !negative_ok) return false;
    uint64_t v = 0;  // the value, or for a negative one its one's complement
    for (size_t i = 1; i < f.len; i++) {
      if (v > (kMaxNumeric >> 8)) return false;
      v = (v << 8) | (negative ? (~p[i] & 0xffu) : p[i]);
    }
    if (v >= kMaxNumeric) return false;
    *out = negative ? -static_cast<int64_t>(v) - 1 : static_cast<int64_t>(v);
    return true;
  }
  size_t i = 0;
  while (i < f.len && p[i] == ' ') i++;
  const size_t first = i;
  uint64_t v = 0;  // at most 12 octal digits: no overflow
  while (i < f.len && p[i] >= '0' && p[i] <= '7') v = (v << 3) | (p[i++] - '0');
  if (i == first) return false;
  for (; i < f.len; i++) {
    if (p[i] != ' ' && p[i] != '\0') return false;
  }
  *out = static_cast<int64_t>(v);
  return true;
}

// A NUL-terminated (or full-width) string field.
std::string StringField(const char* h, Field f) {
  const char* p = h + f.off;
  return std::string(p, strnlen(p, f.len));
}

// A pax decimal: 1 to 19 digits, no sign, at most `max`.
bool ParsePaxDecimal(std::string_view v, uint64_t max, uint64_t* out) {
  if (v.empty() || v.size() > 19) return false;
  uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  if (n > max) return false;
  *out = n;
  return true;
}

// A pax time: [-]<1..18 digits>[.<1 or more digits>]; digits past nanoseconds are dropped.
bool ParsePaxTime(std::string_view v, int64_t* sec, long* nsec) {
  const bool negative = !v.empty() && v[0] == '-';
  if (negative) v.remove_prefix(1);
  const size_t dot = v.find('.');
  uint64_t whole = 0;
  if (!ParsePaxDecimal(v.substr(0, dot), static_cast<uint64_t>(kMaxAbsMtime), &whole)) return false;
  long frac = 0;
  if (dot != std::string_view::npos) {
    std::string_view f = v.substr(dot + 1);
    if (f.empty() || f.size() > 64) return false;
    for (size_t i = 0; i < f.size(); i++) {
      if (f[i] < '0' || f[i] > '9') return false;
      if (i < 9) frac = frac * 10 + (f[i] - '0');
    }
    for (size_t i = f.size(); i < 9; i++) frac *= 10;
  }
  *sec = static_cast<int64_t>(whole);
  *nsec = frac;
  if (negative && frac > 0) {  // -w.f = -(w + 1) + (1 - .f)
    *sec = -*sec - 1;
    *nsec = 1000000000 - frac;
  } else if (negative) {
    *sec = -*sec;
  }
  return true;
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
  for (const auto& e : entries) {
    if (e.mtime_nsec < 0 || e.mtime_nsec > 999999999 || e.uid < 0 || e.gid < 0 ||
        static_cast<uint64_t>(e.uid) > kMaxId || static_cast<uint64_t>(e.gid) > kMaxId) {
      throw Error(ErrorCode::kInternal, "writing the pki archive: " + backup::EscapeForTerminal(e.path) +
                                            ": owner or mtime out of range");
    }
    Ustar u;
    std::string pax;  // the records this entry needs beyond the ustar fields
    const std::string path = e.path + (e.type == ArchiveEntry::Type::kDir ? "/" : "");
    if (!SplitUstarName(path, &u.prefix, &u.name)) {
      AppendPaxRecord(&pax, "path", path);
      u.name = path.substr(0, kName.len);
    }
    u.mode = e.mode & 07777;
    auto id = [&](const char* key, int64_t v, uint64_t* field) {
      *field = std::min(static_cast<uint64_t>(v), OctalMax(kUid));
      if (*field != static_cast<uint64_t>(v)) AppendPaxRecord(&pax, key, std::to_string(v));
    };
    id("uid", e.uid, &u.uid);
    id("gid", e.gid, &u.gid);
    auto name = [&](const char* key, const std::string& v, std::string* field) {
      if (v.size() < kUname.len) {
        *field = v;
      } else {
        AppendPaxRecord(&pax, key, v);
      }
    };
    name("uname", e.uname, &u.uname);
    name("gname", e.gname, &u.gname);
    const auto max_time = static_cast<int64_t>(OctalMax(kMtime));
    u.mtime = static_cast<uint64_t>(std::clamp<int64_t>(e.mtime_sec, 0, max_time));
    if (e.mtime_nsec != 0 || e.mtime_sec < 0 || e.mtime_sec > max_time) {
      AppendPaxRecord(&pax, "mtime", PaxTime(e.mtime_sec, e.mtime_nsec));
    }
    switch (e.type) {
      case ArchiveEntry::Type::kFile:
        u.typeflag = '0';
        u.size = e.data.size();
        if (u.size > OctalMax(kSize)) throw Error(ErrorCode::kInternal, "writing the pki archive: a file too large");
        break;
      case ArchiveEntry::Type::kDir:
        u.typeflag = '5';
        break;
      case ArchiveEntry::Type::kSymlink:
        u.typeflag = '2';
        u.linkname = e.data;
        if (e.data.size() > kLinkname.len) AppendPaxRecord(&pax, "linkpath", e.data);
        break;
    }
    if (!pax.empty()) {
      // The 'x' header's own name only matters to readers without pax support.
      std::string base = e.path.substr(e.path.rfind('/') + 1);
      for (char& c : base) {
        if (c < 0x20 || c > 0x7e) c = '_';
      }
      Ustar x;
      x.name = "PaxHeaders/" + base.substr(0, kName.len - 11);
      x.typeflag = 'x';
      x.mode = 0644;
      x.size = pax.size();
      x.mtime = u.mtime;
      x.AppendTo(&out);
      out += pax;
      out.append(Padded(pax.size()) - pax.size(), '\0');
    }
    u.AppendTo(&out);
    if (e.type == ArchiveEntry::Type::kFile) {
      out += e.data;
      out.append(Padded(e.data.size()) - e.data.size(), '\0');
    }
  }
  out.append(2 * kBlock, '\0');
  return out;
}

// The reader's rules beyond the header's (pki_archive.h), decided for an input that is
// only ever our own pax output (this writer's, or libarchive's pax writer's from older
// versions; both end with exactly two zero blocks):
//  - every header: the "ustar\0" "00" magic (GNU and v7 headers are refused) and a
//    matching unsigned checksum; numeric fields octal or base-256, bounded (negative
//    base-256 only for mtime, as libarchive writes pre-1970 times);
//  - types '0' (and '\0'), '5', '2' are entries; 'x' is one pax header for the next
//    entry (at most 64 KiB, records "<len> key=value\n" exactly covering it, no key
//    twice, never two 'x' in a row nor an 'x' at the end); everything else is refused:
//    hard links, devices, fifos, 'g' global headers (they would change every later
//    entry), GNU 'L'/'K' long names, 'S' sparse files, vendor types;
//  - pax keys applied: path, linkpath, size, uid, gid, uname, gname, mtime; ignored:
//    atime, ctime (restores set mtime only) and hdrcharset (libarchive writes BINARY for
//    non-ASCII names in the C locale; names are checked for UTF-8 on their own); any
//    other key is refused (GNU.sparse.*, xattrs, ACLs, unknown): neither writer emits it;
//  - directories and symlinks carry no data (size 0), only symlinks a link target;
//  - the end is two zero blocks, followed by nothing but zero bytes (GNU tar pads to
//    10 KiB); a lone zero block, EOF without them, or any read past the input: refused.
std::vector<ArchiveEntry> ReadTar(const std::string& tar, const std::string& what) {
  if (tar.size() > backup::kMaxPkiArchiveBytes) Hostile(what, "larger than the pki archive limit");
  std::vector<ArchiveEntry> out;
  std::map<std::string, ArchiveEntry::Type> types;
  std::map<std::string, std::string, std::less<>> pax;  // the pending 'x' header's records
  bool have_pax = false;
  std::string pax_at;  // "pax header at byte N", for errors in its records' values
  uint64_t total = 0;
  size_t pos = 0;
  auto need = [&](uint64_t n) {
    if (tar.size() - pos < n) Hostile(what, "truncated at byte " + std::to_string(pos));
  };
  for (;;) {
    if (pos == tar.size()) Hostile(what, "truncated: no end-of-archive marker");
    need(kBlock);
    const char* h = tar.data() + pos;
    const std::string at = "header at byte " + std::to_string(pos);
    if (AllZero(h, kBlock)) {
      if (have_pax) Hostile(what, "a pax header without its entry");
      need(2 * kBlock);
      if (!AllZero(h + kBlock, kBlock)) Hostile(what, "a lone zero block at byte " + std::to_string(pos));
      pos += 2 * kBlock;
      if (!AllZero(tar.data() + pos, tar.size() - pos)) Hostile(what, "data after the end-of-archive marker");
      break;
    }
    int64_t sum = 0;
    if (!ParseNumeric(h, kChksum, false, &sum) || static_cast<uint64_t>(sum) != HeaderSum(h)) {
      Hostile(what, at + ": checksum mismatch");
    }
    if (memcmp(h + kMagic.off, "ustar", 6) != 0 || memcmp(h + kVersion.off, "00", 2) != 0) {
      Hostile(what, at + ": not a POSIX ustar/pax header");
    }
    int64_t size = 0;
    if (!ParseNumeric(h, kSize, false, &size)) Hostile(what, at + ": bad size field");
    const char typeflag = h[kTypeflag.off];
    if (typeflag == 'x') {
      if (have_pax) Hostile(what, at + ": two pax headers in a row");
      if (static_cast<uint64_t>(size) > kMaxPaxBytes) Hostile(what, at + ": a pax header over 64 KiB");
      pos += kBlock;
      need(Padded(static_cast<uint64_t>(size)));
      const std::string_view records(tar.data() + pos, static_cast<size_t>(size));
      for (size_t p = 0; p < records.size();) {
        size_t q = p;
        uint64_t len = 0;
        while (q < records.size() && q - p < 7 && records[q] >= '0' && records[q] <= '9') len = len * 10 + (records[q++] - '0');
        if (q == p || q >= records.size() || records[q] != ' ') Hostile(what, at + ": a pax record without its length");
        if (len < q - p + 4 || len > records.size() - p) Hostile(what, at + ": a pax record length out of bounds");
        std::string_view rec = records.substr(q + 1, p + len - q - 1);  // "key=value\n"
        if (rec.back() != '\n') Hostile(what, at + ": a pax record not ending in a newline");
        rec.remove_suffix(1);
        const size_t eq = rec.find('=');
        if (eq == 0 || eq == std::string_view::npos) Hostile(what, at + ": a pax record without a key");
        const std::string key(rec.substr(0, eq));
        if (!pax.emplace(key, std::string(rec.substr(eq + 1))).second) {
          Hostile(what, at + ": pax key \"" + backup::EscapeForTerminal(key.substr(0, 64)) + "\" twice");
        }
        p += len;
      }
      pos += Padded(static_cast<uint64_t>(size));
      have_pax = true;
      pax_at = "pax " + at;
      continue;
    }
    if (out.size() >= kMaxEntries) Hostile(what, "more than 10000 entries");
    ArchiveEntry e;
    e.path = StringField(h, kName);
    if (h[kPrefix.off] != '\0') e.path = StringField(h, kPrefix) + "/" + e.path;
    std::string link = StringField(h, kLinkname);
    e.uname = StringField(h, kUname);
    e.gname = StringField(h, kGname);
    int64_t mode = 0, uid = 0, gid = 0;
    if (!ParseNumeric(h, kMode, false, &mode) || !ParseNumeric(h, kUid, false, &uid) ||
        !ParseNumeric(h, kGid, false, &gid) || !ParseNumeric(h, kMtime, true, &e.mtime_sec)) {
      Hostile(what, at + ": a malformed numeric field");
    }
    for (const auto& record : pax) {
      const std::string& key = record.first;  // not a structured binding: clang 14 cannot capture one
      const std::string& value = record.second;
      uint64_t n = 0;
      const std::string shown_key = backup::EscapeForTerminal(key.substr(0, 64));
      auto number = [&](uint64_t max) {
        if (!ParsePaxDecimal(value, max, &n)) Hostile(what, pax_at + ": bad pax " + shown_key);
        return static_cast<int64_t>(n);
      };
      if (key == "path") {
        e.path = value;
      } else if (key == "linkpath") {
        link = value;
      } else if (key == "uname") {
        e.uname = value;
      } else if (key == "gname") {
        e.gname = value;
      } else if (key == "uid") {
        uid = number(kMaxNumeric);
      } else if (key == "gid") {
        gid = number(kMaxNumeric);
      } else if (key == "size") {
        size = number(kMaxNumeric);
      } else if (key == "mtime") {
        if (!ParsePaxTime(value, &e.mtime_sec, &e.mtime_nsec)) Hostile(what, pax_at + ": bad pax mtime");
      } else if (key != "atime" && key != "ctime" && key != "hdrcharset") {
        Hostile(what, pax_at + ": unsupported pax key \"" + shown_key + "\"");
      }
    }
    pax.clear();
    have_pax = false;
    pos += kBlock;

    switch (typeflag) {
      case '0':
      case '\0':
        e.type = ArchiveEntry::Type::kFile;
        break;
      case '5':
        e.type = ArchiveEntry::Type::kDir;
        break;
      case '2':
        e.type = ArchiveEntry::Type::kSymlink;
        break;
      case '1':
        Hostile(what, "entry \"" + backup::EscapeForTerminal(e.path) + "\" is a hard link");
      case 'g':
        Hostile(what, at + ": a global pax header");
      case 'L':
      case 'K':
        Hostile(what, at + ": a GNU long name or long link header");
      case 'S':
        Hostile(what, at + ": a sparse file");
      default:
        Hostile(what, "entry \"" + backup::EscapeForTerminal(e.path) + "\" is not a file, directory or symlink");
    }
    if (e.type == ArchiveEntry::Type::kDir && e.path.size() > 1 && e.path.back() == '/') e.path.pop_back();
    const std::string shown = backup::EscapeForTerminal(e.path);
    if (e.path.size() > kMaxPath) Hostile(what, "a name longer than 4096 bytes");
    if (shown != e.path) Hostile(what, "entry \"" + shown + "\": control, backslash or non-UTF-8 bytes in its name");
    std::vector<std::string> parts = Split(e.path);
    for (const auto& p : parts) {
      if (p.empty() || p == "." || p == "..") Hostile(what, "entry \"" + shown + "\": absolute, empty, \".\" or \"..\" path component");
    }
    if (parts.front() != kKubernetes && parts.front() != kRoot) {
      Hostile(what, "entry \"" + shown + "\" is neither under kubernetes/ nor root/");
    }
    if (parts.front() == kRoot && parts.size() < 2) Hostile(what, "entry \"root\" itself");
    if (parts.size() == 1 && e.type != ArchiveEntry::Type::kDir) Hostile(what, "entry \"kubernetes\" is not a directory");
    if (!types.emplace(e.path, e.type).second) Hostile(what, "entry \"" + shown + "\" appears twice");
    e.mode = static_cast<mode_t>(mode & 07777);
    if (static_cast<uint64_t>(uid) > kMaxId || static_cast<uint64_t>(gid) > kMaxId) Hostile(what, "entry \"" + shown + "\": bad owner");
    e.uid = uid;
    e.gid = gid;
    if (!OwnerNameOk(e.uname) || !OwnerNameOk(e.gname)) Hostile(what, "entry \"" + shown + "\": bad owner name");
    if (e.mtime_sec < -kMaxAbsMtime || e.mtime_sec > kMaxAbsMtime) Hostile(what, "entry \"" + shown + "\": bad mtime");
    if (e.type != ArchiveEntry::Type::kFile && size != 0) Hostile(what, "entry \"" + shown + "\": a directory or symlink with data");
    if (e.type != ArchiveEntry::Type::kSymlink && !link.empty()) Hostile(what, "entry \"" + shown + "\": a link target on a file or directory");
    if (e.type == ArchiveEntry::Type::kSymlink) {
      e.data = link;
      std::vector<std::string> dir(parts.begin() + 1, parts.end() - 1);
      if (backup::EscapeForTerminal(e.data) != e.data || !LinkStaysInside(dir, e.data)) {
        Hostile(what, "symlink \"" + shown + "\" points outside its tree");
      }
    } else if (e.type == ArchiveEntry::Type::kFile) {
      if (static_cast<uint64_t>(size) > kMaxEntryBytes) Hostile(what, "entry \"" + shown + "\" is over 16 MiB");
      total += static_cast<uint64_t>(size);
      if (total > backup::kMaxPkiArchiveBytes) Hostile(what, "entries larger than the pki archive limit");
      if (tar.size() - pos < static_cast<uint64_t>(size)) Hostile(what, "entry \"" + shown + "\" is truncated");
      need(Padded(static_cast<uint64_t>(size)));
      e.data.assign(tar, pos, static_cast<size_t>(size));
      pos += Padded(static_cast<uint64_t>(size));
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
