// DirectWriter: writes a new file front to back in large chunks from a background thread,
// so the caller's CPU work on the next chunk (hashing) overlaps the device write of the
// previous one. Three ways to write (WriteMode):
//  * kDirect: O_DIRECT, bypassing the page cache (a snapshot save: a file nobody reads
//    soon, whose pages must not evict etcd's).
//  * kCached: through the page cache with the writeback streamed as it goes
//    (sync_file_range: each chunk is sent to the device once written, and the writer waits
//    for the one 4 chunks back, so at most ~20 MiB are dirty), fsynced at Finish. For a
//    restored db that etcd reads next: it is left in the cache (etcd 3.4 faults a cold db in
//    through its mmap: 10 s against 3 s warm on the bench db). Measured on this VM, 1.1 GB
//    with free memory: write + fdatasync 0.38-0.57 s, against 0.48-0.65 s with O_DIRECT
//    plus 0.65-2.4 s to read the db back into the cache; a whole restore plus etcd's start
//    came out the same either way (the cache's pages must be allocated in both).
//  * kScratch: through the page cache, never fsynced (a restore drill's db, thrown away).
// Why not plain write + fsync at the end: the dirty page cache is then pushed out at fsync
// time, which on the virtio disks we run on is 3-5x slower than the same bytes written as
// they come (1.1 GB: `dd conv=fsync` 2.5-6.7 s, `dd oflag=direct bs=8M` 0.6-0.75 s).
// Filesystems without O_DIRECT (or a final chunk that is not a multiple of 4096 bytes) fall
// back to buffered writes; Finish() fsyncs either way except for kScratch.
//
// Use: loop { buf = Buffer(); fill up to kChunkSize bytes; Submit(n); } Finish().
// Only the last submitted chunk may be shorter than kChunkSize. Not thread-safe: one
// producer thread; the writer thread is internal.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/file.h"

namespace etcdsafe {

enum class WriteMode { kDirect, kCached, kScratch };
class DirectWriter {
 public:
  static constexpr size_t kChunkSize = size_t{4} << 20;
  static constexpr size_t kBuffers = 3;  // one filling, one writing, one queued

  // Creates `path` (O_EXCL, `mode`). Throws kAlreadyExists / kIo like File::Create.
  DirectWriter(const std::string& path, mode_t mode, WriteMode how = WriteMode::kDirect);
  // Writes from the start of an already open, empty file (e.g. LockedTemp::OpenForWrite),
  // switching it to O_DIRECT where the filesystem allows (kDirect).
  explicit DirectWriter(File file);
  // Stops the writer thread; the file is left as is (the caller's CleanupGuard removes it).
  ~DirectWriter();
  DirectWriter(const DirectWriter&) = delete;
  DirectWriter& operator=(const DirectWriter&) = delete;

  // A 4096-aligned buffer of kChunkSize bytes to fill. Blocks while every buffer is in
  // flight; rethrows the writer's error (e.g. ENOSPC) as soon as there is one.
  uint8_t* Buffer();
  // Queues the buffer last returned by Buffer(), holding n bytes.
  void Submit(size_t n);
  // Waits for every queued chunk, fsyncs (not when scratch) and closes the file. Throws
  // the first error.
  void Finish();

  // True when the file was opened with O_DIRECT (for tests and diagnostics).
  bool direct() const { return direct_; }  // read after Finish()

 private:
  struct Chunk {
    uint8_t* data;
    size_t size;
  };
  void WriterLoop();
  void WriteChunk(const Chunk& c);
  void WriteAll(const Chunk& c);
  void DisableDirect();
  void Stop();
  void StartThread();

  File file_;
  bool direct_ = false;
  WriteMode how_ = WriteMode::kDirect;
  uint64_t offset_ = 0;  // writer thread only
  bool tail_written_ = false;
  std::vector<std::unique_ptr<uint8_t, void (*)(void*)>> storage_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<uint8_t*> free_;
  std::deque<Chunk> queued_;
  uint8_t* filling_ = nullptr;
  bool closing_ = false;
  bool writing_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace etcdsafe
