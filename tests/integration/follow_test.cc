// backup --follow (issue 9): the recorder against real etcd 3.4 servers and clusters.
// What a chain holds is compared, event by event, with etcd's own history (a fresh watch
// from the base revision + 1): every revision once, in order, nothing lost, nothing twice,
// across kill -9 restarts, a leader stop, SIGTERM and a compaction gap.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <random>
#include <thread>

#include "backup/backup.h"
#include "backup/layout.h"
#include "backup/repository.h"
#include "base/error.h"
#include "client/etcd_client.h"
#include "follow/chain.h"
#include "testutil/cli.h"
#include "testutil/etcd_server.h"
#include "testutil/process.h"
#include "testutil/s3_server.h"
#include "testutil/temp_dir.h"

namespace etcdsafe {
namespace {

using namespace testutil;
using std::chrono::milliseconds;

struct Recorded {
  std::string chain;
  int64_t base = 0, last = 0;
  std::map<int64_t, std::vector<follow::Event>> revs;
  std::map<int64_t, int64_t> lease_ttl;  // 'L' records
  std::vector<std::string> ends;
  size_t hashes = 0, progress = 0;
};

// Every chain of the repository, read and link-checked; one Recorded per chain.
std::vector<Recorded> ReadChains(const std::string& repo_dir) {
  auto repo = backup::OpenRepository("file://" + repo_dir, {}, true);
  follow::ChainScan scan = follow::ScanChains(*repo);
  std::vector<Recorded> out;
  for (const auto& c : scan.chains) {
    EXPECT_TRUE(c.problems.empty()) << c.problems.front();
    Recorded r;
    r.chain = c.base.id;
    r.base = c.base.revision;
    follow::ChainReadResult res = follow::ReadChain(*repo, c, std::nullopt, 0, [&](const follow::Record& rec) {
      if (rec.tag == 'R') {
        EXPECT_FALSE(r.revs.count(rec.rev.revision)) << "revision twice: " << rec.rev.revision;
        r.revs[rec.rev.revision] = rec.rev.events;
      }
      if (rec.tag == 'L') r.lease_ttl[rec.lease.id] = rec.lease.ttl;
      if (rec.tag == 'H') r.hashes++;
      if (rec.tag == 'P') r.progress++;
    });
    r.last = res.last_revision;
    if (!res.end.empty()) r.ends.push_back(res.end);
    out.push_back(std::move(r));
  }
  return out;
}

// etcd's history from `from` to its current revision, as the recorder must have stored it.
std::map<int64_t, std::vector<follow::Event>> History(const client::ClientConfig& cfg, int64_t from) {
  auto c = client::EtcdClient::Connect(cfg);
  int64_t now = c->EndpointStatus().header.revision;
  std::map<int64_t, std::vector<follow::Event>> out;
  if (now < from) return out;
  client::WatchOptions wo;
  wo.range_end = std::string(1, '\0');
  wo.start_revision = from;
  auto w = c->Watch(wo);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while ((out.empty() || out.rbegin()->first < now) && std::chrono::steady_clock::now() < deadline) {
    auto r = w->Next(milliseconds(200));
    if (!r) continue;
    for (const auto& e : r->events) {
      follow::Event ev;
      ev.is_delete = e.is_delete;
      ev.data = e.is_delete ? e.kv.key
                            : follow::EncodeKeyValue({e.kv.key, e.kv.value, e.kv.create_revision, e.kv.mod_revision,
                                                      e.kv.version, e.kv.lease});
      out[e.kv.mod_revision].push_back(ev);
    }
  }
  return out;
}

void ExpectSameEvents(const std::map<int64_t, std::vector<follow::Event>>& want, const Recorded& got, int64_t from,
                      int64_t to) {
  for (int64_t rev = from; rev <= to; rev++) {
    auto w = want.find(rev);
    auto g = got.revs.find(rev);
    ASSERT_NE(w, want.end()) << "etcd has no revision " << rev;
    ASSERT_NE(g, got.revs.end()) << "revision " << rev << " missing from chain " << got.chain;
    ASSERT_EQ(w->second.size(), g->second.size()) << "revision " << rev;
    for (size_t i = 0; i < w->second.size(); i++) {
      EXPECT_EQ(w->second[i].is_delete, g->second[i].is_delete) << rev << "/" << i;
      EXPECT_EQ(w->second[i].data, g->second[i].data) << rev << "/" << i;
    }
  }
}

class Recorder {
 public:
  Recorder(const std::string& repo, const std::vector<std::string>& endpoints, const std::string& log,
           std::vector<std::string> extra = {}, const std::vector<std::string>& env = {}) {
    const std::string url = repo.rfind("s3://", 0) == 0 ? repo : "file://" + repo;
    std::vector<std::string> args = {ETCDSAFE_BINARY, "backup", "--follow", "--repo", url};
    std::string eps;
    for (const auto& e : endpoints) eps += (eps.empty() ? "" : ",") + e;
    args.push_back("--endpoints");
    args.push_back(eps);
    for (auto& x : extra) args.push_back(x);
    pid_ = SpawnLogged(args, env, log);
  }
  ~Recorder() {
    if (pid_ > 0) Kill(SIGKILL);
  }
  int Kill(int sig) {
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  bool Running() {
    int status = 0;
    return ::waitpid(pid_, &status, WNOHANG) == 0;
  }

 private:
  pid_t pid_ = -1;
};

// Waits until the chains hold `rev` (the recorder stored it) or the timeout passes.
bool WaitStored(const std::string& repo, int64_t rev, milliseconds timeout = milliseconds(15000)) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    try {
      auto r = backup::OpenRepository("file://" + repo, {}, true);
      for (const auto& c : follow::ScanChains(*r).chains) {
        if (c.usable_last_revision >= rev) return true;
      }
    } catch (const Error&) {
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  return false;
}

void MakeDirsForTest(const std::string& d) { std::filesystem::create_directories(d); }

// Waits until the recorder's base backup is committed.
bool WaitBase(const std::string& repo, milliseconds timeout = milliseconds(15000)) {
  auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    try {
      if (!backup::OpenRepository("file://" + repo, {}, true)->ListBackups().empty()) return true;
    } catch (const Error&) {
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  return false;
}

// A random workload: puts, overwrites, deletes, txns, delete ranges, leased keys, a revoke.
void Workload(client::EtcdClient& c, std::mt19937& rng, int ops) {
  std::vector<int64_t> leases;
  for (int i = 0; i < ops; i++) {
    std::string k = "/w/" + std::to_string(rng() % 40);
    switch (rng() % 8) {
      case 0:
      case 1:
      case 2: c.Put(k, "v" + std::to_string(rng())); break;
      case 3: c.DeleteRange(k); break;
      case 4: {
        std::vector<client::EtcdClient::TxnOp> t;
        t.push_back({client::EtcdClient::TxnOp::kPut, "/t/a" + std::to_string(i), "x", "", 0});
        t.push_back({client::EtcdClient::TxnOp::kPut, "/t/b" + std::to_string(i), "y", "", 0});
        t.push_back({client::EtcdClient::TxnOp::kDelete, "/w/1", "", "", 0});
        c.Txn(t);
        break;
      }
      case 5: c.DeleteRange("/t/a", "/t/b"); break;
      case 6: {
        int64_t l = c.LeaseGrant(30 + static_cast<int64_t>(rng() % 60));
        leases.push_back(l);
        c.Put("/lease/" + std::to_string(i), "l", l);
        break;
      }
      case 7:
        if (!leases.empty()) {
          c.LeaseRevoke(leases.back());
          leases.pop_back();
        } else {
          c.Put(k, "z");
        }
        break;
    }
  }
}

TEST(Follow, RecordsEveryRevisionOfARandomWorkloadWithLeases) {
  TempDir dir;
  EtcdServer etcd;
  auto c = client::EtcdClient::Connect(etcd.client_config());
  std::mt19937 rng(11);
  Workload(*c, rng, 50);
  Recorder rec(dir.Sub("repo"), {etcd.client_url()}, dir.Sub("rec.log"), {"--hash-every", "500ms"});
  std::this_thread::sleep_for(milliseconds(1500));
  Workload(*c, rng, 300);
  int64_t last = c->EndpointStatus().header.revision;
  ASSERT_TRUE(WaitStored(dir.Sub("repo"), last)) << ReadFile(dir.Sub("rec.log"));
  EXPECT_EQ(rec.Kill(SIGTERM), 0) << ReadFile(dir.Sub("rec.log"));
  auto chains = ReadChains(dir.Sub("repo"));
  ASSERT_EQ(chains.size(), 1u);
  const Recorded& r = chains[0];
  EXPECT_GT(r.base, 1);
  EXPECT_EQ(r.last, last);
  ExpectSameEvents(History(etcd.client_config(), r.base + 1), r, r.base + 1, last);
  EXPECT_GT(r.hashes, 0u);
  // Every lease a recorded key refers to has its granted TTL recorded.
  for (const auto& [rev, evs] : r.revs) {
    for (const auto& e : evs) {
      if (e.is_delete) continue;
      follow::KeyValue kv = follow::DecodeKeyValue(AsBytes(e.data), "event");
      if (kv.lease == 0) continue;
      if (!r.lease_ttl.count(kv.lease)) {
        // Only a lease revoked before the recorder could ask for its TTL goes unrecorded.
        EXPECT_EQ(c->LeaseTimeToLive(kv.lease).ttl, -1) << "lease " << kv.lease << " of " << kv.key;
        continue;
      }
      EXPECT_GE(r.lease_ttl.at(kv.lease), 30);
      EXPECT_LT(r.lease_ttl.at(kv.lease), 90);
    }
  }
}

TEST(Follow, KillNineAtRandomInstantsLosesAndDuplicatesNothing) {
  TempDir dir;
  EtcdServer etcd;
  auto c = client::EtcdClient::Connect(etcd.client_config());
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    auto wc = client::EtcdClient::Connect(etcd.client_config());
    std::mt19937 rng(5);
    while (!stop) {
      Workload(*wc, rng, 5);
      std::this_thread::sleep_for(milliseconds(5));
    }
  });
  std::mt19937 rng(99);
  for (int round = 0; round < 6; round++) {
    Recorder rec(dir.Sub("repo"), {etcd.client_url()}, dir.Sub("rec.log"), {"--segment-max-age", "200ms"});
    std::this_thread::sleep_for(milliseconds(300 + rng() % 1500));
    rec.Kill(SIGKILL);
  }
  stop = true;
  writer.join();
  int64_t last = c->EndpointStatus().header.revision;
  {
    Recorder rec(dir.Sub("repo"), {etcd.client_url()}, dir.Sub("rec.log"));
    ASSERT_TRUE(WaitStored(dir.Sub("repo"), last)) << ReadFile(dir.Sub("rec.log"));
    EXPECT_EQ(rec.Kill(SIGTERM), 0);
  }
  auto chains = ReadChains(dir.Sub("repo"));
  ASSERT_EQ(chains.size(), 1u) << ReadFile(dir.Sub("rec.log"));  // resumed every time: one chain
  const Recorded& r = chains[0];
  EXPECT_EQ(r.last, last);
  EXPECT_EQ(r.revs.size(), static_cast<size_t>(last - r.base));
  ExpectSameEvents(History(etcd.client_config(), r.base + 1), r, r.base + 1, last);
  // Nothing of the killed runs is left but what the next runs may resume from.
  for (const auto& name : ListDir(dir.Sub("repo"))) EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
}

TEST(Follow, LeaderStopInAThreeMemberClusterLeavesNoGap) {
  TempDir dir;
  auto cluster = EtcdServer::StartNewCluster(3);
  std::vector<std::string> eps;
  for (auto& m : cluster) eps.push_back(m->client_url());
  client::ClientConfig cfg = cluster[0]->client_config();
  cfg.endpoints = eps;
  std::atomic<bool> stop{false};
  std::atomic<int> writes{0};
  std::thread writer([&] {
    std::mt19937 rng(3);
    while (!stop) {
      try {
        auto wc = client::EtcdClient::Connect(cfg);
        while (!stop) {
          wc->Put("/k/" + std::to_string(rng() % 100), std::to_string(writes++));
          std::this_thread::sleep_for(milliseconds(3));
        }
      } catch (const Error&) {
        std::this_thread::sleep_for(milliseconds(50));
      }
    }
  });
  // The recorder's first endpoint is the leader.
  auto c0 = client::EtcdClient::Connect(cluster[0]->client_config());
  uint64_t leader = c0->EndpointStatus().leader;
  size_t li = 0;
  for (size_t i = 0; i < cluster.size(); i++) {
    if (client::EtcdClient::Connect(cluster[i]->client_config())->EndpointStatus().member_id == leader) li = i;
  }
  std::vector<std::string> rec_eps = {eps[li]};
  for (size_t i = 0; i < eps.size(); i++) {
    if (i != li) rec_eps.push_back(eps[i]);
  }
  Recorder rec(dir.Sub("repo"), rec_eps, dir.Sub("rec.log"));
  std::this_thread::sleep_for(milliseconds(2000));
  cluster[li]->Stop();
  std::this_thread::sleep_for(milliseconds(3000));
  stop = true;
  writer.join();
  size_t other = (li + 1) % cluster.size();
  client::ClientConfig ocfg = cluster[other]->client_config();
  int64_t last = client::EtcdClient::Connect(ocfg)->EndpointStatus().header.revision;
  ASSERT_TRUE(WaitStored(dir.Sub("repo"), last)) << ReadFile(dir.Sub("rec.log"));
  EXPECT_EQ(rec.Kill(SIGTERM), 0);
  std::string log = ReadFile(dir.Sub("rec.log"));
  EXPECT_NE(log.find("watching from revision"), std::string::npos);
  EXPECT_EQ(log.find("gap:"), std::string::npos) << log;
  EXPECT_NE(log.find(", 0 gaps"), std::string::npos) << log;
  auto chains = ReadChains(dir.Sub("repo"));
  ASSERT_EQ(chains.size(), 1u) << log;
  EXPECT_EQ(chains[0].last, last);
  ExpectSameEvents(History(ocfg, chains[0].base + 1), chains[0], chains[0].base + 1, last);
  EXPECT_GT(writes.load(), 100);
}

TEST(Follow, SigtermStoresWhatWasRecordedAtOnce) {
  TempDir dir;
  EtcdServer etcd;
  auto c = client::EtcdClient::Connect(etcd.client_config());
  Recorder rec(dir.Sub("repo"), {etcd.client_url()}, dir.Sub("rec.log"), {"--segment-max-age", "30s"});
  ASSERT_TRUE(WaitBase(dir.Sub("repo")));
  for (int i = 0; i < 20; i++) c->Put("/s/" + std::to_string(i), "v");
  int64_t last = c->EndpointStatus().header.revision;
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(rec.Kill(SIGTERM), 0) << ReadFile(dir.Sub("rec.log"));
  auto chains = ReadChains(dir.Sub("repo"));
  ASSERT_EQ(chains.size(), 1u);
  EXPECT_EQ(chains[0].last, last);
}

TEST(Follow, CompactionPastTheChainEndsItAndStartsANewOne) {
  TempDir dir;
  EtcdServer etcd;
  auto c = client::EtcdClient::Connect(etcd.client_config());
  c->Put("/a", "1");
  {
    Recorder rec(dir.Sub("repo"), {etcd.client_url()}, dir.Sub("rec.log"));
    c->Put("/a", "2");
    int64_t rev = c->EndpointStatus().header.revision;
    ASSERT_TRUE(WaitStored(dir.Sub("repo"), rev));
    EXPECT_EQ(rec.Kill(SIGTERM), 0);
  }
  for (int i = 0; i < 10; i++) c->Put("/a", std::to_string(i));
  int64_t now = c->EndpointStatus().header.revision;
  c->Compact(now, true);
  c->Put("/a", "after");
  int64_t last = c->EndpointStatus().header.revision;
  {
    std::this_thread::sleep_for(milliseconds(1100));  // a new second: a new base name
    Recorder rec(dir.Sub("repo"), {etcd.client_url()}, dir.Sub("rec2.log"));
    std::this_thread::sleep_for(milliseconds(1500));
    c->Put("/b", "new chain");
    ASSERT_TRUE(WaitStored(dir.Sub("repo"), last + 1)) << ReadFile(dir.Sub("rec2.log"));
    EXPECT_EQ(rec.Kill(SIGTERM), 0);
  }
  std::string log = ReadFile(dir.Sub("rec2.log"));
  EXPECT_NE(log.find("gap: etcd compacted"), std::string::npos) << log;
  auto chains = ReadChains(dir.Sub("repo"));
  ASSERT_EQ(chains.size(), 2u) << log;
  ASSERT_EQ(chains[0].ends.size(), 1u);
  EXPECT_EQ(chains[0].ends[0].rfind("gap: etcd compacted", 0), 0u) << chains[0].ends[0];
  EXPECT_GE(chains[1].base, now);
  EXPECT_EQ(chains[1].last, last + 1);
}

TEST(Follow, TwoRecordersOnOneRepositoryAreRefusedAndABackupStillRuns) {
  TempDir dir;
  EtcdServer etcd;
  Recorder rec(dir.Sub("repo"), {etcd.client_url()}, dir.Sub("rec.log"));
  ASSERT_TRUE(WaitBase(dir.Sub("repo")));
  CmdResult second = Exec(ETCDSAFE_BINARY, {"backup", "--follow", "--repo", "file://" + dir.Sub("repo"),
                                            "--endpoints", etcd.client_url()});
  EXPECT_EQ(second.code, 11) << second.err;
  EXPECT_TRUE(IsOneLineError(second)) << second.err;
  EXPECT_NE(second.err.find("follow"), std::string::npos) << second.err;
  std::this_thread::sleep_for(milliseconds(1100));
  CmdResult backup = Exec(ETCDSAFE_BINARY, {"backup", "--repo", "file://" + dir.Sub("repo"), "--endpoints",
                                            etcd.client_url()});
  EXPECT_EQ(backup.code, 0) << backup.err;
  EXPECT_TRUE(rec.Running());
  EXPECT_EQ(rec.Kill(SIGTERM), 0);
}

// RPO: a writer puts keys at a steady rate; etcd AND the recorder are killed (SIGKILL) at
// a random moment, as a lost machine would; `restore --to-latest` must bring back every
// write acknowledged more than 1 s before the kill. 20 trials.
TEST(Follow, RpoEveryWriteAcknowledgedOneSecondBeforeALossIsRestored) {
  std::mt19937 rng(20261201);
  int checked = 0;
  for (int trial = 0; trial < 20; trial++) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    TempDir dir;
    auto etcd = std::make_unique<EtcdServer>();
    auto rec = std::make_unique<Recorder>(dir.Sub("repo"), std::vector<std::string>{etcd->client_url()},
                                          dir.Sub("rec.log"));
    ASSERT_TRUE(WaitBase(dir.Sub("repo"))) << ReadFile(dir.Sub("rec.log"));
    std::atomic<bool> stop{false};
    std::mutex mu;
    std::vector<std::pair<std::string, std::chrono::steady_clock::time_point>> acked;
    std::thread writer([&] {
      auto c = client::EtcdClient::Connect(etcd->client_config());
      for (int i = 0; !stop; i++) {
        try {
          std::string k = "/rpo/" + std::to_string(i);
          c->Put(k, "v");
          std::lock_guard<std::mutex> g(mu);
          acked.push_back({k, std::chrono::steady_clock::now()});
        } catch (const Error&) {
          return;  // etcd is gone
        }
        std::this_thread::sleep_for(milliseconds(4));
      }
    });
    std::this_thread::sleep_for(milliseconds(1200 + rng() % 1800));
    const auto kill_time = std::chrono::steady_clock::now();
    rec->Kill(SIGKILL);
    etcd->Kill();
    stop = true;
    writer.join();
    const std::string data = dir.Sub("restored");
    const int peer = FreePort();
    const std::string url = "http://127.0.0.1:" + std::to_string(peer);
    CmdResult r = Exec(ETCDSAFE_BINARY, {"restore", "--repo", "file://" + dir.Sub("repo"), "--to-latest",
                                         "--data-dir", data, "--initial-cluster", "default=" + url,
                                         "--initial-advertise-peer-urls", url});
    ASSERT_EQ(r.code, 0) << r.err << r.out;
    EtcdServerOptions o;
    o.data_dir = data;
    o.peer_port = peer;
    EtcdServer restored(o);
    auto c = client::EtcdClient::Connect(restored.client_config());
    auto got = c->Range("/rpo/", "/rpo0");
    std::set<std::string> have;
    for (const auto& kv : got.kvs) have.insert(kv.key);
    std::lock_guard<std::mutex> g(mu);
    for (const auto& [k, t] : acked) {
      if (kill_time - t > std::chrono::seconds(1)) {
        EXPECT_TRUE(have.count(k)) << k << " acknowledged "
                                   << std::chrono::duration_cast<milliseconds>(kill_time - t).count()
                                   << " ms before the loss is missing";
        checked++;
      }
    }
    EXPECT_GT(acked.size(), 100u);
  }
  EXPECT_GT(checked, 2000);
}

// Uploads that stall (the S3 server is down) fill the queue: memory up to --max-queue-memory,
// then a spill file up to --max-spill, then the chain ENDS (a gap, logged) instead of growing;
// once the server is back, what was queued is stored and a new full backup starts a new chain.
TEST(Follow, StalledUploadsSpillThenEndTheChainInsteadOfGrowing) {
  TempDir dir;
  EtcdServer etcd;
  S3Server s3;
  s3.CreateBucket("follow-test");
  MakeDirsForTest(dir.Sub("spill"));
  Recorder rec("s3://follow-test/r", {etcd.client_url()}, dir.Sub("rec.log"),
               {"--s3-endpoint", s3.endpoint(), "--s3-path-style", "--segment-max-age", "200ms",
                "--max-queue-memory", "64KiB", "--max-spill", "512KiB", "--spill-dir", dir.Sub("spill")},
               {"AWS_ACCESS_KEY_ID=S3RVER", "AWS_SECRET_ACCESS_KEY=S3RVER"});
  auto log_has = [&](const std::string& what, int times = 1) {
    std::string log = ReadFile(dir.Sub("rec.log"));
    int n = 0;
    for (size_t p = log.find(what); p != std::string::npos; p = log.find(what, p + 1)) n++;
    return n >= times;
  };
  auto wait_log = [&](const std::string& what, int times = 1) {
    for (int i = 0; i < 300 && !log_has(what, times); i++) std::this_thread::sleep_for(milliseconds(100));
    return log_has(what, times);
  };
  ASSERT_TRUE(wait_log("started on a new full backup")) << ReadFile(dir.Sub("rec.log"));
  s3.Kill();
  auto c = client::EtcdClient::Connect(etcd.client_config());
  std::mt19937 rng(1);
  bool spilled = false;
  for (int i = 0; i < 300 && !log_has("overflow"); i++) {
    std::string v(8192, 'x');
    for (char& ch : v) ch = static_cast<char>('a' + rng() % 26);
    c->Put("/big/" + std::to_string(i % 50), v);
    spilled = spilled || !ListDir(dir.Sub("spill")).empty();
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_TRUE(wait_log("overflow: uploads fell behind")) << ReadFile(dir.Sub("rec.log"));
  EXPECT_TRUE(spilled);
  s3.Restart();
  ASSERT_TRUE(wait_log("started on a new full backup", 2)) << ReadFile(dir.Sub("rec.log"));
  c->Put("/after", "1");
  const int64_t last = c->EndpointStatus().header.revision;
  std::this_thread::sleep_for(milliseconds(800));
  EXPECT_EQ(rec.Kill(SIGTERM), 0) << ReadFile(dir.Sub("rec.log"));
  EXPECT_TRUE(ListDir(dir.Sub("spill")).empty());
  store::StoreOptions so;
  so.s3_endpoint = s3.endpoint();
  so.path_style = true;
  so.access_key = "S3RVER";
  so.secret_key = "S3RVER";
  auto repo = backup::OpenRepository("s3://follow-test/r", so);
  follow::ChainScan scan = follow::ScanChains(*repo);
  ASSERT_EQ(scan.chains.size(), 2u);
  follow::ChainReadResult first = follow::ReadChain(*repo, scan.chains[0], std::nullopt);
  EXPECT_EQ(first.end.rfind("overflow:", 0), 0u) << first.end;
  follow::ChainReadResult second = follow::ReadChain(*repo, scan.chains[1], std::nullopt);
  EXPECT_EQ(second.last_revision, last);
  EXPECT_TRUE(second.end.empty());
}

TEST(Follow, BadFlagsAreOneLineErrors) {
  TempDir dir;
  for (auto extra : std::vector<std::vector<std::string>>{{"--segment-max-age", "0s"},
                                                          {"--segment-max-size", "12XB"},
                                                          {"--passphrase-file", "/dev/null"}}) {
    std::vector<std::string> args = {"backup", "--follow", "--repo", "file://" + dir.Sub("r"), "--endpoints",
                                      "127.0.0.1:1"};
    for (auto& x : extra) args.push_back(x);
    CmdResult r = Exec(ETCDSAFE_BINARY, args);
    EXPECT_EQ(r.code, 128) << extra[0] << ": " << r.err;
    EXPECT_TRUE(IsOneLineError(r)) << r.err;
  }
}

// Background compaction while recording (--compact-every): small segments are merged into
// merged segments (".seg-<s1>_<s2>-...") beside the recording, the chain stays whole (every
// revision once, links checked), and a restore to a revision inside a merged segment
// serves what etcd served at that revision, with the same HashKV.
TEST(Follow, CompactsWhileRecordingAndRestoresIntoAMergedRange) {
  TempDir dir;
  EtcdServer etcd;
  auto c = client::EtcdClient::Connect(etcd.client_config());
  Recorder rec(dir.Sub("repo"), {etcd.client_url()}, dir.Sub("rec.log"),
               {"--segment-max-age", "200ms", "--compact-every", "1s", "--compact-min-age", "0",
                "--compact-target-size", "64KiB", "--compact-keep-last", "2", "--hash-every", "300ms"});
  ASSERT_TRUE(WaitBase(dir.Sub("repo"))) << ReadFile(dir.Sub("rec.log"));
  auto merged_names = [&] {
    std::vector<std::string> out;
    for (const auto& n : ListDir(dir.Sub("repo"))) {
      backup::ParsedName p = backup::ClassifyName(n);
      if (p.kind == backup::NameKind::kSegment && p.seq_last > p.seq) out.push_back(n);
    }
    return out;
  };
  std::mt19937 rng(3);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  int i = 0;
  // Writes go on until merged segments hold well over a hundred revisions (or 30 s pass).
  for (;;) {
    for (int k = 0; k < 10; k++, i++) {
      c->Put("/c/" + std::to_string(rng() % 30), "v" + std::to_string(i) + std::string(rng() % 100, 'x'));
      if (i % 17 == 0) c->DeleteRange("/c/" + std::to_string(rng() % 30));
    }
    std::this_thread::sleep_for(milliseconds(40));
    int64_t merged_revs = 0;
    for (const auto& n : merged_names()) {
      backup::ParsedName p = backup::ClassifyName(n);
      merged_revs += p.last_revision - p.first_revision + 1;
    }
    if (merged_revs > 300 || std::chrono::steady_clock::now() > until) break;
  }
  const int64_t last = c->EndpointStatus().header.revision;
  ASSERT_TRUE(WaitStored(dir.Sub("repo"), last)) << ReadFile(dir.Sub("rec.log"));
  EXPECT_EQ(rec.Kill(SIGTERM), 0) << ReadFile(dir.Sub("rec.log"));
  const std::string log = ReadFile(dir.Sub("rec.log"));
  EXPECT_NE(log.find("compaction wrote "), std::string::npos) << log;
  const std::vector<std::string> merged = merged_names();
  ASSERT_FALSE(merged.empty()) << log;

  // The chain: whole, every revision once and as etcd has it, fewer objects than segments.
  auto repo = backup::OpenRepository("file://" + dir.Sub("repo"), {}, true);
  follow::ChainScan scan = follow::ScanChains(*repo);
  ASSERT_EQ(scan.chains.size(), 1u);
  const follow::Chain& chain = scan.chains[0];
  EXPECT_TRUE(chain.superseded.empty());
  EXPECT_GT(chain.segments.back().parsed.seq_last, chain.segments.size());
  auto chains = ReadChains(dir.Sub("repo"));
  ASSERT_EQ(chains.size(), 1u);
  EXPECT_EQ(chains[0].last, last);
  const int64_t from = std::max<int64_t>(chains[0].base, 1) + 1;  // a fresh etcd's base is at 0, its store at 1
  ExpectSameEvents(History(etcd.client_config(), from), chains[0], from, last);

  // A revision in the middle of the biggest merged segment.
  backup::ParsedName big;
  for (const auto& n : merged) {
    backup::ParsedName p = backup::ClassifyName(n);
    if (p.last_revision - p.first_revision > big.last_revision - big.first_revision) big = p;
  }
  ASSERT_GT(big.last_revision, big.first_revision);
  const int64_t target = (big.first_revision + big.last_revision) / 2;
  const client::EtcdClient::RangeResult want = c->Range(std::string(1, '\0'), std::string(1, '\0'), 0, target);
  const uint32_t want_hash = c->HashKV(target).hash;
  const std::string data = dir.Sub("restored");
  const int peer = FreePort();
  const std::string url = "http://127.0.0.1:" + std::to_string(peer);
  CmdResult r = Exec(ETCDSAFE_BINARY, {"restore", "--repo", "file://" + dir.Sub("repo"), "--to-revision",
                                       std::to_string(target), "--data-dir", data, "--initial-cluster",
                                       "default=" + url, "--initial-advertise-peer-urls", url});
  ASSERT_EQ(r.code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("restored revision " + std::to_string(target) + " "), std::string::npos) << r.out;
  EtcdServerOptions o;
  o.data_dir = data;
  o.peer_port = peer;
  EtcdServer restored(o);
  auto rc = client::EtcdClient::Connect(restored.client_config());
  const client::EtcdClient::RangeResult got = rc->Range(std::string(1, '\0'), std::string(1, '\0'));
  EXPECT_EQ(got.header.revision, target);
  ASSERT_EQ(got.kvs.size(), want.kvs.size());
  ASSERT_GT(want.kvs.size(), 5u);
  for (size_t k = 0; k < got.kvs.size(); k++) {
    EXPECT_EQ(got.kvs[k].key, want.kvs[k].key) << k;
    EXPECT_EQ(got.kvs[k].value, want.kvs[k].value) << got.kvs[k].key;
    EXPECT_EQ(got.kvs[k].create_revision, want.kvs[k].create_revision) << got.kvs[k].key;
    EXPECT_EQ(got.kvs[k].mod_revision, want.kvs[k].mod_revision) << got.kvs[k].key;
    EXPECT_EQ(got.kvs[k].version, want.kvs[k].version) << got.kvs[k].key;
  }
  EXPECT_EQ(rc->HashKV(target).hash, want_hash);

  // `backups compact` on what is left: nothing young is touched with the default age, and
  // with --min-age 0 --keep-last 0 the rest merges too; the chain still reads the same.
  CmdResult dry = Exec(ETCDSAFE_BINARY, {"backups", "compact", "--repo", "file://" + dir.Sub("repo"), "--min-age",
                                         "0", "--keep-last", "0", "--target-size", "1MiB", "--dry-run"});
  ASSERT_EQ(dry.code, 0) << dry.err;
  EXPECT_NE(dry.out.find("dry run: 1 merged segments would be written"), std::string::npos) << dry.out;
  CmdResult all = Exec(ETCDSAFE_BINARY, {"backups", "compact", "--repo", "file://" + dir.Sub("repo"), "--min-age",
                                         "0", "--keep-last", "0", "--target-size", "1MiB"});
  ASSERT_EQ(all.code, 0) << all.err;
  follow::ChainScan after = follow::ScanChains(*repo);
  ASSERT_EQ(after.chains.size(), 1u);
  EXPECT_EQ(after.chains[0].segments.size(), 1u);
  auto again = ReadChains(dir.Sub("repo"));
  ASSERT_EQ(again.size(), 1u);
  ExpectSameEvents(History(etcd.client_config(), from), again[0], from, last);
  CmdResult verify = Exec(ETCDSAFE_BINARY, {"backups", "verify", "--repo", "file://" + dir.Sub("repo")});
  EXPECT_EQ(verify.code, 0) << verify.out << verify.err;
}

}  // namespace
}  // namespace etcdsafe
