// Authenticated streaming encryption of backup objects: AES-256-GCM in independently
// authenticated chunks (a STREAM construction). Format: docs/formats/archive.md.
//
// EncryptSink writes an 80-byte header, then the plaintext in chunks of 2^chunk_log2
// bytes (1 MiB), each sealed with a per-archive subkey (HKDF of the master key and a
// random 32-byte salt), a nonce = chunk counter || last-chunk flag, and the SHA-256 of
// the header as associated data. Memory: two chunk buffers, whatever the object size.
//
// DecryptSource verifies as it reads and only returns bytes of chunks that authenticated.
// Errors (one line each):
//   wrong raw key / passphrase, or key kind mismatch → kUnauthenticated, with both key ids;
//   corrupted header, tampered/reordered/duplicated/dropped chunk, truncation, appended
//   data → kDataLoss naming the chunk index ("truncated" where that is what it is);
//   an archive version we do not know → kUnsupported.
// A reader can stop early (restore failed elsewhere); bytes already returned were
// authenticated, but only reaching the end (Read() == 0) proves the object is complete.
// Not thread-safe.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>

#include "base/bytes.h"
#include "base/stream.h"
#include "pipeline/keys.h"

namespace etcdsafe::pipeline {

inline constexpr size_t kArchiveHeaderSize = 80;

struct EncryptOptions {
  int chunk_log2 = 20;    // chunk size 1 MiB; 12..24 accepted
  // Passphrases only: scrypt N = 2^scrypt_log2n, r, p. Default 2^17/8/1 needs 128 MiB
  // and ~0.4 s, once per backup and once per restore. Writer and readers accept only
  // p == 1, log2n >= 10 and 128*r*N <= 128 MiB (the default is exactly at the budget);
  // readers refuse other headers (kDataLoss) before deriving anything, so a hostile
  // header cannot make a restore allocate more or run longer than the default.
  int scrypt_log2n = 17;
  int scrypt_r = 8;
  int scrypt_p = 1;
};

// Public header fields, readable without a key.
struct ArchiveHeader {
  int version = 0;
  KeySpec::Kind key_kind = KeySpec::Kind::kNone;
  std::string key_id;  // 16 hex chars
  size_t chunk_size = 0;
  int scrypt_log2n = 0, scrypt_r = 0, scrypt_p = 0;
};

// True if `prefix` starts with the archive magic (restore uses it to auto-detect).
bool LooksEncrypted(Bytes prefix);
// Parses and validates exactly kArchiveHeaderSize bytes. kDataLoss / kUnsupported.
ArchiveHeader ParseArchiveHeader(Bytes header);
// The key id (16 hex chars) recorded in an archive header; ParseArchiveHeader's errors.
std::string ArchiveKeyId(Bytes header);
// The master key the archive with this (80-byte) header was written with, for MacHex:
// for a raw key, spec.raw; for a passphrase, scrypt(passphrase, header's KDF salt,
// header's parameters), after the parameter bounds check. Errors: spec.kind == kNone:
// kInvalidArgument; a bad header: ParseArchiveHeader's errors; kind mismatch or a key
// whose id differs from the header's: kUnauthenticated naming both key ids.
MasterKey ArchiveMasterKey(const KeySpec& spec, Bytes header);

class EncryptSink : public Sink {
 public:
  // Derives the keys (scrypt for passphrases) and writes the header to `next`.
  // spec.kind == kNone or bad options: kInvalidArgument.
  EncryptSink(const KeySpec& spec, Sink& next, const EncryptOptions& opts = {});
  ~EncryptSink() override;
  EncryptSink(const EncryptSink&) = delete;
  EncryptSink& operator=(const EncryptSink&) = delete;

  void Write(const uint8_t* data, size_t n) override;
  using Sink::Write;
  // Seals the final chunk (possibly empty) and closes `next`.
  void Close() override;
  // Id of the key this archive is encrypted with (store it in the manifest).
  const std::string& key_id() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

std::unique_ptr<EncryptSink> NewEncryptSink(const KeySpec& spec, Sink& next,
                                            const EncryptOptions& opts = {});
// Reads the header lazily on the first Read(). spec.kind == kNone on an encrypted
// object: kUnauthenticated "backup is encrypted ...".
std::unique_ptr<Source> NewDecryptSource(const KeySpec& spec, Source& in);

// Passes everything through and keeps the first kArchiveHeaderSize bytes (an encrypted
// archive's header, from which the manifest's MAC key is derived: ArchiveMasterKey).
class HeaderTap : public Sink {
 public:
  explicit HeaderTap(Sink& next) : next_(next) {}
  void Write(const uint8_t* p, size_t n) override {
    if (header_.size() < kArchiveHeaderSize) {
      header_.append(reinterpret_cast<const char*>(p), std::min(n, kArchiveHeaderSize - header_.size()));
    }
    next_.Write(p, n);
  }
  void Close() override { next_.Close(); }
  Bytes header() const { return AsBytes(header_); }

 private:
  Sink& next_;
  std::string header_;
};

}  // namespace etcdsafe::pipeline
