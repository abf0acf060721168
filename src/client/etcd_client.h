// EtcdClient: a small native etcd v3 gRPC client, just enough for backup and restore
// (Maintenance.Snapshot/Status/Alarm/HashKV, KV.Range/Put/DeleteRange/Txn/Compact,
// Watch.Watch, Lease.LeaseGrant/LeaseRevoke/LeaseTimeToLive/LeaseLeases,
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
#include <optional>
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
  // The stream runs on a connection of its own. false: gRPC's bandwidth-probed receive
  // window, the fastest; gRPC buffers up to that window (tens of MB, measured up to
  // ~120 MiB) ahead of a consumer that lags, so a lagging consumer must keep draining (see
  // snapshot::PumpStream's spill). true: a small window (probing off; gRPC 1.51 then keeps the
  // connection's window at HTTP/2's 64 KiB default), which bounds what gRPC buffers but
  // costs ~1.5 CPU s per GB on each side and ~30% of the stream's speed on loopback.
  bool small_window = false;
};

class WatchStream;
struct WatchOptions;

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
  // How many keys [key, range_end) holds at `revision` (0: current): a count_only Range,
  // which etcd answers from its index without reading a value.
  int64_t CountRange(const std::string& key, const std::string& range_end, int64_t revision = 0);
  // Returns how many keys were deleted.
  int64_t DeleteRange(const std::string& key, const std::string& range_end = "");

  // KV.Txn without compares: every op runs, in order, in the success branch, as ONE
  // revision (one header.revision; the events of the ops carry that revision and come out
  // of a watch in op order). A delete with range_end deletes [key, range_end) (same
  // conventions as Range). etcd refuses two ops on the same key in one txn
  // (kInvalidArgument "etcdserver: duplicate key given in txn request") and requests
  // larger than its --max-request-bytes (default 1.5 MiB).
  struct TxnOp {
    enum Kind { kPut, kDelete } kind = kPut;
    std::string key, value, range_end;
    int64_t lease = 0;  // kPut only
  };
  ResponseHeader Txn(const std::vector<TxnOp>& ops);

  // KV.Txn with compares: when every compare holds, the ops run as Txn's do (one
  // revision) and succeeded is true; otherwise nothing is written and succeeded is false
  // (the failure branch is empty). A compare is etcd's: the key's version, create
  // revision, mod revision (a key that does not exist has 0 for all three) or value,
  // compared with `result` to the given number / value.
  struct Compare {
    enum Target { kVersion, kCreateRevision, kModRevision, kValue } target = kModRevision;
    enum Result { kEqual, kGreater, kLess, kNotEqual } result = kEqual;
    std::string key;
    int64_t number = 0;  // kVersion, kCreateRevision, kModRevision
    std::string value;   // kValue
  };
  struct TxnResult {
    ResponseHeader header;
    bool succeeded = false;
  };
  TxnResult TxnIf(const std::vector<Compare>& compares, const std::vector<TxnOp>& success);

  // KV.Compact: drops the history before `revision`. physical: wait until the compaction
  // is applied to the backend. An already compacted or future revision is kInvalidArgument
  // with etcd's text ("mvcc: required revision has been compacted").
  ResponseHeader Compact(int64_t revision, bool physical = false);

  // Leases. LeaseGrant returns the lease id (etcd's when `id` is 0); etcd may raise a
  // small TTL to its minimum. LeaseRevoke deletes the keys attached to it (one revision of
  // DELETE events); an unknown id is kNotFound ("etcdserver: requested lease not found").
  // LeaseTimeToLive: ttl = remaining seconds, -1 for an unknown or expired lease (as etcd
  // answers; not an error). LeaseLeases: the ids of every live lease, in etcd's order.
  int64_t LeaseGrant(int64_t ttl_seconds, int64_t id = 0);
  void LeaseRevoke(int64_t id);
  struct LeaseTtl {
    int64_t id = 0, ttl = -1, granted_ttl = 0;
  };
  LeaseTtl LeaseTimeToLive(int64_t id);
  std::vector<int64_t> LeaseLeases(ResponseHeader* header = nullptr);

  // Watch.Watch: opens a bidi stream of its own with one watcher on it and waits for
  // etcd's "created" response (bounded by command_timeout, 10 s when that is 0; the
  // stream itself has no deadline). Throws kUnavailable when the stream cannot be opened
  // or the answer does not come, kPermissionDenied / kInvalidArgument with etcd's
  // cancel_reason when etcd refuses the watcher (created and canceled at once).
  // A start_revision that is already compacted is NOT an error here: etcd creates the
  // watcher, then cancels it; Next() returns that canceled response with
  // compact_revision > 0 (the oldest revision still available), so the caller sees the gap.
  // The stream asks for a leader ("hasleader" metadata, like clientv3.WithRequireLeader): a
  // member that loses its leader ends the stream ("etcdserver: no leader") instead of
  // silently serving no events. The stream holds its own reference to the connection; it
  // may outlive this EtcdClient. Uses the token the client holds at the time of the call.
  std::unique_ptr<WatchStream> Watch(const WatchOptions& options);

  struct Impl;

 private:
  explicit EtcdClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

struct WatchEvent {
  bool is_delete = false;
  // PUT: the key-value as written (key, value, create/mod revision, version, lease).
  // DELETE: what etcd fills in: key and mod_revision (the delete's revision), the rest 0.
  EtcdClient::KV kv;
};

struct WatchResponse {
  EtcdClient::ResponseHeader header;
  int64_t watch_id = 0;  // etcd 3.4 answers a progress request with watch_id -1
  bool created = false, canceled = false;
  int64_t compact_revision = 0;  // > 0: the start revision was compacted (then canceled)
  std::string cancel_reason;
  // In etcd's order: ascending revision, and inside one revision (a txn, a delete range,
  // a lease revoke) in sub-revision order. One revision is never split over two responses
  // (the stream never asks for fragments).
  std::vector<WatchEvent> events;
  // Like clientv3's IsProgressNotify: no events, not created, not canceled, no compact
  // revision, header.revision set.
  bool IsProgressNotify() const;
};

struct WatchOptions {
  // [key, range_end) with Range's conventions; key "" with range_end "\0" (std::string(1,
  // '\0')) is the whole key space.
  std::string key;
  std::string range_end;
  int64_t start_revision = 0;  // first revision delivered (inclusive); 0 = from now
  bool progress_notify = false;  // etcd's periodic progress responses (10 min by default)
  // Received responses Next() has not taken yet are buffered up to this many bytes (at
  // least one response is always taken, whatever its size); beyond it the stream stops
  // reading and gRPC/HTTP2 flow control pushes back on etcd (which then catches the
  // watcher up from its history later). Bounds memory when the consumer lags.
  size_t max_buffered_bytes = 32u << 20;
};

// One watcher on its own gRPC bidi stream (EtcdClient::Watch). A reader thread receives
// responses into a bounded buffer; Next() takes them in order.
// Next() and RequestProgress() may be called from different threads; the destructor must
// not run concurrently with either.
class WatchStream {
 public:
  // Cancels the call (TryCancel) and joins the reader thread; never waits for the server.
  virtual ~WatchStream();

  // Waits up to `timeout` (0 = poll) for the next response; nullopt on timeout. Responses
  // received before the stream broke are returned first; then, when the stream is broken
  // (server gone, connection lost, "etcdserver: no leader", ...), throws kUnavailable with
  // the reason, and keeps throwing it on every later call. A SIGKILLed server is seen at
  // once (the connection closes); a silent network loss only after gRPC's keepalive
  // (30 s + 20 s). After a canceled response no more events come for this watcher.
  virtual std::optional<WatchResponse> Next(std::chrono::milliseconds timeout) = 0;

  // Sends a WatchProgressRequest (etcd >= 3.4). etcd answers with a progress response
  // (IsProgressNotify(), header.revision = its current revision, watch_id -1 on 3.4).
  // CAUTION, etcds without the fix of etcd issue 15220 (Debian's 3.4.23 among them; see
  // watch_test): the answer is sent at once, even while the watcher is still catching up
  // or events of a revision <= header.revision are on their way, so it can arrive BEFORE
  // those events. A progress revision R proves "nothing up to R is missing" only when R is
  // not above the last revision whose events were already received (for a whole-key-space
  // watch every revision has events; later ones up to R are still coming). A caller must
  // not advance past its last received event on a progress response alone.
  // Never throws: a broken stream is reported by Next().
  virtual void RequestProgress() = 0;

  // The "created" response Watch() waited for (header.revision: etcd's revision then).
  virtual const WatchResponse& created() const = 0;
};

}  // namespace etcdsafe::client
