// A db written by Rewrite/Builder is accepted by a real etcd 3.4.23 server.
#include <gtest/gtest.h>

#include "bolt/builder.h"
#include "bolt/reader.h"
#include "test_util.h"
#include "testutil/etcd_server.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::bolt {
namespace {

int CountKeys(const testutil::EtcdServer& server, const std::string& prefix) {
  auto got = server.etcdctl({"get", prefix, "--prefix", "--keys-only"});
  EXPECT_EQ(got.exit_code, 0) << got.err;
  int n = 0;
  size_t pos = 0;
  while ((pos = got.out.find(prefix, pos)) != std::string::npos) {
    n++;
    pos += prefix.size();
  }
  return n;
}

TEST(EtcdAcceptTest, RewrittenSnapshotServesOldAndNewKeys) {
  testutil::TempDir dir;
  const std::string src = std::string(ETCDSAFE_TESTDATA) + "/medium.db";
  const std::string db = dir.Sub("rewritten.db");
  Reader r = Reader::Open(src);
  std::string last = *r.LastKey("key");
  uint64_t rev = LoadBE64(AsBytes(last).data()) + 1;
  // mvccpb.KeyValue{key="/bolt/new", create_revision=rev, mod_revision=rev, version=1,
  // value="hello"}.
  std::string kv = "\x0a\x09/bolt/new";
  kv += '\x10';
  AppendVarint(&kv, rev);
  kv += '\x18';
  AppendVarint(&kv, rev);
  kv += "\x20\x01\x2a\x05hello";
  Rewrite(src, db, {Mutation::Put("key", testing::RevKey(rev, 0), kv)});

  int peer = testutil::FreePort();
  std::string peer_url = "http://127.0.0.1:" + std::to_string(peer);
  std::string data = dir.Sub("data");
  std::string out;
  int rc = testutil::RunCommand("ETCDCTL_API=3 /usr/bin/etcdctl snapshot restore '" + db +
                                    "' --skip-hash-check --name n1 --data-dir '" + data +
                                    "' --initial-cluster n1=" + peer_url +
                                    " --initial-advertise-peer-urls " + peer_url,
                                &out);
  ASSERT_EQ(rc, 0) << out;

  testutil::EtcdServerOptions opts;
  opts.name = "n1";
  opts.data_dir = data;
  opts.peer_port = peer;
  opts.initial_cluster = "n1=" + peer_url;
  testutil::EtcdServer server(opts);
  auto got = server.etcdctl({"get", "/bolt/new", "--print-value-only"});
  EXPECT_EQ(got.exit_code, 0) << got.err;
  EXPECT_EQ(got.out, "hello\n");
  got = server.etcdctl({"get", "/registry/big/obj", "--print-value-only"});
  EXPECT_EQ(got.out, std::string(30000, 'y') + "\n");
  EXPECT_EQ(CountKeys(server, "/registry/pods/"), 1300);
  // The server accepts writes on top of our layout (bbolt rewrites our pages).
  for (int i = 0; i < 50; i++) {
    got = server.etcdctl({"put", "/bolt/w" + std::to_string(i), std::string(500, 'w')});
    ASSERT_EQ(got.exit_code, 0) << got.err;
  }
  EXPECT_EQ(CountKeys(server, "/bolt/w"), 50);
  server.Stop();
}

}  // namespace
}  // namespace etcdsafe::bolt
