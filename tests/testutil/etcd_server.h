// A real etcd (/usr/bin/etcd, Debian 3.4.23) for integration tests.
//
// Each EtcdServer owns a temp dir (log file, certs, fresh data dir) and one etcd process
// listening only on 127.0.0.1, on free ports found by binding port 0 (never 2379/2380).
// The constructor starts etcd and, unless wait_healthy=false, blocks until our client's
// Health() passes (timeout 20 s; the error carries the log tail). The destructor stops
// it (SIGTERM, then SIGKILL after 10 s). A missing etcd binary is an error, never a skip.
// Throws std::runtime_error. Thread-compatible; the process is killed if the test dies.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "client/etcd_client.h"
#include "testutil/temp_dir.h"
#include "testutil/tls_certs.h"

namespace etcdsafe::testutil {

// Set fields by assignment (`EtcdServerOptions o; o.tls = true;`): designated
// initializers trip -Wmissing-field-initializers under our -Werror.
struct EtcdServerOptions {
  std::string name = "default";
  bool tls = false;                // https client URL + --client-cert-auth
  std::optional<TlsFiles> certs;   // tls: share a PKI (clusters); default: fresh certs
  std::string data_dir;            // empty: fresh dir in the temp dir; else used as is
  int client_port = 0;             // 0: pick a free port
  int peer_port = 0;               // 0: pick; set it to the peer URL fixed at restore time
  std::string initial_cluster;     // empty: "<name>=<peer_url>"
  std::string initial_cluster_state = "new";
  std::string initial_cluster_token;  // empty: etcd's default
  std::vector<std::string> extra_flags;
  bool wait_healthy = true;
  std::chrono::seconds start_timeout{20};
};

struct EtcdctlResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs /usr/bin/etcdctl with ETCDCTL_API=3 and --endpoints/--cacert/--cert/--key/--user
// from `config` (ETCDCTL_* from our environment are removed), then `args`.
EtcdctlResult RunEtcdctl(const client::ClientConfig& config, const std::vector<std::string>& args);

// Picks a free loopback TCP port (bind 127.0.0.1:0). Never 2379/2380.
int FreePort();

class EtcdServer {
 public:
  explicit EtcdServer(EtcdServerOptions options = {});
  ~EtcdServer();
  EtcdServer(const EtcdServer&) = delete;
  EtcdServer& operator=(const EtcdServer&) = delete;

  // Starts n fresh members on free ports as one new cluster (shared PKI when tls) and
  // waits until all are healthy.
  static std::vector<std::unique_ptr<EtcdServer>> StartNewCluster(int n, bool tls = false);
  // Starts all members concurrently (they need each other for quorum), then waits for
  // each. Use for members restored from snapshots with fixed peer ports.
  static std::vector<std::unique_ptr<EtcdServer>> StartCluster(
      std::vector<EtcdServerOptions> members);

  // Polls until Health() passes; throws with the log tail on timeout or early exit.
  void WaitHealthy();
  // SIGTERM, wait up to 10 s, then SIGKILL. Idempotent.
  void Stop();
  // SIGKILL now (crash simulation). Idempotent.
  void Kill();
  bool running() const { return pid_ > 0; }

  const std::string& name() const { return options_.name; }
  std::string client_url() const;  // "http(s)://127.0.0.1:<port>"
  std::string peer_url() const;    // "http://127.0.0.1:<port>"
  int client_port() const { return options_.client_port; }
  int peer_port() const { return options_.peer_port; }
  const std::string& data_dir() const { return options_.data_dir; }
  bool tls() const { return options_.tls; }
  const TlsFiles& certs() const { return *options_.certs; }  // tls only
  const std::string& log_path() const { return log_path_; }
  // The last `lines` lines of etcd's log.
  std::string LogTail(int lines = 30) const;
  // Endpoint = client_url(); with tls, CA + the CN=root client cert.
  client::ClientConfig client_config() const;
  EtcdctlResult etcdctl(const std::vector<std::string>& args) const;
  // A scratch directory that lives as long as the server.
  const TempDir& temp_dir() const { return *temp_; }

 private:
  void Spawn();
  bool Reap(bool block);  // true when the process is gone
  [[noreturn]] void Fail(const std::string& why);

  EtcdServerOptions options_;
  bool auto_ports_ = false;
  std::unique_ptr<TempDir> temp_;
  std::string log_path_;
  pid_t pid_ = -1;
  int exit_status_ = 0;
};

}  // namespace etcdsafe::testutil
