// `restore-objects` (issue 11): selected keys of a snapshot written back into a live etcd,
// byte for byte, without touching anything else.
//
// The selection is an ObjectSelection (k8s/export.h) with exactly one of ns, key_prefix or
// key set (kInvalidArgument otherwise); resource may narrow it. With ns, the Namespace
// object (<prefix>namespaces/N) is handled first, in a batch of its own, so the API server
// never sees objects of a namespace it does not know.
//
// Every selected live key of the source is classified against the target (a Range of the
// key, in batches of at most batch_ops keys / batch_bytes of values):
//  * kCreate: absent from the target;
//  * kEqual: present with the same value bytes (left alone);
//  * kConflict: present with other bytes (left alone), or kOverwrite with `overwrite`;
//  * kSkippedLeased: the source key was attached to a lease (Events, masterleases, ...):
//    never written (the lease does not exist in the target and a leaseless copy would never
//    expire);
//  * kRefusedEncrypted: an encrypted value (k8s:enc:...) without allow_encrypted. With
//    `apply`, any such key refuses the whole run BEFORE anything is written
//    (kInvalidArgument naming the first key); a dry run reports them.
// Dry run (apply = false): classifies only; the target is only read.
// Apply: per batch, ONE etcd transaction whose compares are create_revision == 0 for each
// create and mod_revision == the revision the classification saw for each overwrite, and
// whose success ops are the puts (no lease). If the target changed in between (the txn's
// compares fail), the batch is classified again and retried, up to 5 times, then
// kUnavailable. No key outside the selection is ever written, and nothing is deleted.
// Outcomes reach the sink in processing order (the Namespace first, then key order), a
// batch at a time, after its transaction. Memory: one batch plus SnapshotKv's per-key
// index of the scanned range.
// Errors: the target's (client/etcd_client.h), the snapshot's (ops/snapshot_kv.h); a
// sink exception propagates (batches already written stay written).
// Thread-compatible.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "client/etcd_client.h"
#include "k8s/export.h"
#include "ops/snapshot_kv.h"

namespace etcdsafe::k8s {

enum class ObjectAction { kCreate, kEqual, kConflict, kOverwrite, kSkippedLeased, kRefusedEncrypted };
// "create", "equal", "conflict", "overwrite", "skipped-leased", "refused-encrypted"
const char* ObjectActionName(ObjectAction a);

struct ObjectOutcome {
  ObjectAction action = ObjectAction::kCreate;
  std::string key, resource, ns, name;
  std::string encoding;              // EncodingName of the source value
  int64_t bytes = 0;                 // source value size
  int64_t target_mod_revision = 0;   // what the classification saw (0: absent)
  bool written = false;
  int64_t written_revision = 0;      // the transaction's revision when written
};

struct RestoreObjectsOptions {
  ObjectSelection selection;
  bool apply = false;
  bool overwrite = false;
  bool allow_encrypted = false;
  size_t batch_ops = 64;             // etcd's --max-txn-ops default is 128
  size_t batch_bytes = 1u << 20;     // etcd's --max-request-bytes default is 1.5 MiB
};

struct RestoreObjectsSummary {
  int64_t source_revision = 0;
  int64_t selected = 0;
  int64_t create = 0, equal = 0, conflict = 0, overwrite = 0, skipped_leased = 0, refused_encrypted = 0;
  int64_t written = 0;
  int64_t transactions = 0;
  int64_t retries = 0;  // batches classified again because the target changed
};

RestoreObjectsSummary RestoreObjects(ops::SnapshotKv& source, client::EtcdClient& target,
                                     const RestoreObjectsOptions& options,
                                     const std::function<void(const ObjectOutcome&)>& sink);

nlohmann::json ObjectOutcomeToJson(const ObjectOutcome& o);
nlohmann::json RestoreObjectsSummaryToJson(const RestoreObjectsSummary& s);

}  // namespace etcdsafe::k8s
