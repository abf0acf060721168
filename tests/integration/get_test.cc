// End-to-end tests of `etcdsafe get`: the real binary against a real etcd 3.4 with
// overwrites, deletes, a re-created key, a txn of several puts, leases, binary (non-UTF-8,
// NUL) keys and values and a compaction. For a matrix of flags, the live output must be
// etcdctl's byte for byte (stdout, exit code, the error line); `--from-snapshot` on a
// snapshot saved from that etcd must be byte for byte what etcdctl prints against an etcd
// restored (by etcdctl) from the same file, header included. Plus bad input and the
// memory bound on a 100+ MB snapshot.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "bolt/builder.h"
#include "client/etcd_client.h"
#include "testutil/cli.h"
#include "testutil/etcd_server.h"
#include "testutil/temp_dir.h"

namespace etcdsafe {
namespace {

using testutil::CmdResult;
using testutil::Concat;
using testutil::EtcdServer;
using testutil::EtcdServerOptions;
using testutil::Exec;
using testutil::IsOneLineError;
using testutil::Shell;
using testutil::ShellQuote;
using testutil::TempDir;

CmdResult Etcdsafe(const std::vector<std::string>& args) { return Exec(ETCDSAFE_BINARY, args); }

std::string LastLine(const std::string& s) {
  std::string t = s;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

int64_t Revision(client::EtcdClient& c) { return c.EndpointStatus().revision; }

struct Revs {
  int64_t compacted = 0;      // compaction point: everything before it is gone
  int64_t before_delete = 0;  // == compacted: pods 20-23 still live
  int64_t after_delete = 0;
  int64_t after_txn = 0;
  int64_t final_rev = 0;
};

class GetCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    EtcdServerOptions o;
    o.name = "live";
    live_ = new EtcdServer(o);
    auto c = client::EtcdClient::Connect(live_->client_config());
    for (int i = 0; i < 24; i++) {
      const std::string ns = "ns" + std::to_string(i % 4);
      c->Put("/registry/pods/" + ns + "/pod-" + std::to_string(i), "{\"pod\":" + std::to_string(i) + "}");
      if (i % 2 == 0) c->Put("/registry/configmaps/" + ns + "/cm-" + std::to_string(i), std::string(100 + i, 'c'));
    }
    for (int i = 0; i < 5; i++) c->Put("/registry/pods/ns0/pod-0", "overwrite-" + std::to_string(i));
    revs_.before_delete = Revision(*c);
    for (int i = 20; i < 24; i++) c->DeleteRange("/registry/pods/ns" + std::to_string(i % 4) + "/pod-" + std::to_string(i));
    revs_.after_delete = Revision(*c);
    // One txn, several puts: one main revision, sub revisions 0..3.
    CmdResult txn = Shell("printf '\\nput /txn/a 1\\nput /txn/b 2\\nput /txn/c 3\\nput /registry/configmaps/ns0/cm-0 "
                          "txn-overwrite\\n\\n\\n' | ETCDCTL_API=3 /usr/bin/etcdctl --endpoints " +
                          live_->client_url() + " txn");
    EXPECT_EQ(txn.code, 0) << txn.err;
    EXPECT_EQ(txn.out.substr(0, 7), "SUCCESS") << txn.out;
    revs_.after_txn = Revision(*c);
    EXPECT_EQ(revs_.after_txn, revs_.after_delete + 1);
    // A lease long enough to outlive the test (a restored etcd re-grants its full TTL).
    testutil::EtcdctlResult grant = live_->etcdctl({"lease", "grant", "900"});
    EXPECT_EQ(grant.exit_code, 0) << grant.err;
    const std::string lease = grant.out.substr(6, grant.out.find(' ', 6) - 6);  // "lease <hex> granted..."
    for (const char* k : {"/leased/k1", "/leased/k2"}) {
      testutil::EtcdctlResult put = live_->etcdctl({"put", k, "with-lease", "--lease=" + lease});
      EXPECT_EQ(put.exit_code, 0) << put.err;
    }
    c->Put(std::string("\xff\xfe" "bin", 5), std::string("\x80\x81\x00\xff", 4));
    c->Put(std::string("bin/\x00nul", 8), "nul key");
    c->Put("\xc3\x28-invalid-utf8", "\xe2\x82");
    c->Put("/empty", "");
    // Compact at before_delete: older revisions of pod-0 are gone, the deletes stay.
    revs_.compacted = revs_.before_delete;
    testutil::EtcdctlResult compact = live_->etcdctl({"compact", std::to_string(revs_.compacted)});
    EXPECT_EQ(compact.exit_code, 0) << compact.err;
    c->Put("/registry/pods/ns0/pod-20", "re-created");  // deleted, then back
    c->DeleteRange("/txn/b");
    revs_.final_rev = Revision(*c);

    dir_ = new TempDir();
    snapshot_ = dir_->Sub("snap.db");
    testutil::EtcdctlResult save = live_->etcdctl({"snapshot", "save", snapshot_});
    EXPECT_EQ(save.exit_code, 0) << save.err;

    // etcdctl's own restore, started as a real etcd: the reference for --from-snapshot.
    const int peer = testutil::FreePort();
    const std::string peer_url = "http://127.0.0.1:" + std::to_string(peer);
    identity_ = {"--name", "r1", "--initial-cluster", "r1=" + peer_url, "--initial-advertise-peer-urls", peer_url,
                 "--initial-cluster-token", "get-test"};
    CmdResult restore = Exec("ETCDCTL_API=3 /usr/bin/etcdctl",
                             Concat({"snapshot", "restore", snapshot_, "--data-dir", dir_->Sub("r1.etcd")}, identity_));
    EXPECT_EQ(restore.code, 0) << restore.err;
    EtcdServerOptions ro;
    ro.name = "r1";
    ro.data_dir = dir_->Sub("r1.etcd");
    ro.peer_port = peer;
    ro.initial_cluster_token = "get-test";
    restored_ = new EtcdServer(ro);
  }
  static void TearDownTestSuite() {
    delete restored_;
    delete live_;
    delete dir_;
  }

  static CmdResult Etcdctl(const EtcdServer& s, const std::vector<std::string>& args) {
    testutil::EtcdctlResult r = s.etcdctl(args);
    CmdResult out;
    out.code = r.exit_code;
    out.out = r.out;
    out.err = r.err;
    return out;
  }

  // Same exit code, same stdout, and for failures the same error line (etcdctl logs
  // retries as JSON lines before it; ours is the only line).
  static void ExpectSame(const std::vector<std::string>& args, const CmdResult& ours, const CmdResult& theirs,
                         const char* what) {
    std::string shown;
    for (const auto& a : args) shown += ShellQuote(a) + " ";
    EXPECT_EQ(ours.code, theirs.code) << what << ": get " << shown << "\nours: " << ours.err << "\netcdctl: " << theirs.err;
    EXPECT_EQ(ours.out, theirs.out) << what << ": get " << shown;
    if (theirs.code != 0) {
      EXPECT_EQ(LastLine(ours.err), LastLine(theirs.err)) << what << ": get " << shown;
      EXPECT_TRUE(IsOneLineError(ours)) << ours.err;
    } else {
      EXPECT_EQ(ours.err, "") << what << ": get " << shown;
    }
  }

  static std::vector<std::vector<std::string>> Matrix() {
    const Revs& r = revs_;
    auto rev = [](int64_t v) { return "--rev=" + std::to_string(v); };
    std::vector<std::vector<std::string>> m = {
        {"/registry/pods/ns0/pod-0"},
        {"/registry/pods/ns0/pod-0", "-w", "json"},
        {"/registry/", "--prefix"},
        {"/registry/", "--prefix", "-w", "json"},
        {"/registry/pods/", "/registry/pods/ns2"},
        {"/registry/pods/", "/registry/pods/ns2", "-w", "json"},
        {"/registry/", "--prefix", "--keys-only"},
        {"/registry/", "--prefix", "--keys-only", "-w", "json"},
        {"/registry/", "--prefix", "--print-value-only"},
        {"/registry/", "--prefix", "--keys-only", "--print-value-only"},
        {"/registry/", "--prefix", "--limit", "3"},
        {"/registry/", "--prefix", "--limit", "3", "-w", "json"},
        {"/registry/", "--prefix", "--limit=1000", "-w", "json"},
        {"", "--prefix"},
        {"", "--prefix", "-w", "json"},
        {"", "--from-key", "--keys-only"},
        {"/registry/pods/ns3", "--from-key", "-w", "json", "--limit", "2"},
        {"/txn/", "--prefix", "-w", "json"},
        {"/leased/", "--prefix", "-w", "json"},
        {std::string("\xff\xfe" "bin", 5)},
        {std::string("\xff\xfe" "bin", 5), "-w", "json"},
        {"\xc3\x28-invalid-utf8", "-w", "json"},
        {"/empty"},
        {"/empty", "-w", "json"},
        {"/does/not/exist"},
        {"/does/not/exist", "-w", "json"},
        {"/z", "/a"},  // end below key: empty
        {"", "--prefix", rev(r.compacted), "-w", "json"},
        {"", "--prefix", rev(r.before_delete)},
        {"/registry/pods/", "--prefix", rev(r.after_delete), "--keys-only"},
        {"", "--prefix", rev(r.after_txn), "-w", "json"},
        {"", "--prefix", rev(r.final_rev), "-w", "json"},
        {"/registry/pods/ns0/pod-20", rev(r.before_delete), "-w", "json"},
        {"/registry/pods/ns0/pod-20", rev(r.after_delete)},
        {"/registry/pods/ns0/pod-20", "-w", "json"},
        {"/txn/b", rev(r.after_txn)},
        {"--rev=-5", "/registry/pods/ns0/pod-0"},
        {"--limit=-1", "/registry/", "--prefix", "--keys-only"},
        // Refused by etcd: exit 1 with its message.
        {"/registry/pods/ns0/pod-0", rev(r.compacted - 1)},
        {"/registry/pods/ns0/pod-0", rev(r.final_rev + 1)},
        {""},
        // Refused by etcdctl's own checks: exit 128 / 4.
        {},
        {"a", "--prefix", "--from-key"},
        {"a", "b", "--prefix"},
        {"a", "--print-value-only", "-w", "json"},
        {"a", "-w", "table"},
        {"a", "b", "c"},  // a third argument is ignored
    };
    return m;
  }

  static EtcdServer* live_;
  static EtcdServer* restored_;
  static TempDir* dir_;
  static std::string snapshot_;
  static std::vector<std::string> identity_;
  static Revs revs_;
};

EtcdServer* GetCli::live_ = nullptr;
EtcdServer* GetCli::restored_ = nullptr;
TempDir* GetCli::dir_ = nullptr;
std::string GetCli::snapshot_;
std::vector<std::string> GetCli::identity_;
Revs GetCli::revs_;

TEST_F(GetCli, LiveOutputIsEtcdctls) {
  ASSERT_GT(revs_.final_rev, revs_.after_txn);
  for (const auto& args : Matrix()) {
    CmdResult ours = Etcdsafe(Concat({"get", "--endpoints", live_->client_url()}, args));
    ExpectSame(args, ours, Etcdctl(*live_, Concat({"get"}, args)), "live");
  }
  // The matrix is not vacuous: binary values, leases, more and the header are in it.
  CmdResult all = Etcdsafe({"get", "--endpoints", live_->client_url(), "", "--prefix", "-w", "json", "--limit=2"});
  EXPECT_NE(all.out.find("\"more\":true"), std::string::npos) << all.out;
  EXPECT_NE(all.out.find("\"raft_term\":"), std::string::npos) << all.out;
  CmdResult bin = Etcdsafe({"get", "--endpoints", live_->client_url(), std::string("\xff\xfe" "bin", 5)});
  EXPECT_EQ(bin.out, std::string("\xff\xfe" "bin\n\x80\x81\x00\xff\n", 11));
}

TEST_F(GetCli, FromSnapshotIsEtcdctlAgainstTheRestoredEtcd) {
  for (const auto& args : Matrix()) {
    CmdResult ours = Etcdsafe(Concat(Concat({"get", "--from-snapshot", snapshot_}, identity_), args));
    ExpectSame(args, ours, Etcdctl(*restored_, Concat({"get"}, args)), "from-snapshot");
  }
  // The header is the restored member's, not the live one's.
  CmdResult ours = Etcdsafe(Concat(Concat({"get", "--from-snapshot", snapshot_}, identity_), {"/empty", "-w", "json"}));
  CmdResult live = Etcdctl(*live_, {"get", "/empty", "-w", "json"});
  EXPECT_NE(ours.out, live.out);
  // No endpoint is contacted: an unreachable one changes nothing.
  CmdResult offline = Etcdsafe(Concat(Concat({"get", "--from-snapshot", snapshot_, "--endpoints", "127.0.0.1:1"}, identity_),
                                      {"", "--prefix", "-w", "json"}));
  EXPECT_EQ(offline.code, 0) << offline.err;
  EXPECT_EQ(offline.out, Etcdctl(*restored_, {"get", "", "--prefix", "-w", "json"}).out);
}

// `--repo R --backup latest`: a backup of the same etcd (same revision, nothing written since
// the snapshot) read through the backup pipeline answers like etcdctl against the etcd
// restored from the snapshot; the scratch directory under $TMPDIR is gone afterwards.
TEST_F(GetCli, FromRepositoryBackupIsEtcdctlAgainstTheRestoredEtcd) {
  const std::string repo = "file://" + dir_->Sub("repo");
  CmdResult b = Etcdsafe({"backup", "--repo", repo, "--endpoints", live_->client_url()});
  ASSERT_EQ(b.code, 0) << b.err;
  TempDir tmp;
  const std::vector<std::vector<std::string>> cases = {
      {"", "--prefix", "-w", "json"},
      {"/registry/", "--prefix", "--keys-only", "--limit", "3", "-w", "json"},
      {"/registry/pods/ns0/pod-20", "--rev=" + std::to_string(revs_.before_delete), "-w", "json"},
      {"/registry/pods/ns0/pod-0", "--rev=" + std::to_string(revs_.compacted - 1)},
  };
  for (const auto& args : cases) {
    CmdResult ours = Exec(ETCDSAFE_BINARY, Concat(Concat({"get", "--repo", repo, "--backup", "latest"}, identity_), args),
                          "TMPDIR=" + tmp.path());
    ExpectSame(args, ours, Etcdctl(*restored_, Concat({"get"}, args)), "repo");
    CmdResult ls = Shell("ls -A " + ShellQuote(tmp.path()));
    EXPECT_EQ(ls.out, "") << "scratch left behind";
  }
  CmdResult missing = Etcdsafe({"get", "--repo", repo, "--backup", "etcd-snapshot-20200101-000000-r1", "a"});
  EXPECT_EQ(missing.code, 10) << missing.err;
  EXPECT_TRUE(IsOneLineError(missing)) << missing.err;
  CmdResult both = Etcdsafe({"get", "--repo", repo, "--from-snapshot", snapshot_, "a"});
  EXPECT_EQ(both.code, 128) << both.err;
}

TEST_F(GetCli, FromSnapshotBadInput) {
  CmdResult missing = Etcdsafe({"get", "--from-snapshot", dir_->Sub("nope.db"), "a"});
  EXPECT_EQ(missing.code, 10) << missing.err;
  EXPECT_TRUE(IsOneLineError(missing)) << missing.err;
  testutil::WriteFile(dir_->Sub("junk.db"), std::string(10000, 'x'));
  CmdResult junk = Etcdsafe({"get", "--from-snapshot", dir_->Sub("junk.db"), "a"});
  EXPECT_EQ(junk.code, 1) << junk.err;
  EXPECT_TRUE(IsOneLineError(junk)) << junk.err;
  EXPECT_EQ(junk.out, "");
  // A snapshot whose key bucket holds a value that is not a KeyValue protobuf.
  {
    bolt::Builder b(dir_->Sub("badkv.db"));
    b.BeginBucket("key");
    std::string k(17, '\0');
    StoreBE64(reinterpret_cast<uint8_t*>(k.data()), 2);
    k[8] = '_';
    b.Put(k, std::string("\x0a\x40short", 7));
    b.EndBucket();
    b.Finish();
  }
  CmdResult badkv = Etcdsafe({"get", "--from-snapshot", dir_->Sub("badkv.db"), "", "--prefix"});
  EXPECT_EQ(badkv.code, 1) << badkv.err;
  EXPECT_TRUE(IsOneLineError(badkv)) << badkv.err;
  EXPECT_NE(badkv.err.find("not a KeyValue"), std::string::npos) << badkv.err;
  // Restore flags etcdctl would refuse are refused the same way, before the file is read.
  CmdResult flags = Etcdsafe({"get", "--from-snapshot", dir_->Sub("nope.db"), "--name", "x", "a"});
  EXPECT_EQ(flags.code, 128) << flags.err;
  EXPECT_TRUE(IsOneLineError(flags)) << flags.err;
}

// An unreachable endpoint: one line, exit 2 (etcdsafe's code for it; etcdctl 3.4's get
// exits 1 with "context deadline exceeded" after its 5 s command timeout), nothing on stdout.
TEST(GetCliOffline, UnreachableEndpointIsExit2) {
  const int port = testutil::FreePort();
  CmdResult r = Etcdsafe({"get", "--endpoints", "127.0.0.1:" + std::to_string(port), "a", "-w", "json"});
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(IsOneLineError(r)) << r.err;
  EXPECT_NE(r.err.find("connection refused"), std::string::npos) << r.err;
}

// A 100+ MB snapshot with Kubernetes-shaped history (60k keys, 4 revisions each, every
// 10th deleted): the offline read stays under 64 MiB RSS, because values and history
// are never held, only the live keys of the range.
TEST(GetCliMemory, FromSnapshotOfLargeDbStaysBounded) {
  TempDir dir;
  const std::string db = dir.Sub("big.db");
  const int kKeys = 60000, kRounds = 4;
  auto key_of = [](int i) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "/registry/pods/ns%d/pod-%06d", i % 16, i);
    return std::string(buf);
  };
  auto pb = [](const std::string& k, const std::string& v, int64_t create, int64_t mod, int64_t ver) {
    std::string out;
    out.push_back(0x0a);
    AppendVarint(&out, k.size());
    out += k;
    out.push_back(0x10);
    AppendVarint(&out, static_cast<uint64_t>(create));
    out.push_back(0x18);
    AppendVarint(&out, static_cast<uint64_t>(mod));
    out.push_back(0x20);
    AppendVarint(&out, static_cast<uint64_t>(ver));
    if (!v.empty()) {
      out.push_back(0x2a);
      AppendVarint(&out, v.size());
      out += v;
    }
    return out;
  };
  auto rev_key = [](int64_t main, bool tomb) {
    std::string k(17, '\0');
    StoreBE64(reinterpret_cast<uint8_t*>(k.data()), static_cast<uint64_t>(main));
    k[8] = '_';
    if (tomb) k.push_back('t');
    return k;
  };
  int64_t rev = 1;
  {
    bolt::Builder b(db);
    b.BeginBucket("key");
    for (int round = 0; round < kRounds; round++) {
      for (int i = 0; i < kKeys; i++) {
        const std::string k = key_of(i);
        const int64_t create = 2 + i;  // round 0 writes keys in order from revision 2
        std::string v(400, static_cast<char>('a' + round));
        v.replace(0, k.size(), k);
        ++rev;
        b.Put(rev_key(rev, false), pb(k, v, create, rev, round + 1));
      }
    }
    for (int i = 0; i < kKeys; i += 10) {
      ++rev;
      b.Put(rev_key(rev, true), pb(key_of(i), "", 0, 0, 0));
    }
    b.EndBucket();
    b.BeginBucket("meta");
    b.Put("consistent_index", std::string(8, '\0'));
    b.EndBucket();
    b.Finish();
  }
  struct stat st {};
  ASSERT_EQ(::stat(db.c_str(), &st), 0);
  EXPECT_GT(st.st_size, 100ll << 20);

  CmdResult keys = testutil::Run(ETCDSAFE_BINARY, {"get", "--from-snapshot", db, "/registry/pods/", "--prefix", "--keys-only"});
  ASSERT_EQ(keys.code, 0) << keys.err;
  size_t lines = 0;
  for (char ch : keys.out) lines += ch == '\n';
  EXPECT_EQ(lines, size_t{2} * (kKeys - kKeys / 10));
  CmdResult values = testutil::Run(ETCDSAFE_BINARY, {"get", "--from-snapshot", db, "/registry/pods/", "--prefix", "--print-value-only"});
  ASSERT_EQ(values.code, 0) << values.err;
  EXPECT_EQ(values.out.size(), size_t{401} * (kKeys - kKeys / 10));
  // An older revision: the walk stops early; round 1's value of key 7.
  const int64_t round1_of_7 = 1 + kKeys + 1 + 7;
  CmdResult old = testutil::Run(ETCDSAFE_BINARY, {"get", "--from-snapshot", db, key_of(7), "--rev=" + std::to_string(round1_of_7), "--print-value-only"});
  ASSERT_EQ(old.code, 0) << old.err;
  EXPECT_EQ(old.out.substr(key_of(7).size(), 3), "bbb") << old.out.substr(0, 60);
  std::printf("get --from-snapshot of a %lld MiB db: keys-only %ld KiB, values %ld KiB, --rev %ld KiB peak RSS\n",
              static_cast<long long>(st.st_size >> 20), keys.max_rss_kib, values.max_rss_kib, old.max_rss_kib);
  EXPECT_LT(keys.max_rss_kib, 64 * 1024);
  EXPECT_LT(values.max_rss_kib, 64 * 1024);
  EXPECT_LT(old.max_rss_kib, 64 * 1024);
}

}  // namespace
}  // namespace etcdsafe
