// SpillStore: an append-only record store whose memory is bounded: records live in
// chunks, at most `resident_chunks` of them in memory; older chunks are written to an
// unlinked temporary file and read back (into a small LRU) when a record in them is
// needed again.
//
// For the backup pipeline's stream inspector, whose per-page summaries (~120 bytes a
// page) would otherwise grow with the snapshot (250 MB for an 8 GiB etcd): the disk file
// costs no memory, vanishes with the process (O_TMPFILE, or unlinked at once), and the
// summaries are read back mostly in file order.
//
// A record never straddles chunks (one larger than a chunk gets a chunk of its own). At()
// hands out a pointer plus a `keep` that holds the chunk's memory: the pointer stays
// valid while `keep` lives, even if the store drops the chunk meanwhile. If the temp file
// cannot be created or written (no writable $TMPDIR, e.g. a read-only container root, or
// a full disk), the store keeps everything in memory from then on and says why in
// spill_error(): more memory beats a failed backup. Reading a spilled chunk back that
// fails is Error(kIo). Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/file.h"

namespace etcdsafe {

class SpillStore {
 public:
  // temp_dir "": $TMPDIR, else /tmp.
  SpillStore(size_t chunk_bytes, size_t resident_chunks, std::string temp_dir = "");
  ~SpillStore();
  SpillStore(const SpillStore&) = delete;
  SpillStore& operator=(const SpillStore&) = delete;

  // Appends a record; returns its ref (chunk << 32 | offset).
  uint64_t Append(const uint8_t* data, size_t n);
  uint64_t Append(const std::vector<uint8_t>& rec) { return Append(rec.data(), rec.size()); }

  struct View {
    const uint8_t* data = nullptr;
    std::shared_ptr<const void> keep;
  };
  View At(uint64_t ref);
  // Copies n bytes of a record out (no View bookkeeping: for small fixed-size records).
  void Read(uint64_t ref, void* out, size_t n);
  // Replaces n bytes of an existing record in place.
  void Overwrite(uint64_t ref, const uint8_t* data, size_t n);

  size_t memory_bytes() const;           // chunk buffers held by the store
  // Why spilling stopped ("" while it works): chunks then stay in memory.
  const std::string& spill_error() const { return spill_error_; }
  uint64_t spilled_bytes() const { return file_size_; }

 private:
  struct Chunk {
    std::shared_ptr<std::vector<uint8_t>> data;  // null: on disk only
    size_t size = 0;                              // bytes on disk (set when spilled)
    uint64_t file_offset = 0;
    bool on_disk = false;
    uint64_t last_use = 0;
  };
  Chunk& Load(size_t index);
  void Trim(size_t keep_index);
  void Spill(Chunk& c);
  void OpenFile();

  size_t chunk_bytes_;
  size_t resident_chunks_;
  std::string temp_dir_;
  std::vector<Chunk> chunks_;
  File file_;
  uint64_t file_size_ = 0;
  uint64_t tick_ = 0;
  std::string spill_error_;
};

}  // namespace etcdsafe
