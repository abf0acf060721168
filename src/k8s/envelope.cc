#include "k8s/envelope.h"

#include <ctime>

#include "k8s/types/typed_json.h"
#include "k8s/wire.h"

namespace etcdsafe::k8s {
namespace {

struct EncPrefix {
  std::string_view prefix;
  const char* type;
};
constexpr EncPrefix kEncPrefixes[] = {
    {"k8s:enc:aescbc:v1:", "aescbc"}, {"k8s:enc:aesgcm:v1:", "aesgcm"}, {"k8s:enc:secretbox:v1:", "secretbox"},
    {"k8s:enc:kms:v1:", "kms:v1"},    {"k8s:enc:kms:v2:", "kms:v2"},
};

bool StartsWith(std::string_view s, std::string_view p) { return s.size() >= p.size() && s.substr(0, p.size()) == p; }

std::optional<std::string> DecodeTypeMeta(Bytes pb, Envelope* e) {
  WireReader r(pb);
  WireField f;
  while (r.Next(&f)) {
    if (f.type != kLengthDelimited) continue;
    if (f.number == 1) e->api_version = f.str();
    if (f.number == 2) e->kind = f.str();
  }
  if (!r.error().empty()) return "typeMeta: " + r.error();
  return std::nullopt;
}

std::optional<std::string> DecodeTimestamp(Bytes pb, Timestamp* t) {
  WireReader r(pb);
  WireField f;
  while (r.Next(&f)) {
    if (f.number == 1 && f.type == kVarint) t->seconds = int64_t(f.varint);
    if (f.number == 2 && f.type == kVarint) t->nanos = int32_t(f.varint);
  }
  if (!r.error().empty()) return "time: " + r.error();
  return std::nullopt;
}

std::optional<std::string> DecodeMapEntry(Bytes pb, std::pair<std::string, std::string>* kv) {
  WireReader r(pb);
  WireField f;
  while (r.Next(&f)) {
    if (f.type != kLengthDelimited) continue;
    if (f.number == 1) kv->first = f.str();
    if (f.number == 2) kv->second = f.str();
  }
  if (!r.error().empty()) return "map entry: " + r.error();
  return std::nullopt;
}

std::optional<std::string> DecodeOwnerReference(Bytes pb, OwnerReference* o) {
  WireReader r(pb);
  WireField f;
  while (r.Next(&f)) {
    if (f.type == kLengthDelimited) {
      if (f.number == 1) o->kind = f.str();
      if (f.number == 3) o->name = f.str();
      if (f.number == 4) o->uid = f.str();
      if (f.number == 5) o->api_version = f.str();
    } else if (f.type == kVarint) {
      if (f.number == 6) o->controller = f.varint != 0;
      if (f.number == 7) o->block_owner_deletion = f.varint != 0;
    }
  }
  if (!r.error().empty()) return "ownerReference: " + r.error();
  return std::nullopt;
}

// Sets a string map entry the way Go's map does: a repeated key keeps the last value.
void PutEntry(std::vector<std::pair<std::string, std::string>>* m, std::pair<std::string, std::string> kv) {
  for (auto& e : *m) {
    if (e.first == kv.first) {
      e.second = std::move(kv.second);
      return;
    }
  }
  m->push_back(std::move(kv));
}

}  // namespace

const char* EncodingName(Encoding e) {
  switch (e) {
    case Encoding::kProtobuf: return "protobuf";
    case Encoding::kJson: return "json";
    case Encoding::kEncrypted: return "encrypted";
    case Encoding::kOther: return "other";
    case Encoding::kMalformed: return "malformed";
  }
  return "other";
}

Envelope ParseEnvelope(Bytes value) {
  Envelope e;
  const std::string_view s = AsString(value);
  if (StartsWith(s, "k8s:enc:")) {
    e.encoding = Encoding::kEncrypted;
    e.encryption = "unrecognized";
    for (const EncPrefix& p : kEncPrefixes) {
      if (!StartsWith(s, p.prefix)) continue;
      const size_t colon = s.find(':', p.prefix.size());
      if (colon == std::string_view::npos || colon == p.prefix.size()) break;  // no name: unrecognized
      e.encryption = p.type;
      e.key_name = std::string(s.substr(p.prefix.size(), colon - p.prefix.size()));
      break;
    }
    return e;
  }
  if (StartsWith(s, kProtobufMagic)) {
    e.encoding = Encoding::kProtobuf;
    WireReader r(value.subspan(kProtobufMagic.size()));
    WireField f;
    while (r.Next(&f)) {
      if (f.type != kLengthDelimited) continue;
      if (f.number == 1) {
        if (auto err = DecodeTypeMeta(f.bytes, &e)) {
          e.encoding = Encoding::kMalformed;
          e.error = *err;
          return e;
        }
      } else if (f.number == 2) {
        e.raw = f.bytes;
      } else if (f.number == 3) {
        e.content_encoding = f.str();
      } else if (f.number == 4) {
        e.content_type = f.str();
      }
    }
    if (!r.error().empty()) {
      e.encoding = Encoding::kMalformed;
      e.error = "runtime.Unknown: " + r.error();
    }
    return e;
  }
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')) i++;
  if (i < s.size() && s[i] == '{') {
    e.encoding = Encoding::kJson;
    nlohmann::json j = nlohmann::json::parse(s, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      e.encoding = Encoding::kMalformed;
      e.error = "starts with '{' but is not a JSON object";
      return e;
    }
    if (auto it = j.find("apiVersion"); it != j.end() && it->is_string()) e.api_version = it->get<std::string>();
    if (auto it = j.find("kind"); it != j.end() && it->is_string()) e.kind = it->get<std::string>();
    return e;
  }
  e.encoding = Encoding::kOther;
  return e;
}

std::string Rfc3339(const Timestamp& t) {
  std::time_t secs = std::time_t(t.seconds);
  std::tm tm{};
  if (!gmtime_r(&secs, &tm)) return std::to_string(t.seconds);
  char buf[64];
  if (std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) return std::to_string(t.seconds);
  return buf;
}

std::optional<std::string> DecodeObjectMeta(Bytes pb, ObjectMeta* m) {
  WireReader r(pb);
  WireField f;
  while (r.Next(&f)) {
    if (f.type == kVarint) {
      if (f.number == 7) m->generation = int64_t(f.varint);
      if (f.number == 10) m->deletion_grace_period_seconds = int64_t(f.varint);
      continue;
    }
    if (f.type != kLengthDelimited) continue;
    std::optional<std::string> err;
    switch (f.number) {
      case 1: m->name = f.str(); break;
      case 2: m->generate_name = f.str(); break;
      case 3: m->ns = f.str(); break;
      case 4: m->self_link = f.str(); break;
      case 5: m->uid = f.str(); break;
      case 6: m->resource_version = f.str(); break;
      case 8: err = DecodeTimestamp(f.bytes, &m->creation_timestamp.emplace()); break;
      case 9: err = DecodeTimestamp(f.bytes, &m->deletion_timestamp.emplace()); break;
      case 11:
      case 12: {
        std::pair<std::string, std::string> kv;
        err = DecodeMapEntry(f.bytes, &kv);
        if (!err) PutEntry(f.number == 11 ? &m->labels : &m->annotations, std::move(kv));
        break;
      }
      case 13: err = DecodeOwnerReference(f.bytes, &m->owner_references.emplace_back()); break;
      case 14: m->finalizers.emplace_back(f.str()); break;
      case 17: m->managed_fields++; break;
      default: break;
    }
    if (err) return "metadata." + *err;
  }
  if (!r.error().empty()) return "metadata: " + r.error();
  return std::nullopt;
}

std::optional<std::string> DecodeObjectMetaOfObject(Bytes object_pb, ObjectMeta* out) {
  WireReader r(object_pb);
  WireField f;
  bool found = false;
  while (r.Next(&f)) {
    if (f.number != 1) continue;
    if (f.type != kLengthDelimited) return "object field 1 is not a message";
    found = true;
    if (auto err = DecodeObjectMeta(f.bytes, out)) return err;
  }
  if (!r.error().empty()) return "object: " + r.error();
  if (!found) return "object has no metadata (field 1)";
  return std::nullopt;
}

std::optional<std::string> DecodeObjectMetaJson(std::string_view json_text, ObjectMeta* m) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return "not a JSON object";
  auto md = j.find("metadata");
  if (md == j.end() || !md->is_object()) return "no metadata object";
  auto str = [&](const char* k, std::string* dst) {
    if (auto it = md->find(k); it != md->end() && it->is_string()) *dst = it->get<std::string>();
  };
  str("name", &m->name);
  str("generateName", &m->generate_name);
  str("namespace", &m->ns);
  str("selfLink", &m->self_link);
  str("uid", &m->uid);
  str("resourceVersion", &m->resource_version);
  if (auto it = md->find("generation"); it != md->end() && it->is_number_integer()) m->generation = it->get<int64_t>();
  auto stringmap = [&](const char* k, std::vector<std::pair<std::string, std::string>>* dst) {
    if (auto it = md->find(k); it != md->end() && it->is_object()) {
      for (auto& [key, v] : it->items()) {
        if (v.is_string()) dst->emplace_back(key, v.get<std::string>());
      }
    }
  };
  stringmap("labels", &m->labels);
  stringmap("annotations", &m->annotations);
  if (auto it = md->find("ownerReferences"); it != md->end() && it->is_array()) {
    for (const auto& o : *it) {
      if (!o.is_object()) continue;
      OwnerReference ref;
      ref.api_version = o.value("apiVersion", "");
      ref.kind = o.value("kind", "");
      ref.name = o.value("name", "");
      ref.uid = o.value("uid", "");
      if (auto c = o.find("controller"); c != o.end() && c->is_boolean()) ref.controller = c->get<bool>();
      if (auto b = o.find("blockOwnerDeletion"); b != o.end() && b->is_boolean()) ref.block_owner_deletion = b->get<bool>();
      m->owner_references.push_back(std::move(ref));
    }
  }
  if (auto it = md->find("finalizers"); it != md->end() && it->is_array()) {
    for (const auto& s : *it) {
      if (s.is_string()) m->finalizers.push_back(s.get<std::string>());
    }
  }
  if (auto it = md->find("managedFields"); it != md->end() && it->is_array()) m->managed_fields = int64_t(it->size());
  return std::nullopt;
}

nlohmann::json ObjectMetaToJson(const ObjectMeta& m) {
  nlohmann::json j = nlohmann::json::object();
  auto put = [&](const char* k, const std::string& v) {
    if (!v.empty()) j[k] = v;
  };
  put("name", m.name);
  put("generateName", m.generate_name);
  put("namespace", m.ns);
  put("selfLink", m.self_link);
  put("uid", m.uid);
  put("resourceVersion", m.resource_version);
  if (m.generation != 0) j["generation"] = m.generation;
  if (m.creation_timestamp) j["creationTimestamp"] = Rfc3339(*m.creation_timestamp);
  if (m.deletion_timestamp) j["deletionTimestamp"] = Rfc3339(*m.deletion_timestamp);
  if (m.deletion_grace_period_seconds) j["deletionGracePeriodSeconds"] = *m.deletion_grace_period_seconds;
  auto map = [&](const char* k, const std::vector<std::pair<std::string, std::string>>& v) {
    if (v.empty()) return;
    nlohmann::json o = nlohmann::json::object();
    for (const auto& [key, val] : v) o[key] = val;
    j[k] = o;
  };
  map("labels", m.labels);
  map("annotations", m.annotations);
  if (!m.owner_references.empty()) {
    nlohmann::json a = nlohmann::json::array();
    for (const OwnerReference& o : m.owner_references) {
      nlohmann::json r = {{"apiVersion", o.api_version}, {"kind", o.kind}, {"name", o.name}, {"uid", o.uid}};
      if (o.controller) r["controller"] = *o.controller;
      if (o.block_owner_deletion) r["blockOwnerDeletion"] = *o.block_owner_deletion;
      a.push_back(std::move(r));
    }
    j["ownerReferences"] = std::move(a);
  }
  if (!m.finalizers.empty()) j["finalizers"] = m.finalizers;
  if (m.managed_fields != 0) j["managedFieldsCount"] = m.managed_fields;
  return j;
}

std::string Base64(Bytes b) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((b.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= b.size(); i += 3) {
    const uint32_t v = (uint32_t(b[i]) << 16) | (uint32_t(b[i + 1]) << 8) | b[i + 2];
    for (int s = 18; s >= 0; s -= 6) out.push_back(kAlphabet[(v >> s) & 63]);
  }
  if (const size_t rest = b.size() - i; rest > 0) {
    const uint32_t v = (uint32_t(b[i]) << 16) | (rest == 2 ? uint32_t(b[i + 1]) << 8 : 0);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

nlohmann::json DescribeValue(Bytes value) {
  const Envelope e = ParseEnvelope(value);
  nlohmann::json env = {{"encoding", EncodingName(e.encoding)}, {"size", value.size()}};
  nlohmann::json out = nlohmann::json::object();
  switch (e.encoding) {
    case Encoding::kEncrypted:
      env["encryption"] = e.encryption;
      if (!e.key_name.empty()) env["keyName"] = e.key_name;
      out["envelope"] = env;
      out["value"] = Base64(value);
      return out;
    case Encoding::kOther:
      out["envelope"] = env;
      out["value"] = Base64(value);
      return out;
    case Encoding::kMalformed:
      env["error"] = e.error;
      out["envelope"] = env;
      out["value"] = Base64(value);
      return out;
    case Encoding::kProtobuf: {
      if (!e.content_encoding.empty()) env["contentEncoding"] = e.content_encoding;
      if (!e.content_type.empty()) env["contentType"] = e.content_type;
      out["envelope"] = env;
      out["apiVersion"] = e.api_version;
      out["kind"] = e.kind;
      ObjectMeta m;
      if (auto err = DecodeObjectMetaOfObject(e.raw, &m)) {
        out["metadataError"] = *err;
      } else {
        out["metadata"] = ObjectMetaToJson(m);
      }
      if (HasTypedSchema(e.api_version, e.kind)) {
        if (!e.content_encoding.empty()) {
          out["objectError"] = "contentEncoding " + e.content_encoding + " is not decoded";
        } else {
          TypedObject t = DecodeTypedObject(e.api_version, e.kind, e.raw);
          if (t.status == TypedObject::kOk) {
            out["object"] = std::move(t.object);
            if (!t.unknown_fields.empty()) out["unknownFields"] = std::move(t.unknown_fields);
          } else {
            out["objectError"] = t.error;
          }
        }
      }
      out["raw"] = Base64(e.raw);
      return out;
    }
    case Encoding::kJson: {
      out["envelope"] = env;
      if (!e.api_version.empty()) out["apiVersion"] = e.api_version;
      if (!e.kind.empty()) out["kind"] = e.kind;
      ObjectMeta m;
      if (auto err = DecodeObjectMetaJson(AsString(value), &m)) {
        out["metadataError"] = *err;
      } else {
        out["metadata"] = ObjectMetaToJson(m);
      }
      out["object"] = nlohmann::json::parse(AsString(value), nullptr, false);
      return out;
    }
  }
  return out;
}

}  // namespace etcdsafe::k8s
