// A throwaway etcd for restore drills: a scratch directory and at most one real etcd
// process running on it, listening on 127.0.0.1 only, that never outlives its owner.
//
// Contract:
//  - EtcdSandbox creates "<parent>/etcdsafe-drill-XXXXXX" (mode 0700; parent: $TMPDIR,
//    else /tmp), flock'ed while it lives, and removes it on destruction, after stopping
//    etcd. It first removes the dirs of that name whose lock is free: those of drills
//    killed with SIGKILL (their etcd died with them, see below).
//  - StartEtcd spawns `binary` with the data dir, client and peer URLs on 127.0.0.1 (ports
//    below the kernel's ephemeral range, see FreeLoopbackPorts), a log file in the
//    sandbox, no ETCD_* / ETCDCTL_* variables from our environment, and waits until a
//    linearizable read succeeds (EtcdClient::Health). A port taken between the pick and
//    etcd's bind is retried with new ports (3 times). Errors (etcd is stopped first, the
//    message is one line with the last line of etcd's log): kUnavailable "etcd exited
//    with status N before becoming healthy: ...", "etcd not healthy after N s: ...".
//  - StopEtcd: SIGTERM, then SIGKILL after the stop timeout, and reaps it. Idempotent.
//  - Nothing is left behind on an interrupt either: the sandbox registers one
//    InterruptCleanup (base/file.h) that stops etcd (SIGTERM, SIGKILL after 5 s) and then
//    removes the directory, in that order, so etcd never writes into a directory being
//    removed. Creating the directory and spawning etcd happen inside a CommitSection, so
//    an interrupt either sees them (and undoes them) or they never happen. etcd is also
//    killed by the kernel if our process dies (PR_SET_PDEATHSIG), e.g. on SIGKILL.
//
// Thread-compatible: one thread uses a sandbox (the interrupt cleanup may run on another).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "base/file.h"

namespace etcdsafe::ops {

// The etcd binary to run: `given` (a path, or a name looked up in PATH) or "etcd" from
// PATH. kNotFound "etcd binary not found in PATH (install etcd or give --etcd-binary)"
// or "--etcd-binary <path>: <why>" when missing, not a regular file or not executable.
std::string FindEtcdBinary(const std::string& given);

// n distinct free TCP ports on 127.0.0.1, picked at random below the ephemeral range (so
// no outgoing connection takes one before etcd binds it), never 2379/2380. Each is
// checked by binding it. kUnavailable "no free loopback port in LO-HI" when none.
std::vector<int> FreeLoopbackPorts(int n);

struct EtcdStartOptions {
  std::string binary;    // from FindEtcdBinary
  std::string data_dir;  // a restored data dir
  std::string name;      // the member name it was restored with
  int client_port = 0;   // 0: pick
  int peer_port = 0;     // 0: pick (etcd restarting from a data dir takes any)
  uint64_t quota_backend_bytes = 0;  // 0: etcd's default
  std::chrono::milliseconds start_timeout{60000};
  std::chrono::milliseconds stop_timeout{10000};
};

class EtcdSandbox {
 public:
  explicit EtcdSandbox(const std::string& parent = "");
  ~EtcdSandbox();
  EtcdSandbox(const EtcdSandbox&) = delete;
  EtcdSandbox& operator=(const EtcdSandbox&) = delete;

  const std::string& dir() const { return dir_; }
  // Scratch dirs of killed drills (their lock free) that the constructor removed.
  const std::vector<std::string>& removed_stale() const { return removed_stale_; }
  std::string log_path() const { return dir_ + "/etcd.log"; }

  void StartEtcd(const EtcdStartOptions& options);
  void StopEtcd();
  bool running() const;
  pid_t pid() const;
  // "http://127.0.0.1:<client port>" of the running etcd.
  std::string client_url() const;

  struct State;

 private:
  void Spawn(const EtcdStartOptions& o);
  std::string LogSummary() const;

  std::shared_ptr<State> state_;
  std::unique_ptr<InterruptCleanup> cleanup_;
  std::string dir_;
  int lock_fd_ = -1;  // flock on dir_ while we live: tells our dir from a killed run's
  std::vector<std::string> removed_stale_;
  int client_port_ = 0;
  std::chrono::milliseconds stop_timeout_{10000};
};

}  // namespace etcdsafe::ops
