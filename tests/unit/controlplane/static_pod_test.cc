// The etcd and kube-apiserver static-pod manifests as kubeadm 1.28 writes them: flags,
// hostPath mapping, defaults and the one-line errors for broken manifests.
#include "controlplane/static_pod.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::controlplane {
namespace {

// /etc/kubernetes/manifests/etcd.yaml of a second control-plane node joined by kubeadm 1.28.
const char* kJoinedEtcd = R"(apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://10.0.1.11:2379
  creationTimestamp: null
  labels:
    component: etcd
    tier: control-plane
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://10.0.1.11:2379
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --client-cert-auth=true
    - --data-dir=/var/lib/etcd
    - --experimental-initial-corrupt-check=true
    - --experimental-watch-progress-notify-interval=5s
    - --initial-advertise-peer-urls=https://10.0.1.11:2380
    - --initial-cluster=cp-2=https://10.0.1.11:2380,cp-1=https://10.0.1.10:2380
    - --initial-cluster-state=existing
    - --key-file=/etc/kubernetes/pki/etcd/server.key
    - --listen-client-urls=https://127.0.0.1:2379,https://10.0.1.11:2379
    - --listen-metrics-urls=http://127.0.0.1:2381
    - --listen-peer-urls=https://10.0.1.11:2380
    - --name=cp-2
    - --peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt
    - --peer-client-cert-auth=true
    - --peer-key-file=/etc/kubernetes/pki/etcd/peer.key
    - --peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    - --snapshot-count=10000
    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    image: registry.k8s.io/etcd:3.5.9-0
    imagePullPolicy: IfNotPresent
    livenessProbe:
      failureThreshold: 8
      httpGet:
        host: 127.0.0.1
        path: /health?exclude=NOSPACE&serializable=true
        port: 2381
        scheme: HTTP
      initialDelaySeconds: 10
      periodSeconds: 10
      timeoutSeconds: 15
    name: etcd
    resources:
      requests:
        cpu: 100m
        memory: 100Mi
    volumeMounts:
    - mountPath: /var/lib/etcd
      name: etcd-data
    - mountPath: /etc/kubernetes/pki/etcd
      name: etcd-certs
  hostNetwork: true
  priority: 2000001000
  priorityClassName: system-node-critical
  securityContext:
    seccompProfile:
      type: RuntimeDefault
  volumes:
  - hostPath:
      path: /etc/kubernetes/pki/etcd
      type: DirectoryOrCreate
    name: etcd-certs
  - hostPath:
      path: /mnt/etcd-disk/data
      type: DirectoryOrCreate
    name: etcd-data
status: {}
)";

const char* kApiServer = R"(apiVersion: v1
kind: Pod
metadata:
  labels:
    component: kube-apiserver
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --advertise-address=10.0.1.10
    - --etcd-servers=https://127.0.0.1:2379
    - --secure-port=16443
    image: registry.k8s.io/kube-apiserver:v1.28.2
    name: kube-apiserver
  hostNetwork: true
)";

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  auto p = s.find(from);
  EXPECT_NE(p, std::string::npos) << from;
  if (p != std::string::npos) s.replace(p, from.size(), to);
  return s;
}

TEST(StaticPod, JoinedNodeEtcdManifest) {
  EtcdManifest m = ParseEtcdManifestText(kJoinedEtcd, "etcd.yaml");
  EXPECT_EQ(m.name, "cp-2");
  EXPECT_EQ(m.data_dir, "/var/lib/etcd");
  EXPECT_EQ(m.data_dir_host, "/mnt/etcd-disk/data");  // the hostPath, not the container path
  EXPECT_EQ(m.listen_client_urls, (std::vector<std::string>{"https://127.0.0.1:2379", "https://10.0.1.11:2379"}));
  EXPECT_EQ(m.advertise_client_urls, std::vector<std::string>{"https://10.0.1.11:2379"});
  EXPECT_EQ(m.initial_advertise_peer_urls, std::vector<std::string>{"https://10.0.1.11:2380"});
  EXPECT_EQ(m.listen_peer_urls, std::vector<std::string>{"https://10.0.1.11:2380"});
  EXPECT_EQ(m.initial_cluster, "cp-2=https://10.0.1.11:2380,cp-1=https://10.0.1.10:2380");
  EXPECT_TRUE(m.initial_cluster_given);
  EXPECT_EQ(m.initial_cluster_token, "");  // kubeadm never sets it: etcd's default applies
  EXPECT_EQ(m.initial_cluster_state, "existing");
  EXPECT_EQ(m.cert_file, "/etc/kubernetes/pki/etcd/server.crt");
  EXPECT_EQ(m.key_file, "/etc/kubernetes/pki/etcd/server.key");
  EXPECT_EQ(m.trusted_ca_file, "/etc/kubernetes/pki/etcd/ca.crt");
  EXPECT_EQ(m.peer_cert_file, "/etc/kubernetes/pki/etcd/peer.crt");
  EXPECT_EQ(m.peer_key_file, "/etc/kubernetes/pki/etcd/peer.key");
  EXPECT_EQ(m.peer_trusted_ca_file, "/etc/kubernetes/pki/etcd/ca.crt");
  EXPECT_TRUE(m.client_tls());
  EXPECT_EQ(m.LocalClientUrl(), "https://127.0.0.1:2379");
  EXPECT_EQ(m.Host("/etc/kubernetes/pki/etcd/ca.crt"), "/etc/kubernetes/pki/etcd/ca.crt");
  EXPECT_EQ(m.Host("/var/lib/etcd/member"), "/mnt/etcd-disk/data/member");
  EXPECT_EQ(m.Host("/var/lib/etcdX"), "/var/lib/etcdX");  // not under the mount: component boundary
  EXPECT_EQ(m.container.command.front(), "etcd");
  EXPECT_EQ(m.container.Flag("--snapshot-count"), "10000");
}

TEST(StaticPod, FirstNodeDefaultsAndArgs) {
  // kubeadm init writes --initial-cluster with only itself; without it etcd bootstraps
  // "<name>=<advertise peer urls>", which is what we derive. Flags may also be in args.
  std::string text = Replace(kJoinedEtcd, "    - --initial-cluster=cp-2=https://10.0.1.11:2380,cp-1=https://10.0.1.10:2380\n", "");
  text = Replace(text, "    - --name=cp-2\n", "");
  text = Replace(text, "    image: registry", "    args:\n    - --name=cp-9\n    - --initial-cluster-token=tok-1\n    image: registry");
  EtcdManifest m = ParseEtcdManifestText(text, "etcd.yaml");
  EXPECT_EQ(m.name, "cp-9");
  EXPECT_EQ(m.initial_cluster, "cp-9=https://10.0.1.11:2380");
  EXPECT_FALSE(m.initial_cluster_given);
  EXPECT_EQ(m.initial_cluster_token, "tok-1");
}

void ExpectError(const std::string& text, ErrorCode code, const std::string& needle) {
  try {
    ParseEtcdManifestText(text, "/r/etc/kubernetes/manifests/etcd.yaml");
    ADD_FAILURE() << "accepted; expected " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    std::string msg = e.what();
    EXPECT_EQ(msg.rfind("/r/etc/kubernetes/manifests/etcd.yaml: ", 0), 0u) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST(StaticPod, MissingFlagsAreOneLineErrorsNamingFileAndFlag) {
  ExpectError(Replace(kJoinedEtcd, "    - --data-dir=/var/lib/etcd\n", ""), ErrorCode::kInvalidArgument, "--data-dir");
  ExpectError(Replace(kJoinedEtcd, "    - --name=cp-2\n", ""), ErrorCode::kInvalidArgument, "no --name flag");
  ExpectError(Replace(kJoinedEtcd, "    - --initial-advertise-peer-urls=https://10.0.1.11:2380\n", ""),
              ErrorCode::kInvalidArgument, "--initial-advertise-peer-urls");
  std::string no_client = Replace(kJoinedEtcd, "    - --advertise-client-urls=https://10.0.1.11:2379\n", "");
  no_client = Replace(no_client, "    - --listen-client-urls=https://127.0.0.1:2379,https://10.0.1.11:2379\n", "");
  ExpectError(no_client, ErrorCode::kInvalidArgument, "--advertise-client-urls");
  ExpectError(Replace(kJoinedEtcd, "    - --cert-file=/etc/kubernetes/pki/etcd/server.crt\n", ""),
              ErrorCode::kInvalidArgument, "--cert-file");
  ExpectError(Replace(kJoinedEtcd, "    - mountPath: /var/lib/etcd\n      name: etcd-data\n", ""),
              ErrorCode::kInvalidArgument, "not on a hostPath volume");
  ExpectError(kApiServer, ErrorCode::kInvalidArgument, "no container named etcd");
  ExpectError("kind: Deployment\n", ErrorCode::kInvalidArgument, "expected Pod");
  ExpectError("spec: [unclosed\n", ErrorCode::kInvalidArgument, "not valid YAML");
  ExpectError("- a\n- b\n", ErrorCode::kInvalidArgument, "mapping");
  ExpectError("kind: Pod\nspec:\n  containers:\n  - name: etcd\n    command: etcd --name=x\n",
              ErrorCode::kInvalidArgument, "command is not a list");
}

TEST(StaticPod, ContainerFoundByCommandWhenRenamed) {
  EXPECT_EQ(ParseEtcdManifestText(Replace(kJoinedEtcd, "    name: etcd\n    resources", "    name: main\n    resources"),
                                  "etcd.yaml")
                .name,
            "cp-2");
}

TEST(StaticPod, MissingFileIsNotFound) {
  testutil::TempDir dir;
  try {
    ParseEtcdManifest(dir.Sub("etcd.yaml"));
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find(dir.Sub("etcd.yaml") + ": no such file"), std::string::npos) << e.what();
  }
  testutil::WriteFile(dir.Sub("etcd.yaml"), kJoinedEtcd);
  EXPECT_EQ(ParseEtcdManifest(dir.Sub("etcd.yaml")).name, "cp-2");
}

TEST(StaticPod, ApiServerReadyz) {
  testutil::TempDir dir;
  EXPECT_EQ(ApiServerReadyzUrl(dir.Sub("kube-apiserver.yaml")), std::nullopt);
  testutil::WriteFile(dir.Sub("kube-apiserver.yaml"), kApiServer);
  EXPECT_EQ(ApiServerReadyzUrl(dir.Sub("kube-apiserver.yaml")), "https://127.0.0.1:16443/readyz");
}

TEST(StaticPod, SplitJoin) {
  EXPECT_EQ(SplitComma("a,,b,"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(JoinComma({"a", "b"}), "a,b");
  EXPECT_TRUE(SplitComma("").empty());
}

}  // namespace
}  // namespace etcdsafe::controlplane
