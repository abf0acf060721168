// End-to-end tests of `etcdsafe inspect` (issue 11): a Kubernetes-shaped etcd 3.4 is
// filled by the test (protobuf-envelope objects encoded here with the field numbers of
// runtime/generated.proto and meta/v1/generated.proto, JSON custom resources, Secrets in
// plain protobuf and behind aescbc and KMS v2 prefixes, masterleases/ranges keys,
// compact_rev_key, a non-Kubernetes key, an unknown shape, overwrites and deletes), saved
// with `etcdctl snapshot save`, and the real binary is run on the file:
//  * inventory numbers equal counts done another way (etcdctl get --keys-only | awk) and
//    the bytes of the values the test wrote;
//  * get's metadata equals what was encoded, -o raw is the value byte for byte;
//  * secrets-audit finds exactly the plain Secrets, and --fail-on-plaintext exits 16.
#include <gtest/gtest.h>

#include <map>
#include <set>
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
using testutil::Shell;
using testutil::ShellQuote;
using testutil::TempDir;

CmdResult Etcdsafe(const std::vector<std::string>& args) { return Exec(ETCDSAFE_BINARY, args); }

struct Meta {
  std::string name, ns, uid;
  int64_t generation = 1;
  int64_t created = 1700000000;
  std::map<std::string, std::string> labels;
  std::string owner_kind, owner_name;
};

Meta Mk(std::string name, std::string ns, std::string uid) {
  Meta m;
  m.name = std::move(name);
  m.ns = std::move(ns);
  m.uid = std::move(uid);
  return m;
}

std::string EncodeMeta(const Meta& m) {
  std::string out;
  AppendBytesField(&out, 1, m.name);
  if (!m.ns.empty()) AppendBytesField(&out, 3, m.ns);
  AppendBytesField(&out, 5, m.uid);
  AppendBytesField(&out, 6, "123");
  AppendVarintField(&out, 7, uint64_t(m.generation));
  std::string t;
  AppendVarintField(&t, 1, uint64_t(m.created));
  AppendBytesField(&out, 8, t);
  for (const auto& [k, v] : m.labels) {
    std::string e;
    AppendBytesField(&e, 1, k);
    AppendBytesField(&e, 2, v);
    AppendBytesField(&out, 11, e);
  }
  if (!m.owner_kind.empty()) {
    std::string o;
    AppendBytesField(&o, 1, m.owner_kind);
    AppendBytesField(&o, 3, m.owner_name);
    AppendBytesField(&o, 4, "owner-uid");
    AppendBytesField(&o, 5, "apps/v1");
    AppendVarintField(&o, 6, 1);
    AppendBytesField(&out, 13, o);
  }
  return out;
}

// The object message: ObjectMeta = 1, then a "spec" of `pad` bytes as field 2.
std::string EncodeObject(const Meta& m, size_t pad) {
  std::string obj;
  AppendBytesField(&obj, 1, EncodeMeta(m));
  AppendBytesField(&obj, 2, std::string(pad, 's'));
  return obj;
}

std::string Envelope(const std::string& api_version, const std::string& kind, const std::string& object) {
  std::string tm;
  AppendBytesField(&tm, 1, api_version);
  AppendBytesField(&tm, 2, kind);
  std::string v(k8s::kProtobufMagic);
  AppendBytesField(&v, 1, tm);
  AppendBytesField(&v, 2, object);
  AppendBytesField(&v, 3, "");
  AppendBytesField(&v, 4, "");
  return v;
}

class InspectCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new EtcdServer();
    dir_ = new TempDir();
    auto c = client::EtcdClient::Connect(server_->client_config());
    auto put = [&](const std::string& k, const std::string& v) {
      c->Put(k, v);
      (*model_)[k] = v;
    };
    model_ = new std::map<std::string, std::string>();
    for (const char* ns : {"default", "team-a", "kube-system"}) {
      put(std::string("/registry/namespaces/") + ns,
          Envelope("v1", "Namespace", EncodeObject(Mk(ns, "", std::string("ns-") + ns), 10)));
    }
    for (int i = 0; i < 7; i++) {
      const std::string ns = i % 2 ? "team-a" : "default";
      const std::string name = "web-" + std::to_string(i);
      Meta m{.name = name, .ns = ns, .uid = "pod-uid-" + std::to_string(i), .generation = 1 + i,
             .created = 1700000000 + i, .labels = {{"app", "web"}, {"idx", std::to_string(i)}},
             .owner_kind = "ReplicaSet", .owner_name = "web-rs"};
      put("/registry/pods/" + ns + "/" + name, Envelope("v1", "Pod", EncodeObject(m, 100 + 50 * size_t(i))));
    }
    // An overwrite (the last value counts) and a delete (gone from the snapshot).
    Meta web0 = Mk("web-0", "default", "pod-uid-0");
    web0.generation = 9;
    web0.labels = {{"app", "web"}, {"rev", "2"}};
    put("/registry/pods/default/web-0",
        Envelope("v1", "Pod", EncodeObject(web0, 4000)));
    c->DeleteRange("/registry/pods/team-a/web-5");
    model_->erase("/registry/pods/team-a/web-5");
    put("/registry/deployments/team-a/web",
        Envelope("apps/v1", "Deployment", EncodeObject(Mk("web", "team-a", "dep-uid"), 300)));
    put("/registry/configmaps/default/cfg",
        Envelope("v1", "ConfigMap", EncodeObject(Mk("cfg", "default", "cm-uid"), 50)));
    put("/registry/minions/node-1", Envelope("v1", "Node", EncodeObject(Mk("node-1", "", "node-uid"), 900)));
    put("/registry/services/specs/default/kubernetes",
        Envelope("v1", "Service", EncodeObject(Mk("kubernetes", "default", "svc-uid"), 40)));
    // Secrets: two plain, one aescbc, one KMS v2.
    put("/registry/secrets/default/db-pass",
        Envelope("v1", "Secret", EncodeObject(Mk("db-pass", "default", "s1"), 30)));
    put("/registry/secrets/team-a/api-key",
        Envelope("v1", "Secret", EncodeObject(Mk("api-key", "team-a", "s2"), 30)));
    put("/registry/secrets/team-a/tls", std::string("k8s:enc:aescbc:v1:key1:") + std::string(64, '\x9c'));
    put("/registry/secrets/kube-system/token", std::string("k8s:enc:kms:v2:vault:") + std::string(80, '\x01'));
    // A CRD and two custom resources in JSON.
    put("/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com",
        R"({"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":)"
        R"({"name":"widgets.example.com","uid":"crd-uid"}})");
    for (const char* w : {"w1", "w2"}) {
      put(std::string("/registry/example.com/widgets/team-a/") + w,
          std::string(R"({"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":")") + w +
              R"(","namespace":"team-a","uid":"uid-)" + w + R"(","generation":4,"labels":{"color":"blue"}},)"
              R"("spec":{"size":3}})");
    }
    // Non-object keys, a non-Kubernetes key, an unknown shape.
    put("/registry/masterleases/10.0.0.1", Envelope("v1", "Endpoints", EncodeObject(Mk("x", "", "ml"), 5)));
    put("/registry/ranges/serviceips", Envelope("v1", "RangeAllocation", std::string("\x0a\x00", 2)));
    put("/registry/ranges/servicenodeports", Envelope("v1", "RangeAllocation", std::string("\x0a\x00", 2)));
    put("compact_rev_key", "1");
    put("/other/app/config", "not kubernetes");
    put("/registry/pods/a/b/c", "odd");

    snap_ = new std::string(dir_->Sub("k8s.db"));
    auto r = server_->etcdctl({"snapshot", "save", *snap_});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // A second snapshot with the plain Secrets gone.
    c->DeleteRange("/registry/secrets/default/db-pass");
    c->DeleteRange("/registry/secrets/team-a/api-key");
    snap_clean_ = new std::string(dir_->Sub("k8s-clean.db"));
    r = server_->etcdctl({"snapshot", "save", *snap_clean_});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
    delete model_;
    delete snap_;
    delete snap_clean_;
  }

  static EtcdServer* server_;
  static TempDir* dir_;
  static std::map<std::string, std::string>* model_;
  static std::string* snap_;
  static std::string* snap_clean_;
};

EtcdServer* InspectCli::server_ = nullptr;
TempDir* InspectCli::dir_ = nullptr;
std::map<std::string, std::string>* InspectCli::model_ = nullptr;
std::string* InspectCli::snap_ = nullptr;
std::string* InspectCli::snap_clean_ = nullptr;

nlohmann::json Json(const CmdResult& r) {
  EXPECT_EQ(r.code, 0) << r.err;
  return nlohmann::json::parse(r.out);
}

TEST_F(InspectCli, InventoryCountsMatchEtcdctl) {
  // The other way: an etcd restored by etcdctl from the same file, listed by etcdctl, counted by awk.
  TempDir restore;
  const std::string data = restore.Sub("r1.etcd");
  const int peer = testutil::FreePort();
  const std::string peer_url = "http://127.0.0.1:" + std::to_string(peer);
  CmdResult rs = Exec("ETCDCTL_API=3 /usr/bin/etcdctl",
                      {"snapshot", "restore", *snap_, "--data-dir", data, "--name", "r1", "--initial-cluster",
                       "r1=" + peer_url, "--initial-advertise-peer-urls", peer_url, "--initial-cluster-token",
                       "inspect-test"});
  ASSERT_EQ(rs.code, 0) << rs.err;
  testutil::EtcdServerOptions o;
  o.name = "r1";
  o.data_dir = data;
  o.peer_port = peer;
  o.initial_cluster_token = "inspect-test";
  EtcdServer restored(o);
  const std::string list = "ETCDCTL_API=3 /usr/bin/etcdctl --endpoints " + restored.client_url() +
                           " get '' --from-key --keys-only | awk 'NF'";
  auto count = [&](const std::string& awk) {
    CmdResult r = Shell(list + " | " + awk);
    EXPECT_EQ(r.code, 0) << r.err;
    return std::stoll(r.out.empty() ? "0" : r.out);
  };
  const nlohmann::json inv = Json(Etcdsafe({"inspect", "inventory", *snap_, "-w", "json"}));
  EXPECT_EQ(inv["total"]["count"], count("wc -l"));
  EXPECT_EQ(inv["nonKubernetesKeys"]["count"], count("awk '!/^\\/registry\\// && $0 != \"compact_rev_key\"' | wc -l"));
  EXPECT_EQ(inv["nonObjectKeys"]["count"], count("grep -cE '^(/registry/(masterleases|ranges)/|compact_rev_key$)'"));
  EXPECT_EQ(inv["unknownKeys"]["count"], 1);
  EXPECT_EQ(inv["unknownKeyNames"][0], "/registry/pods/a/b/c");
  EXPECT_EQ(inv["byResource"]["pods"]["count"], count("awk -F/ '$3==\"pods\" && NF==5' | wc -l"));
  EXPECT_EQ(inv["byResource"]["secrets"]["count"], count("grep -c '^/registry/secrets/'"));
  EXPECT_EQ(inv["byResource"]["nodes"]["count"], count("grep -c '^/registry/minions/'"));
  EXPECT_EQ(inv["byResource"]["services"]["count"], count("grep -c '^/registry/services/specs/'"));
  EXPECT_EQ(inv["byResource"]["example.com/widgets"]["count"], count("grep -c '^/registry/example.com/widgets/'"));
  EXPECT_EQ(inv["byResource"]["apiextensions.k8s.io/customresourcedefinitions"]["count"], 1);
  EXPECT_EQ(inv["byResource"]["namespaces"]["count"], 3);
  for (const char* ns : {"default", "team-a", "kube-system"}) {
    // Namespaced object keys: /registry/<res>/<ns>/<name>, /registry/services/specs/<ns>/<name>,
    // /registry/<group>/<res>/<ns>/<name>.
    const std::string awk = std::string("awk -F/ '($3 !~ /\\./ && $3 != \"services\" && NF==5 && $4==\"") + ns +
                            "\") || (($3 ~ /\\./ || $3 == \"services\") && NF==6 && $5==\"" + ns + "\")' | wc -l";
    EXPECT_EQ(inv["byNamespace"][ns]["count"], count(awk)) << ns;
  }
  // Bytes: the values the test wrote (the model), grouped the same way.
  int64_t pod_bytes = 0, total_bytes = 0, team_a_bytes = 0;
  for (const auto& [k, v] : *model_) {
    total_bytes += int64_t(v.size());
    if (k.rfind("/registry/pods/", 0) == 0 && k != "/registry/pods/a/b/c") pod_bytes += int64_t(v.size());
    if (k.find("/team-a/") != std::string::npos) team_a_bytes += int64_t(v.size());
  }
  // The model is the first snapshot's content (the Secret deletes came after it).
  EXPECT_EQ(inv["total"]["count"], int64_t(model_->size()));
  EXPECT_EQ(inv["total"]["bytes"], total_bytes);
  EXPECT_EQ(inv["byResource"]["pods"]["bytes"], pod_bytes);
  EXPECT_EQ(inv["byNamespace"]["team-a"]["bytes"], team_a_bytes);
  // Largest first: the overwritten web-0 (4000 bytes of spec), then node-1.
  ASSERT_GE(inv["largest"].size(), 2u);
  EXPECT_EQ(inv["largest"][0]["key"], "/registry/pods/default/web-0");
  EXPECT_EQ(inv["largest"][0]["bytes"], int64_t(model_->at("/registry/pods/default/web-0").size()));
  EXPECT_EQ(inv["largest"][1]["key"], "/registry/minions/node-1");
  EXPECT_EQ(inv["largest"].size(), 10u);
  EXPECT_EQ(inv["byEncoding"]["encrypted"]["count"], 2);
  EXPECT_EQ(inv["byEncoding"]["json"]["count"], 3);
  EXPECT_GT(inv["revision"].get<int64_t>(), 0);
  EXPECT_EQ(inv["valuesChecked"], false);
  // --check-values parses every value: these are all well formed, so the same numbers.
  nlohmann::json checked = Json(Etcdsafe({"inspect", "inventory", "--check-values", *snap_, "-w", "json"}));
  EXPECT_EQ(checked["valuesChecked"], true);
  checked["valuesChecked"] = false;
  EXPECT_EQ(checked, inv);

  CmdResult table = Etcdsafe({"inspect", "inventory", *snap_});
  EXPECT_EQ(table.code, 0) << table.err;
  EXPECT_NE(table.out.find("example.com/widgets"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("/registry/pods/default/web-0"), std::string::npos) << table.out;
}

TEST_F(InspectCli, GetShowsEncodedMetadata) {
  const nlohmann::json j = Json(Etcdsafe({"inspect", "get", *snap_, "/registry/pods/team-a/web-3", "-o", "json"}));
  EXPECT_EQ(j["envelope"]["encoding"], "protobuf");
  EXPECT_EQ(j["apiVersion"], "v1");
  EXPECT_EQ(j["kind"], "Pod");
  EXPECT_EQ(j["keyInfo"]["resource"], "pods");
  EXPECT_EQ(j["keyInfo"]["namespace"], "team-a");
  const nlohmann::json& m = j["metadata"];
  EXPECT_EQ(m["name"], "web-3");
  EXPECT_EQ(m["namespace"], "team-a");
  EXPECT_EQ(m["uid"], "pod-uid-3");
  EXPECT_EQ(m["generation"], 4);
  EXPECT_EQ(m["creationTimestamp"], "2023-11-14T22:13:23Z");
  EXPECT_EQ(m["labels"], (nlohmann::json{{"app", "web"}, {"idx", "3"}}));
  EXPECT_EQ(m["ownerReferences"][0]["kind"], "ReplicaSet");
  EXPECT_EQ(m["ownerReferences"][0]["name"], "web-rs");
  EXPECT_EQ(m["ownerReferences"][0]["controller"], true);
  const std::string value = model_->at("/registry/pods/team-a/web-3");
  const k8s::Envelope env = k8s::ParseEnvelope(AsBytes(value));
  EXPECT_EQ(j["raw"], k8s::Base64(env.raw));
  // The overwritten pod shows its last value.
  const nlohmann::json w0 = Json(Etcdsafe({"inspect", "get", *snap_, "/registry/pods/default/web-0"}));
  EXPECT_EQ(w0["metadata"]["generation"], 9);
  EXPECT_EQ(w0["metadata"]["labels"]["rev"], "2");
  EXPECT_GT(w0["version"].get<int64_t>(), 1);
  // JSON custom resource.
  const nlohmann::json w1 = Json(Etcdsafe({"inspect", "get", *snap_, "/registry/example.com/widgets/team-a/w1"}));
  EXPECT_EQ(w1["envelope"]["encoding"], "json");
  EXPECT_EQ(w1["kind"], "Widget");
  EXPECT_EQ(w1["metadata"]["uid"], "uid-w1");
  EXPECT_EQ(w1["object"]["spec"]["size"], 3);
  // Encrypted: reported with its provider, never decoded.
  const nlohmann::json tls = Json(Etcdsafe({"inspect", "get", *snap_, "/registry/secrets/team-a/tls"}));
  EXPECT_EQ(tls["envelope"]["encoding"], "encrypted");
  EXPECT_EQ(tls["envelope"]["encryption"], "aescbc");
  EXPECT_EQ(tls["envelope"]["keyName"], "key1");
  EXPECT_FALSE(tls.contains("metadata"));
  // YAML and raw.
  CmdResult y = Etcdsafe({"inspect", "get", *snap_, "/registry/pods/team-a/web-3", "-o", "yaml"});
  EXPECT_EQ(y.code, 0) << y.err;
  EXPECT_NE(y.out.find("\"metadata\":\n  \"creationTimestamp\": \"2023-11-14T22:13:23Z\"\n"), std::string::npos) << y.out;
  EXPECT_NE(y.out.find("\n  \"name\": \"web-3\"\n"), std::string::npos) << y.out;
  EXPECT_NE(y.out.find("\n  \"ownerReferences\":\n    -\n      \"apiVersion\": \"apps/v1\"\n"), std::string::npos);
  CmdResult raw = Etcdsafe({"inspect", "get", *snap_, "/registry/pods/team-a/web-3", "-o", "raw"});
  EXPECT_EQ(raw.code, 0) << raw.err;
  EXPECT_EQ(raw.out, value);
  // Errors.
  CmdResult missing = Etcdsafe({"inspect", "get", *snap_, "/registry/pods/team-a/web-5"});
  EXPECT_EQ(missing.code, 10) << missing.err;
  EXPECT_TRUE(testutil::IsOneLineError(missing)) << missing.err;
  CmdResult bad = Etcdsafe({"inspect", "get", *snap_, "/registry/pods/team-a/web-3", "-o", "xml"});
  EXPECT_EQ(bad.code, 4) << bad.err;
  CmdResult nofile = Etcdsafe({"inspect", "inventory", dir_->Sub("absent.db")});
  EXPECT_EQ(nofile.code, 10) << nofile.err;
}

TEST_F(InspectCli, SecretsAuditFindsExactlyThePlainOnes) {
  const nlohmann::json a = Json(Etcdsafe({"inspect", "secrets-audit", *snap_, "-w", "json"}));
  EXPECT_EQ(a["secrets"]["total"], 4);
  EXPECT_EQ(a["secrets"]["plain"], 2);
  EXPECT_EQ(a["secrets"]["encrypted"], (nlohmann::json{{"aescbc:key1", 1}, {"kms:v2:vault", 1}}));
  EXPECT_EQ(a["secrets"]["plainSecrets"], (nlohmann::json::array({{{"namespace", "default"}, {"name", "db-pass"}},
                                                                   {{"namespace", "team-a"}, {"name", "api-key"}}})));
  CmdResult fail = Etcdsafe({"inspect", "secrets-audit", *snap_, "--fail-on-plaintext"});
  EXPECT_EQ(fail.code, 16) << fail.err;
  EXPECT_NE(fail.out.find("plain: team-a/api-key"), std::string::npos) << fail.out;
  EXPECT_TRUE(testutil::IsOneLineError(fail)) << fail.err;
  CmdResult clean = Etcdsafe({"inspect", "secrets-audit", *snap_clean_, "--fail-on-plaintext", "--configmaps"});
  EXPECT_EQ(clean.code, 0) << clean.err;
  EXPECT_NE(clean.out.find("secrets: 2, plain 0"), std::string::npos) << clean.out;
  EXPECT_NE(clean.out.find("configmaps: 1, plain 1"), std::string::npos) << clean.out;
}

TEST_F(InspectCli, RepositoryBackupReadsLikeItsSnapshot) {
  // A backup taken now (no write since the second snapshot) inspected through --repo gives
  // the same answers as that snapshot file.
  TempDir repo_dir;
  const std::string repo = "file://" + repo_dir.Sub("repo");
  CmdResult b = Etcdsafe({"backup", "--repo", repo, "--endpoints", server_->client_url()});
  ASSERT_EQ(b.code, 0) << b.err << b.out;
  const nlohmann::json from_file = Json(Etcdsafe({"inspect", "inventory", *snap_clean_, "-w", "json"}));
  const nlohmann::json from_repo =
      Json(Etcdsafe({"inspect", "inventory", "--repo", repo, "--backup", "latest", "-w", "json"}));
  EXPECT_EQ(from_repo, from_file);
  EXPECT_EQ(from_repo["byResource"]["secrets"]["count"], 2);
  const nlohmann::json get = Json(Etcdsafe({"inspect", "get", "--repo", repo, "/registry/pods/team-a/web-3"}));
  EXPECT_EQ(get["metadata"]["uid"], "pod-uid-3");
  CmdResult audit = Etcdsafe({"inspect", "secrets-audit", "--repo", repo, "--fail-on-plaintext"});
  EXPECT_EQ(audit.code, 0) << audit.err;
  CmdResult both = Etcdsafe({"inspect", "inventory", *snap_clean_, "--repo", repo});
  EXPECT_EQ(both.code, 128) << both.err;
  CmdResult neither = Etcdsafe({"inspect", "inventory"});
  EXPECT_EQ(neither.code, 128) << neither.err;
}

}  // namespace
}  // namespace etcdsafe
