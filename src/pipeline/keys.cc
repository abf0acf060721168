#include "pipeline/keys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <sys/stat.h>

#include <cstdlib>
#include <cstdio>

#include "base/bytes.h"
#include "base/error.h"
#include "base/file.h"

namespace etcdsafe::pipeline {
namespace {

[[noreturn]] void Bad(const std::string& what, const std::string& why) {
  throw Error(ErrorCode::kInvalidArgument, what + ": " + why);
}

int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view StripTrailingSpace(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

std::string ReadSecretFile(const std::string& path, const std::string& what, std::string* warning) {
  std::string data;
  try {
    data = ReadSmallFile(path, 64 << 10);
  } catch (const Error& e) {
    Bad(what, e.what());
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    *warning = what + " is accessible by group/others (mode " + mode + "); chmod 600 it";
  }
  return data;
}

}  // namespace

KeySpec::~KeySpec() {
  OPENSSL_cleanse(raw.data(), raw.size());
  if (!passphrase.empty()) OPENSSL_cleanse(passphrase.data(), passphrase.size());
}

KeySpec ParseKey(std::string_view text, const std::string& what) {
  KeySpec spec;
  spec.kind = KeySpec::Kind::kRawKey;
  if (text.size() == 32) {
    std::copy(text.begin(), text.end(), spec.raw.begin());
    return spec;
  }
  std::string_view t = StripTrailingSpace(text);
  if (t.size() == 64) {
    for (size_t i = 0; i < 32; i++) {
      int hi = HexVal(t[2 * i]), lo = HexVal(t[2 * i + 1]);
      if (hi < 0 || lo < 0) Bad(what, "bad hex key: non-hex character at offset " + std::to_string(hi < 0 ? 2 * i : 2 * i + 1));
      spec.raw[i] = static_cast<uint8_t>(hi << 4 | lo);
    }
    return spec;
  }
  if (t.size() == 44 || t.size() == 43) {
    std::string b64(t);
    if (b64.size() == 43) b64 += '=';
    uint8_t out[33];  // EVP_DecodeBlock writes 3 bytes per 4 characters, padding included
    int n = EVP_DecodeBlock(out, reinterpret_cast<const uint8_t*>(b64.data()), static_cast<int>(b64.size()));
    if (n != 33 || b64[43] != '=' || b64[42] == '=') {
      OPENSSL_cleanse(out, sizeof out);
      OPENSSL_cleanse(b64.data(), b64.size());
      Bad(what, "bad base64 key (want base64 of exactly 32 bytes)");
    }
    std::copy(out, out + 32, spec.raw.begin());
    OPENSSL_cleanse(out, sizeof out);
    OPENSSL_cleanse(b64.data(), b64.size());
    return spec;
  }
  Bad(what, "expected 32 raw bytes, 64 hex characters or base64 of 32 bytes; got " +
                std::to_string(text.size()) + " bytes");
}

KeySpec LoadKeyFile(const std::string& path) {
  std::string what = "key file " + path;
  std::string warning;
  std::string data = ReadSecretFile(path, what, &warning);
  KeySpec spec;
  try {
    spec = ParseKey(data, what);
  } catch (...) {
    OPENSSL_cleanse(data.data(), data.size());
    throw;
  }
  OPENSSL_cleanse(data.data(), data.size());
  spec.warning = warning;
  return spec;
}

KeySpec KeyFromEnv(const std::string& var) {
  std::string what = "environment variable " + var;
  const char* v = std::getenv(var.c_str());
  if (v == nullptr || *v == '\0') Bad(what, "not set or empty");
  std::string_view text(v);
  if (StripTrailingSpace(text).size() != 64 && StripTrailingSpace(text).size() != 44 &&
      StripTrailingSpace(text).size() != 43) {
    Bad(what, "expected 64 hex characters or base64 of 32 bytes; got " + std::to_string(text.size()) + " characters");
  }
  return ParseKey(text, what);
}

KeySpec LoadPassphraseFile(const std::string& path) {
  std::string what = "passphrase file " + path;
  KeySpec spec;
  spec.kind = KeySpec::Kind::kPassphrase;
  spec.passphrase = ReadSecretFile(path, what, &spec.warning);
  std::string& p = spec.passphrase;
  if (!p.empty() && p.back() == '\n') p.pop_back();
  if (!p.empty() && p.back() == '\r') p.pop_back();
  if (p.empty()) Bad(what, "passphrase is empty");
  return spec;
}

std::array<uint8_t, 8> KeyIdBytes(const MasterKey& key) {
  static constexpr std::string_view kLabel = "etcdsafe key id v1";
  uint8_t mac[32];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const uint8_t*>(kLabel.data()), kLabel.size(), mac, &len) == nullptr) {
    throw Error(ErrorCode::kInternal, "HMAC-SHA256 failed");
  }
  std::array<uint8_t, 8> id;
  std::copy(mac, mac + 8, id.begin());
  return id;
}

std::string KeyIdOf(const MasterKey& key) {
  auto id = KeyIdBytes(key);
  return HexBytes(Bytes{id.data(), id.size()});
}

std::string KeyId(const KeySpec& spec) {
  if (spec.kind != KeySpec::Kind::kRawKey) {
    throw Error(ErrorCode::kInvalidArgument, "key id: only raw keys have a fixed id (passphrase ids are per backup)");
  }
  return KeyIdOf(spec.raw);
}

std::string MacHex(const MasterKey& master, std::string_view purpose, std::string_view data) {
  std::string info = "etcdsafe mac v1 ";
  info.append(purpose);
  uint8_t k[32];
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  EVP_KDF_CTX* ctx = kdf ? EVP_KDF_CTX_new(kdf) : nullptr;
  EVP_KDF_free(kdf);
  if (ctx == nullptr) throw Error(ErrorCode::kInternal, "HKDF unavailable in OpenSSL");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(master.data()), master.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end()};
  int ok = EVP_KDF_derive(ctx, k, sizeof k, params);
  EVP_KDF_CTX_free(ctx);
  if (ok != 1) {
    OPENSSL_cleanse(k, sizeof k);
    throw Error(ErrorCode::kInternal, "HKDF derivation failed");
  }
  uint8_t mac[32];
  unsigned int len = 0;
  const uint8_t* res = HMAC(EVP_sha256(), k, static_cast<int>(sizeof k), reinterpret_cast<const uint8_t*>(data.data()),
                            data.size(), mac, &len);
  OPENSSL_cleanse(k, sizeof k);
  if (res == nullptr || len != sizeof mac) throw Error(ErrorCode::kInternal, "HMAC-SHA256 failed");
  return HexBytes(Bytes{mac, sizeof mac});
}

bool MacEqual(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace etcdsafe::pipeline
