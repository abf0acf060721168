#include "snapshot/restore.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <future>
#include <map>
#include <optional>
#include <thread>
#include <unordered_map>

#include "base/bytes.h"
#include "base/checksum.h"
#include "base/direct_writer.h"
#include "base/error.h"
#include "base/file.h"
#include "bolt/builder.h"
#include "bolt/format.h"
#include "bolt/reader.h"
#include "etcdfmt/membership.h"
#include "etcdfmt/snap.h"
#include "etcdfmt/wal.h"
#include "snapshot/inspect.h"
#include "snapshot/trailer.h"

namespace etcdsafe::snapshot {
namespace {

// Room for the WAL segment (64,000,000 bytes), the .snap and filesystem slack.
constexpr uint64_t kWalAndSlackBytes = 72ull << 20;

bool IsEmptyDir(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return false;
  bool empty = true;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") {
      empty = false;
      break;
    }
  }
  ::closedir(d);
  return empty;
}

void Note(const RestoreOptions& opts, const std::string& line) {
  if (opts.note) {
    opts.note(line);
  } else {
    std::fprintf(stderr, "etcdsafe: note: %s\n", line.c_str());
  }
}

// A target may be missing or an empty directory (etcdutl 3.5's rule; etcdctl 3.4 refuses
// even an empty one, which only gets in the way of a mount point). A symlink is refused
// whatever it points to: the rename that commits would replace the link, not fill the
// directory it names (and a dangling one is no directory at all).
void CheckTarget(const std::string& path, const std::string& what, const std::string& hint = "") {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    throw SystemError("stat " + path, errno);
  }
  if (S_ISLNK(st.st_mode)) {
    char to[4096];
    ssize_t n = ::readlink(path.c_str(), to, sizeof to - 1);
    std::string target = n > 0 ? std::string(to, static_cast<size_t>(n)) : "?";
    throw Error(ErrorCode::kAlreadyExists, what + " \"" + path + "\" is a symbolic link (to \"" + target +
                                               "\"); give the directory itself");
  }
  if (!S_ISDIR(st.st_mode)) {
    throw Error(ErrorCode::kAlreadyExists, what + " \"" + path + "\" exists and is not a directory");
  }
  if (IsEmptyDir(path)) return;
  throw Error(ErrorCode::kAlreadyExists, what + " \"" + path + "\" exists and is not empty" + hint);
}

bool IsRealDir(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool AbsentOrEmptyDir(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return errno == ENOENT;
  return S_ISDIR(st.st_mode) && IsEmptyDir(path);
}

std::string AbsolutePath(const std::string& path) {
  std::string out = std::filesystem::absolute(path).lexically_normal().string();
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

// ".<base>.etcdsafe-restore-" + XXXXXX: the temporary siblings of a target.
std::string TempPrefix(const std::string& target) { return "." + BaseName(target) + ".etcdsafe-restore-"; }

bool IsWalName(const std::string& n) {
  if (n.size() != 37 || n[16] != '-' || n.compare(33, 4, ".wal") != 0) return false;
  for (size_t i = 0; i < 33; i++) {
    if (i == 16) continue;
    if (!std::isxdigit(static_cast<unsigned char>(n[i]))) return false;
  }
  return true;
}

// A WAL dir renamed into place by a restore whose data dir was not committed yet: it
// holds exactly our marker (naming that data dir) and WAL segments.
struct PendingWal {
  enum State { kNo, kSameDataDir, kOtherDataDir } state = kNo;
  std::string data_dir;  // as the marker names it
};

PendingWal ReadPendingWal(const std::string& wal_dir, const std::string& data_dir_abs) {
  PendingWal out;
  if (!IsRealDir(wal_dir)) return out;
  const std::string marker = wal_dir + "/" + kPendingMarker;
  struct stat st;
  if (::lstat(marker.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > 65536) return out;
  DIR* d = ::opendir(wal_dir.c_str());
  if (d == nullptr) return out;
  bool only_ours = true;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != ".." && n != kPendingMarker && !IsWalName(n)) only_ours = false;
  }
  ::closedir(d);
  if (!only_ours) return out;
  std::string text;
  try {
    text = ReadSmallFile(marker, 65536);
  } catch (const Error&) {
    return out;
  }
  const std::string key = "\ndata-dir=";
  size_t at = text.find(key);
  if (at == std::string::npos) return out;
  size_t end = text.find('\n', at + key.size());
  if (end == std::string::npos) return out;
  out.data_dir = text.substr(at + key.size(), end - at - key.size());
  out.state = out.data_dir == data_dir_abs ? PendingWal::kSameDataDir : PendingWal::kOtherDataDir;
  return out;
}

// Locks the marker of a pending WAL dir (LOCK_NB): -1 with errno EWOULDBLOCK while the
// restore that wrote it still runs.
int LockMarker(const std::string& wal_dir) {
  const std::string marker = wal_dir + "/" + kPendingMarker;
  int fd = ::open(marker.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
    ::close(fd);
    errno = EWOULDBLOCK;
    return -1;
  }
  return fd;
}

Error BusyWal(const RestoreOptions& opts) {
  return Error(ErrorCode::kAlreadyExists, "wal-dir \"" + opts.wal_dir +
                                              "\" is being committed by another restore into \"" +
                                              opts.data_dir + "\"");
}

// Before a restore writes anything: leftovers of killed restores to the same targets
// (temporary siblings whose lock is free; a WAL dir of an interrupted commit into the
// same data dir) are removed, each with a note.
void PrepareTargets(const RestoreOptions& opts) {
  std::vector<std::string> targets = {opts.data_dir};
  if (!opts.wal_dir.empty()) targets.push_back(opts.wal_dir);
  for (const auto& t : targets) {
    for (const auto& p : RemoveStaleTemps(ParentDir(t), TempPrefix(t), "")) {
      Note(opts, "removed " + p + ", left by an interrupted restore");
    }
  }
  if (opts.wal_dir.empty()) return;
  const std::string data_abs = AbsolutePath(opts.data_dir);
  if (ReadPendingWal(opts.wal_dir, data_abs).state != PendingWal::kSameDataDir) return;
  int fd = LockMarker(opts.wal_dir);
  if (fd < 0 && errno == EWOULDBLOCK) throw BusyWal(opts);
  // Under its lock (its writer is gone): still ours, and the data dir still uncommitted.
  if (ReadPendingWal(opts.wal_dir, data_abs).state == PendingWal::kSameDataDir && AbsentOrEmptyDir(opts.data_dir)) {
    RemoveAll(opts.wal_dir);
    Note(opts, "removed wal-dir " + opts.wal_dir + ", left by an interrupted restore whose data dir " +
                   opts.data_dir + " was never committed");
  }
  if (fd >= 0) ::close(fd);
}

// Copies the first `length` bytes of src into a new file dst (mode 0600) with direct
// writes (DirectWriter) while this thread hashes each chunk before it is queued: the
// sha256 (one core) overlaps the device writes, and dst is durable on return.
Sha256Digest CopyAndHash(const std::string& src, const std::string& dst, uint64_t length,
                         const RestoreProgress& progress, bool scratch) {
  File in = File::OpenRead(src);
  DirectWriter out(dst, 0600, scratch ? WriteMode::kScratch : WriteMode::kCached);
  Sha256 sha;
  uint64_t done = 0;
  while (done < length) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(DirectWriter::kChunkSize, length - done));
    uint8_t* buf = out.Buffer();
    in.ReadAt(done, buf, n);
    sha.Update(buf, n);
    out.Submit(n);
    done += n;
    if (progress) progress("copy", done);
  }
  out.Finish();
  return sha.Finish();
}

// CopyAndHash into several files at once: the snapshot is read and hashed once, each
// chunk handed to every file's DirectWriter (memcpy into its buffer).
Sha256Digest CopyAndHashMulti(const std::string& src, const std::vector<std::string>& dsts, uint64_t length,
                              const RestoreProgress& progress) {
  File in = File::OpenRead(src);
  std::vector<std::unique_ptr<DirectWriter>> outs;
  for (const auto& d : dsts) outs.push_back(std::make_unique<DirectWriter>(d, 0600));
  Sha256 sha;
  uint64_t done = 0;
  while (done < length) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(DirectWriter::kChunkSize, length - done));
    uint8_t* buf = outs[0]->Buffer();
    in.ReadAt(done, buf, n);
    sha.Update(buf, n);
    for (size_t i = 1; i < outs.size(); i++) {
      std::memcpy(outs[i]->Buffer(), buf, n);
      outs[i]->Submit(n);
    }
    outs[0]->Submit(n);
    done += n;
    if (progress) progress("copy", done);
  }
  for (auto& o : outs) o->Finish();
  return sha.Finish();
}

std::string RevisionBytes(int64_t main, int64_t sub) {
  std::string out;
  AppendBE64(&out, static_cast<uint64_t>(main));
  out.push_back('_');
  AppendBE64(&out, static_cast<uint64_t>(sub));
  return out;
}

std::string BigEndian8(uint64_t v) {
  std::string out;
  AppendBE64(&out, v);
  return out;
}

// Whether the db is rebuilt from the snapshot whatever it holds (not patched in place).
bool Rebuilds(const RestoreOptions& opts) { return opts.bump_revision > 0 || opts.mark_compacted || opts.compact; }

// --compact, first pass: which entries of bucket "key" a compaction at the current
// revision R keeps (etcd 3.4: treeIndex.Compact(R) then scheduleCompaction(R, keep)). At
// R >= every revision, keyIndex.compact keeps, per key, the newest revision of its last
// generation; a key whose last entry is a tombstone has an empty last generation and
// keeps nothing. Entries are numbered in bucket order; `keep` has one bit per entry.
struct CompactPlan {
  int64_t revision = 1;
  std::vector<uint64_t> keep;
  uint64_t entries = 0, kept = 0;
  bool Keeps(uint64_t i) const { return (keep[i >> 6] >> (i & 63)) & 1; }
};

// Field 1 (key) of an mvccpb.KeyValue (last occurrence wins, absent = ""), skipping the
// other fields as proto.Unmarshal does; false when the bytes are not a protobuf message or
// field 1 is not length-delimited.
bool KeyValueKey(Bytes pb, std::string_view* key) {
  const size_t n = pb.size();
  size_t i = 0;
  auto varint = [&](uint64_t* v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (i >= n) return false;
      const uint8_t b = pb[i++];
      r |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        *v = r;
        return true;
      }
    }
    return false;
  };
  *key = {};
  while (i < n) {
    uint64_t tag = 0, v = 0;
    if (!varint(&tag) || (tag >> 3) == 0) return false;
    switch (tag & 7) {
      case 0:
        if (!varint(&v)) return false;
        if ((tag >> 3) == 1) return false;
        break;
      case 1:
        if (n - i < 8 || (tag >> 3) == 1) return false;
        i += 8;
        break;
      case 2:
        if (!varint(&v) || v > n - i) return false;
        if ((tag >> 3) == 1) *key = AsString(pb.subspan(i, static_cast<size_t>(v)));
        i += static_cast<size_t>(v);
        break;
      case 5:
        if (n - i < 4 || (tag >> 3) == 1) return false;
        i += 4;
        break;
      default:
        return false;
    }
  }
  return true;
}

std::string RevisionName(Bytes rev) {
  if (rev.size() < 17) return "revision key " + HexBytes(rev);
  return "revision " + std::to_string(static_cast<int64_t>(LoadBE64(rev.data()))) + "_" +
         std::to_string(static_cast<int64_t>(LoadBE64(rev.data() + 9)));
}

CompactPlan PlanCompaction(bolt::Reader& reader) {
  CompactPlan plan;
  int64_t last_main = 1;
  // Per distinct key: (index of its newest entry << 1) | tombstone.
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view v) const { return std::hash<std::string_view>{}(v); }
  };
  std::unordered_map<std::string, uint64_t, Hash, std::equal_to<>> newest;
  if (reader.HasBucket("key")) {
    reader.ForEach("key", [&](Bytes k, Bytes v) {
      // etcd: 17 bytes main_sub, an 18th byte 't' marks a tombstone (isTombstone).
      if (k.size() != 17 && k.size() != 18) {
        throw Error(ErrorCode::kDataLoss, reader.name() + ": bucket key: " + RevisionName(k) + " has " +
                                              std::to_string(k.size()) + " bytes, not a revision; cannot compact");
      }
      const bool tombstone = k.size() == 18 && k[17] == 't';
      std::string_view key;
      if (!KeyValueKey(v, &key)) {
        throw Error(ErrorCode::kDataLoss,
                    reader.name() + ": bucket key: " + RevisionName(k) + ": value is not a KeyValue; cannot compact");
      }
      last_main = static_cast<int64_t>(LoadBE64(k.data()));
      const uint64_t slot = (plan.entries << 1) | (tombstone ? 1 : 0);
      auto it = newest.find(key);
      if (it == newest.end()) {
        newest.emplace(std::string(key), slot);
      } else {
        it->second = slot;
      }
      plan.entries++;
    });
  }
  int64_t finished = 0;
  if (std::optional<std::string> f = reader.Get("meta", "finishedCompactRev"); f && f->size() >= 8) {
    finished = static_cast<int64_t>(LoadBE64(reinterpret_cast<const uint8_t*>(f->data())));
  }
  // etcd's store restore: the current revision is the last entry's, raised to a finished
  // compaction.
  plan.revision = std::max(last_main, finished);
  plan.keep.assign((plan.entries + 63) / 64, 0);
  for (const auto& [key, slot] : newest) {
    if (slot & 1) continue;
    const uint64_t i = slot >> 1;
    plan.keep[i >> 6] |= uint64_t{1} << (i & 63);
    plan.kept++;
  }
  return plan;
}

// bolt::Rewrite with bucket "key" filtered by `plan` (entries it does not keep are left
// out) and `mutations` (kPut and kCreateBucket only) applied to every bucket.
void RewriteCompacted(const std::string& src, const std::string& dst, const std::vector<bolt::Mutation>& mutations,
                      const CompactPlan& plan) {
  std::map<std::string, std::map<std::string, std::string>> puts;  // bytewise order, like bbolt
  for (const bolt::Mutation& mu : mutations) {
    auto& bucket = puts[mu.bucket];
    if (mu.kind == bolt::Mutation::Kind::kPut) bucket[mu.key] = mu.value;
    if (mu.kind == bolt::Mutation::Kind::kDelete) throw Error(ErrorCode::kInternal, "RewriteCompacted: a delete");
  }
  bolt::Reader reader = bolt::Reader::Open(src);
  std::vector<std::string> buckets;
  reader.ForEachBucket([&](std::string_view name) { buckets.emplace_back(name); });
  for (const auto& [name, unused] : puts) buckets.push_back(name);
  std::sort(buckets.begin(), buckets.end());
  buckets.erase(std::unique(buckets.begin(), buckets.end()), buckets.end());

  bolt::Builder b(dst);
  for (const std::string& name : buckets) {
    b.BeginBucket(name);
    static const std::map<std::string, std::string> kNone;
    auto found = puts.find(name);
    const auto& mine = found == puts.end() ? kNone : found->second;
    auto next = mine.begin();
    const bool is_key_bucket = name == "key";
    uint64_t index = 0;
    if (reader.HasBucket(name)) {
      reader.ForEachEntry(name, [&](Bytes k, Bytes v, bool is_bucket) {
        if (is_bucket) {
          throw Error(ErrorCode::kUnsupported, src + ": bucket " + name + " has a nested bucket; etcd dbs have none");
        }
        if (is_key_bucket) {
          if (index >= plan.entries) {
            throw Error(ErrorCode::kDataLoss, src + ": bucket key changed between the two compaction passes");
          }
          if (!plan.Keeps(index++)) return;
        }
        const std::string_view ks = AsString(k);
        while (next != mine.end() && std::string_view(next->first) < ks) {
          b.Put(next->first, next->second);
          ++next;
        }
        if (next != mine.end() && std::string_view(next->first) == ks) {
          b.Put(next->first, next->second);  // replaced
          ++next;
          return;
        }
        b.Put(k, v);
      });
    }
    for (; next != mine.end(); ++next) b.Put(next->first, next->second);
    b.EndBucket();
  }
  b.Finish();
}

// What restore does to the db (spec §5.4 step 3). The common case — no bump, etcd's
// buckets present, consistent_index stored — is an in-place 8-byte patch: the file stays
// byte-for-byte what the server sent except that value. Otherwise the db is rebuilt.
struct DbPlan {
  std::optional<BytePatch> patch;
  std::vector<bolt::Mutation> mutations;  // used when there is no patch
  std::optional<CompactPlan> compact;     // --compact: bucket "key" filtered by it
};

DbPlan PlanDb(const std::string& content_path, uint64_t consistent_index, const RestoreOptions& opts) {
  DbPlan plan;
  bolt::Reader reader = bolt::Reader::Open(content_path);
  bool need_rewrite = Rebuilds(opts);
  for (const char* bucket : {"key", "meta", "lease"}) {
    if (!reader.HasBucket(bucket)) {
      need_rewrite = true;
      plan.mutations.push_back(bolt::Mutation::CreateBucket(bucket));
    }
  }
  std::optional<std::string> ci_value = reader.Get("meta", "consistent_index");
  if (!need_rewrite && ci_value && ci_value->size() == 8) {
    if (std::optional<uint64_t> at = reader.ValueOffset("meta", "consistent_index")) {
      plan.patch = BytePatch{*at, BigEndian8(consistent_index)};
      plan.mutations.clear();
      return plan;
    }
  }
  plan.mutations.push_back(bolt::Mutation::Put("meta", "consistent_index", BigEndian8(consistent_index)));
  if (opts.compact) {
    // As etcd's updateCompactRev + scheduleCompaction leave meta after compacting at R.
    plan.compact = PlanCompaction(reader);
    const std::string rev = RevisionBytes(plan.compact->revision, 0);
    plan.mutations.push_back(bolt::Mutation::Put("meta", "finishedCompactRev", rev));
    if (!opts.mark_compacted) plan.mutations.push_back(bolt::Mutation::Put("meta", "scheduledCompactRev", rev));
  }
  if (opts.bump_revision > 0 || opts.mark_compacted) {
    // The bump counts from the snapshot's last entry, compacted or not (etcdutl 3.5).
    int64_t latest_main = 0;
    if (std::optional<std::string> last = reader.LastKey("key"); last && last->size() >= 8) {
      latest_main = static_cast<int64_t>(LoadBE64(reinterpret_cast<const uint8_t*>(last->data())));
    }
    std::string rev = RevisionBytes(latest_main + static_cast<int64_t>(opts.bump_revision), 0);
    if (opts.bump_revision > 0) plan.mutations.push_back(bolt::Mutation::Put("key", rev, ""));
    if (opts.mark_compacted) plan.mutations.push_back(bolt::Mutation::Put("meta", "scheduledCompactRev", rev));
  }
  return plan;
}

// bbolt never shrinks a file: etcdctl's restore writes consistent_index (and any missing
// bucket) in a write transaction that takes its pages from the snapshot's free pages, or
// appends them, so its db is at least as large as the snapshot's. A rebuilt db is compact;
// grow it to the snapshot's db size in whole pages (the extra ones unreachable, i.e. free: meta.freelist is
// kPgidNoFreelist, so bbolt finds them by scanning) with meta.pgid, the high-water mark,
// set to match, as bbolt leaves it. For a fresh etcd's snapshot (5 pages, 2 of them free)
// this is exactly etcdctl's size: `snapshot status` then agrees on totalSize too.
void GrowTo(const std::string& path, uint64_t min_bytes) {
  using bolt::kMetaChecksumOffset, bolt::kMetaEnd, bolt::kMetaMagicOffset, bolt::kMetaPageSizeOffset,
      bolt::kMetaPgidOffset;
  File f = File::OpenReadWrite(path);
  uint8_t meta[2][kMetaEnd];
  f.ReadAt(0, meta[0], kMetaEnd);
  const uint32_t page_size = LoadLE32(meta[0] + kMetaPageSizeOffset);
  if (page_size == 0 || f.Size() % page_size != 0) return;
  const uint64_t pages = min_bytes / page_size;
  if (pages <= f.Size() / page_size) return;
  f.ReadAt(page_size, meta[1], kMetaEnd);
  for (int i = 0; i < 2; i++) {
    if (LoadLE64(meta[i] + kMetaPgidOffset) >= pages) return;
  }
  f.Truncate(pages * page_size);
  for (int i = 0; i < 2; i++) {
    StoreLE64(meta[i] + kMetaPgidOffset, pages);
    StoreLE64(meta[i] + kMetaChecksumOffset,
              Fnv1a64(Bytes{meta[i] + kMetaMagicOffset, kMetaChecksumOffset - kMetaMagicOffset}));
    f.WriteAt(static_cast<uint64_t>(i) * page_size, meta[i], kMetaEnd);
  }
  f.Close();
}

// Applies the plan to db_path: the patch in place, or a rebuild from content_path into
// db_path (which need not exist yet), grown to `min_bytes` (GrowTo; 0: as built). Not
// fsynced: the caller syncs once.
void ApplyDb(DbPlan plan, const std::string& content_path, const std::string& db_path, uint64_t min_bytes) {
  if (plan.patch) {
    File f = File::OpenReadWrite(db_path);
    f.WriteAt(plan.patch->offset, reinterpret_cast<const uint8_t*>(plan.patch->bytes.data()),
              plan.patch->bytes.size());
    f.Close();
    return;
  }
  std::string rebuilt = db_path + ".rewrite";
  CleanupGuard remove_rebuilt(rebuilt);
  if (plan.compact) {
    RewriteCompacted(content_path, rebuilt, plan.mutations, *plan.compact);
  } else {
    (void)bolt::Rewrite(content_path, rebuilt, std::move(plan.mutations));
  }
  if (min_bytes > 0) GrowTo(rebuilt, min_bytes);
  RenameDurable(rebuilt, db_path);
  remove_rebuilt.Release();
}

// The plan and, for a patched db, its status (bbolt check included), read from the
// content file with the patch overlaid.
struct PlanAndStatus {
  DbPlan plan;
  std::optional<StatusNumbers> status;
};

PlanAndStatus PlanAndCheck(const std::string& content_path, uint64_t consistent_index,
                           const RestoreOptions& opts) {
  PlanAndStatus out;
  out.plan = PlanDb(content_path, consistent_index, opts);
  if (out.plan.patch) out.status = ReadStatus(content_path, *out.plan.patch).numbers;
  return out;
}

// The status numbers of `db_path` once PlanDb's patch (the 8-byte value of
// meta/consistent_index, same size) is written, from the numbers of the bytes as they are
// (`before`). Revision, total_key and total_size do not change. The hash is CRC-32C over
// spec §2.1's stream (each top-level bucket's name, then its keys and values in order), and
// a CRC is affine: crc(M ^ D) = crc(M) ^ g(D) for messages of one length, with g the CRC
// without its initial and final xor, which ignores leading zeros. D is zero but for
// delta = old ^ new at the value, so g(D) = g(delta) shifted over the T bytes hashed after
// the value (Crc32cCombine(x, 0, T) is that shift), and g(delta) = crc(delta) ^ crc(0^8).
// T is the rest of bucket meta plus any bucket after it: a few small pages, not the db.
StatusNumbers PatchedNumbers(const StatusNumbers& before, const std::string& db_path, const BytePatch& patch) {
  constexpr std::string_view kBucket = "meta", kKey = "consistent_index";
  bolt::Reader reader = bolt::Reader::Open(db_path);
  std::optional<std::string> old_value = reader.Get(kBucket, kKey);
  if (!old_value || old_value->size() != patch.bytes.size() || reader.ValueOffset(kBucket, kKey) != patch.offset) {
    throw Error(ErrorCode::kInternal, "restore: the patch is not meta/consistent_index");
  }
  std::vector<std::string> later;
  reader.ForEachBucket([&](std::string_view name) {
    if (name > kBucket) later.emplace_back(name);
  });
  uint64_t after = 0;
  bool seen = false;
  reader.ForEach(kBucket, [&](Bytes k, Bytes v) {
    if (seen) after += k.size() + v.size();
    if (AsString(k) == kKey) seen = true;
  });
  for (const auto& name : later) {
    after += name.size();
    reader.ForEach(name, [&](Bytes k, Bytes v) { after += k.size() + v.size(); });
  }
  std::string delta(patch.bytes.size(), '\0');
  for (size_t i = 0; i < delta.size(); i++) delta[i] = static_cast<char>((*old_value)[i] ^ patch.bytes[i]);
  const std::string zeros(delta.size(), '\0');
  const uint32_t g = Crc32c(AsBytes(delta)) ^ Crc32c(AsBytes(zeros));
  StatusNumbers out = before;
  out.hash = before.hash ^ Crc32cCombine(g, 0, after);
  return out;
}

// Writes member/snap/db under `tmp_data` (a new temporary data dir): write_db, then the
// plan and bbolt's check (beside write_db when content_path is given), patch or rebuild,
// fsync. Returns the restored status and whether the db was rebuilt.
RestoreResult BuildDb(const RestoreOptions& opts, const etcdfmt::RestoreCluster& cluster, uint64_t db_size_hint,
                      const std::string& content_path, const DbWriter& write_db, const RestoreProgress& progress,
                      const InputCheck& check_input, const std::string& tmp_data,
                      std::optional<BytePatch>* patch_out = nullptr,
                      const std::optional<bolt::InspectResult>* inspected = nullptr) {
  auto stage = [&](const char* name, uint64_t bytes) {
    if (progress) progress(name, bytes);
  };
  const uint64_t consistent_index = cluster.members.size();

  const std::string snap_dir = tmp_data + "/member/snap";
  MakeDirs(snap_dir, 0700);
  const std::string db_path = snap_dir + "/db";
  std::future<PlanAndStatus> early;  // its destructor waits, also when write_db throws
  if (!content_path.empty()) {
    early = std::async(std::launch::async, [&] { return PlanAndCheck(content_path, consistent_index, opts); });
  }
  write_db(db_path);

  stage("check", 0);
  const std::string& content = content_path.empty() ? db_path : content_path;
  // The caller's check of the input db's own numbers comes before the db is patched or
  // rebuilt.
  PlanAndStatus checked;
  if (content_path.empty() && inspected != nullptr && inspected->has_value()) {
    // Checked as it streamed by: only the plan's few pages are read back.
    const StatusNumbers input = CheckedNumbers(**inspected);
    checked.plan = PlanDb(db_path, consistent_index, opts);
    if (checked.plan.patch) checked.status = PatchedNumbers(input, db_path, *checked.plan.patch);
    if (check_input) check_input(input);
  } else {
    // Read back: the input's numbers beside the plan (other core).
    std::future<StatusNumbers> input_status;
    if (check_input) {
      input_status = std::async(std::launch::async, [&] { return ReadStatus(content).numbers; });
    }
    checked = early.valid() ? early.get() : PlanAndCheck(db_path, consistent_index, opts);
    if (check_input) check_input(input_status.get());
  }
  RestoreResult result;
  result.db_rewritten = !checked.plan.patch;
  // etcdctl's size for a db it writes consistent_index or a bucket into (GrowTo). Not with
  // --bump-revision/--mark-compacted (etcdutl 3.5's options) nor --compact: the db stays compact there.
  uint64_t min_bytes = 0;
  if (checked.plan.compact) {
    result.compact_revision = checked.plan.compact->revision;
    result.compact_kept = checked.plan.compact->kept;
    result.compact_dropped = checked.plan.compact->entries - checked.plan.compact->kept;
  }
  if (result.db_rewritten && !Rebuilds(opts)) {
    min_bytes = content_path.empty() ? File::OpenRead(db_path).Size() : db_size_hint;
  }
  if (patch_out != nullptr) *patch_out = checked.plan.patch;
  ApplyDb(std::move(checked.plan), content, db_path, min_bytes);
  // A rebuilt db is checked while its pages go to disk: the fsync is I/O wait, not CPU.
  std::exception_ptr sync_error;
  std::thread syncer([&] {
    try {
      if (!opts.scratch) File::OpenReadWrite(db_path).Sync();
    } catch (...) {
      sync_error = std::current_exception();
    }
  });
  try {
    result.restored = checked.status ? *checked.status : ReadStatus(db_path).numbers;
  } catch (...) {
    syncer.join();
    throw;
  }
  syncer.join();
  if (sync_error) std::rethrow_exception(sync_error);

  return result;
}

// Everything restore does after ValidateRestore: build the data dir in a temporary
// sibling (filled by `write_db`, which must leave a verified db at the path it is given,
// or nothing when the db will be rebuilt), patch or rewrite the db, write WAL and .snap,
// rename into place. `content_path` ("" = the db itself) is an existing file holding the
// same bytes as the db being written (the snapshot): the plan and the structural check
// then read it while write_db runs, on the other core. Its errors are reported only
// after write_db succeeded, so a hash mismatch is still the error a corrupt snapshot gets.
RestoreResult RestoreCore(const RestoreOptions& opts, const etcdfmt::RestoreCluster& cluster,
                          uint64_t db_size_hint, const std::string& content_path, const DbWriter& write_db,
                          const RestoreProgress& progress, const InputCheck& check_input,
                          const std::optional<bolt::InspectResult>* inspected = nullptr) {
  auto stage = [&](const char* name, uint64_t bytes) {
    if (progress) progress(name, bytes);
  };
  PrepareTargets(opts);
  MakeDirs(ParentDir(opts.data_dir), 0700);
  // Locked while we run: the next restore to this target removes it only if we are gone.
  LockedTemp tmp_data_dir(ParentDir(opts.data_dir), TempPrefix(opts.data_dir), "", LockedTemp::Kind::kDirectory,
                          0700);
  const std::string& tmp_data = tmp_data_dir.path();
  uint64_t need = db_size_hint + kWalAndSlackBytes;
  if (uint64_t free = FreeSpace(tmp_data); free < need) {
    throw Error(ErrorCode::kIo, "not enough free space in " + ParentDir(opts.data_dir) + ": need " +
                                    HumanizeBytes(need) + ", have " + HumanizeBytes(free));
  }
  const bool separate_wal = !opts.wal_dir.empty();
  const std::string snap_dir = tmp_data + "/member/snap";
  RestoreResult result = BuildDb(opts, cluster, db_size_hint, content_path, write_db, progress, check_input,
                                 tmp_data, nullptr, inspected);
  // The db was written through the page cache (WriteMode::kCached): the etcd started next
  // finds it there instead of faulting a cold db in through its mmap.
  stage("wal", 0);
  std::optional<LockedTemp> tmp_wal_root;
  std::optional<File> marker;
  std::string wal_target;
  if (separate_wal) {
    MakeDirs(ParentDir(opts.wal_dir), 0700);
    // The WAL is built in <root>/wal (CreateRestoreWal replaces its target dir; the lock
    // is on the root).
    tmp_wal_root.emplace(ParentDir(opts.wal_dir), TempPrefix(opts.wal_dir), "", LockedTemp::Kind::kDirectory, 0700);
    wal_target = tmp_wal_root->path() + "/wal";
  } else {
    wal_target = tmp_data + "/member/wal";
  }
  etcdfmt::CreateRestoreWal(wal_target, cluster);
  if (separate_wal) {
    // Travels with the WAL: until it is removed, the WAL dir's data dir is not committed.
    // Locked while we run, so a concurrent restore never takes our WAL for a leftover.
    const std::string marker_path = wal_target + "/" + kPendingMarker;
    marker.emplace(File::Create(marker_path, 0600));
    (void)::flock(marker->fd(), LOCK_EX | LOCK_NB);  // fresh file: free; ENOLCK: unlocked
    marker->WriteAll(AsBytes("etcdsafe restore: the data dir of this WAL is not committed yet\ndata-dir=" +
                             AbsolutePath(opts.data_dir) + "\n"));
    marker->Sync();
    SyncDir(wal_target);
  }
  etcdfmt::WriteRestoreSnap(snap_dir, cluster);
  SyncDir(snap_dir);
  SyncDir(tmp_data + "/member");
  SyncDir(tmp_data);

  // Commit: WAL first (if separate, with its marker), then the data dir, then the marker
  // goes. One CommitSection: an interrupt waits for all of it (both dirs or neither); a
  // kill -9 between the renames leaves a WAL dir whose marker names an absent data dir,
  // which the next restore to the same pair removes (PrepareTargets). rename(2) replaces
  // an empty directory atomically, so an empty mount point works too.
  TestPause("restore-before-commit");
  {
    CommitSection commit;
    if (separate_wal) RenameDurable(wal_target, opts.wal_dir);
    TestPause("restore-between-renames");
    try {
      tmp_data_dir.CommitTo(opts.data_dir);
    } catch (...) {
      if (separate_wal) RemoveAll(opts.wal_dir);
      throw;
    }
    if (separate_wal) {
      // Committed: a failure from here on only leaves the (harmless) marker; etcd ignores
      // files in its WAL dir that are not WAL segments.
      const std::string marker_path = opts.wal_dir + "/" + kPendingMarker;
      if (::unlink(marker_path.c_str()) == 0) {
        try {
          SyncDir(opts.wal_dir);
        } catch (const Error&) {
        }
      }
      marker.reset();
      tmp_wal_root.reset();  // its root is empty now: removed, lock released
    }
  }

  result.data_dir = opts.data_dir;
  result.wal_dir = separate_wal ? opts.wal_dir : opts.data_dir + "/member/wal";
  result.member_id = cluster.local_id;
  result.cluster_id = cluster.cluster_id;
  result.member_count = cluster.members.size();
  stage("done", db_size_hint);
  return result;
}

}  // namespace

etcdfmt::RestoreCluster ValidateRestore(RestoreOptions& opts) {
  if (opts.bump_revision > 0 && !opts.mark_compacted) {
    // etcdutl 3.5.10+: a bumped revision without a compaction mark would let watchers
    // resume from revisions that never existed on the new cluster.
    throw Error(ErrorCode::kInvalidArgument, "--mark-compacted required if --bump-revision > 0");
  }
  etcdfmt::RestoreCluster cluster = etcdfmt::BuildRestoreCluster(
      opts.name, opts.initial_cluster, opts.initial_cluster_token, opts.initial_advertise_peer_urls);
  if (opts.data_dir.empty()) opts.data_dir = opts.name + ".etcd";
  CheckTarget(opts.data_dir, "data-dir");
  if (!opts.wal_dir.empty()) {
    PendingWal pending = ReadPendingWal(opts.wal_dir, AbsolutePath(opts.data_dir));
    if (pending.state == PendingWal::kSameDataDir) {
      // Ours, from an interrupted commit (the data dir is absent or empty, checked above):
      // the restore removes it, unless that restore is still running.
      int fd = LockMarker(opts.wal_dir);
      if (fd < 0 && errno == EWOULDBLOCK) throw BusyWal(opts);
      if (fd >= 0) ::close(fd);
    } else {
      CheckTarget(opts.wal_dir, "wal-dir",
                  pending.state == PendingWal::kOtherDataDir
                      ? " (it holds the WAL of an interrupted restore into \"" + pending.data_dir + "\")"
                      : "");
    }
  }
  return cluster;
}

namespace {

// The snapshot file's db: size, trailer, and the DbWriter that copies and hashes it (or
// only hashes it when the db is rebuilt anyway) and compares the trailer.
struct SnapshotInput {
  uint64_t db_size = 0;
  bool has_trailer = false;
  DbWriter writer;
  // The same into several files (copies, not only the first, when the db is not rebuilt).
  std::function<void(const std::vector<std::string>&)> multi_writer;
};

SnapshotInput OpenSnapshotInput(const RestoreOptions& opts, const RestoreProgress& progress) {
  SnapshotInput in;
  File snap_file = File::OpenRead(opts.snapshot_path);
  const uint64_t file_size = snap_file.Size();
  snap_file.Close();
  if (file_size == 0) throw Error(ErrorCode::kDataLoss, opts.snapshot_path + ": empty file");
  in.has_trailer = HasTrailer(file_size);
  if (!in.has_trailer && !opts.skip_hash_check) {
    throw Error(ErrorCode::kDataLoss, "snapshot missing hash but --skip-hash-check=false");
  }
  in.db_size = in.has_trailer ? file_size - kTrailerSize : file_size;
  // A bumped, compaction-marked or compacted db is rebuilt from the snapshot anyway: hash, don't copy.
  const bool rebuild = Rebuilds(opts);
  in.multi_writer = [opts, progress, db_size = in.db_size, has_trailer = in.has_trailer,
                     rebuild](const std::vector<std::string>& db_paths) {
    Sha256Digest digest = rebuild ? HashFilePrefix(opts.snapshot_path, db_size,
                                                   [&](uint64_t done) {
                                                     if (progress) progress("copy", done);
                                                   })
                          : db_paths.size() == 1
                              ? CopyAndHash(opts.snapshot_path, db_paths[0], db_size, progress, opts.scratch)
                                                 : CopyAndHashMulti(opts.snapshot_path, db_paths, db_size, progress);
    if (has_trailer && !opts.skip_hash_check) {
      Sha256Digest trailer{};
      File::OpenRead(opts.snapshot_path).ReadAt(db_size, trailer.data(), kTrailerSize);
      if (trailer != digest) {
        throw Error(ErrorCode::kDataLoss,
                    "expected sha256 " + GoByteSlice(trailer) + ", got " + GoByteSlice(digest));
      }
    }
  };
  in.writer = [multi = in.multi_writer](const std::string& db_path) { multi({db_path}); };
  return in;
}

// A plain durable copy (copy_file_range: in the kernel, a reflink where the filesystem
// can), mode 0600. No hash: the source is a db this run has just verified and written.
void CopyDbFile(const std::string& src, const std::string& dst) {
  File in = File::OpenRead(src);
  File out = File::Create(dst, 0600);
  const uint64_t size = in.Size();
  loff_t off_in = 0, off_out = 0;
  while (static_cast<uint64_t>(off_in) < size) {
    ssize_t n = ::copy_file_range(in.fd(), &off_in, out.fd(), &off_out,
                                  static_cast<size_t>(std::min<uint64_t>(size - off_in, 1ull << 30)), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      // EXDEV, ENOSYS, ...: fall back to read/write.
      std::vector<uint8_t> buf(4 << 20);
      while (static_cast<uint64_t>(off_in) < size) {
        size_t k = static_cast<size_t>(std::min<uint64_t>(size - off_in, buf.size()));
        in.ReadAt(static_cast<uint64_t>(off_in), buf.data(), k);
        out.WriteAt(static_cast<uint64_t>(off_out), buf.data(), k);
        off_in += static_cast<loff_t>(k);
        off_out += static_cast<loff_t>(k);
      }
      break;
    }
  }
  out.Sync();
  out.Close();
}

// "m1=http://a:2380,m2=http://b:2380,m1=http://c:2380" → names in order of first
// appearance and each one's URLs as written. Malformed entries are left to
// BuildRestoreCluster, which reports them with etcdctl's messages.
void SplitInitialCluster(const std::string& initial_cluster, std::vector<std::string>* names,
                         std::vector<std::string>* urls) {
  size_t start = 0;
  while (start <= initial_cluster.size()) {
    size_t end = initial_cluster.find(',', start);
    if (end == std::string::npos) end = initial_cluster.size();
    std::string item = initial_cluster.substr(start, end - start);
    size_t eq = item.find('=');
    if (eq != std::string::npos) {
      std::string name = item.substr(0, eq), url = item.substr(eq + 1);
      size_t i = 0;
      while (i < names->size() && (*names)[i] != name) i++;
      if (i == names->size()) {
        names->push_back(name);
        urls->push_back(url);
      } else {
        (*urls)[i] += "," + url;
      }
    }
    start = end + 1;
  }
}

bool NeedsQuotes(const std::string& v) {
  if (v.empty()) return true;
  for (char c : v) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && std::string("_./:=,@%+-").find(c) == std::string::npos) {
      return true;
    }
  }
  return false;
}

std::string ShellWord(const std::string& v) {
  if (!NeedsQuotes(v)) return v;
  std::string out = "'";
  for (char c : v) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

}  // namespace

RestoreResult Restore(const RestoreOptions& in_opts, const RestoreProgress& progress) {
  RestoreOptions opts = in_opts;
  if (progress) progress("validate", 0);
  // Before touching the snapshot: flag and target errors come first.
  const etcdfmt::RestoreCluster cluster = ValidateRestore(opts);
  SnapshotInput input = OpenSnapshotInput(opts, progress);
  RestoreResult result = RestoreCore(opts, cluster, input.db_size, opts.snapshot_path, input.writer, progress, {});
  result.hash_checked = input.has_trailer && !opts.skip_hash_check;
  return result;
}

namespace {

// Every member's options and cluster, validated (flags and targets) before any read.
struct AllMembersPlan {
  RestoreAllResult out;
  std::vector<RestoreOptions> member_opts;
  std::vector<etcdfmt::RestoreCluster> clusters;
};

AllMembersPlan ValidateAllMembers(const RestoreAllOptions& in) {
  const RestoreOptions& base = in.base;
  if (in.output_dir.empty()) throw Error(ErrorCode::kInvalidArgument, "--all-members needs --output-dir");
  if (!base.data_dir.empty() || !base.wal_dir.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "--data-dir and --wal-dir cannot be used with --all-members (each member goes to "
                "<output-dir>/<name>)");
  }
  if (!base.initial_advertise_peer_urls.empty()) {
    throw Error(ErrorCode::kInvalidArgument,
                "--initial-advertise-peer-urls cannot be used with --all-members (each member's come "
                "from --initial-cluster)");
  }
  AllMembersPlan plan;
  RestoreAllResult& out = plan.out;
  std::vector<RestoreOptions>& member_opts = plan.member_opts;
  std::vector<etcdfmt::RestoreCluster>& clusters = plan.clusters;
  out.initial_cluster = base.initial_cluster;
  out.initial_cluster_token = base.initial_cluster_token;
  SplitInitialCluster(base.initial_cluster, &out.names, &out.peer_urls);
  if (!in.name.empty() && std::find(out.names.begin(), out.names.end(), in.name) == out.names.end()) {
    throw Error(ErrorCode::kInvalidArgument,
                "--name \"" + in.name + "\" is not a member of --initial-cluster " + base.initial_cluster);
  }
  for (size_t i = 0; i < out.names.size(); i++) {
    RestoreOptions o = base;
    o.name = out.names[i];
    o.initial_advertise_peer_urls = out.peer_urls[i];
    if (o.name.empty() || o.name == "." || o.name == ".." || o.name.find('/') != std::string::npos) {
      throw Error(ErrorCode::kInvalidArgument,
                  "member name \"" + o.name + "\" cannot name a directory under --output-dir");
    }
    o.data_dir = in.output_dir + "/" + o.name;
    clusters.push_back(ValidateRestore(o));
    member_opts.push_back(std::move(o));
  }
  if (member_opts.empty()) throw Error(ErrorCode::kInvalidArgument, "--initial-cluster names no member");
  return plan;
}

// RestoreCore for every member: the db once (BuildDb) in the first member's temporary,
// copies of it in the others', each member's WAL and .snap, one commit.
RestoreAllResult RestoreAllCore(const RestoreAllOptions& in, AllMembersPlan plan, uint64_t db_size,
                                const std::string& content_path, const DbWriter& write_db,
                                const InputCheck& check_input, bool hash_checked, const RestoreProgress& progress,
                                const std::function<void(const std::vector<std::string>&)>& multi_write = {},
                                const std::optional<bolt::InspectResult>* inspected = nullptr) {
  RestoreAllResult& out = plan.out;
  const std::vector<RestoreOptions>& member_opts = plan.member_opts;
  const std::vector<etcdfmt::RestoreCluster>& clusters = plan.clusters;
  const bool base_rebuild = Rebuilds(in.base);

  for (const auto& o : member_opts) PrepareTargets(o);
  MakeDirs(in.output_dir, 0700);
  std::vector<std::unique_ptr<LockedTemp>> temps;
  for (const auto& o : member_opts) {
    temps.push_back(std::make_unique<LockedTemp>(in.output_dir, TempPrefix(o.data_dir), "",
                                                 LockedTemp::Kind::kDirectory, 0700));
  }
  const uint64_t n = member_opts.size();
  uint64_t need = n * (db_size + kWalAndSlackBytes);
  if (uint64_t free = FreeSpace(temps[0]->path()); free < need) {
    throw Error(ErrorCode::kIo, "not enough free space in " + in.output_dir + " for " + std::to_string(n) +
                                    " members: need " + HumanizeBytes(need) + ", have " + HumanizeBytes(free));
  }
  // Each member's WAL and .snap do not depend on the db: written beside it (other core,
  // other I/O queue). A future's destructor waits, so nothing outlives `temps`.
  std::vector<std::future<void>> wals;
  for (size_t i = 0; i < n; i++) {
    wals.push_back(std::async(std::launch::async, [&, i] {
      const std::string& tmp = temps[i]->path();
      MakeDirs(tmp + "/member/snap", 0700);
      etcdfmt::CreateRestoreWal(tmp + "/member/wal", clusters[i]);
      etcdfmt::WriteRestoreSnap(tmp + "/member/snap", clusters[i]);
    }));
  }
  // The db once (copy + sha256 + plan + bbolt check), in the first member's dir.
  // From a snapshot file (multi_write), every member's db is written in that same pass
  // (CopyAndHashMulti) and gets the first one's 8-byte patch; otherwise (a rebuilt db, a
  // db from a repository) the others copy the first member's finished db.
  std::vector<std::string> db_paths;
  for (size_t i = 0; i < n; i++) {
    MakeDirs(temps[i]->path() + "/member/snap", 0700);
    db_paths.push_back(temps[i]->path() + "/member/snap/db");
  }
  const bool one_pass = multi_write && base_rebuild == false;
  std::optional<BytePatch> patch;
  RestoreResult first = BuildDb(member_opts[0], clusters[0], db_size, content_path,
                                one_pass ? DbWriter([&](const std::string&) { multi_write(db_paths); }) : write_db,
                                progress, check_input, temps[0]->path(), &patch, inspected);
  const std::string first_db = db_paths[0];
  if (progress) progress("wal", 0);
  // The other members' copies of the finished db, concurrently (their fsyncs overlap).
  std::vector<std::future<void>> copies;
  for (size_t i = 1; i < n; i++) {
    copies.push_back(std::async(std::launch::async, [&, i] {
      if (one_pass && patch) {
        File f = File::OpenReadWrite(db_paths[i]);
        f.WriteAt(patch->offset, reinterpret_cast<const uint8_t*>(patch->bytes.data()), patch->bytes.size());
        f.Sync();
        f.Close();
        return;
      }
      if (one_pass && ::unlink(db_paths[i].c_str()) != 0) throw SystemError("unlink " + db_paths[i], errno);
      CopyDbFile(first_db, db_paths[i]);
    }));
  }
  for (auto& f : wals) f.get();
  for (auto& f : copies) f.get();
  for (size_t i = 0; i < n; i++) {
    const std::string& tmp = temps[i]->path();
    const std::string snap_dir = tmp + "/member/snap";
    SyncDir(snap_dir);
    SyncDir(tmp + "/member");
    SyncDir(tmp);
    RestoreResult r = first;
    r.data_dir = member_opts[i].data_dir;
    r.wal_dir = member_opts[i].data_dir + "/member/wal";
    r.member_id = clusters[i].local_id;
    r.cluster_id = clusters[i].cluster_id;
    r.member_count = clusters[i].members.size();
    r.hash_checked = hash_checked;
    out.members.push_back(r);
  }
  TestPause("restore-all-before-commit");
  {
    CommitSection commit;
    size_t done = 0;
    try {
      for (; done < n; done++) {
        temps[done]->CommitTo(member_opts[done].data_dir);
        TestPause("restore-all-between-renames");
      }
    } catch (...) {
      for (size_t i = 0; i < done; i++) RemoveAll(member_opts[i].data_dir);
      throw;
    }
  }
  if (progress) progress("done", db_size);
  return out;
}

}  // namespace

RestoreAllResult RestoreAllMembers(const RestoreAllOptions& in, const RestoreProgress& progress) {
  if (progress) progress("validate", 0);
  AllMembersPlan plan = ValidateAllMembers(in);
  SnapshotInput input = OpenSnapshotInput(in.base, progress);
  return RestoreAllCore(in, std::move(plan), input.db_size, in.base.snapshot_path, input.writer, {},
                        input.has_trailer && !in.base.skip_hash_check, progress, input.multi_writer);
}

RestoreAllResult RestoreAllMembersFromDb(const RestoreAllOptions& in, uint64_t db_size_hint, const DbWriter& write_db,
                                         const RestoreProgress& progress, const InputCheck& check_input,
                                         const std::optional<bolt::InspectResult>* inspected) {
  if (progress) progress("validate", 0);
  AllMembersPlan plan = ValidateAllMembers(in);
  return RestoreAllCore(in, std::move(plan), db_size_hint, "", write_db, check_input, true, progress, {}, inspected);
}

std::string FormatStartPlan(const RestoreAllResult& r) {
  std::string out;
  for (size_t i = 0; i < r.members.size(); i++) {
    const std::string dir = AbsolutePath(r.members[i].data_dir);
    out += "# member " + r.names[i] + " (id " + HexNoPad(r.members[i].member_id) + "): copy " + dir +
           " to its host, then start it with (fill in CLIENT_URLS):\n";
    out += "etcd --name " + ShellWord(r.names[i]) + " --data-dir " + ShellWord(dir) + " --initial-cluster " +
           ShellWord(r.initial_cluster) + " --initial-cluster-token " + ShellWord(r.initial_cluster_token) +
           " --initial-advertise-peer-urls " + ShellWord(r.peer_urls[i]) + " --listen-peer-urls " +
           ShellWord(r.peer_urls[i]) +
           " --initial-cluster-state new --listen-client-urls CLIENT_URLS --advertise-client-urls CLIENT_URLS\n";
  }
  if (!r.members.empty()) {
    out += "# cluster " + HexNoPad(r.members[0].cluster_id) + ", " + std::to_string(r.members.size()) +
           " members; CLIENT_URLS (e.g. http://HOST:2379) are not known from the restore flags\n";
  }
  return out;
}

RestoreResult RestoreFromDb(const RestoreOptions& in_opts, uint64_t db_size_hint, const DbWriter& write_db,
                            const RestoreProgress& progress, const InputCheck& check_input,
                            const std::optional<bolt::InspectResult>* inspected) {
  RestoreOptions opts = in_opts;
  if (progress) progress("validate", 0);
  const etcdfmt::RestoreCluster cluster = ValidateRestore(opts);
  RestoreResult result = RestoreCore(opts, cluster, db_size_hint, "", write_db, progress, check_input, inspected);
  result.hash_checked = true;
  return result;
}

}  // namespace etcdsafe::snapshot
