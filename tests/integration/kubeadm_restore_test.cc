// restore --kubeadm end to end on kubeadm-shaped nodes under temp roots. A fake kubelet
// (fake_kubelet.cc) runs the etcd each static-pod manifest describes (TLS, free loopback
// ports written into the manifests from the start) and stops it when the file goes.
// Also: the data dir as its own tmpfs mount (private mount namespace), a stand-in API
// server (python3 https) whose /readyz the restore waits for, and --compact.
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
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
  int client = FreePort(), peer = FreePort(), api = FreePort();
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
    std::string api_manifest = Replace(kApiServerManifest, "@CLIENT@", std::to_string(client));
    WriteFile(manifests() + "/kube-apiserver.yaml", Replace(api_manifest, "@API@", std::to_string(this->api)));
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
    PrepareDataDir();
    if (HasFatalFailure()) return;
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

  // Before the kubelet starts etcd (KubeadmRestoreOnMount puts a filesystem there).
  virtual void PrepareDataDir() {}

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

  // kill -9 (the hook's _exit(137)) right after each step, then the same command again;
  // `check` runs after each round (etcd healthy again).
  void CrashAfterEachStepThenRerun(const std::function<void(const std::string& step)>& check = {}) {
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
      if (check) check(step);
      if (which == "restored") {
        // Back to the old data for the next round: write what came after the snapshot again.
        auto c = client::EtcdClient::Connect(node_.Config());
        c->Put("/registry/configmaps/default/after-snapshot", "x");
        c->DeleteRange("/registry/configmaps/default/cm-0");
        after_ = node_.Dump();
      }
    }
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
TEST_F(KubeadmRestore, CrashAfterEachStepThenRerun) { CrashAfterEachStepThenRerun(); }

dev_t Dev(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return 0;
  return st.st_dev;
}

// The one path a glob matches ("" when none or several).
std::string Only(const std::string& pattern) {
  CmdResult r = Shell("ls -d " + pattern + " 2>/dev/null");
  if (r.code != 0 || r.out.empty() || r.out.find('\n') != r.out.size() - 1) return "";
  return r.out.substr(0, r.out.size() - 1);
}

// etcd on its own disk: ROOT/var/lib/etcd is a tmpfs mount (a mount point cannot be
// renamed, so its entries move instead). This test process enters a private mount
// namespace before anything starts (ctest runs every test in its own process, and no
// thread exists yet), so the fake kubelet, the etcd it starts and the restore all see
// the mount, and the host does not.
class KubeadmRestoreOnMount : public KubeadmRestore {
 protected:
  void PrepareDataDir() override {
    ASSERT_EQ(unshare(CLONE_NEWNS), 0) << "unshare(CLONE_NEWNS): " << strerror(errno)
                                       << " (run one test per process, as ctest does)";
    ASSERT_EQ(mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0) << strerror(errno);
    ASSERT_EQ(mkdir(node_.data().c_str(), 0700), 0) << strerror(errno);
    ASSERT_EQ(mount("tmpfs", node_.data().c_str(), "tmpfs", 0, "size=256m,mode=0700"), 0) << strerror(errno);
    mounted_ = true;
    mount_dev_ = Dev(node_.data());
    ASSERT_NE(mount_dev_, Dev(node_.root() + "/var/lib"));
  }

  void TearDown() override {
    if (node_.kubelet > 0) {
      kill(node_.kubelet, SIGTERM);
      waitpid(node_.kubelet, nullptr, 0);
      node_.kubelet = -1;
    }
    if (mounted_) umount2(node_.data().c_str(), MNT_DETACH);  // before the temp dir is removed
  }

  // Still a mount point on the same filesystem, and nothing of the restore beside it.
  void ExpectStillTheMount() {
    EXPECT_EQ(Dev(node_.data()), mount_dev_);
    EXPECT_NE(Dev(node_.root() + "/var/lib"), mount_dev_);
    CmdResult ls = Shell("ls -a " + ShellQuote(node_.root() + "/var/lib"));
    EXPECT_EQ(ls.out.find("etcd.etcdsafe-"), std::string::npos) << ls.out;
    EXPECT_EQ(Only(ShellQuote(node_.data()) + "/.etcdsafe-new-*"), "");
  }

  bool mounted_ = false;
  dev_t mount_dev_ = 0;
};

TEST_F(KubeadmRestoreOnMount, DataDirIsAMountPoint) {
  CmdResult dry = Etcdsafe(Args({"--dry-run"}));
  ASSERT_EQ(dry.code, 0) << dry.out << dry.err;
  EXPECT_NE(dry.out.find("(a mount point: its entries move, it stays)"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("move the entries of mount point " + node_.data() + " into " + node_.data() + "/.etcdsafe-old-"),
            std::string::npos)
      << dry.out;

  CmdResult r = Etcdsafe(Args({"--yes"}));
  ASSERT_EQ(r.code, 0) << r.out << r.err << node_.Log();
  ASSERT_TRUE(node_.WaitHealthy()) << node_.Log();
  EXPECT_EQ(node_.Dump(), at_snapshot_);
  EXPECT_GE(node_.Revision(), snapshot_revision_ + 1000000000) << "revision not bumped";
  ExpectStillTheMount();
  // The old entries are kept inside the mount (same filesystem), the last snapshot too.
  std::string aside = Only(ShellQuote(node_.data()) + "/.etcdsafe-old-*");
  ASSERT_FALSE(aside.empty()) << Shell("ls -la " + ShellQuote(node_.data())).out;
  EXPECT_NE(r.out.find("old data dir kept at " + aside), std::string::npos) << r.out;
  EXPECT_EQ(Dev(aside), mount_dev_);
  EXPECT_EQ(Dev(aside + "/member/snap/db"), mount_dev_);
  EXPECT_FALSE(Only(ShellQuote(node_.data()) + "/.etcdsafe-last-*.db").empty());
  // The top level holds the restored member/ and etcdsafe's own entries only.
  EXPECT_EQ(Shell("ls -A " + ShellQuote(node_.data()) + " | grep -v '^\\.etcdsafe-'").out, "member\n");
  // Owner and mode of the mount's root kept, and applied to the restored entries.
  struct stat st {};
  ASSERT_EQ(stat(node_.data().c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 2345u);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(stat((node_.data() + "/member/snap/db").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_FALSE(Exists(node_.root() + "/var/lib/.etcdsafe-restore-journal.json"));

  // A restore step that fails (a snapshot whose sha256 trailer is damaged: the preflight
  // reads only its pages) is rolled back: the running data's entries are back in place.
  KvDump restored = node_.Dump();
  std::string bad = certs_dir_.Sub("bad.db");
  ASSERT_EQ(RunCommand("cp " + ShellQuote(snapshot_) + " " + ShellQuote(bad) +
                       " && printf '\\377' | dd of=" + ShellQuote(bad) + " bs=1 seek=$(($(stat -c %s " + ShellQuote(bad) +
                       ") - 1)) conv=notrunc 2>/dev/null"),
            0);
  CmdResult failed = Etcdsafe({"restore", "--kubeadm", "--snapshot", bad, "--root", node_.root(), "--wait-timeout", "60",
                               "--yes"});
  EXPECT_EQ(failed.code, 1) << failed.out << failed.err;
  EXPECT_TRUE(IsOneLineError(failed)) << failed.err;
  EXPECT_NE(failed.err.find("step restore failed"), std::string::npos) << failed.err;
  EXPECT_NE(failed.err.find("rolled back"), std::string::npos) << failed.err;
  ASSERT_TRUE(node_.WaitHealthy()) << node_.Log();
  EXPECT_EQ(node_.Dump(), restored);
  ExpectStillTheMount();
  EXPECT_EQ(Shell("ls -A " + ShellQuote(node_.data()) + " | grep -v '^\\.etcdsafe-'").out, "member\n");
  EXPECT_EQ(Shell("ls -d " + ShellQuote(node_.data()) + "/.etcdsafe-old-*").out, aside + "\n");  // the first one only
}

// Crash after every step, rerun: finished or rolled back, on the mount, never beside it.
TEST_F(KubeadmRestoreOnMount, CrashAfterEachStepThenRerun) {
  CrashAfterEachStepThenRerun([&](const std::string&) {
    ExpectStillTheMount();
    EXPECT_TRUE(Exists(node_.data() + "/member/snap/db"));
    // Each round keeps the data it replaced (with etcd's preallocated 64 MB WAL) inside the
    // mount; an operator would remove it once happy, and so does the test, for room.
    EXPECT_EQ(RunCommand("rm -rf " + ShellQuote(node_.data()) + "/.etcdsafe-old-* " + ShellQuote(node_.data()) +
                         "/.etcdsafe-failed-* " + ShellQuote(node_.data()) + "/.etcdsafe-last-*"),
              0);
  });
}

// A stand-in API server on the port kube-apiserver.yaml names: HTTPS with the test
// certificates, /readyz answers 500 for `fail_seconds` after its first request, then 200
// (fail_seconds < 0: always 500). Every request is logged as "<path> <status>".
pid_t StartFakeApiServer(const std::string& dir, int port, const TlsFiles& tls, double fail_seconds) {
  const std::string script = dir + "/fake_apiserver.py";
  WriteFile(script, R"PY(import http.server, ssl, sys, time
port, cert, key, fail_for, log = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
first = []
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def do_GET(self):
        if not first: first.append(time.monotonic())
        ok = self.path == '/readyz' and fail_for >= 0 and time.monotonic() - first[0] >= fail_for
        body = b'ok' if ok else b'[-]etcd failed: reason withheld\nreadyz check failed\n'
        self.send_response(200 if ok else 500)
        self.send_header('Content-Length', str(len(body)))
        self.send_header('Connection', 'close')
        self.end_headers()
        self.wfile.write(body)
        with open(log, 'a') as f: f.write('%s %d\n' % (self.path, 200 if ok else 500))
    def log_message(self, *a): pass
srv = http.server.HTTPServer(('127.0.0.1', port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
open(log, 'a').close()
srv.serve_forever()
)PY");
  pid_t pid = SpawnLogged({"/usr/bin/python3", script, std::to_string(port), tls.server_cert, tls.server_key,
                           std::to_string(fail_seconds), dir + "/apiserver.requests"},
                          {}, dir + "/apiserver.log");
  for (int i = 0; i < 100 && !Exists(dir + "/apiserver.requests"); i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return pid;
}

// The API server answers 500 for a while after etcd is back, then 200: the restore waits
// for it and says so.
TEST_F(KubeadmRestore, WaitsForApiServerReadyz) {
  pid_t api = StartFakeApiServer(certs_dir_.path(), node_.api, tls_, 3);
  ASSERT_TRUE(Exists(certs_dir_.Sub("apiserver.requests"))) << ReadFile(certs_dir_.Sub("apiserver.log"));
  CmdResult r = Etcdsafe(Args({"--yes"}));
  kill(api, SIGTERM);
  waitpid(api, nullptr, 0);
  ASSERT_EQ(r.code, 0) << r.out << r.err << node_.Log();
  const std::string url = "https://127.0.0.1:" + std::to_string(node_.api) + "/readyz";
  EXPECT_NE(r.out.find("API server ready (" + url + ", after "), std::string::npos) << r.out;
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
  std::string requests = ReadFile(certs_dir_.Sub("apiserver.requests"));
  EXPECT_EQ(requests.rfind("/readyz 500\n/readyz 500\n", 0), 0u) << requests;  // waited through the 500s
  EXPECT_EQ(requests.size() - requests.rfind("/readyz 200\n"), std::string("/readyz 200\n").size()) << requests;
  EXPECT_EQ(node_.Dump(), at_snapshot_);
}

// An API server that never becomes ready: etcd is restored and healthy, so the restore
// succeeds (exit 0) with a warning naming the URL and the last answer; nothing is rolled back.
TEST_F(KubeadmRestore, ApiServerNeverReadyIsAWarning) {
  pid_t api = StartFakeApiServer(certs_dir_.path(), node_.api, tls_, -1);
  ASSERT_TRUE(Exists(certs_dir_.Sub("apiserver.requests"))) << ReadFile(certs_dir_.Sub("apiserver.log"));
  CmdResult r = Etcdsafe(Concat({"restore", "--kubeadm", "--snapshot", snapshot_, "--root", node_.root()},
                                {"--wait-timeout", "20", "--yes"}));
  kill(api, SIGTERM);
  waitpid(api, nullptr, 0);
  ASSERT_EQ(r.code, 0) << r.out << r.err << node_.Log();
  const std::string url = "https://127.0.0.1:" + std::to_string(node_.api) + "/readyz";
  EXPECT_NE(r.err.find("warning: the API server is not ready after 20s (" + url +
                       ": HTTP 500); etcd itself is restored and healthy"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.out.find("API server NOT ready after 20s (HTTP 500)"), std::string::npos) << r.out;
  const std::string requests = ReadFile(certs_dir_.Sub("apiserver.requests"));
  EXPECT_GE(std::count(requests.begin(), requests.end(), '\n'), 10) << requests;  // polled, every answer 500
  EXPECT_EQ(requests.find("200"), std::string::npos) << requests;
  ASSERT_TRUE(node_.WaitHealthy()) << node_.Log();
  EXPECT_EQ(node_.Dump(), at_snapshot_);
  EXPECT_FALSE(Exists(node_.root() + "/var/lib/.etcdsafe-restore-journal.json"));
}

// --compact goes through to the restore: without revision bump and compaction mark, the
// history below the snapshot's revision is readable after a plain restore and gone after
// --compact.
TEST_F(KubeadmRestore, CompactIsPassedThrough) {
  const std::string key = "/registry/configmaps/default/cm-1";
  int64_t old_rev = 0;
  {
    auto c = client::EtcdClient::Connect(node_.Config());
    old_rev = c->Range(key).kvs.at(0).mod_revision;
    c->Put(key, "v1-again");
  }
  const std::string snap2 = certs_dir_.Sub("snap2.db");
  ASSERT_EQ(Etcdsafe({"snapshot", "save", snap2, "--endpoints", node_.Config().endpoints[0], "--cacert", tls_.ca, "--cert",
                      tls_.client_cert, "--key", tls_.client_key})
                .code,
            0);
  const KvDump want = node_.Dump();
  auto args = [&](std::vector<std::string> extra) {
    return Concat({"restore", "--kubeadm", "--snapshot", snap2, "--root", node_.root(), "--wait-timeout", "60",
                   "--bump-revision", "0", "--no-mark-compacted"},
                  extra);
  };
  auto read_old = [&]() -> std::string {
    try {
      auto c = client::EtcdClient::Connect(node_.Config());
      auto r = c->Range(key, "", 0, old_rev);
      return r.kvs.empty() ? "absent" : r.kvs[0].value;
    } catch (const std::exception& e) {
      return e.what();
    }
  };
  CmdResult dry = Etcdsafe(args({"--compact", "--dry-run"}));
  ASSERT_EQ(dry.code, 0) << dry.err;
  EXPECT_NE(dry.out.find(" --initial-advertise-peer-urls " + node_.peer_url() + " --compact"), std::string::npos) << dry.out;
  // Without --compact: the old revision is still there.
  CmdResult plain = Etcdsafe(args({"--yes"}));
  ASSERT_EQ(plain.code, 0) << plain.out << plain.err << node_.Log();
  ASSERT_TRUE(node_.WaitHealthy()) << node_.Log();
  EXPECT_EQ(node_.Dump(), want);
  EXPECT_EQ(read_old(), "v1");
  // With --compact: the same keys and values, the history below the snapshot is gone.
  CmdResult compact = Etcdsafe(args({"--compact", "--yes"}));
  ASSERT_EQ(compact.code, 0) << compact.out << compact.err << node_.Log();
  EXPECT_NE(compact.out.find("compacted at revision"), std::string::npos) << compact.out;
  ASSERT_TRUE(node_.WaitHealthy()) << node_.Log();
  EXPECT_EQ(node_.Dump(), want);
  EXPECT_NE(read_old().find("compacted"), std::string::npos) << read_old();
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
