// End-to-end tests of `etcdsafe inspect diff` and `inspect export` (issue 11): a
// Kubernetes-shaped etcd 3.4 is filled by the test (protobuf-envelope objects encoded here
// with the field numbers of runtime/generated.proto and meta/v1/generated.proto, JSON custom
// resources, an aescbc-enveloped Secret, an Event on a lease), snapshot A is saved, known
// changes are made (a delete, an add, spec updates with a new generation, a
// delete-and-recreate with a new uid, a re-encrypted Secret), snapshot B is saved, and the
// real binary is run:
//  * diff A B reports exactly those changes (names and counts, per resource and namespace),
//    --prefix narrows, B A swaps added/removed, two repository backups diff like the files;
//  * export's lines parse as JSON and equal the values the test wrote (metadata, the JSON
//    object, base64 of the protobuf object or of the encrypted value), -o json is an array
//    of the same objects, --resource narrows.
#include <gtest/gtest.h>

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

using k8s::AppendBytesField;
using k8s::AppendVarintField;
using testutil::CmdResult;
using testutil::EtcdServer;
using testutil::Exec;
using testutil::TempDir;

CmdResult Etcdsafe(const std::vector<std::string>& args) { return Exec(ETCDSAFE_BINARY, args); }

std::string Object(const std::string& name, const std::string& ns, const std::string& uid, int64_t generation,
                   const std::string& spec) {
  std::string meta;
  AppendBytesField(&meta, 1, name);
  if (!ns.empty()) AppendBytesField(&meta, 3, ns);
  AppendBytesField(&meta, 5, uid);
  AppendVarintField(&meta, 7, uint64_t(generation));
  std::string t;
  AppendVarintField(&t, 1, 1700000000);
  AppendBytesField(&meta, 8, t);
  std::string obj;
  AppendBytesField(&obj, 1, meta);
  AppendBytesField(&obj, 2, spec);
  return obj;
}

std::string Envelope(const std::string& api_version, const std::string& kind, const std::string& object) {
  std::string tm;
  AppendBytesField(&tm, 1, api_version);
  AppendBytesField(&tm, 2, kind);
  std::string v(k8s::kProtobufMagic);
  AppendBytesField(&v, 1, tm);
  AppendBytesField(&v, 2, object);
  return v;
}

std::string Widget(const std::string& name, const std::string& ns, int gen) {
  return R"({"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":")" + name + R"(","namespace":")" + ns +
         R"(","uid":"uid-)" + name + R"(","generation":)" + std::to_string(gen) + R"(},"spec":{"size":)" +
         std::to_string(gen) + "}}";
}

class InspectDiffCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new EtcdServer();
    dir_ = new TempDir();
    model_ = new std::map<std::string, std::string>();
    auto c = client::EtcdClient::Connect(server_->client_config());
    auto put = [&](const std::string& k, const std::string& v, int64_t lease = 0) {
      c->Put(k, v, lease);
      (*model_)[k] = v;
    };
    auto del = [&](const std::string& k) {
      c->DeleteRange(k);
      model_->erase(k);
    };
    for (const char* ns : {"default", "team-a", "team-b"}) {
      put(std::string("/registry/namespaces/") + ns, Envelope("v1", "Namespace", Object(ns, "", std::string("ns-") + ns, 0, "")));
    }
    for (int i = 0; i < 4; i++) {
      for (const char* ns : {"team-a", "team-b"}) {
        const std::string name = "web-" + std::to_string(i);
        put(std::string("/registry/pods/") + ns + "/" + name,
            Envelope("v1", "Pod", Object(name, ns, std::string("pod-") + ns + "-" + name, 1, "spec")));
      }
    }
    put("/registry/deployments/team-a/web", Envelope("apps/v1", "Deployment", Object("web", "team-a", "dep-uid", 1, "r1")));
    put("/registry/configmaps/default/cfg", Envelope("v1", "ConfigMap", Object("cfg", "default", "cm-uid", 0, "a=1")));
    put("/registry/configmaps/team-a/cfg", Envelope("v1", "ConfigMap", Object("cfg", "team-a", "cm-a-uid", 0, "b=2")));
    put("/registry/secrets/team-a/plain", Envelope("v1", "Secret", Object("plain", "team-a", "s-plain", 0, "pw")));
    put("/registry/secrets/team-a/tls", std::string("k8s:enc:aescbc:v1:key1:") + std::string(48, '\x9c'));
    put("/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com",
        R"({"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":)"
        R"({"name":"widgets.example.com","uid":"crd-uid"}})");
    put("/registry/example.com/widgets/team-a/w1", Widget("w1", "team-a", 1));
    put("/registry/example.com/widgets/team-a/w2", Widget("w2", "team-a", 1));
    const int64_t lease = c->LeaseGrant(3600);
    put("/registry/events/team-a/web-0.17a", Envelope("v1", "Event", Object("web-0.17a", "team-a", "ev-uid", 0, "x")), lease);
    put("/registry/masterleases/10.0.0.1", Envelope("v1", "Endpoints", Object("x", "", "ml", 0, "")));

    snap_a_ = new std::string(dir_->Sub("a.db"));
    ASSERT_EQ(server_->etcdctl({"snapshot", "save", *snap_a_}).exit_code, 0);
    model_a_ = new std::map<std::string, std::string>(*model_);

    // The known changes.
    del("/registry/pods/team-a/web-1");                                                        // removed
    put("/registry/pods/team-b/new", Envelope("v1", "Pod", Object("new", "team-b", "pod-new", 1, "s")));  // added
    put("/registry/deployments/team-a/web",
        Envelope("apps/v1", "Deployment", Object("web", "team-a", "dep-uid", 2, "r2")));      // changed, gen 1 -> 2
    del("/registry/configmaps/default/cfg");
    put("/registry/configmaps/default/cfg",
        Envelope("v1", "ConfigMap", Object("cfg", "default", "cm-uid-2", 0, "a=1")));         // recreated (uid)
    put("/registry/example.com/widgets/team-a/w1", Widget("w1", "team-a", 5));                 // changed, gen 1 -> 5
    del("/registry/secrets/team-a/tls");
    put("/registry/secrets/team-a/tls", std::string("k8s:enc:aescbc:v1:key1:") + std::string(48, '\x11'));  // recreated
    put("/registry/pods/team-b/web-2",
        Envelope("v1", "Pod", Object("web-2", "team-b", "pod-team-b-web-2", 1, "spec")));     // same bytes: unchanged

    snap_b_ = new std::string(dir_->Sub("b.db"));
    ASSERT_EQ(server_->etcdctl({"snapshot", "save", *snap_b_}).exit_code, 0);
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
    delete model_;
    delete model_a_;
    delete snap_a_;
    delete snap_b_;
  }

  static EtcdServer* server_;
  static TempDir* dir_;
  static std::map<std::string, std::string>* model_;    // B's content
  static std::map<std::string, std::string>* model_a_;  // A's content
  static std::string* snap_a_;
  static std::string* snap_b_;
};

EtcdServer* InspectDiffCli::server_ = nullptr;
TempDir* InspectDiffCli::dir_ = nullptr;
std::map<std::string, std::string>* InspectDiffCli::model_ = nullptr;
std::map<std::string, std::string>* InspectDiffCli::model_a_ = nullptr;
std::string* InspectDiffCli::snap_a_ = nullptr;
std::string* InspectDiffCli::snap_b_ = nullptr;

nlohmann::json Json(const CmdResult& r) {
  EXPECT_EQ(r.code, 0) << r.err;
  return nlohmann::json::parse(r.out);
}

std::map<std::string, std::string> Changes(const nlohmann::json& d) {
  std::map<std::string, std::string> out;
  for (const auto& e : d["changes"]) out[e["key"].get<std::string>()] = e["change"].get<std::string>();
  return out;
}

TEST_F(InspectDiffCli, DiffIsExact) {
  const nlohmann::json d = Json(Etcdsafe({"inspect", "diff", *snap_a_, *snap_b_, "-w", "json"}));
  const std::map<std::string, std::string> want = {
      {"/registry/pods/team-a/web-1", "removed"},
      {"/registry/pods/team-b/new", "added"},
      {"/registry/deployments/team-a/web", "changed"},
      {"/registry/configmaps/default/cfg", "recreated"},
      {"/registry/example.com/widgets/team-a/w1", "changed"},
      {"/registry/secrets/team-a/tls", "recreated"},
  };
  EXPECT_EQ(Changes(d), want);
  // The same changes counted the other way: from the two models.
  int64_t unchanged = 0;
  for (const auto& [k, v] : *model_a_) {
    auto it = model_->find(k);
    if (it != model_->end() && it->second == v) unchanged++;
  }
  const nlohmann::json& s = d["summary"];
  EXPECT_EQ(s["unchanged"], unchanged);
  EXPECT_EQ(s["keysA"], int64_t(model_a_->size()));
  EXPECT_EQ(s["keysB"], int64_t(model_->size()));
  EXPECT_EQ(s["objects"], (nlohmann::json{{"added", 1}, {"removed", 1}, {"changed", 2}, {"recreated", 2}}));
  EXPECT_EQ(s["byResource"]["pods"], (nlohmann::json{{"added", 1}, {"removed", 1}, {"changed", 0}, {"recreated", 0}}));
  EXPECT_EQ(s["byResource"]["example.com/widgets"]["changed"], 1);
  EXPECT_EQ(s["byNamespace"]["team-a"], (nlohmann::json{{"added", 0}, {"removed", 1}, {"changed", 2}, {"recreated", 1}}));
  EXPECT_EQ(s["byNamespace"]["default"]["recreated"], 1);
  for (const auto& e : d["changes"]) {
    if (e["key"] == "/registry/deployments/team-a/web") {
      EXPECT_EQ(e["a"]["generation"], 1);
      EXPECT_EQ(e["b"]["generation"], 2);
      EXPECT_EQ(e["a"]["uid"], "dep-uid");
      EXPECT_EQ(e["b"]["uid"], "dep-uid");
    }
    if (e["key"] == "/registry/configmaps/default/cfg") {
      EXPECT_EQ(e["a"]["uid"], "cm-uid");
      EXPECT_EQ(e["b"]["uid"], "cm-uid-2");
    }
    if (e["key"] == "/registry/secrets/team-a/tls") {
      EXPECT_EQ(e["a"]["encoding"], "encrypted");
      EXPECT_LT(e["a"]["createRevision"].get<int64_t>(), e["b"]["createRevision"].get<int64_t>());
    }
  }

  // Table output.
  CmdResult t = Etcdsafe({"inspect", "diff", *snap_a_, *snap_b_});
  EXPECT_EQ(t.code, 0) << t.err;
  EXPECT_NE(t.out.find("recreated /registry/configmaps/default/cfg uid cm-uid -> cm-uid-2\n"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("changed /registry/deployments/team-a/web generation 1 -> 2\n"), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("removed /registry/pods/team-a/web-1 uid pod-team-a-web-1\n"), std::string::npos) << t.out;

  // --prefix narrows; B A swaps added and removed.
  const nlohmann::json p = Json(Etcdsafe({"inspect", "diff", *snap_a_, *snap_b_, "--prefix", "/registry/pods/", "-w", "json"}));
  EXPECT_EQ(Changes(p), (std::map<std::string, std::string>{{"/registry/pods/team-a/web-1", "removed"},
                                                            {"/registry/pods/team-b/new", "added"}}));
  const nlohmann::json r = Json(Etcdsafe({"inspect", "diff", *snap_b_, *snap_a_, "-w", "json"}));
  EXPECT_EQ(Changes(r)["/registry/pods/team-a/web-1"], "added");
  EXPECT_EQ(Changes(r)["/registry/pods/team-b/new"], "removed");
  EXPECT_EQ(Changes(r).size(), want.size());
  // Identical snapshots: no changes.
  const nlohmann::json same = Json(Etcdsafe({"inspect", "diff", *snap_a_, *snap_a_, "-w", "json"}));
  EXPECT_TRUE(same["changes"].empty());
  EXPECT_EQ(same["summary"]["unchanged"], int64_t(model_a_->size()));
  // Errors.
  EXPECT_EQ(Etcdsafe({"inspect", "diff", *snap_a_}).code, 128);
  EXPECT_EQ(Etcdsafe({"inspect", "diff", *snap_a_, dir_->Sub("absent.db")}).code, 10);
}

TEST_F(InspectDiffCli, RepositoryBackupsDiffLikeTheirFiles) {
  // Two backups of a second etcd holding A's then B's content.
  EtcdServer other;
  TempDir repo_dir;
  const std::string repo = "file://" + repo_dir.Sub("repo");
  auto c = client::EtcdClient::Connect(other.client_config());
  for (const auto& [k, v] : *model_a_) c->Put(k, v);
  ASSERT_EQ(Etcdsafe({"backup", "--repo", repo, "--endpoints", other.client_url()}).code, 0);
  for (const auto& [k, v] : *model_a_) {
    if (!model_->count(k)) c->DeleteRange(k);
  }
  for (const auto& [k, v] : *model_) {
    if (!model_a_->count(k) || model_a_->at(k) != v) c->Put(k, v);
  }
  ASSERT_EQ(Etcdsafe({"backup", "--repo", repo, "--endpoints", other.client_url()}).code, 0);
  const nlohmann::json list = Json(Etcdsafe({"backups", "list", "--repo", repo, "-w", "json"}));
  ASSERT_EQ(list.size(), 2u);
  // Older (lower revision) first, whatever the order of two backups taken in one second.
  const bool in_order = list[0]["revision"].get<int64_t>() < list[1]["revision"].get<int64_t>();
  const std::string old_id = list[in_order ? 0 : 1]["id"], new_id = list[in_order ? 1 : 0]["id"];
  const nlohmann::json d = Json(Etcdsafe({"inspect", "diff", "--repo", repo, old_id, new_id, "-w", "json"}));
  std::map<std::string, std::string> got = Changes(d);
  // Here every changed key was put again (new create revision only for deletes), so the
  // encrypted Secret, overwritten in place, is "changed"; everything else as in the files.
  EXPECT_EQ(got["/registry/secrets/team-a/tls"], "changed");
  got.erase("/registry/secrets/team-a/tls");
  EXPECT_EQ(got, (std::map<std::string, std::string>{{"/registry/pods/team-a/web-1", "removed"},
                                                     {"/registry/pods/team-b/new", "added"},
                                                     {"/registry/deployments/team-a/web", "changed"},
                                                     {"/registry/configmaps/default/cfg", "recreated"},
                                                     {"/registry/example.com/widgets/team-a/w1", "changed"}}));
}

TEST_F(InspectDiffCli, ExportLinesAreTheStoredObjects) {
  CmdResult r = Etcdsafe({"inspect", "export", *snap_b_, "--namespace", "team-a", "-o", "jsonl"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::set<std::string> want;
  for (const auto& [k, v] : *model_) {
    if (k.find("/team-a/") != std::string::npos || k == "/registry/namespaces/team-a") want.insert(k);
  }
  std::set<std::string> got;
  std::istringstream lines(r.out);
  std::string line;
  std::vector<nlohmann::json> objs;
  while (std::getline(lines, line)) {
    const nlohmann::json j = nlohmann::json::parse(line);  // throws (fails) on a bad line
    objs.push_back(j);
    const std::string key = j["key"];
    got.insert(key);
    const std::string& value = model_->at(key);
    const k8s::Envelope env = k8s::ParseEnvelope(AsBytes(value));
    EXPECT_EQ(j["envelope"]["encoding"], k8s::EncodingName(env.encoding)) << key;
    if (env.encoding == k8s::Encoding::kProtobuf) {
      EXPECT_EQ(j["raw"], k8s::Base64(env.raw)) << key;
      EXPECT_EQ(j["metadata"]["name"], j["name"]) << key;
    } else if (env.encoding == k8s::Encoding::kJson) {
      EXPECT_EQ(j["object"], nlohmann::json::parse(value)) << key;
    } else {
      EXPECT_EQ(j["value"], k8s::Base64(AsBytes(value))) << key;
    }
    if (key != "/registry/namespaces/team-a") { EXPECT_EQ(j["namespace"], "team-a") << key; }
  }
  EXPECT_EQ(got, want);
  for (const auto& j : objs) {
    if (j["key"] == "/registry/deployments/team-a/web") {
      EXPECT_EQ(j["resource"], "deployments");
      EXPECT_EQ(j["kind"], "Deployment");
      EXPECT_EQ(j["metadata"]["uid"], "dep-uid");
      EXPECT_EQ(j["metadata"]["generation"], 2);
    }
    if (j["key"] == "/registry/secrets/team-a/tls") { EXPECT_EQ(j["envelope"]["encryption"], "aescbc"); }
    if (j["key"] == "/registry/events/team-a/web-0.17a") { EXPECT_TRUE(j.contains("lease")); }
  }
  // -o json: one array of the same objects.
  const nlohmann::json arr = Json(Etcdsafe({"inspect", "export", *snap_b_, "--namespace", "team-a", "-o", "json"}));
  ASSERT_TRUE(arr.is_array());
  EXPECT_EQ(arr, nlohmann::json(objs));
  // --resource narrows.
  const nlohmann::json pods =
      Json(Etcdsafe({"inspect", "export", *snap_b_, "--namespace", "team-a", "--resource", "pods", "-o", "json"}));
  std::set<std::string> pod_keys;
  for (const auto& j : pods) pod_keys.insert(j["key"]);
  EXPECT_EQ(pod_keys, (std::set<std::string>{"/registry/pods/team-a/web-0", "/registry/pods/team-a/web-2",
                                             "/registry/pods/team-a/web-3"}));
  const nlohmann::json none = Json(Etcdsafe({"inspect", "export", *snap_b_, "--namespace", "nope", "-o", "json"}));
  EXPECT_TRUE(none.is_array() && none.empty());
  EXPECT_EQ(Etcdsafe({"inspect", "export", *snap_b_, "-o", "yaml"}).code, 4);
}

}  // namespace
}  // namespace etcdsafe
