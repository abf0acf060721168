#include "k8s/key.h"

#include <map>
#include <optional>
#include <vector>

namespace etcdsafe::k8s {
namespace {

enum class Scope { kNamespaced, kCluster };

// Built-in resources without a group in the key: storage prefix -> (resource, scope).
const std::map<std::string, std::pair<std::string, Scope>, std::less<>>& BuiltIns() {
  static const auto* m = [] {
    auto* t = new std::map<std::string, std::pair<std::string, Scope>, std::less<>>;
    for (const char* r : {"pods", "configmaps", "secrets", "serviceaccounts", "events", "leases", "deployments",
                          "replicasets", "statefulsets", "daemonsets", "jobs", "cronjobs", "persistentvolumeclaims",
                          "limitranges", "resourcequotas", "podtemplates", "roles", "rolebindings",
                          "horizontalpodautoscalers", "poddisruptionbudgets", "networkpolicies", "endpointslices",
                          "controllerrevisions", "csistoragecapacities", "resourceclaims", "resourceclaimtemplates",
                          "podschedulingcontexts"}) {
      (*t)[r] = {r, Scope::kNamespaced};
    }
    (*t)["controllers"] = {"replicationcontrollers", Scope::kNamespaced};
    (*t)["services/specs"] = {"services", Scope::kNamespaced};
    (*t)["services/endpoints"] = {"endpoints", Scope::kNamespaced};
    (*t)["ingress"] = {"ingresses", Scope::kNamespaced};
    for (const char* r : {"namespaces", "persistentvolumes", "clusterroles", "clusterrolebindings", "priorityclasses",
                          "storageclasses", "csidrivers", "csinodes", "volumeattachments",
                          "mutatingwebhookconfigurations", "validatingwebhookconfigurations",
                          "validatingadmissionpolicies", "validatingadmissionpolicybindings",
                          "certificatesigningrequests", "runtimeclasses", "flowschemas", "prioritylevelconfigurations",
                          "ingressclasses", "storageversions", "ipaddresses", "servicecidrs", "clustertrustbundles",
                          "resourceclasses", "deviceclasses", "resourceslices"}) {
      (*t)[r] = {r, Scope::kCluster};
    }
    (*t)["minions"] = {"nodes", Scope::kCluster};
    (*t)["podsecuritypolicy"] = {"podsecuritypolicies", Scope::kCluster};
    return t;
  }();
  return *m;
}

std::vector<std::string_view> Split(std::string_view s) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    const size_t slash = s.find('/', start);
    parts.push_back(s.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return parts;
}

KeyInfo Unknown(KeyInfo info) {
  info.kind = KeyKind::kUnknown;
  info.group.clear();
  info.resource.clear();
  info.storage_prefix.clear();
  info.ns.clear();
  info.name.clear();
  info.cluster_scoped = false;
  info.known_resource = false;
  return info;
}

// rest: the segments after the storage prefix (1: cluster-scoped name; 2: namespace, name).
KeyInfo Object(KeyInfo info, const std::vector<std::string_view>& rest, std::optional<Scope> scope) {
  for (std::string_view s : rest) {
    if (s.empty()) return Unknown(std::move(info));
  }
  if (rest.size() == 1 && (!scope || *scope == Scope::kCluster)) {
    info.cluster_scoped = true;
    info.name = rest[0];
  } else if (rest.size() == 2 && (!scope || *scope == Scope::kNamespaced)) {
    info.ns = rest[0];
    info.name = rest[1];
  } else {
    return Unknown(std::move(info));
  }
  info.kind = KeyKind::kObject;
  return info;
}

}  // namespace

const char* KeyKindName(KeyKind k) {
  switch (k) {
    case KeyKind::kObject: return "object";
    case KeyKind::kNonObject: return "non-object";
    case KeyKind::kUnknown: return "unknown";
    case KeyKind::kNotKubernetes: return "not-kubernetes";
  }
  return "unknown";
}

KeyInfo ClassifyKey(std::string_view key, std::string_view prefix) {
  KeyInfo info;
  info.key = std::string(key);
  if (key == "compact_rev_key") {
    info.kind = KeyKind::kNonObject;
    info.resource = "compact_rev_key";
    return info;
  }
  if (key.size() <= prefix.size() || key.substr(0, prefix.size()) != prefix) {
    info.kind = KeyKind::kNotKubernetes;
    return info;
  }
  const std::vector<std::string_view> seg = Split(key.substr(prefix.size()));
  const std::string_view first = seg[0];
  if (first.empty()) return Unknown(std::move(info));
  if (first == "masterleases") {
    if (seg.size() != 2 || seg[1].empty()) return Unknown(std::move(info));
    info.kind = KeyKind::kNonObject;
    info.resource = "masterleases";
    info.storage_prefix = "masterleases";
    info.name = seg[1];
    return info;
  }
  if (first == "ranges") {
    if (seg.size() != 2 || (seg[1] != "serviceips" && seg[1] != "servicenodeports")) return Unknown(std::move(info));
    info.kind = KeyKind::kNonObject;
    info.resource = "ranges/" + std::string(seg[1]);
    info.storage_prefix = info.resource;
    return info;
  }
  if (first.find('.') != std::string_view::npos) {
    // <group>/<resource>/...: CRDs, APIServices, custom resources.
    if (seg.size() < 3 || seg[1].empty()) return Unknown(std::move(info));
    info.group = first;
    info.resource = seg[1];
    info.storage_prefix = std::string(first) + "/" + std::string(seg[1]);
    info.known_resource = true;
    std::optional<Scope> scope;
    if ((first == "apiextensions.k8s.io" && seg[1] == "customresourcedefinitions") ||
        (first == "apiregistration.k8s.io" && seg[1] == "apiservices")) {
      scope = Scope::kCluster;
    }
    return Object(std::move(info), {seg.begin() + 2, seg.end()}, scope);
  }
  const auto& builtins = BuiltIns();
  if (first == "services") {
    // Only services/specs and services/endpoints exist.
    if (seg.size() < 2) return Unknown(std::move(info));
    const std::string sp = "services/" + std::string(seg[1]);
    auto it = builtins.find(sp);
    if (it == builtins.end()) return Unknown(std::move(info));
    info.storage_prefix = sp;
    info.resource = it->second.first;
    info.known_resource = true;
    return Object(std::move(info), {seg.begin() + 2, seg.end()}, it->second.second);
  }
  if (seg.size() < 2) return Unknown(std::move(info));
  info.storage_prefix = first;
  auto it = builtins.find(first);
  if (it != builtins.end()) {
    info.resource = it->second.first;
    info.known_resource = true;
    return Object(std::move(info), {seg.begin() + 1, seg.end()}, it->second.second);
  }
  info.resource = first;
  return Object(std::move(info), {seg.begin() + 1, seg.end()}, std::nullopt);
}

}  // namespace etcdsafe::k8s
