#include "pipeline/keys.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "base/bytes.h"
#include "base/error.h"

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

constexpr size_t kSecretFileLimit = 64 << 10;

// Reads a key or passphrase file until EOF, at most kSecretFileLimit bytes. Unlike
// ReadSmallFile it does not trust st_size, so pipes, FIFOs and /dev/fd/N (a shell's
// `<(cat key)`) work; a device that never ends (/dev/zero) hits the bound. The buffer is
// allocated once (no stray copies from reallocation) and wiped on every error path.
std::string ReadSecretFile(const std::string& path, const std::string& what, std::string* warning) {
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) Bad(what, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    Bad(what, std::string("cannot stat: ") + std::strerror(err));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    Bad(what, "is a directory");
  }
  std::string data(kSecretFileLimit + 1, '\0');
  size_t have = 0;
  int err = 0;
  while (have < data.size()) {
    ssize_t n = ::read(fd, data.data() + have, data.size() - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      err = errno;
      break;
    }
    if (n == 0) break;
    have += static_cast<size_t>(n);
  }
  ::close(fd);
  if (err != 0 || have > kSecretFileLimit) {
    OPENSSL_cleanse(data.data(), data.size());
    if (err != 0) Bad(what, std::string("read failed: ") + std::strerror(err));
    Bad(what, "more than " + std::to_string(kSecretFileLimit) + " bytes; not a key or passphrase file");
  }
  OPENSSL_cleanse(data.data() + have, data.size() - have);
  data.resize(have);
  // Permissions matter for files at rest; a pipe's contents are gone once read.
  if (S_ISREG(st.st_mode) && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    *warning = what + " is accessible by group/others (mode " + mode + "); chmod 600 it";
  }
  return data;
}

// True if every byte is printable ASCII or whitespace: text someone typed, not key material.
// 32 random bytes are all in this set (100 of 256 values) with probability
// (100/256)^32 ≈ 9e-14, so refusing them costs nothing.
bool LooksLikeText(std::string_view s) {
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    bool ok = (c >= 0x20 && c <= 0x7e) || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
    if (!ok) return false;
  }
  return true;
}

constexpr std::string_view kKeyHint =
    "for a passphrase use --passphrase-file; to make a key: head -c 32 /dev/urandom > key "
    "or openssl rand -hex 32 > key";

}  // namespace

KeySpec::~KeySpec() {
  OPENSSL_cleanse(raw.data(), raw.size());
  if (!passphrase.empty()) OPENSSL_cleanse(passphrase.data(), passphrase.size());
}

KeySpec ParseKey(std::string_view text, const std::string& what) {
  KeySpec spec;
  spec.kind = KeySpec::Kind::kRawKey;
  if (text.size() == 32) {
    if (LooksLikeText(text)) {
      Bad(what, "32 bytes of text, not key material (a raw key is 32 random bytes, 64 hex characters or "
                "base64 of 32 bytes); " + std::string(kKeyHint));
    }
    std::copy(text.begin(), text.end(), spec.raw.begin());
    return spec;
  }
  std::string_view t = StripTrailingSpace(text);
  if (t.size() == 64) {
    for (size_t i = 0; i < 32; i++) {
      int hi = HexVal(t[2 * i]), lo = HexVal(t[2 * i + 1]);
      if (hi < 0 || lo < 0) {
        OPENSSL_cleanse(spec.raw.data(), spec.raw.size());
        Bad(what, "bad hex key: non-hex character at offset " + std::to_string(hi < 0 ? 2 * i : 2 * i + 1) + "; " +
                      std::string(kKeyHint));
      }
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
      Bad(what, "bad base64 key (want base64 of exactly 32 bytes); " + std::string(kKeyHint));
    }
    std::copy(out, out + 32, spec.raw.begin());
    OPENSSL_cleanse(out, sizeof out);
    OPENSSL_cleanse(b64.data(), b64.size());
    return spec;
  }
  Bad(what, "expected 32 raw bytes, 64 hex characters or base64 of 32 bytes; got " + std::to_string(text.size()) +
                " bytes; " + std::string(kKeyHint));
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
    Bad(what, "expected 64 hex characters or base64 of 32 bytes; got " + std::to_string(text.size()) +
                  " characters; for a passphrase use --passphrase-file; to make a key: openssl rand -hex 32");
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
