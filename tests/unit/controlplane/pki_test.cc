// pki check on a kubeadm-shaped tree made by the openssl CLI (CA, etcd CA, front-proxy CA,
// apiserver with SANs, the clients, etcd server/peer/healthcheck-client, sa.key/sa.pub,
// admin.conf with embedded base64 certificates, static-pod manifests), including an
// expired certificate, one expiring in 5 days and a key that does not match: every
// number is cross-checked with `openssl x509` and `openssl verify`, and `etcdsafe pki
// check` exits 15 (0 on the consistent tree). Then the archive: collect → tar → read
// round trip, restore into an empty dir (bytes, modes, owners, mtimes), refusals, and
// hostile archives (absolute, "..", foreign top, symlink escapes, entries below links,
// duplicates, hard links, devices, garbage) refused with nothing written.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>

#include "backup/manifest.h"
#include "base/error.h"
#include "controlplane/pki.h"
#include "controlplane/pki_archive.h"
#include "testutil/cli.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::controlplane {
namespace {

using testutil::CmdResult;
using testutil::Shell;
using testutil::ShellQuote;

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Writes a kubeadm-shaped /etc/kubernetes into `dir` with openssl. With `problems`:
// apiserver-kubelet-client expired in 2021, front-proxy-client expires in 5 days, and
// etcd/peer.key is another key than etcd/peer.crt's.
void MakeTree(const std::string& dir, bool problems) {
  const std::string script = R"SH(
set -e
cd "$1"; PROBLEMS="$2"
mkdir -p pki/etcd manifests
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out "$1" 2>/dev/null; chmod 600 "$1"; }
ca() { ec "$1.key"; openssl req -x509 -new -key "$1.key" -out "$1.crt" -days 3650 -subj "$2" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null; }
# leaf OUT CA SUBJ DAYS [SANS]
leaf() {
  ec "$1.key"; openssl req -new -key "$1.key" -out "$1.csr" -subj "$3" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n' > "$1.ext"
  if [ -n "$5" ]; then echo "subjectAltName=$5" >> "$1.ext"; fi
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -set_serial "0x$(openssl rand -hex 8)" -out "$1.crt" -days "$4" -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
# expired OUT CA SUBJ: valid 2020-01-01 .. 2021-01-01, through `openssl ca`
expired() {
  ec "$1.key"; openssl req -new -key "$1.key" -out "$1.csr" -subj "$3" 2>/dev/null
  w=$(mktemp -d); touch "$w/index.txt"; echo 1000 > "$w/serial"
  printf '[ca]\ndefault_ca=c\n[c]\ndatabase=%s/index.txt\nserial=%s/serial\nnew_certs_dir=%s\ndefault_md=sha256\npolicy=p\nunique_subject=no\ncopy_extensions=none\n[p]\ncommonName=supplied\norganizationName=optional\n' "$w" "$w" "$w" > "$w/ca.cnf"
  openssl ca -batch -config "$w/ca.cnf" -cert "$2.crt" -keyfile "$2.key" -in "$1.csr" -out "$1.crt" -notext \
     -startdate 20200101000000Z -enddate 20210101000000Z 2>/dev/null
  rm -rf "$w" "$1.csr"
}
ca pki/ca "/CN=kubernetes"
ca pki/etcd/ca "/CN=etcd-ca"
ca pki/front-proxy-ca "/CN=front-proxy-ca"
leaf pki/apiserver pki/ca "/CN=kube-apiserver" 365 "DNS:cp1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1,IP:192.168.10.11"
if [ -n "$PROBLEMS" ]; then
  expired pki/apiserver-kubelet-client pki/ca "/O=system:masters/CN=kube-apiserver-kubelet-client"
  leaf pki/front-proxy-client pki/front-proxy-ca "/CN=front-proxy-client" 5
else
  leaf pki/apiserver-kubelet-client pki/ca "/O=system:masters/CN=kube-apiserver-kubelet-client" 365
  leaf pki/front-proxy-client pki/front-proxy-ca "/CN=front-proxy-client" 365
fi
leaf pki/apiserver-etcd-client pki/etcd/ca "/CN=kube-apiserver-etcd-client" 365
leaf pki/etcd/server pki/etcd/ca "/CN=cp1" 365 "DNS:cp1,DNS:localhost,IP:192.168.10.11,IP:127.0.0.1"
leaf pki/etcd/peer pki/etcd/ca "/CN=cp1" 365 "DNS:cp1,DNS:localhost,IP:192.168.10.11,IP:127.0.0.1"
leaf pki/etcd/healthcheck-client pki/etcd/ca "/CN=kube-etcd-healthcheck-client" 365
if [ -n "$PROBLEMS" ]; then ec pki/etcd/peer.key; fi
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out pki/sa.key 2>/dev/null; chmod 600 pki/sa.key
openssl pkey -in pki/sa.key -pubout -out pki/sa.pub
leaf admin pki/ca "/O=system:masters/CN=kubernetes-admin" 365
b64() { base64 -w0 < "$1"; }
cat > admin.conf <<EOF
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: $(b64 pki/ca.crt)
    server: https://192.168.10.11:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: kubernetes-admin
  name: kubernetes-admin@kubernetes
current-context: kubernetes-admin@kubernetes
kind: Config
preferences: {}
users:
- name: kubernetes-admin
  user:
    client-certificate-data: $(b64 admin.crt)
    client-key-data: $(b64 admin.key)
EOF
chmod 600 admin.conf; rm admin.crt admin.key
cat > manifests/etcd.yaml <<EOF
apiVersion: v1
kind: Pod
metadata: {name: etcd, namespace: kube-system}
spec:
  containers:
  - command: [etcd, --name=cp1, --data-dir=/var/lib/etcd, --cert-file=/etc/kubernetes/pki/etcd/server.crt]
    image: registry.k8s.io/etcd:3.5.9-0
    name: etcd
EOF
cat > manifests/kube-apiserver.yaml <<EOF
apiVersion: v1
kind: Pod
metadata: {name: kube-apiserver, namespace: kube-system}
spec:
  containers:
  - command: [kube-apiserver, --etcd-servers=https://127.0.0.1:2379]
    image: registry.k8s.io/kube-apiserver:v1.28.0
    name: kube-apiserver
EOF
chmod 600 manifests/*.yaml
)SH";
  ASSERT_EQ(Shell("mkdir -p " + ShellQuote(dir)).code, 0);
  testutil::WriteFile(dir + ".sh", script);
  CmdResult r = Shell("bash " + ShellQuote(dir + ".sh") + " " + ShellQuote(dir) + " " + (problems ? "yes" : "''"));
  ASSERT_EQ(r.code, 0) << r.out << r.err;
}

const CertInfo* FindCert(const PkiReport& r, const std::string& label) {
  for (const auto& c : r.certs) {
    if (c.label == label) return &c;
  }
  return nullptr;
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

class PkiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testutil::TempDir();
    MakeTree(dir_->Sub("bad/kubernetes"), true);
    MakeTree(dir_->Sub("good/kubernetes"), false);
  }
  static void TearDownTestSuite() { delete dir_; }
  // A fixture that could not be made fails every test (never a skip).
  void SetUp() override { ASSERT_EQ(testutil::RunCommand("test -f " + ShellQuote(Good() + "/admin.conf")), 0); }
  static std::string Bad() { return dir_->Sub("bad/kubernetes"); }
  static std::string Good() { return dir_->Sub("good/kubernetes"); }
  static testutil::TempDir* dir_;
};
testutil::TempDir* PkiTest::dir_ = nullptr;

TEST_F(PkiTest, EveryCertificateMatchesOpenssl) {
  const int64_t now = Now();
  PkiReport r = CheckPki(Bad(), 30, now);
  // 3 CAs + apiserver, kubelet-client, front-proxy-client, etcd-client, etcd server,
  // peer, healthcheck + admin.conf's CA and client certificate.
  ASSERT_EQ(r.certs.size(), 12u) << PkiReportTable(r);
  for (const auto& c : r.certs) {
    if (c.label.find(".conf") != std::string::npos) continue;
    const std::string file = Bad() + "/" + c.label;
    CmdResult o = Shell("openssl x509 -in " + ShellQuote(file) +
                        " -noout -enddate -dateopt iso_8601 -subject -issuer -nameopt RFC2253 -serial");
    ASSERT_EQ(o.code, 0) << o.err;
    EXPECT_NE(o.out.find("notAfter=" + backup::FormatUtc(c.not_after, "%Y-%m-%d %H:%M:%SZ") + "\n"), std::string::npos)
        << c.label << "\n" << o.out;
    EXPECT_NE(o.out.find("subject=" + c.subject + "\n"), std::string::npos) << c.label << "\n" << o.out;
    EXPECT_NE(o.out.find("issuer=" + c.issuer + "\n"), std::string::npos) << c.label << "\n" << o.out;
    EXPECT_NE(o.out.find("serial=" + c.serial + "\n"), std::string::npos) << c.label << "\n" << o.out;
    // SANs as openssl prints them.
    CmdResult san = Shell("openssl x509 -in " + ShellQuote(file) + " -noout -ext subjectAltName 2>/dev/null | tail -n +2");
    std::string want;
    for (const auto& d : c.dns_names) want += (want.empty() ? "" : ", ") + std::string("DNS:") + d;
    for (const auto& ip : c.ip_addresses) want += (want.empty() ? "" : ", ") + std::string("IP Address:") + ip;
    std::string got = Trim(san.out);
    while (!got.empty() && got.front() == ' ') got.erase(0, 1);
    EXPECT_EQ(got, want) << c.label;
    // Days left: floor of the seconds to notAfter.
    EXPECT_EQ(c.days_left, (c.not_after - now) >= 0 ? (c.not_after - now) / 86400 : -((now - c.not_after + 86399) / 86400));
    // The chain: openssl verify against every CA of the tree, signatures only.
    CmdResult v = Shell("cat " + ShellQuote(Bad() + "/pki/ca.crt") + " " + ShellQuote(Bad() + "/pki/etcd/ca.crt") + " " +
                        ShellQuote(Bad() + "/pki/front-proxy-ca.crt") + " > " + ShellQuote(dir_->Sub("cas.pem")) +
                        " && openssl verify -no_check_time -CAfile " + ShellQuote(dir_->Sub("cas.pem")) + " " + ShellQuote(file));
    EXPECT_EQ(v.code == 0, !c.verified_by.empty()) << c.label << ": " << v.out << v.err;
  }
  const CertInfo* api = FindCert(r, "pki/apiserver.crt");
  ASSERT_NE(api, nullptr);
  EXPECT_EQ(api->subject, "CN=kube-apiserver");
  EXPECT_EQ(api->issuer, "CN=kubernetes");
  EXPECT_EQ(api->ip_addresses, (std::vector<std::string>{"10.96.0.1", "192.168.10.11"}));
  EXPECT_EQ(api->dns_names.size(), 4u);
  EXPECT_EQ(api->key, "pki/apiserver.key");
  EXPECT_EQ(api->verified_by, "pki/ca.crt");
  EXPECT_EQ(api->status, "ok");
  EXPECT_FALSE(api->is_ca);
  EXPECT_EQ(FindCert(r, "pki/apiserver-etcd-client.crt")->verified_by, "pki/etcd/ca.crt");
  EXPECT_EQ(FindCert(r, "pki/front-proxy-ca.crt")->verified_by, "pki/front-proxy-ca.crt");
  EXPECT_TRUE(FindCert(r, "pki/etcd/ca.crt")->is_ca);
  // admin.conf's embedded certificates, decoded from base64.
  const CertInfo* admin = FindCert(r, "admin.conf user kubernetes-admin client-certificate-data");
  ASSERT_NE(admin, nullptr) << PkiReportTable(r);
  EXPECT_EQ(admin->subject, "CN=kubernetes-admin,O=system:masters");
  EXPECT_EQ(admin->key, "admin.conf user kubernetes-admin client-key-data");
  EXPECT_EQ(admin->verified_by, "pki/ca.crt");
  EXPECT_NE(FindCert(r, "admin.conf cluster kubernetes certificate-authority-data"), nullptr);
}

TEST_F(PkiTest, ExpiredExpiringAndMismatchedAreProblems) {
  const int64_t now = Now();
  PkiReport r = CheckPki(Bad(), 30, now);
  EXPECT_FALSE(r.ok());
  const CertInfo* expired = FindCert(r, "pki/apiserver-kubelet-client.crt");
  ASSERT_NE(expired, nullptr);
  EXPECT_EQ(expired->status, "expired");
  EXPECT_EQ(backup::FormatUtc(expired->not_after), "2021-01-01T00:00:00Z");
  EXPECT_LT(expired->days_left, -365 * 5);
  EXPECT_EQ(expired->verified_by, "pki/ca.crt");  // expiry is its own problem, the signature is fine
  const CertInfo* soon = FindCert(r, "pki/front-proxy-client.crt");
  EXPECT_EQ(soon->status, "expiring");
  // 5 days from signing: 4 whole days left once a second has passed since, 5 within it.
  EXPECT_GE(soon->days_left, 4);
  EXPECT_LE(soon->days_left, 5);
  const CertInfo* peer = FindCert(r, "pki/etcd/peer.crt");
  EXPECT_EQ(peer->status, "mismatch");
  EXPECT_EQ(peer->key, "");
  ASSERT_EQ(r.mismatches.size(), 1u);
  EXPECT_EQ(r.mismatches[0].rfind("pki/etcd/peer.key: private key does not match pki/etcd/peer.crt", 0), 0u) << r.mismatches[0];
  EXPECT_EQ(r.problems.size(), 4u) << PkiReportTable(r);  // expired, expiring, key + cert side of the mismatch
  // A smaller warning window no longer flags the 5-day certificate.
  PkiReport r3 = CheckPki(Bad(), 3, now);
  EXPECT_EQ(FindCert(r3, "pki/front-proxy-client.crt")->status, "ok");
  // The sa pair and the consistent tree.
  PkiReport good = CheckPki(Good(), 30, now);
  EXPECT_TRUE(good.ok()) << PkiReportTable(good);
  bool sa = false;
  for (const auto& k : good.keys) {
    if (k.label == "pki/sa.key") {
      sa = true;
      EXPECT_EQ(k.matches, std::vector<std::string>{"pki/sa.pub"});
      EXPECT_EQ(k.type, "RSA 2048");
    }
  }
  EXPECT_TRUE(sa);
}

TEST_F(PkiTest, SaPairMismatchAndUnreadableFilesAreProblems) {
  testutil::TempDir t;
  Shell("cp -a " + ShellQuote(Good()) + " " + ShellQuote(t.Sub("k")));
  Shell("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " + ShellQuote(t.Sub("k/pki/sa.key")) + " 2>/dev/null");
  testutil::WriteFile(t.Sub("k/pki/broken.crt"), "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
  PkiReport r = CheckPki(t.Sub("k"), 30, Now());
  ASSERT_EQ(r.mismatches.size(), 1u) << PkiReportTable(r);
  EXPECT_EQ(r.mismatches[0], "pki/sa.key: private key does not match pki/sa.pub (different public keys)");
  bool broken = false;
  for (const auto& p : r.problems) broken = broken || p == "pki/broken.crt: no PEM certificate in it";
  EXPECT_TRUE(broken) << PkiReportTable(r);
}

TEST_F(PkiTest, CliExitCodesAndJson) {
  CmdResult bad = testutil::Exec(ETCDSAFE_BINARY, {"pki", "check", "--kubernetes-dir", Bad(), "-w", "json"});
  EXPECT_EQ(bad.code, 15) << bad.err;
  EXPECT_TRUE(testutil::IsOneLineError(bad)) << bad.err;
  auto j = nlohmann::json::parse(bad.out);
  EXPECT_FALSE(j["ok"].get<bool>());
  EXPECT_EQ(j["certificates"].size(), 12u);
  CmdResult good = testutil::Exec(ETCDSAFE_BINARY, {"pki", "check", "--kubernetes-dir", Good(), "-w", "table"});
  EXPECT_EQ(good.code, 0) << good.out << good.err;
  EXPECT_NE(good.out.find("pki/apiserver.crt"), std::string::npos) << good.out;
  EXPECT_NE(good.out.find("10.96.0.1"), std::string::npos) << good.out;
  // A threshold over every certificate's lifetime flags them all.
  CmdResult strict = testutil::Exec(ETCDSAFE_BINARY, {"pki", "check", "--kubernetes-dir", Good(), "--warn-days", "4000"});
  EXPECT_EQ(strict.code, 15);
  CmdResult missing = testutil::Exec(ETCDSAFE_BINARY, {"pki", "check", "--kubernetes-dir", dir_->Sub("nope")});
  EXPECT_EQ(missing.code, 10) << missing.err;
  EXPECT_TRUE(testutil::IsOneLineError(missing));
}

struct FileMeta {
  std::string data;
  mode_t mode;
  uid_t uid;
  gid_t gid;
  int64_t mtime_sec;
  long mtime_nsec;
  bool link;
};

std::map<std::string, FileMeta> Snapshot(const std::string& dir) {
  std::map<std::string, FileMeta> out;
  CmdResult l = Shell("cd " + ShellQuote(dir) + " && find . -mindepth 1 | sort");
  size_t start = 0;
  while (start < l.out.size()) {
    size_t nl = l.out.find('\n', start);
    std::string rel = l.out.substr(start + 2, nl - start - 2);
    start = nl + 1;
    struct stat st {};
    lstat((dir + "/" + rel).c_str(), &st);
    FileMeta m{"", static_cast<mode_t>(st.st_mode & 07777), st.st_uid, st.st_gid, st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
               S_ISLNK(st.st_mode)};
    if (S_ISREG(st.st_mode)) m.data = testutil::ReadFile(dir + "/" + rel);
    if (S_ISDIR(st.st_mode)) m.mtime_sec = m.mtime_nsec = 0;  // compared separately below
    out[rel] = m;
  }
  return out;
}

void ExpectSameTree(const std::string& a, const std::string& b) {
  auto x = Snapshot(a), y = Snapshot(b);
  ASSERT_EQ(x.size(), y.size());
  for (const auto& [rel, m] : x) {
    auto it = y.find(rel);
    ASSERT_NE(it, y.end()) << rel;
    EXPECT_EQ(m.data, it->second.data) << rel;
    EXPECT_EQ(m.mode, it->second.mode) << rel;
    EXPECT_EQ(m.uid, it->second.uid) << rel;
    EXPECT_EQ(m.gid, it->second.gid) << rel;
    EXPECT_EQ(m.link, it->second.link) << rel;
    if (!m.link) {
      EXPECT_EQ(m.mtime_sec, it->second.mtime_sec) << rel;
      EXPECT_EQ(m.mtime_nsec, it->second.mtime_nsec) << rel;
    }
  }
}

TEST_F(PkiTest, ArchiveRoundTripRestoresBytesModesOwnersTimes) {
  testutil::TempDir t;
  const std::string src = t.Sub("src");
  Shell("mkdir -p " + ShellQuote(src + "/etc") + " " + ShellQuote(src + "/var/lib/kubelet") + " && cp -a " +
        ShellQuote(Good()) + " " + ShellQuote(src + "/etc/kubernetes"));
  testutil::WriteFile(src + "/var/lib/kubelet/config.yaml", "kind: KubeletConfiguration\n");
  // Owners and modes that differ from the defaults, a relative link, and a foreign file type.
  Shell("cd " + ShellQuote(src + "/etc/kubernetes") + " && chown 1000:1001 pki/apiserver.crt && chmod 640 pki/apiserver.crt"
        " && ln -s etcd/ca.crt pki/etcd-ca-link.crt && touch -d '2024-02-03 04:05:06.123456789' pki/ca.crt"
        " && mkfifo pki/fifo && echo x > unrelated.txt && ln -s /etc/passwd pki/escape.crt");
  PkiPaths paths;
  paths.root = src;
  std::vector<std::string> notes;
  std::vector<ArchiveEntry> entries = CollectPkiEntries(paths, &notes);
  ASSERT_EQ(notes.size(), 2u);  // the fifo and the escaping link
  std::string tar = WriteTar(entries);
  // GNU tar reads it: names, modes and owners.
  testutil::WriteFile(t.Sub("a.tar"), tar);
  CmdResult list = Shell("tar -tvf " + ShellQuote(t.Sub("a.tar")) + " --numeric-owner");
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_NE(list.out.find("-rw-r----- 1000/1001"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("kubernetes/pki/etcd-ca-link.crt -> etcd/ca.crt"), std::string::npos) << list.out;
  EXPECT_NE(list.out.find("root/var/lib/kubelet/config.yaml"), std::string::npos) << list.out;
  EXPECT_EQ(list.out.find("unrelated.txt"), std::string::npos) << list.out;
  std::vector<ArchiveEntry> back = ReadTar(tar, "test");
  ASSERT_EQ(back.size(), entries.size());
  // Restore into an empty dir: identical tree (the fifo and the escaping link were skipped).
  Shell("rm -f " + ShellQuote(src + "/etc/kubernetes/pki/fifo") + " " + ShellQuote(src + "/etc/kubernetes/pki/escape.crt") +
        " " + ShellQuote(src + "/etc/kubernetes/unrelated.txt"));
  PkiRestoreOptions o;
  o.kubernetes_dir = t.Sub("out/etc/kubernetes");
  o.root = t.Sub("out");
  std::vector<PkiRestoreItem> items = RestorePkiEntries(back, o, &notes);
  for (const auto& i : items) EXPECT_EQ(i.action, "create") << i.target;
  ExpectSameTree(src, t.Sub("out"));
  struct stat st {};
  ASSERT_EQ(stat(t.Sub("out/etc/kubernetes/pki").c_str(), &st), 0);
  for (const auto& e : entries) {
    if (e.path != "kubernetes/pki") continue;
    EXPECT_EQ(st.st_mtim.tv_sec, e.mtime_sec);  // directory times are set after their files
    EXPECT_EQ(st.st_mtim.tv_nsec, e.mtime_nsec);
  }
  // Again: everything unchanged. A changed file: refused (nothing written) unless --force.
  for (const auto& i : RestorePkiEntries(back, o, &notes)) EXPECT_EQ(i.action, "unchanged") << i.target;
  testutil::WriteFile(t.Sub("out/etc/kubernetes/pki/apiserver.crt"), "changed\n");
  testutil::WriteFile(t.Sub("out/etc/kubernetes/admin.conf"), "changed\n");
  Shell("rm " + ShellQuote(t.Sub("out/etc/kubernetes/pki/ca.crt")));
  try {
    RestorePkiEntries(back, o, &notes);
    ADD_FAILURE() << "overwrote a differing file";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kAlreadyExists);
    EXPECT_NE(std::string(e.what()).find("admin.conf, which differs from the archive (and 1 more)"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(testutil::RunCommand("test -e " + ShellQuote(t.Sub("out/etc/kubernetes/pki/ca.crt"))) == 0);
  o.dry_run = true;
  std::map<std::string, std::string> actions;
  for (const auto& i : RestorePkiEntries(back, o, &notes)) actions[i.target.substr(t.Sub("out").size())] = i.action;
  EXPECT_EQ(actions["/etc/kubernetes/pki/ca.crt"], "create");
  EXPECT_EQ(actions["/etc/kubernetes/admin.conf"], "overwrite (differs: needs --force)");
  EXPECT_EQ(actions["/etc/kubernetes/pki/sa.key"], "unchanged");
  o.dry_run = false;
  o.force = true;
  RestorePkiEntries(back, o, &notes);
  ExpectSameTree(src, t.Sub("out"));
  // Without --root the files from outside the kubernetes dir are skipped.
  PkiRestoreOptions only;
  only.kubernetes_dir = t.Sub("only");
  bool skipped = false;
  for (const auto& i : RestorePkiEntries(back, only, &notes)) skipped = skipped || i.action.rfind("skip", 0) == 0;
  EXPECT_TRUE(skipped);
  EXPECT_NE(testutil::RunCommand("test -e " + ShellQuote(t.Sub("only/var"))), 0);
}

// A name the archive reader refuses (backslash, control bytes, invalid UTF-8) is skipped
// with a note at backup time, so every archive written reads back.
TEST_F(PkiTest, NamesTheReaderRefusesAreSkippedAtBackup) {
  testutil::TempDir t;
  const std::string src = t.Sub("src");
  Shell("mkdir -p " + ShellQuote(src + "/etc") + " && cp -a " + ShellQuote(Good()) + " " +
        ShellQuote(src + "/etc/kubernetes"));
  const std::string pki = src + "/etc/kubernetes/pki/";
  testutil::WriteFile(pki + "back\\slash.crt", "x");
  testutil::WriteFile(pki + "ctl\x01.crt", "x");
  testutil::WriteFile(pki + "bad\xff\xfe.crt", "x");
  testutil::WriteFile(pki + "caf\xc3\xa9.crt", "valid UTF-8 is kept");
  ASSERT_EQ(symlink("ca\\x.crt", (pki + "odd-link.crt").c_str()), 0);
  PkiPaths paths;
  paths.root = src;
  std::vector<std::string> notes;
  std::vector<ArchiveEntry> entries = CollectPkiEntries(paths, &notes);
  ASSERT_EQ(notes.size(), 4u) << ::testing::PrintToString(notes);
  for (const auto& n : notes) EXPECT_EQ(n.rfind("skipped ", 0), 0u) << n;
  bool kept = false;
  for (const auto& e : entries) {
    EXPECT_EQ(e.path.find("slash"), std::string::npos) << e.path;
    EXPECT_EQ(e.path.find("ctl"), std::string::npos) << e.path;
    EXPECT_EQ(e.path.find("odd-link"), std::string::npos) << e.path;
    kept = kept || e.path == "kubernetes/pki/caf\xc3\xa9.crt";
  }
  EXPECT_TRUE(kept);
  std::vector<ArchiveEntry> back = ReadTar(WriteTar(entries), "test");
  EXPECT_EQ(back.size(), entries.size());
}

TEST_F(PkiTest, PrivateKeysAreNeverMoreOpenThan0600) {
  testutil::TempDir t;
  ArchiveEntry dir{"kubernetes", ArchiveEntry::Type::kDir, 0755, 0, 0, "", "", 1700000000, 0, "", ""};
  ArchiveEntry key{"kubernetes/x.key", ArchiveEntry::Type::kFile, 0644, 0, 0, "", "", 1700000000, 0, "secret", ""};
  ArchiveEntry conf{"kubernetes/a.conf", ArchiveEntry::Type::kFile, 0666, 0, 0, "", "", 1700000000, 0,
                    "users:\n- user:\n    client-key-data: AAAA\n", ""};
  ArchiveEntry crt{"kubernetes/x.crt", ArchiveEntry::Type::kFile, 0644, 0, 0, "", "", 1700000000, 0, "public", ""};
  std::vector<ArchiveEntry> back = ReadTar(WriteTar({dir, key, conf, crt}), "t");
  PkiRestoreOptions o;
  o.kubernetes_dir = t.Sub("k");
  RestorePkiEntries(back, o, nullptr);
  struct stat st {};
  stat(t.Sub("k/x.key").c_str(), &st);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  stat(t.Sub("k/a.conf").c_str(), &st);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  stat(t.Sub("k/x.crt").c_str(), &st);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
}

TEST_F(PkiTest, RestoreNeverWritesThroughASymlink) {
  testutil::TempDir t;
  ArchiveEntry dir{"kubernetes", ArchiveEntry::Type::kDir, 0755, 0, 0, "", "", 1700000000, 0, "", ""};
  ArchiveEntry f{"kubernetes/pki/ca.crt", ArchiveEntry::Type::kFile, 0644, 0, 0, "", "", 1700000000, 0, "x", ""};
  std::vector<ArchiveEntry> back = ReadTar(WriteTar({dir, f}), "t");
  Shell("mkdir -p " + ShellQuote(t.Sub("k")) + " " + ShellQuote(t.Sub("elsewhere")) + " && ln -s ../elsewhere " +
        ShellQuote(t.Sub("k/pki")));
  PkiRestoreOptions o;
  o.kubernetes_dir = t.Sub("k");
  o.force = true;
  try {
    RestorePkiEntries(back, o, nullptr);
    ADD_FAILURE() << "wrote below a symlink";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is not a directory (a symlink or file)"), std::string::npos) << e.what();
  }
  EXPECT_NE(testutil::RunCommand("test -e " + ShellQuote(t.Sub("elsewhere/ca.crt"))), 0);
}

// A tar written by libarchive with whatever names and types we want.
// A libarchive writer appending to *out: pax_restricted (ustar unless a value needs pax) or
// pax (what etcdsafe <= 0.2 wrote, one 512-byte last block).
archive* LibarchiveWriter(std::string* out, bool restricted) {
  archive* a = archive_write_new();
  if (restricted) {
    archive_write_set_format_pax_restricted(a);
  } else {
    archive_write_set_format_pax(a);
    archive_write_set_bytes_in_last_block(a, 1);
  }
  archive_write_open(
      a, out, nullptr,
      [](archive*, void* c, const void* b, size_t n) -> la_ssize_t {
        static_cast<std::string*>(c)->append(static_cast<const char*>(b), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr);
  return a;
}

std::string RawTar(const std::vector<std::tuple<std::string, mode_t, std::string>>& entries) {
  std::string out;
  archive* a = LibarchiveWriter(&out, /*restricted=*/true);
  for (const auto& [name, type, data] : entries) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, 0644);
    if (type == AE_IFLNK) {
      archive_entry_set_symlink(e, data.c_str());
    } else if (type == AE_IFREG) {
      archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    }
    if (name == "kubernetes/hard") archive_entry_set_hardlink(e, "kubernetes/a");
    archive_write_header(a, e);
    if (type == AE_IFREG && !data.empty() && name != "kubernetes/hard") archive_write_data(a, data.data(), data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

TEST_F(PkiTest, HostileArchivesAreRefusedWithOneLine) {
  using E = std::vector<std::tuple<std::string, mode_t, std::string>>;
  const std::tuple<std::string, mode_t, std::string> top{"kubernetes", AE_IFDIR, ""};
  const std::vector<std::pair<std::string, E>> cases = {
      {"absolute", {top, {"/etc/passwd", AE_IFREG, "x"}}},
      {"dotdot", {top, {"kubernetes/../../x", AE_IFREG, "x"}}},
      {"dot", {top, {"kubernetes/./x", AE_IFREG, "x"}}},
      {"foreign top", {top, {"etc/x", AE_IFREG, "x"}}},
      {"root itself", {top, {"root", AE_IFDIR, ""}}},
      {"kubernetes file", {{"kubernetes", AE_IFREG, "x"}}},
      {"link escape", {top, {"kubernetes/l", AE_IFLNK, "../../etc"}}},
      {"absolute link", {top, {"kubernetes/l", AE_IFLNK, "/etc/shadow"}}},
      {"below link", {top, {"kubernetes/l", AE_IFLNK, "pki"}, {"kubernetes/l/x", AE_IFREG, "x"}}},
      {"below file", {top, {"kubernetes/f", AE_IFREG, "x"}, {"kubernetes/f/x", AE_IFREG, "x"}}},
      {"duplicate", {top, {"kubernetes/a", AE_IFREG, "x"}, {"kubernetes/a", AE_IFREG, "y"}}},
      {"control char", {top, {"kubernetes/a\x1b[2J", AE_IFREG, "x"}}},
      {"fifo", {top, {"kubernetes/p", AE_IFIFO, ""}}},
      {"device", {top, {"kubernetes/d", AE_IFCHR, ""}}},
      {"hard link", {top, {"kubernetes/a", AE_IFREG, "x"}, {"kubernetes/hard", AE_IFREG, ""}}},
  };
  for (const auto& [why, entries] : cases) {
    const std::string tar = RawTar(entries);
    try {
      ReadTar(tar, "backup x");
      ADD_FAILURE() << why << ": accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << why;
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << why;
      EXPECT_EQ(std::string(e.what()).rfind("backup x: hostile or damaged pki archive: ", 0), 0u) << why << ": " << e.what();
    }
  }
  // Garbage, truncation and a valid archive cut anywhere: an error, never a crash.
  const std::string good = RawTar({top, {"kubernetes/a", AE_IFREG, std::string(3000, 'a')}});
  EXPECT_EQ(ReadTar(good, "g").size(), 2u);
  // Every cut is refused, even at a block boundary: the end-of-archive marker is required.
  for (size_t cut = 0; cut < good.size(); cut += 100) {
    if (good.find_first_not_of('\0', cut) == std::string::npos) break;  // only the trailing zero padding is cut
    try {
      ReadTar(good.substr(0, cut), "cut");
      ADD_FAILURE() << "a cut at " << cut << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << cut;
    }
  }
  for (size_t cut : {size_t{512}, size_t{1024}, size_t{4096}, size_t{4608}}) EXPECT_THROW(ReadTar(good.substr(0, cut), "cut"), Error);
  // Cut inside the file's data: never read as complete.
  EXPECT_THROW(ReadTar(good.substr(0, good.find(std::string(3000, 'a')) + 1000), "cut"), Error);
  EXPECT_THROW(ReadTar(std::string(4096, '\x7f'), "garbage"), Error);
}

// ---- The tar codec (our own; libarchive is linked only here, to cross-check it) ----

ArchiveEntry Ent(const std::string& path, ArchiveEntry::Type type, mode_t mode, const std::string& data,
                 int64_t sec = 1700000000, long nsec = 0) {
  ArchiveEntry e;
  e.path = path;
  e.type = type;
  e.mode = mode;
  e.data = data;
  e.mtime_sec = sec;
  e.mtime_nsec = nsec;
  return e;
}

bool SameEntry(const ArchiveEntry& a, const ArchiveEntry& b) {
  return a.path == b.path && a.type == b.type && a.mode == b.mode && a.uid == b.uid && a.gid == b.gid &&
         a.uname == b.uname && a.gname == b.gname && a.mtime_sec == b.mtime_sec && a.mtime_nsec == b.mtime_nsec &&
         a.data == b.data;
}

void ExpectSameEntries(const std::vector<ArchiveEntry>& want, const std::vector<ArchiveEntry>& got, const std::string& how) {
  ASSERT_EQ(got.size(), want.size()) << how;
  for (size_t i = 0; i < want.size(); i++) {
    EXPECT_TRUE(SameEntry(want[i], got[i])) << how << ": entry " << i << " " << want[i].path << " read as " << got[i].path
                                            << " mode " << std::oct << got[i].mode << std::dec << " uid " << got[i].uid
                                            << " uname " << got[i].uname << " mtime " << got[i].mtime_sec << "."
                                            << got[i].mtime_nsec << " data " << got[i].data.size();
  }
}

// Every directory, file and link shape the codec must carry: ustar names, prefix-split
// names, pax paths past 256 bytes, a UTF-8 name, long link targets, owners past the octal
// fields, long owner names, nanosecond mtimes, empty and block-sized files. In the order
// CollectPkiEntries makes (a directory's entries together: GNU tar sets a directory's
// times once it has left it).
std::vector<ArchiveEntry> CodecEntries() {
  using T = ArchiveEntry::Type;
  const std::string d120(120, 'd'), e150(150, 'e');
  std::vector<ArchiveEntry> v = {
      Ent("kubernetes", T::kDir, 0755, "", 1700000000, 111111111),
      Ent("kubernetes/pki", T::kDir, 0700, "", 1700000001, 0),
      Ent("kubernetes/pki/ca.crt", T::kFile, 0644, "-----BEGIN CERTIFICATE-----\n", 1700000002, 123456789),
      Ent("kubernetes/pki/ca.key", T::kFile, 0600, std::string(3000, 'k'), 1700000003, 5),
      Ent("kubernetes/pki/zertifikat-\xc3\xbc.crt", T::kFile, 0644, "u\n", 1700000006, 0),
      Ent("kubernetes/pki/link.crt", T::kSymlink, 0777, "ca.crt", 1700000007, 7),
      Ent("kubernetes/empty.conf", T::kFile, 0640, "", 1700000004, 999999999),
      Ent("kubernetes/block.yaml", T::kFile, 0751, std::string(512, 'b'), 1700000005, 500000000),
      Ent("kubernetes/" + d120, T::kDir, 0755, "", 1700000008, 0),
      Ent("kubernetes/" + d120 + "/f.crt", T::kFile, 0644, "prefix-split\n", 1700000009, 0),
      Ent("kubernetes/" + d120 + "/" + e150, T::kDir, 0755, "", 1700000010, 10),
      Ent("kubernetes/" + d120 + "/" + e150 + "/file.crt", T::kFile, 0644, "pax path\n", 1700000011, 11),
      Ent("kubernetes/longlink", T::kSymlink, 0777, d120 + "/" + e150 + "/file.crt", 1700000012, 12),
  };
  v[3].uid = 3000000;  // past the 7 octal digits of the ustar field
  v[3].gid = 0xfffffffe;
  v[7].uid = 1234;
  v[7].gid = 5678;
  v[7].uname = std::string(40, 'u');  // past the 32-byte field
  v[7].gname = "grp";
  v[2].uname = v[2].gname = "root";
  return v;
}

// libarchive's reading of a tar (the cross-check, and what older versions used).
std::vector<ArchiveEntry> ReadWithLibarchive(const std::string& tar) {
  std::vector<ArchiveEntry> out;
  archive* a = archive_read_new();
  archive_read_support_format_tar(a);
  EXPECT_EQ(archive_read_open_memory(a, tar.data(), tar.size()), ARCHIVE_OK);
  for (;;) {
    archive_entry* ae = nullptr;
    int r = archive_read_next_header(a, &ae);
    if (r == ARCHIVE_EOF) break;
    EXPECT_EQ(r, ARCHIVE_OK) << (archive_error_string(a) ? archive_error_string(a) : "?");
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) break;
    ArchiveEntry e;
    e.path = archive_entry_pathname(ae);
    const mode_t type = archive_entry_filetype(ae);
    e.type = type == AE_IFDIR ? ArchiveEntry::Type::kDir
                              : type == AE_IFLNK ? ArchiveEntry::Type::kSymlink : ArchiveEntry::Type::kFile;
    EXPECT_TRUE(type == AE_IFDIR || type == AE_IFLNK || type == AE_IFREG) << e.path;
    if (e.type == ArchiveEntry::Type::kDir && e.path.back() == '/') e.path.pop_back();
    e.mode = archive_entry_perm(ae);
    e.uid = archive_entry_uid(ae);
    e.gid = archive_entry_gid(ae);
    e.uname = archive_entry_uname(ae) ? archive_entry_uname(ae) : "";
    e.gname = archive_entry_gname(ae) ? archive_entry_gname(ae) : "";
    e.mtime_sec = archive_entry_mtime(ae);
    e.mtime_nsec = archive_entry_mtime_nsec(ae);
    if (e.type == ArchiveEntry::Type::kSymlink) {
      e.data = archive_entry_symlink(ae);
    } else if (e.type == ArchiveEntry::Type::kFile) {
      e.data.resize(static_cast<size_t>(archive_entry_size(ae)));
      if (!e.data.empty()) {
        EXPECT_EQ(archive_read_data(a, e.data.data(), e.data.size()), static_cast<la_ssize_t>(e.data.size()));
      }
    }
    out.push_back(std::move(e));
  }
  archive_read_free(a);
  return out;
}

// The writer of etcdsafe <= 0.2 (libarchive's pax writer), verbatim: its archives must
// stay readable.
std::string LibarchivePaxTar(const std::vector<ArchiveEntry>& entries) {
  std::string out;
  archive* a = LibarchiveWriter(&out, /*restricted=*/false);
  for (const auto& e : entries) {
    archive_entry* ae = archive_entry_new();
    archive_entry_set_pathname(ae, e.path.c_str());
    archive_entry_set_perm(ae, e.mode & 07777);
    archive_entry_set_uid(ae, e.uid);
    archive_entry_set_gid(ae, e.gid);
    if (!e.uname.empty()) archive_entry_set_uname(ae, e.uname.c_str());
    if (!e.gname.empty()) archive_entry_set_gname(ae, e.gname.c_str());
    archive_entry_set_mtime(ae, e.mtime_sec, e.mtime_nsec);
    switch (e.type) {
      case ArchiveEntry::Type::kFile:
        archive_entry_set_filetype(ae, AE_IFREG);
        archive_entry_set_size(ae, static_cast<la_int64_t>(e.data.size()));
        break;
      case ArchiveEntry::Type::kDir:
        archive_entry_set_filetype(ae, AE_IFDIR);
        archive_entry_set_size(ae, 0);
        break;
      case ArchiveEntry::Type::kSymlink:
        archive_entry_set_filetype(ae, AE_IFLNK);
        archive_entry_set_symlink(ae, e.data.c_str());
        archive_entry_set_size(ae, 0);
        break;
    }
    // Non-ASCII names warn in the C locale (hdrcharset=BINARY); etcdsafe <= 0.2 refused them.
    const int r = archive_write_header(a, ae);
    EXPECT_TRUE(r == ARCHIVE_OK || (r == ARCHIVE_WARN && e.path.find('\xc3') != std::string::npos)) << e.path;
    if (e.type == ArchiveEntry::Type::kFile && !e.data.empty()) archive_write_data(a, e.data.data(), e.data.size());
    archive_entry_free(ae);
  }
  EXPECT_EQ(archive_write_close(a), ARCHIVE_OK);
  archive_write_free(a);
  return out;
}

TEST(PkiTar, GnuTarAndLibarchiveReadOurTarIdentically) {
  testutil::TempDir t;
  const std::vector<ArchiveEntry> entries = CodecEntries();
  const std::string tar = WriteTar(entries);
  EXPECT_EQ(tar.size() % 512, 0u);
  EXPECT_EQ(tar.substr(tar.size() - 1024), std::string(1024, '\0'));
  ExpectSameEntries(entries, ReadTar(tar, "ours"), "ReadTar");
  ExpectSameEntries(entries, ReadWithLibarchive(tar), "libarchive");
  testutil::WriteFile(t.Sub("a.tar"), tar);
  // GNU tar lists it without a warning: modes, numeric owners, nanosecond times, links.
  CmdResult list = Shell("TZ=UTC tar -tvf " + ShellQuote(t.Sub("a.tar")) + " --full-time --numeric-owner | tr -s ' '");
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_EQ(list.err, "");
  EXPECT_NE(list.out.find("-rw------- 3000000/4294967294 3000 2023-11-14 22:13:23.000000005 kubernetes/pki/ca.key\n"),
            std::string::npos) << list.out;
  EXPECT_NE(list.out.find("-rwxr-x--x 1234/5678 512 2023-11-14 22:13:25.5 kubernetes/block.yaml\n"), std::string::npos)
      << list.out;
  EXPECT_NE(list.out.find("lrwxrwxrwx 0/0 0 2023-11-14 22:13:27.000000007 kubernetes/pki/link.crt -> ca.crt\n"),
            std::string::npos) << list.out;
  EXPECT_NE(list.out.find(entries.back().path + " -> " + entries.back().data + "\n"), std::string::npos) << list.out;
  CmdResult names = Shell("tar -tvf " + ShellQuote(t.Sub("a.tar")));
  EXPECT_NE(names.out.find(" " + std::string(40, 'u') + "/grp "), std::string::npos) << names.out;
  // GNU tar extracts it: the same names, types, modes, owners, mtimes, targets and bytes.
  Shell("mkdir " + ShellQuote(t.Sub("x")));
  CmdResult x = Shell("tar -xf " + ShellQuote(t.Sub("a.tar")) + " --numeric-owner -C " + ShellQuote(t.Sub("x")));
  ASSERT_EQ(x.code, 0) << x.err;
  EXPECT_EQ(x.err, "");
  std::string found;
  ASSERT_EQ(testutil::RunCommand("cd " + ShellQuote(t.Sub("x")) + " && find . | LC_ALL=C sort", &found), 0);
  std::vector<std::string> want_names = {"."};
  for (const auto& e : entries) want_names.push_back("./" + e.path);
  std::sort(want_names.begin(), want_names.end());
  std::string want_found;
  for (const auto& n : want_names) want_found += n + "\n";
  EXPECT_EQ(found, want_found);
  for (const auto& e : entries) {
    const std::string p = t.Sub("x/" + e.path);
    struct stat st {};
    ASSERT_EQ(lstat(p.c_str(), &st), 0) << e.path;
    EXPECT_EQ(st.st_uid, static_cast<uid_t>(e.uid)) << e.path;
    EXPECT_EQ(st.st_gid, static_cast<gid_t>(e.gid)) << e.path;
    EXPECT_EQ(st.st_mtim.tv_sec, e.mtime_sec) << e.path;
    EXPECT_EQ(st.st_mtim.tv_nsec, e.mtime_nsec) << e.path;
    switch (e.type) {
      case ArchiveEntry::Type::kDir:
        EXPECT_TRUE(S_ISDIR(st.st_mode)) << e.path;
        EXPECT_EQ(st.st_mode & 07777, e.mode) << e.path;
        break;
      case ArchiveEntry::Type::kFile:
        EXPECT_TRUE(S_ISREG(st.st_mode)) << e.path;
        EXPECT_EQ(st.st_mode & 07777, e.mode) << e.path;
        EXPECT_EQ(testutil::ReadFile(p), e.data) << e.path;
        break;
      case ArchiveEntry::Type::kSymlink: {
        EXPECT_TRUE(S_ISLNK(st.st_mode)) << e.path;
        char buf[4097];
        ssize_t n = readlink(p.c_str(), buf, sizeof buf);
        EXPECT_EQ(std::string(buf, static_cast<size_t>(std::max<ssize_t>(n, 0))), e.data) << e.path;
        break;
      }
    }
  }
}

TEST(PkiTar, ReadsTheLibarchivePaxOfOlderVersions) {
  // The same entries through the old writer: pax headers named PaxHeader/..., full-width
  // octal uids, base-256 fallbacks, hdrcharset=BINARY for the UTF-8 name.
  const std::vector<ArchiveEntry> entries = CodecEntries();
  const std::string old = LibarchivePaxTar(entries);
  EXPECT_NE(old.find("hdrcharset=BINARY"), std::string::npos);
  ExpectSameEntries(entries, ReadTar(old, "old"), "ReadTar of libarchive's pax");
  // Real objects written by `etcdsafe pki backup` with libarchive (the fuzz seeds).
  for (const char* name : {"writer_small", "writer_kubeadm_tree"}) {
    const std::string tar = testutil::ReadFile(std::string(ETCDSAFE_SOURCE_DIR) + "/tests/fuzz/corpus/pki_archive/" + name);
    std::vector<ArchiveEntry> ours = ReadTar(tar, name);
    EXPECT_GE(ours.size(), 6u) << name;
    ExpectSameEntries(ReadWithLibarchive(tar), ours, name);
    bool nsec = false;
    for (const auto& e : ours) nsec = nsec || e.mtime_nsec != 0;
    EXPECT_TRUE(nsec) << name;
    // And written again by ours, read back the same.
    ExpectSameEntries(ours, ReadTar(WriteTar(ours), name), std::string(name) + " rewritten");
  }
  // Plain ustar as GNU tar writes it (padded to 10 KiB after the end marker): accepted.
  const std::string ustar = testutil::ReadFile(std::string(ETCDSAFE_SOURCE_DIR) + "/tests/fuzz/corpus/pki_archive/small_valid");
  ExpectSameEntries(ReadWithLibarchive(ustar), ReadTar(ustar, "ustar"), "small_valid");
}

TEST(PkiTar, ExtremeValuesRoundTrip) {
  using T = ArchiveEntry::Type;
  std::vector<ArchiveEntry> v = {
      Ent("kubernetes", T::kDir, 07777, "", 0, 0),
      Ent("root/" + std::string(4091, 'p'), T::kDir, 0, "", -5, 250000000),  // 4096 bytes, 4097 with its slash
      Ent("root/neg", T::kFile, 0644, "n", -1, 999999999),
      Ent("root/neg2", T::kFile, 0644, "n", -7, 0),
      Ent("root/big", T::kFile, 0644, "b", 999999999999999999, 999999999),
      Ent("root/past-octal", T::kFile, 0644, "o", 8589934592, 0),  // 8^11: past the 11-digit mtime field
  };
  v[2].uid = v[2].gid = 0xfffffffe;
  v[3].uname = std::string(256, 'x');
  v[3].gname = std::string(31, 'g');
  v[4].uname = std::string(32, 'y');
  const std::string tar = WriteTar(v);
  EXPECT_NE(tar.find("mtime=-4.75\n"), std::string::npos);    // -5 + .25
  EXPECT_NE(tar.find("mtime=-0.000000001\n"), std::string::npos);
  ExpectSameEntries(v, ReadTar(tar, "extreme"), "extreme");
  // libarchive agrees on the non-negative times.
  std::vector<ArchiveEntry> la = ReadWithLibarchive(tar);
  ASSERT_EQ(la.size(), v.size());
  for (size_t i : {size_t{0}, size_t{4}, size_t{5}}) EXPECT_TRUE(SameEntry(v[i], la[i])) << v[i].path;
  EXPECT_EQ(la[3].uname, v[3].uname);
  // A directory name of 4097 bytes (without its slash) is refused.
  v[1].path += "q";
  EXPECT_THROW(ReadTar(WriteTar(v), "long"), Error);
}

// One ustar header, by hand, for the structures no writer makes.
struct RawHeader {
  char h[512] = {};
  RawHeader(const std::string& name, char type, uint64_t size) {
    Set(0, 100, name);
    Octal(100, 8, 0644);
    Octal(108, 8, 0);
    Octal(116, 8, 0);
    Octal(124, 12, size);
    Octal(136, 12, 1700000000);
    h[156] = type;
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
  }
  RawHeader& Set(size_t off, size_t len, const std::string& s) {
    memset(h + off, 0, len);
    memcpy(h + off, s.data(), std::min(len, s.size()));
    return *this;
  }
  RawHeader& Octal(size_t off, size_t len, uint64_t v) {
    for (size_t i = len - 1; i-- > 0; v >>= 3) h[off + i] = static_cast<char>('0' + (v & 7));
    h[off + len - 1] = '\0';
    return *this;
  }
  std::string Block() const {
    char c[512];
    memcpy(c, h, 512);
    memset(c + 148, ' ', 8);
    unsigned sum = 0;
    for (unsigned char b : c) sum += b;
    snprintf(c + 148, 8, "%06o", sum);
    c[155] = ' ';
    return std::string(c, 512);
  }
};
std::string Padded(const std::string& d) { return d + std::string((512 - d.size() % 512) % 512, '\0'); }
std::string File(const std::string& name, const std::string& d) { return RawHeader(name, '0', d.size()).Block() + Padded(d); }
std::string Pax(const std::string& records, char type = 'x') {
  return RawHeader("PaxHeaders/x", type, records.size()).Block() + Padded(records);
}
std::string Rec(const std::string& kv) {  // "<len> key=value\n"
  size_t len = kv.size() + 3;
  while (std::to_string(len).size() + kv.size() + 2 != len) len = std::to_string(len).size() + kv.size() + 2;
  return std::to_string(len) + " " + kv + "\n";
}

TEST(PkiTar, HostileStructureIsRefusedWithOneLine) {
  const std::string top = RawHeader("kubernetes/", '5', 0).Block();
  const std::string end(1024, '\0');
  const std::string a = File("kubernetes/a", "x");
  RawHeader bad_sum("kubernetes/a", '0', 0);
  std::string bad_sum_block = bad_sum.Block();
  bad_sum_block[20] = 'z';
  auto with = [](RawHeader h, size_t off, size_t len, const std::string& s) { return h.Set(off, len, s).Block(); };
  const RawHeader file0("kubernetes/a", '0', 0);
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"checksum", top + bad_sum_block + end, "checksum mismatch"},
      {"GNU magic", top + with(file0, 257, 8, std::string("ustar  \0", 8)) + end, "not a POSIX ustar/pax header"},
      {"v7 header", top + with(file0, 257, 8, "") + end, "not a POSIX ustar/pax header"},
      {"GNU long name", top + RawHeader("././@LongLink", 'L', 13).Block() + Padded("kubernetes/a") + a + end, "GNU long name"},
      {"GNU long link", top + RawHeader("././@LongLink", 'K', 2).Block() + Padded("x") + a + end, "GNU long name"},
      {"sparse", top + RawHeader("kubernetes/s", 'S', 0).Block() + end, "sparse"},
      {"contiguous", top + RawHeader("kubernetes/c", '7', 0).Block() + end, "not a file, directory or symlink"},
      {"global pax", top + Pax(Rec("path=kubernetes/g"), 'g') + a + end, "global pax header"},
      {"unknown pax key", top + Pax(Rec("SCHILY.xattr.user.a=b")) + a + end, "unsupported pax key \"SCHILY.xattr.user.a\""},
      {"pax sparse", top + Pax(Rec("GNU.sparse.major=1")) + a + end, "unsupported pax key"},
      {"pax length past", top + Pax("99 path=kubernetes/b\n") + a + end, "length out of bounds"},
      {"pax length short", top + Pax("5 path=kubernetes/b\n") + a + end, "a pax record"},
      {"pax length zero", top + Pax("0 \n") + a + end, "length out of bounds"},
      {"pax no length", top + Pax("path=kubernetes/b\n") + a + end, "without its length"},
      {"pax no newline", top + Pax("20 path=kubernetes/bb") + a + end, "newline"},
      {"pax no key", top + Pax(Rec("=kubernetes/b")) + a + end, "without a key"},
      {"pax no equals", top + Pax(Rec("pathkubernetes/b")) + a + end, "without a key"},
      {"pax key twice", top + Pax(Rec("path=kubernetes/b") + Rec("path=kubernetes/c")) + a + end, "twice"},
      {"pax trailing bytes", top + Pax(Rec("path=kubernetes/b") + "\n") + a + end, "without its length"},
      {"pax uid too big", top + Pax(Rec("uid=4294967295")) + a + end, "bad owner"},
      {"pax uid sign", top + Pax(Rec("uid=-1")) + a + end, "bad pax uid"},
      {"pax size sign", top + Pax(Rec("size=+1")) + a + end, "bad pax size"},
      {"pax size too big", top + Pax(Rec("size=16777217")) + a + end, "over 16 MiB"},
      {"pax size past input", top + Pax(Rec("size=4096")) + a + end, "truncated"},
      {"pax bad mtime", top + Pax(Rec("mtime=1.2.3")) + a + end, "bad pax mtime"},
      {"pax mtime too big", top + Pax(Rec("mtime=1000000000000000000")) + a + end, "bad pax mtime"},
      {"pax path escapes", top + Pax(Rec("path=kubernetes/../x")) + a + end, "\"..\""},
      {"pax path absolute", top + Pax(Rec("path=/etc/shadow")) + a + end, "absolute"},
      {"two pax headers", top + Pax(Rec("path=kubernetes/b")) + Pax(Rec("uid=1")) + a + end, "two pax headers"},
      {"pax at the end", top + Pax(Rec("path=kubernetes/b")) + end, "pax header without its entry"},
      {"pax over 64 KiB", top + Pax(Rec("atime=" + std::string(70000, '1'))) + a + end, "over 64 KiB"},
      {"pax cut", top + RawHeader("PaxHeaders/x", 'x', 100).Block() + "30 path=", "truncated"},
      {"size garbage", top + with(file0, 124, 12, "0000000001a") + end, "bad size field"},
      {"size empty", top + with(file0, 124, 12, "") + end, "bad size field"},
      {"size negative base-256", top + with(file0, 124, 12, std::string(11, '\xff') + "\xfe") + end, "bad size field"},
      {"uid base-256 huge", top + with(file0, 108, 8, "\x80\xff\xff\xff\xff\xff\xff\xff") + end, "bad owner"},
      {"mtime base-256 overflow", top + with(file0, 136, 12, "\x80\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff") + end, "malformed numeric"},
      {"mode garbage", top + with(file0, 100, 8, "064 4") + end, "malformed numeric"},
      {"directory with data", top + RawHeader("kubernetes/d/", '5', 3).Block() + Padded("abc") + end, "with data"},
      {"symlink with data", top + RawHeader("kubernetes/l", '2', 3).Set(157, 100, "a").Block() + Padded("abc") + end, "with data"},
      {"file with link target", top + RawHeader("kubernetes/f", '0', 0).Set(157, 100, "a").Block() + end, "link target"},
      {"prefix escapes", top + RawHeader("x", '0', 0).Set(345, 155, "kubernetes/..").Block() + end, "\"..\""},
      {"no end marker", top + a, "no end-of-archive marker"},
      {"lone zero block at the end", top + a + std::string(512, '\0'), "truncated"},
      {"lone zero block inside", top + std::string(512, '\0') + a + end, "lone zero block"},
      {"data after the end", top + end + "garbage", "after the end-of-archive marker"},
      {"a block after the end", top + end + a + end, "after the end-of-archive marker"},
      {"file cut", top + RawHeader("kubernetes/a", '0', 3000).Block() + std::string(1000, 'a'), "is truncated"},
      {"padding cut", top + RawHeader("kubernetes/a", '0', 3000).Block() + std::string(3000, 'a'), "truncated"},
      {"header cut", top + a.substr(0, 300), "truncated"},
  };
  for (const auto& [why, tar, expect] : cases) {
    try {
      ReadTar(tar, "backup x");
      ADD_FAILURE() << why << ": accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << why;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << why;
      EXPECT_EQ(msg.rfind("backup x: hostile or damaged pki archive: ", 0), 0u) << why << ": " << msg;
      EXPECT_NE(msg.find(expect), std::string::npos) << why << ": " << msg;
    }
  }
  // What the same forge makes when it is well formed is accepted: the pax keys applied,
  // atime/ctime/hdrcharset ignored, '\0' as a file type, base-256 and full-width octal
  // numbers, a prefix, and GNU tar's zero padding after the end marker.
  const std::string ok = top + Pax(Rec("path=kubernetes/long") + Rec("uid=3000000") + Rec("uname=someone") +
                                   Rec("mtime=1700000000.5") + Rec("atime=1.25") + Rec("ctime=2") + Rec("hdrcharset=BINARY")) +
                         a + RawHeader("kubernetes/b", '\0', 2).Set(108, 8, std::string("\x80\0\0\0\0\0\0\x05", 8)).Block() +
                         Padded("bb") + RawHeader("c", '0', 0).Set(345, 155, "kubernetes/sub").Set(116, 8, "13343300").Block() +
                         end + std::string(8192, '\0');
  std::vector<ArchiveEntry> got = ReadTar(ok, "ok");
  ASSERT_EQ(got.size(), 4u);
  EXPECT_EQ(got[1].path, "kubernetes/long");
  EXPECT_EQ(got[1].uid, 3000000);
  EXPECT_EQ(got[1].uname, "someone");
  EXPECT_EQ(got[1].mtime_sec, 1700000000);
  EXPECT_EQ(got[1].mtime_nsec, 500000000);
  EXPECT_EQ(got[1].data, "x");
  EXPECT_EQ(got[2].path, "kubernetes/b");
  EXPECT_EQ(got[2].uid, 5);
  EXPECT_EQ(got[2].data, "bb");
  EXPECT_EQ(got[3].path, "kubernetes/sub/c");
  EXPECT_EQ(got[3].gid, 3000000);
  ExpectSameEntries(ReadWithLibarchive(ok), got, "libarchive on the forge");
  // GNU-format tars (the old reader took them) are refused now.
  EXPECT_THROW(ReadTar(testutil::ReadFile(std::string(ETCDSAFE_SOURCE_DIR) + "/tests/fuzz/corpus/pki_archive/gnu_format"), "gnu"),
               Error);
}

TEST(Base64, StrictDecoding) {
  std::string out;
  EXPECT_TRUE(DecodeBase64("aGVsbG8=", &out));
  EXPECT_EQ(out, "hello");
  EXPECT_TRUE(DecodeBase64("aGVs\nbG8h", &out));
  EXPECT_EQ(out, "hello!");
  EXPECT_FALSE(DecodeBase64("aGVsbG8", &out));
  EXPECT_FALSE(DecodeBase64("aG=sbG8=", &out));
  EXPECT_FALSE(DecodeBase64("aGVsbG8*", &out));
  EXPECT_FALSE(DecodeBase64("", &out));
}

}  // namespace
}  // namespace etcdsafe::controlplane
