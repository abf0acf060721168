// Object selection and `inspect export` (issue 11).
//
// ObjectSelection picks keys of a snapshot by Kubernetes identity, for export and for
// restore-objects:
//  * ns (--namespace N): every object key whose namespace is N (any resource), plus the
//    Namespace object itself (<prefix>namespaces/N);
//  * key_prefix (--prefix P): every key starting with P (objects or not);
//  * key (--key K): exactly K;
//  * resource (--resource R) narrows any of them to object keys whose GroupResource() or
//    resource is R ("pods", "example.com/widgets" or "widgets").
// An empty selection (nothing set) matches every object key (export only; restore-objects
// insists on one of ns / key_prefix / key).
//
// ExportObjects streams the live selected keys of a snapshot in key order, one JSON object
// each: {"key", "keyKind", "resource", "namespace", "name", "createRevision",
// "modRevision", "version", ["lease"], ... DescribeValue (envelope, apiVersion, kind,
// metadata, and "raw" (protobuf object, base64) / "object" (JSON value, parsed) / "value"
// (encrypted, other or malformed, base64))} — what `inspect get -o json` shows for the
// key. Memory: SnapshotKv's per-key index over the scanned range and one value at a time.
// Thread-compatible.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "k8s/key.h"
#include "ops/snapshot_kv.h"

namespace etcdsafe::k8s {

struct ObjectSelection {
  std::string ns;
  std::string key_prefix;
  std::string key;
  std::string resource;
  std::string etcd_prefix = std::string(kRegistryPrefix);

  // Whether `key` (classified as `info`) is selected.
  bool Matches(const std::string& key, const KeyInfo& info) const;
  // The key range that holds every selected key ([begin, end) with etcd's conventions).
  std::string RangeBegin() const;
  std::string RangeEnd() const;
  // "<prefix>namespaces/<ns>" when ns is set and the resource filter admits namespaces.
  std::string NamespaceKey() const;
};

// "\0"-terminated etcd range end of a prefix ("\0" for an empty prefix: every key).
std::string PrefixRangeEnd(std::string prefix);

// The JSON `export` writes for one kv.
nlohmann::json ExportKv(const ops::KeyValue& e, std::string_view etcd_prefix);

// Calls `sink` for every selected live key in key order; returns how many.
int64_t ExportObjects(ops::SnapshotKv& kv, const ObjectSelection& sel,
                      const std::function<void(const nlohmann::json&)>& sink);

}  // namespace etcdsafe::k8s
