// PKI backups end to end with the etcdsafe binary, beside snapshot backups of a real etcd
// in the same file:// repository: pki backup (encryption required, a mismatched key
// refused before anything is written) → backups list (kind) → backups verify → pki
// restore into an empty dir (bytes, modes, owners, mtimes) → refusals, dry run, --force;
// restore --repo "latest" picks the snapshot and refuses a PKI id; prune --keep-last 1
// keeps one backup of each kind; a manifest whose kind was changed (with its objects
// renamed to match) is refused by its MAC; pki check --repo. And `etcdsafe agent` with
// jobs.pki_check on the same tree (plus an expired and a soon-expiring certificate):
// /metrics carries every certificate's not-after as `openssl x509 -enddate` says it, the
// problem count of `pki check`, passes `promtool check metrics`, and follows renewals.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <set>
#include <sstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "testutil/cli.h"
#include "testutil/etcd_server.h"
#include "testutil/process.h"
#include "testutil/temp_dir.h"
#include "unit/agent/prometheus_util.h"

namespace etcdsafe {
namespace {

using testutil::CmdResult;
using testutil::Concat;
using testutil::Exec;
using testutil::IsOneLineError;
using testutil::Shell;
using testutil::ShellQuote;

CmdResult Etcdsafe(const std::vector<std::string>& args) { return Exec(ETCDSAFE_BINARY, args); }

// A small kubeadm-shaped tree under <root>/etc/kubernetes plus the kubelet config.
void MakeTree(const std::string& root) {
  const std::string script = R"SH(
set -e
K="$1/etc/kubernetes"; mkdir -p "$K/pki/etcd" "$K/manifests" "$1/var/lib/kubelet"; cd "$K"
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$1" 2>/dev/null; chmod 600 "$1"; }
ca() { ec "$1.key"; openssl req -x509 -new -key "$1.key" -out "$1.crt" -days 3650 -subj "$2" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null; }
leaf() { ec "$1.key"; openssl req -new -key "$1.key" -out "$1.csr" -subj "$3" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nsubjectAltName=DNS:cp1,IP:127.0.0.1\n' > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -set_serial "0x$(openssl rand -hex 8)" -out "$1.crt" -days 365 -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"; }
ca pki/ca /CN=kubernetes; ca pki/etcd/ca /CN=etcd-ca; ca pki/front-proxy-ca /CN=front-proxy-ca
leaf pki/apiserver pki/ca /CN=kube-apiserver; leaf pki/apiserver-etcd-client pki/etcd/ca /CN=kube-apiserver-etcd-client
leaf pki/etcd/server pki/etcd/ca /CN=cp1; leaf pki/etcd/peer pki/etcd/ca /CN=cp1
leaf pki/front-proxy-client pki/front-proxy-ca /CN=front-proxy-client
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out pki/sa.key 2>/dev/null; chmod 600 pki/sa.key
openssl pkey -in pki/sa.key -pubout -out pki/sa.pub
leaf admin pki/ca "/O=system:masters/CN=kubernetes-admin"
printf 'apiVersion: v1\nkind: Config\nclusters:\n- name: kubernetes\n  cluster:\n    certificate-authority-data: %s\n    server: https://127.0.0.1:6443\nusers:\n- name: admin\n  user:\n    client-certificate-data: %s\n    client-key-data: %s\n' \
  "$(base64 -w0 < pki/ca.crt)" "$(base64 -w0 < admin.crt)" "$(base64 -w0 < admin.key)" > admin.conf
chmod 600 admin.conf; rm admin.crt admin.key
printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: etcd}\nspec:\n  containers:\n  - command: [etcd, --name=cp1]\n' > manifests/etcd.yaml
printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: kube-apiserver}\n' > manifests/kube-apiserver.yaml
printf 'apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n' > kubeadm-config.yaml
chmod 600 manifests/*.yaml
printf 'kind: KubeletConfiguration\n' > "$1/var/lib/kubelet/config.yaml"
chown 1000:1001 pki/apiserver.crt manifests/kube-apiserver.yaml; chmod 640 pki/apiserver.crt
touch -d '2025-03-04 05:06:07.123456789' pki/ca.crt
)SH";
  testutil::WriteFile(root + ".sh", script);
  CmdResult r = Shell("bash " + ShellQuote(root + ".sh") + " " + ShellQuote(root));
  ASSERT_EQ(r.code, 0) << r.out << r.err;
}

struct Meta {
  std::string data;
  unsigned mode, uid, gid;
  long long mtime_sec, mtime_nsec;
};

std::map<std::string, Meta> Files(const std::string& dir) {
  std::map<std::string, Meta> out;
  CmdResult l = Shell("cd " + ShellQuote(dir) + " && find . -type f | sort");
  size_t start = 0;
  while (start < l.out.size()) {
    size_t nl = l.out.find('\n', start);
    std::string rel = l.out.substr(start + 2, nl - start - 2);
    start = nl + 1;
    struct stat st {};
    stat((dir + "/" + rel).c_str(), &st);
    out[rel] = {testutil::ReadFile(dir + "/" + rel), st.st_mode & 07777u, st.st_uid, st.st_gid,
                static_cast<long long>(st.st_mtim.tv_sec), static_cast<long long>(st.st_mtim.tv_nsec)};
  }
  return out;
}

class PkiCli : public ::testing::Test {
 protected:
  void SetUp() override {
    MakeTree(dir_.Sub("node"));
    testutil::WriteFile(Key(), "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
    ::chmod(Key().c_str(), 0600);
  }
  std::string Key() const { return dir_.Sub("backup.key"); }
  std::string Repo() const { return "file://" + dir_.Sub("repo"); }
  std::vector<std::string> PkiBackup(const std::vector<std::string>& more = {}) const {
    return Concat({"pki", "backup", "--repo", Repo(), "--root", dir_.Sub("node")}, more);
  }
  nlohmann::json List() const {
    CmdResult l = Etcdsafe({"backups", "list", "--repo", Repo(), "-w", "json"});
    EXPECT_EQ(l.code, 0) << l.err;
    return nlohmann::json::parse(l.out);
  }
  testutil::TempDir dir_;
};

TEST_F(PkiCli, BackupListVerifyRestorePruneBesideSnapshots) {
  // Encryption is required; nothing is written without it.
  CmdResult plain = Etcdsafe(PkiBackup());
  EXPECT_EQ(plain.code, 128) << plain.err;
  EXPECT_TRUE(IsOneLineError(plain)) << plain.err;
  EXPECT_NE(plain.err.find("--allow-unencrypted"), std::string::npos) << plain.err;
  EXPECT_NE(testutil::RunCommand("test -e " + ShellQuote(dir_.Sub("repo"))), 0);

  testutil::EtcdServer etcd;
  const std::vector<std::string> ep = {"--endpoints", etcd.client_url()};
  ASSERT_EQ(etcd.etcdctl({"put", "/registry/k", "v"}).exit_code, 0);
  // Oldest to newest: snapshot, pki, snapshot, pki (the newest backup is a PKI one).
  CmdResult s1 = Etcdsafe(Concat({"backup", "--repo", Repo(), "--encryption-key-file", Key()}, ep));
  ASSERT_EQ(s1.code, 0) << s1.err;
  CmdResult p1 = Etcdsafe(PkiBackup({"--encryption-key-file", Key()}));
  ASSERT_EQ(p1.code, 0) << p1.out << p1.err;
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  ASSERT_EQ(etcd.etcdctl({"put", "/registry/k2", "v2"}).exit_code, 0);
  CmdResult s2 = Etcdsafe(Concat({"backup", "--repo", Repo(), "--encryption-key-file", Key()}, ep));
  ASSERT_EQ(s2.code, 0) << s2.err;
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  CmdResult p2 = Etcdsafe(PkiBackup({"--encryption-key-file", Key(), "--compression", "gzip"}));
  ASSERT_EQ(p2.code, 0) << p2.out << p2.err;

  // Listed with their kind; names and the manifest's kind field.
  nlohmann::json all = List();
  ASSERT_EQ(all.size(), 4u) << all.dump();
  std::vector<std::string> pki_ids, snap_ids;
  for (const auto& b : all) {
    (b["kind"] == "pki" ? pki_ids : snap_ids).push_back(b["id"]);
    if (b["kind"] == "pki") {
      EXPECT_EQ(b["revision"], 0);
      EXPECT_EQ(b["id"].get<std::string>().rfind("pki-", 0), 0u);
      EXPECT_NE(b["data_object"].get<std::string>().find(".tar."), std::string::npos);
    }
  }
  ASSERT_EQ(pki_ids.size(), 2u);
  ASSERT_EQ(snap_ids.size(), 2u);
  CmdResult table = Etcdsafe({"backups", "list", "--repo", Repo(), "-w", "table"});
  EXPECT_NE(table.out.find("KIND"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(" pki | "), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(" snapshot | "), std::string::npos) << table.out;
  // sha256sum -c accepts every sidecar, PKI ones included.
  CmdResult sum = Shell("cd " + ShellQuote(dir_.Sub("repo")) + " && sha256sum -c *.sha256");
  EXPECT_EQ(sum.code, 0) << sum.out << sum.err;

  // verify: every backup, both kinds.
  CmdResult v = Etcdsafe({"backups", "verify", "--repo", Repo(), "--encryption-key-file", Key()});
  EXPECT_EQ(v.code, 0) << v.out << v.err;
  EXPECT_NE(v.out.find("ok       " + pki_ids[0] + " (pki, "), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("4 backups verified"), std::string::npos) << v.out;

  // pki restore of the latest PKI backup into an empty dir: identical files.
  const std::string out = dir_.Sub("restored");
  CmdResult r = Etcdsafe({"pki", "restore", "--repo", Repo(), "--encryption-key-file", Key(), "--kubernetes-dir",
                          out + "/etc/kubernetes", "--root", out});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  auto want = Files(dir_.Sub("node")), got = Files(out);
  ASSERT_EQ(want.size(), got.size());
  for (const auto& [rel, m] : want) {
    const Meta& g = got[rel];
    EXPECT_EQ(g.data, m.data) << rel;
    EXPECT_EQ(g.mode, m.mode) << rel;
    EXPECT_EQ(g.uid, m.uid) << rel;
    EXPECT_EQ(g.gid, m.gid) << rel;
    EXPECT_EQ(g.mtime_sec, m.mtime_sec) << rel;
    EXPECT_EQ(g.mtime_nsec, m.mtime_nsec) << rel;
  }
  EXPECT_EQ(got["etc/kubernetes/pki/apiserver.crt"].uid, 1000u);
  // A differing file: refused with one line (exit 13) and nothing written; dry run lists it.
  testutil::WriteFile(out + "/etc/kubernetes/pki/ca.crt", "changed\n");
  CmdResult refused = Etcdsafe({"pki", "restore", "--repo", Repo(), "--encryption-key-file", Key(), "--kubernetes-dir",
                                out + "/etc/kubernetes"});
  EXPECT_EQ(refused.code, 13) << refused.out << refused.err;
  EXPECT_TRUE(IsOneLineError(refused)) << refused.err;
  EXPECT_NE(refused.err.find("pki/ca.crt"), std::string::npos) << refused.err;
  EXPECT_EQ(testutil::ReadFile(out + "/etc/kubernetes/pki/ca.crt"), "changed\n");
  CmdResult dry = Etcdsafe({"pki", "restore", "--repo", Repo(), "--encryption-key-file", Key(), "--kubernetes-dir",
                            out + "/etc/kubernetes", "--dry-run"});
  EXPECT_EQ(dry.code, 0) << dry.err;
  EXPECT_NE(dry.out.find("overwrite  " + out + "/etc/kubernetes/pki/ca.crt"), std::string::npos) << dry.out;
  EXPECT_NE(dry.out.find("unchanged  " + out + "/etc/kubernetes/pki/sa.key"), std::string::npos) << dry.out;
  EXPECT_EQ(testutil::ReadFile(out + "/etc/kubernetes/pki/ca.crt"), "changed\n");
  CmdResult forced = Etcdsafe({"pki", "restore", "--repo", Repo(), "--encryption-key-file", Key(), "--kubernetes-dir",
                               out + "/etc/kubernetes", "--backup", pki_ids[0], "--force"});
  EXPECT_EQ(forced.code, 0) << forced.err;
  EXPECT_EQ(testutil::ReadFile(out + "/etc/kubernetes/pki/ca.crt"), want["etc/kubernetes/pki/ca.crt"].data);

  // pki check of a backup.
  CmdResult check = Etcdsafe({"pki", "check", "--repo", Repo(), "--encryption-key-file", Key(), "-w", "json"});
  EXPECT_EQ(check.code, 0) << check.out << check.err;
  EXPECT_EQ(nlohmann::json::parse(check.out)["certificates"].size(), 10u) << check.out;

  // Restores of etcd: "latest" is the newest snapshot, not the newer PKI backup; a PKI
  // id is refused with one line.
  CmdResult latest = Etcdsafe({"restore", "--repo", Repo(), "--backup", "latest", "--encryption-key-file", Key(),
                               "--data-dir", dir_.Sub("etcd-restored")});
  EXPECT_EQ(latest.code, 0) << latest.out << latest.err;
  CmdResult got_k2 = Etcdsafe({"get", "--repo", Repo(), "--backup", "latest", "--encryption-key-file", Key(), "/registry/k2"});
  EXPECT_EQ(got_k2.code, 0) << got_k2.err;
  EXPECT_EQ(got_k2.out, "/registry/k2\nv2\n");
  CmdResult wrong = Etcdsafe({"restore", "--repo", Repo(), "--backup", pki_ids[1], "--encryption-key-file", Key(),
                              "--data-dir", dir_.Sub("etcd-wrong")});
  EXPECT_EQ(wrong.code, 128) << wrong.err;
  EXPECT_TRUE(IsOneLineError(wrong)) << wrong.err;
  EXPECT_NE(wrong.err.find("is a pki backup"), std::string::npos) << wrong.err;
  EXPECT_NE(testutil::RunCommand("test -e " + ShellQuote(dir_.Sub("etcd-wrong"))), 0);
  CmdResult wrong_pki = Etcdsafe({"pki", "restore", "--repo", Repo(), "--backup", snap_ids[0], "--encryption-key-file",
                                  Key(), "--kubernetes-dir", dir_.Sub("k-wrong")});
  EXPECT_EQ(wrong_pki.code, 128) << wrong_pki.err;
  CmdResult get_wrong = Etcdsafe({"get", "--repo", Repo(), "--backup", pki_ids[0], "--encryption-key-file", Key(), "/registry/k"});
  EXPECT_EQ(get_wrong.code, 128) << get_wrong.err;
  CmdResult drill_wrong = Etcdsafe({"backups", "verify", "--repo", Repo(), "--backup", pki_ids[0], "--drill",
                                    "--encryption-key-file", Key()});
  EXPECT_NE(drill_wrong.code, 0) << drill_wrong.out;
  EXPECT_NE((drill_wrong.out + drill_wrong.err).find("is a pki backup"), std::string::npos) << drill_wrong.out << drill_wrong.err;

  // Retention per kind: keep-last 1 keeps one snapshot AND one PKI backup.
  CmdResult prune = Etcdsafe({"prune", "--repo", Repo(), "--keep-last", "1"});
  ASSERT_EQ(prune.code, 0) << prune.out << prune.err;
  nlohmann::json left = List();
  ASSERT_EQ(left.size(), 2u) << left.dump();
  std::set<std::string> ids;
  for (const auto& b : left) ids.insert(b["id"].get<std::string>());
  EXPECT_TRUE(ids.count(snap_ids[1]) && ids.count(pki_ids[1])) << left.dump();
  // Every object of the dropped PKI backup is gone, nothing else of it is left behind.
  const std::string stem = pki_ids[0].substr(0, pki_ids[0].size() - 3);
  CmdResult files = Shell("ls " + ShellQuote(dir_.Sub("repo")));
  EXPECT_EQ(files.out.find(stem + "."), std::string::npos) << files.out;
  EXPECT_EQ(files.out.find(".pending"), std::string::npos) << files.out;
}

TEST_F(PkiCli, MismatchedKeysAreRefusedBeforeAnythingIsWritten) {
  Shell("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out " +
        ShellQuote(dir_.Sub("node/etc/kubernetes/pki/apiserver.key")) + " 2>/dev/null");
  CmdResult r = Etcdsafe(PkiBackup({"--encryption-key-file", Key()}));
  EXPECT_EQ(r.code, 15) << r.out << r.err;
  EXPECT_TRUE(IsOneLineError(r)) << r.err;
  EXPECT_NE(r.err.find("keys do not match their certificates (pki/apiserver.key"), std::string::npos) << r.err;
  EXPECT_NE(testutil::RunCommand("test -e " + ShellQuote(dir_.Sub("repo"))), 0);
  CmdResult forced = Etcdsafe(PkiBackup({"--encryption-key-file", Key(), "--force"}));
  EXPECT_EQ(forced.code, 0) << forced.err;
  CmdResult check = Etcdsafe({"pki", "check", "--repo", Repo(), "--encryption-key-file", Key()});
  EXPECT_EQ(check.code, 15) << check.out << check.err;
}

TEST_F(PkiCli, ChangedKindIsRefusedByTheManifestMac) {
  CmdResult p = Etcdsafe(PkiBackup({"--encryption-key-file", Key()}));
  ASSERT_EQ(p.code, 0) << p.err;
  nlohmann::json all = List();
  ASSERT_EQ(all.size(), 1u);
  const std::string id = all[0]["id"], data = all[0]["data_object"];
  const std::string repo = dir_.Sub("repo");
  // Make it look like a snapshot backup: no kind, a .db data object (renamed, with its
  // sidecar), everything else as written. The names all agree; only the MAC can tell.
  nlohmann::ordered_json m = nlohmann::ordered_json::parse(testutil::ReadFile(repo + "/" + id + ".manifest.json"));
  m.erase("kind");
  const std::string db = data.substr(0, data.find(".tar.")) + ".db" + data.substr(data.find(".tar.") + 4);
  m["data_object"] = db;
  testutil::WriteFile(repo + "/" + id + ".manifest.json", m.dump(2) + "\n");
  ASSERT_EQ(::rename((repo + "/" + data).c_str(), (repo + "/" + db).c_str()), 0);
  ::unlink((repo + "/" + data + ".sha256").c_str());
  testutil::WriteFile(repo + "/" + db + ".sha256", all[0]["stored_sha256"].get<std::string>() + "  " + db + "\n");
  nlohmann::json now = List();
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0]["kind"], "snapshot");
  CmdResult restore = Etcdsafe({"restore", "--repo", Repo(), "--backup", "latest", "--encryption-key-file", Key(),
                                "--data-dir", dir_.Sub("etcd")});
  EXPECT_EQ(restore.code, 12) << restore.err;
  EXPECT_TRUE(IsOneLineError(restore)) << restore.err;
  EXPECT_NE(restore.err.find("manifest authentication failed"), std::string::npos) << restore.err;
  CmdResult verify = Etcdsafe({"backups", "verify", "--repo", Repo(), "--encryption-key-file", Key()});
  EXPECT_EQ(verify.code, 1) << verify.out;
  EXPECT_NE(verify.out.find("manifest authentication failed"), std::string::npos) << verify.out;
  // An unknown kind is not a manifest at all.
  m["kind"] = "secrets";
  testutil::WriteFile(repo + "/" + id + ".manifest.json", m.dump(2) + "\n");
  CmdResult list = Etcdsafe({"backups", "list", "--repo", Repo(), "-w", "json"});
  EXPECT_EQ(list.out, "[]\n");
  EXPECT_NE(list.err.find("unknown \"kind\""), std::string::npos) << list.err;
}

// Every etcdsafe_certificate_expiry_timestamp_seconds series: path -> (subject, value).
std::map<std::string, std::pair<std::string, double>> ExpirySeries(const std::string& exposition) {
  std::map<std::string, std::pair<std::string, double>> out;
  std::istringstream in(exposition);
  const std::string prefix = "etcdsafe_certificate_expiry_timestamp_seconds{path=\"";
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) != 0) continue;
    size_t p_end = line.find("\",subject=\"", prefix.size());
    size_t s_end = line.rfind("\"} ");
    if (p_end == std::string::npos || s_end == std::string::npos) {
      ADD_FAILURE() << line;
      continue;
    }
    std::string path = line.substr(prefix.size(), p_end - prefix.size());
    std::string subject = line.substr(p_end + 11, s_end - p_end - 11);
    out[path] = {subject, std::stod(line.substr(s_end + 3))};
  }
  return out;
}

// not-after (Unix seconds) and subject (RFC 2253) of the PEM certificate `shell_source` prints.
std::pair<int64_t, std::string> OpensslDates(const std::string& shell_source) {
  CmdResult end = Shell(shell_source + " | openssl x509 -noout -enddate | sed 's/^notAfter=//' | xargs -I{} date -u -d {} +%s");
  CmdResult subj = Shell(shell_source + " | openssl x509 -noout -subject -nameopt RFC2253 | sed 's/^subject=//'");
  EXPECT_EQ(end.code, 0) << shell_source << end.err;
  EXPECT_EQ(subj.code, 0) << shell_source << subj.err;
  while (!subj.out.empty() && subj.out.back() == '\n') subj.out.pop_back();
  return {end.out.empty() ? 0 : std::stoll(end.out), subj.out};
}

TEST_F(PkiCli, AgentExportsCertificateExpiry) {
  const std::string k = dir_.Sub("node/etc/kubernetes");
  // An expired certificate (2020-2021, through `openssl ca`) and one expiring in 5 days.
  const std::string script = R"SH(
set -e
cd "$1"
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$1" 2>/dev/null; chmod 600 "$1"; }
ec pki/apiserver-kubelet-client.key
openssl req -new -key pki/apiserver-kubelet-client.key -out x.csr -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" 2>/dev/null
w=$(mktemp -d); touch "$w/index.txt"; echo 1000 > "$w/serial"
printf '[ca]\ndefault_ca=c\n[c]\ndatabase=%s/index.txt\nserial=%s/serial\nnew_certs_dir=%s\ndefault_md=sha256\npolicy=p\nunique_subject=no\ncopy_extensions=none\n[p]\ncommonName=supplied\norganizationName=optional\n' "$w" "$w" "$w" > "$w/ca.cnf"
openssl ca -batch -config "$w/ca.cnf" -cert pki/ca.crt -keyfile pki/ca.key -in x.csr -out pki/apiserver-kubelet-client.crt -notext \
   -startdate 20200101000000Z -enddate 20210101000000Z 2>/dev/null
rm -rf "$w" x.csr
ec pki/front-proxy-client.key
openssl req -new -key pki/front-proxy-client.key -out x.csr -subj "/CN=front-proxy-client" 2>/dev/null
openssl x509 -req -in x.csr -CA pki/front-proxy-ca.crt -CAkey pki/front-proxy-ca.key -set_serial 0x1234 -out pki/front-proxy-client.crt -days 5 2>/dev/null
rm x.csr
)SH";
  testutil::WriteFile(dir_.Sub("problems.sh"), script);
  CmdResult made = Shell("bash " + ShellQuote(dir_.Sub("problems.sh")) + " " + ShellQuote(k));
  ASSERT_EQ(made.code, 0) << made.out << made.err;
  // What `pki check` says about this tree.
  CmdResult check = Etcdsafe({"pki", "check", "--kubernetes-dir", k, "-w", "json"});
  ASSERT_EQ(check.code, 15) << check.out << check.err;
  const nlohmann::json report = nlohmann::json::parse(check.out);
  ASSERT_GE(report["problems"].size(), 2u) << check.out;

  testutil::EtcdServer etcd;
  const int port = agent::testing::FreeLocalPort();
  const std::string config = dir_.Sub("agent.yaml");
  testutil::WriteFile(config, "etcd: {endpoints: [\"" + etcd.client_url() + "\"]}\n"
                              "repositories: [{url: \"file://" + dir_.Sub("repo") + "\"}]\n"
                              "jobs:\n"
                              "  pki_check: {schedule: \"@every 2s\", kubernetes_dir: node/etc/kubernetes, warn_days: 30}\n"
                              "http: {listen: \"127.0.0.1:" + std::to_string(port) + "\"}\n"
                              "state_dir: state\n"
                              "log: {format: json}\n");
  CmdResult cc = Etcdsafe({"agent", "--check-config", "--config", config});
  ASSERT_EQ(cc.code, 0) << cc.out << cc.err;
  EXPECT_NE(cc.out.find("pki_check \"@every 2s\", next run"), std::string::npos) << cc.out;
  pid_t agent = testutil::SpawnLogged({ETCDSAFE_BINARY, "agent", "--config", config}, {}, dir_.Sub("agent.log"));
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/metrics";
  auto metrics = [&] { return agent::testing::HttpRequest(url, "GET", "", 2000).body; };
  auto value = [&](const std::string& series) -> double {
    std::istringstream in(metrics());
    for (std::string line; std::getline(in, line);) {
      if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
    }
    return -1;
  };
  ASSERT_TRUE(agent::testing::WaitFor([&] { return value("etcdsafe_pki_check_last_success_timestamp_seconds") > 0; },
                                      std::chrono::seconds(20)))
      << testutil::ReadFile(dir_.Sub("agent.log"));
  std::string text = metrics();
  EXPECT_EQ(value("etcdsafe_certificate_problems"), static_cast<double>(report["problems"].size())) << text;
  // Every certificate of the report, with openssl's not-after and subject.
  auto series = ExpirySeries(text);
  EXPECT_EQ(series.size(), report["certificates"].size()) << text;
  CmdResult files = Shell("cd " + ShellQuote(k) + " && find pki -name '*.crt' | sort");
  size_t n_files = 0;
  std::istringstream list(files.out);
  for (std::string rel; std::getline(list, rel); n_files++) {
    SCOPED_TRACE(rel);
    auto [not_after, subject] = OpensslDates("cat " + ShellQuote(k + "/" + rel));
    ASSERT_TRUE(series.count(rel)) << text;
    EXPECT_EQ(series[rel].second, static_cast<double>(not_after));
    EXPECT_EQ(series[rel].first, subject);
  }
  EXPECT_EQ(n_files, 9u);
  auto [admin_after, admin_subject] = OpensslDates(
      "sed -n 's/^ *client-certificate-data: //p' " + ShellQuote(k + "/admin.conf") + " | base64 -d");
  EXPECT_EQ(series["admin.conf user admin client-certificate-data"].second, static_cast<double>(admin_after));
  EXPECT_EQ(series["admin.conf user admin client-certificate-data"].first, admin_subject);
  EXPECT_LT(series["pki/apiserver-kubelet-client.crt"].second, 1609459201.0);  // 2021-01-01
  // promtool accepts the exposition.
  testutil::WriteFile(dir_.Sub("metrics.txt"), text);
  CmdResult lint = Shell("/usr/bin/promtool check metrics < " + ShellQuote(dir_.Sub("metrics.txt")));
  EXPECT_EQ(lint.code, 0) << lint.out << lint.err;

  // Renewed and removed certificates show at the next check: the expired one re-signed for
  // a year, the front-proxy client gone.
  CmdResult renew = Shell("cd " + ShellQuote(k) +
                          " && openssl req -new -key pki/apiserver-kubelet-client.key -subj /CN=renewed 2>/dev/null |"
                          " openssl x509 -req -CA pki/ca.crt -CAkey pki/ca.key -set_serial 0x99 -days 365"
                          " -out pki/apiserver-kubelet-client.crt 2>/dev/null"
                          " && rm pki/front-proxy-client.crt pki/front-proxy-client.key");
  ASSERT_EQ(renew.code, 0) << renew.err;
  auto [renewed_after, renewed_subject] = OpensslDates("cat " + ShellQuote(k + "/pki/apiserver-kubelet-client.crt"));
  ASSERT_TRUE(agent::testing::WaitFor(
      [&] {
        auto now = ExpirySeries(metrics());
        return now.count("pki/apiserver-kubelet-client.crt") &&
               now["pki/apiserver-kubelet-client.crt"].second == static_cast<double>(renewed_after) &&
               !now.count("pki/front-proxy-client.crt");
      },
      std::chrono::seconds(20)))
      << metrics();
  EXPECT_EQ(ExpirySeries(metrics())["pki/apiserver-kubelet-client.crt"].first, renewed_subject);
  EXPECT_EQ(value("etcdsafe_certificate_problems"), 0) << metrics();
  const std::string log = testutil::ReadFile(dir_.Sub("agent.log"));
  EXPECT_NE(log.find("\"event\":\"pki_check.problems\""), std::string::npos) << log;
  EXPECT_NE(log.find("\"event\":\"pki_check.done\""), std::string::npos) << log;
  ::kill(agent, SIGTERM);
  int status = 0;
  ::waitpid(agent, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

}  // namespace
}  // namespace etcdsafe
