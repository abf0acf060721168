#include "k8s/inspect.h"

#include <algorithm>
#include <cstdio>
#include <thread>

#include "base/error.h"
#include "k8s/envelope.h"
#include "k8s/export.h"
#include "k8s/json_facts.h"
#include "ops/live_keys.h"

namespace etcdsafe::k8s {
namespace {

void Add(Stats* s, size_t bytes) {
  s->count++;
  s->bytes += int64_t(bytes);
}

nlohmann::json StatsJson(const Stats& s) { return {{"count", s.count}, {"bytes", s.bytes}}; }

nlohmann::json StatsMapJson(const std::map<std::string, Stats>& m) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, s] : m) j[k] = StatsJson(s);
  return j;
}

// Larger first; equal sizes in key order.
bool Before(const LargeObject& a, const LargeObject& b) {
  return a.bytes != b.bytes ? a.bytes > b.bytes : a.key < b.key;
}

std::string Row(const std::string& a, const std::string& b, const std::string& c) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "%-48s %10s %14s\n", a.c_str(), b.c_str(), c.c_str());
  return buf;
}

void ForEachLive(ops::SnapshotKv& kv, const std::string& begin, const std::string& end,
                 const ops::SnapshotKv::KvSink& sink) {
  ops::KvRange r;
  r.key = begin;
  r.range_end = end;
  kv.Range(r, sink);
}


}  // namespace

Inventory TakeInventory(ops::SnapshotKv& kv, size_t top, std::string_view prefix, bool check_values) {
  Inventory inv;
  inv.revision = kv.current_revision();
  inv.compacted = kv.compacted_revision();
  inv.values_checked = check_values;
  // Per put: one byte, the encoding of an object's value (nothing for other keys). The
  // walk and these summaries run on up to 4 workers.
  ops::LiveKeysOptions lo;
  lo.threads = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 4);
  ops::LiveKeys live(kv, lo, [&](const ops::KeyValueView& e, std::string* summary) {
    if (ClassifyKey(AsString(e.key), prefix).kind != KeyKind::kObject) return;
    summary->push_back(char(check_values ? FactsOfValue(e.value, false).encoding : EncodingUnchecked(e.value)));
  });
  live.Scan();
  ops::LiveKey e;
  while (live.Next(&e)) {
    const size_t bytes = size_t(e.value_size);
    Add(&inv.total, bytes);
    const KeyInfo info = ClassifyKey(e.key, prefix);
    switch (info.kind) {
      case KeyKind::kNonObject: Add(&inv.non_object, bytes); continue;
      case KeyKind::kNotKubernetes: Add(&inv.not_kubernetes, bytes); continue;
      case KeyKind::kUnknown:
        Add(&inv.unknown, bytes);
        if (inv.unknown_keys.size() < 100) inv.unknown_keys.emplace_back(e.key);
        continue;
      case KeyKind::kObject: break;
    }
    Add(&inv.objects, bytes);
    Add(&inv.by_resource[info.GroupResource()], bytes);
    if (!info.cluster_scoped) Add(&inv.by_namespace[info.ns], bytes);
    const Encoding enc = e.summary.empty() ? Encoding::kOther : Encoding(uint8_t(e.summary[0]));
    Add(&inv.by_encoding[EncodingName(enc)], bytes);
    if (top == 0) continue;
    if (inv.largest.size() >= top && int64_t(bytes) < inv.largest.front().bytes) continue;  // cannot enter
    LargeObject o{std::string(e.key), info.GroupResource(), info.ns, info.name, int64_t(bytes)};
    if (inv.largest.size() < top) {
      inv.largest.push_back(std::move(o));
      std::push_heap(inv.largest.begin(), inv.largest.end(), Before);
    } else if (Before(o, inv.largest.front())) {
      std::pop_heap(inv.largest.begin(), inv.largest.end(), Before);
      inv.largest.back() = std::move(o);
      std::push_heap(inv.largest.begin(), inv.largest.end(), Before);
    }
  }
  std::sort(inv.largest.begin(), inv.largest.end(), Before);
  return inv;
}

nlohmann::json InventoryToJson(const Inventory& inv) {
  nlohmann::json largest = nlohmann::json::array();
  for (const LargeObject& o : inv.largest) {
    largest.push_back({{"key", o.key}, {"resource", o.resource}, {"namespace", o.ns}, {"name", o.name},
                       {"bytes", o.bytes}});
  }
  return {{"revision", inv.revision},
          {"compactedRevision", inv.compacted},
          {"total", StatsJson(inv.total)},
          {"objects", StatsJson(inv.objects)},
          {"nonObjectKeys", StatsJson(inv.non_object)},
          {"unknownKeys", StatsJson(inv.unknown)},
          {"nonKubernetesKeys", StatsJson(inv.not_kubernetes)},
          {"byResource", StatsMapJson(inv.by_resource)},
          {"byNamespace", StatsMapJson(inv.by_namespace)},
          {"byEncoding", StatsMapJson(inv.by_encoding)},
          {"valuesChecked", inv.values_checked},
          {"largest", largest},
          {"unknownKeyNames", inv.unknown_keys}};
}

std::string InventoryToTable(const Inventory& inv) {
  std::string out;
  out += "revision " + std::to_string(inv.revision) + ", compacted " + std::to_string(inv.compacted) + "\n";
  out += Row("KEYS", "COUNT", "BYTES");
  auto line = [&](const char* what, const Stats& s) { out += Row(what, std::to_string(s.count), std::to_string(s.bytes)); };
  line("objects", inv.objects);
  line("non-object (masterleases, ranges, compact_rev_key)", inv.non_object);
  line("unknown (under the prefix, shape not recognised)", inv.unknown);
  line("not Kubernetes (outside the prefix)", inv.not_kubernetes);
  line("total", inv.total);
  out += "\n" + Row("RESOURCE", "COUNT", "BYTES");
  for (const auto& [k, s] : inv.by_resource) out += Row(k, std::to_string(s.count), std::to_string(s.bytes));
  out += "\n" + Row("NAMESPACE", "COUNT", "BYTES");
  for (const auto& [k, s] : inv.by_namespace) out += Row(k, std::to_string(s.count), std::to_string(s.bytes));
  out += "\n" + Row(inv.values_checked ? "ENCODING" : "ENCODING (JSON values not parsed: --check-values)", "COUNT", "BYTES");
  for (const auto& [k, s] : inv.by_encoding) out += Row(k, std::to_string(s.count), std::to_string(s.bytes));
  out += "\nLARGEST OBJECTS\n";
  for (const LargeObject& o : inv.largest) out += Row(o.key, "", std::to_string(o.bytes));
  for (const std::string& k : inv.unknown_keys) out += "unknown key: " + k + "\n";
  return out;
}

std::string ReadValue(ops::SnapshotKv& kv, const std::string& key) {
  ops::KvRange r;
  r.key = key;
  ops::KvRangeResult res = kv.Range(r);
  if (res.kvs.empty()) throw Error(ErrorCode::kNotFound, "key not found in the snapshot: " + key);
  return res.kvs.front().value;
}

nlohmann::json DescribeKey(ops::SnapshotKv& kv, const std::string& key, std::string_view prefix) {
  ops::KvRange r;
  r.key = key;
  ops::KvRangeResult res = kv.Range(r);
  if (res.kvs.empty()) throw Error(ErrorCode::kNotFound, "key not found in the snapshot: " + key);
  const ops::KeyValue& e = res.kvs.front();
  const KeyInfo info = ClassifyKey(key, prefix);
  nlohmann::json ki = {{"kind", KeyKindName(info.kind)}};
  if (info.kind == KeyKind::kObject || info.kind == KeyKind::kNonObject) {
    if (!info.group.empty()) ki["group"] = info.group;
    ki["resource"] = info.resource;
    if (!info.storage_prefix.empty()) ki["storagePrefix"] = info.storage_prefix;
    if (!info.ns.empty()) ki["namespace"] = info.ns;
    if (!info.name.empty()) ki["name"] = info.name;
    if (info.kind == KeyKind::kObject) {
      ki["clusterScoped"] = info.cluster_scoped;
      ki["knownResource"] = info.known_resource;
    }
  }
  nlohmann::json out = {{"key", key},
                        {"keyInfo", ki},
                        {"createRevision", e.create_revision},
                        {"modRevision", e.mod_revision},
                        {"version", e.version}};
  if (e.lease != 0) out["lease"] = e.lease;
  out.update(DescribeValue(AsBytes(e.value)));
  return out;
}

SecretsAudit AuditSecrets(ops::SnapshotKv& kv, bool configmaps, std::string_view prefix) {
  SecretsAudit a;
  const std::string sp = std::string(prefix) + "secrets/";
  ForEachLive(kv, sp, PrefixRangeEnd(sp), [&](const ops::KeyValue& e) {
    const KeyInfo info = ClassifyKey(e.key, prefix);
    if (info.kind != KeyKind::kObject || info.resource != "secrets" || !info.group.empty()) {
      a.unknown_keys++;
      return;
    }
    a.total++;
    const Envelope env = ParseEnvelope(AsBytes(e.value));
    if (env.encoding == Encoding::kEncrypted) {
      a.encrypted[env.Provider()]++;
    } else {
      a.plain++;
      a.plain_secrets.push_back({info.ns, info.name});
    }
  });
  if (configmaps) {
    a.configmaps_checked = true;
    const std::string cp = std::string(prefix) + "configmaps/";
    ForEachLive(kv, cp, PrefixRangeEnd(cp), [&](const ops::KeyValue& e) {
      const KeyInfo info = ClassifyKey(e.key, prefix);
      if (info.kind != KeyKind::kObject) return;
      a.configmaps_total++;
      const Envelope env = ParseEnvelope(AsBytes(e.value));
      if (env.encoding == Encoding::kEncrypted) {
        a.configmaps_encrypted[env.Provider()]++;
      } else {
        a.configmaps_plain++;
      }
    });
  }
  return a;
}

nlohmann::json SecretsAuditToJson(const SecretsAudit& a) {
  nlohmann::json plain = nlohmann::json::array();
  for (const NamespacedName& n : a.plain_secrets) plain.push_back({{"namespace", n.ns}, {"name", n.name}});
  nlohmann::json j = {{"secrets", {{"total", a.total},
                                   {"plain", a.plain},
                                   {"encrypted", a.encrypted},
                                   {"plainSecrets", plain},
                                   {"unknownKeys", a.unknown_keys}}}};
  if (a.configmaps_checked) {
    j["configmaps"] = {{"total", a.configmaps_total}, {"plain", a.configmaps_plain}, {"encrypted", a.configmaps_encrypted}};
  }
  return j;
}

std::string SecretsAuditToTable(const SecretsAudit& a) {
  std::string out = "secrets: " + std::to_string(a.total) + ", plain " + std::to_string(a.plain);
  for (const auto& [p, n] : a.encrypted) out += ", encrypted " + p + " " + std::to_string(n);
  out += "\n";
  if (a.unknown_keys != 0) out += "keys under secrets/ that are not Secret objects: " + std::to_string(a.unknown_keys) + "\n";
  for (const NamespacedName& n : a.plain_secrets) out += "plain: " + n.ns + "/" + n.name + "\n";
  if (a.configmaps_checked) {
    out += "configmaps: " + std::to_string(a.configmaps_total) + ", plain " + std::to_string(a.configmaps_plain);
    for (const auto& [p, n] : a.configmaps_encrypted) out += ", encrypted " + p + " " + std::to_string(n);
    out += "\n";
  }
  return out;
}

}  // namespace etcdsafe::k8s
