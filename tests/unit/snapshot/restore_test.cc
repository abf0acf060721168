// Restore compared byte for byte with `etcdctl snapshot restore` (3.4.23) on the same
// snapshot and flags, plus the failure modes that must leave nothing behind.
#include "snapshot/restore.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <set>

#include "base/error.h"
#include "base/file.h"
#include "snapshot/inspect.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::snapshot {
namespace {

const std::string kData = ETCDSAFE_TESTDATA;

std::set<std::string> ListDir(const std::string& path) {
  std::set<std::string> out;
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.insert(n);
  }
  ::closedir(d);
  return out;
}

mode_t ModeOf(const std::string& p) {
  struct stat st;
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 0777;
}

std::string EtcdctlStatus(const std::string& db) {
  std::string out;
  EXPECT_EQ(testutil::RunCommand("ETCDCTL_API=3 etcdctl snapshot status -w json '" + db + "' 2>/dev/null", &out), 0);
  return out;
}

struct Flags {
  std::string name, cluster, token, peers;
};

void CompareWithEtcdctl(const std::string& snapshot, const Flags& f, bool rewritten = false) {
  testutil::TempDir dir;
  std::string theirs = dir.Sub("etcdctl.etcd"), ours = dir.Sub("ours.etcd");
  std::string cmd = "ETCDCTL_API=3 etcdctl snapshot restore '" + snapshot + "' --data-dir '" + theirs + "'";
  RestoreOptions o;
  o.snapshot_path = snapshot;
  o.data_dir = ours;
  if (!f.name.empty()) { cmd += " --name '" + f.name + "'"; o.name = f.name; }
  if (!f.cluster.empty()) { cmd += " --initial-cluster '" + f.cluster + "'"; o.initial_cluster = f.cluster; }
  if (!f.token.empty()) { cmd += " --initial-cluster-token '" + f.token + "'"; o.initial_cluster_token = f.token; }
  if (!f.peers.empty()) { cmd += " --initial-advertise-peer-urls '" + f.peers + "'"; o.initial_advertise_peer_urls = f.peers; }
  std::string log;
  ASSERT_EQ(testutil::RunCommand(cmd, &log), 0) << log;
  RestoreResult r = Restore(o);
  EXPECT_EQ(r.db_rewritten, rewritten);
  EXPECT_TRUE(r.hash_checked);

  // Same files, same bytes (WAL and .snap), same modes.
  std::string wal = "/member/wal/0000000000000000-0000000000000000.wal";
  EXPECT_EQ(testutil::ReadFile(ours + wal), testutil::ReadFile(theirs + wal));
  EXPECT_EQ(ListDir(ours + "/member/snap"), ListDir(theirs + "/member/snap"));
  for (const auto& name : ListDir(theirs + "/member/snap")) {
    if (name == "db") continue;
    EXPECT_EQ(testutil::ReadFile(ours + "/member/snap/" + name), testutil::ReadFile(theirs + "/member/snap/" + name)) << name;
    EXPECT_EQ(ModeOf(ours + "/member/snap/" + name), ModeOf(theirs + "/member/snap/" + name));
  }
  EXPECT_EQ(ModeOf(ours), 0700u);
  EXPECT_EQ(ModeOf(ours + "/member"), 0700u);
  EXPECT_EQ(ModeOf(ours + "/member/wal"), 0700u);
  EXPECT_EQ(ModeOf(ours + "/member/snap/db"), 0600u);
  EXPECT_EQ(ModeOf(ours + wal), 0600u);
  // Same logical db: etcdctl's own status of both dbs agrees.
  EXPECT_EQ(EtcdctlStatus(ours + "/member/snap/db"), EtcdctlStatus(theirs + "/member/snap/db"));
  FileStatus st = ReadStatus(ours + "/member/snap/db");
  EXPECT_EQ(st.numbers.hash, r.restored.hash);  // the reported status is the written db's
  EXPECT_EQ(st.numbers.revision, r.restored.revision);
  EXPECT_EQ(st.numbers.total_key, r.restored.total_key);
  EXPECT_EQ(st.numbers.total_size, r.restored.total_size);
  // No temporary siblings left next to the data dir.
  EXPECT_EQ(ListDir(dir.path()), (std::set<std::string>{"etcdctl.etcd", "ours.etcd"}));
}

TEST(Restore, DefaultFlagsMatchEtcdctl) { CompareWithEtcdctl(kData + "/small.db", {}); }

// A fresh etcd's snapshot (empty.db: etcd 3.4.23 started, nothing written, `etcdctl
// snapshot save`) has no consistent_index, so the db is rebuilt with it; etcdctl's
// restore writes it into the file's free pages and keeps 20480 bytes. Ours used to be a
// compact 12288 bytes, so `snapshot status` differed in totalSize.
TEST(Restore, FreshEtcdSnapshotMatchesEtcdctlIncludingSize) {
  CompareWithEtcdctl(kData + "/empty.db", {}, /*rewritten=*/true);
  CompareWithEtcdctl(kData + "/empty.db",
                     {"m2", "m1=http://127.0.0.1:1,m2=http://127.0.0.1:2,m3=http://127.0.0.1:3", "t",
                      "http://127.0.0.1:2"},
                     /*rewritten=*/true);
  testutil::TempDir dir;
  RestoreOptions o;
  o.snapshot_path = kData + "/empty.db";
  o.data_dir = dir.Sub("d");
  EXPECT_EQ(Restore(o).restored.total_size, 20480u);
  EXPECT_EQ(File::OpenRead(o.data_dir + "/member/snap/db").Size(), 20480u);
}

TEST(Restore, ThreeMembersMatchEtcdctl) {
  CompareWithEtcdctl(kData + "/medium.db",
                     {"b", "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380,b=https://10.0.0.2:2381,c=http://10.0.0.3:2380",
                      "tok3", "https://10.0.0.2:2381,http://10.0.0.2:2380"});
}

class RestoreFailure : public ::testing::Test {
 protected:
  // Runs a restore expected to fail and checks nothing at all was created.
  void ExpectFails(RestoreOptions o, ErrorCode code, const std::string& message_part) {
    std::set<std::string> before = ListDir(dir_.path());
    try {
      Restore(o);
      ADD_FAILURE() << "restore succeeded";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), code) << e.what();
      EXPECT_NE(std::string(e.what()).find(message_part), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
    EXPECT_EQ(ListDir(dir_.path()), before);
  }
  RestoreOptions Opts(const std::string& snapshot) {
    RestoreOptions o;
    o.snapshot_path = snapshot;
    o.data_dir = dir_.Sub("restored");
    return o;
  }
  std::string Write(const std::string& name, const std::string& bytes) {
    testutil::WriteFile(dir_.Sub(name), bytes);
    return dir_.Sub(name);
  }
  testutil::TempDir dir_;
  std::string small_ = testutil::ReadFile(kData + "/small.db");
};

TEST_F(RestoreFailure, FlippedByteFailsHashCheck) {
  std::string b = small_;
  b[9000] ^= 0x10;
  ExpectFails(Opts(Write("flip.db", b)), ErrorCode::kDataLoss, "expected sha256 [");
}

TEST_F(RestoreFailure, MissingTrailerNeedsSkipHashCheck) {
  std::string p = Write("nohash.db", small_.substr(0, small_.size() - 32));
  ExpectFails(Opts(p), ErrorCode::kDataLoss, "snapshot missing hash but --skip-hash-check=false");
  RestoreOptions o = Opts(p);
  o.skip_hash_check = true;
  RestoreResult r = Restore(o);
  EXPECT_FALSE(r.hash_checked);
  EXPECT_EQ(r.restored.revision, 8);
}

TEST_F(RestoreFailure, EmptyGarbageAndTruncated) {
  ExpectFails(Opts(Write("empty.db", "")), ErrorCode::kDataLoss, "empty");
  RestoreOptions g = Opts(Write("garbage.db", std::string(4096 * 3, 'z')));
  g.skip_hash_check = true;
  ExpectFails(g, ErrorCode::kDataLoss, "");
  RestoreOptions t = Opts(Write("trunc.db", small_.substr(0, 8192)));
  t.skip_hash_check = true;
  ExpectFails(t, ErrorCode::kDataLoss, "");
}

TEST_F(RestoreFailure, ExistingNonEmptyDataDirIsRefused) {
  MakeDirs(dir_.Sub("restored"), 0700);
  testutil::WriteFile(dir_.Sub("restored/keep-me"), "precious");
  ExpectFails(Opts(kData + "/small.db"), ErrorCode::kAlreadyExists, "exists and is not empty");
  EXPECT_EQ(testutil::ReadFile(dir_.Sub("restored/keep-me")), "precious");
}

TEST_F(RestoreFailure, EmptyExistingDataDirIsUsed) {
  MakeDirs(dir_.Sub("restored"), 0755);
  Restore(Opts(kData + "/small.db"));
  EXPECT_TRUE(PathExists(dir_.Sub("restored/member/snap/db")));
  EXPECT_EQ(ModeOf(dir_.Sub("restored")), 0700u);
}

TEST_F(RestoreFailure, BadFlagsUseEtcdctlMessages) {
  RestoreOptions o = Opts(kData + "/small.db");
  o.name = "nope";
  ExpectFails(o, ErrorCode::kInvalidArgument, "couldn't find local name \"nope\" in the initial cluster configuration");
  o = Opts(kData + "/small.db");
  o.initial_cluster = "default=ftp://localhost:2380";
  ExpectFails(o, ErrorCode::kInvalidArgument, "URL scheme must be http, https, unix, or unixs");
  o = Opts(kData + "/small.db");
  o.bump_revision = 10;
  ExpectFails(o, ErrorCode::kInvalidArgument, "--mark-compacted required");
  o = Opts(dir_.Sub("does-not-exist.db"));
  ExpectFails(o, ErrorCode::kNotFound, "does-not-exist.db");
}

TEST_F(RestoreFailure, SeparateWalDir) {
  RestoreOptions o = Opts(kData + "/small.db");
  o.wal_dir = dir_.Sub("wal");
  RestoreResult r = Restore(o);
  EXPECT_EQ(r.wal_dir, dir_.Sub("wal"));
  EXPECT_TRUE(PathExists(dir_.Sub("wal/0000000000000000-0000000000000000.wal")));
  EXPECT_FALSE(PathExists(dir_.Sub("restored/member/wal")));
  EXPECT_EQ(ListDir(dir_.path()), (std::set<std::string>{"restored", "wal"}));
}

// Issue 12 §6: a symlinked data dir used to run the whole restore and then fail "Not a
// directory"; a dangling one said "exists and is not empty". Both are refused first.
TEST_F(RestoreFailure, SymlinkTargetsAreRefusedFirst) {
  MakeDirs(dir_.Sub("real-empty"), 0700);
  ASSERT_EQ(::symlink(dir_.Sub("real-empty").c_str(), dir_.Sub("link").c_str()), 0);
  ASSERT_EQ(::symlink(dir_.Sub("nowhere").c_str(), dir_.Sub("dangling").c_str()), 0);
  testutil::WriteFile(dir_.Sub("a-file"), "x");
  for (const char* what : {"data-dir", "wal-dir"}) {
    auto opts = [&](const std::string& target) {
      RestoreOptions o = Opts(kData + "/small.db");
      if (std::string(what) == "wal-dir") {
        o.wal_dir = target;
      } else {
        o.data_dir = target;
      }
      return o;
    };
    ExpectFails(opts(dir_.Sub("link")), ErrorCode::kAlreadyExists,
                std::string(what) + " \"" + dir_.Sub("link") + "\" is a symbolic link (to \"" + dir_.Sub("real-empty") +
                    "\"); give the directory itself");
    ExpectFails(opts(dir_.Sub("dangling")), ErrorCode::kAlreadyExists, "is a symbolic link (to \"" + dir_.Sub("nowhere"));
    ExpectFails(opts(dir_.Sub("a-file")), ErrorCode::kAlreadyExists,
                std::string(what) + " \"" + dir_.Sub("a-file") + "\" exists and is not a directory");
    // Before anything else: even a missing snapshot is reported second.
    RestoreOptions missing = opts(dir_.Sub("link"));
    missing.snapshot_path = dir_.Sub("no-such.db");
    ExpectFails(missing, ErrorCode::kAlreadyExists, "is a symbolic link");
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir_.Sub("real-empty")));
}

// Issue 12 §5: a restore with --wal-dir killed between its two renames left the WAL dir
// in place without the data dir, and every rerun failed "wal-dir exists and is not empty".
// Here that state is laid out as a killed run leaves it (WAL dir with our marker naming the
// data dir, the data dir's and the WAL root's locked-no-more temporaries): the rerun
// recognises it, removes it with notes, and restores.
TEST_F(RestoreFailure, RerunFinishesAfterAKillBetweenTheRenames) {
  RestoreOptions o = Opts(kData + "/small.db");
  o.wal_dir = dir_.Sub("wal");
  std::vector<std::string> notes;
  o.note = [&](const std::string& n) { notes.push_back(n); };
  Restore(o);  // the real thing, to copy its WAL segment
  EXPECT_TRUE(notes.empty());
  EXPECT_FALSE(PathExists(dir_.Sub("wal/") + kPendingMarker));
  RemoveAll(dir_.Sub("restored"));
  testutil::WriteFile(dir_.Sub("wal/") + kPendingMarker,
                      "etcdsafe restore: the data dir of this WAL is not committed yet\ndata-dir=" +
                          dir_.Sub("restored") + "\n");
  MakeDirs(dir_.Sub(".restored.etcdsafe-restore-Ab12Cd/member/snap"), 0700);
  testutil::WriteFile(dir_.Sub(".restored.etcdsafe-restore-Ab12Cd/member/snap/db"), "decrypted secrets");
  MakeDirs(dir_.Sub(".wal.etcdsafe-restore-Ef34Gh"), 0700);
  RestoreResult r = Restore(o);
  EXPECT_EQ(r.restored.revision, 8);
  EXPECT_EQ(notes, (std::vector<std::string>{
                       "removed " + dir_.Sub(".restored.etcdsafe-restore-Ab12Cd") + ", left by an interrupted restore",
                       "removed " + dir_.Sub(".wal.etcdsafe-restore-Ef34Gh") + ", left by an interrupted restore",
                       "removed wal-dir " + dir_.Sub("wal") + ", left by an interrupted restore whose data dir " +
                           dir_.Sub("restored") + " was never committed"}));
  EXPECT_EQ(ListDir(dir_.path()), (std::set<std::string>{"restored", "wal"}));
  EXPECT_EQ(ListDir(dir_.Sub("wal")), std::set<std::string>{"0000000000000000-0000000000000000.wal"});
}

// What is not provably ours is never removed: a marker naming another data dir, a WAL dir
// with other files, or a marker still locked by a live restore.
TEST_F(RestoreFailure, PendingWalOfAnotherRunIsLeftAlone) {
  RestoreOptions o = Opts(kData + "/small.db");
  o.wal_dir = dir_.Sub("wal");
  MakeDirs(dir_.Sub("wal"), 0700);
  const std::string marker = dir_.Sub("wal/") + kPendingMarker;
  testutil::WriteFile(dir_.Sub("wal/0000000000000000-0000000000000000.wal"), "wal");
  testutil::WriteFile(marker, "x\ndata-dir=/elsewhere/other.etcd\n");
  ExpectFails(o, ErrorCode::kAlreadyExists,
              "exists and is not empty (it holds the WAL of an interrupted restore into \"/elsewhere/other.etcd\")");
  testutil::WriteFile(marker, "x\ndata-dir=" + dir_.Sub("restored") + "\n");
  testutil::WriteFile(dir_.Sub("wal/notes.txt"), "the user's");
  ExpectFails(o, ErrorCode::kAlreadyExists, "wal-dir \"" + dir_.Sub("wal") + "\" exists and is not empty");
  ASSERT_EQ(::unlink(dir_.Sub("wal/notes.txt").c_str()), 0);
  int held = ::open(marker.c_str(), O_RDONLY);
  ASSERT_EQ(::flock(held, LOCK_EX), 0);
  ExpectFails(o, ErrorCode::kAlreadyExists, "is being committed by another restore");
  ::close(held);
  EXPECT_EQ(ListDir(dir_.Sub("wal")),
            (std::set<std::string>{"0000000000000000-0000000000000000.wal", kPendingMarker}));
  // A data dir that exists is never "absent": the WAL dir is kept and the restore refused.
  MakeDirs(dir_.Sub("restored/member"), 0700);
  ExpectFails(o, ErrorCode::kAlreadyExists, "data-dir \"" + dir_.Sub("restored") + "\" exists and is not empty");
  EXPECT_TRUE(PathExists(marker));
}

// A live restore's temporary sibling (its lock held) is not a leftover.
TEST_F(RestoreFailure, LiveTemporaryOfAnotherRestoreIsKept) {
  MakeDirs(dir_.Sub(".restored.etcdsafe-restore-Live99"), 0700);
  int held = ::open(dir_.Sub(".restored.etcdsafe-restore-Live99").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_EQ(::flock(held, LOCK_EX), 0);
  RestoreOptions o = Opts(kData + "/small.db");
  std::vector<std::string> notes;
  o.note = [&](const std::string& n) { notes.push_back(n); };
  Restore(o);
  ::close(held);
  EXPECT_TRUE(notes.empty());
  EXPECT_EQ(ListDir(dir_.path()), (std::set<std::string>{"restored", ".restored.etcdsafe-restore-Live99"}));
}

// For the repository restore: the input db's own numbers (as `snapshot status` computes
// them on the backed-up snapshot, before consistent_index is patched) reach the caller
// before anything is committed, and a throw leaves nothing behind.
TEST_F(RestoreFailure, RestoreFromDbHandsTheInputNumbersToTheCaller) {
  const std::string src = kData + "/small.db";
  const uint64_t db_size = testutil::ReadFile(src).size() - 32;
  auto write_db = [&](const std::string& db_path) {
    File out = File::Create(db_path, 0600);
    out.WriteAll(AsBytes(testutil::ReadFile(src).substr(0, db_size)));
    out.Close();
  };
  FileStatus expected = ReadStatus(src);
  RestoreOptions o = Opts(src);
  std::optional<StatusNumbers> seen;
  RestoreResult r = RestoreFromDb(o, db_size, write_db, {}, [&](const StatusNumbers& in) {
    EXPECT_FALSE(PathExists(dir_.Sub("restored")));
    seen = in;
  });
  ASSERT_TRUE(seen);
  EXPECT_EQ(seen->hash, expected.numbers.hash);
  EXPECT_EQ(seen->revision, expected.numbers.revision);
  EXPECT_EQ(seen->total_key, expected.numbers.total_key);
  EXPECT_NE(r.restored.hash, seen->hash);  // the restored db has consistent_index patched
  RemoveAll(dir_.Sub("restored"));
  o.wal_dir = dir_.Sub("wal");
  try {
    RestoreFromDb(o, db_size, write_db, {}, [&](const StatusNumbers& in) {
      throw Error(ErrorCode::kDataLoss, "revision " + std::to_string(in.revision) + " does not match the manifest");
    });
    FAIL() << "the check's throw did not abort the restore";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "revision 8 does not match the manifest");
  }
  EXPECT_EQ(ListDir(dir_.path()), std::set<std::string>{});
}

TEST(Restore, BumpRevisionAndMarkCompacted) {
  testutil::TempDir dir;
  RestoreOptions o;
  o.snapshot_path = kData + "/small.db";
  o.data_dir = dir.Sub("bumped");
  o.bump_revision = 1000;
  o.mark_compacted = true;
  RestoreResult r = Restore(o);
  EXPECT_TRUE(r.db_rewritten);
  EXPECT_EQ(r.restored.revision, 8 + 1000);
  EXPECT_EQ(r.restored.total_key, 12u + 1 /* bump marker */ + 1 /* scheduledCompactRev */);
  // etcdctl agrees with our reading of the rewritten db.
  std::string json = EtcdctlStatus(o.data_dir + "/member/snap/db");
  EXPECT_NE(json.find("\"revision\":1008"), std::string::npos) << json;
}

}  // namespace
}  // namespace etcdsafe::snapshot
