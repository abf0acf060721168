// `inspect diff A B` (issue 11): what changed between two snapshots of a Kubernetes etcd,
// key by key, over the latest live revision of each key (as an etcd restored from each file
// would serve it).
//
// Both snapshots are read at once, each through ops::LiveKeys (one pass over the file in page
// order, A on a thread of its own; see there for the memory bound: 12 MiB of key records per
// side before sorted runs go to a temp file), then merge-joined in key order. For every put
// the scan keeps a 128-bit fingerprint (non-cryptographic) of the value, not the value.
// Only for a key it reports does it read the value again (a point lookup by the entry's
// revision) for its encoding, uid and generation (FactsOfValue, k8s/json_facts.h), so
// unchanged objects are never parsed. Memory is the two scans' buffers and page caches
// (under 64 MiB RSS on a 1 GB snapshot), never a map of either db's values. Entries are
// passed to the sink in key order, once both files have been read.
// Per key present on either side, with A the old and B the new snapshot:
//  * only in B: kAdded; only in A: kRemoved;
//  * in both with identical value bytes (equal sizes and fingerprints): unchanged (counted,
//    not passed to the sink);
//  * in both with different bytes: kRecreated when the object was deleted and created
//    again between A and B: both uids are known (metadata decoded) and differ, or, when a
//    uid cannot be read on either side (encrypted, malformed, not an object), the etcd
//    create revision differs; otherwise kChanged.
// Keys that are not Kubernetes objects (masterleases, ranges, compact_rev_key, unknown
// shapes, keys outside the etcd prefix) are compared the same way and reported with their
// KeyKind; the per-resource and per-namespace counts are over objects only.
// `key_prefix` (--prefix) narrows the comparison to keys starting with it.
// Corrupt input: as SnapshotKv (kDataLoss), before any entry reaches the sink (A's error
// first when both are corrupt); the only later one is a reported key's value that is not
// found again by its revision (the file changed under us), kDataLoss naming it. A sink
// exception propagates. Thread-compatible (each call uses one thread of its own besides
// the caller's).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "k8s/key.h"
#include "ops/snapshot_kv.h"

namespace etcdsafe::k8s {

enum class Change { kAdded, kRemoved, kChanged, kRecreated };
const char* ChangeName(Change c);  // "added", "removed", "changed", "recreated"

struct DiffSide {
  bool present = false;
  int64_t create_revision = 0, mod_revision = 0, version = 0;
  int64_t bytes = 0;
  std::string encoding;  // EncodingName
  std::string uid;       // "" when not decodable
  int64_t generation = 0;
};

struct DiffEntry {
  Change change = Change::kChanged;
  std::string key;
  KeyKind key_kind = KeyKind::kObject;
  std::string resource;  // GroupResource() for objects; what it is for non-object keys
  std::string ns, name;
  DiffSide a, b;
};

struct ChangeCounts {
  int64_t added = 0, removed = 0, changed = 0, recreated = 0;
  void Add(Change c);
  int64_t Total() const { return added + removed + changed + recreated; }
};

struct DiffSummary {
  int64_t revision_a = 0, revision_b = 0;
  int64_t keys_a = 0, keys_b = 0;  // live keys compared on each side
  int64_t unchanged = 0;
  ChangeCounts total;                             // every key
  ChangeCounts objects;                           // KeyKind::kObject only
  std::map<std::string, ChangeCounts> by_resource;   // objects, by GroupResource()
  std::map<std::string, ChangeCounts> by_namespace;  // namespaced objects
};

struct DiffOptions {
  std::string key_prefix;                              // "" = every key
  std::string etcd_prefix = std::string(kRegistryPrefix);  // the API server's --etcd-prefix
};

DiffSummary DiffSnapshots(ops::SnapshotKv& a, ops::SnapshotKv& b, const DiffOptions& options,
                          const std::function<void(const DiffEntry&)>& sink);

nlohmann::json DiffEntryToJson(const DiffEntry& e);
nlohmann::json DiffSummaryToJson(const DiffSummary& s);
// One line per entry: "<change> <key> [uid a -> b] [generation a -> b]".
std::string DiffEntryToLine(const DiffEntry& e);
std::string DiffSummaryToTable(const DiffSummary& s);

}  // namespace etcdsafe::k8s
