// Fuzz target for the restore side of the backup pipeline: arbitrary bytes as a stored
// backup object. Runs AES-256-GCM chunk decryption (fixed test key) → zstd, decryption
// alone, a passphrase archive when its header asks for a cheap KDF, and the raw zstd and
// gzip decompressors. Only etcdsafe::Error may escape; output is read in small pieces
// and capped so decompression bombs cost time, not memory.
#include <cstddef>
#include <cstdint>
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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const KeySpec key = TestKey();
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
