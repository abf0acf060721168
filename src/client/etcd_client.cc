#include "client/etcd_client.h"

#include <grpc/support/log.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "base/error.h"
#include "client/endpoint.h"
#include "client/tls_probe.h"
#include "rpc.grpc.pb.h"

namespace etcdsafe::client {
namespace pb = etcdserverpb;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr milliseconds kDefaultAuthTimeout{5000};
constexpr milliseconds kDefaultHealthTimeout{5000};  // etcdctl's default command timeout

// The library never prints: route gRPC's internal log lines to nowhere. Process-wide,
// set once; we are the only gRPC user in etcdsafe.
void SilenceGrpcLogging() {
  static std::once_flag once;
  std::call_once(once, [] { gpr_set_log_function([](gpr_log_func_args*) {}); });
}

std::string FormatDuration(Clock::duration d) {
  const double ms = std::chrono::duration<double, std::milli>(d).count();
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f ms", ms);
  return buf;
}

bool Contains(const std::string& s, const char* needle) {
  return s.find(needle) != std::string::npos;
}

Error StatusToError(const grpc::Status& s, const std::string& endpoint) {
  std::string msg = s.error_message();
  if (msg.empty()) msg = "gRPC status " + std::to_string(static_cast<int>(s.error_code()));
  switch (s.error_code()) {
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return Error(ErrorCode::kUnavailable, "context deadline exceeded");
    case grpc::StatusCode::CANCELLED:
      return Error(ErrorCode::kUnavailable, "context canceled");
    case grpc::StatusCode::UNAVAILABLE:
      return Error(ErrorCode::kUnavailable, endpoint + ": " + msg);
    case grpc::StatusCode::UNAUTHENTICATED:
      return Error(ErrorCode::kUnauthenticated, msg);
    case grpc::StatusCode::PERMISSION_DENIED:
      return Error(ErrorCode::kPermissionDenied, msg);
    case grpc::StatusCode::INVALID_ARGUMENT:
      // etcd reports a wrong password as InvalidArgument; to us it is authentication.
      return Error(Contains(msg, "authentication failed") ? ErrorCode::kUnauthenticated
                                                          : ErrorCode::kInvalidArgument,
                   msg);
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:  // compacted / future revision
      return Error(ErrorCode::kInvalidArgument, msg);
    case grpc::StatusCode::NOT_FOUND:
      return Error(ErrorCode::kNotFound, msg);
    case grpc::StatusCode::ALREADY_EXISTS:
      return Error(ErrorCode::kAlreadyExists, msg);
    case grpc::StatusCode::UNIMPLEMENTED:
      return Error(ErrorCode::kUnsupported, msg);
    default:
      // Some etcd 3.4 paths (Maintenance.Snapshot's admin check) return auth errors
      // without a gRPC code: "auth: permission denied" arrives as UNKNOWN.
      if (Contains(msg, "permission denied")) return Error(ErrorCode::kPermissionDenied, msg);
      if (Contains(msg, "invalid auth token") || Contains(msg, "authentication failed")) {
        return Error(ErrorCode::kUnauthenticated, msg);
      }
      return Error(ErrorCode::kUnavailable, msg);
  }
}

std::shared_ptr<grpc::ChannelCredentials> MakeCredentials(const Endpoint& ep,
                                                          const TlsMaterial& tls) {
  if (!ep.tls) return grpc::InsecureChannelCredentials();
  if (!tls.skip_verify) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = tls.ca_pem;  // empty: gRPC's default roots
    o.pem_cert_chain = tls.cert_pem;
    o.pem_private_key = tls.key_pem;
    return grpc::SslCredentials(o);
  }
  namespace gx = grpc::experimental;
  gx::TlsChannelCredentialsOptions o;
  o.set_verify_server_certs(false);
  o.set_certificate_verifier(std::make_shared<gx::NoOpCertificateVerifier>());
  o.set_check_call_host(false);
  if (!tls.ca_pem.empty() || !tls.cert_pem.empty()) {
    std::vector<gx::IdentityKeyCertPair> pairs;
    if (!tls.cert_pem.empty()) pairs.push_back({tls.key_pem, tls.cert_pem});
    o.set_certificate_provider(
        std::make_shared<gx::StaticDataCertificateProvider>(tls.ca_pem, pairs));
    if (!tls.ca_pem.empty()) o.watch_root_certs();
    if (!tls.cert_pem.empty()) o.watch_identity_key_cert_pairs();
  }
  return gx::TlsCredentials(o);
}

// The stream-level receive window of the channel every unary RPC uses (MakeChannel); with
// probing off, gRPC 1.51 keeps that connection's own window at 64 KiB.
constexpr uint32_t kMainReceiveWindow = 16 << 20;

// What every connection shares: the unary RPCs' (MakeChannel) and a Snapshot stream's
// (MakeStreamChannel).
grpc::ChannelArguments BaseChannelArgs() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);  // only ever talk to the given endpoint
  args.SetMaxReceiveMessageSize(-1);           // Range results can be large
  args.SetMaxSendMessageSize(-1);
  // A private subchannel pool: a failed dial of an earlier client (e.g. in backoff)
  // must not be shared with this one; a Snapshot stream gets its own connection.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  // 1 MiB DATA frames (the peer may send smaller ones).
  args.SetInt(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, 1 << 20);
  return args;
}

std::shared_ptr<grpc::Channel> MakeChannel(const Endpoint& ep, const TlsMaterial& tls) {
  grpc::ChannelArguments args = BaseChannelArgs();
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, static_cast<int>(kMainReceiveWindow));
  return grpc::CreateCustomChannel(ep.HostPort(), MakeCredentials(ep, tls), args);
}

// A Snapshot stream's connection, reading up to 1 MiB per socket read (instead of gRPC's
// adaptive 8 KiB start: ~10% off the stream's CPU). See SnapshotOptions for the windows.
// With probing off, GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES only sets the stream's window:
// gRPC 1.51's connection-level target stays at 64 KiB, so that is what bounds (and slows)
// the stream; a gRPC resource quota instead of it was tried and dropped: past the quota
// gRPC ends the stream with RESOURCE_EXHAUSTED "Buffers full" rather than slowing it.
std::shared_ptr<grpc::Channel> MakeStreamChannel(const Endpoint& ep, const TlsMaterial& tls, bool small_window) {
  grpc::ChannelArguments args = BaseChannelArgs();
  args.SetInt(GRPC_ARG_TCP_READ_CHUNK_SIZE, 1 << 20);
  args.SetInt(GRPC_ARG_TCP_MIN_READ_CHUNK_SIZE, 1 << 20);
  if (small_window) {
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1 << 20);
  }
  return grpc::CreateCustomChannel(ep.HostPort(), MakeCredentials(ep, tls), args);
}

// Waits for READY; false on TRANSIENT_FAILURE (the first attempt failed) or deadline.
bool WaitReady(grpc::Channel& ch, Clock::time_point deadline, bool* timed_out) {
  const auto sys_deadline = std::chrono::system_clock::now() + (deadline - Clock::now());
  grpc_connectivity_state st = ch.GetState(true);
  while (st != GRPC_CHANNEL_READY) {
    if (st == GRPC_CHANNEL_TRANSIENT_FAILURE || st == GRPC_CHANNEL_SHUTDOWN) return false;
    if (!ch.WaitForStateChange(st, sys_deadline)) {
      *timed_out = true;
      return false;
    }
    st = ch.GetState(true);
  }
  return true;
}

void SetDeadline(grpc::ClientContext& ctx, milliseconds timeout) {
  if (timeout.count() > 0) ctx.set_deadline(std::chrono::system_clock::now() + timeout);
}

EtcdClient::MemberInfo ToMember(const pb::Member& m) {
  EtcdClient::MemberInfo out;
  out.id = m.id();
  out.name = m.name();
  out.peer_urls.assign(m.peer_urls().begin(), m.peer_urls().end());
  out.client_urls.assign(m.client_urls().begin(), m.client_urls().end());
  out.is_learner = m.is_learner();
  return out;
}

EtcdClient::ResponseHeader ToHeader(const pb::ResponseHeader& h) {
  EtcdClient::ResponseHeader out;
  out.cluster_id = h.cluster_id();
  out.member_id = h.member_id();
  out.revision = h.revision();
  out.raft_term = h.raft_term();
  return out;
}

template <class Resp>
void FillMembers(const Resp& resp, std::vector<EtcdClient::MemberInfo>* members,
                 EtcdClient::ResponseHeader* header) {
  if (members != nullptr) {
    members->clear();
    for (const auto& m : resp.members()) members->push_back(ToMember(m));
  }
  if (header != nullptr) *header = ToHeader(resp.header());
}

}  // namespace

struct EtcdClient::Impl {
  ClientConfig config;
  Endpoint ep;
  TlsMaterial tls;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::KV::Stub> kv;
  std::unique_ptr<pb::Maintenance::Stub> maintenance;
  std::unique_ptr<pb::Cluster::Stub> cluster;
  std::unique_ptr<pb::Auth::Stub> auth;
  std::unique_ptr<pb::Lease::Stub> lease;
  std::string token;
  // A Snapshot stream gets a connection of its own (see MakeStreamChannel), kept for
  // later streams with the same window.
  std::shared_ptr<grpc::Channel> stream_channel;
  std::unique_ptr<pb::Maintenance::Stub> stream_maintenance;
  bool stream_small_window = false;

  pb::Maintenance::Stub& SnapshotStub(bool small_window) {
    if (!stream_channel || stream_small_window != small_window) {
      stream_channel = MakeStreamChannel(ep, tls, small_window);
      stream_maintenance = pb::Maintenance::NewStub(stream_channel);
      stream_small_window = small_window;
      // Connect now, within the dial timeout; a failure shows in the RPC's status.
      bool timed_out = false;
      const auto start = Clock::now();
      bool ready = WaitReady(*stream_channel, start + config.dial_timeout, &timed_out);
      if (config.debug) {
        config.debug("snapshot stream connection to " + ep.original + " (receive window " +
                     (small_window ? "small" : "bandwidth-probed") +
                     "): " + (ready ? "ready" : timed_out ? "dial timeout" : "connect failed") + " in " +
                     FormatDuration(Clock::now() - start));
      }
    }
    return *stream_maintenance;
  }

  pb::RangeResponse RangeRpc(const std::string& key, const std::string& range_end, int64_t limit, int64_t revision,
                             bool keys_only, bool count_only) {
    pb::RangeRequest req;
    req.set_key(key);
    req.set_range_end(range_end);
    req.set_limit(limit);
    req.set_revision(revision);
    req.set_keys_only(keys_only);
    req.set_count_only(count_only);
    pb::RangeResponse resp;
    Call("KV.Range", [&](grpc::ClientContext& ctx) { return kv->Range(&ctx, req, &resp); }, config.command_timeout);
    return resp;
  }

  void Prepare(grpc::ClientContext& ctx, milliseconds timeout) const {
    SetDeadline(ctx, timeout);
    if (!token.empty()) ctx.AddMetadata("token", token);
  }

  // Gets a token; no-op when the server has auth disabled (like etcdctl). Throws the
  // mapped error (wrong password: kUnauthenticated).
  void Authenticate() {
    token.clear();
    if (config.user.empty()) return;
    pb::AuthenticateRequest req;
    req.set_name(config.user);
    req.set_password(config.password);
    pb::AuthenticateResponse resp;
    grpc::ClientContext ctx;
    SetDeadline(ctx, config.command_timeout.count() > 0
                         ? config.command_timeout
                         : std::max(config.dial_timeout, kDefaultAuthTimeout));
    const auto start = Clock::now();
    grpc::Status st = auth->Authenticate(&ctx, req, &resp);
    if (config.debug) {
      config.debug("Auth.Authenticate as " + config.user + " to " + ep.original + ": " +
                   (st.ok() ? std::string("OK") : "failed (" + st.error_message() + ")") + " in " +
                   FormatDuration(Clock::now() - start));
    }
    if (st.ok()) {
      token = resp.token();
      return;
    }
    if (st.error_code() == grpc::StatusCode::FAILED_PRECONDITION &&
        Contains(st.error_message(), "authentication is not enabled")) {
      return;
    }
    throw StatusToError(st, ep.original);
  }

  static bool TokenExpired(const grpc::Status& st) {
    return st.error_code() == grpc::StatusCode::UNAUTHENTICATED &&
           Contains(st.error_message(), "invalid auth token");
  }

  // Runs one unary RPC; refreshes an expired token once. `rpc(ctx)` returns the status.
  template <class Rpc>
  void Call(const char* name, Rpc&& rpc, milliseconds timeout) {
    for (int attempt = 0;; ++attempt) {
      grpc::ClientContext ctx;
      Prepare(ctx, timeout);
      const auto start = Clock::now();
      grpc::Status st = rpc(ctx);
      if (config.debug) {
        config.debug(std::string(name) + " to " + ep.original + ": " +
                     (st.ok() ? std::string("OK") : "failed (" + st.error_message() + ")") +
                     " in " + FormatDuration(Clock::now() - start));
      }
      if (st.ok()) return;
      if (attempt == 0 && !config.user.empty() && TokenExpired(st)) {
        Authenticate();
        continue;
      }
      throw StatusToError(st, ep.original);
    }
  }
};

EtcdClient::EtcdClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EtcdClient::~EtcdClient() = default;

const std::string& EtcdClient::endpoint() const { return impl_->ep.original; }

std::unique_ptr<EtcdClient> EtcdClient::Connect(const ClientConfig& config_in) {
  SilenceGrpcLogging();
  ClientConfig config = config_in;
  if (config.endpoints.empty()) throw Error(ErrorCode::kInvalidArgument, "no endpoints given");
  if (!config.user.empty() && config.password.empty()) {
    // etcdctl's --user accepts "name:password".
    if (auto colon = config.user.find(':'); colon != std::string::npos) {
      config.password = config.user.substr(colon + 1);
      config.user.resize(colon);
    }
  }
  if (config.dial_timeout.count() <= 0) config.dial_timeout = milliseconds(2000);
  const bool tls_by_default =
      !config.cacert.empty() || !config.cert.empty() || config.insecure_skip_tls_verify;
  std::vector<Endpoint> eps;
  bool any_tls = false;
  for (const auto& text : config.endpoints) {
    eps.push_back(ParseEndpoint(text, tls_by_default));
    any_tls = any_tls || eps.back().tls;
  }
  TlsMaterial tls;
  if (any_tls || !config.cert.empty() || !config.cacert.empty()) {
    tls = LoadTlsMaterial(config.cacert, config.cert, config.key,
                          config.insecure_skip_tls_verify);
  }

  std::string failures;
  std::optional<ErrorCode> common_code;
  for (const Endpoint& ep : eps) {
    const auto dial_start = Clock::now();
    const auto deadline = dial_start + config.dial_timeout;
    if (config.debug) {
      std::string how = "plaintext (TLS off)";
      if (ep.tls) {
        how = "TLS on";
        how += config.cacert.empty() ? ", system CA roots" : ", CA " + config.cacert;
        if (!config.cert.empty()) how += ", client cert " + config.cert;
        if (config.insecure_skip_tls_verify) how += ", server certificate NOT verified";
      }
      config.debug("dialing " + ep.original + " (" + ep.HostPort() + ", " + how + ", dial timeout " +
                   std::to_string(config.dial_timeout.count()) + " ms)");
    }
    auto impl = std::make_unique<Impl>();
    impl->config = config;
    impl->ep = ep;
    impl->tls = tls;
    impl->channel = MakeChannel(ep, tls);
    bool timed_out = false;
    std::optional<Error> failure;
    if (WaitReady(*impl->channel, deadline, &timed_out)) {
      impl->kv = pb::KV::NewStub(impl->channel);
      impl->maintenance = pb::Maintenance::NewStub(impl->channel);
      impl->cluster = pb::Cluster::NewStub(impl->channel);
      impl->auth = pb::Auth::NewStub(impl->channel);
      impl->lease = pb::Lease::NewStub(impl->channel);
      if (config.debug) {
        config.debug("connected to " + ep.original + " in " + FormatDuration(Clock::now() - dial_start) +
                     "; using this endpoint");
      }
      try {
        impl->Authenticate();
        return std::unique_ptr<EtcdClient>(new EtcdClient(std::move(impl)));
      } catch (const Error& e) {
        // A wrong password or missing role is the same on every member: stop here.
        if (e.code() != ErrorCode::kUnavailable) throw;
        failure = e;
      }
    } else {
      // The probe gets what is left of the dial timeout, but at least a short window
      // (up to 1 s) so a dial that timed out can still be explained.
      auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
      auto budget = std::max(left, std::min(config.dial_timeout, milliseconds(1000)));
      failure = DiagnoseConnect(ep, ep.tls ? &tls : nullptr, budget);
      if (!failure) {
        failure = Error(ErrorCode::kUnavailable,
                        timed_out ? "dial timeout" : "connection failed (gRPC transient failure)");
      }
    }
    if (config.debug) {
      config.debug("endpoint " + ep.original + " failed after " + FormatDuration(Clock::now() - dial_start) +
                   ": " + failure->what());
    }
    if (!failures.empty()) failures += "; ";
    failures += ep.original + ": " + failure->what();
    if (!common_code) {
      common_code = failure->code();
    } else if (*common_code != failure->code()) {
      common_code = ErrorCode::kUnavailable;
    }
  }
  throw Error(common_code.value_or(ErrorCode::kUnavailable), failures);
}

void EtcdClient::Snapshot(const std::function<void(const uint8_t*, size_t)>& on_blob, const SnapshotOptions& options) {
  pb::Maintenance::Stub& stub = impl_->SnapshotStub(options.small_window);
  for (int attempt = 0;; ++attempt) {
    grpc::ClientContext ctx;
    impl_->Prepare(ctx, impl_->config.command_timeout);
    const auto start = Clock::now();
    auto reader = stub.Snapshot(&ctx, pb::SnapshotRequest());
    pb::SnapshotResponse resp;
    bool got_any = false;
    try {
      while (reader->Read(&resp)) {
        got_any = true;
        const std::string& blob = resp.blob();
        on_blob(reinterpret_cast<const uint8_t*>(blob.data()), blob.size());
      }
    } catch (...) {
      ctx.TryCancel();
      while (reader->Read(&resp)) {
      }
      (void)reader->Finish();
      throw;
    }
    grpc::Status st = reader->Finish();
    if (impl_->config.debug) {
      impl_->config.debug("Maintenance.Snapshot stream from " + impl_->ep.original + ": " +
                          (st.ok() ? std::string("OK") : "failed (" + st.error_message() + ")") +
                          " in " + FormatDuration(Clock::now() - start));
    }
    if (st.ok()) return;
    if (attempt == 0 && !got_any && !impl_->config.user.empty() && Impl::TokenExpired(st)) {
      impl_->Authenticate();
      continue;
    }
    throw StatusToError(st, impl_->ep.original);
  }
}

EtcdClient::Status EtcdClient::EndpointStatus() {
  pb::StatusResponse resp;
  impl_->Call("Maintenance.Status",
      [&](grpc::ClientContext& ctx) {
        return impl_->maintenance->Status(&ctx, pb::StatusRequest(), &resp);
      },
      impl_->config.command_timeout);
  Status s;
  s.header = ToHeader(resp.header());
  s.version = resp.version();
  s.db_size = resp.db_size();
  s.db_size_in_use = resp.db_size_in_use();
  s.leader = resp.leader();
  s.raft_index = resp.raft_index();
  s.raft_term = resp.raft_term();
  s.raft_applied_index = resp.raft_applied_index();
  s.cluster_id = resp.header().cluster_id();
  s.member_id = resp.header().member_id();
  s.revision = resp.header().revision();
  s.is_learner = resp.is_learner();
  s.errors.assign(resp.errors().begin(), resp.errors().end());
  return s;
}

EtcdClient::HashKVResult EtcdClient::HashKV(int64_t revision) {
  pb::HashKVRequest req;
  req.set_revision(revision);
  pb::HashKVResponse resp;
  impl_->Call("Maintenance.HashKV",
      [&](grpc::ClientContext& ctx) { return impl_->maintenance->HashKV(&ctx, req, &resp); },
      impl_->config.command_timeout);
  HashKVResult out;
  out.header = ToHeader(resp.header());
  out.hash = resp.hash();
  out.compact_revision = resp.compact_revision();
  return out;
}

std::vector<EtcdClient::MemberInfo> EtcdClient::MemberList(ResponseHeader* header) {
  pb::MemberListResponse resp;
  impl_->Call("Cluster.MemberList",
      [&](grpc::ClientContext& ctx) {
        return impl_->cluster->MemberList(&ctx, pb::MemberListRequest(), &resp);
      },
      impl_->config.command_timeout);
  std::vector<MemberInfo> out;
  FillMembers(resp, &out, header);
  return out;
}

void EtcdClient::MemberRemove(uint64_t id, std::vector<MemberInfo>* members,
                              ResponseHeader* header) {
  pb::MemberRemoveRequest req;
  req.set_id(id);
  pb::MemberRemoveResponse resp;
  impl_->Call("Cluster.MemberRemove",
      [&](grpc::ClientContext& ctx) { return impl_->cluster->MemberRemove(&ctx, req, &resp); },
      impl_->config.command_timeout);
  FillMembers(resp, members, header);
}

void EtcdClient::MemberUpdate(uint64_t id, const std::vector<std::string>& peer_urls,
                              std::vector<MemberInfo>* members, ResponseHeader* header) {
  pb::MemberUpdateRequest req;
  req.set_id(id);
  for (const auto& u : peer_urls) req.add_peer_urls(u);
  pb::MemberUpdateResponse resp;
  impl_->Call("Cluster.MemberUpdate",
      [&](grpc::ClientContext& ctx) { return impl_->cluster->MemberUpdate(&ctx, req, &resp); },
      impl_->config.command_timeout);
  FillMembers(resp, members, header);
}

void EtcdClient::MemberPromote(uint64_t id, std::vector<MemberInfo>* members,
                               ResponseHeader* header) {
  pb::MemberPromoteRequest req;
  req.set_id(id);
  pb::MemberPromoteResponse resp;
  impl_->Call("Cluster.MemberPromote",
      [&](grpc::ClientContext& ctx) { return impl_->cluster->MemberPromote(&ctx, req, &resp); },
      impl_->config.command_timeout);
  FillMembers(resp, members, header);
}

EtcdClient::MemberInfo EtcdClient::MemberAdd(const std::vector<std::string>& peer_urls,
                                             bool is_learner,
                                             std::vector<MemberInfo>* members,
                                             ResponseHeader* header) {
  pb::MemberAddRequest req;
  for (const auto& u : peer_urls) req.add_peer_urls(u);
  req.set_is_learner(is_learner);
  pb::MemberAddResponse resp;
  impl_->Call("Cluster.MemberAdd",
      [&](grpc::ClientContext& ctx) { return impl_->cluster->MemberAdd(&ctx, req, &resp); },
      impl_->config.command_timeout);
  FillMembers(resp, members, header);
  return ToMember(resp.member());
}

std::chrono::microseconds EtcdClient::Health() {
  const milliseconds timeout = impl_->config.command_timeout.count() > 0
                                   ? impl_->config.command_timeout
                                   : kDefaultHealthTimeout;
  const std::string unhealthy = impl_->ep.original + " is unhealthy: ";
  pb::RangeRequest req;
  req.set_key("health");  // linearizable (serializable=false): needs a quorum
  pb::RangeResponse resp;
  const auto start = Clock::now();
  try {
    impl_->Call("KV.Range", [&](grpc::ClientContext& ctx) { return impl_->kv->Range(&ctx, req, &resp); },
                timeout);
  } catch (const Error& e) {
    // A non-root user may not read "health"; the cluster still answered.
    if (e.code() != ErrorCode::kPermissionDenied) {
      throw Error(ErrorCode::kUnavailable,
                  unhealthy + "failed to commit proposal: " + std::string(e.what()));
    }
  }
  const auto took = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
  pb::AlarmRequest areq;
  areq.set_action(pb::AlarmRequest::GET);
  pb::AlarmResponse aresp;
  try {
    impl_->Call("Maintenance.Alarm",
        [&](grpc::ClientContext& ctx) { return impl_->maintenance->Alarm(&ctx, areq, &aresp); },
        timeout);
  } catch (const Error& e) {
    throw Error(ErrorCode::kUnavailable,
                unhealthy + "Unable to fetch the alarm list: " + std::string(e.what()));
  }
  for (const auto& a : aresp.alarms()) {
    if (a.alarm() == pb::NOSPACE) {
      throw Error(ErrorCode::kUnavailable, unhealthy + "Active Alarm(s): NOSPACE");
    }
  }
  return took;
}

void EtcdClient::Put(const std::string& key, const std::string& value, int64_t lease) {
  pb::PutRequest req;
  req.set_key(key);
  req.set_value(value);
  req.set_lease(lease);
  pb::PutResponse resp;
  impl_->Call("KV.Put", [&](grpc::ClientContext& ctx) { return impl_->kv->Put(&ctx, req, &resp); },
              impl_->config.command_timeout);
}

EtcdClient::RangeResult EtcdClient::Range(const std::string& key, const std::string& range_end,
                                          int64_t limit, int64_t revision, bool keys_only) {
  pb::RangeResponse resp = impl_->RangeRpc(key, range_end, limit, revision, keys_only, false);
  RangeResult out;
  out.header = ToHeader(resp.header());
  out.revision = resp.header().revision();
  out.count = resp.count();
  out.more = resp.more();
  out.kvs.reserve(static_cast<size_t>(resp.kvs_size()));
  for (const auto& kv : resp.kvs()) {
    out.kvs.push_back(KV{kv.key(), kv.value(), kv.create_revision(), kv.mod_revision(),
                         kv.version(), kv.lease()});
  }
  return out;
}

int64_t EtcdClient::CountRange(const std::string& key, const std::string& range_end, int64_t revision) {
  return impl_->RangeRpc(key, range_end, 0, revision, false, true).count();
}

int64_t EtcdClient::DeleteRange(const std::string& key, const std::string& range_end) {
  pb::DeleteRangeRequest req;
  req.set_key(key);
  req.set_range_end(range_end);
  pb::DeleteRangeResponse resp;
  impl_->Call("KV.DeleteRange",
      [&](grpc::ClientContext& ctx) { return impl_->kv->DeleteRange(&ctx, req, &resp); },
      impl_->config.command_timeout);
  return resp.deleted();
}

EtcdClient::ResponseHeader EtcdClient::Txn(const std::vector<TxnOp>& ops) { return TxnIf({}, ops).header; }

EtcdClient::TxnResult EtcdClient::TxnIf(const std::vector<Compare>& compares, const std::vector<TxnOp>& success) {
  pb::TxnRequest req;
  for (const Compare& c : compares) {
    pb::Compare* pc = req.add_compare();
    pc->set_key(c.key);
    switch (c.result) {
      case Compare::kEqual: pc->set_result(pb::Compare::EQUAL); break;
      case Compare::kGreater: pc->set_result(pb::Compare::GREATER); break;
      case Compare::kLess: pc->set_result(pb::Compare::LESS); break;
      case Compare::kNotEqual: pc->set_result(pb::Compare::NOT_EQUAL); break;
    }
    switch (c.target) {
      case Compare::kVersion:
        pc->set_target(pb::Compare::VERSION);
        pc->set_version(c.number);
        break;
      case Compare::kCreateRevision:
        pc->set_target(pb::Compare::CREATE);
        pc->set_create_revision(c.number);
        break;
      case Compare::kModRevision:
        pc->set_target(pb::Compare::MOD);
        pc->set_mod_revision(c.number);
        break;
      case Compare::kValue:
        pc->set_target(pb::Compare::VALUE);
        pc->set_value(c.value);
        break;
    }
  }
  for (const TxnOp& op : success) {
    pb::RequestOp* r = req.add_success();
    if (op.kind == TxnOp::kPut) {
      pb::PutRequest* put = r->mutable_request_put();
      put->set_key(op.key);
      put->set_value(op.value);
      put->set_lease(op.lease);
    } else {
      pb::DeleteRangeRequest* del = r->mutable_request_delete_range();
      del->set_key(op.key);
      del->set_range_end(op.range_end);
    }
  }
  pb::TxnResponse resp;
  impl_->Call("KV.Txn", [&](grpc::ClientContext& ctx) { return impl_->kv->Txn(&ctx, req, &resp); },
              impl_->config.command_timeout);
  return TxnResult{ToHeader(resp.header()), resp.succeeded()};
}

EtcdClient::ResponseHeader EtcdClient::Compact(int64_t revision, bool physical) {
  pb::CompactionRequest req;
  req.set_revision(revision);
  req.set_physical(physical);
  pb::CompactionResponse resp;
  impl_->Call("KV.Compact", [&](grpc::ClientContext& ctx) { return impl_->kv->Compact(&ctx, req, &resp); },
              impl_->config.command_timeout);
  return ToHeader(resp.header());
}

int64_t EtcdClient::LeaseGrant(int64_t ttl_seconds, int64_t id) {
  pb::LeaseGrantRequest req;
  req.set_ttl(ttl_seconds);
  req.set_id(id);
  pb::LeaseGrantResponse resp;
  impl_->Call("Lease.LeaseGrant",
      [&](grpc::ClientContext& ctx) { return impl_->lease->LeaseGrant(&ctx, req, &resp); },
      impl_->config.command_timeout);
  if (!resp.error().empty()) throw Error(ErrorCode::kInvalidArgument, "lease grant: " + resp.error());
  return resp.id();
}

void EtcdClient::LeaseRevoke(int64_t id) {
  pb::LeaseRevokeRequest req;
  req.set_id(id);
  pb::LeaseRevokeResponse resp;
  impl_->Call("Lease.LeaseRevoke",
      [&](grpc::ClientContext& ctx) { return impl_->lease->LeaseRevoke(&ctx, req, &resp); },
      impl_->config.command_timeout);
}

EtcdClient::LeaseTtl EtcdClient::LeaseTimeToLive(int64_t id) {
  pb::LeaseTimeToLiveRequest req;
  req.set_id(id);
  pb::LeaseTimeToLiveResponse resp;
  impl_->Call("Lease.LeaseTimeToLive",
      [&](grpc::ClientContext& ctx) { return impl_->lease->LeaseTimeToLive(&ctx, req, &resp); },
      impl_->config.command_timeout);
  LeaseTtl out;
  out.id = resp.id();
  out.ttl = resp.ttl();
  out.granted_ttl = resp.grantedttl();
  return out;
}

std::vector<int64_t> EtcdClient::LeaseLeases(ResponseHeader* header) {
  pb::LeaseLeasesResponse resp;
  impl_->Call("Lease.LeaseLeases",
      [&](grpc::ClientContext& ctx) { return impl_->lease->LeaseLeases(&ctx, pb::LeaseLeasesRequest(), &resp); },
      impl_->config.command_timeout);
  if (header != nullptr) *header = ToHeader(resp.header());
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(resp.leases_size()));
  for (const auto& l : resp.leases()) out.push_back(l.id());
  return out;
}

// ---- Watch ----

bool WatchResponse::IsProgressNotify() const {
  return events.empty() && !created && !canceled && compact_revision == 0 && header.revision != 0;
}

WatchStream::~WatchStream() = default;

namespace {

constexpr milliseconds kDefaultWatchCreateTimeout{10000};

// Moves the strings out of `resp` (values can be MiBs). `bytes` gets the payload size
// used to bound the buffer.
WatchResponse TakeResponse(pb::WatchResponse& resp, size_t* bytes) {
  WatchResponse out;
  out.header = ToHeader(resp.header());
  out.watch_id = resp.watch_id();
  out.created = resp.created();
  out.canceled = resp.canceled();
  out.compact_revision = resp.compact_revision();
  out.cancel_reason = std::move(*resp.mutable_cancel_reason());
  size_t n = 64 + out.cancel_reason.size();
  out.events.reserve(static_cast<size_t>(resp.events_size()));
  for (mvccpb::Event& ev : *resp.mutable_events()) {
    WatchEvent e;
    e.is_delete = ev.type() == mvccpb::Event::DELETE;
    mvccpb::KeyValue* kv = ev.mutable_kv();
    e.kv.key = std::move(*kv->mutable_key());
    e.kv.value = std::move(*kv->mutable_value());
    e.kv.create_revision = kv->create_revision();
    e.kv.mod_revision = kv->mod_revision();
    e.kv.version = kv->version();
    e.kv.lease = kv->lease();
    n += 64 + e.kv.key.size() + e.kv.value.size();
    out.events.push_back(std::move(e));
  }
  *bytes = n;
  return out;
}

// One Watch call: a reader thread moves responses into a bounded queue; Next() pops.
class GrpcWatchStream final : public WatchStream {
 public:
  GrpcWatchStream(std::shared_ptr<grpc::Channel> channel, std::string endpoint, size_t max_buffered)
      : channel_(std::move(channel)),
        stub_(pb::Watch::NewStub(channel_)),
        endpoint_(std::move(endpoint)),
        max_buffered_(max_buffered) {}

  ~GrpcWatchStream() override {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stopping_ = true;
    }
    space_cv_.notify_all();
    ctx_.TryCancel();
    if (reader_.joinable()) reader_.join();
  }

  // Opens the call and sends the create request. Failures show up in Next().
  void Start(const std::string& token, const pb::WatchRequest& create) {
    if (!token.empty()) ctx_.AddMetadata("token", token);
    // clientv3.WithRequireLeader: etcd ends the stream when its member has no leader.
    ctx_.AddMetadata("hasleader", "true");
    call_ = stub_->Watch(&ctx_);
    {
      std::lock_guard<std::mutex> lk(write_mu_);
      (void)call_->Write(create);
    }
    reader_ = std::thread([this] { ReadLoop(); });
  }

  std::optional<WatchResponse> Next(milliseconds timeout) override {
    // Clamped so that now() + timeout cannot overflow (milliseconds::max() = "a year").
    timeout = std::clamp(timeout, milliseconds(0), milliseconds(std::chrono::hours(24 * 365)));
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait_for(lk, timeout, [&] { return !queue_.empty() || done_; });
    if (!queue_.empty()) {
      WatchResponse out = std::move(queue_.front().first);
      buffered_ -= queue_.front().second;
      queue_.pop_front();
      lk.unlock();
      space_cv_.notify_all();
      return out;
    }
    if (done_) throw *error_;
    return std::nullopt;
  }

  void RequestProgress() override {
    pb::WatchRequest req;
    req.mutable_progress_request();
    std::lock_guard<std::mutex> lk(write_mu_);
    if (!finished_) (void)call_->Write(req);
  }

  const WatchResponse& created() const override { return created_; }
  WatchResponse created_;

 private:
  void ReadLoop() {
    pb::WatchResponse resp;
    while (call_->Read(&resp)) {
      size_t bytes = 0;
      WatchResponse out = TakeResponse(resp, &bytes);
      std::unique_lock<std::mutex> lk(mu_);
      space_cv_.wait(lk, [&] { return stopping_ || buffered_ == 0 || buffered_ + bytes <= max_buffered_; });
      if (stopping_) break;
      queue_.emplace_back(std::move(out), bytes);
      buffered_ += bytes;
      lk.unlock();
      cv_.notify_all();
    }
    // Stopping: the destructor's TryCancel makes the remaining reads fail promptly.
    while (call_->Read(&resp)) {
    }
    grpc::Status st;
    {
      std::lock_guard<std::mutex> lk(write_mu_);
      st = call_->Finish();
      finished_ = true;
    }
    Error err = st.ok() ? Error(ErrorCode::kUnavailable, endpoint_ + ": watch stream closed by the server")
                        : StatusToError(st, endpoint_);
    {
      std::lock_guard<std::mutex> lk(mu_);
      done_ = true;
      error_ = err.Wrap("watch stream broken");
    }
    cv_.notify_all();
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::Watch::Stub> stub_;
  std::string endpoint_;
  size_t max_buffered_;
  grpc::ClientContext ctx_;  // outlives call_ (declared before it)
  std::unique_ptr<grpc::ClientReaderWriter<pb::WatchRequest, pb::WatchResponse>> call_;
  std::mutex write_mu_;  // Write vs Finish
  bool finished_ = false;
  std::mutex mu_;
  std::condition_variable cv_;        // Next() waits for a response or the end
  std::condition_variable space_cv_;  // the reader waits for buffer room
  std::deque<std::pair<WatchResponse, size_t>> queue_;
  size_t buffered_ = 0;
  bool stopping_ = false;
  bool done_ = false;
  std::optional<Error> error_;
  std::thread reader_;
};

}  // namespace

std::unique_ptr<WatchStream> EtcdClient::Watch(const WatchOptions& options) {
  pb::WatchRequest req;
  pb::WatchCreateRequest* c = req.mutable_create_request();
  c->set_key(options.key);
  c->set_range_end(options.range_end);
  c->set_start_revision(options.start_revision);
  c->set_progress_notify(options.progress_notify);
  const milliseconds timeout =
      impl_->config.command_timeout.count() > 0 ? impl_->config.command_timeout : kDefaultWatchCreateTimeout;
  for (int attempt = 0;; ++attempt) {
    const auto start = Clock::now();
    auto stream = std::make_unique<GrpcWatchStream>(impl_->channel, impl_->ep.original, options.max_buffered_bytes);
    stream->Start(impl_->token, req);
    std::optional<WatchResponse> first;
    std::string outcome;
    try {
      first = stream->Next(timeout);
    } catch (const Error& e) {
      if (impl_->config.debug) {
        impl_->config.debug("Watch.Watch to " + impl_->ep.original + ": failed (" + e.what() + ") in " +
                            FormatDuration(Clock::now() - start));
      }
      throw;
    }
    if (!first) {
      outcome = "no created response within " + std::to_string(timeout.count()) + " ms";
    } else if (!first->created) {
      outcome = "unexpected first response (not created)";
    } else if (first->canceled) {
      outcome = "refused: " + first->cancel_reason;
    }
    if (impl_->config.debug) {
      impl_->config.debug("Watch.Watch to " + impl_->ep.original + ": " +
                          (outcome.empty() ? "created (watch id " + std::to_string(first->watch_id) + ", revision " +
                                                 std::to_string(first->header.revision) + ")"
                                           : "failed (" + outcome + ")") +
                          " in " + FormatDuration(Clock::now() - start));
    }
    if (outcome.empty()) {
      stream->created_ = std::move(*first);
      return stream;
    }
    if (!first) throw Error(ErrorCode::kUnavailable, impl_->ep.original + ": watch: " + outcome);
    if (!first->created) throw Error(ErrorCode::kInternal, impl_->ep.original + ": watch: " + outcome);
    const std::string& reason = first->cancel_reason;
    // etcd 3.4 checks the token per watcher and reports an expired one as a refusal.
    if (attempt == 0 && !impl_->config.user.empty() &&
        (Contains(reason, "invalid auth token") || Contains(reason, "permission denied"))) {
      impl_->Authenticate();
      continue;
    }
    throw Error(Contains(reason, "permission denied") ? ErrorCode::kPermissionDenied : ErrorCode::kInvalidArgument,
                "watch refused by etcd: " + (reason.empty() ? std::string("canceled at creation") : reason));
  }
}

}  // namespace etcdsafe::client
