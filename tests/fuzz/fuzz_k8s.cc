// Fuzz target for the Kubernetes value decoders (k8s/envelope.h, k8s/wire.h, k8s/key.h):
// untrusted etcd values and keys. The whole input is
//  * parsed as an envelope (and, when protobuf, its object's metadata decoded and
//    described as JSON, which must serialize);
//  * decoded as an ObjectMeta message and as an object message directly;
//  * walked by the wire reader, whose fields must lie inside the input;
//  * classified as a key, whose object parts must be substrings of it;
//  * summarised by FactsOfValue (JSON through ScanJsonObject, no DOM), which must agree
//    with ParseEnvelope and DecodeObjectMetaJson / DecodeObjectMetaOfObject.
// Only etcdsafe::Error may escape; anything else (or a broken invariant) is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/error.h"
#include "k8s/envelope.h"
#include "k8s/json_facts.h"
#include "k8s/key.h"
#include "k8s/types/typed_json.h"
#include "k8s/wire.h"

namespace {

using namespace etcdsafe;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Bytes in(data, size);
  try {
    k8s::Envelope e = k8s::ParseEnvelope(in);
    if (e.encoding == k8s::Encoding::kProtobuf) {
      Check(e.raw.empty() || (e.raw.data() >= data && e.raw.data() + e.raw.size() <= data + size));
    }
    if (e.encoding == k8s::Encoding::kEncrypted) Check(!e.encryption.empty());
    (void)k8s::DescribeValue(in).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    k8s::ObjectMeta m;
    if (!k8s::DecodeObjectMeta(in, &m)) {
      (void)k8s::ObjectMetaToJson(m).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
    k8s::ObjectMeta m2;
    (void)k8s::DecodeObjectMetaOfObject(in, &m2);
    k8s::WireReader r(in);
    k8s::WireField f;
    while (r.Next(&f)) {
      Check(f.number != 0);
      Check(f.bytes.empty() || (f.bytes.data() >= data && f.bytes.data() + f.bytes.size() <= data + size));
    }
    const std::string key(reinterpret_cast<const char*>(data), size);
    k8s::KeyInfo info = k8s::ClassifyKey(key);
    if (info.kind == k8s::KeyKind::kObject) {
      Check(!info.name.empty());
      Check(key.find(info.name) != std::string::npos);
      Check(info.cluster_scoped == info.ns.empty());
    }
    const k8s::ValueFacts fast = k8s::FactsOfValue(in, true);
    Check(fast.encoding == e.encoding);
    {
      const std::string_view sv = AsString(in);
      const size_t first = sv.find_first_not_of(" \t\n\r");
      const bool brace = first != std::string_view::npos && sv[first] == '{';
      Check(k8s::EncodingUnchecked(in) == (brace ? k8s::Encoding::kJson : e.encoding));
    }
    k8s::ObjectMeta ref;
    bool ok = false;
    if (e.encoding == k8s::Encoding::kProtobuf) ok = !k8s::DecodeObjectMetaOfObject(e.raw, &ref).has_value();
    if (e.encoding == k8s::Encoding::kJson) ok = !k8s::DecodeObjectMetaJson(AsString(in), &ref).has_value();
    Check(fast.uid == (ok ? ref.uid : std::string()));
    Check(fast.generation == (ok ? ref.generation : 0));
    if (size > 0) {
      const auto& kinds = k8s::TypedKinds();
      const k8s::TypedKind& kind = kinds[data[0] % kinds.size()];
      const k8s::TypedObject t = k8s::DecodeTypedObject(kind.api_version, kind.kind, in.subspan(1));
      if (t.status == k8s::TypedObject::kOk) {
        Check(t.object.is_object() && t.object.value("kind", "") == kind.kind);
        Check(t.unknown_fields.is_array());
        (void)t.object.dump();  // strict: throws (a bug) on invalid UTF-8
        (void)t.unknown_fields.dump();
      } else {
        Check(t.status == k8s::TypedObject::kMalformed && !t.error.empty());
      }
    }
  } catch (const Error&) {
  }
  return 0;
}
