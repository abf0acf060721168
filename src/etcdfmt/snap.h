// etcd's .snap files (member/snap/<term>-<index>.snap): snappb.snapshot{crc, data} where
// data is a marshalled raftpb.Snapshot and crc its CRC-32C.
//
// WriteRestoreSnap writes the file `etcdctl snapshot restore` (3.4.23) writes, byte for
// byte: v2 store JSON + metadata {voters = all ids ascending, index N, term 1}; mode
// 0666 & ~umask like etcd; written to a temporary name, fsynced, renamed.
// ReadSnapFile decodes and checks a .snap file; corrupt input throws Error(kDataLoss).
#pragma once

#include <cstdint>
#include <string>

#include "base/bytes.h"
#include "etcdfmt/membership.h"
#include "etcdfmt/raftpb.h"

namespace etcdsafe::etcdfmt {

// "%016x-%016x.snap" of (term, index).
std::string SnapFileName(uint64_t term, uint64_t index);

// The raftpb.Snapshot restore produces (data = RestoreV2StoreJson).
Snapshot RestoreSnapshot(const RestoreCluster& cluster, uint64_t term = 1);
// The complete .snap file bytes.
std::string EncodeSnapFile(const Snapshot& snapshot);

// Writes <snap_dir>/<SnapFileName(1, N)> and returns its path. snap_dir must exist.
std::string WriteRestoreSnap(const std::string& snap_dir, const RestoreCluster& cluster);

// Decodes .snap bytes; `what` names the source in errors.
Snapshot DecodeSnapFile(Bytes data, const std::string& what);
Snapshot ReadSnapFile(const std::string& path);

}  // namespace etcdsafe::etcdfmt
