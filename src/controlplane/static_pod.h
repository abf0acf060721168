// Reading a kubeadm static-pod manifest (/etc/kubernetes/manifests/etcd.yaml and
// kube-apiserver.yaml) so that nobody copies etcd's flags by hand before a restore.
//
// Contract:
//  - ParseStaticPod reads a Pod (apiVersion v1, kind Pod) with yaml-cpp: its containers'
//    command + args lists and volumeMounts, and the pod's hostPath volumes. Flags are taken
//    from items of the form --flag=value (a bare --flag is "true"), the last one wins, as
//    with etcd's own flag parsing. Nothing else of the pod is interpreted.
//  - ParseEtcdManifest requires a container named "etcd" (else the one whose command
//    starts with etcd) with --name, --data-dir, --initial-advertise-peer-urls and
//    --advertise-client-urls or --listen-client-urls, and a hostPath volume mounted over the
//    data dir. --initial-cluster absent: "<name>=<initial-advertise-peer-urls>" (etcd's
//    bootstrap of a single member); --initial-cluster-token absent: "" (etcd's default,
//    "etcd-cluster", applies).
//  - Errors are one line naming the file (and the flag): a missing file is kNotFound
//    "<file>: no such file", a file that is not a Pod or not YAML, a missing container or
//    flag is kInvalidArgument "<file>: <what>", e.g. "<file>: the etcd container has no
//    --data-dir flag".
//  - Pure functions; nothing is written. Thread-safe.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace etcdsafe::controlplane {

struct VolumeMount {
  std::string name;
  std::string mount_path;  // inside the container
  std::string host_path;   // the hostPath volume's path ("" if the volume is not hostPath)
};

struct Container {
  std::string name;
  std::vector<std::string> command;  // command followed by args
  std::map<std::string, std::string> flags;  // "--data-dir" -> "/var/lib/etcd"
  std::vector<VolumeMount> mounts;

  std::optional<std::string> Flag(const std::string& flag) const;
  // The host path behind a container path (the longest mountPath that is a prefix of it, on
  // a path-component boundary, mapped to its hostPath); the path itself when no hostPath
  // volume covers it (hostNetwork pods see host paths only through volumes, but kubeadm
  // mounts every path it names).
  std::string HostPath(const std::string& container_path) const;
  // The hostPath mount covering a container path, or nullptr.
  const VolumeMount* MountFor(const std::string& container_path) const;
};

struct StaticPod {
  std::string file;  // the manifest path, for messages
  std::string name, namespace_;
  std::vector<Container> containers;
  const Container* Find(const std::string& container_name) const;
};

StaticPod ParseStaticPodText(const std::string& text, const std::string& file);
StaticPod ParseStaticPod(const std::string& file);

// What a restore needs from the etcd manifest. Paths are as the container sees them;
// *_host are the host paths behind them (volumes), without any --root prefix.
struct EtcdManifest {
  std::string file;
  Container container;
  std::string name;
  std::string data_dir, data_dir_host;
  std::vector<std::string> listen_client_urls, advertise_client_urls;
  std::vector<std::string> listen_peer_urls, initial_advertise_peer_urls;
  std::string initial_cluster;        // given or derived (see above)
  bool initial_cluster_given = false;
  std::string initial_cluster_token;  // "" = etcd's default
  std::string initial_cluster_state;  // "" = new
  // TLS files (container paths; "" when not set) and their host paths.
  std::string cert_file, key_file, trusted_ca_file;
  std::string peer_cert_file, peer_key_file, peer_trusted_ca_file;
  bool client_tls() const;  // any client URL is https
  // A client URL to dial from this node: a loopback listen URL when there is one, else the
  // first advertise URL.
  std::string LocalClientUrl() const;
  // Host path of a container path (Container::HostPath).
  std::string Host(const std::string& container_path) const { return container.HostPath(container_path); }
};

EtcdManifest ParseEtcdManifestText(const std::string& text, const std::string& file);
EtcdManifest ParseEtcdManifest(const std::string& file);

// The API server's /readyz URL from kube-apiserver.yaml: https://<host>:<--secure-port,
// default 6443>/readyz with host 127.0.0.1 (the probe runs on the node). nullopt when the
// file is missing or has no kube-apiserver container.
std::optional<std::string> ApiServerReadyzUrl(const std::string& file);

// "a,b" -> {"a","b"} (empty items dropped).
std::vector<std::string> SplitComma(const std::string& s);
std::string JoinComma(const std::vector<std::string>& v);

}  // namespace etcdsafe::controlplane
