// Point-in-time restore (issue 9, "Restoring"): `restore --repo R --to-revision N |
// --to-time T | --to-latest` against real etcd 3.4 processes.
//
// The recorder (`etcdsafe backup --follow`) records a random workload (puts, overwrites,
// deletes, multi-op txns, delete ranges, leased keys, a revoke, then a compaction and more
// writes). Before the compaction, etcd's own answer at many revisions is kept: every key
// with value, create/mod revision, version and lease (Range at that revision), and its
// HashKV there. Each target is then restored offline and started as a real etcd: the
// restored etcd must serve exactly those keys at exactly that revision, answer the same
// HashKV, and know the leases of its keys with their granted TTL. --to-latest is checked
// against the recorded HashKV taken after the compaction (the replayed db keeps the base's
// compaction: after `compact C` the restored etcd's HashKV equals the source's). A
// tampered, a missing and a reordered segment are each refused before anything is
// written (no data dir afterwards); an encrypted repository (raw key) restores with its key.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "backup/backup.h"
#include "backup/repository.h"
#include "base/error.h"
#include "client/etcd_client.h"
#include "follow/chain.h"
#include "testutil/cli.h"
#include "testutil/etcd_server.h"
#include "testutil/process.h"
#include "testutil/temp_dir.h"

namespace etcdsafe {
namespace {

using namespace testutil;
using std::chrono::milliseconds;
using Kvs = std::vector<client::EtcdClient::KV>;

CmdResult Etcdsafe(const std::vector<std::string>& args) { return Exec(ETCDSAFE_BINARY, args); }
bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
bool Exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}
const std::string kAll(1, '\0');

std::string Diff(const Kvs& a, const Kvs& b) {
  if (a.size() != b.size()) return "key counts " + std::to_string(a.size()) + " vs " + std::to_string(b.size());
  for (size_t i = 0; i < a.size(); i++) {
    const auto &x = a[i], &y = b[i];
    if (x.key != y.key || x.value != y.value || x.create_revision != y.create_revision ||
        x.mod_revision != y.mod_revision || x.version != y.version || x.lease != y.lease) {
      return "key " + x.key + " vs " + y.key + ": create " + std::to_string(x.create_revision) + "/" +
             std::to_string(y.create_revision) + " mod " + std::to_string(x.mod_revision) + "/" +
             std::to_string(y.mod_revision) + " version " + std::to_string(x.version) + "/" +
             std::to_string(y.version) + " lease " + std::to_string(x.lease) + "/" + std::to_string(y.lease);
    }
  }
  return "";
}

class Recorder {
 public:
  Recorder(const std::string& repo, const std::string& endpoint, const std::string& log,
           const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {ETCDSAFE_BINARY, "backup", "--follow", "--repo", "file://" + repo,
                                     "--endpoints", endpoint, "--segment-max-age", "200ms", "--heartbeat", "300ms",
                                     "--hash-every", "700ms"};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = SpawnLogged(args, {}, log);
  }
  ~Recorder() {
    if (pid_ > 0) Stop(SIGKILL);
  }
  int Stop(int sig = SIGTERM) {
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_ = -1;
};

// The usable revision the repository's chains reach (0: none yet), and how many hashes
// the chain holding it recorded after `after` (read with ReadChain).
int64_t StoredUpTo(const std::string& repo) {
  try {
    auto r = backup::OpenRepository("file://" + repo, {}, true);
    int64_t best = 0;
    for (const auto& c : follow::ScanChains(*r).chains) best = std::max(best, c.usable_last_revision);
    return best;
  } catch (const Error&) {
    return 0;
  }
}

bool WaitStored(const std::string& repo, int64_t rev, milliseconds timeout = milliseconds(20000)) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (StoredUpTo(repo) >= rev) return true;
    std::this_thread::sleep_for(milliseconds(100));
  }
  return false;
}

bool WaitBase(const std::string& repo) {
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < end) {
    try {
      if (!backup::OpenRepository("file://" + repo, {}, true)->ListBackups().empty()) return true;
    } catch (const Error&) {
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  return false;
}

// The segments of a repository dir that hold revisions, in chain order (names carry
// "<id>.seg-<seq>-<first>-<last>.evt...": heartbeat segments have last = first - 1).
std::vector<std::string> Segments(const std::string& repo) {
  std::vector<std::string> out;
  for (const auto& n : ListDir(repo)) {  // std::set order: by chain id, then zero-padded seq
    size_t at = n.find(".seg-");
    if (at == std::string::npos || Contains(n, ".tmp-")) continue;
    long long seq = 0, first = 0, last = 0;
    if (std::sscanf(n.c_str() + at, ".seg-%lld-%lld-%lld.", &seq, &first, &last) == 3 && last >= first) {
      out.push_back(n);
    }
  }
  return out;
}

int64_t NowMs() {
  return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string Rfc3339(int64_t ms) {
  time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

struct Expected {
  Kvs kvs;
  uint32_t hash = 0;
};

class Pitr : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    source_ = new EtcdServer();
    expected_ = new std::map<int64_t, Expected>();
    auto c = client::EtcdClient::Connect(source_->client_config());
    for (int i = 0; i < 20; i++) c->Put("/w/" + std::to_string(i), "seed" + std::to_string(i));
    Recorder rec(Repo(), source_->client_url(), dir_->Sub("rec.log"));
    ASSERT_TRUE(WaitBase(Repo())) << ReadFile(dir_->Sub("rec.log"));
    base_rev_ = c->EndpointStatus().header.revision;  // nothing written since the seed

    std::mt19937 rng(20261130);
    std::vector<int64_t> leases;
    std::vector<int64_t> revs;  // after each operation
    for (int i = 0; i < 240; i++) {
      const std::string k = "/w/" + std::to_string(rng() % 30);
      switch (rng() % 9) {
        case 0:
        case 1:
        case 2: c->Put(k, "v" + std::to_string(rng())); break;
        case 3: c->DeleteRange(k); break;
        case 4: {
          std::vector<client::EtcdClient::TxnOp> t;
          t.push_back({client::EtcdClient::TxnOp::kPut, "/t/a" + std::to_string(i), "x" + std::to_string(i), "", 0});
          t.push_back({client::EtcdClient::TxnOp::kDelete, "/w/" + std::to_string(rng() % 30), "", "", 0});
          t.push_back({client::EtcdClient::TxnOp::kPut, "/t/b" + std::to_string(i), "y", "", leases.empty() ? 0 : leases.back()});
          c->Txn(t);
          break;
        }
        case 5: c->DeleteRange("/t/a", "/t/b"); break;  // a delete range over many keys
        case 6:
        case 7: {
          if (leases.empty() || rng() % 3 == 0) leases.push_back(c->LeaseGrant(3600));
          c->Put("/lease/" + std::to_string(rng() % 12), "l" + std::to_string(i), leases.back());
          break;
        }
        case 8:
          if (leases.size() > 1) {  // deletes its keys in one revision
            c->LeaseRevoke(leases.front());
            leases.erase(leases.begin());
          } else {
            c->Put(k, "z");
          }
          break;
      }
      revs.push_back(c->EndpointStatus().header.revision);
      if (i % 20 == 19) std::this_thread::sleep_for(milliseconds(150));  // several segments
      if (i == 120) {  // a quiet moment: a time target
        std::this_thread::sleep_for(milliseconds(400));
        time_target_ = NowMs();
        time_rev_ = revs.back();
        std::this_thread::sleep_for(milliseconds(400));
      }
    }
    // The expected state at many revisions, before any compaction.
    std::set<int64_t> targets = {base_rev_, base_rev_ + 1, base_rev_ + 2, time_rev_, revs.back()};
    for (size_t i = 7; i < revs.size(); i += 23) targets.insert(revs[i]);
    for (int64_t t : targets) {
      Expected e;
      e.kvs = c->Range(kAll, kAll, 0, t).kvs;
      e.hash = c->HashKV(t).hash;
      (*expected_)[t] = e;
    }
    // A compaction, then more writes: hashes recorded now carry compact revision C.
    compact_rev_ = revs[revs.size() / 2];
    c->Compact(compact_rev_, true);
    for (int i = 0; i < 30; i++) c->Put("/after/" + std::to_string(i % 7), "a" + std::to_string(i));
    last_rev_ = c->EndpointStatus().header.revision;
    ASSERT_TRUE(WaitStored(Repo(), last_rev_)) << ReadFile(dir_->Sub("rec.log"));
    std::this_thread::sleep_for(milliseconds(2000));  // a HashKV record after the compaction
    EXPECT_EQ(rec.Stop(SIGTERM), 0) << ReadFile(dir_->Sub("rec.log"));
    latest_kvs_ = new Kvs(c->Range(kAll, kAll).kvs);
    latest_hash_ = c->HashKV(last_rev_).hash;
  }
  static void TearDownTestSuite() {
    delete source_;
    delete expected_;
    delete latest_kvs_;
    delete dir_;
  }
  static std::string Repo() { return dir_->Sub("repo"); }

  // restore --repo <repo> <args> into a fresh dir (member default on a free peer port).
  struct Restored {
    CmdResult r;
    std::string dir;
    int peer = 0;
  };
  Restored RestoreTo(const std::string& repo, const std::vector<std::string>& args) {
    Restored out;
    out.peer = FreePort();
    out.dir = scratch_.Sub("restored-" + std::to_string(n_++));
    const std::string url = "http://127.0.0.1:" + std::to_string(out.peer);
    out.r = Etcdsafe(Concat({"restore", "--repo", "file://" + repo, "--data-dir", out.dir, "--initial-cluster",
                             "default=" + url, "--initial-advertise-peer-urls", url},
                            args));
    return out;
  }
  std::unique_ptr<EtcdServer> Start(const Restored& r) {
    EtcdServerOptions o;
    o.data_dir = r.dir;
    o.peer_port = r.peer;
    return std::make_unique<EtcdServer>(o);
  }
  // A copy of the repository for destructive tests.
  std::string CopyRepo() {
    std::string copy = scratch_.Sub("repo-copy-" + std::to_string(n_++));
    EXPECT_EQ(Shell("cp -a " + ShellQuote(Repo()) + " " + ShellQuote(copy)).code, 0);
    return copy;
  }

  static TempDir* dir_;
  static EtcdServer* source_;
  static std::map<int64_t, Expected>* expected_;
  static Kvs* latest_kvs_;
  static int64_t base_rev_, time_rev_, time_target_, compact_rev_, last_rev_;
  static uint32_t latest_hash_;
  TempDir scratch_;
  int n_ = 0;
};
TempDir* Pitr::dir_ = nullptr;
EtcdServer* Pitr::source_ = nullptr;
std::map<int64_t, Expected>* Pitr::expected_ = nullptr;
Kvs* Pitr::latest_kvs_ = nullptr;
int64_t Pitr::base_rev_ = 0, Pitr::time_rev_ = 0, Pitr::time_target_ = 0, Pitr::compact_rev_ = 0, Pitr::last_rev_ = 0;
uint32_t Pitr::latest_hash_ = 0;

TEST_F(Pitr, EveryTargetRevisionServesWhatEtcdServedThere) {
  ASSERT_GE(expected_->size(), 10u);
  for (const auto& [rev, want] : *expected_) {
    SCOPED_TRACE("revision " + std::to_string(rev));
    Restored r = RestoreTo(Repo(), {"--to-revision", std::to_string(rev)});
    ASSERT_EQ(r.r.code, 0) << r.r.err;
    EXPECT_TRUE(Contains(r.r.out, "restored revision " + std::to_string(rev) + " ")) << r.r.out;
    EXPECT_TRUE(Contains(r.r.out, "HashKV at revision ") || Contains(r.r.out, "HashKV not checked: ")) << r.r.out;
    auto etcd = Start(r);
    auto c = client::EtcdClient::Connect(etcd->client_config());
    client::EtcdClient::RangeResult got = c->Range(kAll, kAll);
    EXPECT_EQ(got.header.revision, rev);
    EXPECT_EQ(Diff(got.kvs, want.kvs), "");
    EXPECT_EQ(c->HashKV(rev).hash, want.hash);
    // Leases of live keys exist with their granted TTL, so they still expire.
    std::set<int64_t> leases;
    for (const auto& kv : got.kvs) {
      if (kv.lease != 0) leases.insert(kv.lease);
    }
    for (int64_t l : leases) {
      client::EtcdClient::LeaseTtl t = c->LeaseTimeToLive(l);
      EXPECT_EQ(t.granted_ttl, 3600) << "lease " << l;
      EXPECT_GT(t.ttl, 3000) << "lease " << l;
    }
  }
}

TEST_F(Pitr, LatestIsCheckedAgainstTheHashRecordedAfterTheCompaction) {
  Restored r = RestoreTo(Repo(), {"--to-latest"});
  ASSERT_EQ(r.r.code, 0) << r.r.err;
  EXPECT_TRUE(Contains(r.r.out, "restored revision " + std::to_string(last_rev_) + " ")) << r.r.out;
  EXPECT_TRUE(Contains(r.r.out, "matches etcd's")) << r.r.out;
  EXPECT_TRUE(Contains(r.r.out, "compact revision " + std::to_string(compact_rev_) + ")")) << r.r.out;
  auto etcd = Start(r);
  auto c = client::EtcdClient::Connect(etcd->client_config());
  EXPECT_EQ(Diff(c->Range(kAll, kAll).kvs, *latest_kvs_), "");
  // The same compaction on the restored etcd: the same HashKV as the source's.
  c->Compact(compact_rev_, true);
  EXPECT_EQ(c->HashKV(last_rev_).hash, latest_hash_);
}

TEST_F(Pitr, TimeTargetIsTheLastRevisionSeenBeforeIt) {
  Restored r = RestoreTo(Repo(), {"--to-time", Rfc3339(time_target_)});
  ASSERT_EQ(r.r.code, 0) << r.r.err;
  EXPECT_TRUE(Contains(r.r.out, "restored revision " + std::to_string(time_rev_) + " ")) << r.r.out;
  auto etcd = Start(r);
  auto c = client::EtcdClient::Connect(etcd->client_config());
  EXPECT_EQ(Diff(c->Range(kAll, kAll).kvs, expected_->at(time_rev_).kvs), "");
  // A time nothing proves yet (the future): not found, naming the newest provable time.
  Restored late = RestoreTo(Repo(), {"--to-time", Rfc3339(NowMs() + 3600 * 1000)});
  EXPECT_EQ(late.r.code, 10) << late.r.err;
  EXPECT_TRUE(Contains(late.r.err, "newest provable time")) << late.r.err;
  EXPECT_FALSE(Exists(late.dir));
}

TEST_F(Pitr, DamagedChainsAreRefusedBeforeAnythingIsWritten) {
  const int64_t target = last_rev_;
  {  // tampered: one byte of a middle segment
    std::string repo = CopyRepo();
    std::vector<std::string> segs = Segments(repo);
    ASSERT_GE(segs.size(), 4u);
    const std::string victim = repo + "/" + segs[segs.size() / 2];
    std::string bytes = ReadFile(victim);
    bytes[bytes.size() / 2] ^= 0x20;
    WriteFile(victim, bytes);
    Restored r = RestoreTo(repo, {"--to-revision", std::to_string(target)});
    EXPECT_EQ(r.r.code, 1) << r.r.err;
    EXPECT_TRUE(IsOneLineError(r.r)) << r.r.err;
    EXPECT_FALSE(Exists(r.dir));
    EXPECT_EQ(ListDir(scratch_.path()).count("restored-" + std::to_string(n_ - 1)), 0u);
  }
  {  // missing: a middle segment removed
    std::string repo = CopyRepo();
    std::vector<std::string> segs = Segments(repo);
    ASSERT_EQ(::unlink((repo + "/" + segs[segs.size() / 2]).c_str()), 0);
    Restored r = RestoreTo(repo, {"--to-revision", std::to_string(target)});
    EXPECT_EQ(r.r.code, 10) << r.r.err;
    EXPECT_TRUE(Contains(r.r.err, "is missing")) << r.r.err;
    EXPECT_FALSE(Exists(r.dir));
    Restored latest = RestoreTo(repo, {"--to-latest"});
    EXPECT_EQ(latest.r.code, 1) << latest.r.err;
    EXPECT_TRUE(Contains(latest.r.err, "restore that with --to-revision")) << latest.r.err;
    EXPECT_FALSE(Exists(latest.dir));
  }
  {  // reordered: two segments' contents swapped (names kept)
    std::string repo = CopyRepo();
    std::vector<std::string> segs = Segments(repo);
    const std::string a = repo + "/" + segs[1], b = repo + "/" + segs[2];
    std::string da = ReadFile(a), db = ReadFile(b);
    WriteFile(a, db);
    WriteFile(b, da);
    Restored r = RestoreTo(repo, {"--to-latest"});
    EXPECT_EQ(r.r.code, 1) << r.r.err;
    EXPECT_TRUE(Contains(r.r.err, "does not match its name") || Contains(r.r.err, "does not follow")) << r.r.err;
    EXPECT_FALSE(Exists(r.dir));
  }
  // Nothing left beside the targets either (no temporary data dirs).
  for (const auto& n : ListDir(scratch_.path())) EXPECT_FALSE(Contains(n, "etcdsafe-restore")) << n;
}

TEST_F(Pitr, FlagsAreChecked) {
  EXPECT_EQ(RestoreTo(Repo(), {"--to-revision", "5", "--to-latest"}).r.code, 128);
  EXPECT_EQ(RestoreTo(Repo(), {"--to-time", "2026-11-30T10:15:00Z", "--to-revision", "5"}).r.code, 128);
  CmdResult list = Etcdsafe({"backups", "list", "--repo", "file://" + Repo()});
  EXPECT_EQ(RestoreTo(Repo(), {"--to-latest", "--backup", "etcd-snapshot-20261130-000000-r5"}).r.code, 128);
  Restored bad_time = RestoreTo(Repo(), {"--to-time", "yesterday"});
  EXPECT_EQ(bad_time.r.code, 128);
  EXPECT_TRUE(Contains(bad_time.r.err, "RFC 3339")) << bad_time.r.err;
  Restored below = RestoreTo(Repo(), {"--to-revision", "1"});
  EXPECT_EQ(below.r.code, 10) << below.r.err;
  EXPECT_FALSE(Exists(below.dir));
}

// A chain in an encrypted repository (raw key): restored with the key, refused without.
TEST(PitrEncrypted, RawKeyRepository) {
  TempDir dir;
  EtcdServer etcd;
  const std::string key = dir.Sub("key");
  ASSERT_EQ(Shell("head -c 32 /dev/urandom > " + ShellQuote(key) + " && chmod 600 " + ShellQuote(key)).code, 0);
  auto c = client::EtcdClient::Connect(etcd.client_config());
  c->Put("/enc/seed", "s");
  const std::string repo = dir.Sub("repo");
  Recorder rec(repo, etcd.client_url(), dir.Sub("rec.log"), {"--encryption-key-file", key});
  ASSERT_TRUE(WaitBase(repo)) << ReadFile(dir.Sub("rec.log"));
  for (int i = 0; i < 40; i++) c->Put("/enc/" + std::to_string(i % 9), "secret-" + std::to_string(i));
  const int64_t last = c->EndpointStatus().header.revision;
  ASSERT_TRUE(WaitStored(repo, last)) << ReadFile(dir.Sub("rec.log"));
  std::this_thread::sleep_for(milliseconds(1500));
  EXPECT_EQ(rec.Stop(SIGTERM), 0);
  for (const auto& s : Segments(repo)) {
    EXPECT_TRUE(s.ends_with(".enc")) << s;
    EXPECT_FALSE(Contains(ReadFile(repo + "/" + s), "secret-")) << s;
  }
  const int peer = FreePort();
  const std::string url = "http://127.0.0.1:" + std::to_string(peer);
  const std::vector<std::string> flags = {"--initial-cluster", "default=" + url, "--initial-advertise-peer-urls", url};
  CmdResult without = Etcdsafe(Concat({"restore", "--repo", "file://" + repo, "--to-latest", "--data-dir",
                                       dir.Sub("nokey")}, flags));
  EXPECT_EQ(without.code, 128) << without.err;
  EXPECT_FALSE(Exists(dir.Sub("nokey")));
  CmdResult r = Etcdsafe(Concat({"restore", "--repo", "file://" + repo, "--to-latest", "--data-dir", dir.Sub("d"),
                                 "--encryption-key-file", key}, flags));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "restored revision " + std::to_string(last) + " ")) << r.out;
  EXPECT_TRUE(Contains(r.out, "matches etcd's")) << r.out;
  EtcdServerOptions o;
  o.data_dir = dir.Sub("d");
  o.peer_port = peer;
  EtcdServer restored(o);
  auto rc = client::EtcdClient::Connect(restored.client_config());
  EXPECT_EQ(Diff(rc->Range(kAll, kAll).kvs, c->Range(kAll, kAll).kvs), "");
}

}  // namespace
}  // namespace etcdsafe
