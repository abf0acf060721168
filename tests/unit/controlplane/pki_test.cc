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
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>

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
std::string RawTar(const std::vector<std::tuple<std::string, mode_t, std::string>>& entries) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_open(
      a, &out, nullptr,
      [](archive*, void* c, const void* b, size_t n) -> la_ssize_t {
        static_cast<std::string*>(c)->append(static_cast<const char*>(b), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr);
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
  for (size_t cut : {size_t{0}, size_t{100}, size_t{512}, size_t{700}, size_t{1500}, size_t{4000}}) {
    try {
      auto e = ReadTar(good.substr(0, cut), "cut");
      EXPECT_LT(e.size(), 2u) << cut;  // a cut at a block boundary may read as fewer entries
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    }
  }
  // Cut inside the file's data: never read as complete.
  EXPECT_THROW(ReadTar(good.substr(0, good.find(std::string(3000, 'a')) + 1000), "cut"), Error);
  EXPECT_THROW(ReadTar(std::string(4096, '\x7f'), "garbage"), Error);
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
