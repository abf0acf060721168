// `snapshot save`: stream a snapshot from etcd into a file, verifying it on the way.
//
// Better than etcdctl: the sha256 of the db bytes is recomputed and compared with the
// trailer the server sent (etcdctl only checks the length), hashing and disk writes run
// on a second thread so they overlap the network, and on any failure nothing is left
// behind: bytes go to "<path>.part" (mode 0600), which is fsynced and renamed to <path>
// only after every check passed.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "base/checksum.h"

namespace etcdsafe::snapshot {

using BlobSink = std::function<void(const uint8_t* data, size_t n)>;
// Runs one snapshot stream, handing every received blob (db bytes, then the trailer) to
// the sink in order. Typically binds client::EtcdClient::Snapshot. An exception thrown
// by the sink must abort the stream and propagate.
using SnapshotStream = std::function<void(const BlobSink&)>;

// Runs `stream` on the calling thread and hands every blob, in order, to `consume` on a
// second thread through a bounded queue (4 MiB), so receiving overlaps with hashing,
// compressing and writing. The first error from either side propagates and stops the
// other side.
void PumpStream(const SnapshotStream& stream, const BlobSink& consume);

struct SaveResult {
  uint64_t db_size = 0;        // bytes of bbolt data (file size minus the trailer)
  uint64_t file_size = 0;      // what was written: db + 32-byte trailer, like etcdctl
  Sha256Digest db_sha256{};
};

// `progress` (may be empty) is called from the writer thread with bytes written so far.
// Errors: kDataLoss "sha256 checksum not found [bytes: N]" / "snapshot sha256 mismatch:
// ..." for a bad stream, kIo for local write failures (ENOSPC, ...), and whatever the
// stream throws (kUnavailable, kUnauthenticated, ...). <path>.part never survives.
SaveResult SaveSnapshot(const SnapshotStream& stream, const std::string& path,
                        const std::function<void(uint64_t)>& progress = {});

}  // namespace etcdsafe::snapshot
