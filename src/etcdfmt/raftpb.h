// The protobuf messages of etcd's WAL and .snap files (raftpb, walpb, snappb and
// etcdserverpb.Metadata), encoded and decoded by hand.
//
// Why hand-written and not libprotobuf: etcd marshals these proto2 messages with
// gogoproto, whose output differs from libprotobuf's in ways that change bytes (and so
// CRCs and the golden sha256s): non-nullable fields are written even when zero
// (ConfChange.ID=0, ConfState.auto_leave=false), Entry is written in field-number order
// although the .proto declares Term first, and repeated uint64 are unpacked. A dozen
// small functions reproduce that exactly.
//
// Decoders accept any valid proto2 encoding (fields in any order, packed or unpacked
// repeated, unknown fields skipped) and throw Error(kDataLoss, "<what> at offset N: ...")
// on malformed input. They never allocate more than the input size.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/bytes.h"

namespace etcdsafe::etcdfmt {

enum EntryType : int32_t { kEntryNormal = 0, kEntryConfChange = 1, kEntryConfChangeV2 = 2 };
enum ConfChangeType : int32_t { kAddNode = 0, kRemoveNode = 1, kUpdateNode = 2, kAddLearnerNode = 3 };

struct Entry {
  uint64_t term = 0;
  uint64_t index = 0;
  int32_t type = kEntryNormal;
  std::optional<std::string> data;  // nullopt = nil (field omitted)
  bool operator==(const Entry&) const = default;
};

struct ConfChange {
  uint64_t id = 0;
  int32_t type = kAddNode;
  uint64_t node_id = 0;
  std::optional<std::string> context;
  bool operator==(const ConfChange&) const = default;
};

struct HardState {
  uint64_t term = 0;
  uint64_t vote = 0;
  uint64_t commit = 0;
  bool operator==(const HardState&) const = default;
};

struct ConfState {
  std::vector<uint64_t> voters;
  std::vector<uint64_t> learners;
  std::vector<uint64_t> voters_outgoing;
  std::vector<uint64_t> learners_next;
  bool auto_leave = false;
  bool operator==(const ConfState&) const = default;
};

struct SnapshotMetadata {
  ConfState conf_state;
  uint64_t index = 0;
  uint64_t term = 0;
  bool operator==(const SnapshotMetadata&) const = default;
};

struct Snapshot {
  std::optional<std::string> data;
  SnapshotMetadata metadata;
  bool operator==(const Snapshot&) const = default;
};

// etcdserverpb.Metadata: the WAL metadata record.
struct WalMetadata {
  uint64_t node_id = 0;
  uint64_t cluster_id = 0;
  bool operator==(const WalMetadata&) const = default;
};

// walpb.Snapshot; conf_state is only written by etcd 3.5+.
struct WalSnapshot {
  uint64_t index = 0;
  uint64_t term = 0;
  std::optional<ConfState> conf_state;
  bool operator==(const WalSnapshot&) const = default;
};

enum WalRecordType : int64_t {
  kMetadataType = 1,
  kEntryType = 2,
  kStateType = 3,
  kCrcType = 4,
  kSnapshotType = 5,
};

struct WalRecord {
  int64_t type = 0;
  uint32_t crc = 0;
  std::optional<std::string> data;
  bool operator==(const WalRecord&) const = default;
};

std::string Encode(const Entry& m);
std::string Encode(const ConfChange& m);
std::string Encode(const HardState& m);
std::string Encode(const ConfState& m);
std::string Encode(const SnapshotMetadata& m);
std::string Encode(const Snapshot& m);
std::string Encode(const WalMetadata& m);
std::string Encode(const WalSnapshot& m);
std::string Encode(const WalRecord& m);
// snappb.snapshot{crc, data}.
std::string EncodeSnappb(uint32_t crc, Bytes data);

Entry DecodeEntry(Bytes b);
ConfChange DecodeConfChange(Bytes b);
HardState DecodeHardState(Bytes b);
ConfState DecodeConfState(Bytes b);
SnapshotMetadata DecodeSnapshotMetadata(Bytes b);
Snapshot DecodeSnapshot(Bytes b);
WalMetadata DecodeWalMetadata(Bytes b);
WalSnapshot DecodeWalSnapshot(Bytes b);
WalRecord DecodeWalRecord(Bytes b);
struct Snappb {
  std::optional<uint32_t> crc;
  std::optional<std::string> data;
};
Snappb DecodeSnappb(Bytes b);

}  // namespace etcdsafe::etcdfmt
