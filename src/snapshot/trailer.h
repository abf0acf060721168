// The sha256 trailer that etcd's Maintenance.Snapshot appends after the db bytes
// (spec §1.2): a saved snapshot is `db || sha256(db)`, and because the db is a whole
// number of 4096-byte pages its length satisfies len % 512 == 32.
#pragma once

#include <cstdint>
#include <string>

#include "base/checksum.h"

namespace etcdsafe::snapshot {

inline constexpr size_t kTrailerSize = 32;

// True when a file of this size carries a trailer (etcdctl's hasChecksum rule).
inline bool HasTrailer(uint64_t file_size) { return file_size % 512 == kTrailerSize; }

// Hashes a byte stream whose last 32 bytes are the trailer, without knowing the length
// in advance: everything but the most recent 32 bytes is hashed as db content.
// Not thread-safe.
class TrailerVerifier {
 public:
  void Update(const uint8_t* data, size_t n);
  uint64_t bytes_seen() const { return bytes_; }

  struct Result {
    uint64_t db_size = 0;          // bytes before the trailer
    Sha256Digest computed{};       // sha256 of the db bytes
    Sha256Digest trailer{};        // what the stream said
    bool has_trailer = false;      // HasTrailer(total)
    bool matches = false;          // has_trailer && computed == trailer
  };
  // Ends the stream. REQUIRES: called once.
  Result Finish();

 private:
  Sha256 sha_;
  std::string tail_;  // the last <= 32 bytes seen, not yet hashed
  uint64_t bytes_ = 0;
};

// Formats a digest the way etcdctl's restore error does: Go's %v of a byte slice,
// "[12 255 ...]".
std::string GoByteSlice(const Sha256Digest& d);

}  // namespace etcdsafe::snapshot
