// etcd's write-ahead log (WAL): the writer used by restore and a validating reader.
//
// Writer contract: CreateRestoreWal produces exactly the segment `etcdctl snapshot
// restore` (3.4.23) writes (spec §6.4): records crc(0), metadata, snapshot{0,0}, one
// ConfChange entry per member, hardstate, snapshot{N,1}; file
// 0000000000000000-0000000000000000.wal, mode 0600, preallocated to 64,000,000 bytes.
// Like wal.Create it is built in "<wal_dir>.tmp", fsynced, and renamed into place, so a
// crash never leaves a half-written WAL under the final name.
//
// Reader contract: ReadWal reads every segment of a WAL directory in sequence order,
// checking names, framing, the CRC-32C chain (across segments) and metadata
// consistency. It stops at a zero length field (preallocated tail) or EOF. Corrupt
// input throws Error(kDataLoss, "<file> at offset N: ...") and never crashes; records of
// 10 MiB or more are rejected before allocating.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/bytes.h"
#include "etcdfmt/membership.h"
#include "etcdfmt/raftpb.h"

namespace etcdsafe::etcdfmt {

inline constexpr uint64_t kWalSegmentSizeBytes = 64'000'000;  // decimal, not 64 MiB
inline constexpr uint64_t kWalMaxRecordBytes = 10 * 1024 * 1024;

// "%016x-%016x.wal".
std::string WalFileName(uint64_t seq, uint64_t index);

// The used bytes of the restore WAL (no preallocated tail). `with_conf_state` adds the
// 3.5-style conf_state to the final snapshot record.
std::string EncodeRestoreWal(const RestoreCluster& cluster, uint64_t snapshot_term = 1,
                             bool with_conf_state = false);

// Writes the restore WAL into `wal_dir` (created, mode 0700; parents too). Fails with
// kAlreadyExists if `wal_dir` already holds a *.wal file.
void CreateRestoreWal(const std::string& wal_dir, const RestoreCluster& cluster,
                      uint64_t snapshot_term = 1, bool with_conf_state = false);

// Frames one record: 8-byte LE length (0x80|pad in the top byte when padded), the
// record, zero padding to 8 bytes.
std::string FrameWalRecord(const WalRecord& rec);

struct WalContents {
  std::optional<WalMetadata> metadata;
  std::vector<Entry> entries;  // later entries with a lower/equal index replace the tail
  std::optional<HardState> hard_state;  // the last one
  std::vector<WalSnapshot> snapshots;   // every snapshot record, in order
  uint32_t crc = 0;                     // running CRC after the last record
  uint64_t records = 0;
  std::vector<std::string> segments;  // file names read
};

// Decodes one segment held in memory. `name` is used in error messages; `contents`
// carries state across segments (the CRC chain, metadata, entries).
void DecodeWalSegment(Bytes data, const std::string& name, WalContents* contents);

// Reads all segments of a WAL directory.
WalContents ReadWal(const std::string& wal_dir);

}  // namespace etcdsafe::etcdfmt
