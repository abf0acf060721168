// Fuzz target for the restore side of the backup pipeline: arbitrary bytes as a stored
// backup object. Runs AES-256-GCM chunk decryption (fixed test key) → zstd, decryption
// alone, a passphrase archive when its header asks for a cheap KDF, and the raw zstd and
// gzip decompressors. Only etcdsafe::Error may escape; output is read in small pieces
// and capped so decompression bombs cost time, not memory.
// Header bounds: a header ParseArchiveHeader accepts must be within the writer's scrypt
// budget (p = 1, 128·r·N ≤ 128 MiB), and a passphrase header outside it must be refused
// as kDataLoss before anything is derived (abort() otherwise: a regression would also
// show as a slow, memory-hungry input). ArchiveMasterKey and MacHex run on every header
// that parses (scrypt only when its parameters are cheap).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "base/error.h"
#include "pipeline/compress.h"
#include "pipeline/encrypt.h"

namespace {

using namespace etcdsafe;
using namespace etcdsafe::pipeline;

// Seeds in corpus/archive/ were made with this key (bytes 0..31) and passphrase.
KeySpec TestKey() {
  KeySpec k;
  k.kind = KeySpec::Kind::kRawKey;
  for (size_t i = 0; i < 32; i++) k.raw[i] = static_cast<uint8_t>(i);
  return k;
}

KeySpec TestPassphrase() {
  KeySpec k;
  k.kind = KeySpec::Kind::kPassphrase;
  k.passphrase = "fuzz passphrase";
  return k;
}

class BytesSource : public Source {
 public:
  BytesSource(const uint8_t* d, size_t n) : d_(d), n_(n) {}
  size_t Read(uint8_t* buf, size_t n) override {
    // Odd-sized reads exercise the stages' refill paths.
    size_t k = std::min({n, n_ - pos_, size_t{4093}});
    std::copy_n(d_ + pos_, k, buf);
    pos_ += k;
    return k;
  }

 private:
  const uint8_t* d_;
  size_t n_;
  size_t pos_ = 0;
};

void Drain(Source& s) {
  uint8_t buf[8192];
  size_t total = 0;
  while (total < (size_t{16} << 20)) {
    size_t r = s.Read(buf, sizeof buf);
    if (r == 0) return;
    total += r;
  }
}

template <typename F>
void Try(F&& f) {
  try {
    f();
  } catch (const Error&) {
  }
}

// Header offsets (docs/formats/archive.md).
constexpr size_t kOffKind = 13, kOffScryptN = 15, kOffScryptR = 16, kOffScryptP = 17;

bool WithinScryptBudget(int log2n, int r, int p) {
  return p == 1 && log2n >= 10 && log2n <= 20 && r >= 1 && (uint64_t{128} * uint64_t(r) << log2n) <= (uint64_t{128} << 20);
}

void CheckHeaderBounds(const uint8_t* data, size_t size) {
  if (size < kArchiveHeaderSize) return;
  const Bytes header{data, kArchiveHeaderSize};
  if (data[kOffKind] == 2 && !WithinScryptBudget(data[kOffScryptN], data[kOffScryptR], data[kOffScryptP])) {
    // Must be refused from the header alone, before scrypt runs.
    BytesSource in(data, size);
    try {
      auto dec = NewDecryptSource(TestPassphrase(), in);
      Drain(*dec);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kDataLoss) std::abort();
      return;
    }
    std::abort();
  }
  ArchiveHeader h;
  try {
    h = ParseArchiveHeader(header);
  } catch (const Error&) {
    return;
  }
  if (h.key_kind == KeySpec::Kind::kPassphrase && !WithinScryptBudget(h.scrypt_log2n, h.scrypt_r, h.scrypt_p)) {
    std::abort();
  }
  if (ArchiveKeyId(header) != h.key_id) std::abort();
  Try([&] {
    MasterKey m = ArchiveMasterKey(TestKey(), header);
    if (KeyIdOf(m) != h.key_id) std::abort();
    if (MacHex(m, "manifest", std::string_view(reinterpret_cast<const char*>(data), size)).size() != 64) std::abort();
  });
  if (h.key_kind == KeySpec::Kind::kPassphrase && h.scrypt_log2n <= 10 && h.scrypt_r <= 8) {
    Try([&] {
      MasterKey m = ArchiveMasterKey(TestPassphrase(), header);
      if (KeyIdOf(m) != h.key_id) std::abort();
    });
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const KeySpec key = TestKey();
  CheckHeaderBounds(data, size);
  Try([&] {
    BytesSource in(data, size);
    auto dec = NewDecryptSource(key, in);
    auto z = NewDecompressSource(Compression::kZstd, *dec);
    Drain(*z);
  });
  Try([&] {
    BytesSource in(data, size);
    auto dec = NewDecryptSource(key, in);
    Drain(*dec);
  });
  Try([&] {
    if (size < kArchiveHeaderSize) return;
    ArchiveHeader h = ParseArchiveHeader(Bytes{data, kArchiveHeaderSize});
    if (h.key_kind != KeySpec::Kind::kPassphrase || h.scrypt_log2n > 10 || h.scrypt_r > 8 || h.scrypt_p > 1) return;
    BytesSource in(data, size);
    auto dec = NewDecryptSource(TestPassphrase(), in);
    auto g = NewDecompressSource(Compression::kGzip, *dec);
    Drain(*g);
  });
  Try([&] {
    BytesSource in(data, size);
    auto z = NewDecompressSource(Compression::kZstd, in);
    Drain(*z);
  });
  Try([&] {
    BytesSource in(data, size);
    auto g = NewDecompressSource(Compression::kGzip, in);
    Drain(*g);
  });
  return 0;
}
