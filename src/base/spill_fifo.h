// SpillFifo: a first-in first-out queue of byte batches kept in a temporary file, for a
// producer that must not wait for its consumers.
//
// For the snapshot stream of `backup`: while the pipeline (compression, encryption, an
// upload) lags behind etcd, the batches it has no room for wait here instead of in gRPC's
// receive buffers, which would otherwise grow to the connection's bandwidth-probed window
// (measured up to ~120 MiB) or, with a fixed small window, slow etcd's stream for every
// backup. The file has no name (OpenUnnamedTemp), so nothing is left behind whatever
// happens to the process; what the consumer has taken back is returned to the filesystem
// (hole punching), and the file is emptied whenever the queue is.
//
// Bounds: Push refuses (returns false) a batch that would take the file past `max_bytes`,
// or past half of the filesystem's free space when the file was created (a spill must not
// fill the disk etcd may live on), and every batch once the file could not be created or
// written (a read-only container root, a full disk): error() says why. The caller then
// waits for its consumer instead. Reading a batch back that fails is Error(kIo).
// Not thread-safe: one thread pushes and pops.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

#include "base/file.h"

namespace etcdsafe {

class SpillFifo {
 public:
  // temp_dir "": $TMPDIR, else /tmp.
  SpillFifo(std::string temp_dir, uint64_t max_bytes);

  // Creates the file now rather than at the first Push (and caps max_bytes at half the
  // free space then); false when it cannot be created, with error() saying why. Safe to
  // call again: true while the file is open.
  bool Open();
  // Appends a copy of the batch; false when it does not fit the bounds or the file cannot
  // be used (nothing was added then).
  bool Push(const std::string& batch);
  bool empty() const { return sizes_.empty(); }
  size_t front_size() const { return sizes_.front(); }
  // Removes and returns the oldest batch. Precondition: !empty().
  std::string Pop();

  uint64_t bytes() const { return tail_ - head_; }       // waiting now
  uint64_t peak_bytes() const { return peak_; }          // most ever waiting at once
  uint64_t total_bytes() const { return total_; }        // everything ever pushed
  const std::string& error() const { return error_; }    // why the file is not used ("" if fine)

 private:
  std::string temp_dir_;
  uint64_t max_bytes_;
  File file_;
  bool failed_ = false;
  std::string error_;
  std::deque<size_t> sizes_;
  uint64_t head_ = 0, tail_ = 0;  // file offsets of the oldest batch and of the end
  uint64_t punched_ = 0;          // bytes before this offset were given back
  uint64_t peak_ = 0, total_ = 0;
};

}  // namespace etcdsafe
