// End-to-end tests of the etcdctl-compatible cluster commands (`version`, `endpoint
// health|status|hashkv`, `member list|add|remove|update|promote`, `--debug`): the real
// etcdsafe binary and the real etcdctl 3.4 against one real 3-member TLS etcd 3.4 cluster
// on loopback, outputs compared byte for byte (only `took` timings normalised), and a
// member replaced end to end with exactly the ETCD_* variables `member add` printed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <regex>
#include <sstream>
#include <thread>

#include "client/etcd_client.h"
#include "testutil/cli.h"
#include "testutil/etcd_server.h"
#include "testutil/process.h"
#include "testutil/temp_dir.h"

namespace etcdsafe {
namespace {

using testutil::CmdResult;
using testutil::Concat;
using testutil::EtcdServer;
using testutil::Exec;
using testutil::KvDump;

CmdResult Etcdsafe(const std::vector<std::string>& args) { return Exec(ETCDSAFE_BINARY, args); }
CmdResult Etcdctl(const std::vector<std::string>& args) { return Exec("ETCDCTL_API=3 /usr/bin/etcdctl", args); }

// etcdctl's client library logs retries as zap JSON lines on stderr; they are logging,
// not the command's output.
std::string DropLogLines(const std::string& s) {
  std::istringstream in(s);
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.rfind("{\"level\"", 0) == 0) continue;
    out += line + "\n";
  }
  return out;
}

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

// Go durations ("6.1ms", "850µs", "5.000799252s") -> "T"; for tables also the column
// padding, which follows the durations' lengths.
std::string NormalizeTook(const std::string& s, bool table = false) {
  static const std::regex dur("[0-9]+(\\.[0-9]+)?(ns|µs|ms|s)\\b");
  std::string out = std::regex_replace(s, dur, "T");
  if (table) {
    out = std::regex_replace(out, std::regex("-+"), "-");
    out = std::regex_replace(out, std::regex(" +"), " ");
  }
  return out;
}

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

class OpsCluster : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    servers_ = new auto(EtcdServer::StartNewCluster(3, /*tls=*/true));
    auto c = client::EtcdClient::Connect((*servers_)[0]->client_config());
    for (int i = 0; i < 40; i++) c->Put("/registry/pods/ns" + std::to_string(i % 3) + "/p" + std::to_string(i), "v" + std::to_string(i));
    c->DeleteRange("/registry/pods/ns0/p0");
    dump_ = new auto(testutil::DumpAll(*c));
    started_ = std::chrono::steady_clock::now();
  }
  // etcd refuses membership changes ("etcdserver: unhealthy cluster") until every member
  // has been connected for 5 s; ctest runs each test in its own process and cluster.
  static void WaitReconfigurable() { std::this_thread::sleep_until(started_ + std::chrono::milliseconds(5500)); }
  static void TearDownTestSuite() {
    delete servers_;
    delete dump_;
  }
  static EtcdServer& S(int i) { return *(*servers_)[static_cast<size_t>(i)]; }
  static std::vector<std::string> Tls() {
    return {"--cacert", S(0).certs().ca, "--cert", S(0).certs().client_cert, "--key", S(0).certs().client_key};
  }
  // TLS flags and --endpoints (default: member 0 only).
  static std::vector<std::string> Flags(const std::string& endpoints = "") {
    return Concat({"--endpoints", endpoints.empty() ? S(0).client_url() : endpoints}, Tls());
  }
  static std::string AllEndpoints() { return S(0).client_url() + "," + S(1).client_url() + "," + S(2).client_url(); }

  // Both tools, same arguments: same stdout, same stderr (log lines aside), same exit code.
  static void ExpectSame(const std::vector<std::string>& args) {
    CmdResult ours = Etcdsafe(args), theirs = Etcdctl(args);
    EXPECT_EQ(ours.code, theirs.code) << testing::PrintToString(args) << "\nours: " << ours.err << "\netcdctl: " << theirs.err;
    EXPECT_EQ(ours.out, theirs.out) << testing::PrintToString(args);
    EXPECT_EQ(ours.err, DropLogLines(theirs.err)) << testing::PrintToString(args);
  }

  // For numbers that settle after writes (a fresh member's db size grows as its backend
  // commits): compare until both tools agree, at most ~3 s, then as ExpectSame.
  static void ExpectSameOnceSettled(const std::vector<std::string>& args) {
    for (int i = 0; i < 10; i++) {
      CmdResult ours = Etcdsafe(args), theirs = Etcdctl(args);
      if (ours.code == theirs.code && ours.out == theirs.out && ours.err == DropLogLines(theirs.err)) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    ExpectSame(args);
  }

  static std::vector<client::EtcdClient::MemberInfo> Members() {
    return client::EtcdClient::Connect(S(0).client_config())->MemberList();
  }

  static std::vector<std::unique_ptr<EtcdServer>>* servers_;
  static KvDump* dump_;
  static std::chrono::steady_clock::time_point started_;
};
std::chrono::steady_clock::time_point OpsCluster::started_;
std::vector<std::unique_ptr<EtcdServer>>* OpsCluster::servers_ = nullptr;
KvDump* OpsCluster::dump_ = nullptr;

TEST_F(OpsCluster, VersionPrintsEtcdctlsTwoLines) {
  CmdResult ours = Etcdsafe({"version"}), theirs = Etcdctl({"version"});
  ASSERT_EQ(ours.code, 0) << ours.err;
  EXPECT_EQ(ours.out, "etcdsafe version: 0.2.0\nAPI version: 3.4\n");
  EXPECT_EQ(Lines(ours.out)[1], Lines(theirs.out)[1]);
  EXPECT_EQ(ours.err, "");
  // --debug is accepted by every command, before or after it.
  EXPECT_EQ(Etcdsafe({"--debug", "version"}).out, ours.out);
  EXPECT_EQ(Etcdsafe({"version", "--debug"}).code, 0);
}

TEST_F(OpsCluster, EndpointStatusAndHashKvEqualEtcdctlInEveryFormat) {
  for (const char* w : {"simple", "table", "json", "fields"}) {
    ExpectSameOnceSettled(Concat({"endpoint", "status", "-w", w}, Flags(AllEndpoints())));
    ExpectSameOnceSettled(Concat({"endpoint", "status", "--cluster", "-w", w}, Flags()));
    ExpectSame(Concat({"endpoint", "hashkv", "--cluster", "-w", w}, Flags()));
  }
  ExpectSame(Concat({"endpoint", "hashkv", "--rev", "10"}, Flags(AllEndpoints())));
  ExpectSame(Concat({"--write-out=json", "endpoint", "hashkv", "--cluster", "--rev=20"}, Flags()));
  // Exactly one line per member, the leader marked once.
  CmdResult r = Etcdsafe(Concat({"endpoint", "status", "--cluster"}, Flags()));
  const std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(std::count_if(lines.begin(), lines.end(),
                          [](const std::string& l) { return l.find(", true, false, ") != std::string::npos; }),
            1);
}

TEST_F(OpsCluster, EndpointHealthEqualsEtcdctlInEveryFormat) {
  for (bool cluster : {false, true}) {
    for (const char* w : {"simple", "table", "json", "fields"}) {
      std::vector<std::string> args = Concat({"endpoint", "health", "-w", w}, cluster ? Flags() : Flags(AllEndpoints()));
      if (cluster) args.push_back("--cluster");
      CmdResult ours = Etcdsafe(args), theirs = Etcdctl(args);
      ASSERT_EQ(ours.code, 0) << ours.err;
      EXPECT_EQ(theirs.code, 0);
      const bool table = std::string(w) == "table";
      if (std::string(w) == "simple") {
        // etcdctl prints each line (on stderr) as its check finishes; we in endpoint order.
        EXPECT_EQ(ours.out, "");
        EXPECT_EQ(Sorted(Lines(NormalizeTook(ours.err))), Sorted(Lines(NormalizeTook(DropLogLines(theirs.err)))));
        EXPECT_EQ(Lines(ours.err).size(), 3u);
      } else if (std::string(w) == "json") {
        // One array; the elements in etcdctl's completion order: compare as sets.
        auto split = [](std::string s) {
          s = NormalizeTook(s);
          std::vector<std::string> items;
          std::regex obj("\\{[^{}]*\\}");
          for (auto it = std::sregex_iterator(s.begin(), s.end(), obj); it != std::sregex_iterator(); ++it) {
            items.push_back(it->str());
          }
          return Sorted(items);
        };
        EXPECT_EQ(split(ours.out), split(theirs.out));
        EXPECT_EQ(ours.out.front(), '[');
      } else {
        std::vector<std::string> a = Lines(NormalizeTook(ours.out, table)), b = Lines(NormalizeTook(theirs.out, table));
        if (table) {
          ASSERT_EQ(a.size(), 7u) << ours.out;
          ASSERT_EQ(b.size(), 7u) << theirs.out;
          EXPECT_EQ(Sorted(a), Sorted(b));
          EXPECT_EQ(a[1], b[1]);  // header
        } else {
          // fields: blocks of 5 lines per endpoint, in completion order.
          EXPECT_EQ(Sorted(a), Sorted(b));
        }
      }
      EXPECT_EQ(ours.err.find("Error"), std::string::npos);
    }
  }
}

TEST_F(OpsCluster, UnreachableEndpointLikeEtcdctl) {
  const std::string dead = "127.0.0.1:" + std::to_string(testutil::FreePort());
  const std::vector<std::string> eps = Concat({"--command-timeout", "1s", "--dial-timeout", "1s"}, Flags(S(0).client_url() + "," + dead));
  // health: every endpoint's line, then exit 1 "unhealthy cluster".
  {
    std::vector<std::string> args = Concat({"endpoint", "health"}, eps);
    CmdResult ours = Etcdsafe(args), theirs = Etcdctl(args);
    EXPECT_EQ(ours.code, 1);
    EXPECT_EQ(theirs.code, 1);
    std::vector<std::string> a = Lines(NormalizeTook(ours.err)), b = Lines(NormalizeTook(DropLogLines(theirs.err)));
    ASSERT_EQ(a.size(), 3u) << ours.err;
    EXPECT_EQ(a.back(), "Error: unhealthy cluster");
    EXPECT_EQ(Sorted(a), Sorted(b));
    EXPECT_NE(ours.err.find(dead + " is unhealthy: failed to commit proposal: context deadline exceeded"), std::string::npos);
  }
  {
    std::vector<std::string> args = Concat({"endpoint", "health", "-w", "json"}, eps);
    CmdResult ours = Etcdsafe(args);
    EXPECT_EQ(ours.code, 1);
    EXPECT_NE(ours.out.find("{\"endpoint\":\"" + dead + "\",\"health\":false,\"took\":"), std::string::npos) << ours.out;
    EXPECT_NE(ours.out.find(",\"error\":\"context deadline exceeded\"}"), std::string::npos) << ours.out;
    EXPECT_EQ(ours.err, "Error: unhealthy cluster\n");
  }
  // status and hashkv: the reachable ones printed, the failed one reported, exit 1.
  ExpectSameOnceSettled(Concat({"endpoint", "status"}, eps));
  ExpectSame(Concat({"endpoint", "hashkv"}, eps));
  // Nothing reachable at all: the member commands fail with one line, exit 2.
  CmdResult r = Etcdsafe(Concat({"member", "list", "--dial-timeout", "1s"}, Flags(dead)));
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(testutil::IsOneLineError(r)) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find(dead), std::string::npos) << r.err;
  // --cluster with no reachable endpoint: etcdctl's text and exit code.
  ExpectSame(Concat({"endpoint", "status", "--cluster", "--dial-timeout", "1s", "--command-timeout", "1s"}, Flags(dead)));
}

TEST_F(OpsCluster, MemberListEqualsEtcdctlInEveryFormat) {
  for (const char* w : {"simple", "table", "json", "fields"}) {
    ExpectSame(Concat({"member", "list", "-w", w}, Flags()));
  }
  // ETCDCTL_* environment variables instead of flags.
  const std::string env = "ETCDCTL_ENDPOINTS=" + S(1).client_url() + " ETCDCTL_CACERT=" + S(0).certs().ca +
                          " ETCDCTL_CERT=" + S(0).certs().client_cert + " ETCDCTL_KEY=" + S(0).certs().client_key +
                          " ETCDCTL_WRITE_OUT=json";
  CmdResult ours = Exec(ETCDSAFE_BINARY, {"member", "list"}, env);
  CmdResult theirs = Exec("/usr/bin/etcdctl", {"member", "list"}, "ETCDCTL_API=3 " + env);
  ASSERT_EQ(ours.code, 0) << ours.err;
  EXPECT_EQ(ours.out, theirs.out);
}

TEST_F(OpsCluster, BadMemberInputLikeEtcdctlAndNothingChanges) {
  WaitReconfigurable();
  const auto before = Members();
  const std::string m0 = [&] {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(before[0].id));
    return std::string(buf);
  }();
  const std::vector<std::vector<std::string>> cases = {
      {"member", "remove"},
      {"member", "remove", "zz"},
      {"member", "remove", "0x12"},
      {"member", "remove", "ffffffffffffffffff"},
      {"member", "remove", "1", "2"},
      {"member", "remove", "1234abcd"},  // unknown id: etcd's "member not found", exit 1
      {"member", "promote", "1234abcd"},
      {"member", "promote", m0},  // not a learner
      {"member", "update", "1234abcd", "--peer-urls=http://127.0.0.1:1"},
      {"member", "update", "1234abcd"},
      {"member", "update", "1234abcd", "--peer-urls=http://127.0.0.1"},
      {"member", "add"},
      {"member", "add", "x"},
      {"member", "add", "x", "http://127.0.0.1:1"},
      {"member", "add", "x", "--peer-urls=notaurl"},
      {"member", "add", "x", "--peer-urls=http://127.0.0.1"},
      {"member", "add", "x", "--peer-urls=http://127.0.0.1:1/path"},
      {"member", "add", "x", "--peer-urls=http://127.0.0.1:1,ftp://127.0.0.1:2"},
      {"member", "add", "x", "--peer-urls=" + S(1).peer_url()},  // already a member's
      {"member", "list", "-w", "yaml"},
  };
  for (const auto& c : cases) ExpectSame(Concat(c, Flags()));
  // Refused output formats: etcdctl makes the change and then refuses to print it; we
  // refuse first (same text, same exit 4) and change nothing.
  for (const char* w : {"table", "fields"}) {
    CmdResult r = Etcdsafe(Concat({"member", "add", "x", "--peer-urls=http://127.0.0.1:1", "-w", w}, Flags()));
    EXPECT_EQ(r.code, 4);
    EXPECT_EQ(r.err, std::string("Error: ") + w + " not supported as output format\n");
    r = Etcdsafe(Concat({"member", "remove", m0, "-w", w}, Flags()));
    EXPECT_EQ(r.code, 4);
  }
  const auto after = Members();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < after.size(); i++) {
    EXPECT_EQ(after[i].id, before[i].id);
    EXPECT_EQ(after[i].peer_urls, before[i].peer_urls);
  }
}

TEST_F(OpsCluster, RemovingTheLastMemberIsRefused) {
  EtcdServer solo;
  auto id = client::EtcdClient::Connect(solo.client_config())->MemberList().at(0).id;
  char hex[24];
  std::snprintf(hex, sizeof hex, "%llx", static_cast<unsigned long long>(id));
  CmdResult r = Etcdsafe({"member", "remove", hex, "--endpoints", solo.client_url()});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "Error: etcdserver: re-configuration failed due to not enough started members\n");
  EXPECT_EQ(client::EtcdClient::Connect(solo.client_config())->MemberList().size(), 1u);
  solo.WaitHealthy();
}

// Replaces each member ID in `s` (16 hex digits, maybe space-padded) by "ID".
std::string MaskId(std::string s, uint64_t id) {
  char hex[24];
  std::snprintf(hex, sizeof hex, "%16llx", static_cast<unsigned long long>(id));
  std::string a = hex, b = a.substr(a.find_first_not_of(' '));
  for (const std::string& pat : {a, b, std::to_string(id)}) {
    for (size_t p; (p = s.find(pat)) != std::string::npos;) s.replace(p, pat.size(), "ID");
  }
  return s;
}

uint64_t IdOf(const std::vector<client::EtcdClient::MemberInfo>& ms, const std::string& peer) {
  for (const auto& m : ms) {
    if (std::find(m.peer_urls.begin(), m.peer_urls.end(), peer) != m.peer_urls.end()) return m.id;
  }
  return 0;
}

std::string Hex(uint64_t id) {
  char hex[24];
  std::snprintf(hex, sizeof hex, "%llx", static_cast<unsigned long long>(id));
  return hex;
}

TEST_F(OpsCluster, AddUpdateRemoveLearnerLikeEtcdctl) {
  WaitReconfigurable();
  const std::string p1 = "http://127.0.0.1:" + std::to_string(testutil::FreePort());
  const std::string p2 = "http://127.0.0.1:" + std::to_string(testutil::FreePort());
  for (const char* w : {"simple", "json"}) {
    // etcdctl adds, its output is kept, it removes; then we add the same: the outputs
    // differ only in the new member's ID.
    std::vector<std::string> add = Concat({"member", "add", "newbie", "--learner", "--peer-urls=" + p1, "-w", w}, Flags());
    // The previous round removed a member with these URLs: not within the same second (see below).
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    CmdResult theirs = Etcdctl(add);
    ASSERT_EQ(theirs.code, 0) << theirs.err;
    uint64_t tid = IdOf(Members(), p1);
    ASSERT_NE(tid, 0u);
    ASSERT_EQ(Etcdctl(Concat({"member", "remove", Hex(tid)}, Flags())).code, 0);
    // etcd derives a new member's ID from its peer URLs and the time in whole seconds: the
    // same URLs within the same second get the removed ID back ("member not found").
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    CmdResult ours = Etcdsafe(add);
    ASSERT_EQ(ours.code, 0) << ours.err;
    uint64_t oid = IdOf(Members(), p1);
    ASSERT_NE(oid, 0u);
    if (std::string(w) == "json") {
      // Members are listed in ID order, and the two new IDs differ: compare the header and
      // the new member as they are, the list as a set.
      const std::string a = MaskId(ours.out, oid), b = MaskId(theirs.out, tid);
      EXPECT_EQ(a.substr(0, a.find("\"members\":")), b.substr(0, b.find("\"members\":")));
      auto objects = [](const std::string& s) {
        std::vector<std::string> items;
        std::regex obj("\\{\"ID\":[^{}]*\\}");
        for (auto it = std::sregex_iterator(s.begin(), s.end(), obj); it != std::sregex_iterator(); ++it) {
          items.push_back(it->str());
        }
        return Sorted(items);
      };
      EXPECT_EQ(objects(a), objects(b));
      EXPECT_EQ(objects(a).size(), 5u) << a;
    } else {
      // ETCD_INITIAL_CLUSTER follows the member list's ID order: compare it as a set.
      auto sort_cluster = [](std::string s) {
        const std::string key = "ETCD_INITIAL_CLUSTER=\"";
        size_t p = s.find(key);
        if (p == std::string::npos) return s;
        p += key.size();
        size_t end = s.find('"', p);
        std::vector<std::string> parts;
        std::stringstream in(s.substr(p, end - p));
        for (std::string x; std::getline(in, x, ',');) parts.push_back(x);
        std::sort(parts.begin(), parts.end());
        std::string joined;
        for (const auto& x : parts) joined += (joined.empty() ? "" : ",") + x;
        return s.substr(0, p) + joined + s.substr(end);
      };
      EXPECT_EQ(sort_cluster(MaskId(ours.out, oid)), sort_cluster(MaskId(theirs.out, tid)));
    }
    EXPECT_EQ(ours.err, "");
    if (std::string(w) == "simple") {
      EXPECT_NE(ours.out.find(" added to cluster "), std::string::npos) << ours.out;
      EXPECT_NE(ours.out.find("\nETCD_NAME=\"newbie\"\n"), std::string::npos) << ours.out;
      EXPECT_NE(ours.out.find("newbie=" + p1), std::string::npos) << ours.out;
    }
    // The unstarted learner in every list format.
    for (const char* lw : {"simple", "table", "json", "fields"}) ExpectSame(Concat({"member", "list", "-w", lw}, Flags()));
    // Promote before it ever started: etcd refuses, both tools say so.
    ExpectSame(Concat({"member", "promote", Hex(oid)}, Flags()));
    // Update (both tools, same result) and remove (ours; etcdctl's output compared on its own member).
    ExpectSame(Concat({"member", "update", Hex(oid), "--peer-urls=" + p2, "-w", w}, Flags()));
    EXPECT_EQ(IdOf(Members(), p2), oid);
    CmdResult rm = Etcdsafe(Concat({"member", "remove", Hex(oid), "-w", w}, Flags()));
    ASSERT_EQ(rm.code, 0) << rm.err;
    if (std::string(w) == "simple") {
      EXPECT_EQ(MaskId(rm.out, oid).substr(0, 22), "Member ID removed from");
    }
    EXPECT_EQ(Members().size(), 3u);
  }
}

// Starts etcd for a member whose name and initial cluster come only from the ETCD_*
// lines `member add` printed, set as environment variables.
struct EnvMember {
  pid_t pid = -1;
  std::string client_url;
  ~EnvMember() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      int st;
      ::waitpid(pid, &st, 0);
    }
  }
};

std::vector<std::string> EtcdEnvLines(const std::string& out) {
  std::vector<std::string> env;
  for (const auto& l : Lines(out)) {
    if (l.rfind("ETCD_", 0) != 0) continue;
    size_t eq = l.find('=');
    std::string v = l.substr(eq + 1);
    EXPECT_TRUE(v.size() >= 2 && v.front() == '"' && v.back() == '"') << l;
    env.push_back(l.substr(0, eq + 1) + v.substr(1, v.size() - 2));
  }
  return env;
}

void StartWithEnv(EnvMember* m, const std::vector<std::string>& etcd_env, const std::string& data_dir,
                  int client_port, const std::string& peer_url, const testutil::TlsFiles& certs,
                  const std::string& log) {
  m->client_url = "https://127.0.0.1:" + std::to_string(client_port);
  std::vector<std::string> env = etcd_env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string v = *e;
    if (v.rfind("ETCD_", 0) != 0 && v.rfind("ETCDCTL_", 0) != 0) env.push_back(v);
  }
  m->pid = testutil::SpawnLogged(
      {"/usr/bin/etcd", "--data-dir=" + data_dir, "--listen-client-urls=" + m->client_url,
       "--advertise-client-urls=" + m->client_url, "--listen-peer-urls=" + peer_url, "--cert-file=" + certs.server_cert,
       "--key-file=" + certs.server_key, "--trusted-ca-file=" + certs.ca, "--client-cert-auth", "--logger=zap",
       "--log-outputs=stderr"},
      env, log);
}

client::ClientConfig ConfigFor(const std::string& url, const testutil::TlsFiles& certs) {
  client::ClientConfig c;
  c.endpoints = {url};
  c.cacert = certs.ca;
  c.cert = certs.client_cert;
  c.key = certs.client_key;
  c.dial_timeout = std::chrono::milliseconds(500);
  c.command_timeout = std::chrono::milliseconds(2000);
  return c;
}

TEST_F(OpsCluster, LearnerStartedFromPrintedVariablesIsPromoted) {
  WaitReconfigurable();
  testutil::TempDir dir;
  const int cport = testutil::FreePort();
  const std::string peer = "http://127.0.0.1:" + std::to_string(testutil::FreePort());
  CmdResult add = Etcdsafe(Concat({"member", "add", "learner1", "--learner", "--peer-urls=" + peer}, Flags()));
  ASSERT_EQ(add.code, 0) << add.err;
  const uint64_t id = IdOf(Members(), peer);
  EnvMember m;
  StartWithEnv(&m, EtcdEnvLines(add.out), dir.Sub("data"), cport, peer, S(0).certs(), dir.Sub("etcd.log"));
  // A learner catches up in the background; etcd refuses the promotion until it has.
  CmdResult pr;
  for (int i = 0; i < 100; i++) {
    pr = Etcdsafe(Concat({"member", "promote", Hex(id)}, Flags()));
    if (pr.code == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_EQ(pr.code, 0) << pr.err << testutil::ReadFile(dir.Sub("etcd.log"));
  EXPECT_EQ(MaskId(pr.out, id).substr(0, 23), "Member ID promoted in c");
  bool learner = true;
  for (const auto& mi : Members()) {
    if (mi.id == id) learner = mi.is_learner;
  }
  EXPECT_FALSE(learner);
  CmdResult st = Etcdsafe(Concat({"endpoint", "health"}, Flags(AllEndpoints() + "," + m.client_url)));
  EXPECT_EQ(st.code, 0) << st.err;
  ASSERT_EQ(Etcdsafe(Concat({"member", "remove", Hex(id)}, Flags())).code, 0);
  EXPECT_EQ(Members().size(), 3u);
}

TEST_F(OpsCluster, DebugPrintsRequestDiagnosticsOnStderrOnly) {
  CmdResult plain = Etcdsafe(Concat({"member", "list"}, Flags()));
  CmdResult dbg = Etcdsafe(Concat({"--debug", "member", "list"}, Flags()));
  ASSERT_EQ(dbg.code, 0) << dbg.err;
  EXPECT_EQ(dbg.out, plain.out);
  EXPECT_NE(dbg.err.find("dialing " + S(0).client_url()), std::string::npos) << dbg.err;
  EXPECT_NE(dbg.err.find("TLS on, CA " + S(0).certs().ca), std::string::npos) << dbg.err;
  EXPECT_NE(dbg.err.find("using this endpoint"), std::string::npos) << dbg.err;
  EXPECT_TRUE(std::regex_search(dbg.err, std::regex("Cluster\\.MemberList to \\S+: OK in [0-9.]+ ms")))
      << dbg.err;
  // After the command too, and for other commands; a failed endpoint says why.
  CmdResult h = Etcdsafe(Concat({"endpoint", "status", "--debug"},
                                Flags("127.0.0.1:" + std::to_string(testutil::FreePort()) + "," + S(1).client_url())));
  EXPECT_NE(h.err.find("connection refused"), std::string::npos) << h.err;
  EXPECT_NE(h.err.find("Maintenance.Status to " + S(1).client_url() + ": OK in "), std::string::npos) << h.err;
  CmdResult env = Exec(ETCDSAFE_BINARY, Concat({"endpoint", "hashkv"}, Flags()), "ETCDCTL_DEBUG=true");
  EXPECT_NE(env.err.find("Maintenance.HashKV"), std::string::npos) << env.err;
}

// Last: it replaces member 2 for good.
TEST_F(OpsCluster, ReplaceAMemberEndToEnd) {
  WaitReconfigurable();
  EtcdServer& old = S(2);
  const std::string peer = old.peer_url();
  const int cport = old.client_port();
  const uint64_t old_id = IdOf(Members(), peer);
  ASSERT_NE(old_id, 0u);
  old.Stop();
  // The cluster notices one member down.
  CmdResult h = Etcdsafe(Concat({"endpoint", "health", "--cluster", "--command-timeout", "1s", "--dial-timeout", "1s"}, Flags()));
  EXPECT_EQ(h.code, 1);
  CmdResult rm = Etcdsafe(Concat({"member", "remove", Hex(old_id)}, Flags()));
  ASSERT_EQ(rm.code, 0) << rm.err;
  std::filesystem::remove_all(old.data_dir());
  CmdResult add = Etcdsafe(Concat({"member", "add", "replacement", "--peer-urls=" + peer}, Flags()));
  ASSERT_EQ(add.code, 0) << add.err;
  const std::vector<std::string> env = EtcdEnvLines(add.out);
  ASSERT_EQ(env.size(), 4u) << add.out;
  EXPECT_EQ(env[0], "ETCD_NAME=replacement");
  EXPECT_EQ(env[3], "ETCD_INITIAL_CLUSTER_STATE=existing");
  EnvMember m;
  testutil::TempDir dir;
  StartWithEnv(&m, env, old.data_dir(), cport, peer, S(0).certs(), dir.Sub("etcd.log"));
  // Healthy once the new member has published its name and client URL (until then the
  // member list, and so --cluster, shows it unstarted without one).
  CmdResult health;
  for (int i = 0; i < 100; i++) {
    health = Etcdsafe(Concat({"endpoint", "health", "--cluster", "--command-timeout", "2s"}, Flags()));
    if (health.code == 0 && Lines(health.err).size() == 3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_EQ(health.code, 0) << health.err << testutil::ReadFile(dir.Sub("etcd.log"));
  EXPECT_EQ(Lines(health.err).size(), 3u);
  auto ms = Members();
  ASSERT_EQ(ms.size(), 3u);
  bool found = false;
  for (const auto& mi : ms) found = found || (mi.name == "replacement" && !mi.is_learner);
  EXPECT_TRUE(found);
  // Every key on every member, including the new one.
  for (const std::string& url : {S(0).client_url(), S(1).client_url(), m.client_url}) {
    auto c = client::EtcdClient::Connect(ConfigFor(url, S(0).certs()));
    EXPECT_EQ(testutil::DumpAll(*c), *dump_) << url;
  }
  ExpectSame(Concat({"endpoint", "hashkv", "--cluster"}, Flags()));
  CmdResult hk = Etcdsafe(Concat({"endpoint", "hashkv", "--cluster"}, Flags()));
  std::vector<std::string> hashes;
  for (const auto& l : Lines(hk.out)) hashes.push_back(l.substr(l.find(", ")));
  ASSERT_EQ(hashes.size(), 3u);
  EXPECT_EQ(hashes[0], hashes[1]);
  EXPECT_EQ(hashes[1], hashes[2]);
}

}  // namespace
}  // namespace etcdsafe
