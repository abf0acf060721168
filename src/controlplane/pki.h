// The certificates and keys of a kubeadm control plane, read and checked: `etcdsafe pki
// check`, and the consistency check `pki backup` runs before it archives a tree.
//
// CheckPki reads a kubernetes directory (kubeadm's /etc/kubernetes):
//   pki/**/*.crt, *.pem   certificates (a file may hold several, a bundle)
//   pki/**/*.key          private keys (PEM, unencrypted; an encrypted one is a problem)
//   pki/**/*.pub          public keys (sa.pub)
//   *.conf                kubeconfigs: the base64 certificate-authority-data,
//                         client-certificate-data and client-key-data they embed
// and reports, for every certificate: subject and issuer (RFC 2253), DNS and IP SANs,
// not-before/not-after, whole days left (floor), serial (hex), whether it is a CA, which
// private key in the tree holds its public key (EVP_PKEY_eq), and whether its chain
// verifies (X509_verify_cert, signatures only: expiry is reported on its own) to a CA
// certificate of the tree (ca.crt, etcd/ca.crt, front-proxy-ca.crt, any other CA).
//
// Problems (each one line, "<label>: <what>"), any of which makes the report !ok():
//   expired; expires within warn_days; not yet valid; a key whose partner does not hold
//   its public key (pki/X.key vs pki/X.crt, sa.key vs sa.pub, a kubeconfig's
//   client-key-data vs its client-certificate-data) — these are also in `mismatches`;
//   a chain that does not verify; a file that cannot be parsed.
// Labels are paths relative to the kubernetes directory ("pki/apiserver.crt",
// "admin.conf client-certificate-data"). Files are read with bounded sizes (1 MiB each,
// 10,000 files); symlinks are not followed. Reads only; never throws for a bad file
// (it becomes a problem), only for a directory that does not exist (kNotFound).
// Thread-compatible.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"

namespace etcdsafe::controlplane {

struct CertInfo {
  std::string label;
  std::string subject, issuer;  // RFC 2253, as `openssl x509 -nameopt RFC2253`
  std::vector<std::string> dns_names, ip_addresses;
  int64_t not_before = 0, not_after = 0;  // UTC seconds
  int64_t days_left = 0;                  // floor((not_after - now) / 1 day); negative when expired
  std::string serial;                     // upper-case hex, as `openssl x509 -serial`
  bool is_ca = false;
  std::string key;          // label of the private key holding its public key ("" none in the tree)
  std::string verified_by;  // label of the tree's CA its chain verifies to ("" when it does not)
  std::vector<std::string> problems;  // without the label
  // "ok", or the worst problem's word: "expired", "mismatch", "chain", "expiring", "invalid".
  std::string status = "ok";
};

struct KeyInfo {
  std::string label;
  std::string type;                  // "RSA 2048", "EC 256", "ED25519", ...; "public RSA 2048" for *.pub
  std::vector<std::string> matches;  // labels of certificates (and *.pub) holding the same public key
  std::vector<std::string> problems;
};

struct PkiReport {
  std::string dir;
  int warn_days = 30;
  int64_t now = 0;
  std::vector<CertInfo> certs;
  std::vector<KeyInfo> keys;
  std::vector<std::string> problems;    // "<label>: <what>", every problem of certs, keys and files
  std::vector<std::string> mismatches;  // the key/certificate mismatches among them
  bool ok() const { return problems.empty(); }
};

PkiReport CheckPki(const std::string& kubernetes_dir, int warn_days, int64_t now_unix);

// -w json: {"dir","warn_days","ok","problems":[...],"certificates":[...],"keys":[...]}.
std::string PkiReportJson(const PkiReport& report);
// -w table: one row per certificate, then one per key, then the problems.
std::string PkiReportTable(const PkiReport& report);

// `pki backup` refuses a tree whose keys do not match their certificates (an archive that
// cannot bring a control plane back); the CLI maps it to its own exit code.
class PkiInconsistentError : public Error {
 public:
  explicit PkiInconsistentError(const std::string& message) : Error(ErrorCode::kDataLoss, message) {}
};

// Strict standard base64 (whitespace ignored, padding checked); nullopt-like false on bad input.
bool DecodeBase64(const std::string& in, std::string* out);

}  // namespace etcdsafe::controlplane
