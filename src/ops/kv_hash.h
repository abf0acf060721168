// etcd 3.4's HashKV computed offline from a bbolt db (a snapshot file or a restored
// member/snap/db), without any etcd running.
//
// Contract: KvHashOfDb(db, R).hash equals what an etcd 3.4 started from that db answers
// to Maintenance.HashKV(R) (`etcdctl endpoint hashkv --rev R`): CRC-32 (Castagnoli) over
// the bucket name "key", then every raw key (revision bytes) and value of bucket "key"
// in bbolt order with a main revision <= R, skipping what a compaction at R would remove
// from below the compacted revision, exactly as mvcc's hashByRev does with the index
// that etcd rebuilds from the db at start-up (store.restore, restoreIntoIndex) and
// kvindex.Keep(R):
//  - compact revision: meta/finishedCompactRev (-1 when absent); a scheduledCompactRev
//    beyond it is resumed at start-up, so it counts when it is <= the current revision;
//  - current revision: the main revision of the last entry of "key" (1 when empty),
//    raised to the compact revision;
//  - an entry below compact+1 is hashed only when it is the revision Keep(R) keeps for
//    its key (or when Keep(R) keeps nothing at all).
// R = 0 means the current revision. R above the current revision: kInvalidArgument
// "mvcc: required revision is a future revision"; R <= the compact revision:
// kInvalidArgument "mvcc: required revision has been compacted". Corrupt entries (a
// revision key shorter than 17 bytes, a value that is not a KeyValue protobuf) are
// kDataLoss naming the revision.
//
// KvHashOptions::compact_revision = C hashes as an etcd whose compacted revision is C
// does (what its HashKV answer reports as compact_revision), for a db that holds MORE
// history than that etcd: a db replayed from a base taken before etcd compacted at C
// (follow/replay.h). etcd's own db then holds, below C+1, only what its compaction at C
// kept (kvindex.Compact(C): each key's latest revision <= C in its generation alive at C,
// tombstones dropped); the hash is computed over exactly that, i.e. entries below C+1 are
// hashed when Keep(R) keeps them, or, when Keep(R) keeps nothing, when Compact(C) kept
// them. C <= 0 means never compacted (etcd reports -1 or 0). C below the db's own
// compacted revision (the db lacks history etcd had): kInvalidArgument; R <= C:
// "mvcc: required revision has been compacted".
//
// One pass over bucket "key" (bounded by the number of distinct keys: one small state
// per key, plus 28 bytes per entry below the compact revision); the same pass counts the
// keys that exist at R, and per Kubernetes group (RegistryGroup) when asked.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "bolt/reader.h"

namespace etcdsafe::ops {

struct KvSpace {
  int64_t current_revision = 1;   // etcd's revision after starting from this db
  int64_t compact_revision = -1;  // etcd's compacted revision (-1: never compacted)
  int64_t hash_revision = 0;      // the revision hashed (R, or the current revision)
  uint32_t hash = 0;              // HashKV(hash_revision)
  uint64_t live_keys = 0;         // keys that exist at hash_revision (`get "" --prefix --count-only`)
  // With count_groups: live keys under /registry/ by RegistryGroup, e.g. "pods/default".
  std::map<std::string, uint64_t> groups;
  // With count_groups: the Kubernetes essentials seen among the live keys.
  bool has_default_namespace = false, has_kube_system_namespace = false, has_range_key = false;
};

struct KvHashOptions {
  int64_t revision = 0;       // 0: the current revision
  bool count_groups = false;  // fill KvSpace::groups and the essentials
  // Hash as an etcd compacted at this revision does (see above); nullopt: the db's own.
  std::optional<int64_t> compact_revision;
};

KvSpace KvHashOfDb(bolt::Reader& db, const KvHashOptions& options = {});
// Opens `path` (a snapshot file, with or without its sha256 trailer, or a member db).
KvSpace KvHashOfFile(const std::string& path, const KvHashOptions& options = {});

// The Kubernetes object group of an etcd key: the path between "/registry/" and the
// object's name, i.e. "<resource>/<namespace>" for namespaced objects
// ("/registry/pods/default/web-0" -> "pods/default"), "<resource>" for cluster-scoped
// ones ("/registry/namespaces/default" -> "namespaces") and "<group>/<resource>[/<ns>]"
// for API groups that Kubernetes stores under their group name. "" for keys outside
// /registry/ or directly in it.
std::string RegistryGroup(std::string_view key);

}  // namespace etcdsafe::ops
