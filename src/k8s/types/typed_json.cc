#include "k8s/types/typed_json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/unknown_field_set.h>

#include <climits>
#include <cstdio>
#include <memory>

#include "k8s/types/apps.pb.h"
#include "k8s/types/batch.pb.h"
#include "k8s/types/coordination.pb.h"
#include "k8s/types/core.pb.h"
#include "k8s/types/json_options.pb.h"
#include "k8s/types/rbac.pb.h"

namespace etcdsafe::k8s {
namespace {

namespace gp = google::protobuf;
using Json = nlohmann::json;

struct KindEntry {
  TypedKind kind;
  const gp::Message& (*prototype)();
};

template <typename T>
const gp::Message& Prototype() {
  return T::default_instance();
}

namespace core = ::k8s::io::api::core::v1;
namespace apps = ::k8s::io::api::apps::v1;
namespace batch = ::k8s::io::api::batch::v1;
namespace coordination = ::k8s::io::api::coordination::v1;
namespace rbac = ::k8s::io::api::rbac::v1;

// Referencing every message class also makes the linker keep the generated descriptors.
const std::vector<KindEntry>& Entries() {
  static const std::vector<KindEntry> kEntries = {
      {{"v1", "Namespace", "k8s.io.api.core.v1.Namespace"}, &Prototype<core::Namespace>},
      {{"v1", "Pod", "k8s.io.api.core.v1.Pod"}, &Prototype<core::Pod>},
      {{"v1", "Service", "k8s.io.api.core.v1.Service"}, &Prototype<core::Service>},
      {{"v1", "Endpoints", "k8s.io.api.core.v1.Endpoints"}, &Prototype<core::Endpoints>},
      {{"v1", "ConfigMap", "k8s.io.api.core.v1.ConfigMap"}, &Prototype<core::ConfigMap>},
      {{"v1", "Secret", "k8s.io.api.core.v1.Secret"}, &Prototype<core::Secret>},
      {{"v1", "ServiceAccount", "k8s.io.api.core.v1.ServiceAccount"}, &Prototype<core::ServiceAccount>},
      {{"v1", "Node", "k8s.io.api.core.v1.Node"}, &Prototype<core::Node>},
      {{"v1", "Event", "k8s.io.api.core.v1.Event"}, &Prototype<core::Event>},
      {{"v1", "PersistentVolume", "k8s.io.api.core.v1.PersistentVolume"}, &Prototype<core::PersistentVolume>},
      {{"v1", "PersistentVolumeClaim", "k8s.io.api.core.v1.PersistentVolumeClaim"},
       &Prototype<core::PersistentVolumeClaim>},
      {{"apps/v1", "Deployment", "k8s.io.api.apps.v1.Deployment"}, &Prototype<apps::Deployment>},
      {{"apps/v1", "ReplicaSet", "k8s.io.api.apps.v1.ReplicaSet"}, &Prototype<apps::ReplicaSet>},
      {{"apps/v1", "StatefulSet", "k8s.io.api.apps.v1.StatefulSet"}, &Prototype<apps::StatefulSet>},
      {{"apps/v1", "DaemonSet", "k8s.io.api.apps.v1.DaemonSet"}, &Prototype<apps::DaemonSet>},
      {{"batch/v1", "Job", "k8s.io.api.batch.v1.Job"}, &Prototype<batch::Job>},
      {{"batch/v1", "CronJob", "k8s.io.api.batch.v1.CronJob"}, &Prototype<batch::CronJob>},
      {{"coordination.k8s.io/v1", "Lease", "k8s.io.api.coordination.v1.Lease"}, &Prototype<coordination::Lease>},
      {{"rbac.authorization.k8s.io/v1", "Role", "k8s.io.api.rbac.v1.Role"}, &Prototype<rbac::Role>},
      {{"rbac.authorization.k8s.io/v1", "ClusterRole", "k8s.io.api.rbac.v1.ClusterRole"},
       &Prototype<rbac::ClusterRole>},
      {{"rbac.authorization.k8s.io/v1", "RoleBinding", "k8s.io.api.rbac.v1.RoleBinding"},
       &Prototype<rbac::RoleBinding>},
      {{"rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "k8s.io.api.rbac.v1.ClusterRoleBinding"},
       &Prototype<rbac::ClusterRoleBinding>},
  };
  return kEntries;
}

const KindEntry* Find(std::string_view api_version, std::string_view kind) {
  for (const KindEntry& e : Entries()) {
    if (e.kind.api_version == api_version && e.kind.kind == kind) return &e;
  }
  return nullptr;
}

std::string Base64(std::string_view b) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((b.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= b.size(); i += 3) {
    const uint32_t v = (uint32_t(uint8_t(b[i])) << 16) | (uint32_t(uint8_t(b[i + 1])) << 8) | uint8_t(b[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out.push_back(kAlphabet[(v >> s) & 63]);
  }
  if (const size_t rest = b.size() - i; rest > 0) {
    const uint32_t v = (uint32_t(uint8_t(b[i])) << 16) | (rest == 2 ? uint32_t(uint8_t(b[i + 1])) << 8 : 0);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

// Valid UTF-8 as is; each byte that does not start a valid sequence becomes U+FFFD (Go's
// encoding/json does the same).
std::string Utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const uint8_t c = uint8_t(s[i]);
    size_t n = 0;
    uint32_t min = 0;
    if (c < 0x80) {
      out.push_back(char(c));
      i++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 2, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      n = 3, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      n = 4, min = 0x10000;
    }
    bool ok = n != 0 && i + n <= s.size();
    uint32_t cp = n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
    for (size_t k = 1; ok && k < n; k++) {
      const uint8_t cc = uint8_t(s[i + k]);
      if ((cc & 0xc0) != 0x80) ok = false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (ok && (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))) ok = false;
    if (ok) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out.append("\xef\xbf\xbd");
      i++;
    }
  }
  return out;
}

// Go's time.Unix(seconds, nanos).UTC() formatted as RFC 3339, with `frac` fractional digits
// (0 or 6). Days to civil date: H. Hinnant's algorithm, valid for every int64 second count.
std::string FormatTime(int64_t seconds, int64_t nanos, int frac) {
  int64_t carry = nanos / 1000000000;
  nanos %= 1000000000;
  if (nanos < 0) {
    nanos += 1000000000;
    carry--;
  }
  if (int64_t adjusted; __builtin_add_overflow(seconds, carry, &adjusted)) {
    nanos = 0;  // past the int64 range: the second as stored
  } else {
    seconds = adjusted;
  }
  int64_t days = seconds / 86400;
  int64_t rem = seconds % 86400;
  if (rem < 0) {
    rem += 86400;
    days--;
  }
  const int64_t z = days + 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const int64_t m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  char buf[96];
  const char* sign = y < 0 ? "-" : "";
  const long long ay = y < 0 ? -(long long)y : (long long)y;
  int n = std::snprintf(buf, sizeof buf, "%s%04lld-%02d-%02dT%02d:%02d:%02d", sign, ay, int(m), int(d),
                        int(rem / 3600), int(rem / 60 % 60), int(rem % 60));
  std::string out(buf, size_t(n));
  if (frac == 6) {
    std::snprintf(buf, sizeof buf, ".%06d", int(nanos / 1000));
    out += buf;
  }
  return out + "Z";
}

etcdsafe::k8sjson::JsonEmit EmitOf(const gp::FieldDescriptor* f) {
  return f->options().GetExtension(etcdsafe::k8sjson::emit);
}

int WireTypeOf(const gp::UnknownField& f) {
  switch (f.type()) {
    case gp::UnknownField::TYPE_VARINT: return 0;
    case gp::UnknownField::TYPE_FIXED64: return 1;
    case gp::UnknownField::TYPE_LENGTH_DELIMITED: return 2;
    case gp::UnknownField::TYPE_GROUP: return 3;
    case gp::UnknownField::TYPE_FIXED32: return 5;
  }
  return -1;
}

class Renderer {
 public:
  Json unknown = Json::array();

  // The fields of `m` into `out` (an object).
  void Fields(const gp::Message& m, const std::string& path, Json* out) {
    const gp::Descriptor* d = m.GetDescriptor();
    const gp::Reflection* r = m.GetReflection();
    Unknown(*r, m, path);
    Json inlined = Json::object();
    for (int i = 0; i < d->field_count(); i++) {
      const gp::FieldDescriptor* f = d->field(i);
      const auto emit = EmitOf(f);
      const std::string& name = f->name();
      const std::string fpath = path + "." + name;
      if (f->is_repeated()) {
        const int n = r->FieldSize(m, f);
        if (n == 0) {
          if (emit == etcdsafe::k8sjson::ALWAYS) (*out)[name] = nullptr;  // a nil slice or map
          continue;
        }
        Json v = f->is_map() ? Json::object() : Json::array();
        for (int k = 0; k < n; k++) {
          if (f->is_map()) {
            const gp::Message& e = r->GetRepeatedMessage(m, f, k);
            const gp::FieldDescriptor* kf = f->message_type()->map_key();
            const gp::FieldDescriptor* vf = f->message_type()->map_value();
            const std::string key = Utf8(ScalarString(e, kf));
            v[key] = Singular(e, vf, fpath + "[\"" + key + "\"]");
          } else if (f->cpp_type() == gp::FieldDescriptor::CPPTYPE_MESSAGE) {
            v.push_back(Value(r->GetRepeatedMessage(m, f, k), fpath + "[" + std::to_string(k) + "]"));
          } else {
            v.push_back(Scalar(m, f, k));
          }
        }
        (*out)[name] = std::move(v);
        continue;
      }
      const bool has = r->HasField(m, f);
      if (f->cpp_type() == gp::FieldDescriptor::CPPTYPE_MESSAGE) {
        if (emit == etcdsafe::k8sjson::INLINE) {
          Fields(r->GetMessage(m, f), fpath, &inlined);
        } else if (has || emit == etcdsafe::k8sjson::ALWAYS) {
          (*out)[name] = Value(r->GetMessage(m, f), fpath);  // the default instance when absent
        }
        continue;
      }
      if (emit == etcdsafe::k8sjson::WHEN_SET) {
        if (has) (*out)[name] = Scalar(m, f, -1);
      } else if (emit == etcdsafe::k8sjson::ALWAYS) {
        (*out)[name] = Scalar(m, f, -1);
      } else if (has && !IsZero(m, f)) {
        (*out)[name] = Scalar(m, f, -1);
      }
    }
    // An embedded struct's fields are promoted; the outer struct's own fields win.
    for (auto& [k, v] : inlined.items()) {
      if (!out->contains(k)) (*out)[k] = std::move(v);
    }
  }

 private:
  void Unknown(const gp::Reflection& r, const gp::Message& m, const std::string& path) {
    const gp::UnknownFieldSet& u = r.GetUnknownFields(m);
    if (u.empty()) return;
    Json fields = Json::array();
    for (int i = 0; i < u.field_count(); i++) {
      fields.push_back({{"number", u.field(i).number()}, {"wireType", WireTypeOf(u.field(i))}});
    }
    unknown.push_back({{"path", path}, {"fields", std::move(fields)}});
  }

  static std::string ScalarString(const gp::Message& m, const gp::FieldDescriptor* f) {
    return f->cpp_type() == gp::FieldDescriptor::CPPTYPE_STRING ? m.GetReflection()->GetString(m, f) : "";
  }

  static bool IsZero(const gp::Message& m, const gp::FieldDescriptor* f) {
    const gp::Reflection* r = m.GetReflection();
    switch (f->cpp_type()) {
      case gp::FieldDescriptor::CPPTYPE_INT32: return r->GetInt32(m, f) == 0;
      case gp::FieldDescriptor::CPPTYPE_INT64: return r->GetInt64(m, f) == 0;
      case gp::FieldDescriptor::CPPTYPE_UINT32: return r->GetUInt32(m, f) == 0;
      case gp::FieldDescriptor::CPPTYPE_UINT64: return r->GetUInt64(m, f) == 0;
      case gp::FieldDescriptor::CPPTYPE_DOUBLE: return r->GetDouble(m, f) == 0;
      case gp::FieldDescriptor::CPPTYPE_FLOAT: return r->GetFloat(m, f) == 0;
      case gp::FieldDescriptor::CPPTYPE_BOOL: return !r->GetBool(m, f);
      case gp::FieldDescriptor::CPPTYPE_ENUM: return r->GetEnumValue(m, f) == 0;
      case gp::FieldDescriptor::CPPTYPE_STRING: return r->GetString(m, f).empty();
      case gp::FieldDescriptor::CPPTYPE_MESSAGE: return false;
    }
    return false;
  }

  // A scalar field's value (index >= 0: element of a repeated field).
  static Json Scalar(const gp::Message& m, const gp::FieldDescriptor* f, int index) {
    const gp::Reflection* r = m.GetReflection();
    const bool rep = index >= 0;
    switch (f->cpp_type()) {
      case gp::FieldDescriptor::CPPTYPE_INT32: return rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f);
      case gp::FieldDescriptor::CPPTYPE_INT64: return rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f);
      case gp::FieldDescriptor::CPPTYPE_UINT32: return rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f);
      case gp::FieldDescriptor::CPPTYPE_UINT64: return rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f);
      case gp::FieldDescriptor::CPPTYPE_DOUBLE: return rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f);
      case gp::FieldDescriptor::CPPTYPE_FLOAT: return rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f);
      case gp::FieldDescriptor::CPPTYPE_BOOL: return rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f);
      case gp::FieldDescriptor::CPPTYPE_ENUM:
        return rep ? r->GetRepeatedEnumValue(m, f, index) : r->GetEnumValue(m, f);
      case gp::FieldDescriptor::CPPTYPE_STRING: {
        const std::string s = rep ? r->GetRepeatedString(m, f, index) : r->GetString(m, f);
        return f->type() == gp::FieldDescriptor::TYPE_BYTES ? Base64(s) : Utf8(s);
      }
      case gp::FieldDescriptor::CPPTYPE_MESSAGE: break;
    }
    return nullptr;
  }

  // A singular field of `m` (a map entry's value) as JSON.
  Json Singular(const gp::Message& m, const gp::FieldDescriptor* f, const std::string& path) {
    if (f->cpp_type() == gp::FieldDescriptor::CPPTYPE_MESSAGE) return Value(m.GetReflection()->GetMessage(m, f), path);
    return Scalar(m, f, -1);
  }

  // A message value: the types with their own JSON form, else an object of its fields.
  Json Value(const gp::Message& m, const std::string& path) {
    const std::string& type = m.GetDescriptor()->full_name();
    const gp::Reflection* r = m.GetReflection();
    const gp::Descriptor* d = m.GetDescriptor();
    auto field = [&](const char* name) { return d->FindFieldByName(name); };
    if (type == "k8s.io.apimachinery.pkg.apis.meta.v1.Time" ||
        type == "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime") {
      Unknown(*r, m, path);
      const gp::FieldDescriptor* s = field("seconds");
      const gp::FieldDescriptor* n = field("nanos");
      if (!r->HasField(m, s) && !r->HasField(m, n)) return nullptr;  // Go's zero Time
      return FormatTime(r->GetInt64(m, s), r->GetInt32(m, n), type.ends_with(".MicroTime") ? 6 : 0);
    }
    if (type == "k8s.io.apimachinery.pkg.api.resource.Quantity") {
      Unknown(*r, m, path);
      const std::string s = r->GetString(m, field("string"));
      return s.empty() ? std::string("0") : Utf8(s);
    }
    if (type == "k8s.io.apimachinery.pkg.util.intstr.IntOrString") {
      Unknown(*r, m, path);
      if (r->GetInt64(m, field("type")) == 1) return Utf8(r->GetString(m, field("strVal")));
      return r->GetInt32(m, field("intVal"));
    }
    if (type == "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1") {
      Unknown(*r, m, path);
      const gp::FieldDescriptor* raw = field("Raw");
      if (!r->HasField(m, raw)) return nullptr;
      const std::string s = r->GetString(m, raw);
      Json j = Json::parse(s, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded()) return Base64(s);
      return j;
    }
    Json out = Json::object();
    Fields(m, path, &out);
    return out;
  }
};

}  // namespace

const std::vector<TypedKind>& TypedKinds() {
  static const std::vector<TypedKind> kKinds = [] {
    std::vector<TypedKind> v;
    for (const KindEntry& e : Entries()) v.push_back(e.kind);
    return v;
  }();
  return kKinds;
}

bool HasTypedSchema(std::string_view api_version, std::string_view kind) { return Find(api_version, kind) != nullptr; }

TypedObject DecodeTypedObject(std::string_view api_version, std::string_view kind, Bytes raw) {
  TypedObject out;
  const KindEntry* e = Find(api_version, kind);
  if (!e) return out;
  std::unique_ptr<gp::Message> m(e->prototype().New());
  if (raw.size() > size_t(INT_MAX) || !m->ParseFromArray(raw.data(), int(raw.size()))) {
    out.status = TypedObject::kMalformed;
    out.error = "not a valid " + std::string(e->kind.message) + " message";
    return out;
  }
  Renderer r;
  out.object = Json::object();
  r.Fields(*m, "$", &out.object);
  out.object["apiVersion"] = std::string(api_version);
  out.object["kind"] = std::string(kind);
  out.unknown_fields = std::move(r.unknown);
  out.status = TypedObject::kOk;
  return out;
}

}  // namespace etcdsafe::k8s
