// `snapshot save`: stream a snapshot from etcd into a file, verifying it on the way.
//
// Better than etcdctl: the sha256 of the db bytes is recomputed and compared with the
// trailer the server sent (etcdctl only checks the length), hashing and disk writes run
// on a second thread so they overlap the network, and on any failure nothing is left
// behind: bytes go to "<path>.etcdsafe-XXXXXX.part" (mode 0600, a name no other run
// shares, flock'ed while this run lives), which is fsynced and renamed to <path> only
// after every check passed. Leftovers of killed runs (same pattern, lock free) are
// removed by the next save to the same path.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/checksum.h"
#include "base/spill_fifo.h"

namespace etcdsafe::snapshot {

using BlobSink = std::function<void(const uint8_t* data, size_t n)>;
// Runs one snapshot stream, handing every received blob (db bytes, then the trailer) to
// the sink in order. Typically binds client::EtcdClient::Snapshot. An exception thrown
// by the sink must abort the stream and propagate.
using SnapshotStream = std::function<void(const BlobSink&)>;

// Runs `stream` on the calling thread and hands every byte, in order, to `consume` on a
// second thread through a bounded queue (4 MiB), in batches of up to 1 MiB gathered from
// the stream's blobs (not one call per blob), so receiving overlaps with hashing,
// compressing and writing. The first error from either side propagates and stops the
// other side.
void PumpStream(const SnapshotStream& stream, const BlobSink& consume);

// One consumer of a fanned-out stream: `consume` gets every blob in order; `finish` (may
// be empty) runs on the same thread after the last blob, only when the stream and every
// consumer succeeded so far.
struct StreamConsumer {
  BlobSink consume;
  std::function<void()> finish;
};
// Like the above, with one thread per consumer, each seeing every batch (copied once, not
// per consumer; batches of up to min(1 MiB, queue_bytes / 4)) through one queue holding
// at most `queue_bytes` that some consumer has not consumed yet. The first error in
// time, from the stream, a consume or a finish, stops every side and propagates once
// all threads have ended.
//
// With `spill` (base/spill_fifo.h, empty on entry), the stream never waits for the
// consumers: a batch the queue has no room for waits in the spill and moves to the queue,
// in order, as room frees. gRPC then holds almost nothing of the stream whatever its
// window, and etcd's snapshot runs at its own pace. Past the spill's bounds, or when its
// file cannot be written, the stream waits as without it. Afterwards the spill's counters
// and error() tell what was spilled.
void PumpStream(const SnapshotStream& stream, const std::vector<StreamConsumer>& consumers, size_t queue_bytes,
                SpillFifo* spill = nullptr);

struct SaveResult {
  uint64_t db_size = 0;        // bytes of bbolt data (file size minus the trailer)
  uint64_t file_size = 0;      // what was written: db + 32-byte trailer, like etcdctl
  Sha256Digest db_sha256{};
};

// One line for the user (a leftover removed, ...); empty: "etcdsafe: note: ..." on stderr.
using NoteFn = std::function<void(const std::string&)>;

// What a save refuses before it streams anything: a directory (or a symlink to one) as
// the target is kAlreadyExists "<path>: is a directory ...", a missing parent kNotFound.
void CheckSaveTarget(const std::string& path);

// `progress` (may be empty) is called from the writer thread with bytes written so far.
// Errors: CheckSaveTarget's first, then kDataLoss "sha256 checksum not found [bytes: N]" /
// "snapshot sha256 mismatch: ..." for a bad stream, kIo for local write failures (ENOSPC,
// ...), and whatever the stream throws (kUnavailable, kUnauthenticated, ...). The
// temporary never survives. Two saves to one path each rename the file they wrote.
SaveResult SaveSnapshot(const SnapshotStream& stream, const std::string& path,
                        const std::function<void(uint64_t)>& progress = {}, const NoteFn& note = {});

// The temporary name's pattern: <base>.etcdsafe-XXXXXX.part next to <path>.
std::string SaveTempPrefix(const std::string& path);
inline constexpr const char* kSaveTempSuffix = ".part";

}  // namespace etcdsafe::snapshot
