#include "controlplane/static_pod.h"

#include <yaml-cpp/yaml.h>

#include "base/error.h"
#include "base/file.h"

namespace etcdsafe::controlplane {
namespace {

[[noreturn]] void Bad(const std::string& file, const std::string& what) {
  throw Error(ErrorCode::kInvalidArgument, file + ": " + what);
}

std::string Scalar(const YAML::Node& n) {
  if (!n || !n.IsScalar()) return "";
  return n.as<std::string>();
}

void AddItems(const YAML::Node& list, const std::string& file, const std::string& what,
              std::vector<std::string>* out) {
  if (!list) return;
  if (!list.IsSequence()) Bad(file, what + " is not a list");
  for (const auto& item : list) {
    if (!item.IsScalar()) Bad(file, what + " holds a non-string item");
    out->push_back(item.as<std::string>());
  }
}

bool IsLoopbackHost(const std::string& url) {
  auto p = url.find("://");
  std::string rest = p == std::string::npos ? url : url.substr(p + 3);
  return rest.rfind("127.", 0) == 0 || rest.rfind("localhost", 0) == 0 || rest.rfind("[::1]", 0) == 0;
}

}  // namespace

std::vector<std::string> SplitComma(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string::npos) comma = s.size();
    if (comma > start) out.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

std::string JoinComma(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); i++) out += (i ? "," : "") + v[i];
  return out;
}

std::optional<std::string> Container::Flag(const std::string& flag) const {
  auto it = flags.find(flag);
  if (it == flags.end()) return std::nullopt;
  return it->second;
}

const VolumeMount* Container::MountFor(const std::string& container_path) const {
  const VolumeMount* best = nullptr;
  size_t best_len = 0;
  for (const auto& m : mounts) {
    if (m.host_path.empty() || m.mount_path.empty()) continue;
    std::string mp = m.mount_path;
    while (mp.size() > 1 && mp.back() == '/') mp.pop_back();
    bool covers = container_path == mp ||
                  (container_path.rfind(mp, 0) == 0 && (mp == "/" || container_path[mp.size()] == '/'));
    if (covers && (!best || mp.size() > best_len)) {
      best = &m;
      best_len = mp.size();
    }
  }
  return best;
}

std::string Container::HostPath(const std::string& container_path) const {
  const VolumeMount* best = MountFor(container_path);
  if (!best) return container_path;
  std::string mp = best->mount_path;
  while (mp.size() > 1 && mp.back() == '/') mp.pop_back();
  std::string host = best->host_path;
  while (host.size() > 1 && host.back() == '/') host.pop_back();
  return host + container_path.substr(mp == "/" ? 0 : mp.size());
}

const Container* StaticPod::Find(const std::string& container_name) const {
  for (const auto& c : containers) {
    if (c.name == container_name) return &c;
  }
  return nullptr;
}

StaticPod ParseStaticPodText(const std::string& text, const std::string& file) {
  YAML::Node doc;
  try {
    doc = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    Bad(file, "not valid YAML: line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (!doc || !doc.IsMap()) Bad(file, "not a Kubernetes object (expected a YAML mapping)");
  StaticPod pod;
  pod.file = file;
  try {
    if (Scalar(doc["kind"]) != "Pod") Bad(file, "kind is \"" + Scalar(doc["kind"]) + "\", expected Pod");
    pod.name = Scalar(doc["metadata"]["name"]);
    pod.namespace_ = Scalar(doc["metadata"]["namespace"]);
    const YAML::Node spec = doc["spec"];
    if (!spec || !spec.IsMap()) Bad(file, "the Pod has no spec");
    std::map<std::string, std::string> host_paths;  // volume name -> hostPath
    if (const YAML::Node vols = spec["volumes"]; vols && vols.IsSequence()) {
      for (const auto& v : vols) {
        if (v["hostPath"]) host_paths[Scalar(v["name"])] = Scalar(v["hostPath"]["path"]);
      }
    }
    const YAML::Node cs = spec["containers"];
    if (!cs || !cs.IsSequence()) Bad(file, "the Pod has no spec.containers list");
    for (const auto& c : cs) {
      Container out;
      out.name = Scalar(c["name"]);
      AddItems(c["command"], file, "container " + out.name + ": command", &out.command);
      AddItems(c["args"], file, "container " + out.name + ": args", &out.command);
      for (size_t i = 1; i < out.command.size(); i++) {
        const std::string& item = out.command[i];
        if (item.rfind("--", 0) != 0 && (item.rfind("-", 0) != 0 || item.size() < 2)) continue;
        std::string flag = item.rfind("--", 0) == 0 ? item : "-" + item;  // -name=x == --name=x (Go flags)
        auto eq = flag.find('=');
        if (eq == std::string::npos) {
          out.flags[flag] = "true";
        } else {
          out.flags[flag.substr(0, eq)] = flag.substr(eq + 1);
        }
      }
      if (const YAML::Node ms = c["volumeMounts"]; ms && ms.IsSequence()) {
        for (const auto& m : ms) {
          VolumeMount vm;
          vm.name = Scalar(m["name"]);
          vm.mount_path = Scalar(m["mountPath"]);
          auto it = host_paths.find(vm.name);
          if (it != host_paths.end()) vm.host_path = it->second;
          out.mounts.push_back(vm);
        }
      }
      pod.containers.push_back(std::move(out));
    }
  } catch (const YAML::Exception& e) {
    Bad(file, "unexpected structure: line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  return pod;
}

StaticPod ParseStaticPod(const std::string& file) {
  if (!PathExists(file)) throw Error(ErrorCode::kNotFound, file + ": no such file");
  return ParseStaticPodText(ReadSmallFile(file, 1 << 20), file);
}

bool EtcdManifest::client_tls() const {
  for (const auto* list : {&listen_client_urls, &advertise_client_urls}) {
    for (const auto& u : *list) {
      if (u.rfind("https://", 0) == 0) return true;
    }
  }
  return false;
}

std::string EtcdManifest::LocalClientUrl() const {
  for (const auto& u : listen_client_urls) {
    if (IsLoopbackHost(u)) return u;
  }
  if (!advertise_client_urls.empty()) return advertise_client_urls.front();
  return listen_client_urls.front();
}

EtcdManifest ParseEtcdManifestText(const std::string& text, const std::string& file) {
  StaticPod pod = ParseStaticPodText(text, file);
  const Container* c = pod.Find("etcd");
  if (!c) {
    for (const auto& k : pod.containers) {
      if (!k.command.empty() && (k.command[0] == "etcd" || k.command[0].ends_with("/etcd"))) c = &k;
    }
  }
  if (!c) Bad(file, "no container named etcd (is this the etcd static-pod manifest?)");
  if (c->command.empty()) Bad(file, "the etcd container has no command list");
  EtcdManifest m;
  m.file = file;
  m.container = *c;
  auto need = [&](const std::string& flag) {
    auto v = c->Flag(flag);
    if (!v || v->empty()) Bad(file, "the etcd container has no " + flag + " flag");
    return *v;
  };
  m.name = need("--name");
  m.data_dir = need("--data-dir");
  m.initial_advertise_peer_urls = SplitComma(need("--initial-advertise-peer-urls"));
  m.listen_client_urls = SplitComma(c->Flag("--listen-client-urls").value_or(""));
  m.advertise_client_urls = SplitComma(c->Flag("--advertise-client-urls").value_or(""));
  if (m.listen_client_urls.empty() && m.advertise_client_urls.empty()) {
    Bad(file, "the etcd container has no --advertise-client-urls or --listen-client-urls flag");
  }
  m.listen_peer_urls = SplitComma(c->Flag("--listen-peer-urls").value_or(""));
  if (auto ic = c->Flag("--initial-cluster"); ic && !ic->empty()) {
    m.initial_cluster = *ic;
    m.initial_cluster_given = true;
  } else {
    for (const auto& u : m.initial_advertise_peer_urls) {
      m.initial_cluster += (m.initial_cluster.empty() ? "" : ",") + m.name + "=" + u;
    }
  }
  m.initial_cluster_token = c->Flag("--initial-cluster-token").value_or("");
  m.initial_cluster_state = c->Flag("--initial-cluster-state").value_or("");
  m.cert_file = c->Flag("--cert-file").value_or("");
  m.key_file = c->Flag("--key-file").value_or("");
  m.trusted_ca_file = c->Flag("--trusted-ca-file").value_or("");
  m.peer_cert_file = c->Flag("--peer-cert-file").value_or("");
  m.peer_key_file = c->Flag("--peer-key-file").value_or("");
  m.peer_trusted_ca_file = c->Flag("--peer-trusted-ca-file").value_or("");
  if (m.data_dir.front() != '/') Bad(file, "--data-dir " + m.data_dir + " is not an absolute path");
  m.data_dir_host = c->HostPath(m.data_dir);
  if (!c->MountFor(m.data_dir)) {
    Bad(file, "--data-dir " + m.data_dir + " is not on a hostPath volume of the etcd container");
  }
  if (m.client_tls() && (m.cert_file.empty() || m.key_file.empty())) {
    Bad(file, "https client URLs but no --cert-file/--key-file flag");
  }
  return m;
}

EtcdManifest ParseEtcdManifest(const std::string& file) {
  if (!PathExists(file)) throw Error(ErrorCode::kNotFound, file + ": no such file (no etcd static-pod manifest)");
  return ParseEtcdManifestText(ReadSmallFile(file, 1 << 20), file);
}

std::optional<std::string> ApiServerReadyzUrl(const std::string& file) {
  if (!PathExists(file)) return std::nullopt;
  StaticPod pod = ParseStaticPod(file);
  const Container* c = pod.Find("kube-apiserver");
  if (!c) return std::nullopt;
  std::string port = c->Flag("--secure-port").value_or("6443");
  return "https://127.0.0.1:" + port + "/readyz";
}

}  // namespace etcdsafe::controlplane
