#include "pipeline/encrypt.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include <cstring>
#include <vector>

#include "base/checksum.h"
#include "base/error.h"

namespace etcdsafe::pipeline {
namespace {

// Header layout (little-endian), see docs/formats/archive.md.
constexpr char kMagic[12] = {'E', 'T', 'C', 'D', 'S', 'A', 'F', 'E', '-', 'E', 'N', 'C'};
constexpr uint8_t kVersion = 1;
constexpr uint8_t kKindRaw = 1;
constexpr uint8_t kKindScrypt = 2;
constexpr size_t kOffVersion = 12, kOffKind = 13, kOffChunkLog2 = 14, kOffScryptN = 15,
                 kOffScryptR = 16, kOffScryptP = 17, kOffReserved = 18, kOffKdfSalt = 20,
                 kOffKeyId = 36, kOffFileSalt = 44, kOffCrc = 76;
constexpr size_t kKdfSaltSize = 16, kKeyIdSize = 8, kFileSaltSize = 32, kTagSize = 16;
constexpr std::string_view kHkdfInfo = "etcdsafe archive v1 chunk key";

[[noreturn]] void Corrupt(const std::string& msg) {
  throw Error(ErrorCode::kDataLoss, "encrypted backup: " + msg);
}

// The scrypt parameters any reader accepts: what the writer uses, at most. scrypt needs
// 128·r·N bytes and time proportional to r·N·p, so 128·r·N ≤ 128 MiB (the default
// 2^17/8/1 is exactly at it) and p = 1 bound both before anything is derived: a hostile
// header cannot make a restore allocate more than 128 MiB or spend more than the default.
constexpr uint64_t kScryptMemBudget = uint64_t{128} << 20;

void CheckScryptParams(int log2n, int r, int p, ErrorCode code) {
  bool ok = log2n >= 10 && log2n <= 20 && r >= 1 && r <= 255 && p == 1 &&
            (uint64_t{128} * uint64_t(r) << log2n) <= kScryptMemBudget;
  if (!ok) {
    throw Error(code, std::string(code == ErrorCode::kDataLoss ? "encrypted backup: header: " : "") +
                          "scrypt parameters out of range: log2(N)=" + std::to_string(log2n) + " r=" +
                          std::to_string(r) + " p=" + std::to_string(p) +
                          " (accepted: p=1, log2(N)>=10 and 128*r*N <= 128 MiB)");
  }
}

MasterKey Scrypt(const std::string& pass, const uint8_t* salt, int log2n, int r, int p) {
  MasterKey key{};
  uint64_t n = uint64_t{1} << log2n;
  uint64_t maxmem = (uint64_t{128} * uint64_t(r) * (n + uint64_t(p) + 2)) + (uint64_t{1} << 20);
  if (EVP_PBE_scrypt(pass.data(), pass.size(), salt, kKdfSaltSize, n, uint64_t(r), uint64_t(p),
                     maxmem, key.data(), key.size()) != 1) {
    throw Error(ErrorCode::kInternal, "scrypt key derivation failed");
  }
  return key;
}

// HKDF-SHA256(ikm = master, salt = file salt, info = kHkdfInfo) → 32-byte chunk key.
MasterKey DeriveFileKey(const MasterKey& master, const uint8_t* salt) {
  MasterKey out{};
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  EVP_KDF_CTX* ctx = kdf ? EVP_KDF_CTX_new(kdf) : nullptr;
  EVP_KDF_free(kdf);
  if (ctx == nullptr) throw Error(ErrorCode::kInternal, "HKDF unavailable in OpenSSL");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(master.data()), master.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt), kFileSaltSize),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(kHkdfInfo.data()), kHkdfInfo.size()),
      OSSL_PARAM_construct_end()};
  int ok = EVP_KDF_derive(ctx, out.data(), out.size(), params);
  EVP_KDF_CTX_free(ctx);
  if (ok != 1) throw Error(ErrorCode::kInternal, "HKDF derivation failed");
  return out;
}

std::array<uint8_t, 12> ChunkNonce(uint64_t counter, bool last) {
  std::array<uint8_t, 12> iv{};
  StoreBE64(iv.data() + 3, counter);
  iv[11] = last ? 1 : 0;
  return iv;
}

// One AES-256-GCM context keyed once per archive; the IV changes per chunk.
class Gcm {
 public:
  Gcm(const MasterKey& key, bool encrypt) : ctx_(EVP_CIPHER_CTX_new()), encrypt_(encrypt) {
    if (ctx_ == nullptr || EVP_CipherInit_ex(ctx_, EVP_aes_256_gcm(), nullptr, key.data(), nullptr, encrypt ? 1 : 0) != 1) {
      EVP_CIPHER_CTX_free(ctx_);
      throw Error(ErrorCode::kInternal, "AES-256-GCM init failed");
    }
  }
  ~Gcm() { EVP_CIPHER_CTX_free(ctx_); }
  Gcm(const Gcm&) = delete;
  Gcm& operator=(const Gcm&) = delete;

  // Encrypts n bytes of in → out, appends the tag at out + n.
  void Seal(uint64_t counter, bool last, const uint8_t* aad, const uint8_t* in, size_t n, uint8_t* out) {
    Start(counter, last, aad);
    int len = 0;
    if ((n > 0 && EVP_EncryptUpdate(ctx_, out, &len, in, static_cast<int>(n)) != 1) ||
        EVP_EncryptFinal_ex(ctx_, out + n, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_GET_TAG, kTagSize, out + n) != 1) {
      throw Error(ErrorCode::kInternal, "AES-256-GCM encrypt failed");
    }
  }

  // Decrypts n bytes of ciphertext followed by the tag; false if authentication fails.
  bool Open(uint64_t counter, bool last, const uint8_t* aad, const uint8_t* in, size_t n, uint8_t* out) {
    Start(counter, last, aad);
    int len = 0;
    if (n > 0 && EVP_DecryptUpdate(ctx_, out, &len, in, static_cast<int>(n)) != 1) return false;
    if (EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_SET_TAG, kTagSize, const_cast<uint8_t*>(in + n)) != 1) return false;
    return EVP_DecryptFinal_ex(ctx_, out + n, &len) == 1;
  }

 private:
  void Start(uint64_t counter, bool last, const uint8_t* aad) {
    auto iv = ChunkNonce(counter, last);
    int len = 0;
    if (EVP_CipherInit_ex(ctx_, nullptr, nullptr, nullptr, iv.data(), encrypt_ ? 1 : 0) != 1 ||
        EVP_CipherUpdate(ctx_, nullptr, &len, aad, 32) != 1) {
      throw Error(ErrorCode::kInternal, "AES-256-GCM setup failed");
    }
  }

  EVP_CIPHER_CTX* ctx_;
  bool encrypt_;
};

std::string KindName(KeySpec::Kind k) {
  switch (k) {
    case KeySpec::Kind::kRawKey: return "a key";
    case KeySpec::Kind::kPassphrase: return "a passphrase";
    case KeySpec::Kind::kNone: break;
  }
  return "nothing";
}

// The master key for an archive whose header `h` parsed as `a`; spec.kind != kNone.
MasterKey MasterFor(const KeySpec& spec, const ArchiveHeader& a, const uint8_t* h) {
  if (spec.kind != a.key_kind) {
    std::string given = spec.kind == KeySpec::Kind::kRawKey ? " (key id " + KeyIdOf(spec.raw) + ")" : "";
    throw Error(ErrorCode::kUnauthenticated, "backup was encrypted with " + KindName(a.key_kind) + " (key id " + a.key_id +
                                                 "), but " + KindName(spec.kind) + given + " was given");
  }
  MasterKey master = spec.raw;
  if (a.key_kind == KeySpec::Kind::kPassphrase) {
    master = Scrypt(spec.passphrase, h + kOffKdfSalt, a.scrypt_log2n, a.scrypt_r, a.scrypt_p);
  }
  std::string given = KeyIdOf(master);
  if (given != a.key_id) {
    OPENSSL_cleanse(master.data(), master.size());
    if (a.key_kind == KeySpec::Kind::kPassphrase) {
      throw Error(ErrorCode::kUnauthenticated, "wrong passphrase: backup was encrypted with key " + a.key_id +
                                                   ", the given passphrase gives key " + given);
    }
    throw Error(ErrorCode::kUnauthenticated, "wrong encryption key: backup was encrypted with key " + a.key_id +
                                                 ", given key is " + given);
  }
  return master;
}

}  // namespace

bool LooksEncrypted(Bytes prefix) {
  return prefix.size() >= sizeof kMagic && std::memcmp(prefix.data(), kMagic, sizeof kMagic) == 0;
}

ArchiveHeader ParseArchiveHeader(Bytes h) {
  if (h.size() < kArchiveHeaderSize) {
    if (h.size() < sizeof kMagic || LooksEncrypted(h)) {
      Corrupt("truncated header (" + std::to_string(h.size()) + " of " + std::to_string(kArchiveHeaderSize) + " bytes)");
    }
  }
  if (!LooksEncrypted(h)) Corrupt("not an etcdsafe encrypted archive (bad magic)");
  if (LoadLE32(h.data() + kOffCrc) != Crc32c(h.subspan(0, kOffCrc))) Corrupt("header checksum mismatch (header corrupted)");
  ArchiveHeader a;
  a.version = h[kOffVersion];
  if (a.version != kVersion) {
    throw Error(ErrorCode::kUnsupported, "encrypted backup: archive version " + std::to_string(a.version) +
                                             " is not supported (this etcdsafe reads version 1)");
  }
  int log2 = h[kOffChunkLog2];
  if (log2 < 12 || log2 > 24) Corrupt("header: chunk size 2^" + std::to_string(log2) + " out of range");
  a.chunk_size = size_t{1} << log2;
  if (h[kOffReserved] != 0 || h[kOffReserved + 1] != 0) Corrupt("header: reserved bytes are not zero");
  a.key_id = HexBytes(h.subspan(kOffKeyId, kKeyIdSize));
  switch (h[kOffKind]) {
    case kKindRaw:
      a.key_kind = KeySpec::Kind::kRawKey;
      for (size_t i = kOffScryptN; i < kOffKeyId; i++) {
        if (h[i] != 0) Corrupt("header: KDF fields set for a raw-key archive");
      }
      break;
    case kKindScrypt:
      a.key_kind = KeySpec::Kind::kPassphrase;
      a.scrypt_log2n = h[kOffScryptN];
      a.scrypt_r = h[kOffScryptR];
      a.scrypt_p = h[kOffScryptP];
      CheckScryptParams(a.scrypt_log2n, a.scrypt_r, a.scrypt_p, ErrorCode::kDataLoss);
      break;
    default:
      Corrupt("header: unknown key kind " + std::to_string(h[kOffKind]));
  }
  return a;
}

std::string ArchiveKeyId(Bytes header) { return ParseArchiveHeader(header).key_id; }

MasterKey ArchiveMasterKey(const KeySpec& spec, Bytes header) {
  if (spec.kind == KeySpec::Kind::kNone) {
    throw Error(ErrorCode::kInvalidArgument, "archive master key: no key or passphrase given");
  }
  ArchiveHeader a = ParseArchiveHeader(header);
  return MasterFor(spec, a, header.data());
}

// ---------------------------------------------------------------------------------------

struct EncryptSink::Impl {
  Sink& next;
  std::string key_id;
  std::unique_ptr<Gcm> gcm;
  Sha256Digest aad{};
  size_t chunk_size = 0;
  std::vector<uint8_t> plain;  // up to chunk_size pending bytes
  size_t have = 0;
  std::vector<uint8_t> sealed;
  uint64_t counter = 0;
  bool closed = false;

  explicit Impl(Sink& n) : next(n) {}

  void Seal(bool last) {
    gcm->Seal(counter, last, aad.data(), plain.data(), have, sealed.data());
    next.Write(sealed.data(), have + kTagSize);
    counter++;
    have = 0;
  }
};

EncryptSink::EncryptSink(const KeySpec& spec, Sink& next, const EncryptOptions& opts)
    : impl_(std::make_unique<Impl>(next)) {
  if (opts.chunk_log2 < 12 || opts.chunk_log2 > 24) {
    throw Error(ErrorCode::kInvalidArgument, "encryption chunk size 2^" + std::to_string(opts.chunk_log2) + " out of range (2^12..2^24)");
  }
  uint8_t h[kArchiveHeaderSize] = {};
  std::memcpy(h, kMagic, sizeof kMagic);
  h[kOffVersion] = kVersion;
  h[kOffChunkLog2] = static_cast<uint8_t>(opts.chunk_log2);
  MasterKey master{};
  switch (spec.kind) {
    case KeySpec::Kind::kRawKey:
      h[kOffKind] = kKindRaw;
      master = spec.raw;
      break;
    case KeySpec::Kind::kPassphrase:
      CheckScryptParams(opts.scrypt_log2n, opts.scrypt_r, opts.scrypt_p, ErrorCode::kInvalidArgument);
      if (spec.passphrase.empty()) throw Error(ErrorCode::kInvalidArgument, "empty passphrase");
      h[kOffKind] = kKindScrypt;
      h[kOffScryptN] = static_cast<uint8_t>(opts.scrypt_log2n);
      h[kOffScryptR] = static_cast<uint8_t>(opts.scrypt_r);
      h[kOffScryptP] = static_cast<uint8_t>(opts.scrypt_p);
      if (RAND_bytes(h + kOffKdfSalt, kKdfSaltSize) != 1) throw Error(ErrorCode::kInternal, "RAND_bytes failed");
      master = Scrypt(spec.passphrase, h + kOffKdfSalt, opts.scrypt_log2n, opts.scrypt_r, opts.scrypt_p);
      break;
    case KeySpec::Kind::kNone:
      throw Error(ErrorCode::kInvalidArgument, "encryption requested without a key");
  }
  if (RAND_bytes(h + kOffFileSalt, kFileSaltSize) != 1) throw Error(ErrorCode::kInternal, "RAND_bytes failed");
  auto id = KeyIdBytes(master);
  static_assert(sizeof id == kKeyIdSize);
  std::memcpy(h + kOffKeyId, id.data(), kKeyIdSize);
  impl_->key_id = KeyIdOf(master);
  StoreLE32(h + kOffCrc, Crc32c(Bytes{h, kOffCrc}));
  MasterKey file_key = DeriveFileKey(master, h + kOffFileSalt);
  OPENSSL_cleanse(master.data(), master.size());
  impl_->gcm = std::make_unique<Gcm>(file_key, true);
  OPENSSL_cleanse(file_key.data(), file_key.size());
  impl_->aad = Sha256Of(Bytes{h, kArchiveHeaderSize});
  impl_->chunk_size = size_t{1} << opts.chunk_log2;
  impl_->plain.resize(impl_->chunk_size);
  impl_->sealed.resize(impl_->chunk_size + kTagSize);
  next.Write(h, kArchiveHeaderSize);
}

EncryptSink::~EncryptSink() {
  if (impl_ && !impl_->plain.empty()) OPENSSL_cleanse(impl_->plain.data(), impl_->plain.size());
}

void EncryptSink::Write(const uint8_t* data, size_t n) {
  Impl& s = *impl_;
  if (s.closed) throw Error(ErrorCode::kInternal, "EncryptSink: write after close");
  while (n > 0) {
    // A full buffer is sealed only once more data arrives: the last chunk must carry the
    // final flag, and only Close() knows which chunk is last.
    if (s.have == s.chunk_size) s.Seal(false);
    size_t k = std::min(n, s.chunk_size - s.have);
    std::memcpy(s.plain.data() + s.have, data, k);
    s.have += k;
    data += k;
    n -= k;
  }
}

void EncryptSink::Close() {
  Impl& s = *impl_;
  if (s.closed) return;
  s.closed = true;
  s.Seal(true);
  s.next.Close();
}

const std::string& EncryptSink::key_id() const { return impl_->key_id; }

std::unique_ptr<EncryptSink> NewEncryptSink(const KeySpec& spec, Sink& next, const EncryptOptions& opts) {
  return std::make_unique<EncryptSink>(spec, next, opts);
}

// ---------------------------------------------------------------------------------------

namespace {

class DecryptSource : public Source {
 public:
  DecryptSource(const KeySpec& spec, Source& in) : spec_(spec), in_(in) {}
  ~DecryptSource() override {
    if (!plain_.empty()) OPENSSL_cleanse(plain_.data(), plain_.size());
  }

  size_t Read(uint8_t* buf, size_t n) override {
    if (n == 0) return 0;
    if (!gcm_) Start();
    while (pos_ == avail_) {
      if (done_) return 0;
      NextChunk();
    }
    size_t k = std::min(n, avail_ - pos_);
    std::memcpy(buf, plain_.data() + pos_, k);
    pos_ += k;
    return k;
  }

 private:
  void Start() {
    uint8_t h[kArchiveHeaderSize];
    size_t got = ReadFull(in_, h, sizeof h);
    ArchiveHeader a = ParseArchiveHeader(Bytes{h, got});
    if (spec_.kind == KeySpec::Kind::kNone) {
      throw Error(ErrorCode::kUnauthenticated, "backup is encrypted with " + KindName(a.key_kind) + " (key id " + a.key_id + ") but no key was given");
    }
    MasterKey master = MasterFor(spec_, a, h);
    MasterKey file_key = DeriveFileKey(master, h + kOffFileSalt);
    OPENSSL_cleanse(master.data(), master.size());
    gcm_ = std::make_unique<Gcm>(file_key, false);
    OPENSSL_cleanse(file_key.data(), file_key.size());
    aad_ = Sha256Of(Bytes{h, kArchiveHeaderSize});
    chunk_size_ = a.chunk_size;
    sealed_.resize(chunk_size_ + kTagSize);
    plain_.resize(chunk_size_);
  }

  void NextChunk() {
    const size_t full = chunk_size_ + kTagSize;
    size_t got = 0;
    if (has_peek_) {
      sealed_[0] = peek_;
      got = 1;
      has_peek_ = false;
    }
    got += ReadFull(in_, sealed_.data() + got, full - got);
    bool last = got < full;
    if (!last) last = ReadFull(in_, &peek_, 1) == 0;
    has_peek_ = !last;
    const std::string idx = std::to_string(counter_);
    if (got < kTagSize) {
      if (got == 0 && counter_ == 0) Corrupt("truncated: no chunks after the header");
      if (got == 0) Corrupt("truncated: object ends after chunk " + std::to_string(counter_ - 1) + " without its final chunk");
      Corrupt("truncated: chunk " + idx + " is only " + std::to_string(got) + " bytes");
    }
    size_t n = got - kTagSize;
    if (!gcm_->Open(counter_, last, aad_.data(), sealed_.data(), n, plain_.data())) {
      // Diagnose on the failure path only: the same chunk with the other flag tells a
      // truncation (full chunk, not final) or appended data (final chunk, not last).
      if (gcm_->Open(counter_, !last, aad_.data(), sealed_.data(), n, plain_.data())) {
        if (last) Corrupt("truncated: object ends after chunk " + idx + " without its final chunk");
        Corrupt("unexpected data after the final chunk " + idx);
      }
      if (last && n < chunk_size_) {
        Corrupt("chunk " + idx + " failed authentication (truncated or tampered final chunk)");
      }
      Corrupt("chunk " + idx + " failed authentication (tampered, reordered or missing chunks)");
    }
    counter_++;
    pos_ = 0;
    avail_ = n;
    done_ = last;
  }

  KeySpec spec_;
  Source& in_;
  std::unique_ptr<Gcm> gcm_;
  Sha256Digest aad_{};
  size_t chunk_size_ = 0;
  std::vector<uint8_t> sealed_;
  std::vector<uint8_t> plain_;
  size_t pos_ = 0, avail_ = 0;
  uint64_t counter_ = 0;
  bool done_ = false;
  uint8_t peek_ = 0;
  bool has_peek_ = false;
};

}  // namespace

std::unique_ptr<Source> NewDecryptSource(const KeySpec& spec, Source& in) {
  return std::make_unique<DecryptSource>(spec, in);
}

}  // namespace etcdsafe::pipeline
