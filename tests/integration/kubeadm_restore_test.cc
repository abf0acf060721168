// restore --kubeadm end to end on kubeadm-shaped nodes under temp roots. A fake kubelet
// (fake_kubelet.cc) runs the etcd each static-pod manifest describes (TLS, free loopback
// ports written into the manifests from the start) and stops it when the file goes.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <sstream>
#include <thread>

#include "client/etcd_client.h"
#include "testutil/cli.h"
#include "testutil/etcd_server.h"
#include "testutil/process.h"
#include "testutil/temp_dir.h"
#include "testutil/tls_certs.h"

namespace etcdsafe::testutil {
namespace {

const char* kSteps[] = {"preflight", "last-snapshot", "stop", "move-aside", "restore", "swap", "start", "health"};

std::string Replace(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
  return s;
}

// As kubeadm 1.28 writes /etc/kubernetes/manifests/etcd.yaml (flags etcd 3.4 knows).
const char* kEtcdManifest = R"(apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/etcd.advertise-client-urls: https://127.0.0.1:@CLIENT@
  labels:
    component: etcd
    tier: control-plane
  name: etcd
  namespace: kube-system
spec:
  containers:
  - command:
    - etcd
    - --advertise-client-urls=https://127.0.0.1:@CLIENT@
    - --cert-file=/etc/kubernetes/pki/etcd/server.crt
    - --client-cert-auth=true
    - --data-dir=/var/lib/etcd
    - --initial-advertise-peer-urls=https://127.0.0.1:@PEER@
    - --initial-cluster=@CLUSTER@
    - --key-file=/etc/kubernetes/pki/etcd/server.key
    - --listen-client-urls=https://127.0.0.1:@CLIENT@
    - --listen-peer-urls=https://127.0.0.1:@PEER@
    - --name=@NAME@
    - --peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt
    - --peer-client-cert-auth=true
    - --peer-key-file=/etc/kubernetes/pki/etcd/peer.key
    - --peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    - --snapshot-count=10000
    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt
    image: registry.k8s.io/etcd:3.5.9-0
    imagePullPolicy: IfNotPresent
    name: etcd
    volumeMounts:
    - mountPath: /var/lib/etcd
      name: etcd-data
    - mountPath: /etc/kubernetes/pki/etcd
      name: etcd-certs
  hostNetwork: true
  priorityClassName: system-node-critical
  volumes:
  - hostPath:
      path: /etc/kubernetes/pki/etcd
      type: DirectoryOrCreate
    name: etcd-certs
  - hostPath:
      path: /var/lib/etcd
      type: DirectoryOrCreate
    name: etcd-data
status: {}
)";

const char* kApiServerManifest = R"(apiVersion: v1
kind: Pod
metadata:
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --etcd-servers=https://127.0.0.1:@CLIENT@
    - --secure-port=@API@
    name: kube-apiserver
  hostNetwork: true
)";

// One kubeadm-shaped node: ROOT/etc/kubernetes/{manifests,pki/etcd}, ROOT/var/lib/etcd.
struct Node {
  std::unique_ptr<TempDir> dir = std::make_unique<TempDir>();
  std::string name;
  int client = FreePort(), peer = FreePort();
  pid_t kubelet = -1;
  const TlsFiles* certs = nullptr;

  std::string root() const { return dir->path(); }
  std::string manifests() const { return root() + "/etc/kubernetes/manifests"; }
  std::string data() const { return root() + "/var/lib/etcd"; }
  std::string peer_url() const { return "https://127.0.0.1:" + std::to_string(peer); }

  void Setup(const std::string& node_name, const TlsFiles& tls, const std::string& cluster) {
    name = node_name;
    certs = &tls;
    std::string pki = root() + "/etc/kubernetes/pki/etcd";
    ASSERT_EQ(RunCommand("mkdir -p " + ShellQuote(pki) + " " + ShellQuote(manifests()) + " " +
                         ShellQuote(root() + "/var/lib")),
              0);
    for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{{tls.ca, "ca.crt"},
                                                                            {tls.server_cert, "server.crt"},
                                                                            {tls.server_key, "server.key"},
                                                                            {tls.server_cert, "peer.crt"},
                                                                            {tls.server_key, "peer.key"}}) {
      ASSERT_EQ(RunCommand("cp " + ShellQuote(from) + " " + ShellQuote(pki + "/" + to)), 0);
    }
    std::string m = Replace(kEtcdManifest, "@CLIENT@", std::to_string(client));
    m = Replace(m, "@PEER@", std::to_string(peer));
    m = Replace(m, "@NAME@", name);
    m = Replace(m, "@CLUSTER@", cluster.empty() ? name + "=" + peer_url() : cluster);
    WriteFile(manifests() + "/etcd.yaml", m);
    std::string api = Replace(kApiServerManifest, "@CLIENT@", std::to_string(client));
    WriteFile(manifests() + "/kube-apiserver.yaml", Replace(api, "@API@", std::to_string(FreePort())));
  }

  void StartKubelet() {
    kubelet = SpawnLogged({FAKE_KUBELET, "--manifests", manifests(), "--root", root()}, {},
                          root() + "/kubelet.log");
  }

  ~Node() {
    if (kubelet > 0) {
      kill(kubelet, SIGTERM);
      waitpid(kubelet, nullptr, 0);
    }
  }

  client::ClientConfig Config() const {
    client::ClientConfig c;
    c.endpoints = {"https://127.0.0.1:" + std::to_string(client)};
    c.cacert = certs->ca;
    c.cert = certs->client_cert;
    c.key = certs->client_key;
    c.dial_timeout = std::chrono::milliseconds(1000);
    c.command_timeout = std::chrono::milliseconds(5000);
    return c;
  }

  // Waits until a linearizable read passes; false after `seconds`.
  bool WaitHealthy(int seconds = 60) const {
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < end) {
      try {
        client::EtcdClient::Connect(Config())->Health();
        return true;
      } catch (const std::exception&) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    return false;
  }

  KvDump Dump() const {
    auto c = client::EtcdClient::Connect(Config());
    return DumpAll(*c);
  }
  int64_t Revision() const { return client::EtcdClient::Connect(Config())->EndpointStatus().header.revision; }

  std::string Log() const {
    std::string out;
    RunCommand("tail -n 20 " + ShellQuote(root() + "/kubelet.log") + " " + ShellQuote(root() + "/var/log/etcd.yaml.log"),
               &out);
    return out;
  }
};

bool Exists(const std::string& p) {
  struct stat st {};
  return lstat(p.c_str(), &st) == 0;
}

CmdResult Etcdsafe(const std::vector<std::string>& args, const std::string& env = "") {
  return Exec(ETCDSAFE_BINARY, args, env);
}

// Paths (not under member/, which a running etcd changes), types, modes, owners, and the
// manifests' hashes: what a dry run or a refused restore must leave as it was.
std::string TreeSignature(const Node& n) {
  std::string out;
  RunCommand("cd " + ShellQuote(n.root()) +
                 " && find . -path ./var/log -prune -o -path '*/member/*' -prune -o -name kubelet.log -prune -o "
                 "-printf '%p %y %m %U:%G\\n' | sort && sha256sum etc/kubernetes/manifests/*",
             &out);
  return out;
}

class KubeadmRestore : public ::testing::Test {
 protected:
  void SetUp() override {
    tls_ = MakeTestCerts(certs_dir_.path());
    node_.Setup("cp-1", tls_, "");
    node_.StartKubelet();
    ASSERT_TRUE(node_.WaitHealthy()) << node_.Log();
    auto c = client::EtcdClient::Connect(node_.Config());
    for (int i = 0; i < 50; i++) c->Put("/registry/configmaps/default/cm-" + std::to_string(i), "v" + std::to_string(i));
    c->Put("/registry/namespaces/kube-system", "ns");
    snapshot_ = certs_dir_.Sub("snap.db");
    CmdResult r = Etcdsafe({"snapshot", "save", snapshot_, "--endpoints", node_.Config().endpoints[0], "--cacert",
                            tls_.ca, "--cert", tls_.client_cert, "--key", tls_.client_key});
    ASSERT_EQ(r.code, 0) << r.err;
    at_snapshot_ = node_.Dump();
    snapshot_revision_ = node_.Revision();
    // Written after the snapshot: gone after a restore, there when the old data runs.
    c->Put("/registry/configmaps/default/after-snapshot", "x");
    c->DeleteRange("/registry/configmaps/default/cm-0");
    after_ = node_.Dump();
    // kubeadm's data dir is 0700 root; give it another owner to see that it is kept.
    ASSERT_EQ(chown(node_.data().c_str(), 1234, 2345), 0);
  }

  std::vector<std::string> Args(std::vector<std::string> extra = {}) const {
    return Concat({"restore", "--kubeadm", "--snapshot", snapshot_, "--root", node_.root(), "--wait-timeout", "60"},
                  extra);
  }

  // Data is either the snapshot's (restored) or the old one's; returns which.
  std::string WhichData() const {
    KvDump d = node_.Dump();
    if (d == at_snapshot_) return "restored";
    if (d == after_) return "old";
    return "neither";
  }

  TempDir certs_dir_;
  TlsFiles tls_;
  Node node_;
  std::string snapshot_;
  KvDump at_snapshot_, after_;
  int64_t snapshot_revision_ = 0;
};

TEST_F(KubeadmRestore, SingleNodeEndToEnd) {
  CmdResult r = Etcdsafe(Args({"--yes"}));
  ASSERT_EQ(r.code, 0) << r.out << r.err << node_.Log();
  ASSERT_TRUE(node_.WaitHealthy()) << node_.Log();
  EXPECT_EQ(node_.Dump(), at_snapshot_);  // keys, values and mod revisions as in the snapshot
  EXPECT_GE(node_.Revision(), snapshot_revision_ + 1000000000) << "revision not bumped";
  for (const char* step : kSteps) EXPECT_NE(r.out.find(step), std::string::npos) << step << "\n" << r.out;
  EXPECT_NE(r.err.find("API server"), std::string::npos) << r.err;  // /readyz: not reachable, skipped
  // The old data dir is kept beside it, with its db; so is the last snapshot of the old etcd.
  CmdResult ls = Shell("ls -d " + ShellQuote(node_.root()) + "/var/lib/etcd.etcdsafe-old-*/member/snap/db " +
                       ShellQuote(node_.root()) + "/var/lib/etcd.etcdsafe-last-*.db");
  EXPECT_EQ(ls.code, 0) << ls.err;
  struct stat st {};
  ASSERT_EQ(stat(node_.data().c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 2345u);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(stat((node_.data() + "/member/snap/db").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  // Manifests back, nothing left of the run.
  EXPECT_TRUE(Exists(node_.manifests() + "/etcd.yaml"));
  EXPECT_TRUE(Exists(node_.manifests() + "/kube-apiserver.yaml"));
  EXPECT_FALSE(Exists(node_.root() + "/var/lib/.etcdsafe-restore-journal.json"));
}

TEST_F(KubeadmRestore, DryRunChangesNothing) {
  std::string before = TreeSignature(node_);
  CmdResult r = Etcdsafe(Args({"--dry-run"}));
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  for (const char* step : kSteps) EXPECT_NE(r.out.find(step), std::string::npos) << step << "\n" << r.out;
  EXPECT_NE(r.out.find("--bump-revision 1000000000 --mark-compacted"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(node_.data() + " " + node_.root() + "/var/lib/etcd.etcdsafe-old-"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--name cp-1"), std::string::npos) << r.out;
  EXPECT_EQ(TreeSignature(node_), before);
  EXPECT_EQ(WhichData(), "old");
}

TEST_F(KubeadmRestore, RefusesWithoutYesWhenNotATerminal) {
  std::string before = TreeSignature(node_);
  CmdResult r = Etcdsafe(Args());
  EXPECT_EQ(r.code, 128) << r.err;
  EXPECT_TRUE(IsOneLineError(r)) << r.err;
  EXPECT_NE(r.err.find("--yes"), std::string::npos) << r.err;
  EXPECT_EQ(TreeSignature(node_), before);
}

TEST_F(KubeadmRestore, BadInputMovesNothing) {
  std::string before = TreeSignature(node_);
  // No etcd manifest.
  CmdResult r = Etcdsafe(Args({"--yes", "--manifests-dir", "/etc/kubernetes/nowhere"}));
  EXPECT_EQ(r.code, 10) << r.err;
  EXPECT_TRUE(IsOneLineError(r)) << r.err;
  EXPECT_NE(r.err.find("etc/kubernetes/nowhere/etcd.yaml: no such file"), std::string::npos) << r.err;
  // A manifest without --data-dir.
  ASSERT_EQ(RunCommand("mkdir -p " + ShellQuote(node_.root() + "/etc/kubernetes/broken")), 0);
  std::string text = ReadFile(node_.manifests() + "/etcd.yaml");
  WriteFile(node_.root() + "/etc/kubernetes/broken/etcd.yaml", Replace(text, "    - --data-dir=/var/lib/etcd\n", ""));
  r = Etcdsafe(Args({"--yes", "--manifests-dir", "/etc/kubernetes/broken"}));
  EXPECT_EQ(r.code, 128) << r.err;
  EXPECT_TRUE(IsOneLineError(r)) << r.err;
  EXPECT_NE(r.err.find("broken/etcd.yaml: the etcd container has no --data-dir flag"), std::string::npos) << r.err;
  RunCommand("rm -r " + ShellQuote(node_.root() + "/etc/kubernetes/broken"));
  // A snapshot of another cluster.
  EtcdServerOptions oo;
  oo.name = "elsewhere";
  EtcdServer other(oo);
  std::string other_snap = certs_dir_.Sub("other.db");
  ASSERT_EQ(Etcdsafe({"snapshot", "save", other_snap, "--endpoints", other.client_url()}).code, 0);
  r = Etcdsafe({"restore", "--kubeadm", "--snapshot", other_snap, "--root", node_.root(), "--yes"});
  EXPECT_EQ(r.code, 128) << r.err;
  EXPECT_TRUE(IsOneLineError(r)) << r.err;
  EXPECT_NE(r.err.find("another cluster"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--allow-other-cluster"), std::string::npos) << r.err;
  EXPECT_EQ(TreeSignature(node_), before);
  EXPECT_EQ(WhichData(), "old");
}

// Not enough free space beside the data dir: a 16 MiB tmpfs over ROOT/var/lib in a private
// mount namespace (the running etcd keeps its own view). One line, exit 1, nothing moved.
TEST_F(KubeadmRestore, NotEnoughDiskMovesNothing) {
  std::string before = TreeSignature(node_);
  std::string lib = node_.root() + "/var/lib";
  std::string cmd = std::string(ETCDSAFE_BINARY);
  for (const auto& a : Args({"--yes"})) cmd += " " + ShellQuote(a);
  std::string script = "mount -t tmpfs -o size=16m tmpfs " + ShellQuote(lib) + " || exit 99; mkdir -m 0700 " +
                       ShellQuote(lib + "/etcd") + "; " + cmd + "; echo rc=$?";
  CmdResult r = Exec("unshare", {"-m", "sh", "-c", script});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("rc=1\n"), std::string::npos) << r.out << r.err;
  EXPECT_TRUE(IsOneLineError(r)) << r.err;
  EXPECT_NE(r.err.find("not enough free space on " + lib), std::string::npos) << r.err;
  EXPECT_EQ(TreeSignature(node_), before);
  EXPECT_EQ(WhichData(), "old");
}

// kill -9 (the hook's _exit(137)) right after each step, then the same command again:
// etcd always ends up running, on the old data or on the restored data, never neither.
TEST_F(KubeadmRestore, CrashAfterEachStepThenRerun) {
  for (const char* step : kSteps) {
    SCOPED_TRACE(step);
    CmdResult crash = Etcdsafe(Args({"--yes"}), std::string("ETCDSAFE_TEST_CRASH_AFTER=") + step);
    ASSERT_EQ(crash.code, 137) << crash.out << crash.err;
    ASSERT_TRUE(Exists(node_.root() + "/var/lib/.etcdsafe-restore-journal.json"));
    CmdResult rerun = Etcdsafe(Args({"--yes"}));
    std::string outcome = rerun.code == 0 ? "finished" : "rolled back";
    EXPECT_TRUE(rerun.code == 0 || rerun.code == 1) << rerun.out << rerun.err;
    EXPECT_NE((rerun.out + rerun.err).find(outcome), std::string::npos) << rerun.out << rerun.err;
    ASSERT_TRUE(node_.WaitHealthy()) << node_.Log();
    std::string which = WhichData();
    EXPECT_NE(which, "neither");
    // Swapped (swap, start, health) → finished on the restored data; before → rolled back.
    bool swapped = std::string(step) == "swap" || std::string(step) == "start" || std::string(step) == "health";
    EXPECT_EQ(which, swapped ? "restored" : "old") << rerun.err;
    EXPECT_FALSE(Exists(node_.root() + "/var/lib/.etcdsafe-restore-journal.json"));
    EXPECT_TRUE(Exists(node_.manifests() + "/etcd.yaml"));
    EXPECT_TRUE(Exists(node_.manifests() + "/kube-apiserver.yaml"));
    if (which == "restored") {
      // Back to the old data for the next round: write what came after the snapshot again.
      auto c = client::EtcdClient::Connect(node_.Config());
      c->Put("/registry/configmaps/default/after-snapshot", "x");
      c->DeleteRange("/registry/configmaps/default/cm-0");
      after_ = node_.Dump();
    }
  }
}

// Three control-plane nodes, one cluster; the plan printed on cp-1 is run on every node.
TEST(KubeadmRestorePlan, ThreeNodesFromPlanFormOneCluster) {
  TempDir certs_dir;
  TlsFiles tls = MakeTestCerts(certs_dir.path());
  std::vector<std::unique_ptr<Node>> nodes;
  for (int i = 0; i < 3; i++) nodes.push_back(std::make_unique<Node>());
  std::string cluster;
  for (int i = 0; i < 3; i++) {
    cluster += (i ? "," : "") + std::string("cp-") + std::to_string(i + 1) + "=" + nodes[i]->peer_url();
  }
  for (int i = 0; i < 3; i++) nodes[i]->Setup("cp-" + std::to_string(i + 1), tls, cluster);
  for (auto& n : nodes) n->StartKubelet();
  for (auto& n : nodes) ASSERT_TRUE(n->WaitHealthy()) << n->Log();
  {
    auto c = client::EtcdClient::Connect(nodes[0]->Config());
    for (int i = 0; i < 30; i++) c->Put("/registry/pods/default/p" + std::to_string(i), std::string(100, 'a' + i % 26));
  }
  std::string snap = certs_dir.Sub("snap.db");
  ASSERT_EQ(Etcdsafe({"snapshot", "save", snap, "--endpoints", nodes[0]->Config().endpoints[0], "--cacert", tls.ca,
                      "--cert", tls.client_cert, "--key", tls.client_key})
                .code,
            0);
  KvDump at_snapshot = nodes[0]->Dump();
  client::EtcdClient::Connect(nodes[0]->Config())->Put("/registry/pods/default/after", "x");

  CmdResult plan = Etcdsafe({"restore", "--kubeadm", "--plan", "--snapshot", snap, "--initial-cluster", cluster,
                             "--root", nodes[0]->root()});
  ASSERT_EQ(plan.code, 0) << plan.err;
  std::vector<std::string> commands;
  std::stringstream ss(plan.out);
  for (std::string line; std::getline(ss, line);) {
    if (!line.empty() && line[0] != '#') commands.push_back(line);
  }
  ASSERT_EQ(commands.size(), 3u) << plan.out;
  for (int i = 0; i < 3; i++) {
    EXPECT_NE(commands[i].find("--name cp-" + std::to_string(i + 1)), std::string::npos) << commands[i];
    EXPECT_NE(commands[i].find("--initial-cluster-token etcdsafe-restore-"), std::string::npos) << commands[i];
  }
  // A command run on the wrong node is refused before anything moves.
  CmdResult wrong = Shell(Replace(commands[1], "etcdsafe ", std::string(ETCDSAFE_BINARY) + " ") + " --root " +
                          ShellQuote(nodes[0]->root()) + " --wait-timeout 60");
  EXPECT_EQ(wrong.code, 128) << wrong.err;
  EXPECT_NE(wrong.err.find("member cp-1"), std::string::npos) << wrong.err;
  // Any order: cp-3, cp-1, cp-2.
  for (int i : {2, 0, 1}) {
    CmdResult r = Shell(Replace(commands[i], "etcdsafe ", std::string(ETCDSAFE_BINARY) + " ") + " --root " +
                        ShellQuote(nodes[i]->root()) + " --wait-timeout 60");
    ASSERT_EQ(r.code, 0) << commands[i] << "\n" << r.out << r.err << nodes[i]->Log();
  }
  for (auto& n : nodes) ASSERT_TRUE(n->WaitHealthy(90)) << n->Log();
  auto c = client::EtcdClient::Connect(nodes[1]->Config());
  auto members = c->MemberList();
  EXPECT_EQ(members.size(), 3u);
  uint64_t cluster_id = 0;
  for (auto& n : nodes) {
    auto nc = client::EtcdClient::Connect(n->Config());
    auto st = nc->EndpointStatus();
    if (cluster_id == 0) cluster_id = st.header.cluster_id;
    EXPECT_EQ(st.header.cluster_id, cluster_id);
    EXPECT_EQ(DumpAll(*nc), at_snapshot);
  }
}

}  // namespace
}  // namespace etcdsafe::testutil

namespace etcdsafe::testutil {
namespace {

// restore --systemd-unit: a fake `systemctl` on PATH writes the wanted state for
// fake_kubelet's unit and waits until the supervisor reports it.
TEST(SystemdRestore, StopSwapStartThroughSystemctl) {
  TempDir root;
  std::string units = root.Sub("units"), bin = root.Sub("bin"), data = root.path() + "/var/lib/etcd";
  ASSERT_EQ(RunCommand("mkdir -p " + ShellQuote(units) + " " + ShellQuote(bin) + " " + ShellQuote(root.path() + "/var/lib")), 0);
  int client = FreePort(), peer = FreePort();
  std::string client_url = "http://127.0.0.1:" + std::to_string(client), peer_url = "http://127.0.0.1:" + std::to_string(peer);
  WriteFile(units + "/etcd.service.cmd", "/usr/bin/etcd\n--name=n1\n--data-dir=" + data + "\n--listen-client-urls=" +
                                             client_url + "\n--advertise-client-urls=" + client_url +
                                             "\n--listen-peer-urls=" + peer_url + "\n--initial-advertise-peer-urls=" +
                                             peer_url + "\n--initial-cluster=n1=" + peer_url + "\n");
  WriteFile(units + "/etcd.service.want", "active\n");
  WriteFile(bin + "/systemctl",
            "#!/bin/sh\n# fake systemctl: stop|start UNIT\necho \"$@\" >> " + ShellQuote(units + "/calls") +
                "\ncase $1 in stop) s=inactive;; start) s=active;; *) exit 2;; esac\n"
                "echo $s > " + ShellQuote(units) + "/$2.want\nfor i in $(seq 100); do\n"
                "  [ \"$(cat " + ShellQuote(units) + "/$2.state 2>/dev/null)\" = $s ] && exit 0\n  sleep 0.1\ndone\nexit 1\n");
  ASSERT_EQ(chmod((bin + "/systemctl").c_str(), 0755), 0);
  pid_t kubelet = SpawnLogged({FAKE_KUBELET, "--unit", "etcd.service", "--unit-dir", units, "--root", root.path()}, {},
                              root.Sub("kubelet.log"));
  client::ClientConfig cfg;
  cfg.endpoints = {client_url};
  cfg.command_timeout = std::chrono::milliseconds(5000);
  auto healthy = [&] {
    for (int i = 0; i < 200; i++) {
      try {
        client::EtcdClient::Connect(cfg)->Health();
        return true;
      } catch (const std::exception&) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    return false;
  };
  ASSERT_TRUE(healthy());
  auto c = client::EtcdClient::Connect(cfg);
  for (int i = 0; i < 20; i++) c->Put("/k/" + std::to_string(i), "v");
  std::string snap = root.Sub("snap.db");
  ASSERT_EQ(Etcdsafe({"snapshot", "save", snap, "--endpoints", client_url}).code, 0);
  KvDump at_snapshot = DumpAll(*c);
  c->Put("/k/after", "x");
  c.reset();
  CmdResult r = Exec(ETCDSAFE_BINARY,
                     {"restore", "--systemd-unit", "etcd.service", "--data-dir", "/var/lib/etcd", "--name", "n1",
                      "--initial-advertise-peer-urls", peer_url, "--snapshot", snap, "--root", root.path(),
                      "--endpoints", client_url, "--yes", "--wait-timeout", "60"},
                     "PATH=" + bin + ":/usr/bin:/bin");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  ASSERT_TRUE(healthy());
  c = client::EtcdClient::Connect(cfg);
  EXPECT_EQ(DumpAll(*c), at_snapshot);
  EXPECT_GE(c->EndpointStatus().header.revision, 1000000000);
  EXPECT_EQ(ReadFile(units + "/calls"), "stop etcd.service\nstart etcd.service\n");
  EXPECT_EQ(Shell("ls -d " + ShellQuote(data) + ".etcdsafe-old-*/member/snap/db").code, 0);
  kill(kubelet, SIGTERM);
  waitpid(kubelet, nullptr, 0);
}

}  // namespace
}  // namespace etcdsafe::testutil
