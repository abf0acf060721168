#include "store/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cstdint>
#include <ctime>

#include "base/checksum.h"

namespace etcdsafe::store {
namespace {

constexpr char kHex[] = "0123456789abcdef";

std::string ToHex(const uint8_t* p, size_t n) {
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[p[i] >> 4];
    out[2 * i + 1] = kHex[p[i] & 15];
  }
  return out;
}

std::string Hmac(std::string_view key, std::string_view msg) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Trimall: strip leading/trailing whitespace, collapse inner runs to one space.
std::string TrimAll(std::string_view v) {
  std::string out;
  bool pending_space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += c;
  }
  return out;
}

struct CanonicalHeaders {
  std::string block;   // "name:value\n" lines
  std::string signed_names;  // "a;b;c"
};

CanonicalHeaders BuildHeaders(const std::vector<std::pair<std::string, std::string>>& hs) {
  // Repeated names join their values with ',' in the order given.
  std::vector<std::pair<std::string, std::string>> lowered;
  for (const auto& [k, v] : hs) lowered.emplace_back(Lower(TrimAll(k)), TrimAll(v));
  std::stable_sort(lowered.begin(), lowered.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  CanonicalHeaders out;
  for (size_t i = 0; i < lowered.size();) {
    size_t j = i;
    std::string value;
    for (; j < lowered.size() && lowered[j].first == lowered[i].first; ++j) {
      if (j > i) value += ',';
      value += lowered[j].second;
    }
    out.block += lowered[i].first + ":" + value + "\n";
    if (!out.signed_names.empty()) out.signed_names += ';';
    out.signed_names += lowered[i].first;
    i = j;
  }
  return out;
}

}  // namespace

std::string UriEncode(std::string_view s, bool keep_slash) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
        c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += "0123456789ABCDEF"[c >> 4];
      out += "0123456789ABCDEF"[c & 15];
    }
  }
  return out;
}

std::string CanonicalQuery(const std::vector<std::pair<std::string, std::string>>& query) {
  std::vector<std::pair<std::string, std::string>> enc;
  enc.reserve(query.size());
  for (const auto& [k, v] : query) enc.emplace_back(UriEncode(k, false), UriEncode(v, false));
  std::sort(enc.begin(), enc.end());
  std::string out;
  for (const auto& [k, v] : enc) {
    if (!out.empty()) out += '&';
    out += k + "=" + v;
  }
  return out;
}

std::string CanonicalRequest(const SigV4Request& req) {
  CanonicalHeaders h = BuildHeaders(req.headers);
  return req.method + "\n" + (req.path.empty() ? "/" : req.path) + "\n" +
         CanonicalQuery(req.query) + "\n" + h.block + "\n" + h.signed_names + "\n" +
         req.payload_hash;
}

std::string StringToSign(const std::string& canonical_request, const std::string& amz_date,
                         const std::string& region, const std::string& service) {
  return "AWS4-HMAC-SHA256\n" + amz_date + "\n" + amz_date.substr(0, 8) + "/" + region + "/" +
         service + "/aws4_request\n" + HexSha256(canonical_request);
}

std::string SigningKey(const std::string& secret, const std::string& date8,
                       const std::string& region, const std::string& service) {
  std::string k = Hmac("AWS4" + secret, date8);
  k = Hmac(k, region);
  k = Hmac(k, service);
  return Hmac(k, "aws4_request");
}

std::string Authorization(const SigV4Request& req, const SigV4Credentials& creds,
                          const std::string& amz_date, const std::string& region,
                          const std::string& service) {
  const std::string date8 = amz_date.substr(0, 8);
  std::string sts = StringToSign(CanonicalRequest(req), amz_date, region, service);
  std::string sig = Hmac(SigningKey(creds.secret_key, date8, region, service), sts);
  return "AWS4-HMAC-SHA256 Credential=" + creds.access_key + "/" + date8 + "/" + region + "/" +
         service + "/aws4_request, SignedHeaders=" + BuildHeaders(req.headers).signed_names +
         ", Signature=" + ToHex(reinterpret_cast<const uint8_t*>(sig.data()), sig.size());
}

std::string HexSha256(const uint8_t* data, size_t n) {
  Sha256Digest d = Sha256Of(Bytes(data, n));
  return ToHex(d.data(), d.size());
}

std::string HexSha256(std::string_view data) {
  return HexSha256(reinterpret_cast<const uint8_t*>(data.data()), data.size());
}

std::string AmzDateNow() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

}  // namespace etcdsafe::store
