#include "snapshot/restore.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <exception>
#include <future>
#include <thread>

#include "base/bytes.h"
#include "base/checksum.h"
#include "base/direct_writer.h"
#include "base/error.h"
#include "base/file.h"
#include "bolt/builder.h"
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

// A target may be missing or an empty directory (etcdutl 3.5's rule; etcdctl 3.4 refuses
// even an empty one, which only gets in the way of a mount point).
void CheckTarget(const std::string& path, const std::string& what) {
  if (!PathExists(path)) return;
  if (IsDirectory(path) && IsEmptyDir(path)) return;
  throw Error(ErrorCode::kAlreadyExists, what + " \"" + path + "\" exists and is not empty");
}

std::string MakeTempSibling(const std::string& final_path) {
  std::string parent = ParentDir(final_path);
  MakeDirs(parent, 0700);
  std::string base = final_path;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  base = base.substr(base.rfind('/') == std::string::npos ? 0 : base.rfind('/') + 1);
  std::string tmpl = parent + "/." + base + ".etcdsafe-restore-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw SystemError("mkdtemp in " + parent, errno);
  if (::chmod(tmpl.c_str(), 0700) != 0) throw SystemError("chmod " + tmpl, errno);
  return tmpl;
}

// Copies the first `length` bytes of src into a new file dst (mode 0600) with direct
// writes (DirectWriter) while this thread hashes each chunk before it is queued: the
// sha256 (one core) overlaps the device writes, and dst is durable on return.
Sha256Digest CopyAndHash(const std::string& src, const std::string& dst, uint64_t length,
                         const RestoreProgress& progress) {
  File in = File::OpenRead(src);
  DirectWriter out(dst, 0600);
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

// What restore does to the db (spec §5.4 step 3). The common case — no bump, etcd's
// buckets present, consistent_index stored — is an in-place 8-byte patch: the file stays
// byte-for-byte what the server sent except that value. Otherwise the db is rebuilt.
struct DbPlan {
  std::optional<BytePatch> patch;
  std::vector<bolt::Mutation> mutations;  // used when there is no patch
};

DbPlan PlanDb(const std::string& content_path, uint64_t consistent_index, const RestoreOptions& opts) {
  DbPlan plan;
  bolt::Reader reader = bolt::Reader::Open(content_path);
  bool need_rewrite = opts.bump_revision > 0 || opts.mark_compacted;
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
  if (opts.bump_revision > 0 || opts.mark_compacted) {
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

// Applies the plan to db_path: the patch in place, or a rebuild from content_path into
// db_path (which need not exist yet). Not fsynced: the caller syncs once.
void ApplyDb(DbPlan plan, const std::string& content_path, const std::string& db_path) {
  if (plan.patch) {
    File f = File::OpenReadWrite(db_path);
    f.WriteAt(plan.patch->offset, reinterpret_cast<const uint8_t*>(plan.patch->bytes.data()),
              plan.patch->bytes.size());
    f.Close();
    return;
  }
  std::string rebuilt = db_path + ".rewrite";
  CleanupGuard remove_rebuilt(rebuilt);
  (void)bolt::Rewrite(content_path, rebuilt, std::move(plan.mutations));
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

// Everything restore does after ValidateRestore: build the data dir in a temporary
// sibling (filled by `write_db`, which must leave a verified db at the path it is given,
// or nothing when the db will be rebuilt), patch or rewrite the db, write WAL and .snap,
// rename into place. `content_path` ("" = the db itself) is an existing file holding the
// same bytes as the db being written (the snapshot): the plan and the structural check
// then read it while write_db runs, on the other core. Its errors are reported only
// after write_db succeeded, so a hash mismatch is still the error a corrupt snapshot gets.
RestoreResult RestoreCore(const RestoreOptions& opts, const etcdfmt::RestoreCluster& cluster,
                          uint64_t db_size_hint, const std::string& content_path, const DbWriter& write_db,
                          const RestoreProgress& progress) {
  auto stage = [&](const char* name, uint64_t bytes) {
    if (progress) progress(name, bytes);
  };
  std::string tmp_data = MakeTempSibling(opts.data_dir);
  CleanupGuard remove_tmp_data(tmp_data);
  uint64_t need = db_size_hint + kWalAndSlackBytes;
  if (uint64_t free = FreeSpace(tmp_data); free < need) {
    throw Error(ErrorCode::kIo, "not enough free space in " + ParentDir(opts.data_dir) + ": need " +
                                    HumanizeBytes(need) + ", have " + HumanizeBytes(free));
  }
  const bool separate_wal = !opts.wal_dir.empty();
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
  PlanAndStatus checked = early.valid() ? early.get() : PlanAndCheck(db_path, consistent_index, opts);
  RestoreResult result;
  result.db_rewritten = !checked.plan.patch;
  ApplyDb(std::move(checked.plan), content, db_path);
  // A rebuilt db is checked while its pages go to disk: the fsync is I/O wait, not CPU.
  std::exception_ptr sync_error;
  std::thread syncer([&] {
    try {
      File::OpenReadWrite(db_path).Sync();
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

  stage("wal", 0);
  std::string tmp_wal_root;
  std::optional<CleanupGuard> remove_tmp_wal;
  std::string wal_target;
  if (separate_wal) {
    tmp_wal_root = MakeTempSibling(opts.wal_dir);
    remove_tmp_wal.emplace(tmp_wal_root);
    wal_target = tmp_wal_root + "/wal";
  } else {
    wal_target = tmp_data + "/member/wal";
  }
  etcdfmt::CreateRestoreWal(wal_target, cluster);
  etcdfmt::WriteRestoreSnap(snap_dir, cluster);
  SyncDir(snap_dir);
  SyncDir(tmp_data + "/member");
  SyncDir(tmp_data);

  // Commit: WAL first (if separate), then the data dir. rename(2) replaces an empty
  // directory atomically, so an empty mount point works too.
  if (separate_wal) {
    RenameDurable(wal_target, opts.wal_dir);
  }
  try {
    RenameDurable(tmp_data, opts.data_dir);
  } catch (...) {
    if (separate_wal) RemoveAll(opts.wal_dir);
    throw;
  }
  remove_tmp_data.Release();

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
  if (!opts.wal_dir.empty()) CheckTarget(opts.wal_dir, "wal-dir");
  return cluster;
}

RestoreResult Restore(const RestoreOptions& in_opts, const RestoreProgress& progress) {
  RestoreOptions opts = in_opts;
  if (progress) progress("validate", 0);
  // Before touching the snapshot: flag and target errors come first.
  const etcdfmt::RestoreCluster cluster = ValidateRestore(opts);
  File snap_file = File::OpenRead(opts.snapshot_path);
  const uint64_t file_size = snap_file.Size();
  snap_file.Close();
  if (file_size == 0) throw Error(ErrorCode::kDataLoss, opts.snapshot_path + ": empty file");
  const bool has_trailer = HasTrailer(file_size);
  if (!has_trailer && !opts.skip_hash_check) {
    throw Error(ErrorCode::kDataLoss, "snapshot missing hash but --skip-hash-check=false");
  }
  const uint64_t db_size = has_trailer ? file_size - kTrailerSize : file_size;
  // A bumped or compaction-marked db is rebuilt from the snapshot anyway: hash, don't copy.
  const bool rebuild = opts.bump_revision > 0 || opts.mark_compacted;
  RestoreResult result = RestoreCore(opts, cluster, db_size, opts.snapshot_path, [&](const std::string& db_path) {
    Sha256Digest digest = rebuild ? HashFilePrefix(opts.snapshot_path, db_size,
                                                   [&](uint64_t done) {
                                                     if (progress) progress("copy", done);
                                                   })
                                  : CopyAndHash(opts.snapshot_path, db_path, db_size, progress);
    if (has_trailer && !opts.skip_hash_check) {
      Sha256Digest trailer{};
      File::OpenRead(opts.snapshot_path).ReadAt(db_size, trailer.data(), kTrailerSize);
      if (trailer != digest) {
        throw Error(ErrorCode::kDataLoss,
                    "expected sha256 " + GoByteSlice(trailer) + ", got " + GoByteSlice(digest));
      }
    }
  }, progress);
  result.hash_checked = has_trailer && !opts.skip_hash_check;
  return result;
}

RestoreResult RestoreFromDb(const RestoreOptions& in_opts, uint64_t db_size_hint, const DbWriter& write_db,
                            const RestoreProgress& progress) {
  RestoreOptions opts = in_opts;
  if (progress) progress("validate", 0);
  const etcdfmt::RestoreCluster cluster = ValidateRestore(opts);
  RestoreResult result = RestoreCore(opts, cluster, db_size_hint, "", write_db, progress);
  result.hash_checked = true;
  return result;
}

}  // namespace etcdsafe::snapshot
