// Classifies an etcd key written by a Kubernetes API server (prefix "/registry/", the
// kube-apiserver default of --etcd-prefix), following the layout of k8s.io/apiserver's
// storage (registry/generic/registry/store.go: NamespaceKeyRootFunc/NoNamespaceKeyFunc):
//
//   <prefix><resource-prefix>/<namespace>/<name>   namespaced object
//   <prefix><resource-prefix>/<name>               cluster-scoped object
//
// where <resource-prefix> is, as kube-apiserver's DefaultStorageFactory builds it:
//  * the resource alone for built-in groups (core, apps, batch, rbac, ...: the group is
//    not in the key), except SpecialDefaultResourcePrefixes (pkg/kubeapiserver/
//    default_storage_factory_builder.go): replicationcontrollers "controllers", endpoints
//    "services/endpoints", nodes "minions", services "services/specs", ingresses
//    "ingress", podsecuritypolicies "podsecuritypolicy";
//  * "<group>/<resource>" for apiextensions.k8s.io (customresourcedefinitions),
//    apiregistration.k8s.io (apiservices) and every custom resource (the CRD's group,
//    which always contains a dot, then its plural).
// Non-object keys: "<prefix>masterleases/<ip>" (endpoint reconciler leases),
// "<prefix>ranges/serviceips" and "<prefix>ranges/servicenodeports" (allocator bitmaps),
// and "compact_rev_key" (the API server's compactor; not under the prefix).
//
// Known built-in resources must have the segment count of their scope, otherwise the key
// is kUnknown. A resource that is neither known nor group-prefixed (a built-in newer than
// this table) is classified by its segment count, with known_resource = false. Anything
// else under the prefix (an empty segment, too many segments, an unknown "ranges/...") is
// kUnknown with the raw key kept; keys outside the prefix are kNotKubernetes.
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace etcdsafe::k8s {

inline constexpr std::string_view kRegistryPrefix = "/registry/";

enum class KeyKind { kObject, kNonObject, kUnknown, kNotKubernetes };
const char* KeyKindName(KeyKind k);  // "object", "non-object", "unknown", "not-kubernetes"

struct KeyInfo {
  KeyKind kind = KeyKind::kUnknown;
  std::string key;              // the raw key
  std::string group;            // from the key only: empty for built-ins (their group is not stored)
  std::string resource;         // API resource name (nodes, not minions); for kNonObject: what it is
  std::string storage_prefix;   // the path segment(s) as stored: "minions", "services/specs", "example.com/widgets"
  std::string ns;               // "" when cluster-scoped
  std::string name;
  bool cluster_scoped = false;
  bool known_resource = false;  // in this file's table of built-in resources or group-prefixed
  // "<group>/<resource>" or "<resource>": the inventory's grouping key.
  std::string GroupResource() const { return group.empty() ? resource : group + "/" + resource; }
};

KeyInfo ClassifyKey(std::string_view key, std::string_view prefix = kRegistryPrefix);

}  // namespace etcdsafe::k8s
