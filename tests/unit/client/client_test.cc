// Integration tests of EtcdClient against a real etcd 3.4 (tests/testutil/etcd_server.h),
// cross-checked with etcdctl where it has an equivalent.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <thread>
#include <nlohmann/json.hpp>

#include "base/bytes.h"
#include "base/checksum.h"
#include "base/error.h"
#include "client/etcd_client.h"
#include "testutil/etcd_server.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::client {
namespace {

using testutil::EtcdServer;
using testutil::EtcdServerOptions;

EtcdServerOptions TlsOptions() {
  EtcdServerOptions o;
  o.tls = true;
  return o;
}

EtcdServerOptions Named(const std::string& name) {
  EtcdServerOptions o;
  o.name = name;
  return o;
}

// Runs fn, expects an etcdsafe::Error with `code` whose message contains `text`.
template <class F>
std::string ExpectError(F&& fn, ErrorCode code, const std::string& text) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(ErrorCodeName(e.code()), ErrorCodeName(code)) << e.what();
    EXPECT_NE(std::string(e.what()).find(text), std::string::npos)
        << "message: " << e.what() << "\nexpected to contain: " << text;
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "not one line: " << e.what();
    std::cout << "[ error    ] " << ErrorCodeName(e.code()) << ": " << e.what() << "\n";
    return e.what();
  }
  ADD_FAILURE() << "no error thrown; expected " << ErrorCodeName(code) << ": " << text;
  return "";
}

std::string SnapshotBytes(EtcdClient& c) {
  std::string out;
  c.Snapshot([&](const uint8_t* p, size_t n) { out.append(reinterpret_cast<const char*>(p), n); });
  return out;
}

Sha256Digest ShaOf(std::string_view s) { return Sha256Of(AsBytes(s)); }

void ExpectEtcdctlOk(const testutil::EtcdctlResult& r) {
  ASSERT_EQ(r.exit_code, 0) << "stdout: " << r.out << "\nstderr: " << r.err;
}

TEST(EtcdClientTest, PutRangeRoundTrip) {
  EtcdServer server;
  auto c = EtcdClient::Connect(server.client_config());
  EXPECT_EQ(c->endpoint(), server.client_url());
  c->Put("/a/1", "one");
  c->Put("/a/2", std::string("t\0o", 3));
  c->Put("/b", "bee");

  auto one = c->Range("/a/1");
  ASSERT_EQ(one.kvs.size(), 1u);
  EXPECT_EQ(one.kvs[0].key, "/a/1");
  EXPECT_EQ(one.kvs[0].value, "one");
  EXPECT_EQ(one.kvs[0].version, 1);
  EXPECT_EQ(one.count, 1);

  auto prefix = c->Range("/a/", "/a0");
  ASSERT_EQ(prefix.kvs.size(), 2u);
  EXPECT_EQ(prefix.kvs[1].value, std::string("t\0o", 3));
  EXPECT_EQ(prefix.revision, prefix.kvs[1].mod_revision + 1);  // "/b" came after

  auto limited = c->Range("/", std::string(1, '\0'), 1, 0, /*keys_only=*/true);
  EXPECT_EQ(limited.kvs.size(), 1u);
  EXPECT_TRUE(limited.more);
  EXPECT_EQ(limited.count, 3);
  EXPECT_EQ(limited.kvs[0].value, "");

  c->Put("/a/1", "uno");
  auto old = c->Range("/a/1", "", 0, one.kvs[0].mod_revision);
  ASSERT_EQ(old.kvs.size(), 1u);
  EXPECT_EQ(old.kvs[0].value, "one");

  EXPECT_EQ(c->DeleteRange("/a/", "/a0"), 2);
  EXPECT_TRUE(c->Range("/a/", "/a0").kvs.empty());

  // etcdctl sees what we wrote.
  auto r = server.etcdctl({"get", "/b", "--print-value-only"});
  ExpectEtcdctlOk(r);
  EXPECT_EQ(r.out, "bee\n");
}

TEST(EtcdClientTest, SnapshotMatchesEtcdctlSnapshotSave) {
  EtcdServer server;
  auto c = EtcdClient::Connect(server.client_config());
  for (int i = 0; i < 200; ++i) c->Put("key" + std::to_string(i), std::string(500, 'x'));

  std::vector<size_t> sizes;
  std::string ours;
  c->Snapshot([&](const uint8_t* p, size_t n) {
    sizes.push_back(n);
    ours.append(reinterpret_cast<const char*>(p), n);
  });
  ASSERT_GT(ours.size(), 32u);
  EXPECT_EQ(ours.size() % 512, 32u);
  // 32 KiB blobs, then the 32-byte digest on its own.
  ASSERT_GE(sizes.size(), 3u);
  EXPECT_EQ(sizes.front(), 32768u);
  EXPECT_EQ(sizes.back(), 32u);
  const std::string_view db(ours.data(), ours.size() - 32);
  const Sha256Digest trailer_want = ShaOf(db);
  EXPECT_EQ(ours.substr(ours.size() - 32),
            std::string(reinterpret_cast<const char*>(trailer_want.data()), 32));

  const std::string path = server.temp_dir().Sub("etcdctl.db");
  ExpectEtcdctlOk(server.etcdctl({"snapshot", "save", path}));
  const std::string theirs = testutil::ReadFile(path);
  ASSERT_EQ(theirs.size(), ours.size());
  EXPECT_EQ(ShaOf(std::string_view(theirs).substr(0, theirs.size() - 32)), ShaOf(db));
  EXPECT_EQ(theirs.substr(theirs.size() - 32), ours.substr(ours.size() - 32));
}

TEST(EtcdClientTest, SnapshotCallbackExceptionCancelsStream) {
  EtcdServer server;
  auto c = EtcdClient::Connect(server.client_config());
  ExpectError([&] { c->Snapshot([](const uint8_t*, size_t) { throw Error(ErrorCode::kIo, "disk full"); }); },
              ErrorCode::kIo, "disk full");
  // The client stays usable.
  EXPECT_GT(SnapshotBytes(*c).size(), 32u);
}

TEST(EtcdClientTest, EndpointStatusMatchesEtcdctl) {
  EtcdServer server;
  auto c = EtcdClient::Connect(server.client_config());
  c->Put("k", "v");
  auto s = c->EndpointStatus();
  auto r = server.etcdctl({"endpoint", "status", "-w", "json"});
  ExpectEtcdctlOk(r);
  auto j = nlohmann::json::parse(r.out).at(0).at("Status");
  EXPECT_EQ(s.version, j.at("version").get<std::string>());
  EXPECT_EQ(s.version, "3.4.23");
  EXPECT_EQ(s.db_size, j.at("dbSize").get<int64_t>());
  EXPECT_EQ(s.db_size_in_use, j.at("dbSizeInUse").get<int64_t>());
  EXPECT_EQ(s.leader, j.at("leader").get<uint64_t>());
  EXPECT_EQ(s.raft_index, j.at("raftIndex").get<uint64_t>());
  EXPECT_EQ(s.raft_term, j.at("raftTerm").get<uint64_t>());
  EXPECT_EQ(s.raft_applied_index, j.at("raftAppliedIndex").get<uint64_t>());
  EXPECT_EQ(s.cluster_id, j.at("header").at("cluster_id").get<uint64_t>());
  EXPECT_EQ(s.member_id, j.at("header").at("member_id").get<uint64_t>());
  EXPECT_EQ(s.revision, j.at("header").at("revision").get<int64_t>());
  EXPECT_EQ(s.revision, 2);
  EXPECT_EQ(s.leader, s.member_id);
  EXPECT_TRUE(s.errors.empty());
}

TEST(EtcdClientTest, MemberListMatchesEtcdctl) {
  EtcdServer server(Named("alpha"));
  auto c = EtcdClient::Connect(server.client_config());
  auto members = c->MemberList();
  auto r = server.etcdctl({"member", "list", "-w", "json"});
  ExpectEtcdctlOk(r);
  auto j = nlohmann::json::parse(r.out).at("members");
  ASSERT_EQ(members.size(), 1u);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(members[0].id, j[0].at("ID").get<uint64_t>());
  EXPECT_EQ(members[0].name, "alpha");
  EXPECT_EQ(members[0].name, j[0].at("name").get<std::string>());
  EXPECT_EQ(members[0].peer_urls, j[0].at("peerURLs").get<std::vector<std::string>>());
  EXPECT_EQ(members[0].client_urls, j[0].at("clientURLs").get<std::vector<std::string>>());
  EXPECT_EQ(members[0].peer_urls, std::vector<std::string>{server.peer_url()});
  EXPECT_EQ(members[0].client_urls, std::vector<std::string>{server.client_url()});
  EXPECT_FALSE(members[0].is_learner);
  EXPECT_EQ(members[0].id, c->EndpointStatus().member_id);
}

TEST(EtcdClientTest, HeadersHashKvAndMemberChangesMatchEtcdctl) {
  EtcdServer server(Named("alpha"));
  std::vector<std::string> debug;
  ClientConfig config = server.client_config();
  config.debug = [&](const std::string& line) { debug.push_back(line); };
  auto c = EtcdClient::Connect(config);
  c->Put("a", "1");
  c->Put("b", "2");
  c->Put("a", "3");
  auto r = server.etcdctl({"endpoint", "hashkv", "-w", "json"});
  ExpectEtcdctlOk(r);
  auto j = nlohmann::json::parse(r.out).at(0).at("HashKV");
  auto h = c->HashKV(0);
  EXPECT_EQ(h.hash, j.at("hash").get<uint32_t>());
  EXPECT_EQ(h.compact_revision, j.at("compact_revision").get<int64_t>());
  EXPECT_EQ(h.header.cluster_id, j.at("header").at("cluster_id").get<uint64_t>());
  EXPECT_EQ(h.header.member_id, j.at("header").at("member_id").get<uint64_t>());
  EXPECT_EQ(h.header.revision, 4);
  EXPECT_NE(c->HashKV(2).hash, h.hash);  // up to revision 2 only
  // Every response's header: same cluster and member, the store's revision.
  EtcdClient::ResponseHeader lh;
  auto members = c->MemberList(&lh);
  auto range = c->Range("a");
  auto st = c->EndpointStatus();
  for (const EtcdClient::ResponseHeader* x : {&lh, &range.header, &st.header}) {
    EXPECT_EQ(x->cluster_id, h.header.cluster_id);
    EXPECT_EQ(x->member_id, members.at(0).id);
    EXPECT_GT(x->raft_term, 0u);
  }
  EXPECT_EQ(range.header.revision, 4);
  EXPECT_EQ(st.header.revision, 4);
  // Unknown member IDs: etcd's NotFound, nothing changed.
  ExpectError([&] { c->MemberRemove(0x1234abcd); }, ErrorCode::kNotFound, "etcdserver: member not found");
  ExpectError([&] { c->MemberUpdate(0x1234abcd, {"http://127.0.0.1:1"}); }, ErrorCode::kNotFound,
              "etcdserver: member not found");
  ExpectError([&] { c->MemberPromote(0x1234abcd); }, ErrorCode::kNotFound, "etcdserver: member not found");
  // A learner: added, its peer URL updated, removed; each response lists the members.
  std::vector<EtcdClient::MemberInfo> after;
  EtcdClient::ResponseHeader ah;
  auto added = c->MemberAdd({"http://127.0.0.1:1"}, /*is_learner=*/true, &after, &ah);
  EXPECT_TRUE(added.is_learner);
  EXPECT_EQ(after.size(), 2u);
  EXPECT_EQ(ah.cluster_id, h.header.cluster_id);
  c->MemberUpdate(added.id, {"http://127.0.0.1:2"}, &after);
  ASSERT_EQ(after.size(), 2u);
  bool updated = false;
  for (const auto& m : after) updated = updated || (m.id == added.id && m.peer_urls == std::vector<std::string>{"http://127.0.0.1:2"});
  EXPECT_TRUE(updated);
  ExpectError([&] { c->MemberPromote(added.id); }, ErrorCode::kInvalidArgument, "can only promote a learner member");
  c->MemberRemove(added.id, &after);
  EXPECT_EQ(after.size(), 1u);
  // The last member cannot be removed (etcd 3.4 sends this refusal without a gRPC code:
  // UNKNOWN, which the client maps to kUnavailable; `member remove` exits 1 either way).
  ExpectError([&] { c->MemberRemove(members.at(0).id); }, ErrorCode::kUnavailable,
              "re-configuration failed due to not enough started members");
  EXPECT_EQ(c->MemberList().size(), 1u);
  // --debug lines: the endpoint dialled and chosen, TLS off, each RPC with its time.
  ASSERT_GE(debug.size(), 3u);
  EXPECT_NE(debug[0].find("dialing " + server.client_url()), std::string::npos) << debug[0];
  EXPECT_NE(debug[0].find("TLS off"), std::string::npos) << debug[0];
  EXPECT_NE(debug[1].find("using this endpoint"), std::string::npos) << debug[1];
  bool saw_hashkv = false;
  for (const auto& l : debug) saw_hashkv = saw_hashkv || l.find("Maintenance.HashKV to " + server.client_url() + ": OK in ") == 0;
  EXPECT_TRUE(saw_hashkv);
}

TEST(EtcdClientTest, HealthLikeEtcdctl) {
  EtcdServer server;
  auto c = EtcdClient::Connect(server.client_config());
  auto took = c->Health();
  EXPECT_GT(took.count(), 0);
  EXPECT_LT(took, std::chrono::seconds(5));
  ExpectEtcdctlOk(server.etcdctl({"endpoint", "health"}));
}

TEST(EtcdClientTest, TlsWithClientCert) {
  EtcdServer server(TlsOptions());
  EXPECT_EQ(server.client_url().rfind("https://127.0.0.1:", 0), 0u);
  auto c = EtcdClient::Connect(server.client_config());
  c->Put("tls", "yes");
  EXPECT_EQ(c->Range("tls").kvs.at(0).value, "yes");
  EXPECT_GT(SnapshotBytes(*c).size(), 32u);
  c->Health();

  // "localhost" is in the server cert's SANs too; scheme-less endpoints use TLS when
  // cert flags are given (etcdctl's rule).
  auto cfg = server.client_config();
  cfg.endpoints = {"localhost:" + std::to_string(server.client_port())};
  EXPECT_EQ(EtcdClient::Connect(cfg)->Range("tls").kvs.at(0).value, "yes");
}

TEST(EtcdClientTest, InsecureSkipTlsVerify) {
  EtcdServer server(TlsOptions());
  auto cfg = server.client_config();
  cfg.cacert = server.certs().other_ca;  // would fail verification if it were checked
  cfg.insecure_skip_tls_verify = true;
  auto c = EtcdClient::Connect(cfg);
  c->Put("k", "v");
  EXPECT_EQ(c->Range("k").kvs.at(0).value, "v");
  cfg.cacert.clear();  // system roots, still skipped
  EXPECT_EQ(EtcdClient::Connect(cfg)->Range("k").kvs.at(0).value, "v");
}

TEST(EtcdClientTest, FailoverToSecondEndpoint) {
  EtcdServer server;
  auto cfg = server.client_config();
  const std::string dead = "http://127.0.0.1:" + std::to_string(testutil::FreePort());
  cfg.endpoints = {dead, server.client_url()};
  auto c = EtcdClient::Connect(cfg);
  EXPECT_EQ(c->endpoint(), server.client_url());
  c->Put("k", "v");
}

TEST(EtcdClientTest, ThreeMemberClusterAndFailover) {
  auto members = EtcdServer::StartNewCluster(3);
  ASSERT_EQ(members.size(), 3u);
  ClientConfig cfg;
  for (auto& m : members) cfg.endpoints.push_back(m->client_url());
  auto c = EtcdClient::Connect(cfg);
  auto list = c->MemberList();
  ASSERT_EQ(list.size(), 3u);
  c->Put("k", "v");
  members[0]->Stop();
  auto c2 = EtcdClient::Connect(cfg);
  EXPECT_EQ(c2->endpoint(), members[1]->client_url());
  EXPECT_EQ(c2->Range("k").kvs.at(0).value, "v");
  c2->Health();  // 2 of 3 still have quorum

  // 1 of 3: connecting works, the linearizable health read cannot commit.
  members[1]->Stop();
  cfg.command_timeout = std::chrono::milliseconds(1000);
  auto c3 = EtcdClient::Connect(cfg);
  EXPECT_EQ(c3->endpoint(), members[2]->client_url());
  ExpectError([&] { c3->Health(); }, ErrorCode::kUnavailable,
              members[2]->client_url() + " is unhealthy: failed to commit proposal: ");
}

TEST(EtcdClientTest, HealthReportsNoSpaceAlarm) {
  EtcdServerOptions o;
  o.extra_flags = {"--quota-backend-bytes=1048576"};
  EtcdServer server(o);
  auto c = EtcdClient::Connect(server.client_config());
  c->Health();
  const std::string big(200 * 1024, 'z');
  bool full = false;
  for (int i = 0; i < 50 && !full; ++i) {
    // etcd's quota check reads the db size recorded at the last batch commit (every
    // 100 ms); writing faster than that can overshoot the quota unnoticed.
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    try {
      c->Put("big" + std::to_string(i), big);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("database space exceeded"), std::string::npos)
          << e.what();
      full = true;
    }
  }
  ASSERT_TRUE(full) << "db_size " << c->EndpointStatus().db_size << "\n" << server.LogTail(5);
  ExpectError([&] { c->Health(); }, ErrorCode::kUnavailable,
              server.client_url() + " is unhealthy: Active Alarm(s): NOSPACE");
}

TEST(EtcdClientTest, UserOnServerWithoutAuthIsIgnored) {
  EtcdServer server;
  auto cfg = server.client_config();
  cfg.user = "root";
  cfg.password = "whatever";
  EtcdClient::Connect(cfg)->Put("k", "v");  // etcdctl also proceeds without a token
}

// ---- the harness itself: members started from restored data dirs ----

void Restore(const std::string& snapshot, const std::string& data_dir, const std::string& name,
             int peer_port, const std::string& initial_cluster) {
  ExpectEtcdctlOk(testutil::RunEtcdctl(
      ClientConfig{}, {"snapshot", "restore", snapshot, "--name", name, "--data-dir", data_dir,
                       "--initial-cluster", initial_cluster, "--initial-cluster-token", "restored",
                       "--initial-advertise-peer-urls",
                       "http://127.0.0.1:" + std::to_string(peer_port)}));
}

std::string SaveSnapshotWithKeys(const testutil::TempDir& dir) {
  EtcdServer source;
  auto c = EtcdClient::Connect(source.client_config());
  c->Put("restored/a", "1");
  c->Put("restored/b", "2");
  const std::string path = dir.Sub("snap.db");
  std::string bytes = SnapshotBytes(*c);
  testutil::WriteFile(path, bytes);
  return path;
}

TEST(EtcdHarnessTest, StartsMemberFromRestoredDataDirWithFixedPeerPort) {
  testutil::TempDir dir;
  const std::string snap = SaveSnapshotWithKeys(dir);
  const int peer = testutil::FreePort();
  const std::string initial = "solo=http://127.0.0.1:" + std::to_string(peer);
  Restore(snap, dir.Sub("solo.etcd"), "solo", peer, initial);

  EtcdServerOptions o;
  o.name = "solo";
  o.data_dir = dir.Sub("solo.etcd");
  o.peer_port = peer;
  o.initial_cluster = initial;
  EtcdServer server(o);
  EXPECT_EQ(server.peer_url(), "http://127.0.0.1:" + std::to_string(peer));
  auto c = EtcdClient::Connect(server.client_config());
  EXPECT_EQ(c->Range("restored/", "restored0").kvs.size(), 2u);
  auto members = c->MemberList();
  ASSERT_EQ(members.size(), 1u);
  EXPECT_EQ(members[0].peer_urls, std::vector<std::string>{server.peer_url()});
}

TEST(EtcdHarnessTest, StartsRestoredThreeMemberCluster) {
  testutil::TempDir dir;
  const std::string snap = SaveSnapshotWithKeys(dir);
  std::vector<int> peers = {testutil::FreePort(), testutil::FreePort(), testutil::FreePort()};
  std::string initial;
  for (int i = 0; i < 3; ++i) {
    initial += (i ? "," : "") + std::string("r") + std::to_string(i) +
               "=http://127.0.0.1:" + std::to_string(peers[static_cast<size_t>(i)]);
  }
  std::vector<EtcdServerOptions> opts;
  for (int i = 0; i < 3; ++i) {
    const std::string name = "r" + std::to_string(i);
    Restore(snap, dir.Sub(name + ".etcd"), name, peers[static_cast<size_t>(i)], initial);
    EtcdServerOptions o;
    o.name = name;
    o.data_dir = dir.Sub(name + ".etcd");
    o.peer_port = peers[static_cast<size_t>(i)];
    o.initial_cluster = initial;
    opts.push_back(o);
  }
  auto members = EtcdServer::StartCluster(opts);
  ClientConfig cfg;
  for (auto& m : members) cfg.endpoints.push_back(m->client_url());
  auto c = EtcdClient::Connect(cfg);
  EXPECT_EQ(c->MemberList().size(), 3u);
  EXPECT_EQ(c->Range("restored/", "restored0").kvs.size(), 2u);
  auto r = members[2]->etcdctl({"get", "restored/b", "--print-value-only"});
  ExpectEtcdctlOk(r);
  EXPECT_EQ(r.out, "2\n");
}

TEST(EtcdHarnessTest, TlsClusterSharesPki) {
  auto members = EtcdServer::StartNewCluster(3, /*tls=*/true);
  EXPECT_EQ(members[0]->certs().ca, members[2]->certs().ca);
  auto cfg = members[0]->client_config();
  cfg.endpoints.clear();
  for (auto& m : members) cfg.endpoints.push_back(m->client_url());
  EXPECT_EQ(EtcdClient::Connect(cfg)->MemberList().size(), 3u);
}

// ---- errors ----

TEST(EtcdClientErrorTest, UnreachableEndpointSaysConnectionRefused) {
  ClientConfig cfg;
  const std::string a = "http://127.0.0.1:" + std::to_string(testutil::FreePort());
  const std::string b = "127.0.0.1:" + std::to_string(testutil::FreePort());
  cfg.endpoints = {a, b};
  auto msg = ExpectError([&] { EtcdClient::Connect(cfg); }, ErrorCode::kUnavailable,
                         a + ": connection refused; " + b + ": connection refused");
  EXPECT_EQ(msg, a + ": connection refused; " + b + ": connection refused");
}

TEST(EtcdClientErrorTest, SilentServerIsDialTimeout) {
  // A socket that listens but never answers: TCP connects, TLS never completes.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ClientConfig cfg;
  cfg.endpoints = {"https://127.0.0.1:" + std::to_string(ntohs(a.sin_port))};
  cfg.dial_timeout = std::chrono::milliseconds(500);
  const auto start = std::chrono::steady_clock::now();
  ExpectError([&] { EtcdClient::Connect(cfg); }, ErrorCode::kUnavailable, "timeout");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
  ::close(fd);
}

TEST(EtcdClientErrorTest, WrongCaSaysCertificateVerifyFailed) {
  EtcdServer server(TlsOptions());
  auto cfg = server.client_config();
  cfg.cacert = server.certs().other_ca;
  ExpectError([&] { EtcdClient::Connect(cfg); }, ErrorCode::kUnavailable,
              server.client_url() + ": TLS handshake failed: certificate verify failed (");
}

TEST(EtcdClientErrorTest, MissingClientCertOnClientCertAuthServer) {
  EtcdServer server(TlsOptions());
  auto cfg = server.client_config();
  cfg.cert.clear();
  cfg.key.clear();
  ExpectError([&] { EtcdClient::Connect(cfg); }, ErrorCode::kUnauthenticated,
              "server requires a client certificate");
}

TEST(EtcdClientErrorTest, ClientCertFromAnotherCaIsRejected) {
  EtcdServer server(TlsOptions());
  testutil::TempDir dir;
  auto foreign = testutil::MakeTestCerts(dir.Sub("pki"));
  auto cfg = server.client_config();
  cfg.cert = foreign.client_cert;
  cfg.key = foreign.client_key;
  ExpectError([&] { EtcdClient::Connect(cfg); }, ErrorCode::kUnauthenticated,
              "TLS handshake failed: server rejected the client certificate (");
}

TEST(EtcdClientErrorTest, HttpsToPlainServer) {
  EtcdServer server;
  ClientConfig cfg;
  cfg.endpoints = {"https://127.0.0.1:" + std::to_string(server.client_port())};
  ExpectError([&] { EtcdClient::Connect(cfg); }, ErrorCode::kUnavailable,
              "TLS handshake failed: ");
}

TEST(EtcdClientErrorTest, PlainHttpToTlsServer) {
  EtcdServer server(TlsOptions());
  ClientConfig cfg;
  cfg.endpoints = {"http://127.0.0.1:" + std::to_string(server.client_port())};
  ExpectError([&] { EtcdClient::Connect(cfg); }, ErrorCode::kUnavailable, "https://");
}

TEST(EtcdClientErrorTest, UnreadableOrBadCertFiles) {
  testutil::TempDir dir;
  auto certs = testutil::MakeTestCerts(dir.Sub("pki"));
  ClientConfig cfg;
  cfg.endpoints = {"https://127.0.0.1:1"};  // never dialled: files are checked first
  cfg.cacert = certs.ca;
  cfg.cert = dir.Sub("missing.pem");
  cfg.key = certs.client_key;
  ExpectError([&] { EtcdClient::Connect(cfg); }, ErrorCode::kInvalidArgument,
              "client certificate file: open " + dir.Sub("missing.pem"));

  testutil::WriteFile(dir.Sub("garbage.pem"), "not a certificate\n");
  cfg.cert = certs.client_cert;
  cfg.cacert = dir.Sub("garbage.pem");
  ExpectError([&] { EtcdClient::Connect(cfg); }, ErrorCode::kInvalidArgument,
              "CA certificate file " + dir.Sub("garbage.pem") + ": no PEM certificate found");

  cfg.cacert = certs.ca;
  cfg.key = certs.server_key;
  ExpectError([&] { EtcdClient::Connect(cfg); }, ErrorCode::kInvalidArgument,
              "does not match client certificate file");

  cfg.key.clear();
  ExpectError([&] { EtcdClient::Connect(cfg); }, ErrorCode::kInvalidArgument, "without a key");
}

TEST(EtcdClientAuthTest, PasswordAuthAndRoot) {
  EtcdServer server;
  ExpectEtcdctlOk(server.etcdctl({"user", "add", "root:rootpw"}));
  ExpectEtcdctlOk(server.etcdctl({"auth", "enable"}));
  auto root_cfg = server.client_config();
  root_cfg.user = "root";
  root_cfg.password = "rootpw";
  auto admin = testutil::RunEtcdctl(root_cfg, {"user", "add", "alice:alicepw"});
  ExpectEtcdctlOk(admin);
  ExpectEtcdctlOk(testutil::RunEtcdctl(root_cfg, {"role", "add", "app"}));
  ExpectEtcdctlOk(
      testutil::RunEtcdctl(root_cfg, {"role", "grant-permission", "app", "readwrite", "/app/", "--prefix"}));
  ExpectEtcdctlOk(testutil::RunEtcdctl(root_cfg, {"user", "grant-role", "alice", "app"}));

  // Wrong password: etcd's text, kUnauthenticated, no retry on other endpoints.
  auto bad = root_cfg;
  bad.password = "nope";
  ExpectError([&] { EtcdClient::Connect(bad); }, ErrorCode::kUnauthenticated,
              "authentication failed, invalid user ID or password");

  // Right password: everything works, including the root-only snapshot.
  auto root = EtcdClient::Connect(root_cfg);
  root->Put("/app/x", "1");
  EXPECT_EQ(root->Range("/app/x").kvs.at(0).value, "1");
  EXPECT_GT(SnapshotBytes(*root).size(), 32u);
  root->Health();

  // "user:password" in the user field, like etcdctl --user.
  ClientConfig combined = server.client_config();
  combined.user = "root:rootpw";
  EXPECT_EQ(EtcdClient::Connect(combined)->Range("/app/x").kvs.at(0).value, "1");

  // A non-root user: may use its prefix, may not snapshot.
  auto alice_cfg = server.client_config();
  alice_cfg.user = "alice";
  alice_cfg.password = "alicepw";
  auto alice = EtcdClient::Connect(alice_cfg);
  alice->Put("/app/y", "2");
  ExpectError([&] { alice->Put("/other", "x"); }, ErrorCode::kPermissionDenied,
              "permission denied");
  ExpectError([&] { SnapshotBytes(*alice); }, ErrorCode::kPermissionDenied, "permission denied");
  alice->Health();  // permission denied on "health" still counts as healthy

  // No credentials at all on an auth-enabled server.
  auto anon = EtcdClient::Connect(server.client_config());
  ExpectError([&] { anon->Range("/app/x"); }, ErrorCode::kInvalidArgument, "user name is empty");
}

TEST(EtcdClientAuthTest, ClientCertCnRootIsRootUnderAuth) {
  EtcdServer server(TlsOptions());
  ExpectEtcdctlOk(server.etcdctl({"user", "add", "root:rootpw"}));
  ExpectEtcdctlOk(server.etcdctl({"auth", "enable"}));
  auto c = EtcdClient::Connect(server.client_config());  // CN=root, no password
  c->Put("k", "v");
  EXPECT_GT(SnapshotBytes(*c).size(), 32u);
}

TEST(EtcdClientTest, CommandTimeoutBoundsWholeSnapshotStream) {
  EtcdServer server;
  auto cfg = server.client_config();
  cfg.command_timeout = std::chrono::milliseconds(300);
  auto c = EtcdClient::Connect(cfg);
  // The deadline covers the stream, not each message: a slow consumer runs out of time.
  ExpectError(
      [&] {
        c->Snapshot([](const uint8_t*, size_t) {
          std::this_thread::sleep_for(std::chrono::milliseconds(400));
        });
      },
      ErrorCode::kUnavailable, "context deadline exceeded");
}

TEST(EtcdClientTest, CommandTimeoutBoundsRpc) {
  EtcdServer server;
  auto cfg = server.client_config();
  cfg.command_timeout = std::chrono::milliseconds(3000);
  auto c = EtcdClient::Connect(cfg);
  c->Put("k", "v");
  server.Kill();
  const auto start = std::chrono::steady_clock::now();
  try {
    c->Range("k");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnavailable) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

}  // namespace
}  // namespace etcdsafe::client
