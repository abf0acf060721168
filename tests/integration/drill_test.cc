// Restore drills (`snapshot verify --drill`, `backups verify --drill`) and the offline
// HashKV they rely on, against real etcd 3.4 servers:
//  - KvHashOfFile(snapshot, R) equals `etcdctl endpoint hashkv --rev R` of the server the
//    snapshot came from, at every revision, through overwrites, deletes, multi-op txns,
//    range deletes and compactions (also one that removes the newest tombstone);
//  - a drill of Kubernetes-shaped data passes (file and repository), and drills of a
//    corrupt backup, data without the Kubernetes essentials, an old snapshot, an etcd
//    that does not start and a missing etcd binary fail with the documented exit code,
//    the failed check named last, the JSON report written, and no etcd process and no
//    scratch directory left; SIGTERM during a drill leaves nothing running either.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/error.h"
#include "client/etcd_client.h"
#include "ops/kv_hash.h"
#include "testutil/cli.h"
#include "testutil/etcd_server.h"
#include "testutil/temp_dir.h"

extern char** environ;

namespace etcdsafe {
namespace {

using testutil::CmdResult;
using testutil::Concat;
using testutil::EtcdServer;
using testutil::Exec;
using testutil::IsOneLineError;
using testutil::Shell;
using testutil::ShellQuote;
using testutil::TempDir;

CmdResult Etcdsafe(const std::vector<std::string>& args, const std::string& env = "") {
  return Exec(ETCDSAFE_BINARY, args, env);
}

std::string LastLine(const std::string& s) {
  std::string t = s;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  size_t nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

// Processes whose command line holds `needle` (the drill's etcd has
// --data-dir=<TMPDIR>/etcdsafe-drill-XXXXXX/data). Zombies have none.
std::vector<pid_t> ProcessesWith(const std::string& needle) {
  std::vector<pid_t> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f(e.path() / "cmdline", std::ios::binary);
    std::string cmd((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (cmd.find(needle) != std::string::npos) out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return out;
}

// Live children of this test named etcd whose command line holds `needle`: with the test
// as child subreaper, an etcd that outlived its etcdsafe would be one.
std::vector<pid_t> EtcdChildrenWith(const std::string& needle) {
  std::vector<pid_t> out;
  for (pid_t pid : ProcessesWith(needle)) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::string comm = stat.substr(stat.find('(') + 1, close - stat.find('(') - 1);
    char state = 0;
    long ppid = 0;
    std::sscanf(stat.c_str() + close + 2, "%c %ld", &state, &ppid);
    if (comm == "etcd" && state != 'Z') out.push_back(pid);
  }
  return out;
}

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
  return out;
}

nlohmann::json ReadJson(const std::string& path) { return nlohmann::json::parse(testutil::ReadFile(path)); }

// The check named `name` in a report, or null.
nlohmann::json CheckOf(const nlohmann::json& report, const std::string& name) {
  for (const auto& c : report["checks"]) {
    if (c["name"] == name) return c;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------
// Offline HashKV == etcd's.

class KvHashTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new EtcdServer(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  static client::EtcdClient& Client() {
    static std::unique_ptr<client::EtcdClient> c = client::EtcdClient::Connect(server_->client_config());
    return *c;
  }
  static int64_t Current() { return Client().Range("x").revision; }

  // `etcdctl endpoint hashkv [--rev R]`: "<endpoint>, <hash>".
  static std::optional<uint32_t> EtcdHash(int64_t rev) {
    std::vector<std::string> args = {"endpoint", "hashkv"};
    if (rev != 0) args.push_back("--rev=" + std::to_string(rev));
    testutil::EtcdctlResult r = server_->etcdctl(args);
    if (r.exit_code != 0) return std::nullopt;
    size_t comma = r.out.rfind(", ");
    EXPECT_NE(comma, std::string::npos) << r.out;
    return static_cast<uint32_t>(std::stoul(r.out.substr(comma + 2)));
  }
  // `etcdctl get "" --prefix --keys-only --limit=1 -w json --rev R`: its "count".
  static uint64_t EtcdCount(int64_t rev) {
    testutil::EtcdctlResult r = server_->etcdctl(
        {"get", "", "--prefix", "--keys-only", "--limit=1", "-w", "json", "--rev=" + std::to_string(rev)});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    return j.contains("count") ? j["count"].get<uint64_t>() : 0;
  }
  std::string Save(const std::string& name) {
    std::string path = dir_.Sub(name);
    testutil::EtcdctlResult r = server_->etcdctl({"snapshot", "save", path});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return path;
  }
  void Txn(const std::string& ops) {
    CmdResult r = Shell("printf '%s' " + ShellQuote("\n" + ops + "\n\n") +
                        " | env -u ETCDCTL_ENDPOINTS ETCDCTL_API=3 /usr/bin/etcdctl --endpoints=" +
                        server_->client_url() + " txn");
    ASSERT_EQ(r.code, 0) << r.err;
  }
  void Compact(int64_t rev) {
    testutil::EtcdctlResult r = server_->etcdctl({"compact", std::to_string(rev), "--physical"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  // Offline hash of `snap` == etcd's at every revision in [from, to], and at 0.
  void ExpectSameHashes(const std::string& snap, int64_t from, int64_t to) {
    for (int64_t rev = from; rev <= to; rev++) {
      ops::KvHashOptions o;
      o.revision = rev;
      ops::KvSpace k = ops::KvHashOfFile(snap, o);
      std::optional<uint32_t> etcd = EtcdHash(rev);
      ASSERT_TRUE(etcd.has_value()) << "etcdctl hashkv --rev " << rev;
      EXPECT_EQ(k.hash, *etcd) << "revision " << rev;
      EXPECT_EQ(k.hash_revision, rev);
    }
    ops::KvSpace now = ops::KvHashOfFile(snap);
    EXPECT_EQ(now.hash, EtcdHash(0).value());
    EXPECT_EQ(now.current_revision, to);
    EXPECT_EQ(now.live_keys, EtcdCount(to));
  }

  static EtcdServer* server_;
  TempDir dir_;
};
EtcdServer* KvHashTest::server_ = nullptr;

TEST_F(KvHashTest, EqualsEtcdHashKvAtEveryRevisionThroughDeletesOverwritesAndCompactions) {
  client::EtcdClient& c = Client();
  for (int i = 0; i < 12; i++) c.Put("/k/" + std::to_string(i), "v" + std::to_string(i));
  for (int i = 0; i < 12; i += 2) c.Put("/k/" + std::to_string(i), "overwritten-" + std::to_string(i));
  c.DeleteRange("/k/3");
  c.DeleteRange("/k/4");
  Txn("put /t/a 1\nput /t/b 2\nput /k/5 txn\ndel /k/7\n");  // one revision, several sub-revisions
  c.Put("/k/3", "back again");                                // a new generation of a deleted key
  c.DeleteRange("/k/1", "/k/2");                              // a range delete
  c.Put("/r/x", std::string(5000, 'x'));
  const int64_t a = Current();
  std::string snap_a = Save("a.db");
  ExpectSameHashes(snap_a, 1, a);

  // A compaction in the middle: below it, only what Keep(R) keeps is hashed.
  const int64_t compact1 = a - 6;
  Compact(compact1);
  c.Put("/k/0", "after compaction");  // overwrites a key live at the compaction
  c.DeleteRange("/k/2");              // deletes one
  c.DeleteRange("/t/", "/t0");        // deletes two in one revision
  c.Put("/k/4", "re-created");        // re-creates one deleted before it
  Txn("put /k/6 six\nput /k/8 eight\n");
  const int64_t b = Current();
  std::string snap_b = Save("b.db");
  ExpectSameHashes(snap_b, compact1 + 1, b);
  // At or below the compaction: etcd's words, as etcd refuses it.
  ops::KvHashOptions old;
  old.revision = compact1;
  try {
    ops::KvHashOfFile(snap_b, old);
    ADD_FAILURE() << "hash at the compacted revision accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_STREQ(e.what(), "mvcc: required revision has been compacted");
  }
  EXPECT_FALSE(EtcdHash(compact1).has_value());
  ops::KvHashOptions future;
  future.revision = b + 1;
  EXPECT_THROW(ops::KvHashOfFile(snap_b, future), Error);

  // Compacting at a delete removes the newest tombstone: the db's last entry is below the
  // revision etcd reports, which is raised to the compaction.
  c.DeleteRange("/k/9");
  const int64_t d = Current();
  Compact(d);
  std::string snap_c = Save("c.db");
  ops::KvSpace k = ops::KvHashOfFile(snap_c);
  EXPECT_EQ(k.current_revision, d);
  EXPECT_EQ(k.compact_revision, d);
  EXPECT_EQ(k.hash, EtcdHash(0).value());
  EXPECT_EQ(k.live_keys, EtcdCount(d));
  EXPECT_LT(ops::KvHashOfFile(snap_b).current_revision, d);
}

TEST(RegistryGroupTest, ResourceAndNamespace) {
  EXPECT_EQ(ops::RegistryGroup("/registry/pods/default/web-0"), "pods/default");
  EXPECT_EQ(ops::RegistryGroup("/registry/namespaces/kube-system"), "namespaces");
  EXPECT_EQ(ops::RegistryGroup("/registry/apiregistration.k8s.io/apiservices/v1.apps"),
            "apiregistration.k8s.io/apiservices");
  EXPECT_EQ(ops::RegistryGroup("/registry/health"), "");
  EXPECT_EQ(ops::RegistryGroup("compact_rev_key"), "");
}

// ---------------------------------------------------------------------------------------
// Drills through the etcdsafe binary.

class DrillCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Orphans become our children: an etcd that outlived its etcdsafe would show up.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    shared_ = new TempDir();
    server_ = new EtcdServer();
    auto c = client::EtcdClient::Connect(server_->client_config());
    c->Put("/app/config", "not kubernetes");
    c->Put("/app/other", "plain data");
    Save("plain.db");
    LoadKubernetes(*c);
    Save("k8s.db");
    CmdResult r = Etcdsafe({"backup", "--repo", "file://" + shared_->Sub("repo"), "--endpoints",
                            server_->client_url(), "--encryption-key-file", Key()});
    ASSERT_EQ(r.code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    delete server_;
    delete shared_;
  }

  // Namespaces, ranges, pods, configmaps, secrets in several namespaces, an API group,
  // overwrites, deletes and a compaction, as a Kubernetes API server leaves them.
  static void LoadKubernetes(client::EtcdClient& c) {
    for (const char* ns : {"default", "kube-system", "kube-public", "team-a", "team-b"}) {
      c.Put(std::string("/registry/namespaces/") + ns, std::string("{\"kind\":\"Namespace\",\"name\":\"") + ns + "\"}");
    }
    c.Put("/registry/ranges/serviceips", "range 10.96.0.0/12");
    c.Put("/registry/ranges/servicenodeports", "range 30000-32767");
    c.Put("/registry/apiregistration.k8s.io/apiservices/v1.apps", "{\"kind\":\"APIService\"}");
    for (int i = 0; i < 60; i++) {
      const std::string ns = i % 3 == 0 ? "kube-system" : i % 3 == 1 ? "team-a" : "team-b";
      c.Put("/registry/pods/" + ns + "/pod-" + std::to_string(i),
            "{\"kind\":\"Pod\",\"spec\":\"" + std::string(200 + i * 37 % 3000, 'a' + i % 26) + "\"}");
      if (i % 4 == 0) c.Put("/registry/configmaps/" + ns + "/cm-" + std::to_string(i), "{\"kind\":\"ConfigMap\"}");
      if (i % 5 == 0) c.Put("/registry/secrets/" + ns + "/s-" + std::to_string(i), std::string(64, '\x01'));
    }
    for (int i = 0; i < 60; i += 7) c.Put("/registry/pods/" + std::string(i % 3 == 0 ? "kube-system" : i % 3 == 1 ? "team-a" : "team-b") + "/pod-" + std::to_string(i), "{\"kind\":\"Pod\",\"status\":\"Running\"}");
    const int64_t mid = c.Range("x").revision;
    for (int i = 1; i < 60; i += 9) {
      c.DeleteRange("/registry/pods/" + std::string(i % 3 == 0 ? "kube-system" : i % 3 == 1 ? "team-a" : "team-b") +
                    "/pod-" + std::to_string(i));
    }
    testutil::EtcdctlResult r = server_->etcdctl({"compact", std::to_string(mid), "--physical"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    c.Put("compact_rev_key", std::to_string(mid));
    c.Put("/registry/pods/team-a/pod-late", "{\"kind\":\"Pod\"}");
  }
  static void Save(const std::string& name) {
    CmdResult r = Etcdsafe({"snapshot", "save", shared_->Sub(name), "--endpoints", server_->client_url()});
    ASSERT_EQ(r.code, 0) << r.err;
  }
  static std::string Key() {
    std::string path = shared_->Sub("backup.key");
    if (!PathExists(path)) {
      testutil::WriteFile(path, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
      ::chmod(path.c_str(), 0600);
    }
    return path;
  }
  static std::string Shared(const std::string& name) { return shared_->Sub(name); }

  // Runs etcdsafe with TMPDIR in a fresh directory, then checks that the drill left
  // nothing: no etcd with a data dir there (and none adopted by us), an empty TMPDIR.
  CmdResult Drill(const std::vector<std::string>& args, const std::string& env = "") {
    std::string tmp = dir_.Sub("tmp" + std::to_string(runs_++));
    std::filesystem::create_directory(tmp);
    CmdResult r = Etcdsafe(args, "TMPDIR=" + ShellQuote(tmp) + " " + env);
    ExpectNothingLeft(tmp);
    return r;
  }
  void ExpectNothingLeft(const std::string& tmp) {
    EXPECT_EQ(ProcessesWith("--data-dir=" + tmp + "/").size(), 0u) << "an etcd of the drill still runs";
    EXPECT_EQ(EtcdChildrenWith(tmp).size(), 0u);
    EXPECT_EQ(Entries(tmp).size(), 0u) << "the drill left files in " << tmp;
  }

  static TempDir* shared_;
  static EtcdServer* server_;
  TempDir dir_;
  int runs_ = 0;
};
TempDir* DrillCli::shared_ = nullptr;
EtcdServer* DrillCli::server_ = nullptr;

TEST_F(DrillCli, SnapshotDrillOfKubernetesDataPasses) {
  const std::string report = dir_.Sub("report.json");
  CmdResult r = Drill({"snapshot", "verify", Shared("k8s.db"), "--drill", "--max-age", "1h", "--report", report});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(LastLine(r.out).find("drill passed"), std::string::npos) << r.out;
  nlohmann::json j = ReadJson(report);
  EXPECT_TRUE(j["ok"].get<bool>());
  for (const char* name : {"freshness", "etcd binary", "integrity", "key space", "restore", "etcd start", "revision",
                           "key count", "hashkv", "kubernetes objects", "essentials"}) {
    nlohmann::json c = CheckOf(j, name);
    ASSERT_FALSE(c.is_null()) << name << " missing from " << j.dump();
    EXPECT_TRUE(c["ok"].get<bool>()) << c.dump();
    EXPECT_TRUE(c["expected"].is_string() && c["found"].is_string() && c["ms"].is_number_integer()) << c.dump();
  }
  // The numbers are what the source etcd serves and what etcdctl says.
  testutil::EtcdctlResult hash = server_->etcdctl({"endpoint", "hashkv"});
  std::string etcd_hash = hash.out.substr(hash.out.rfind(", ") + 2);
  while (!etcd_hash.empty() && etcd_hash.back() == '\n') etcd_hash.pop_back();
  EXPECT_EQ(CheckOf(j, "hashkv")["found"].get<std::string>().rfind(etcd_hash + " at revision", 0), 0u) << j.dump();
  const int64_t rev = client::EtcdClient::Connect(server_->client_config())->Range("x").revision;
  EXPECT_EQ(CheckOf(j, "revision")["found"], std::to_string(rev));
  EXPECT_NE(CheckOf(j, "kubernetes objects")["expected"].get<std::string>().find("groups"), std::string::npos);
  // No temporaries of the atomic report write.
  EXPECT_EQ(Entries(dir_.path()).size(), 2u);  // report.json and tmp0
}

TEST_F(DrillCli, RepositoryDrillOfLatestBackupPasses) {
  const std::string report = dir_.Sub("r.json");
  CmdResult r = Drill({"backups", "verify", "--repo", "file://" + Shared("repo"), "--backup", "latest", "--drill",
                       "--encryption-key-file", Key(), "--report", report, "--max-age", "1d"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  nlohmann::json j = ReadJson(report);
  EXPECT_TRUE(j["ok"].get<bool>()) << j.dump();
  EXPECT_FALSE(CheckOf(j, "hashkv").is_null());
  EXPECT_TRUE(CheckOf(j, "essentials")["ok"].get<bool>());
  // No such backup: not found, named last, reported.
  const std::string missing = dir_.Sub("missing.json");
  CmdResult none = Drill({"backups", "verify", "--repo", "file://" + Shared("repo"), "--backup",
                          "etcd-snapshot-20000101-000000-r1", "--drill", "--encryption-key-file", Key(), "--report",
                          missing});
  EXPECT_EQ(none.code, 10) << none.err;
  EXPECT_NE(LastLine(none.err).find("drill failed (backup)"), std::string::npos) << none.err;
  EXPECT_FALSE(ReadJson(missing)["ok"].get<bool>());
  // Without the key: a one-line usage error before anything runs.
  CmdResult nokey = Drill({"backups", "verify", "--repo", "file://" + Shared("repo"), "--drill"});
  EXPECT_EQ(nokey.code, 128) << nokey.err;
  EXPECT_TRUE(IsOneLineError(nokey)) << nokey.err;
}

TEST_F(DrillCli, CorruptSnapshotFailsIntegrity) {
  const std::string bad = dir_.Sub("corrupt.db");
  std::filesystem::copy_file(Shared("k8s.db"), bad);
  {
    std::fstream f(bad, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(5 * 4096 + 100);
    f.write("garbage!", 8);
  }
  const std::string report = dir_.Sub("bad.json");
  CmdResult r = Drill({"snapshot", "verify", bad, "--drill", "--report", report});
  EXPECT_EQ(r.code, 14) << r.out << r.err;
  EXPECT_TRUE(IsOneLineError(r)) << r.err;
  EXPECT_NE(LastLine(r.err).find("drill failed (integrity)"), std::string::npos) << r.err;
  nlohmann::json j = ReadJson(report);
  EXPECT_FALSE(j["ok"].get<bool>());
  EXPECT_FALSE(CheckOf(j, "integrity")["ok"].get<bool>());
  EXPECT_TRUE(CheckOf(j, "etcd start").is_null());  // nothing after it ran
  // Truncated: the same.
  const std::string cut = dir_.Sub("truncated.db");
  std::filesystem::copy_file(Shared("k8s.db"), cut);
  std::filesystem::resize_file(cut, std::filesystem::file_size(cut) / 2);
  CmdResult t = Drill({"snapshot", "verify", cut, "--drill"});
  EXPECT_EQ(t.code, 14) << t.out << t.err;
  EXPECT_NE(LastLine(t.err).find("drill failed (integrity)"), std::string::npos) << t.err;
}

TEST_F(DrillCli, CorruptRepositoryBackupFailsRestore) {
  const std::string repo = dir_.Sub("repo");
  std::filesystem::copy(Shared("repo"), repo, std::filesystem::copy_options::recursive);
  bool flipped = false;
  for (const auto& name : Entries(repo)) {
    if (name.find(".db.zst.enc") == std::string::npos || name.find(".sha256") != std::string::npos) continue;
    std::fstream f(repo + "/" + name, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(0, std::ios::end);
    const auto size = static_cast<std::streamoff>(f.tellg());
    f.seekp(size / 2);
    f.write("XXXX", 4);
    flipped = true;
  }
  ASSERT_TRUE(flipped);
  CmdResult r = Drill({"backups", "verify", "--repo", "file://" + repo, "--drill", "--encryption-key-file", Key()});
  EXPECT_EQ(r.code, 14) << r.out << r.err;
  EXPECT_NE(LastLine(r.err).find("drill failed (restore)"), std::string::npos) << r.err;
}

TEST_F(DrillCli, MissingEssentialsFailUnlessNotKubernetes) {
  const std::string report = dir_.Sub("plain.json");
  CmdResult r = Drill({"snapshot", "verify", Shared("plain.db"), "--drill", "--report", report});
  EXPECT_EQ(r.code, 14) << r.out << r.err;
  EXPECT_NE(LastLine(r.err).find("drill failed (essentials)"), std::string::npos) << r.err;
  EXPECT_NE(LastLine(r.err).find("/registry/namespaces/kube-system"), std::string::npos) << r.err;
  nlohmann::json j = ReadJson(report);
  EXPECT_FALSE(j["ok"].get<bool>());
  EXPECT_TRUE(CheckOf(j, "hashkv")["ok"].get<bool>());  // the rest of the drill passed
  CmdResult plain = Drill({"snapshot", "verify", Shared("plain.db"), "--drill", "--not-kubernetes"});
  EXPECT_EQ(plain.code, 0) << plain.out << plain.err;
  EXPECT_EQ(plain.out.find("essentials"), std::string::npos) << plain.out;
}

TEST_F(DrillCli, MaxAgeExceededFailsFreshness) {
  const std::string old = dir_.Sub("old.db");
  std::filesystem::copy_file(Shared("k8s.db"), old);
  ASSERT_EQ(Shell("touch -d '2 days ago' " + ShellQuote(old)).code, 0);
  const std::string report = dir_.Sub("old.json");
  CmdResult r = Drill({"snapshot", "verify", old, "--drill", "--max-age", "24h", "--report", report});
  EXPECT_EQ(r.code, 14) << r.out << r.err;
  EXPECT_NE(LastLine(r.err).find("drill failed (freshness)"), std::string::npos) << r.err;
  nlohmann::json j = ReadJson(report);
  EXPECT_FALSE(CheckOf(j, "freshness")["ok"].get<bool>());
  EXPECT_TRUE(CheckOf(j, "hashkv")["ok"].get<bool>());
}

TEST_F(DrillCli, EtcdThatDoesNotStartFails) {
  const std::string fake = dir_.Sub("etcd");
  testutil::WriteFile(fake, "#!/bin/sh\necho '{\"level\":\"fatal\",\"msg\":\"simulated start failure\"}' >&2\nexit 1\n");
  ::chmod(fake.c_str(), 0755);
  const std::string report = dir_.Sub("start.json");
  CmdResult r = Drill({"snapshot", "verify", Shared("k8s.db"), "--drill", "--etcd-binary", fake, "--report", report});
  EXPECT_EQ(r.code, 14) << r.out << r.err;
  EXPECT_NE(LastLine(r.err).find("drill failed (etcd start)"), std::string::npos) << r.err;
  EXPECT_NE(LastLine(r.err).find("simulated start failure"), std::string::npos) << r.err;
  EXPECT_FALSE(ReadJson(report)["ok"].get<bool>());
}

TEST_F(DrillCli, MissingEtcdBinaryIsNotFound) {
  const std::string report = dir_.Sub("nobin.json");
  CmdResult r = Drill({"snapshot", "verify", Shared("k8s.db"), "--drill", "--etcd-binary", dir_.Sub("no-such-etcd"),
                       "--report", report});
  EXPECT_EQ(r.code, 10) << r.out << r.err;
  EXPECT_TRUE(IsOneLineError(r)) << r.err;
  EXPECT_NE(LastLine(r.err).find("drill failed (etcd binary)"), std::string::npos) << r.err;
  nlohmann::json j = ReadJson(report);
  EXPECT_FALSE(j["ok"].get<bool>());
  EXPECT_EQ(j["checks"].size(), 1u) << j.dump();
  // Not in PATH either.
  CmdResult path = Drill({"snapshot", "verify", Shared("k8s.db"), "--drill"}, "PATH=/nonexistent");
  EXPECT_EQ(path.code, 10) << path.err;
  EXPECT_NE(LastLine(path.err).find("etcd binary not found in PATH"), std::string::npos) << path.err;
}

TEST_F(DrillCli, BadFlagsAreUsageErrors) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"snapshot", "verify", Shared("k8s.db"), "--drill", "--max-age", "soon"},
           {"snapshot", "verify", Shared("k8s.db"), "--drill", "--max-age", "0h"},
           {"snapshot", "verify", Shared("k8s.db"), "--max-age", "1h"},
           {"snapshot", "verify", Shared("k8s.db"), "--drill", "--report", dir_.Sub("no/such/dir/r.json")},
           {"backups", "verify", "--repo", "file://" + Shared("repo"), "--not-kubernetes"},
       }) {
    CmdResult r = Drill(args);
    EXPECT_EQ(r.code, 128) << testing::PrintToString(args) << r.err;
    EXPECT_TRUE(IsOneLineError(r)) << r.err;
  }
}

// Starts `snapshot verify k8s.db --drill` with TMPDIR=tmp, paused once its etcd is healthy,
// and returns its pid once that etcd runs.
pid_t StartPausedDrill(const std::string& snap, const std::string& tmp, const std::string& err_path) {
  std::vector<std::string> argv_s = {ETCDSAFE_BINARY, "snapshot", "verify", snap, "--drill"};
  std::vector<std::string> env_s = {"TMPDIR=" + tmp, "ETCDSAFE_TEST_PAUSE=drill-etcd-running:20000"};
  for (char** e = environ; *e != nullptr; e++) env_s.push_back(*e);
  std::vector<char*> argv, envp;
  for (auto& a : argv_s) argv.push_back(a.data());
  for (auto& e : env_s) envp.push_back(e.data());
  argv.push_back(nullptr);
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  bool running = false;
  for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
       std::chrono::steady_clock::now() < end && !running;) {
    running = !ProcessesWith("--data-dir=" + tmp + "/").empty();
    if (!running) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // Spawned; give it the moment until it is healthy and the drill pauses.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  return running ? pid : -1;
}

TEST_F(DrillCli, SigtermWhileEtcdRunsLeavesNothing) {
  const std::string tmp = dir_.Sub("tmp-signal");
  std::filesystem::create_directory(tmp);
  const std::string err_path = dir_.Sub("signal.err");
  pid_t pid = StartPausedDrill(Shared("k8s.db"), tmp, err_path);
  ASSERT_GT(pid, 0) << testutil::ReadFile(err_path);
  ASSERT_EQ(::kill(pid, SIGTERM), 0);  // etcdsafe, not its etcd
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130) << testutil::ReadFile(err_path);
  ExpectNothingLeft(tmp);
}

TEST_F(DrillCli, KillNineTakesEtcdAlongAndTheNextDrillRemovesTheDir) {
  const std::string tmp = dir_.Sub("tmp-kill");
  std::filesystem::create_directory(tmp);
  const std::string err_path = dir_.Sub("kill.err");
  pid_t pid = StartPausedDrill(Shared("k8s.db"), tmp, err_path);
  ASSERT_GT(pid, 0) << testutil::ReadFile(err_path);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  // Its etcd dies with it (parent-death signal); only the scratch dir stays.
  bool gone = false;
  for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
       std::chrono::steady_clock::now() < end && !gone;) {
    gone = EtcdChildrenWith("--data-dir=" + tmp + "/").empty();
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(gone) << "the etcd of a killed drill still runs";
  ASSERT_EQ(Entries(tmp).size(), 1u);
  const std::string left = tmp + "/" + Entries(tmp)[0];
  // The next drill in the same TMPDIR removes it, says so, and leaves nothing itself.
  CmdResult r = Etcdsafe({"snapshot", "verify", Shared("k8s.db"), "--drill"}, "TMPDIR=" + ShellQuote(tmp));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("removed " + left + " (left by a drill that was killed)"), std::string::npos) << r.err;
  ExpectNothingLeft(tmp);
}

}  // namespace
}  // namespace etcdsafe
