// Offline inspections of a Kubernetes etcd snapshot (issue 11): inventory, one object's
// metadata, and the Secrets-at-rest audit, over the latest live revision of every key (no
// etcd, no API server).
// Inventory reads the file once in page order through ops::LiveKeys (see there: bounded
// memory, a sorted run on disk per 16 MiB of key records) and looks at each put's value once,
// as it passes (the envelope; with check_values JSON values through ScanJsonObject,
// k8s/json_facts.h); memory
// is LiveKeys' plus the aggregates here (one entry per resource, namespace and encoding, the
// `top` largest objects, the first 100 unknown keys), never the values.
// Get and the audit read through ops::SnapshotKv (its per-key index over the range, values
// one at a time by point lookup).
// Thread-compatible (one SnapshotKv per call).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "k8s/key.h"
#include "ops/snapshot_kv.h"

namespace etcdsafe::k8s {

struct Stats {
  int64_t count = 0;
  int64_t bytes = 0;  // sum of value sizes
};

struct LargeObject {
  std::string key;
  std::string resource;  // GroupResource()
  std::string ns;
  std::string name;
  int64_t bytes = 0;
};

struct Inventory {
  int64_t revision = 0;   // the snapshot's current revision
  int64_t compacted = 0;  // its compacted revision
  Stats total;            // every live key
  Stats objects;          // KeyKind::kObject
  Stats non_object;       // masterleases, ranges, compact_rev_key
  Stats unknown;          // under the prefix, shape not recognised
  Stats not_kubernetes;   // outside the prefix
  std::map<std::string, Stats> by_resource;   // "<group>/<resource>" or "<resource>"
  std::map<std::string, Stats> by_namespace;  // namespaced objects only
  std::map<std::string, Stats> by_encoding;   // objects, by EncodingName
  std::vector<LargeObject> largest;           // objects, largest first (ties: key order)
  std::vector<std::string> unknown_keys;      // the first 100 unknown keys
  bool values_checked = false;                // by_encoding from parsed values (check_values)
};

// check_values: every object's value is parsed (JSON through ScanJsonObject), so a
// malformed JSON value is counted as "malformed"; without it JSON values count as "json"
// by their first byte (EncodingUnchecked) and the inventory reads at the speed of the
// walk (on a 1 GB all-JSON snapshot the JSON scans are most of the work).
Inventory TakeInventory(ops::SnapshotKv& kv, size_t top = 10, std::string_view prefix = kRegistryPrefix,
                        bool check_values = false);
nlohmann::json InventoryToJson(const Inventory& inv);
std::string InventoryToTable(const Inventory& inv);

// `inspect get`: {"key", "keyInfo", "createRevision", "modRevision", "version", ...
// DescribeValue}. kNotFound when the key is not live in the snapshot.
nlohmann::json DescribeKey(ops::SnapshotKv& kv, const std::string& key, std::string_view prefix = kRegistryPrefix);
// The live value of `key` (kNotFound when absent).
std::string ReadValue(ops::SnapshotKv& kv, const std::string& key);

struct NamespacedName {
  std::string ns;
  std::string name;
};

struct SecretsAudit {
  int64_t total = 0;
  int64_t plain = 0;                          // protobuf, JSON or other unencrypted values
  std::map<std::string, int64_t> encrypted;   // Envelope::Provider() -> count
  std::vector<NamespacedName> plain_secrets;  // in key order
  int64_t unknown_keys = 0;                   // under <prefix>secrets/ but not an object key
  // With configmaps: the same for /registry/configmaps/.
  bool configmaps_checked = false;
  int64_t configmaps_total = 0;
  int64_t configmaps_plain = 0;
  std::map<std::string, int64_t> configmaps_encrypted;
};

SecretsAudit AuditSecrets(ops::SnapshotKv& kv, bool configmaps = false, std::string_view prefix = kRegistryPrefix);
nlohmann::json SecretsAuditToJson(const SecretsAudit& a);
std::string SecretsAuditToTable(const SecretsAudit& a);

}  // namespace etcdsafe::k8s

namespace etcdsafe::k8s {

// Block-style YAML of a JSON document (`inspect get -o yaml`): mappings and sequences as
// blocks, every string double-quoted with JSON escapes (valid YAML 1.2), numbers, booleans
// and null as themselves, empty containers as {} / []. Ends with a newline.
std::string ToYaml(const nlohmann::json& j);

}  // namespace etcdsafe::k8s
