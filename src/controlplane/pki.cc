#include "controlplane/pki.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>

#include "backup/layout.h"
#include "backup/manifest.h"
#include "base/file.h"
#include "snapshot/status_format.h"

namespace etcdsafe::controlplane {
namespace {

struct DirCloser {
  void operator()(DIR* d) const { closedir(d); }
};

constexpr size_t kMaxFileBytes = 1 << 20;
constexpr size_t kMaxFiles = 10000;
constexpr int kMaxDepth = 8;

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Never prompts: an encrypted key is reported, not asked for.
int NoPassword(char*, int, int, void*) { return -1; }

struct Cert {
  X509Ptr x509;
  CertInfo info;
  std::string partner_key;  // label of the key that must match ("" when none is expected)
};

struct Key {
  PkeyPtr pkey;
  KeyInfo info;
  bool is_public = false;
  std::string partner;  // label of the certificate or public key that must match
};

std::string NameString(const X509_NAME* name) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

int64_t AsnTime(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

std::string KeyType(EVP_PKEY* k) {
  int id = EVP_PKEY_get_base_id(k);
  int bits = EVP_PKEY_get_bits(k);
  switch (id) {
    case EVP_PKEY_RSA: return "RSA " + std::to_string(bits);
    case EVP_PKEY_EC: return "EC " + std::to_string(bits);
    case EVP_PKEY_ED25519: return "ED25519";
    case EVP_PKEY_ED448: return "ED448";
    default: return std::string(OBJ_nid2sn(id) ? OBJ_nid2sn(id) : "unknown") + " " + std::to_string(bits);
  }
}

CertInfo Describe(X509* x, const std::string& label, int64_t now) {
  CertInfo c;
  c.label = label;
  c.subject = NameString(X509_get_subject_name(x));
  c.issuer = NameString(X509_get_issuer_name(x));
  c.not_before = AsnTime(X509_get0_notBefore(x));
  c.not_after = AsnTime(X509_get0_notAfter(x));
  int64_t diff = c.not_after - now;
  c.days_left = diff >= 0 ? diff / 86400 : -((-diff + 86399) / 86400);
  std::unique_ptr<BIGNUM, decltype(&BN_free)> bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), nullptr), BN_free);
  if (bn) {
    char* hex = BN_bn2hex(bn.get());
    c.serial = hex != nullptr ? hex : "";
    OPENSSL_free(hex);
  }
  c.is_ca = (X509_get_extension_flags(x) & EXFLAG_CA) != 0;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
      if (g->type == GEN_DNS) {
        const ASN1_IA5STRING* s = g->d.dNSName;
        c.dns_names.push_back(backup::EscapeForTerminal(
            std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), static_cast<size_t>(ASN1_STRING_length(s)))));
      } else if (g->type == GEN_IPADD) {
        const ASN1_OCTET_STRING* s = g->d.iPAddress;
        char buf[INET6_ADDRSTRLEN] = {};
        int len = ASN1_STRING_length(s);
        const unsigned char* p = ASN1_STRING_get0_data(s);
        if (len == 4) {
          inet_ntop(AF_INET, p, buf, sizeof buf);
        } else if (len == 16) {
          inet_ntop(AF_INET6, p, buf, sizeof buf);
        }
        if (buf[0] != '\0') c.ip_addresses.push_back(buf);
      }
    }
    GENERAL_NAMES_free(sans);
  }
  return c;
}

class Scanner {
 public:
  Scanner(std::string dir, int64_t now) : dir_(std::move(dir)), now_(now) {}

  void Walk(const std::string& rel, int depth) {
    const std::string path = rel.empty() ? dir_ : dir_ + "/" + rel;
    std::unique_ptr<DIR, DirCloser> d(opendir(path.c_str()));
    if (!d) {
      if (!rel.empty()) Problem(rel, "cannot read directory");
      return;
    }
    std::vector<std::string> names;
    while (dirent* e = readdir(d.get())) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      if (++files_ > kMaxFiles) {
        if (files_ == kMaxFiles + 1) Problem(rel.empty() ? "." : rel, "more than 10000 files: the rest is not checked");
        return;
      }
      const std::string child = rel.empty() ? n : rel + "/" + n;
      struct stat st {};
      if (lstat((dir_ + "/" + child).c_str(), &st) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        // Top level: only pki/ is walked; kubeconfigs are top-level files.
        if ((rel.empty() && n != "pki") || depth >= kMaxDepth) continue;
        Walk(child, depth + 1);
        continue;
      }
      if (!S_ISREG(st.st_mode)) continue;  // symlinks are not followed
      if (rel.empty()) {
        if (EndsWith(n, ".conf")) Kubeconfig(child);
        continue;
      }
      if (EndsWith(n, ".crt") || EndsWith(n, ".pem")) {
        CertFile(child);
      } else if (EndsWith(n, ".key")) {
        KeyFile(child);
      } else if (EndsWith(n, ".pub")) {
        PubFile(child);
      }
    }
  }

  PkiReport Finish(int warn_days) {
    PkiReport r;
    r.dir = dir_;
    r.warn_days = warn_days;
    r.now = now_;
    MatchKeys(r);
    VerifyChains();
    for (auto& c : certs_) {
      CertInfo& i = c.info;
      if (now_ > i.not_after) {
        i.problems.insert(i.problems.begin(), "expired " + std::to_string(-i.days_left) + " days ago (" +
                                                  backup::FormatUtc(i.not_after) + ")");
      } else if (i.days_left < warn_days) {
        i.problems.push_back("expires in " + std::to_string(i.days_left) + " days (" + backup::FormatUtc(i.not_after) +
                             "), within the warning of " + std::to_string(warn_days));
      }
      if (now_ < i.not_before) i.problems.push_back("not valid before " + backup::FormatUtc(i.not_before));
      i.status = StatusWord(i.problems);
      for (const auto& p : i.problems) r.problems.push_back(i.label + ": " + p);
      r.certs.push_back(i);
    }
    for (auto& k : keys_) {
      for (const auto& p : k.info.problems) r.problems.push_back(k.info.label + ": " + p);
      r.keys.push_back(k.info);
    }
    for (const auto& p : file_problems_) r.problems.push_back(p);
    r.mismatches = mismatches_;
    return r;
  }

 private:
  static std::string StatusWord(const std::vector<std::string>& problems) {
    auto has = [&](const char* prefix) {
      return std::any_of(problems.begin(), problems.end(), [&](const std::string& p) { return p.rfind(prefix, 0) == 0; });
    };
    if (problems.empty()) return "ok";
    if (has("expired")) return "expired";
    if (has("private key")) return "mismatch";
    if (has("chain")) return "chain";
    if (has("expires")) return "expiring";
    return "invalid";
  }

  void Problem(const std::string& label, const std::string& what) { file_problems_.push_back(label + ": " + what); }

  bool Read(const std::string& rel, std::string* out) {
    try {
      const std::string path = dir_ + "/" + rel;
      int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0) throw SystemError("open " + rel, errno);
      File f(fd, path);
      if (f.Size() > kMaxFileBytes) {
        Problem(rel, "larger than 1 MiB: not read");
        return false;
      }
      out->clear();
      uint8_t buf[65536];
      for (size_t n; (n = f.Read(buf, sizeof buf)) > 0;) {
        out->append(reinterpret_cast<const char*>(buf), n);
        if (out->size() > kMaxFileBytes) {
          Problem(rel, "larger than 1 MiB: not read");
          return false;
        }
      }
      return true;
    } catch (const Error& e) {
      Problem(rel, e.what());
      return false;
    }
  }

  void AddCerts(const std::string& pem, const std::string& label, const std::string& partner_key) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
    int n = 0;
    for (;;) {
      X509* x = PEM_read_bio_X509(bio.get(), nullptr, NoPassword, nullptr);
      if (x == nullptr) break;
      n++;
      Cert c;
      c.x509.reset(x);
      c.info = Describe(x, label, now_);
      c.partner_key = partner_key;
      certs_.push_back(std::move(c));
    }
    ERR_clear_error();
    if (n == 0) {
      Problem(label, "no PEM certificate in it");
      return;
    }
    if (n > 1) {
      // A bundle: each certificate gets its own label.
      for (size_t i = certs_.size() - static_cast<size_t>(n), k = 1; i < certs_.size(); i++, k++) {
        certs_[i].info.label = label + "#" + std::to_string(k);
        if (k > 1) certs_[i].partner_key.clear();  // a key goes with the first (leaf) certificate
      }
    }
  }

  void AddKey(const std::string& pem, const std::string& label, const std::string& partner, bool is_public) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
    EVP_PKEY* k = is_public ? PEM_read_bio_PUBKEY(bio.get(), nullptr, NoPassword, nullptr)
                            : PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassword, nullptr);
    ERR_clear_error();
    Key key;
    key.info.label = label;
    key.is_public = is_public;
    key.partner = partner;
    if (k == nullptr) {
      key.info.type = "unreadable";
      key.info.problems.push_back(is_public ? "not a PEM public key" : "not an unencrypted PEM private key");
    } else {
      key.pkey.reset(k);
      key.info.type = (is_public ? "public " : "") + KeyType(k);
    }
    keys_.push_back(std::move(key));
  }

  static std::string Stem(const std::string& rel) { return rel.substr(0, rel.rfind('.')); }

  void CertFile(const std::string& rel) {
    std::string pem;
    if (!Read(rel, &pem)) return;
    const std::string key = Stem(rel) + ".key";
    AddCerts(pem, rel, ::access((dir_ + "/" + key).c_str(), F_OK) == 0 ? key : "");
  }
  void KeyFile(const std::string& rel) {
    std::string pem;
    if (!Read(rel, &pem)) return;
    // kubeadm pairs pki/X.key with pki/X.crt, and sa.key with sa.pub.
    std::string partner;
    for (const char* ext : {".crt", ".pub"}) {
      if (::access((dir_ + "/" + Stem(rel) + ext).c_str(), F_OK) == 0) {
        partner = Stem(rel) + ext;
        break;
      }
    }
    AddKey(pem, rel, partner, false);
    OPENSSL_cleanse(pem.data(), pem.size());
  }
  void PubFile(const std::string& rel) {
    std::string pem;
    if (!Read(rel, &pem)) return;
    AddKey(pem, rel, "", true);
  }

  void Kubeconfig(const std::string& rel) {
    std::string text;
    if (!Read(rel, &text)) return;
    YAML::Node doc;
    try {
      doc = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      Problem(rel, "not YAML: " + std::string(e.what()));
      return;
    }
    auto data = [&](const YAML::Node& n, const char* field, const std::string& label, std::string* out) {
      if (!n || !n.IsMap() || !n[field]) return false;
      if (!n[field].IsScalar() || !DecodeBase64(n[field].Scalar(), out)) {
        Problem(label, std::string(field) + " is not base64");
        return false;
      }
      return true;
    };
    try {
      if (doc["clusters"] && doc["clusters"].IsSequence()) {
        for (const auto& c : doc["clusters"]) {
          if (!c.IsMap()) continue;
          std::string pem;
          const std::string name = c["name"] && c["name"].IsScalar() ? c["name"].Scalar() : "";
          const std::string label = rel + " " + (name.empty() ? "" : "cluster " + name + " ") + "certificate-authority-data";
          if (data(c["cluster"], "certificate-authority-data", label, &pem)) AddCerts(pem, label, "");
        }
      }
      if (doc["users"] && doc["users"].IsSequence()) {
        for (const auto& u : doc["users"]) {
          if (!u.IsMap()) continue;
          const std::string name = u["name"] && u["name"].IsScalar() ? u["name"].Scalar() : "";
          const std::string prefix = rel + " " + (name.empty() ? "" : "user " + name + " ");
          std::string cert_pem, key_pem;
          bool has_cert = data(u["user"], "client-certificate-data", prefix + "client-certificate-data", &cert_pem);
          bool has_key = data(u["user"], "client-key-data", prefix + "client-key-data", &key_pem);
          if (has_cert) AddCerts(cert_pem, prefix + "client-certificate-data", has_key ? prefix + "client-key-data" : "");
          if (has_key) {
            AddKey(key_pem, prefix + "client-key-data", has_cert ? prefix + "client-certificate-data" : "", false);
            OPENSSL_cleanse(key_pem.data(), key_pem.size());
          }
        }
      }
    } catch (const YAML::Exception& e) {
      Problem(rel, "unexpected kubeconfig shape: " + std::string(e.what()));
    }
    OPENSSL_cleanse(text.data(), text.size());
  }

  void MatchKeys(PkiReport&) {
    for (auto& k : keys_) {
      if (!k.pkey) continue;
      for (auto& c : certs_) {
        EVP_PKEY* pub = X509_get0_pubkey(c.x509.get());
        if (pub != nullptr && EVP_PKEY_eq(k.pkey.get(), pub) == 1) {
          k.info.matches.push_back(c.info.label);
          if (!k.is_public && c.info.key.empty()) c.info.key = k.info.label;
        }
      }
      for (auto& other : keys_) {
        if (&other == &k || !other.pkey || other.is_public == k.is_public) continue;
        if (EVP_PKEY_eq(k.pkey.get(), other.pkey.get()) == 1) k.info.matches.push_back(other.info.label);
      }
    }
    // Expected pairs. Bundles' certificates carry "#N" labels; the partner is the first.
    for (auto& k : keys_) {
      if (k.is_public || !k.pkey || k.partner.empty()) continue;
      bool partner_exists = false, matches = false;
      for (const auto& c : certs_) {
        if (c.info.label == k.partner || c.info.label == k.partner + "#1") partner_exists = true;
      }
      for (const auto& pk : keys_) {
        if (pk.is_public && pk.info.label == k.partner) partner_exists = true;
      }
      for (const auto& m : k.info.matches) {
        if (m == k.partner || m == k.partner + "#1") matches = true;
      }
      if (!partner_exists || matches) continue;
      const std::string what = "private key does not match " + k.partner + " (different public keys)";
      k.info.problems.push_back(what);
      mismatches_.push_back(k.info.label + ": " + what);
      for (auto& c : certs_) {
        if (c.info.label == k.partner || c.info.label == k.partner + "#1") {
          c.info.problems.push_back("private key " + k.info.label + " does not match it");
        }
      }
    }
  }

  void VerifyChains() {
    std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), X509_STORE_free);
    std::vector<const Cert*> cas;
    for (const auto& c : certs_) {
      if (!c.info.is_ca) continue;
      X509_STORE_add_cert(store.get(), c.x509.get());
      cas.push_back(&c);
    }
    ERR_clear_error();
    for (auto& c : certs_) {
      std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> ctx(X509_STORE_CTX_new(), X509_STORE_CTX_free);
      X509_STORE_CTX_init(ctx.get(), store.get(), c.x509.get(), nullptr);
      X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_NO_CHECK_TIME);
      if (X509_verify_cert(ctx.get()) == 1) {
        STACK_OF(X509)* chain = X509_STORE_CTX_get0_chain(ctx.get());
        X509* top = sk_X509_value(chain, sk_X509_num(chain) - 1);
        // The same CA may sit in pki/ and in a kubeconfig: name the pki/ file.
        for (const Cert* ca : cas) {
          if (X509_cmp(ca->x509.get(), top) != 0) continue;
          if (c.info.verified_by.empty() || ca->info.label.rfind("pki/", 0) == 0) c.info.verified_by = ca->info.label;
          if (ca->info.label.rfind("pki/", 0) == 0) break;
        }
      } else {
        int err = X509_STORE_CTX_get_error(ctx.get());
        c.info.problems.push_back(std::string("chain does not verify to a CA of the tree: ") +
                                  X509_verify_cert_error_string(err));
      }
      ERR_clear_error();
    }
  }

  std::string dir_;
  int64_t now_;
  size_t files_ = 0;
  std::vector<Cert> certs_;
  std::vector<Key> keys_;
  std::vector<std::string> file_problems_, mismatches_;
};

}  // namespace

bool DecodeBase64(const std::string& in, std::string* out) {
  static const std::string kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string s;
  for (char ch : in) {
    if (ch != ' ' && ch != '\n' && ch != '\r' && ch != '\t') s.push_back(ch);
  }
  if (s.empty() || s.size() % 4 != 0) return false;
  out->clear();
  for (size_t i = 0; i < s.size(); i += 4) {
    uint32_t v = 0;
    int pad = 0;
    for (size_t k = 0; k < 4; k++) {
      char ch = s[i + k];
      if (ch == '=') {
        if (i + 4 != s.size() || k < 2) return false;
        pad++;
        v <<= 6;
        continue;
      }
      if (pad > 0) return false;
      size_t pos = kAlphabet.find(ch);
      if (pos == std::string::npos) return false;
      v = v << 6 | static_cast<uint32_t>(pos);
    }
    out->push_back(static_cast<char>(v >> 16));
    if (pad < 2) out->push_back(static_cast<char>(v >> 8 & 0xff));
    if (pad < 1) out->push_back(static_cast<char>(v & 0xff));
  }
  return true;
}

PkiReport CheckPki(const std::string& kubernetes_dir, int warn_days, int64_t now_unix) {
  if (!IsDirectory(kubernetes_dir)) {
    throw Error(ErrorCode::kNotFound, kubernetes_dir + ": no such directory (give --kubernetes-dir)");
  }
  Scanner s(kubernetes_dir, now_unix);
  s.Walk("", 0);
  return s.Finish(warn_days);
}

std::string PkiReportJson(const PkiReport& r) {
  nlohmann::ordered_json j;
  j["dir"] = r.dir;
  j["warn_days"] = r.warn_days;
  j["ok"] = r.ok();
  j["problems"] = r.problems;
  j["certificates"] = nlohmann::json::array();
  for (const auto& c : r.certs) {
    nlohmann::ordered_json o;
    o["path"] = c.label;
    o["status"] = c.status;
    o["subject"] = c.subject;
    o["issuer"] = c.issuer;
    o["dns_names"] = c.dns_names;
    o["ip_addresses"] = c.ip_addresses;
    o["not_before"] = backup::FormatUtc(c.not_before);
    o["not_after"] = backup::FormatUtc(c.not_after);
    o["days_left"] = c.days_left;
    o["serial"] = c.serial;
    o["is_ca"] = c.is_ca;
    o["key"] = c.key;
    o["verified_by"] = c.verified_by;
    o["problems"] = c.problems;
    j["certificates"].push_back(o);
  }
  j["keys"] = nlohmann::json::array();
  for (const auto& k : r.keys) {
    nlohmann::ordered_json o;
    o["path"] = k.label;
    o["type"] = k.type;
    o["matches"] = k.matches;
    o["problems"] = k.problems;
    j["keys"].push_back(o);
  }
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::string PkiReportTable(const PkiReport& r) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : r.certs) {
    std::string sans;
    for (const auto& d : c.dns_names) sans += (sans.empty() ? "" : ",") + d;
    for (const auto& ip : c.ip_addresses) sans += (sans.empty() ? "" : ",") + ip;
    rows.push_back({backup::EscapeForTerminal(c.label), c.status, backup::EscapeForTerminal(c.subject),
                    backup::EscapeForTerminal(c.issuer), sans.empty() ? "-" : sans, backup::FormatUtc(c.not_after),
                    std::to_string(c.days_left), c.is_ca ? "yes" : "no", c.key.empty() ? "-" : c.key,
                    c.verified_by.empty() ? "-" : c.verified_by});
  }
  std::string out = snapshot::RenderTable(
      {"certificate", "status", "subject", "issuer", "sans", "not after", "days left", "ca", "key", "verified by"}, rows);
  rows.clear();
  for (const auto& k : r.keys) {
    std::string matches;
    for (const auto& m : k.matches) matches += (matches.empty() ? "" : ", ") + m;
    rows.push_back({backup::EscapeForTerminal(k.label), k.type, matches.empty() ? "-" : backup::EscapeForTerminal(matches),
                    k.problems.empty() ? "ok" : k.type == "unreadable" ? "unreadable" : "MISMATCH"});
  }
  if (!rows.empty()) out += snapshot::RenderTable({"key", "type", "matches", "status"}, rows);
  for (const auto& p : r.problems) out += "PROBLEM  " + backup::EscapeForTerminal(p) + "\n";
  return out;
}

}  // namespace etcdsafe::controlplane
