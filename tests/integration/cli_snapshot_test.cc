// End-to-end tests of the `etcdsafe snapshot` commands: the real binary against real
// etcd 3.4 servers (started on free loopback ports, mTLS where it matters), cross-checked
// with etcdctl, and restored data dirs started as real single- and 3-member clusters.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <set>

#include "base/bytes.h"
#include "base/checksum.h"
#include "base/file.h"
#include "bolt/builder.h"
#include "snapshot/inspect.h"
#include "client/etcd_client.h"
#include "testutil/cli.h"
#include "testutil/etcd_server.h"
#include "testutil/temp_dir.h"

namespace etcdsafe {
namespace {

using testutil::ListDir;
using testutil::EtcdServer;
using testutil::EtcdServerOptions;
using testutil::TempDir;
using testutil::CmdResult;
using testutil::Exec;
using testutil::KvDump;
using testutil::Concat;
using testutil::ShellQuote;
using testutil::Shell;
using testutil::DumpAll;
using testutil::IsOneLineError;

CmdResult Etcdsafe(const std::vector<std::string>& args, const std::string& env = "") {
  return Exec(ETCDSAFE_BINARY, args, env);
}
CmdResult Etcdctl(const std::vector<std::string>& args) { return Exec("ETCDCTL_API=3 /usr/bin/etcdctl", args); }

std::vector<std::string> TlsFlags(const EtcdServer& s) {
  return {"--endpoints", s.client_url(), "--cacert", s.certs().ca, "--cert", s.certs().client_cert,
          "--key", s.certs().client_key};
}

// Kubernetes-shaped keys with overwrites and deletes, so revisions and tombstones exist.
void Populate(client::EtcdClient& c) {
  for (int i = 0; i < 60; i++) {
    std::string ns = "ns" + std::to_string(i % 4);
    c.Put("/registry/pods/" + ns + "/pod-" + std::to_string(i), std::string(200 + i * 37, 'p'));
    c.Put("/registry/configmaps/" + ns + "/cm-" + std::to_string(i), "{\"data\":" + std::to_string(i) + "}");
  }
  for (int i = 0; i < 10; i++) c.Put("/registry/pods/ns0/pod-0", "v" + std::to_string(i));
  for (int i = 50; i < 60; i++) c.DeleteRange("/registry/pods/ns" + std::to_string(i % 4) + "/pod-" + std::to_string(i));
  c.Put("/registry/big/blob", std::string(150000, 'b'));
}

class SnapshotCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    EtcdServerOptions o;
    o.tls = true;
    o.name = "src";
    server_ = new EtcdServer(o);
    auto c = client::EtcdClient::Connect(server_->client_config());
    Populate(*c);
    source_dump_ = new auto(DumpAll(*c));
    source_rev_ = c->EndpointStatus().revision;
  }
  static void TearDownTestSuite() {
    delete server_;
    delete source_dump_;
  }
  // A fresh snapshot of the source server saved by etcdsafe.
  std::string Save() {
    std::string path = dir_.Sub("snap-" + std::to_string(counter_++) + ".db");
    CmdResult r = Etcdsafe(Concat({"snapshot", "save", path}, TlsFlags(*server_)));
    EXPECT_EQ(r.code, 0) << r.err;
    return path;
  }

  static EtcdServer* server_;
  static KvDump* source_dump_;
  static int64_t source_rev_;
  TempDir dir_;
  int counter_ = 0;
};
EtcdServer* SnapshotCli::server_ = nullptr;
KvDump* SnapshotCli::source_dump_ = nullptr;
int64_t SnapshotCli::source_rev_ = 0;

TEST_F(SnapshotCli, SaveOverMutualTlsEqualsEtcdctlSave) {
  std::string ours = dir_.Sub("ours.db"), theirs = dir_.Sub("theirs.db");
  CmdResult r = Etcdsafe(Concat({"snapshot", "save", ours}, TlsFlags(*server_)));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "Snapshot saved at " + ours + "\n");
  EXPECT_NE(r.err.find("verified"), std::string::npos) << r.err;
  CmdResult c = Etcdctl(Concat({"snapshot", "save", theirs}, TlsFlags(*server_)));
  ASSERT_EQ(c.code, 0) << c.err;
  // Quiescent server: both streams are the same bytes, trailer included.
  EXPECT_EQ(testutil::ReadFile(ours), testutil::ReadFile(theirs));
  struct stat st;
  ASSERT_EQ(::stat(ours.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(ListDir(dir_.path()), (std::set<std::string>{"ours.db", "theirs.db"}));
}

TEST_F(SnapshotCli, EnvironmentVariablesLikeEtcdctl) {
  std::string path = dir_.Sub("env.db");
  std::string env = "ETCDCTL_API=3 ETCDCTL_ENDPOINTS=" + ShellQuote(server_->client_url()) +
                    " ETCDCTL_CACERT=" + ShellQuote(server_->certs().ca) + " ETCDCTL_CERT=" +
                    ShellQuote(server_->certs().client_cert) + " ETCDCTL_KEY=" + ShellQuote(server_->certs().client_key);
  CmdResult r = Etcdsafe({"snapshot", "save", path}, env);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(PathExists(path));
}

TEST_F(SnapshotCli, FailsOverToTheNextEndpoint) {
  std::string path = dir_.Sub("failover.db");
  std::string dead = "https://127.0.0.1:" + std::to_string(testutil::FreePort());
  CmdResult r = Etcdsafe({"snapshot", "save", path, "--endpoints", dead + "," + server_->client_url(), "--cacert",
                    server_->certs().ca, "--cert", server_->certs().client_cert, "--key", server_->certs().client_key});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find(server_->client_url()), std::string::npos) << r.err;
}

TEST_F(SnapshotCli, StatusOutputIdenticalToEtcdctlInEveryFormat) {
  std::string path = Save();
  for (const char* w : {"simple", "table", "json", "fields"}) {
    CmdResult ours = Etcdsafe({"snapshot", "status", path, "-w", w});
    CmdResult theirs = Etcdctl({"snapshot", "status", path, "-w", w});
    EXPECT_EQ(ours.code, 0) << ours.err;
    EXPECT_EQ(ours.out, theirs.out) << w;
    // On success nothing but what etcdctl prints (cron scripts parse `2>&1`).
    EXPECT_EQ(ours.err, theirs.err) << w;
    EXPECT_EQ(ours.err, "") << w;
  }
  CmdResult ours = Etcdsafe({"snapshot", "status", path, "-w", "protobuf"});
  CmdResult theirs = Etcdctl({"snapshot", "status", path, "-w", "protobuf"});
  EXPECT_EQ(ours.code, theirs.code);
  EXPECT_EQ(ours.err, theirs.err);
  CmdResult verify = Etcdsafe({"snapshot", "verify", path});
  EXPECT_EQ(verify.code, 0) << verify.err;
}

TEST_F(SnapshotCli, RestoredSingleMemberServesExactlyTheSnapshot) {
  std::string path = Save();
  int peer = testutil::FreePort();
  std::string peer_url = "http://127.0.0.1:" + std::to_string(peer);
  std::string data = dir_.Sub("m1.etcd");
  CmdResult r = Etcdsafe({"snapshot", "restore", path, "--data-dir", data, "--name", "m1", "--initial-cluster",
                    "m1=" + peer_url, "--initial-advertise-peer-urls", peer_url, "--initial-cluster-token", "tok"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EtcdServerOptions o;
  o.name = "m1";
  o.data_dir = data;
  o.peer_port = peer;
  EtcdServer restored(o);
  auto c = client::EtcdClient::Connect(restored.client_config());
  EXPECT_TRUE(DumpAll(*c) == *source_dump_) << "restored data differs from the source";
  EXPECT_EQ(c->EndpointStatus().revision, source_rev_);
  EXPECT_EQ(c->MemberList().size(), 1u);
  c->Put("/registry/after-restore", "writable");
}

TEST_F(SnapshotCli, RestoredThreeMemberClusterIsHealthyWithSameDataEverywhere) {
  std::string path = Save();
  std::vector<int> peers = {testutil::FreePort(), testutil::FreePort(), testutil::FreePort()};
  std::string cluster;
  for (int i = 0; i < 3; i++) {
    cluster += (i ? "," : "") + std::string("m") + std::to_string(i + 1) + "=http://127.0.0.1:" + std::to_string(peers[i]);
  }
  std::vector<EtcdServerOptions> members;
  for (int i = 0; i < 3; i++) {
    std::string name = "m" + std::to_string(i + 1);
    std::string url = "http://127.0.0.1:" + std::to_string(peers[i]);
    CmdResult r = Etcdsafe({"snapshot", "restore", path, "--data-dir", dir_.Sub(name), "--name", name, "--initial-cluster",
                      cluster, "--initial-advertise-peer-urls", url, "--initial-cluster-token", "three"});
    ASSERT_EQ(r.code, 0) << r.err;
    EtcdServerOptions o;
    o.name = name;
    o.data_dir = dir_.Sub(name);
    o.peer_port = peers[i];
    o.initial_cluster = cluster;
    members.push_back(o);
  }
  auto servers = EtcdServer::StartCluster(members);
  for (auto& s : servers) {
    auto c = client::EtcdClient::Connect(s->client_config());
    c->Health();
    EXPECT_EQ(c->MemberList().size(), 3u);
    EXPECT_TRUE(DumpAll(*c) == *source_dump_) << s->name() << "restored data differs from the source";
  }
  // The cluster replicates new writes.
  auto c0 = client::EtcdClient::Connect(servers[0]->client_config());
  c0->Put("/registry/replicated", "yes");
  auto c2 = client::EtcdClient::Connect(servers[2]->client_config());
  EXPECT_EQ(c2->Range("/registry/replicated").kvs.size(), 1u);
}

TEST_F(SnapshotCli, BumpRevisionKeepsRevisionsMovingForward) {
  std::string path = Save();
  int peer = testutil::FreePort();
  std::string url = "http://127.0.0.1:" + std::to_string(peer);
  CmdResult r = Etcdsafe({"snapshot", "restore", path, "--data-dir", dir_.Sub("b.etcd"), "--name", "b", "--initial-cluster",
                    "b=" + url, "--initial-advertise-peer-urls", url, "--bump-revision", "1000000", "--mark-compacted"});
  ASSERT_EQ(r.code, 0) << r.err;
  EtcdServerOptions o;
  o.name = "b";
  o.data_dir = dir_.Sub("b.etcd");
  o.peer_port = peer;
  EtcdServer restored(o);
  auto c = client::EtcdClient::Connect(restored.client_config());
  EXPECT_TRUE(DumpAll(*c) == *source_dump_) << "restored data differs from the source";
  c->Put("/registry/after-bump", "x");
  EXPECT_GT(c->Range("/registry/after-bump").kvs.at(0).mod_revision, source_rev_ + 1000000);
}

// --- bad input: one line on stderr, the documented exit code, nothing left behind ---

TEST_F(SnapshotCli, BadSnapshotFilesAreRejectedCleanly) {
  std::string good = testutil::ReadFile(Save());
  std::string flipped = good;
  flipped[good.size() / 2] ^= 0x08;
  struct Case {
    std::string name, bytes;
    std::vector<std::string> extra;
    int code;
  } cases[] = {
      {"empty", "", {}, 1},
      {"garbage", std::string(10000, '\x5a'), {}, 1},
      {"truncated", good.substr(0, good.size() / 3), {}, 1},
      {"flipped", flipped, {}, 1},
      {"notrailer", good.substr(0, good.size() - 32), {}, 1},
  };
  for (const auto& c : cases) {
    TempDir d;
    testutil::WriteFile(d.Sub("in.db"), c.bytes);
    CmdResult r = Etcdsafe({"snapshot", "restore", d.Sub("in.db"), "--data-dir", d.Sub("out.etcd")});
    EXPECT_EQ(r.code, c.code) << c.name << ": " << r.err;
    EXPECT_TRUE(IsOneLineError(r)) << c.name << ": " << r.err;
    EXPECT_EQ(ListDir(d.path()), std::set<std::string>{"in.db"}) << c.name;
    if (c.name != "flipped" && c.name != "notrailer") {
      CmdResult s = Etcdsafe({"snapshot", "status", d.Sub("in.db")});
      EXPECT_EQ(s.code, 1) << c.name;
      EXPECT_TRUE(IsOneLineError(s)) << c.name << ": " << s.err;
    }
  }
}

TEST_F(SnapshotCli, ExistingDataDirIsNeverTouched) {
  std::string path = Save();
  MakeDirs(dir_.Sub("live.etcd/member"), 0700);
  testutil::WriteFile(dir_.Sub("live.etcd/member/keep"), "precious");
  CmdResult r = Etcdsafe({"snapshot", "restore", path, "--data-dir", dir_.Sub("live.etcd")});
  EXPECT_EQ(r.code, 13) << r.err;
  EXPECT_TRUE(IsOneLineError(r)) << r.err;
  EXPECT_EQ(testutil::ReadFile(dir_.Sub("live.etcd/member/keep")), "precious");
}

TEST_F(SnapshotCli, ConnectionFailuresNameTheCause) {
  std::string out = dir_.Sub("never.db");
  // Unreachable endpoint.
  CmdResult r = Etcdsafe({"snapshot", "save", out, "--endpoints", "127.0.0.1:" + std::to_string(testutil::FreePort())});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("connection refused"), std::string::npos) << r.err;
  EXPECT_TRUE(IsOneLineError(r)) << r.err;
  // Wrong CA.
  r = Etcdsafe({"snapshot", "save", out, "--endpoints", server_->client_url(), "--cacert", server_->certs().other_ca,
                "--cert", server_->certs().client_cert, "--key", server_->certs().client_key});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("certificate verify failed"), std::string::npos) << r.err;
  // Missing client certificate on a client-cert-auth server.
  r = Etcdsafe({"snapshot", "save", out, "--endpoints", server_->client_url(), "--cacert", server_->certs().ca});
  EXPECT_EQ(r.code, 12) << r.err;
  EXPECT_NE(r.err.find("client certificate"), std::string::npos) << r.err;
  // Bad arguments.
  r = Etcdsafe({"snapshot", "save"});
  EXPECT_EQ(r.code, 128);
  EXPECT_EQ(r.err, "Error: snapshot save expects one argument\n");
  EXPECT_EQ(ListDir(dir_.path()), std::set<std::string>{});
}

// A real full disk: a 256 KiB tmpfs in a private mount namespace (root only, as CI is).
TEST_F(SnapshotCli, FullDiskLeavesNothingBehind) {
  std::string snap = Save();
  std::string mnt = dir_.Sub("small-disk");
  MakeDirs(mnt, 0700);
  std::string save = std::string(ETCDSAFE_BINARY) + " snapshot save " + ShellQuote(mnt + "/x.db");
  for (const auto& f : TlsFlags(*server_)) save += " " + ShellQuote(f);
  std::string restore = std::string(ETCDSAFE_BINARY) + " snapshot restore " + ShellQuote(snap) + " --data-dir " +
                        ShellQuote(mnt + "/restored");
  std::string script = "mount -t tmpfs -o size=256k tmpfs " + ShellQuote(mnt) + " || exit 99; " + save +
                       "; echo save=$?; " + restore + "; echo restore=$?; ls -A " + ShellQuote(mnt) + "; echo end";
  CmdResult r = Exec("unshare -m sh -c " + ShellQuote(script), {});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("save=1\nrestore=1\nend\n"), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not enough free space"), std::string::npos) << r.err;
}

// SIGTERM in the middle of a restore (a 1 GB snapshot built with the bbolt writer) must
// leave nothing behind and exit 130.
// A bbolt file shaped like etcd's db (bucket "key" of revision keys -> `value_size`-byte
// values, some with overflow pages when large; bucket "meta" with consistent_index), plus
// the sha256 trailer etcd's snapshot stream appends.
void BuildSnapshot(const std::string& path, uint64_t keys, size_t value_size) {
  {
    bolt::Builder b(path);
    b.BeginBucket("key");
    std::string value(value_size, 'v');
    for (uint64_t i = 1; i <= keys; i++) {
      std::string k(17, '\0');
      StoreBE64(reinterpret_cast<uint8_t*>(k.data()), i);
      k[8] = '_';
      StoreBE64(reinterpret_cast<uint8_t*>(value.data()), i * 0x9E3779B97F4A7C15ull);
      b.Put(k, value);
    }
    b.EndBucket();
    b.BeginBucket("meta");
    b.Put("consistent_index", std::string(8, '\0'));
    b.EndBucket();
    (void)b.Finish();
  }
  Sha256Digest d = snapshot::HashFilePrefix(path, File::OpenRead(path).Size());
  File f = File::OpenReadWrite(path);
  f.WriteAt(f.Size(), d.data(), d.size());
  f.Close();
}

// The bound: status and restore peak under 64 MiB whatever the db size. Measured
// on the real binary for a 16 MiB and a 1.1 GiB snapshot: the big one stays under the
// bound and within 16 MiB of the small one. etcdctl's status of the big one agrees.
TEST(SnapshotCliMemory, StatusAndRestoreMemoryDoesNotGrowWithDbSize) {
  TempDir dir;
  struct Size {
    const char* name;
    uint64_t keys;
  } sizes[] = {{"small", 4000}, {"big", 270000}};  // x 4000-byte values
  long status_kib[2], restore_kib[2];
  for (int i = 0; i < 2; i++) {
    std::string db = dir.Sub(std::string(sizes[i].name) + ".db");
    BuildSnapshot(db, sizes[i].keys, 4000);
    CmdResult st = testutil::Run(ETCDSAFE_BINARY, {"snapshot", "status", db, "-w", "json"});
    ASSERT_EQ(st.code, 0) << st.err;
    status_kib[i] = st.max_rss_kib;
    if (i == 1) {
      EXPECT_GT(File::OpenRead(db).Size(), uint64_t{1} << 30);
      EXPECT_EQ(st.out, Etcdctl({"snapshot", "status", db, "-w", "json"}).out);
    }
    CmdResult re = testutil::Run(ETCDSAFE_BINARY, {"snapshot", "restore", db, "--data-dir", dir.Sub(sizes[i].name)});
    ASSERT_EQ(re.code, 0) << re.err;
    restore_kib[i] = re.max_rss_kib;
    if (!std::getenv("ETCDSAFE_KEEP_TMP")) {
      RemoveAll(dir.Sub(sizes[i].name));
      RemoveAll(db);
    }
  }
  RecordProperty("status_rss_kib", std::to_string(status_kib[1]));
  RecordProperty("restore_rss_kib", std::to_string(restore_kib[1]));
  EXPECT_LT(status_kib[1], 64 * 1024);
  EXPECT_LT(restore_kib[1], 64 * 1024);
  EXPECT_LT(status_kib[1] - status_kib[0], 16 * 1024) << status_kib[0] << " -> " << status_kib[1];
  EXPECT_LT(restore_kib[1] - restore_kib[0], 16 * 1024) << restore_kib[0] << " -> " << restore_kib[1];
}

TEST(SnapshotCliInterrupt, SigtermMidRestoreLeavesNothing) {
  TempDir dir;
  std::string db = dir.Sub("big.db");
  BuildSnapshot(db, 250000, 4000);
  std::string target = dir.Sub("restored");
  CmdResult r = Shell(std::string(ETCDSAFE_BINARY) + " snapshot restore " + ShellQuote(db) + " --data-dir " +
                      ShellQuote(target) + " & pid=$!; sleep 0.3; kill -TERM $pid; wait $pid");
  EXPECT_EQ(r.code, 130) << r.err;
  EXPECT_NE(r.err.find("interrupted"), std::string::npos) << r.err;
  EXPECT_EQ(ListDir(dir.path()), std::set<std::string>{"big.db"});
}

TEST(SnapshotCliAuth, PasswordAuthAndWrongPassword) {
  EtcdServer server;
  auto c = client::EtcdClient::Connect(server.client_config());
  c->Put("/registry/secret", "s");
  ASSERT_EQ(server.etcdctl({"user", "add", "root:rootpw"}).exit_code, 0);
  ASSERT_EQ(server.etcdctl({"auth", "enable"}).exit_code, 0);
  TempDir dir;
  CmdResult bad = Etcdsafe({"snapshot", "save", dir.Sub("bad.db"), "--endpoints", server.client_url(), "--user", "root:nope"});
  EXPECT_EQ(bad.code, 12) << bad.err;
  EXPECT_NE(bad.err.find("invalid user ID or password"), std::string::npos) << bad.err;
  EXPECT_FALSE(PathExists(dir.Sub("bad.db")));
  CmdResult ok = Etcdsafe({"snapshot", "save", dir.Sub("ok.db"), "--endpoints", server.client_url(), "--user", "root:rootpw"});
  EXPECT_EQ(ok.code, 0) << ok.err;
  CmdResult env = Etcdsafe({"snapshot", "save", dir.Sub("env.db"), "--endpoints", server.client_url()},
                     "ETCDCTL_USER=root ETCDCTL_PASSWORD=rootpw");
  EXPECT_EQ(env.code, 0) << env.err;
}

}  // namespace
}  // namespace etcdsafe
