// End-to-end tests of `etcdsafe restore-objects` (issue 11) against a real etcd 3.4: a
// Kubernetes-shaped key space (namespaces, pods, a deployment, configmaps, Secrets plain
// and aescbc-enveloped, a CRD's JSON objects, an Event on a lease, keys outside the
// prefix) is snapshotted, namespace team-a is deleted (every key of it, as the namespace
// controller would), a different object is created at one of its keys (a conflict), and
// the other namespaces keep changing. Then, with a full dump of the cluster (every key,
// value, create and mod revision) before and after each run:
//  * a dry run writes nothing and classifies every team-a key (create / conflict /
//    skipped-leased / refused-encrypted);
//  * --apply without --allow-encrypted refuses before writing anything (exit 128);
//  * --apply --allow-encrypted brings back exactly the deleted keys with the snapshot's
//    bytes, leaves the conflicting key untouched (exit 13) and nothing else changes; the
//    report lists every key written;
//  * a second run writes nothing; --overwrite replaces the conflicting key; a third run is
//    all "equal" (exit 0) and changes no revision;
//  * --key and --prefix select exactly that; a repository backup works as the file does;
//  * TxnIf: a failing compare writes nothing.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "client/etcd_client.h"
#include "k8s/envelope.h"
#include "k8s/wire.h"
#include "testutil/cli.h"
#include "testutil/etcd_server.h"
#include "testutil/temp_dir.h"

namespace etcdsafe {
namespace {

using client::EtcdClient;
using k8s::AppendBytesField;
using k8s::AppendVarintField;
using testutil::CmdResult;
using testutil::EtcdServer;
using testutil::Exec;
using testutil::TempDir;

CmdResult Etcdsafe(const std::vector<std::string>& args) { return Exec(ETCDSAFE_BINARY, args); }

std::string Envelope(const std::string& kind, const std::string& name, const std::string& ns, const std::string& uid,
                     const std::string& spec) {
  std::string meta;
  AppendBytesField(&meta, 1, name);
  if (!ns.empty()) AppendBytesField(&meta, 3, ns);
  AppendBytesField(&meta, 5, uid);
  AppendVarintField(&meta, 7, 1);
  std::string obj;
  AppendBytesField(&obj, 1, meta);
  AppendBytesField(&obj, 2, spec);
  std::string tm;
  AppendBytesField(&tm, 1, kind == "Deployment" ? "apps/v1" : "v1");
  AppendBytesField(&tm, 2, kind);
  std::string v(k8s::kProtobufMagic);
  AppendBytesField(&v, 1, tm);
  AppendBytesField(&v, 2, obj);
  return v;
}

struct Entry {
  std::string value;
  int64_t create = 0, mod = 0;
  bool operator==(const Entry& o) const { return value == o.value && create == o.create && mod == o.mod; }
};
using Dump = std::map<std::string, Entry>;

Dump DumpAll(EtcdClient& c) {
  Dump d;
  for (const auto& kv : c.Range(std::string(1, '\0'), std::string(1, '\0')).kvs) {
    d[kv.key] = {kv.value, kv.create_revision, kv.mod_revision};
  }
  return d;
}

// Keys whose entry differs between two dumps (added, removed or other value/revisions).
std::set<std::string> Differ(const Dump& a, const Dump& b) {
  std::set<std::string> out;
  for (const auto& [k, e] : a) {
    auto it = b.find(k);
    if (it == b.end() || !(it->second == e)) out.insert(k);
  }
  for (const auto& [k, e] : b) {
    if (!a.count(k)) out.insert(k);
  }
  return out;
}

// "action key" per stdout line (the summary line excluded).
std::map<std::string, std::string> Actions(const std::string& out) {
  std::map<std::string, std::string> m;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    const size_t sp = line.find(' ');
    if (sp == std::string::npos || line.rfind("dry run:", 0) == 0 || line.rfind("applied:", 0) == 0) continue;
    std::string key = line.substr(sp + 1);
    key = key.substr(0, key.find(' '));
    m[key] = line.substr(0, sp);
  }
  return m;
}

class RestoreObjectsCli : public ::testing::Test {
 protected:
  void SetUp() override {
    c_ = EtcdClient::Connect(server_.client_config());
    for (const char* ns : {"default", "team-a", "team-b"}) {
      c_->Put(std::string("/registry/namespaces/") + ns, Envelope("Namespace", ns, "", std::string("ns-") + ns, ""));
    }
    for (const char* ns : {"team-a", "team-b"}) {
      for (int i = 0; i < 5; i++) {
        const std::string name = "web-" + std::to_string(i);
        c_->Put(std::string("/registry/pods/") + ns + "/" + name,
                Envelope("Pod", name, ns, std::string("pod-") + ns + name, std::string(200, 'p')));
      }
      c_->Put(std::string("/registry/deployments/") + ns + "/web", Envelope("Deployment", "web", ns, "dep", "r"));
      c_->Put(std::string("/registry/configmaps/") + ns + "/cfg", Envelope("ConfigMap", "cfg", ns, "cm", "a=1"));
      c_->Put(std::string("/registry/secrets/") + ns + "/plain", Envelope("Secret", "plain", ns, "sp", "pw"));
      c_->Put(std::string("/registry/example.com/widgets/") + ns + "/w1",
              std::string(R"({"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w1","namespace":")") +
                  ns + R"(","uid":"w1"},"spec":{"size":3}})");
    }
    c_->Put("/registry/secrets/team-a/tls", std::string("k8s:enc:aescbc:v1:key1:") + std::string(48, '\x9c'));
    c_->Put("/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com",
            R"({"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"w"}})");
    const int64_t lease = c_->LeaseGrant(3600);
    c_->Put("/registry/events/team-a/web-0.1", Envelope("Event", "web-0.1", "team-a", "ev", "x"), lease);
    c_->Put("/registry/pods/team-ab/lookalike", Envelope("Pod", "lookalike", "team-ab", "la", "x"));
    c_->Put("/other/app", "not kubernetes");
    snap_ = dir_.Sub("snap.db");
    ASSERT_EQ(server_.etcdctl({"snapshot", "save", snap_}).exit_code, 0);
    snapshot_ = DumpAll(*c_);

    // Namespace team-a is deleted, then a different cfg appears at one of its keys, and
    // the rest of the cluster moves on.
    for (const auto& [k, e] : snapshot_) {
      if (k.find("/team-a/") != std::string::npos || k == "/registry/namespaces/team-a") c_->DeleteRange(k);
    }
    c_->Put("/registry/configmaps/team-a/cfg", Envelope("ConfigMap", "cfg", "team-a", "cm-new", "other"));
    c_->Put("/registry/pods/team-b/web-0", Envelope("Pod", "web-0", "team-b", "pod-b0", "changed later"));
    c_->Put("/registry/pods/team-b/web-9", Envelope("Pod", "web-9", "team-b", "pod-b9", "new"));
  }

  std::vector<std::string> Args(std::vector<std::string> extra) {
    std::vector<std::string> a = {"restore-objects", "--from", snap_, "--to", server_.client_url()};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  EtcdServer server_;
  TempDir dir_;
  std::unique_ptr<EtcdClient> c_;
  std::string snap_;
  Dump snapshot_;
};

TEST_F(RestoreObjectsCli, DeletedNamespaceComesBackExactly) {
  // Keys of team-a in the snapshot, by what should happen to them.
  std::set<std::string> team_a, creates;
  for (const auto& [k, e] : snapshot_) {
    if (k.find("/team-a/") != std::string::npos || k == "/registry/namespaces/team-a") team_a.insert(k);
  }
  for (const auto& k : team_a) {
    if (k != "/registry/configmaps/team-a/cfg" && k != "/registry/events/team-a/web-0.1") creates.insert(k);
  }
  ASSERT_EQ(team_a.size(), 12u);  // namespace, 5 pods, deployment, cfg, 2 secrets, widget, event

  // Dry run: nothing written.
  const Dump before = DumpAll(*c_);
  CmdResult dry = Etcdsafe(Args({"--namespace", "team-a"}));
  ASSERT_EQ(dry.code, 0) << dry.err << dry.out;
  std::map<std::string, std::string> acts = Actions(dry.out);
  EXPECT_EQ(acts.size(), team_a.size()) << dry.out;
  EXPECT_EQ(acts["/registry/configmaps/team-a/cfg"], "conflict");
  EXPECT_EQ(acts["/registry/events/team-a/web-0.1"], "skipped-leased");
  EXPECT_EQ(acts["/registry/secrets/team-a/tls"], "refused-encrypted");
  EXPECT_EQ(acts["/registry/pods/team-a/web-3"], "create");
  EXPECT_EQ(dry.out.rfind("create /registry/namespaces/team-a\n", 0), 0u) << "namespace first: " << dry.out;
  EXPECT_NE(dry.out.find("dry run: 12 selected: 9 create, 0 equal, 1 conflict, 0 overwrite, 1 skipped (leased), 1 refused"), std::string::npos) << dry.out;
  EXPECT_EQ(DumpAll(*c_), before);

  // Encrypted values refuse an apply before anything is written.
  CmdResult refused = Etcdsafe(Args({"--namespace", "team-a", "--apply"}));
  EXPECT_EQ(refused.code, 128) << refused.err;
  EXPECT_NE(refused.err.find("/registry/secrets/team-a/tls"), std::string::npos) << refused.err;
  EXPECT_TRUE(testutil::IsOneLineError(refused)) << refused.err;
  EXPECT_EQ(DumpAll(*c_), before);

  // Apply: exactly the deleted keys come back, byte for byte; the conflict is untouched (exit 13).
  const std::string report = dir_.Sub("report.json");
  CmdResult apply = Etcdsafe(Args({"--namespace", "team-a", "--apply", "--allow-encrypted", "--report", report}));
  EXPECT_EQ(apply.code, 13) << apply.err << apply.out;
  EXPECT_NE(apply.err.find("1 key(s) exist in the target with other values"), std::string::npos) << apply.err;
  const Dump after = DumpAll(*c_);
  EXPECT_EQ(Differ(before, after), creates);
  for (const auto& k : creates) EXPECT_EQ(after.at(k).value, snapshot_.at(k).value) << k;
  EXPECT_EQ(after.at("/registry/configmaps/team-a/cfg"), before.at("/registry/configmaps/team-a/cfg"));
  EXPECT_FALSE(after.count("/registry/events/team-a/web-0.1"));
  // The namespace was written before its objects.
  EXPECT_LT(after.at("/registry/namespaces/team-a").mod, after.at("/registry/pods/team-a/web-0").mod);
  // The report lists every key, and exactly the created ones as written.
  std::ifstream rf(report);
  const nlohmann::json rep = nlohmann::json::parse(rf);
  std::set<std::string> written;
  for (const auto& k : rep["keys"]) {
    if (k["written"].get<bool>()) {
      written.insert(k["key"].get<std::string>());
      EXPECT_EQ(k["writtenRevision"], after.at(k["key"].get<std::string>()).mod);
    }
  }
  EXPECT_EQ(written, creates);
  EXPECT_EQ(rep["keys"].size(), team_a.size());
  EXPECT_EQ(rep["summary"]["written"], int64_t(creates.size()));
  EXPECT_EQ(rep["summary"]["conflict"], 1);
  EXPECT_EQ(rep["apply"], true);
  EXPECT_EQ(rep["complete"], true);

  // Second run: nothing to write, still the conflict.
  CmdResult again = Etcdsafe(Args({"--namespace", "team-a", "--apply", "--allow-encrypted"}));
  EXPECT_EQ(again.code, 13) << again.err;
  EXPECT_EQ(DumpAll(*c_), after);
  acts = Actions(again.out);
  EXPECT_EQ(acts["/registry/pods/team-a/web-3"], "equal");
  EXPECT_NE(again.out.find("0 written in 0 transaction(s)"), std::string::npos) << again.out;

  // --overwrite replaces the conflicting key, and only it.
  CmdResult over = Etcdsafe(Args({"--namespace", "team-a", "--apply", "--allow-encrypted", "--overwrite"}));
  EXPECT_EQ(over.code, 0) << over.err << over.out;
  const Dump overwritten = DumpAll(*c_);
  EXPECT_EQ(Differ(after, overwritten), (std::set<std::string>{"/registry/configmaps/team-a/cfg"}));
  EXPECT_EQ(overwritten.at("/registry/configmaps/team-a/cfg").value, snapshot_.at("/registry/configmaps/team-a/cfg").value);
  EXPECT_EQ(Actions(over.out)["/registry/configmaps/team-a/cfg"], "overwrite");

  // Third run: every key equal, exit 0, no revision moves.
  CmdResult noop = Etcdsafe(Args({"--namespace", "team-a", "--apply", "--allow-encrypted", "--overwrite"}));
  EXPECT_EQ(noop.code, 0) << noop.err;
  EXPECT_NE(noop.out.find("applied: 12 selected: 0 create, 11 equal, 0 conflict, 0 overwrite, 1 skipped"),
            std::string::npos) << noop.out;
  EXPECT_EQ(DumpAll(*c_), overwritten);
}

TEST_F(RestoreObjectsCli, KeyAndPrefixSelectExactlyThat) {
  const Dump before = DumpAll(*c_);
  CmdResult one = Etcdsafe(Args({"--key", "/registry/pods/team-a/web-2", "--apply"}));
  EXPECT_EQ(one.code, 0) << one.err << one.out;
  const Dump after_one = DumpAll(*c_);
  EXPECT_EQ(Differ(before, after_one), (std::set<std::string>{"/registry/pods/team-a/web-2"}));
  // --prefix with --resource: only the pods of team-a, not team-ab's lookalike, not the namespace.
  CmdResult pods = Etcdsafe(Args({"--prefix", "/registry/pods/team-a", "--resource", "pods", "--apply"}));
  EXPECT_EQ(pods.code, 0) << pods.err << pods.out;
  const Dump after_pods = DumpAll(*c_);
  EXPECT_EQ(Differ(after_one, after_pods),
            (std::set<std::string>{"/registry/pods/team-a/web-0", "/registry/pods/team-a/web-1",
                                   "/registry/pods/team-a/web-3", "/registry/pods/team-a/web-4"}));
  EXPECT_EQ(Actions(pods.out)["/registry/pods/team-ab/lookalike"], "equal");
  // Bad arguments: nothing selected, two selections, no target.
  // A run stopped by an error still leaves a valid report, marked incomplete.
  const std::string report = dir_.Sub("refused.json");
  CmdResult refused = Etcdsafe(Args({"--prefix", "/registry/secrets/team-a/", "--apply", "--report", report}));
  EXPECT_EQ(refused.code, 128) << refused.err;
  std::ifstream rf(report);
  const nlohmann::json rep = nlohmann::json::parse(rf);
  EXPECT_EQ(rep["complete"], false);
  EXPECT_TRUE(rep["keys"].empty());
  EXPECT_EQ(Etcdsafe(Args({"--apply"})).code, 128);
  EXPECT_EQ(Etcdsafe(Args({"--namespace", "team-a", "--key", "/x"})).code, 128);
  EXPECT_EQ(Etcdsafe({"restore-objects", "--from", snap_, "--namespace", "team-a"}).code, 128);
  EXPECT_EQ(Etcdsafe({"restore-objects", "--from", dir_.Sub("absent.db"), "--to", server_.client_url(), "--key", "/x"}).code,
            10);
  EXPECT_EQ(DumpAll(*c_), after_pods);
}

TEST_F(RestoreObjectsCli, FromRepositoryBackup) {
  // A backup of another etcd holding the snapshot's team-b keys restores into this one.
  EtcdServer other;
  auto oc = EtcdClient::Connect(other.client_config());
  for (const auto& [k, e] : snapshot_) oc->Put(k, e.value);
  oc->Put("/registry/pods/team-b/web-7", Envelope("Pod", "web-7", "team-b", "b7", "only in the backup"));
  TempDir repo_dir;
  const std::string repo = "file://" + repo_dir.Sub("repo");
  ASSERT_EQ(Etcdsafe({"backup", "--repo", repo, "--endpoints", other.client_url()}).code, 0);
  const Dump before = DumpAll(*c_);
  CmdResult r = Etcdsafe({"restore-objects", "--repo", repo, "--backup", "latest", "--to", server_.client_url(),
                          "--namespace", "team-b", "--resource", "pods", "--apply"});
  // team-b/web-0 differs in the target (changed after the snapshot): a conflict, exit 13.
  EXPECT_EQ(r.code, 13) << r.err << r.out;
  EXPECT_EQ(Differ(before, DumpAll(*c_)), (std::set<std::string>{"/registry/pods/team-b/web-7"}));
  EXPECT_EQ(Actions(r.out)["/registry/pods/team-b/web-0"], "conflict");
  EXPECT_EQ(Actions(r.out)["/registry/pods/team-b/web-9"], "");  // only in the target: never touched
}

TEST_F(RestoreObjectsCli, TxnIfFailingCompareWritesNothing) {
  const Dump before = DumpAll(*c_);
  using C = EtcdClient::Compare;
  // The key exists: create_revision == 0 fails, so neither put happens.
  EtcdClient::TxnResult r = c_->TxnIf(
      {{.target = C::kCreateRevision, .result = C::kEqual, .key = "/registry/pods/team-b/web-1", .number = 0, .value = ""}},
      {{.kind = EtcdClient::TxnOp::kPut, .key = "/registry/pods/team-b/web-1", .value = "x", .range_end = "", .lease = 0},
       {.kind = EtcdClient::TxnOp::kPut, .key = "/new", .value = "y", .range_end = "", .lease = 0}});
  EXPECT_FALSE(r.succeeded);
  EXPECT_EQ(DumpAll(*c_), before);
  // mod_revision == the current one holds: the put happens.
  const int64_t mod = before.at("/registry/pods/team-b/web-1").mod;
  r = c_->TxnIf({{.target = C::kModRevision, .result = C::kEqual, .key = "/registry/pods/team-b/web-1", .number = mod,
                  .value = ""}},
                {{.kind = EtcdClient::TxnOp::kPut, .key = "/registry/pods/team-b/web-1", .value = "x", .range_end = "",
                  .lease = 0}});
  EXPECT_TRUE(r.succeeded);
  EXPECT_EQ(c_->Range("/registry/pods/team-b/web-1").kvs.at(0).value, "x");
  EXPECT_EQ(c_->Range("/registry/pods/team-b/web-1").kvs.at(0).mod_revision, r.header.revision);
}

}  // namespace
}  // namespace etcdsafe
