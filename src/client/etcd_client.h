// EtcdClient: a small native etcd v3 gRPC client, just enough for backup and restore
// (Maintenance.Snapshot/Status/Alarm/HashKV, KV.Range/Put/DeleteRange,
// Cluster.MemberList/MemberAdd/MemberRemove/MemberUpdate/MemberPromote, Auth.Authenticate).
//
// Contract:
//  * Connect() tries the endpoints in order; the first that connects (and, when a user
//    is configured, authenticates) is used for every later call. When all fail the
//    error is kUnavailable "<ep1>: <reason>; <ep2>: <reason>" with a specific reason
//    ("connection refused", "dial timeout", "TLS handshake failed: ..."); when every
//    endpoint failed the same way with a more specific code (e.g. kUnauthenticated for
//    a rejected client certificate) that code is used.
//  * Bad configuration (unreadable/unparsable cert or key, malformed endpoint) is
//    kInvalidArgument naming the file or endpoint, before anything is dialled.
//  * RPC failures map gRPC codes to etcdsafe codes: UNAVAILABLE/DEADLINE_EXCEEDED ->
//    kUnavailable, UNAUTHENTICATED -> kUnauthenticated, PERMISSION_DENIED ->
//    kPermissionDenied, INVALID_ARGUMENT -> kInvalidArgument. etcd's message text
//    ("etcdserver: permission denied") is kept. Wrong password is kUnauthenticated.
//  * command_timeout (> 0) is a deadline per RPC; for Snapshot it bounds the whole stream.
//  * Never prints (--debug lines go to config.debug); gRPC's own logging is silenced while an EtcdClient exists.
//
// Thread-compatible: one EtcdClient per thread, or external locking.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace etcdsafe::client {

struct ClientConfig {
  // "https://127.0.0.1:2379", "http://host:port", or "host:port" (TLS when any of
  // cacert/cert/key is set or insecure_skip_tls_verify, like etcdctl).
  std::vector<std::string> endpoints;
  std::string cacert, cert, key;  // PEM file paths; empty = not used
  bool insecure_skip_tls_verify = false;
  std::string user, password;  // etcd auth; empty user = none
  std::chrono::milliseconds dial_timeout{2000};
  std::chrono::milliseconds command_timeout{0};  // 0 = no deadline
  // --debug: when set, gets one line per event: each endpoint dialled (TLS on/off, CA,
  // client cert), the endpoint chosen or why it failed, and each RPC with its outcome and
  // duration. Never gets secrets (no passwords, no tokens).
  std::function<void(const std::string&)> debug;
};

// Looks up an environment variable; returns false when unset.
using EnvLookup = std::function<bool(const std::string& name, std::string* value)>;

// Fills fields that are still at their defaults from ETCDCTL_* variables, the way
// etcdctl does: ETCDCTL_ENDPOINTS (comma separated), ETCDCTL_CACERT, ETCDCTL_CERT,
// ETCDCTL_KEY, ETCDCTL_INSECURE_SKIP_TLS_VERIFY, ETCDCTL_USER ("name[:password]"),
// ETCDCTL_PASSWORD, ETCDCTL_DIAL_TIMEOUT / ETCDCTL_COMMAND_TIMEOUT (Go durations such
// as "2s", "500ms"). A malformed value is kInvalidArgument naming the variable.
ClientConfig ApplyEnvironment(ClientConfig config, const EnvLookup& lookup);
// The process environment (getenv).
EnvLookup ProcessEnvironment();

struct SnapshotOptions {
  // The stream's HTTP/2 receive window: how much gRPC may buffer ahead of the consumer.
  // 0: gRPC's bandwidth-probed window, the fastest for a consumer that keeps up (a file
  // written by another thread), but it grows to tens of MB when the consumer lags. > 0:
  // fixed at that many bytes, a bound on memory for a consumer that may lag (a backup
  // pipeline, an upload). A window other than kBoundedSnapshotWindow (the unary RPCs')
  // opens a connection of its own for the stream.
  uint32_t receive_window = 0;
};
inline constexpr uint32_t kBoundedSnapshotWindow = 16 << 20;

class EtcdClient {
 public:
  static std::unique_ptr<EtcdClient> Connect(const ClientConfig& config);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  // The endpoint that won, as given in the config.
  const std::string& endpoint() const;

  // Streams Maintenance.Snapshot; on_blob gets every blob in order: the db bytes, then
  // the 32-byte sha256 trailer, exactly as received. If on_blob throws, the stream is
  // cancelled and the exception propagates. Needs the root role when auth is on.
  void Snapshot(const std::function<void(const uint8_t*, size_t)>& on_blob, const SnapshotOptions& options = {});

  // etcd's ResponseHeader, as the answering member filled it in.
  struct ResponseHeader {
    uint64_t cluster_id = 0, member_id = 0;
    int64_t revision = 0;
    uint64_t raft_term = 0;
  };

  struct Status {
    ResponseHeader header;
    std::string version;
    int64_t db_size = 0, db_size_in_use = 0;
    uint64_t leader = 0, raft_index = 0, raft_term = 0, raft_applied_index = 0;
    uint64_t cluster_id = 0, member_id = 0;
    int64_t revision = 0;
    bool is_learner = false;
    std::vector<std::string> errors;
  };
  Status EndpointStatus();

  // Maintenance.HashKV: the hash of the answering member's MVCC key space up to
  // `revision` (0 = its current revision), as `etcdctl endpoint hashkv` shows it.
  struct HashKVResult {
    ResponseHeader header;
    uint32_t hash = 0;
    int64_t compact_revision = 0;
  };
  HashKVResult HashKV(int64_t revision);

  struct MemberInfo {
    uint64_t id = 0;
    std::string name;
    std::vector<std::string> peer_urls, client_urls;
    bool is_learner = false;
  };
  std::vector<MemberInfo> MemberList(ResponseHeader* header = nullptr);
  // Adds a member with the given peer URLs; returns the new member and the new list.
  MemberInfo MemberAdd(const std::vector<std::string>& peer_urls, bool is_learner,
                       std::vector<MemberInfo>* members = nullptr,
                       ResponseHeader* header = nullptr);
  // Remove / update peer URLs / promote a learner. `members` receives the list after the
  // change, `header` the response header. An unknown id is kNotFound with etcd's text
  // ("etcdserver: member not found").
  void MemberRemove(uint64_t id, std::vector<MemberInfo>* members = nullptr,
                    ResponseHeader* header = nullptr);
  void MemberUpdate(uint64_t id, const std::vector<std::string>& peer_urls,
                    std::vector<MemberInfo>* members = nullptr,
                    ResponseHeader* header = nullptr);
  void MemberPromote(uint64_t id, std::vector<MemberInfo>* members = nullptr,
                     ResponseHeader* header = nullptr);

  // Like `etcdctl endpoint health`: a linearizable Get of "health" must succeed (or fail
  // only with permission denied) and no NOSPACE alarm may be active. Returns how long the
  // Get took; throws kUnavailable "unhealthy: <reason>" otherwise.
  std::chrono::microseconds Health();

  void Put(const std::string& key, const std::string& value, int64_t lease = 0);

  struct KV {
    std::string key, value;
    int64_t create_revision = 0, mod_revision = 0, version = 0, lease = 0;
  };
  struct RangeResult {
    ResponseHeader header;
    std::vector<KV> kvs;
    int64_t revision = 0;
    int64_t count = 0;
    bool more = false;
  };
  // range_end "" = the single key; "\0" = all keys >= key (etcd convention).
  RangeResult Range(const std::string& key, const std::string& range_end = "",
                    int64_t limit = 0, int64_t revision = 0, bool keys_only = false);
  // Returns how many keys were deleted.
  int64_t DeleteRange(const std::string& key, const std::string& range_end = "");

  struct Impl;

 private:
  explicit EtcdClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace etcdsafe::client
