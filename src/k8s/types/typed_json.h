// Full JSON of the common built-in Kubernetes kinds, decoded from the protobuf the API server
// stores in etcd (Unknown.raw of the "k8s\0" envelope), as `kubectl get -o json` shows it.
//
// Covered (apiVersion kind -> message of the .proto files in this folder, written for etcdsafe
// with the field numbers of Kubernetes v0.28.15's generated.proto; check_upstream.py checks
// them and their JSON options against Kubernetes' generated.proto and Go struct tags):
//   v1: Namespace, Pod, Service, Endpoints, ConfigMap, Secret, ServiceAccount, Node, Event,
//       PersistentVolume, PersistentVolumeClaim
//   apps/v1: Deployment, ReplicaSet, StatefulSet, DaemonSet
//   batch/v1: Job, CronJob
//   coordination.k8s.io/v1: Lease
//   rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding, ClusterRoleBinding
// Anything else is not covered (DecodeTypedObject says kNotCovered; callers keep metadata + raw).
//
// JSON rules (Go encoding/json on the k8s.io/api structs, see json_options.proto):
//  * names are the protobuf field names (Kubernetes' JSON names); "apiVersion" and "kind" are
//    added at the top; keys come out sorted, as kubectl prints them;
//  * omitempty non-pointer scalars and lists/maps are left out when zero/empty; pointer fields
//    (*int32, *bool, *T) are shown when present, zero or not; fields without omitempty and
//    non-pointer structs are always shown (zero values when absent, null for an empty list/map
//    or a zero Time); `json:",inline"` structs are merged into their parent;
//  * int32/int64 are JSON numbers (not strings as protobuf's own JSON mapping does); bytes
//    (Secret.data, ConfigMap.binaryData) are base64; map<string, T> are objects;
//  * Time: RFC 3339 in UTC with seconds ("2024-01-02T03:04:05Z"); MicroTime: 6 fractional
//    digits ("2024-01-02T03:04:05.123456Z"); both null when zero (an empty message);
//  * Quantity: its stored string ("0" when absent); IntOrString: intVal as a number (type 0) or
//    strVal as a string (type 1); FieldsV1 (managedFields): its raw JSON (base64 if not JSON);
//  * strings with invalid UTF-8: each bad byte becomes U+FFFD, as Go's encoder does.
// Known differences from the API server: a Quantity is shown as stored, not re-canonicalised
// (the API server stores canonical forms); an IntOrString whose type is neither 0 nor 1 (which
// Go refuses to marshal) is shown as its intVal.
//
// Unknown fields (a newer Kubernetes with fields these messages lack, or a known number with
// an unexpected wire type) are never dropped silently: every message holding some is listed
// in `unknown_fields` as {"path": "$.spec.containers[0]", "fields": [{"number": 99, "wireType":
// 2}]} ("$" is the object itself; callers also keep the raw bytes). Malformed protobuf gives kMalformed with the reason.
// Decoding is bounded by protobuf's parser (recursion limit 100); pure functions, thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/bytes.h"

namespace etcdsafe::k8s {

struct TypedKind {
  std::string_view api_version;
  std::string_view kind;
  std::string_view message;  // full protobuf name, e.g. "k8s.io.api.core.v1.Pod"
};
// Every covered kind, in the order listed above.
const std::vector<TypedKind>& TypedKinds();
bool HasTypedSchema(std::string_view api_version, std::string_view kind);

struct TypedObject {
  enum Status { kNotCovered, kOk, kMalformed };
  Status status = kNotCovered;
  nlohmann::json object;                                    // kOk: the object
  nlohmann::json unknown_fields = nlohmann::json::array();  // kOk: see above
  std::string error;                                        // kMalformed: why
};

// Decodes `raw` (the object message) as (api_version, kind).
TypedObject DecodeTypedObject(std::string_view api_version, std::string_view kind, Bytes raw);

}  // namespace etcdsafe::k8s
