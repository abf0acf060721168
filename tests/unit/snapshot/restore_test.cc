// Restore compared byte for byte with `etcdctl snapshot restore` (3.4.23) on the same
// snapshot and flags, plus the failure modes that must leave nothing behind.
#include "snapshot/restore.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

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

void CompareWithEtcdctl(const std::string& snapshot, const Flags& f) {
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
  EXPECT_FALSE(r.db_rewritten);
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
