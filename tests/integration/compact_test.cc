// `snapshot restore --compact` and `restore --repo --compact` (issue 7): the db written is
// what etcd 3.4's own physical compaction at the snapshot's revision leaves. Checked
// against real etcd 3.4 processes: a restore with and one without --compact, both started;
// every live key with all its fields, the revision and the leases are the same; reads below
// the snapshot revision fail as compacted on the compacted one only; and after `etcdctl
// compact R --physical` on the uncompacted one, both answer the same HashKV (a hash over
// every raw revision key and value left in bucket "key"). The compacted db passes bbolt's
// consistency check (StreamInspector) and is smaller.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <map>
#include <string>
#include <vector>

#include "bolt/stream_inspect.h"
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
using testutil::TempDir;

CmdResult Etcdsafe(const std::vector<std::string>& args) { return Exec(ETCDSAFE_BINARY, args); }
bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

using Kvs = std::vector<client::EtcdClient::KV>;

bool SameKvs(const Kvs& a, const Kvs& b, std::string* why) {
  if (a.size() != b.size()) {
    *why = "key counts " + std::to_string(a.size()) + " vs " + std::to_string(b.size());
    return false;
  }
  for (size_t i = 0; i < a.size(); i++) {
    const auto &x = a[i], &y = b[i];
    if (x.key != y.key || x.value != y.value || x.create_revision != y.create_revision ||
        x.mod_revision != y.mod_revision || x.version != y.version || x.lease != y.lease) {
      *why = "key " + x.key + " vs " + y.key + ": create " + std::to_string(x.create_revision) + "/" +
             std::to_string(y.create_revision) + " mod " + std::to_string(x.mod_revision) + "/" +
             std::to_string(y.mod_revision) + " version " + std::to_string(x.version) + "/" +
             std::to_string(y.version) + " lease " + std::to_string(x.lease) + "/" + std::to_string(y.lease);
      return false;
    }
  }
  return true;
}

uint64_t FileSize(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return static_cast<uint64_t>(st.st_size);
}

// A restored single member on a free peer port, started and healthy.
struct Restored {
  std::string dir;
  int peer = 0;
  std::unique_ptr<EtcdServer> etcd;
};

class Compact : public ::testing::Test {
 protected:
  // History worth compacting: overwrites, deletes (one as the very last revision, so the
  // compacted revision must come from finishedCompactRev), a key deleted and re-created
  // (two generations), a multi-op transaction (sub revisions), keys attached to a lease,
  // and an earlier compaction whose survivors must be handled too.
  static void SetUpTestSuite() {
    source_ = new EtcdServer();
    dir_ = new TempDir();
    auto c = client::EtcdClient::Connect(source_->client_config());
    for (int i = 0; i < 60; i++) c->Put("/registry/pods/ns" + std::to_string(i % 4) + "/p" + std::to_string(i), "v0");
    for (int round = 1; round <= 3; round++) {
      for (int i = 0; i < 60; i += 2) {
        c->Put("/registry/pods/ns" + std::to_string(i % 4) + "/p" + std::to_string(i), "v" + std::to_string(round));
      }
    }
    // An early compaction in the middle of the history.
    early_rev_ = c->Range("/", std::string(1, '\0'), 1).revision;
    ASSERT_EQ(source_->etcdctl({"compact", std::to_string(early_rev_)}).exit_code, 0);
    for (int i = 0; i < 60; i += 5) c->DeleteRange("/registry/pods/ns" + std::to_string(i % 4) + "/p" + std::to_string(i));
    c->Put("/registry/pods/ns0/p0", "reborn");  // deleted above, created again
    c->Put("/registry/pods/ns0/p0", "reborn-2");
    testutil::EtcdctlResult lease = source_->etcdctl({"lease", "grant", "3600"});
    ASSERT_EQ(lease.exit_code, 0) << lease.err;
    const std::string lease_id = lease.out.substr(6, lease.out.find(' ', 6) - 6);  // "lease <hex> granted ..."
    ASSERT_EQ(source_->etcdctl({"put", "--lease=" + lease_id, "/registry/leases/a", "x"}).exit_code, 0);
    ASSERT_EQ(source_->etcdctl({"put", "--lease=" + lease_id, "/registry/leases/b", "y"}).exit_code, 0);
    ASSERT_EQ(source_->etcdctl({"put", "/registry/leases/a", "detached"}).exit_code, 0);  // lease 0 now
    // One transaction: two puts and a delete under one main revision (sub revisions 0..2).
    CmdResult txn = Exec("/bin/sh", {"-c", "printf '\\nput /registry/txn/a 1\\nput /registry/txn/b 2\\ndel "
                                           "/registry/pods/ns1/p1\\n\\n\\n' | ETCDCTL_API=3 etcdctl --endpoints " +
                                               source_->client_url() + " txn"});
    ASSERT_EQ(txn.code, 0) << txn.err;
    ASSERT_TRUE(Contains(txn.out, "SUCCESS")) << txn.out;
    c->Put("/registry/zz-last", "gone soon");
    c->DeleteRange("/registry/zz-last");  // the newest revision is a tombstone
    source_kvs_ = new Kvs(c->Range("/", std::string(1, '\0')).kvs);
    source_rev_ = c->Range("/", std::string(1, '\0'), 1).revision;
    snap_ = dir_->Sub("snap.db");
    CmdResult r = Etcdsafe({"snapshot", "save", snap_, "--endpoints", source_->client_url()});
    ASSERT_EQ(r.code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    delete source_;
    delete source_kvs_;
    delete dir_;
  }

  Restored RestoreAndStart(const std::vector<std::string>& command, const std::string& name) {
    Restored out;
    out.peer = testutil::FreePort();
    out.dir = scratch_.Sub(name);
    const std::string url = "http://127.0.0.1:" + std::to_string(out.peer);
    CmdResult r = Etcdsafe(Concat(command, {"--data-dir", out.dir, "--initial-cluster", "default=" + url,
                                            "--initial-advertise-peer-urls", url}));
    EXPECT_EQ(r.code, 0) << r.err;
    last_err_ = r.err;
    return out;
  }
  void Start(Restored& r) {
    EtcdServerOptions o;
    o.data_dir = r.dir;
    o.peer_port = r.peer;
    r.etcd = std::make_unique<EtcdServer>(o);
  }

  static EtcdServer* source_;
  static TempDir* dir_;
  static Kvs* source_kvs_;
  static int64_t source_rev_, early_rev_;
  static std::string snap_;
  TempDir scratch_;
  std::string last_err_;
};
EtcdServer* Compact::source_ = nullptr;
TempDir* Compact::dir_ = nullptr;
Kvs* Compact::source_kvs_ = nullptr;
int64_t Compact::source_rev_ = 0;
int64_t Compact::early_rev_ = 0;
std::string Compact::snap_;

TEST_F(Compact, CompactedDbServesTheSameKeysAsEtcdsOwnCompaction) {
  Restored full = RestoreAndStart({"snapshot", "restore", snap_}, "full");
  Restored compact = RestoreAndStart({"snapshot", "restore", snap_, "--compact"}, "compact");
  EXPECT_TRUE(Contains(last_err_, "compacted at revision " + std::to_string(source_rev_) + ": kept ")) << last_err_;
  const std::string full_db = full.dir + "/member/snap/db", compact_db = compact.dir + "/member/snap/db";

  // bbolt consistency of the compacted db (before etcd opens it), and it is smaller.
  {
    bolt::StreamInspector inspector(compact_db);
    const std::string bytes = testutil::ReadFile(compact_db);
    inspector.Write(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    bolt::InspectResult res = inspector.Finish();
    EXPECT_EQ(res.problem_count, 0u) << (res.problems.empty() ? "" : res.problems[0]);
  }
  EXPECT_LT(FileSize(compact_db), FileSize(full_db));

  Start(full);
  Start(compact);
  auto a = client::EtcdClient::Connect(full.etcd->client_config());
  auto b = client::EtcdClient::Connect(compact.etcd->client_config());
  client::EtcdClient::RangeResult ra = a->Range("/", std::string(1, '\0'));
  client::EtcdClient::RangeResult rb = b->Range("/", std::string(1, '\0'));
  std::string why;
  EXPECT_TRUE(SameKvs(ra.kvs, *source_kvs_, &why)) << "uncompacted restore vs source: " << why;
  EXPECT_TRUE(SameKvs(rb.kvs, ra.kvs, &why)) << "compacted vs uncompacted: " << why;
  EXPECT_EQ(ra.revision, source_rev_);
  EXPECT_EQ(rb.revision, source_rev_);  // the tombstone at source_rev_ is gone; the revision is not
  bool saw_lease = false;
  for (const auto& kv : rb.kvs) saw_lease |= kv.lease != 0;
  EXPECT_TRUE(saw_lease);

  // Leases: the same ones, with the same keys attached.
  testutil::EtcdctlResult la = full.etcd->etcdctl({"lease", "list"}), lb = compact.etcd->etcdctl({"lease", "list"});
  EXPECT_EQ(la.exit_code, 0);
  EXPECT_EQ(la.out, lb.out);

  // Reads below the snapshot revision: history on the full one, compacted on the other.
  const std::string old_rev = std::to_string(source_rev_ - 3);
  testutil::EtcdctlResult old_a = full.etcd->etcdctl({"get", "--rev=" + old_rev, "--prefix", "/registry/"});
  testutil::EtcdctlResult old_b = compact.etcd->etcdctl({"get", "--rev=" + old_rev, "--prefix", "/registry/"});
  EXPECT_EQ(old_a.exit_code, 0) << old_a.err;
  EXPECT_NE(old_b.exit_code, 0);
  EXPECT_TRUE(Contains(old_b.err, "required revision has been compacted")) << old_b.err;
  // At the snapshot revision itself both answer the same.
  testutil::EtcdctlResult at_a = full.etcd->etcdctl({"get", "--rev=" + std::to_string(source_rev_), "--prefix", "/"});
  testutil::EtcdctlResult at_b = compact.etcd->etcdctl({"get", "--rev=" + std::to_string(source_rev_), "--prefix", "/"});
  EXPECT_EQ(at_b.exit_code, 0) << at_b.err;
  EXPECT_EQ(at_a.out, at_b.out);

  // HashKV: the compacted one reports the compaction; its hash at the current revision is
  // etcd's own after `compact R --physical` on the uncompacted one.
  client::EtcdClient::HashKVResult hb = b->HashKV(0);
  EXPECT_EQ(hb.compact_revision, source_rev_);
  client::EtcdClient::HashKVResult ha_before = a->HashKV(0);
  EXPECT_EQ(ha_before.compact_revision, early_rev_);
  EXPECT_NE(ha_before.hash, hb.hash);  // the uncompacted one still hashes the history
  testutil::EtcdctlResult comp = full.etcd->etcdctl({"compact", std::to_string(source_rev_), "--physical"});
  ASSERT_EQ(comp.exit_code, 0) << comp.err;
  client::EtcdClient::HashKVResult ha = a->HashKV(0);
  EXPECT_EQ(ha.compact_revision, source_rev_);
  EXPECT_EQ(ha.hash, hb.hash) << "etcd's own compaction left other revisions in bucket key";
  // Both keep working after the restore: a write gets the next revision on each.
  a->Put("/after", "1");
  b->Put("/after", "1");
  EXPECT_EQ(a->Range("/after").kvs.at(0).mod_revision, source_rev_ + 1);
  EXPECT_EQ(b->Range("/after").kvs.at(0).mod_revision, source_rev_ + 1);
}

// restore --repo --compact writes the same db bytes as snapshot restore --compact of the
// backed-up snapshot, and --compact composes with --bump-revision/--mark-compacted.
TEST_F(Compact, RepositoryRestoreAndBumpRevision) {
  const std::string repo = "file://" + scratch_.Sub("repo");
  CmdResult b = Etcdsafe({"backup", "--repo", repo, "--endpoints", source_->client_url()});
  ASSERT_EQ(b.code, 0) << b.err;
  Restored from_file = RestoreAndStart({"snapshot", "restore", snap_, "--compact"}, "file");
  Restored from_repo = RestoreAndStart({"restore", "--repo", repo, "--backup", "latest", "--compact"}, "from-repo");
  // The db does not depend on the member (consistent_index = member count): the two differ
  // only if the compaction does.
  const std::string db_file = testutil::ReadFile(from_file.dir + "/member/snap/db");
  const std::string db_repo = testutil::ReadFile(from_repo.dir + "/member/snap/db");
  EXPECT_EQ(db_file.size(), db_repo.size());
  EXPECT_TRUE(db_file == db_repo) << "restore --repo --compact and snapshot restore --compact differ";

  Restored bumped = RestoreAndStart(
      {"snapshot", "restore", snap_, "--compact", "--bump-revision", "1000", "--mark-compacted"}, "bumped");
  Start(bumped);
  auto c = client::EtcdClient::Connect(bumped.etcd->client_config());
  client::EtcdClient::RangeResult r = c->Range("/registry/", "/registry0");
  std::string why;
  Kvs registry;
  for (const auto& kv : *source_kvs_) {
    if (kv.key.rfind("/registry/", 0) == 0) registry.push_back(kv);
  }
  EXPECT_TRUE(SameKvs(r.kvs, registry, &why)) << why;
  EXPECT_EQ(r.revision, source_rev_ + 1000);
  testutil::EtcdctlResult old = bumped.etcd->etcdctl({"get", "--rev=" + std::to_string(source_rev_), "/registry/txn/a"});
  EXPECT_TRUE(Contains(old.err, "required revision has been compacted")) << old.err;
}

}  // namespace
}  // namespace etcdsafe
