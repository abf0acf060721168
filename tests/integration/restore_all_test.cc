// `snapshot restore --all-members` (issue 7): every member's data dir from one pass over
// the snapshot, each byte for byte what the per-member restore writes, a start plan on
// stdout, all members or none; and the three dirs started as a real etcd 3.4 cluster.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "client/etcd_client.h"
#include "testutil/cli.h"
#include "testutil/etcd_server.h"
#include "testutil/temp_dir.h"

namespace etcdsafe {
namespace {

using testutil::ListDir;
using testutil::CmdResult;
using testutil::Concat;
using testutil::DumpAll;
using testutil::EtcdServer;
using testutil::EtcdServerOptions;
using testutil::Exec;
using testutil::KvDump;
using testutil::Shell;
using testutil::ShellQuote;
using testutil::TempDir;

CmdResult Etcdsafe(const std::vector<std::string>& args) { return Exec(ETCDSAFE_BINARY, args); }


// Relative path → (mode, bytes; "" for a directory) of every entry under `root`.
std::map<std::string, std::pair<mode_t, std::string>> Tree(const std::string& root, const std::string& rel = "") {
  std::map<std::string, std::pair<mode_t, std::string>> out;
  for (const auto& n : ListDir(root + rel)) {
    std::string r = rel + "/" + n;
    struct stat st;
    EXPECT_EQ(::lstat((root + r).c_str(), &st), 0) << r;
    if (S_ISDIR(st.st_mode)) {
      out[r] = {st.st_mode, ""};
      out.merge(Tree(root, r));
    } else {
      out[r] = {st.st_mode, testutil::ReadFile(root + r)};
    }
  }
  return out;
}

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

class RestoreAll : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    source_ = new EtcdServer();
    snap_dir_ = new TempDir();
    // A fresh etcd's snapshot has no consistent_index: its db is rebuilt, not patched.
    empty_snap_ = snap_dir_->Sub("empty.db");
    CmdResult e = Etcdsafe({"snapshot", "save", empty_snap_, "--endpoints", source_->client_url()});
    ASSERT_EQ(e.code, 0) << e.err;
    auto c = client::EtcdClient::Connect(source_->client_config());
    for (int i = 0; i < 80; i++) {
      c->Put("/registry/pods/ns" + std::to_string(i % 3) + "/p" + std::to_string(i), std::string(100 + i * 11, 'v'));
    }
    for (int i = 0; i < 10; i++) c->DeleteRange("/registry/pods/ns0/p" + std::to_string(i * 3));
    dump_ = new KvDump(DumpAll(*c));
    snap_ = snap_dir_->Sub("snap.db");
    CmdResult r = Etcdsafe({"snapshot", "save", snap_, "--endpoints", source_->client_url()});
    ASSERT_EQ(r.code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    delete source_;
    delete dump_;
    delete snap_dir_;
  }
  // Members m1..m3 started from <out>/<name>, each named in the restore's start plan.
  static std::vector<EtcdServerOptions> Members(const std::string& out, const std::vector<int>& peers,
                                                const std::string& cluster, const std::string& token,
                                                const std::string& plan) {
    std::vector<EtcdServerOptions> members;
    for (int i = 0; i < 3; i++) {
      EtcdServerOptions o;
      o.name = "m" + std::to_string(i + 1);
      o.data_dir = out + "/" + o.name;
      o.peer_port = peers[i];
      o.initial_cluster = cluster;
      o.initial_cluster_token = token;
      EXPECT_TRUE(Contains(plan, "etcd --name " + o.name + " --data-dir " + o.data_dir)) << plan;
      members.push_back(o);
    }
    return members;
  }
  // A failing --all-members run: exit code, one line, nothing new in dir_.
  void ExpectRefused(const std::vector<std::string>& extra, int code, const std::string& part) {
    std::set<std::string> before = ListDir(dir_.path());
    std::set<std::string> before_out = ListDir(dir_.Sub("out"));
    CmdResult r = Etcdsafe(Concat({"snapshot", "restore", snap_}, extra));
    EXPECT_EQ(r.code, code) << r.err;
    EXPECT_TRUE(testutil::IsOneLineError(r)) << r.err;
    EXPECT_TRUE(Contains(r.err, part)) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(ListDir(dir_.path()), before);
    EXPECT_EQ(ListDir(dir_.Sub("out")), before_out);
  }

  static EtcdServer* source_;
  static KvDump* dump_;
  static TempDir* snap_dir_;
  static std::string snap_, empty_snap_;
  TempDir dir_;
};
EtcdServer* RestoreAll::source_ = nullptr;
KvDump* RestoreAll::dump_ = nullptr;
TempDir* RestoreAll::snap_dir_ = nullptr;
std::string RestoreAll::snap_;
std::string RestoreAll::empty_snap_;

// Each member's tree (db, WAL, .snap; modes) equals `snapshot restore --name mX
// --initial-advertise-peer-urls <mX's URLs>` with the same flags: plain, with a member
// that has two peer URLs, with --bump-revision/--mark-compacted (a rebuilt db), and for a
// fresh etcd's snapshot (rebuilt to add consistent_index).
TEST_F(RestoreAll, EveryMemberDirIsByteForBytePerMemberRestore) {
  const std::string cluster =
      "m1=http://127.0.0.1:12380,m2=http://127.0.0.1:12381,m3=http://127.0.0.1:12382,m2=https://127.0.0.1:12391";
  const std::map<std::string, std::string> urls = {{"m1", "http://127.0.0.1:12380"},
                                                   {"m2", "http://127.0.0.1:12381,https://127.0.0.1:12391"},
                                                   {"m3", "http://127.0.0.1:12382"}};
  int run = 0;
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {snap_, {}}, {snap_, {"--bump-revision", "1000", "--mark-compacted"}}, {empty_snap_, {}}};
  for (const auto& [snapshot, extra] : cases) {
    const std::string all = dir_.Sub("all" + std::to_string(run)), per = dir_.Sub("per" + std::to_string(run));
    run++;
    CmdResult r = Etcdsafe(Concat({"snapshot", "restore", snapshot, "--initial-cluster", cluster,
                                   "--initial-cluster-token", "tok", "--all-members", "--output-dir", all},
                                  extra));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(ListDir(all), (std::set<std::string>{"m1", "m2", "m3"}));
    for (const auto& [name, url] : urls) {
      CmdResult one = Etcdsafe(Concat({"snapshot", "restore", snapshot, "--name", name, "--initial-cluster", cluster,
                                       "--initial-cluster-token", "tok", "--initial-advertise-peer-urls", url,
                                       "--data-dir", per + "/" + name},
                                      extra));
      ASSERT_EQ(one.code, 0) << one.err;
      auto a = Tree(all + "/" + name), b = Tree(per + "/" + name);
      EXPECT_EQ(a.size(), b.size()) << name;
      EXPECT_GE(a.size(), 6u) << name;  // member, snap, db, .snap, wal, the segment
      EXPECT_TRUE(a == b) << name << ": --all-members differs from the per-member restore";
      EXPECT_EQ(Tree(all + "/" + name).count("/member/snap/db"), 1u);
      // The plan names this member's dir and flags.
      EXPECT_TRUE(Contains(r.out, "etcd --name " + name + " --data-dir " + all + "/" + name + " --initial-cluster " +
                                      cluster + " --initial-cluster-token tok --initial-advertise-peer-urls " + url +
                                      " --listen-peer-urls " + url + " --initial-cluster-state new"))
          << r.out;
    }
    EXPECT_TRUE(Contains(r.out, "CLIENT_URLS")) << r.out;
    // The db differs between members only if something is wrong: it is the same file.
    EXPECT_EQ(testutil::ReadFile(all + "/m1/member/snap/db"), testutil::ReadFile(all + "/m3/member/snap/db"));
  }
}

// The three dirs start as one healthy etcd 3.4 cluster: same data and cluster ID on every
// member, and it replicates a new write.
TEST_F(RestoreAll, RestoredMembersStartAsOneHealthyCluster) {
  std::vector<int> peers = {testutil::FreePort(), testutil::FreePort(), testutil::FreePort()};
  std::string cluster;
  for (int i = 0; i < 3; i++) {
    cluster += (i ? "," : "") + std::string("m") + std::to_string(i + 1) + "=http://127.0.0.1:" + std::to_string(peers[i]);
  }
  const std::string out = dir_.Sub("out");
  CmdResult r = Etcdsafe({"snapshot", "restore", snap_, "--initial-cluster", cluster, "--initial-cluster-token",
                          "restored", "--all-members", "--output-dir", out, "--name", "m2"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ListDir(out), (std::set<std::string>{"m1", "m2", "m3"}));  // no temporaries left
  std::vector<EtcdServerOptions> members = Members(out, peers, cluster, "restored", r.out);
  auto servers = EtcdServer::StartCluster(members);
  std::set<uint64_t> cluster_ids, member_ids;
  for (auto& s : servers) {
    auto c = client::EtcdClient::Connect(s->client_config());
    c->Health();
    client::EtcdClient::Status st = c->EndpointStatus();
    cluster_ids.insert(st.header.cluster_id);
    member_ids.insert(st.header.member_id);
    EXPECT_EQ(c->MemberList().size(), 3u);
    EXPECT_TRUE(DumpAll(*c) == *dump_) << s->name() << ": restored data differs from the source";
  }
  EXPECT_EQ(cluster_ids.size(), 1u);
  EXPECT_EQ(member_ids.size(), 3u);
  // The plan's cluster line carries the ID the members report.
  char hex[32];
  std::snprintf(hex, sizeof hex, "%llx", static_cast<unsigned long long>(*cluster_ids.begin()));
  EXPECT_TRUE(Contains(r.out, std::string("# cluster ") + hex + ", 3 members")) << r.out;
  auto c0 = client::EtcdClient::Connect(servers[0]->client_config());
  c0->Put("/registry/replicated", "yes");
  auto c2 = client::EtcdClient::Connect(servers[2]->client_config());
  EXPECT_EQ(c2->Range("/registry/replicated").kvs.size(), 1u);
}

// restore --repo --all-members: the backup is downloaded, decrypted and checked once, and
// every member's dir is written from it; the three start as one cluster with the data.
TEST_F(RestoreAll, FromAnEncryptedRepositoryBackupInOnePass) {
  const std::string repo = "file://" + dir_.Sub("repo");
  const std::string key = dir_.Sub("key");
  {
    FILE* f = std::fopen(key.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    for (int i = 0; i < 32; i++) std::fputc(i * 7 + 1, f);
    std::fclose(f);
    ::chmod(key.c_str(), 0600);
  }
  CmdResult b = Etcdsafe({"backup", "--repo", repo, "--encryption-key-file", key, "--endpoints", source_->client_url()});
  ASSERT_EQ(b.code, 0) << b.err;
  std::vector<int> peers = {testutil::FreePort(), testutil::FreePort(), testutil::FreePort()};
  std::string cluster;
  for (int i = 0; i < 3; i++) {
    cluster += (i ? "," : "") + std::string("m") + std::to_string(i + 1) + "=http://127.0.0.1:" + std::to_string(peers[i]);
  }
  const std::string out = dir_.Sub("out");
  // Bad combinations first: one line, exit 128, nothing written.
  for (const auto& extra : std::vector<std::vector<std::string>>{
           {"--data-dir", dir_.Sub("x")}, {"--to-latest"}, {"--kubeadm"}}) {
    CmdResult bad = Etcdsafe(Concat({"restore", "--repo", repo, "--encryption-key-file", key, "--initial-cluster",
                                     cluster, "--all-members", "--output-dir", out},
                                    extra));
    EXPECT_EQ(bad.code, 128) << bad.err;
    EXPECT_TRUE(testutil::IsOneLineError(bad)) << bad.err;
    EXPECT_TRUE(Contains(bad.err, "does not go with --all-members")) << bad.err;
  }
  CmdResult nocluster = Etcdsafe({"restore", "--repo", repo, "--encryption-key-file", key, "--all-members",
                                  "--output-dir", out});
  EXPECT_EQ(nocluster.code, 128) << nocluster.err;
  EXPECT_TRUE(Contains(nocluster.err, "--all-members needs --initial-cluster")) << nocluster.err;
  CmdResult norepo = Etcdsafe({"restore", "--initial-cluster", cluster, "--all-members", "--output-dir", out});
  EXPECT_EQ(norepo.code, 128) << norepo.err;
  EXPECT_FALSE(PathExists(out));

  CmdResult r = Etcdsafe({"restore", "--repo", repo, "--encryption-key-file", key, "--initial-cluster", cluster,
                          "--initial-cluster-token", "from-repo", "--all-members", "--output-dir", out});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(ListDir(out), (std::set<std::string>{"m1", "m2", "m3"}));
  EXPECT_EQ(testutil::ReadFile(out + "/m1/member/snap/db"), testutil::ReadFile(out + "/m2/member/snap/db"));
  EXPECT_EQ(testutil::ReadFile(out + "/m1/member/snap/db"), testutil::ReadFile(out + "/m3/member/snap/db"));
  // The hash reported for each member is its db's own (etcdctl's snapshot status).
  CmdResult st = Shell("ETCDCTL_API=3 etcdctl snapshot status " + ShellQuote(out + "/m1/member/snap/db") + " -w json");
  ASSERT_EQ(st.code, 0) << st.err;
  char hex[32];
  std::snprintf(hex, sizeof hex, ", hash %x,", nlohmann::json::parse(st.out)["hash"].get<uint32_t>());
  EXPECT_TRUE(Contains(r.err, hex)) << r.err << st.out;
  std::vector<EtcdServerOptions> members = Members(out, peers, cluster, "from-repo", r.out);
  auto servers = EtcdServer::StartCluster(members);
  std::set<uint64_t> cluster_ids;
  for (auto& s : servers) {
    auto c = client::EtcdClient::Connect(s->client_config());
    c->Health();
    cluster_ids.insert(c->EndpointStatus().header.cluster_id);
    EXPECT_TRUE(DumpAll(*c) == *dump_) << s->name() << ": restored data differs from the source";
  }
  EXPECT_EQ(cluster_ids.size(), 1u);
}

TEST_F(RestoreAll, BadInputIsRefusedWithOneLineAndNothingWritten) {
  const std::string cluster = "a=http://127.0.0.1:12480,b=http://127.0.0.1:12481";
  const std::string out = dir_.Sub("out");
  const std::vector<std::string> base = {"--initial-cluster", cluster, "--all-members", "--output-dir", out};
  ExpectRefused(Concat(base, {"--name", "zz"}), 128, "--name \"zz\" is not a member of --initial-cluster");
  ExpectRefused({"--initial-cluster", cluster, "--all-members"}, 128, "--all-members needs --output-dir");
  ExpectRefused({"--initial-cluster", cluster, "--output-dir", out}, 128, "--output-dir needs --all-members");
  ExpectRefused({"--all-members", "--output-dir", out}, 128, "--all-members needs --initial-cluster");
  ExpectRefused(Concat(base, {"--data-dir", dir_.Sub("d")}), 128, "cannot be used with --all-members");
  ExpectRefused(Concat(base, {"--initial-advertise-peer-urls", "http://127.0.0.1:12480"}), 128,
                "cannot be used with --all-members");
  ExpectRefused({"--initial-cluster", "a=http://127.0.0.1:1,a", "--all-members", "--output-dir", out}, 128, "");
  // An existing non-empty member dir: exit 13, and no other member is written either.
  ASSERT_EQ(::mkdir(out.c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((out + "/b").c_str(), 0700), 0);
  testutil::WriteFile(out + "/b/keep", "mine");
  ExpectRefused(base, 13, "data-dir \"" + out + "/b\" exists and is not empty");
  EXPECT_EQ(testutil::ReadFile(out + "/b/keep"), "mine");
  ::unlink((out + "/b/keep").c_str());
  // A corrupt snapshot (hash mismatch): exit 1, no member dir and no temporary.
  std::string bad = dir_.Sub("bad.db");
  std::string bytes = testutil::ReadFile(snap_);
  bytes[5000] ^= 0x55;
  testutil::WriteFile(bad, bytes);
  CmdResult r = Etcdsafe(Concat({"snapshot", "restore", bad}, base));
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_TRUE(testutil::IsOneLineError(r)) << r.err;
  EXPECT_TRUE(Contains(r.err, "expected sha256")) << r.err;
  EXPECT_EQ(ListDir(out), (std::set<std::string>{"b"}));
  EXPECT_EQ(ListDir(out + "/b"), std::set<std::string>{});
}

// Ctrl-C once every member's db exists (then the run waits at the pause before the commit;
// earlier or there, the outcome must be the same): exit 130, nothing left.
TEST_F(RestoreAll, InterruptBeforeCommitLeavesNothing) {
  const std::string out = dir_.Sub("out");
  const std::string cmd = "ETCDSAFE_TEST_PAUSE=restore-all-before-commit:20000 " + ShellQuote(ETCDSAFE_BINARY) +
                          " snapshot restore " + ShellQuote(snap_) +
                          " --initial-cluster a=http://127.0.0.1:12580,b=http://127.0.0.1:12581,"
                          "c=http://127.0.0.1:12582 --all-members --output-dir " +
                          ShellQuote(out);
  CmdResult r = Shell(cmd + " & pid=$!; i=0; while [ \"$(ls " + ShellQuote(out) +
                      "/.*/member/snap/db 2>/dev/null | wc -l)\" -lt 3 ] && [ $i -lt 2000 ]; do sleep 0.01; "
                      "i=$((i+1)); done; sleep 0.2; kill -INT $pid; wait $pid");
  EXPECT_EQ(r.code, 130) << r.err;
  EXPECT_EQ(ListDir(out), std::set<std::string>{});
}

}  // namespace
}  // namespace etcdsafe
