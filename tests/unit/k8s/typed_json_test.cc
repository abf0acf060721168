// Typed JSON of the built-in kinds (k8s/types/typed_json.h). Every object here is encoded by
// hand with the field numbers of Kubernetes' own generated.proto files (kubernetes/api and
// kubernetes/apimachinery v0.28.15), independently of the .proto files etcdsafe compiles, and
// the decoded JSON is compared with the document `kubectl get -o json` shows for it (written
// out below). Gogo-generated Kubernetes code writes every non-pointer scalar even when zero
// (hostNetwork: false, subdomain: ""), so the encodings do too, and the JSON must omit them.
#include "k8s/types/typed_json.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>

#include "k8s/envelope.h"
#include "k8s/wire.h"

namespace etcdsafe::k8s {
namespace {

using nlohmann::json;

// A protobuf message built field by field.
struct Pb {
  std::string b;
  Pb& s(uint32_t n, std::string_view v) {
    AppendBytesField(&b, n, v);
    return *this;
  }
  Pb& i(uint32_t n, int64_t v) {
    AppendVarintField(&b, n, uint64_t(v));
    return *this;
  }
  Pb& m(uint32_t n, const Pb& sub) { return s(n, sub.b); }
  // A map<string, string|bytes> entry (key = 1, value = 2).
  Pb& kv(uint32_t n, std::string_view k, std::string_view v) { return m(n, Pb().s(1, k).s(2, v)); }
  // A map<string, Message> entry.
  Pb& km(uint32_t n, std::string_view k, const Pb& v) { return m(n, Pb().s(1, k).m(2, v)); }
  // map<string, Quantity>: Quantity {string = 1}.
  Pb& q(uint32_t n, std::string_view k, std::string_view quantity) { return km(n, k, Pb().s(1, quantity)); }
};

Pb Time(int64_t seconds, int64_t nanos = 0) {
  Pb t;
  t.i(1, seconds);
  if (nanos) t.i(2, nanos);
  return t;
}
Pb IntOrStringInt(int32_t v) { return Pb().i(1, 0).i(2, v).s(3, ""); }
Pb IntOrStringStr(std::string_view v) { return Pb().i(1, 1).i(2, 0).s(3, v); }

// ObjectMeta as the API server writes it (gogo: every non-pointer field, even empty).
Pb Meta(std::string_view name, std::string_view ns, std::string_view uid) {
  return Pb()
      .s(1, name)
      .s(2, "")
      .s(3, ns)
      .s(4, "")
      .s(5, uid)
      .s(6, "")
      .i(7, 0)
      .m(8, Time(1704164645));  // 2024-01-02T03:04:05Z
}
json MetaJson(std::string_view name, std::string_view ns, std::string_view uid) {
  json j = {{"name", name}, {"uid", uid}, {"creationTimestamp", "2024-01-02T03:04:05Z"}};
  if (!ns.empty()) j["namespace"] = ns;
  return j;
}

json Decode(std::string_view api_version, std::string_view kind, const Pb& obj) {
  TypedObject t = DecodeTypedObject(api_version, kind, AsBytes(obj.b));
  EXPECT_EQ(t.status, TypedObject::kOk) << t.error;
  EXPECT_EQ(t.unknown_fields, json::array());
  return t.object;
}

// A pod template's spec as Deployments and Jobs carry it: one container.
Pb SimplePodSpec(std::string_view image) {
  return Pb()
      .m(2, Pb().s(1, "app").s(2, image).m(8, Pb()).s(13, "/dev/termination-log").s(14, "IfNotPresent").s(20, "File"))
      .s(3, "Always")
      .i(4, 30)
      .s(6, "ClusterFirst")
      .m(14, Pb())
      .s(19, "default-scheduler");
}
json SimplePodSpecJson(std::string_view image) {
  return {{"containers",
           {{{"name", "app"},
             {"image", image},
             {"resources", json::object()},
             {"terminationMessagePath", "/dev/termination-log"},
             {"terminationMessagePolicy", "File"},
             {"imagePullPolicy", "IfNotPresent"}}}},
          {"restartPolicy", "Always"},
          {"terminationGracePeriodSeconds", 30},
          {"dnsPolicy", "ClusterFirst"},
          {"securityContext", json::object()},
          {"schedulerName", "default-scheduler"}};
}

TEST(TypedJson, Pod) {
  Pb meta = Meta("web-0", "default", "7c3e");
  meta.s(6, "4711")
      .kv(11, "app", "web")
      .kv(11, "pod-template-hash", "5d8f")
      .kv(12, "note", "h\xffi")  // invalid UTF-8: U+FFFD, as Go's encoder
      .m(13, Pb().s(1, "ReplicaSet").s(3, "web-5d8f").s(4, "rs-uid").s(5, "apps/v1").i(6, 1).i(7, 1))
      .m(17, Pb().s(1, "kubelet").s(2, "Update").s(3, "v1").m(4, Time(1704164700)).s(6, "FieldsV1")
                 .m(7, Pb().s(1, R"({"f:status":{}})")).s(8, "status"));
  Pb container = Pb()
                     .s(1, "nginx")
                     .s(2, "nginx:1.25")
                     .m(6, Pb().s(1, "http").i(2, 0).i(3, 80).s(4, "TCP").s(5, ""))
                     .m(7, Pb().s(1, "MODE").s(2, "prod"))
                     .m(7, Pb().s(1, "TOKEN").s(2, "").m(3, Pb().m(4, Pb().m(1, Pb().s(1, "creds")).s(2, "token"))))
                     .m(8, Pb().q(1, "cpu", "500m").q(1, "memory", "128Mi").q(2, "cpu", "250m"))
                     .m(9, Pb().s(1, "config").i(2, 1).s(3, "/etc/web").s(4, ""))
                     .m(11, Pb().m(1, Pb().m(2, Pb().s(1, "/healthz").m(2, IntOrStringStr("http")).s(3, "").s(4, "HTTP")))
                                .i(2, 0).i(3, 1).i(4, 10).i(5, 1).i(6, 3))
                     .s(13, "/dev/termination-log")
                     .s(14, "IfNotPresent")
                     .i(16, 0)
                     .i(17, 0)
                     .i(18, 0)
                     .s(20, "File");
  Pb spec = Pb()
                .m(1, Pb().s(1, "config").m(2, Pb().m(19, Pb().m(1, Pb().s(1, "web-config")).i(3, 420))))
                .m(1, Pb().s(1, "scratch").m(2, Pb().m(2, Pb().s(1, ""))))
                .m(2, container)
                .s(3, "Always")
                .i(4, 30)
                .s(6, "ClusterFirst")
                .s(8, "web")
                .s(9, "web")
                .s(10, "node-1")
                .i(11, 0)
                .i(12, 0)
                .i(13, 0)
                .m(14, Pb())
                .s(16, "")
                .s(17, "")
                .s(19, "default-scheduler")
                .m(22, Pb().s(1, "node.kubernetes.io/not-ready").s(2, "Exists").s(3, "").s(4, "NoExecute").i(5, 300))
                .s(24, "")
                .i(25, 0)
                .i(30, 1)
                .s(31, "PreemptLowerPriority");
  Pb status = Pb()
                  .s(1, "Running")
                  .m(2, Pb().s(1, "Ready").s(2, "True").m(3, Pb()).m(4, Time(1704164710)).s(5, "").s(6, ""))
                  .s(3, "")
                  .s(4, "")
                  .s(5, "10.0.0.5")
                  .s(6, "10.244.1.7")
                  .m(7, Time(1704164645))
                  .m(8, Pb()
                            .s(1, "nginx")
                            .m(2, Pb().m(2, Pb().m(1, Time(1704164705))))
                            .m(3, Pb())
                            .i(4, 1)
                            .i(5, 0)
                            .s(6, "docker.io/library/nginx:1.25")
                            .s(7, "docker.io/library/nginx@sha256:abc")
                            .s(8, "containerd://123")
                            .i(9, 1))
                  .s(9, "Burstable")
                  .m(12, Pb().s(1, "10.244.1.7"));
  const json got = Decode("v1", "Pod", Pb().m(1, meta).m(2, spec).m(3, status));
  const json want = json::parse(R"({
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
      "name": "web-0", "namespace": "default", "uid": "7c3e", "resourceVersion": "4711",
      "creationTimestamp": "2024-01-02T03:04:05Z",
      "labels": {"app": "web", "pod-template-hash": "5d8f"},
      "annotations": {"note": "h\ufffdi"},
      "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f", "uid": "rs-uid",
                           "controller": true, "blockOwnerDeletion": true}],
      "managedFields": [{"manager": "kubelet", "operation": "Update", "apiVersion": "v1",
                         "time": "2024-01-02T03:05:00Z", "fieldsType": "FieldsV1",
                         "fieldsV1": {"f:status": {}}, "subresource": "status"}]
    },
    "spec": {
      "volumes": [
        {"name": "config", "configMap": {"name": "web-config", "defaultMode": 420}},
        {"name": "scratch", "emptyDir": {}}
      ],
      "containers": [{
        "name": "nginx", "image": "nginx:1.25",
        "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
        "env": [{"name": "MODE", "value": "prod"},
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}],
        "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "250m"}},
        "volumeMounts": [{"name": "config", "readOnly": true, "mountPath": "/etc/web"}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                           "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent"
      }],
      "restartPolicy": "Always",
      "terminationGracePeriodSeconds": 30,
      "dnsPolicy": "ClusterFirst",
      "serviceAccountName": "web",
      "serviceAccount": "web",
      "nodeName": "node-1",
      "securityContext": {},
      "schedulerName": "default-scheduler",
      "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                       "tolerationSeconds": 300}],
      "priority": 0,
      "enableServiceLinks": true,
      "preemptionPolicy": "PreemptLowerPriority"
    },
    "status": {
      "phase": "Running",
      "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null,
                      "lastTransitionTime": "2024-01-02T03:05:10Z"}],
      "hostIP": "10.0.0.5",
      "podIP": "10.244.1.7",
      "podIPs": [{"ip": "10.244.1.7"}],
      "startTime": "2024-01-02T03:04:05Z",
      "containerStatuses": [{
        "name": "nginx",
        "state": {"running": {"startedAt": "2024-01-02T03:05:05Z"}},
        "lastState": {},
        "ready": true,
        "restartCount": 0,
        "image": "docker.io/library/nginx:1.25",
        "imageID": "docker.io/library/nginx@sha256:abc",
        "containerID": "containerd://123",
        "started": true
      }],
      "qosClass": "Burstable"
    }
  })");
  EXPECT_EQ(got, want) << got.dump(2);
}

TEST(TypedJson, Deployment) {
  Pb spec = Pb()
                .i(1, 3)
                .m(2, Pb().kv(1, "app", "web"))
                .m(3, Pb().m(1, Pb().s(1, "").m(8, Pb()).kv(11, "app", "web")).m(2, SimplePodSpec("nginx:1.25")))
                .m(4, Pb().s(1, "RollingUpdate").m(2, Pb().m(1, IntOrStringStr("25%")).m(2, IntOrStringInt(1))))
                .i(5, 0)
                .i(6, 10)
                .i(7, 0)
                .i(9, 600);
  Pb status = Pb()
                  .i(1, 2)
                  .i(2, 3)
                  .i(3, 3)
                  .i(4, 3)
                  .i(5, 0)
                  .m(6, Pb().s(1, "Available").s(2, "True").s(4, "MinimumReplicasAvailable").s(5, "ok")
                             .m(6, Time(1704164645)).m(7, Time(1704164645)))
                  .i(7, 3);
  const json got = Decode("apps/v1", "Deployment", Pb().m(1, Meta("web", "team-a", "d1").i(7, 2)).m(2, spec).m(3, status));
  json want = {{"apiVersion", "apps/v1"}, {"kind", "Deployment"}, {"metadata", MetaJson("web", "team-a", "d1")}};
  want["metadata"]["generation"] = 2;
  want["spec"] = json::parse(R"({
    "replicas": 3,
    "selector": {"matchLabels": {"app": "web"}},
    "template": {"metadata": {"creationTimestamp": null, "labels": {"app": "web"}}},
    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 1}},
    "revisionHistoryLimit": 10,
    "progressDeadlineSeconds": 600
  })");
  want["spec"]["template"]["spec"] = SimplePodSpecJson("nginx:1.25");
  want["status"] = json::parse(R"({
    "observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
    "conditions": [{"type": "Available", "status": "True", "lastUpdateTime": "2024-01-02T03:04:05Z",
                    "lastTransitionTime": "2024-01-02T03:04:05Z", "reason": "MinimumReplicasAvailable",
                    "message": "ok"}]
  })");
  EXPECT_EQ(got, want) << got.dump(2);
}

TEST(TypedJson, ServiceAndEndpoints) {
  Pb spec = Pb()
                .m(1, Pb().s(1, "https").s(2, "TCP").i(3, 443).m(4, IntOrStringInt(6443)).i(5, 0))
                .m(1, Pb().s(1, "metrics").s(2, "TCP").i(3, 9090).m(4, IntOrStringStr("metrics")).i(5, 30090))
                .kv(2, "app", "api")
                .s(3, "10.96.0.1")
                .s(4, "NodePort")
                .s(7, "None")
                .s(11, "Cluster")
                .i(12, 0)
                .i(13, 0)
                .s(17, "SingleStack")
                .s(18, "10.96.0.1")
                .s(19, "IPv4")
                .s(22, "Cluster");
  const json got = Decode("v1", "Service", Pb().m(1, Meta("api", "default", "s1")).m(2, spec).m(3, Pb().m(1, Pb())));
  const json want = {{"apiVersion", "v1"},
                     {"kind", "Service"},
                     {"metadata", MetaJson("api", "default", "s1")},
                     {"spec", json::parse(R"({
    "ports": [{"name": "https", "protocol": "TCP", "port": 443, "targetPort": 6443},
              {"name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": "metrics", "nodePort": 30090}],
    "selector": {"app": "api"},
    "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"], "type": "NodePort", "sessionAffinity": "None",
    "externalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
    "internalTrafficPolicy": "Cluster"
  })")},
                     {"status", {{"loadBalancer", json::object()}}}};
  EXPECT_EQ(got, want) << got.dump(2);

  Pb subset = Pb()
                  .m(1, Pb().s(1, "10.244.1.7").m(2, Pb().s(1, "Pod").s(2, "default").s(3, "api-0").s(4, "p0"))
                             .s(3, "").s(4, "node-1"))
                  .m(3, Pb().s(1, "https").i(2, 6443).s(3, "TCP"));
  const json ep = Decode("v1", "Endpoints", Pb().m(1, Meta("api", "default", "e1")).m(2, subset));
  EXPECT_EQ(ep["subsets"], json::parse(R"([{"addresses": [{"ip": "10.244.1.7", "nodeName": "node-1",
      "targetRef": {"kind": "Pod", "namespace": "default", "name": "api-0", "uid": "p0"}}],
      "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}])"))
      << ep.dump(2);
}

TEST(TypedJson, ConfigMapSecretServiceAccountNamespace) {
  const json cm = Decode("v1", "ConfigMap",
                         Pb().m(1, Meta("cfg", "default", "c1")).kv(2, "app.conf", "x=1\n").kv(3, "blob", std::string("\x00\x01\xfe", 3)));
  EXPECT_EQ(cm, (json{{"apiVersion", "v1"},
                      {"kind", "ConfigMap"},
                      {"metadata", MetaJson("cfg", "default", "c1")},
                      {"data", {{"app.conf", "x=1\n"}}},
                      {"binaryData", {{"blob", "AAH+"}}}}))
      << cm.dump(2);

  const json secret = Decode("v1", "Secret",
                             Pb().m(1, Meta("db", "default", "s1")).kv(2, "password", "hunter2").kv(2, "raw", "\xff\xfe")
                                 .s(3, "Opaque").i(5, 0));
  EXPECT_EQ(secret, (json{{"apiVersion", "v1"},
                          {"kind", "Secret"},
                          {"metadata", MetaJson("db", "default", "s1")},
                          {"data", {{"password", "aHVudGVyMg=="}, {"raw", "//4="}}},
                          {"type", "Opaque"},
                          {"immutable", false}}))
      << secret.dump(2);

  const json sa = Decode("v1", "ServiceAccount",
                         Pb().m(1, Meta("builder", "ci", "sa1")).m(2, Pb().s(3, "builder-token")).m(3, Pb().s(1, "regcred"))
                             .i(4, 0));
  EXPECT_EQ(sa, (json{{"apiVersion", "v1"},
                      {"kind", "ServiceAccount"},
                      {"metadata", MetaJson("builder", "ci", "sa1")},
                      {"secrets", {{{"name", "builder-token"}}}},
                      {"imagePullSecrets", {{{"name", "regcred"}}}},
                      {"automountServiceAccountToken", false}}))
      << sa.dump(2);

  Pb ns_meta = Meta("team-a", "", "n1");
  ns_meta.kv(11, "kubernetes.io/metadata.name", "team-a");
  const json ns = Decode("v1", "Namespace", Pb().m(1, ns_meta).m(2, Pb().s(1, "kubernetes")).m(3, Pb().s(1, "Active")));
  json ns_want = {{"apiVersion", "v1"},
                  {"kind", "Namespace"},
                  {"metadata", MetaJson("team-a", "", "n1")},
                  {"spec", {{"finalizers", {"kubernetes"}}}},
                  {"status", {{"phase", "Active"}}}};
  ns_want["metadata"]["labels"] = {{"kubernetes.io/metadata.name", "team-a"}};
  EXPECT_EQ(ns, ns_want) << ns.dump(2);
}

TEST(TypedJson, Node) {
  Pb info;
  for (int f = 1; f <= 10; f++) info.s(uint32_t(f), f == 8 ? "" : "v" + std::to_string(f));
  Pb status = Pb()
                  .q(1, "cpu", "4")
                  .q(1, "memory", "16331452Ki")
                  .q(2, "cpu", "3800m")
                  .s(3, "")
                  .m(4, Pb().s(1, "Ready").s(2, "True").m(3, Time(1704164645)).m(4, Time(1704160000)).s(5, "KubeletReady")
                             .s(6, "kubelet is posting ready status"))
                  .m(5, Pb().s(1, "InternalIP").s(2, "10.0.0.5"))
                  .m(6, Pb().m(1, Pb().i(1, 10250)))
                  .m(7, info)
                  .m(8, Pb().s(1, "registry.k8s.io/pause:3.9").i(2, 321520));
  Pb spec = Pb().s(1, "10.244.1.0/24").s(7, "10.244.1.0/24").i(4, 1)
                .m(5, Pb().s(1, "node.kubernetes.io/unschedulable").s(2, "").s(3, "NoSchedule").m(4, Time(1704164645)));
  const json got = Decode("v1", "Node", Pb().m(1, Meta("node-1", "", "n1")).m(2, spec).m(3, status));
  json want = json::parse(R"({
    "apiVersion": "v1", "kind": "Node",
    "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"], "unschedulable": true,
             "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule",
                         "timeAdded": "2024-01-02T03:04:05Z"}]},
    "status": {
      "capacity": {"cpu": "4", "memory": "16331452Ki"}, "allocatable": {"cpu": "3800m"},
      "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2024-01-02T03:04:05Z",
                      "lastTransitionTime": "2024-01-02T01:46:40Z", "reason": "KubeletReady",
                      "message": "kubelet is posting ready status"}],
      "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}],
      "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
      "nodeInfo": {"machineID": "v1", "systemUUID": "v2", "bootID": "v3", "kernelVersion": "v4", "osImage": "v5",
                   "containerRuntimeVersion": "v6", "kubeletVersion": "v7", "kubeProxyVersion": "",
                   "operatingSystem": "v9", "architecture": "v10"},
      "images": [{"names": ["registry.k8s.io/pause:3.9"], "sizeBytes": 321520}]
    }
  })");
  want["metadata"] = MetaJson("node-1", "", "n1");
  EXPECT_EQ(got, want) << got.dump(2);
}

TEST(TypedJson, LeaseAndEvent) {
  const json lease = Decode("coordination.k8s.io/v1", "Lease",
                            Pb().m(1, Meta("node-1", "kube-node-lease", "l1"))
                                .m(2, Pb().s(1, "node-1").i(2, 40).m(3, Time(1704164645, 123456789))
                                          .m(4, Time(1704164700, 5000)).i(5, 0)));
  EXPECT_EQ(lease["spec"], json::parse(R"({"holderIdentity": "node-1", "leaseDurationSeconds": 40,
      "acquireTime": "2024-01-02T03:04:05.123456Z", "renewTime": "2024-01-02T03:05:00.000005Z",
      "leaseTransitions": 0})"))
      << lease.dump(2);
  EXPECT_EQ(lease["apiVersion"], "coordination.k8s.io/v1");

  Pb ev = Pb()
              .m(1, Meta("web-0.17a", "default", "ev1"))
              .m(2, Pb().s(1, "Pod").s(2, "default").s(3, "web-0").s(4, "7c3e").s(5, "v1").s(6, "4711")
                         .s(7, "spec.containers{nginx}"))
              .s(3, "Pulled")
              .s(4, "Container image \"nginx:1.25\" already present on machine")
              .m(5, Pb().s(1, "kubelet").s(2, "node-1"))
              .m(6, Time(1704164645))
              .m(7, Time(1704164705))
              .i(8, 2)
              .s(9, "Normal")
              .m(10, Pb())
              .s(12, "")
              .s(14, "")
              .s(15, "");
  const json event = Decode("v1", "Event", ev);
  json want = json::parse(R"({
    "apiVersion": "v1", "kind": "Event",
    "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-0", "uid": "7c3e", "apiVersion": "v1",
                       "resourceVersion": "4711", "fieldPath": "spec.containers{nginx}"},
    "reason": "Pulled", "message": "Container image \"nginx:1.25\" already present on machine",
    "source": {"component": "kubelet", "host": "node-1"},
    "firstTimestamp": "2024-01-02T03:04:05Z", "lastTimestamp": "2024-01-02T03:05:05Z",
    "count": 2, "type": "Normal", "eventTime": null, "reportingComponent": "", "reportingInstance": ""
  })");
  want["metadata"] = MetaJson("web-0.17a", "default", "ev1");
  EXPECT_EQ(event, want) << event.dump(2);
}

TEST(TypedJson, PersistentVolumeAndClaim) {
  Pb pv_spec = Pb()
                   .q(1, "storage", "10Gi")
                   .m(2, Pb().m(3, Pb().s(1, "/mnt/data").s(2, "DirectoryOrCreate")))
                   .s(3, "ReadWriteOnce")
                   .m(4, Pb().s(1, "PersistentVolumeClaim").s(2, "default").s(3, "data").s(4, "pvc-uid").s(5, "v1")
                              .s(6, "99").s(7, ""))
                   .s(5, "Retain")
                   .s(6, "manual")
                   .s(8, "Filesystem");
  const json pv = Decode("v1", "PersistentVolume",
                         Pb().m(1, Meta("pv-1", "", "pv1")).m(2, pv_spec).m(3, Pb().s(1, "Bound").s(2, "").s(3, "")));
  json pv_want = json::parse(R"({
    "apiVersion": "v1", "kind": "PersistentVolume",
    "spec": {"capacity": {"storage": "10Gi"}, "hostPath": {"path": "/mnt/data", "type": "DirectoryOrCreate"},
             "accessModes": ["ReadWriteOnce"],
             "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "default", "name": "data", "uid": "pvc-uid",
                          "apiVersion": "v1", "resourceVersion": "99"},
             "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "manual", "volumeMode": "Filesystem"},
    "status": {"phase": "Bound"}
  })");
  pv_want["metadata"] = MetaJson("pv-1", "", "pv1");
  EXPECT_EQ(pv, pv_want) << pv.dump(2);

  Pb pvc_spec = Pb().s(1, "ReadWriteOnce").m(2, Pb().q(2, "storage", "10Gi")).s(3, "pv-1").s(5, "manual").s(6, "Filesystem");
  const json pvc = Decode("v1", "PersistentVolumeClaim",
                          Pb().m(1, Meta("data", "default", "pvc-uid")).m(2, pvc_spec)
                              .m(3, Pb().s(1, "Bound").s(2, "ReadWriteOnce").q(3, "storage", "10Gi")));
  EXPECT_EQ(pvc["spec"], json::parse(R"({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}},
      "volumeName": "pv-1", "storageClassName": "manual", "volumeMode": "Filesystem"})"))
      << pvc.dump(2);
  EXPECT_EQ(pvc["status"], json::parse(R"({"phase": "Bound", "accessModes": ["ReadWriteOnce"],
      "capacity": {"storage": "10Gi"}})"));
}

TEST(TypedJson, ReplicaSetStatefulSetDaemonSet) {
  Pb tmpl = Pb().m(1, Pb().m(8, Pb()).kv(11, "app", "db")).m(2, SimplePodSpec("postgres:16"));
  json tmpl_json = {{"metadata", {{"creationTimestamp", nullptr}, {"labels", {{"app", "db"}}}}},
                    {"spec", SimplePodSpecJson("postgres:16")}};
  const json rs = Decode("apps/v1", "ReplicaSet",
                         Pb().m(1, Meta("db-1", "default", "r1")).m(2, Pb().i(1, 0).m(2, Pb().kv(1, "app", "db")).m(3, tmpl).i(4, 0))
                             .m(3, Pb().i(1, 0).i(2, 0).i(3, 4)));
  EXPECT_EQ(rs["spec"], (json{{"replicas", 0}, {"selector", {{"matchLabels", {{"app", "db"}}}}}, {"template", tmpl_json}}));
  EXPECT_EQ(rs["status"], (json{{"replicas", 0}, {"observedGeneration", 4}}));

  Pb claim = Pb().m(1, Pb().s(1, "data").m(8, Pb())).m(2, Pb().s(1, "ReadWriteOnce").m(2, Pb().q(2, "storage", "1Gi")))
                 .m(3, Pb().s(1, "Pending"));
  const json sts = Decode("apps/v1", "StatefulSet",
                          Pb().m(1, Meta("db", "default", "st1"))
                              .m(2, Pb().i(1, 3).m(2, Pb().kv(1, "app", "db")).m(3, tmpl).m(4, claim).s(5, "db")
                                        .s(6, "OrderedReady").m(7, Pb().s(1, "RollingUpdate").m(2, Pb().i(1, 0)))
                                        .i(8, 10).i(9, 0).m(10, Pb().s(1, "Retain").s(2, "Retain")))
                              .m(3, Pb().i(1, 1).i(2, 3).i(3, 3).i(4, 3).i(5, 3).s(6, "db-7f").s(7, "db-7f").i(9, 0).i(11, 3)));
  json sts_spec = json::parse(R"({"replicas": 3, "selector": {"matchLabels": {"app": "db"}},
      "volumeClaimTemplates": [{"metadata": {"name": "data", "creationTimestamp": null},
                                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                                "status": {"phase": "Pending"}}],
      "serviceName": "db", "podManagementPolicy": "OrderedReady",
      "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
      "revisionHistoryLimit": 10,
      "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"}})");
  sts_spec["template"] = tmpl_json;
  EXPECT_EQ(sts["spec"], sts_spec) << sts.dump(2);
  EXPECT_EQ(sts["status"], json::parse(R"({"observedGeneration": 1, "replicas": 3, "readyReplicas": 3,
      "currentReplicas": 3, "updatedReplicas": 3, "currentRevision": "db-7f", "updateRevision": "db-7f",
      "collisionCount": 0, "availableReplicas": 3})"));

  const json ds = Decode("apps/v1", "DaemonSet",
                         Pb().m(1, Meta("agent", "kube-system", "ds1"))
                             .m(2, Pb().m(1, Pb().kv(1, "app", "db")).m(2, tmpl)
                                       .m(3, Pb().s(1, "RollingUpdate").m(2, Pb().m(1, IntOrStringInt(1)).m(2, IntOrStringInt(0))))
                                       .i(4, 0).i(6, 10))
                             .m(3, Pb().i(1, 2).i(2, 0).i(3, 2).i(4, 2).i(5, 1).i(6, 2).i(7, 2).i(8, 0)));
  EXPECT_EQ(ds["spec"]["updateStrategy"], json::parse(R"({"type": "RollingUpdate",
      "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})"));
  EXPECT_EQ(ds["spec"]["revisionHistoryLimit"], 10);
  EXPECT_EQ(ds["status"], json::parse(R"({"currentNumberScheduled": 2, "numberMisscheduled": 0,
      "desiredNumberScheduled": 2, "numberReady": 2, "observedGeneration": 1, "updatedNumberScheduled": 2,
      "numberAvailable": 2})"));
}

TEST(TypedJson, JobAndCronJob) {
  Pb tmpl = Pb().m(1, Pb().m(8, Pb())).m(2, SimplePodSpec("busybox"));
  Pb job_spec = Pb().i(1, 1).i(2, 1).i(7, 6).m(4, Pb().kv(1, "batch.kubernetes.io/controller-uid", "j1")).i(5, 0)
                    .m(6, tmpl).s(9, "NonIndexed").i(10, 0);
  const json job = Decode("batch/v1", "Job",
                          Pb().m(1, Meta("backup-28400", "ops", "j1")).m(2, job_spec)
                              .m(3, Pb().m(1, Pb().s(1, "Complete").s(2, "True").m(3, Time(1704164705)).m(4, Time(1704164705)))
                                        .m(2, Time(1704164645)).m(3, Time(1704164705)).i(4, 0).i(5, 1).i(6, 0)
                                        .m(8, Pb()).i(9, 0)));
  json job_spec_want = json::parse(R"({"parallelism": 1, "completions": 1, "backoffLimit": 6,
      "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "j1"}}, "manualSelector": false,
      "completionMode": "NonIndexed", "suspend": false})");
  job_spec_want["template"] = {{"metadata", {{"creationTimestamp", nullptr}}}, {"spec", SimplePodSpecJson("busybox")}};
  EXPECT_EQ(job["spec"], job_spec_want) << job.dump(2);
  EXPECT_EQ(job["status"], json::parse(R"({"conditions": [{"type": "Complete", "status": "True",
      "lastProbeTime": "2024-01-02T03:05:05Z", "lastTransitionTime": "2024-01-02T03:05:05Z"}],
      "startTime": "2024-01-02T03:04:05Z", "completionTime": "2024-01-02T03:05:05Z", "succeeded": 1,
      "uncountedTerminatedPods": {}, "ready": 0})"));

  const json cj = Decode("batch/v1", "CronJob",
                         Pb().m(1, Meta("backup", "ops", "cj1"))
                             .m(2, Pb().s(1, "0 * * * *").s(3, "Forbid").i(4, 0).m(5, Pb().m(1, Pb().m(8, Pb())).m(2, job_spec))
                                       .i(6, 3).i(7, 1).s(8, "Etc/UTC"))
                             .m(3, Pb().m(1, Pb().s(1, "Job").s(2, "ops").s(3, "backup-28400")).m(4, Time(1704164400))));
  EXPECT_EQ(cj["spec"]["schedule"], "0 * * * *");
  EXPECT_EQ(cj["spec"]["timeZone"], "Etc/UTC");
  EXPECT_EQ(cj["spec"]["suspend"], false);
  EXPECT_EQ(cj["spec"]["concurrencyPolicy"], "Forbid");
  EXPECT_EQ(cj["spec"]["successfulJobsHistoryLimit"], 3);
  EXPECT_EQ(cj["spec"]["jobTemplate"]["spec"], job_spec_want);
  EXPECT_EQ(cj["spec"]["jobTemplate"]["metadata"], (json{{"creationTimestamp", nullptr}}));
  EXPECT_EQ(cj["status"], json::parse(R"({"active": [{"kind": "Job", "namespace": "ops", "name": "backup-28400"}],
      "lastScheduleTime": "2024-01-02T03:00:00Z"})"));
}

TEST(TypedJson, Rbac) {
  Pb rule = Pb().s(1, "get").s(1, "list").s(2, "").s(3, "pods").s(3, "pods/log");
  const json role = Decode("rbac.authorization.k8s.io/v1", "Role", Pb().m(1, Meta("reader", "default", "r1")).m(2, rule));
  EXPECT_EQ(role, (json{{"apiVersion", "rbac.authorization.k8s.io/v1"},
                        {"kind", "Role"},
                        {"metadata", MetaJson("reader", "default", "r1")},
                        {"rules", {{{"verbs", {"get", "list"}}, {"apiGroups", {""}}, {"resources", {"pods", "pods/log"}}}}}}))
      << role.dump(2);
  // rules has no omitempty: an aggregated ClusterRole without rules shows "rules": null.
  const json cr = Decode("rbac.authorization.k8s.io/v1", "ClusterRole",
                         Pb().m(1, Meta("admin", "", "cr1")).m(3, Pb().m(1, Pb().kv(1, "rbac.example.com/aggregate", "true"))));
  EXPECT_EQ(cr["rules"], nullptr);
  EXPECT_EQ(cr["aggregationRule"], json::parse(R"({"clusterRoleSelectors": [{"matchLabels":
      {"rbac.example.com/aggregate": "true"}}]})"));
  Pb binding = Pb().m(1, Meta("read-pods", "default", "rb1"))
                   .m(2, Pb().s(1, "ServiceAccount").s(2, "").s(3, "builder").s(4, "ci"))
                   .m(2, Pb().s(1, "User").s(2, "rbac.authorization.k8s.io").s(3, "jane").s(4, ""))
                   .m(3, Pb().s(1, "rbac.authorization.k8s.io").s(2, "Role").s(3, "reader"));
  for (const char* kind : {"RoleBinding", "ClusterRoleBinding"}) {
    const json rb = Decode("rbac.authorization.k8s.io/v1", kind, binding);
    EXPECT_EQ(rb["subjects"], json::parse(R"([{"kind": "ServiceAccount", "name": "builder", "namespace": "ci"},
        {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "jane"}])"));
    EXPECT_EQ(rb["roleRef"], json::parse(R"({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"})"));
    EXPECT_EQ(rb["kind"], kind);
  }
}

TEST(TypedJson, UnknownFieldsAreReportedNotDropped) {
  // A newer Kubernetes: PodSpec field 99 and a container field 77 these messages do not know,
  // and ObjectMeta.name (1) sent with the varint wire type.
  Pb spec = Pb().m(2, Pb().s(1, "c").i(77, 5)).s(99, "future");
  std::string meta;
  AppendVarintField(&meta, 1, 7);
  Pb obj;
  obj.s(1, meta).m(2, spec);
  TypedObject t = DecodeTypedObject("v1", "Pod", AsBytes(obj.b));
  ASSERT_EQ(t.status, TypedObject::kOk) << t.error;
  EXPECT_EQ(t.unknown_fields, json::parse(R"([
      {"path": "$.metadata", "fields": [{"number": 1, "wireType": 0}]},
      {"path": "$.spec", "fields": [{"number": 99, "wireType": 2}]},
      {"path": "$.spec.containers[0]", "fields": [{"number": 77, "wireType": 0}]}])"))
      << t.unknown_fields.dump();
  EXPECT_EQ(t.object["spec"]["containers"][0], (json{{"name", "c"}, {"resources", json::object()}}));
  EXPECT_EQ(t.object["metadata"], (json{{"creationTimestamp", nullptr}}));
}

TEST(TypedJson, NotCoveredAndMalformed) {
  EXPECT_EQ(DecodeTypedObject("v1", "RangeAllocation", AsBytes(std::string("\x0a\x00", 2))).status,
            TypedObject::kNotCovered);
  EXPECT_EQ(DecodeTypedObject("apps/v1beta1", "Deployment", {}).status, TypedObject::kNotCovered);
  EXPECT_FALSE(HasTypedSchema("example.com/v1", "Widget"));
  EXPECT_TRUE(HasTypedSchema("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"));
  EXPECT_EQ(TypedKinds().size(), 22u);
  // Field 2 (spec) claims 100 bytes that are not there.
  const TypedObject t = DecodeTypedObject("v1", "Pod", AsBytes(std::string("\x12\x64\x0a", 3)));
  EXPECT_EQ(t.status, TypedObject::kMalformed);
  EXPECT_NE(t.error.find("k8s.io.api.core.v1.Pod"), std::string::npos) << t.error;
  // An empty message is a valid, empty object.
  const TypedObject empty = DecodeTypedObject("v1", "ConfigMap", {});
  ASSERT_EQ(empty.status, TypedObject::kOk);
  EXPECT_EQ(empty.object, (json{{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"creationTimestamp", nullptr}}}}));
}

TEST(TypedJson, TimeEdges) {
  auto lease_time = [](int64_t s, int64_t ns) {
    Pb obj = Pb().m(2, Pb().m(3, Time(s, ns)).m(4, Pb().i(1, s)));
    TypedObject t = DecodeTypedObject("coordination.k8s.io/v1", "Lease", AsBytes(obj.b));
    EXPECT_EQ(t.status, TypedObject::kOk);
    return std::make_pair(t.object["spec"]["acquireTime"].get<std::string>(), t.object["spec"]["renewTime"].get<std::string>());
  };
  EXPECT_EQ(lease_time(0, 0), std::make_pair(std::string("1970-01-01T00:00:00.000000Z"), std::string("1970-01-01T00:00:00.000000Z")));
  EXPECT_EQ(lease_time(-1, 999999999).first, "1969-12-31T23:59:59.999999Z");
  EXPECT_EQ(lease_time(951782400, 0).first, "2000-02-29T00:00:00.000000Z");
  EXPECT_EQ(lease_time(253402300799, 0).first, "9999-12-31T23:59:59.000000Z");
  // Extreme values format without overflow.
  EXPECT_FALSE(lease_time(INT64_MAX, 999999999).first.empty());
  EXPECT_FALSE(lease_time(INT64_MIN, -999999999).first.empty());
}

TEST(TypedJson, DescribeValuePutsTheObjectBesideMetadataAndRaw) {
  Pb obj = Pb().m(1, Meta("cfg", "default", "c1")).kv(2, "k", "v");
  std::string tm;
  AppendBytesField(&tm, 1, "v1");
  AppendBytesField(&tm, 2, "ConfigMap");
  std::string value(kProtobufMagic);
  AppendBytesField(&value, 1, tm);
  AppendBytesField(&value, 2, obj.b);
  const json d = DescribeValue(AsBytes(value));
  EXPECT_EQ(d["object"], (json{{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", MetaJson("cfg", "default", "c1")},
                               {"data", {{"k", "v"}}}}))
      << d.dump(2);
  EXPECT_EQ(d["metadata"]["name"], "cfg");
  EXPECT_EQ(d["raw"], Base64(AsBytes(obj.b)));
  EXPECT_FALSE(d.contains("unknownFields"));
  EXPECT_FALSE(d.contains("objectError"));

  // A covered kind whose bytes do not decode: objectError, metadata error, raw kept.
  std::string bad(kProtobufMagic);
  AppendBytesField(&bad, 1, tm);
  AppendBytesField(&bad, 2, std::string("\x12\x64\x0a", 3));
  const json b = DescribeValue(AsBytes(bad));
  EXPECT_FALSE(b.contains("object"));
  EXPECT_TRUE(b.contains("objectError"));
  EXPECT_TRUE(b.contains("raw"));

  // Not covered: as before (no object).
  std::string other_tm;
  AppendBytesField(&other_tm, 1, "v1");
  AppendBytesField(&other_tm, 2, "RangeAllocation");
  std::string other(kProtobufMagic);
  AppendBytesField(&other, 1, other_tm);
  AppendBytesField(&other, 2, Pb().m(1, Meta("r", "", "u")).b);
  const json o = DescribeValue(AsBytes(other));
  EXPECT_FALSE(o.contains("object"));
  EXPECT_FALSE(o.contains("objectError"));
  EXPECT_EQ(o["metadata"]["name"], "r");
}

}  // namespace
}  // namespace etcdsafe::k8s
