// Kubernetes value envelopes and object metadata, decoded without per-type schemas.
//
// A value the API server stores is one of (k8s.io/apiserver storage/value and
// apimachinery runtime/serializer):
//  * encrypted: "k8s:enc:<type>:v1:<name>:" + ciphertext, where <type> is aescbc, aesgcm,
//    secretbox or kms (v1), and "k8s:enc:kms:v2:<name>:" (KMS v2); the prefixes are those
//    of apiserver's encryptionconfig (aesCBCTransformerPrefixV1 "k8s:enc:aescbc:v1:", ...).
//    <name> is the key's name in the EncryptionConfiguration for aescbc/aesgcm/secretbox and
//    the provider's name for kms. A value starting with "k8s:enc:" that matches none of
//    these (or has no ':'-terminated name) is kEncrypted with type "unrecognized": it is
//    never taken for plain data. The identity provider stores plain values (no prefix).
//  * protobuf: "k8s\0" + runtime.Unknown {TypeMeta typeMeta = 1 {apiVersion = 1, kind = 2},
//    bytes raw = 2, contentEncoding = 3, contentType = 4} (runtime/generated.proto); raw is
//    the object's own message, whose field 1 is ObjectMeta for every object kind.
//  * JSON: starts with '{' (custom resources, and API servers configured for JSON).
//  * anything else: kOther.
// Decoding is bounded and never reads out of bounds; malformed input gives kMalformed with
// the reason. Nothing is guessed: a protobuf envelope that does not parse is kMalformed.
//
// ObjectMeta (apimachinery pkg/apis/meta/v1/generated.proto, checked against v0.26):
// name=1, generateName=2, namespace=3, selfLink=4, uid=5, resourceVersion=6, generation=7,
// creationTimestamp=8 and deletionTimestamp=9 (Time {seconds=1, nanos=2}),
// deletionGracePeriodSeconds=10, labels=11 and annotations=12 (map entries key=1 value=2),
// ownerReferences=13 (OwnerReference {kind=1, name=3, uid=4, apiVersion=5, controller=6,
// blockOwnerDeletion=7}), finalizers=14, managedFields=17 (counted, not decoded).
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/bytes.h"

namespace etcdsafe::k8s {

inline constexpr std::string_view kProtobufMagic{"k8s\0", 4};

enum class Encoding { kProtobuf, kJson, kEncrypted, kOther, kMalformed };
const char* EncodingName(Encoding e);  // "protobuf", "json", "encrypted", "other", "malformed"

struct Envelope {
  Encoding encoding = Encoding::kOther;
  // kProtobuf: TypeMeta and Unknown's fields. kJson: top-level apiVersion/kind when strings.
  std::string api_version;
  std::string kind;
  std::string content_encoding;
  std::string content_type;
  Bytes raw;  // kProtobuf: the object message (a view into the value)
  // kEncrypted: "aescbc", "aesgcm", "secretbox", "kms:v1", "kms:v2" or "unrecognized";
  // key_name: the name after the prefix (see above).
  std::string encryption;
  std::string key_name;
  std::string error;  // kMalformed: why
  // "aescbc:key1", "kms:v2:my-kms"...: the audit's grouping key.
  std::string Provider() const { return key_name.empty() ? encryption : encryption + ":" + key_name; }
};

Envelope ParseEnvelope(Bytes value);

struct Timestamp {
  int64_t seconds = 0;
  int32_t nanos = 0;
};
std::string Rfc3339(const Timestamp& t);  // UTC, "2024-05-01T10:00:00Z" (seconds precision, as metav1.Time)

struct OwnerReference {
  std::string api_version, kind, name, uid;
  std::optional<bool> controller, block_owner_deletion;
};

struct ObjectMeta {
  std::string name, generate_name, ns, self_link, uid, resource_version;
  int64_t generation = 0;
  std::optional<Timestamp> creation_timestamp, deletion_timestamp;
  std::optional<int64_t> deletion_grace_period_seconds;
  std::vector<std::pair<std::string, std::string>> labels, annotations;  // in stored order
  std::vector<OwnerReference> owner_references;
  std::vector<std::string> finalizers;
  int64_t managed_fields = 0;  // how many entries (not decoded)
};

// Decodes an ObjectMeta message. Returns the reason when malformed.
std::optional<std::string> DecodeObjectMeta(Bytes pb, ObjectMeta* out);
// Decodes field 1 of an object message (Unknown.raw) as ObjectMeta; several occurrences
// are merged in order, as protobuf does for an embedded message. Returns the reason when
// malformed or when field 1 is missing.
std::optional<std::string> DecodeObjectMetaOfObject(Bytes object_pb, ObjectMeta* out);
// ObjectMeta from a JSON object's "metadata" (custom resources). Returns the reason when
// the text is not a JSON object or has no metadata object.
std::optional<std::string> DecodeObjectMetaJson(std::string_view json_text, ObjectMeta* out);

// As kubectl's JSON: camelCase names, empty fields omitted, timestamps RFC 3339.
nlohmann::json ObjectMetaToJson(const ObjectMeta& m);

// Everything `inspect get` shows about one value: {"envelope": {...}, "apiVersion", "kind",
// "metadata": {...}, "raw": base64 of Unknown.raw (protobuf) / "object": the JSON object
// (json) / "value": base64 of the whole value (encrypted, other, malformed)}. A protobuf
// object of a kind k8s/types/typed_json.h covers also gets "object": the whole object as
// kubectl's JSON, and "unknownFields" when it holds fields those messages lack, or
// "objectError" when it does not decode as its kind (metadata and raw stay either way).
nlohmann::json DescribeValue(Bytes value);

std::string Base64(Bytes b);

}  // namespace etcdsafe::k8s
