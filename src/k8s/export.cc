#include "k8s/export.h"

#include "k8s/envelope.h"

namespace etcdsafe::k8s {

std::string PrefixRangeEnd(std::string p) {
  while (!p.empty()) {
    if (uint8_t(p.back()) < 0xff) {
      p.back() = char(uint8_t(p.back()) + 1);
      return p;
    }
    p.pop_back();
  }
  return std::string(1, '\0');
}

std::string ObjectSelection::NamespaceKey() const {
  if (ns.empty()) return "";
  if (!resource.empty() && resource != "namespaces") return "";
  return etcd_prefix + "namespaces/" + ns;
}

bool ObjectSelection::Matches(const std::string& k, const KeyInfo& info) const {
  if (!key.empty() && k != key) return false;
  if (!key_prefix.empty() && k.compare(0, key_prefix.size(), key_prefix) != 0) return false;
  if (!resource.empty()) {
    if (info.kind != KeyKind::kObject) return false;
    if (info.GroupResource() != resource && info.resource != resource) return false;
  }
  if (!ns.empty()) {
    const bool in_ns = info.kind == KeyKind::kObject && !info.cluster_scoped && info.ns == ns;
    if (!in_ns && k != NamespaceKey()) return false;
  }
  if (key.empty() && key_prefix.empty() && ns.empty() && info.kind != KeyKind::kObject) return false;
  return true;
}

std::string ObjectSelection::RangeBegin() const {
  if (!key.empty()) return key;
  if (!key_prefix.empty()) return key_prefix;
  return etcd_prefix.empty() ? std::string(1, '\0') : etcd_prefix;
}

std::string ObjectSelection::RangeEnd() const {
  if (!key.empty()) return "";
  if (!key_prefix.empty()) return PrefixRangeEnd(key_prefix);
  return PrefixRangeEnd(etcd_prefix);
}

nlohmann::json ExportKv(const ops::KeyValue& e, std::string_view etcd_prefix) {
  const KeyInfo info = ClassifyKey(e.key, etcd_prefix);
  nlohmann::json j = {{"key", e.key}, {"keyKind", KeyKindName(info.kind)}};
  if (info.kind == KeyKind::kObject || info.kind == KeyKind::kNonObject) j["resource"] = info.GroupResource();
  if (!info.ns.empty()) j["namespace"] = info.ns;
  if (!info.name.empty()) j["name"] = info.name;
  j["createRevision"] = e.create_revision;
  j["modRevision"] = e.mod_revision;
  j["version"] = e.version;
  if (e.lease != 0) j["lease"] = e.lease;
  j.update(DescribeValue(AsBytes(e.value)));
  return j;
}

int64_t ExportObjects(ops::SnapshotKv& kv, const ObjectSelection& sel,
                      const std::function<void(const nlohmann::json&)>& sink) {
  ops::KvRange r;
  r.key = sel.RangeBegin();
  r.range_end = sel.RangeEnd();
  int64_t n = 0;
  kv.Range(r, [&](const ops::KeyValue& e) {
    if (!sel.Matches(e.key, ClassifyKey(e.key, sel.etcd_prefix))) return;
    n++;
    sink(ExportKv(e, sel.etcd_prefix));
  });
  return n;
}

}  // namespace etcdsafe::k8s
