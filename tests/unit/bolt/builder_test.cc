#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "base/checksum.h"
#include "base/error.h"
#include "bolt/builder.h"
#include "bolt/inspect.h"
#include "bolt/reader.h"
#include "test_util.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::bolt {
namespace {

using testing::Content;
using testing::RandomBytes;
using testing::RevKey;

const std::string kData = ETCDSAFE_TESTDATA;

Status EtcdctlStatus(const std::string& path) {
  std::string out;
  int rc = testutil::RunCommand("ETCDCTL_API=3 /usr/bin/etcdctl snapshot status '" + path +
                                    "' -w json 2>/dev/null",
                                &out);
  EXPECT_EQ(rc, 0) << out;
  auto j = nlohmann::json::parse(out);
  Status s;
  s.hash = j["hash"].get<uint32_t>();
  s.revision = j["revision"].get<int64_t>();
  s.total_key = j["totalKey"].get<int64_t>();
  s.total_size = j["totalSize"].get<int64_t>();
  return s;
}

void ExpectSameStatus(const Status& a, const Status& b) {
  EXPECT_EQ(a.hash, b.hash);
  EXPECT_EQ(a.revision, b.revision);
  EXPECT_EQ(a.total_key, b.total_key);
  EXPECT_EQ(a.total_size, b.total_size);
}

// An etcd-shaped database: the ten 3.4 buckets, a `key` bucket of `nkeys` revisions with
// values from 0 bytes to (rarely) 100 KB.
Content RandomEtcdContent(uint64_t seed, int nkeys) {
  std::mt19937_64 rng(seed);
  Content c;
  for (const char* b : {"alarm", "auth", "authRoles", "authUsers", "cluster", "key", "lease",
                        "members", "members_removed", "meta"}) {
    c[b];
  }
  c["cluster"]["clusterVersion"] = "3.4.0";
  c["auth"]["authEnabled"] = std::string(1, '\0');
  std::string ci;
  AppendBE64(&ci, 12345);
  c["meta"]["consistent_index"] = ci;
  c["members"]["8e9e05c52164694d"] = R"({"id":10276657743932975437,"peerURLs":["http://localhost:2380"],"name":"default","clientURLs":["http://localhost:2379"]})";
  uint64_t rev = 2;
  for (int i = 0; i < nkeys; i++) {
    rev += 1 + rng() % 3;
    size_t len;
    switch (rng() % 20) {
      case 0: len = 0; break;
      case 1: len = 100 * 1000; break;
      case 2: len = 3000 + rng() % 6000; break;
      default: len = rng() % 400;
    }
    std::string key = RevKey(rev, rng() % 2);
    if (rng() % 10 == 0) key.push_back('t');
    c["key"][key] = RandomBytes(rng, len);
  }
  for (int i = 0; i < nkeys / 50; i++) {
    std::string id;
    AppendBE64(&id, rng());
    c["lease"][id] = RandomBytes(rng, 10 + rng() % 20);
  }
  return c;
}

class BuilderPropertyTest : public ::testing::TestWithParam<std::tuple<uint64_t, int, bool>> {};

TEST_P(BuilderPropertyTest, InspectEqualsEtcdctlAndContentRoundTrips) {
  auto [seed, nkeys, inl] = GetParam();
  testutil::TempDir dir;
  std::string path = dir.Sub("built.db");
  Content c = RandomEtcdContent(seed, nkeys);
  BuilderOptions opts;
  opts.inline_small_buckets = inl;
  opts.txid = 7;
  testing::WriteContent(c, path, opts);

  InspectResult r = Inspect(path);
  EXPECT_EQ(r.problem_count, 0u) << r.problems.front();
  Status want = testing::ExpectedStatus(c);
  EXPECT_EQ(r.status.hash, want.hash);
  EXPECT_EQ(r.status.revision, want.revision);
  EXPECT_EQ(r.status.total_key, want.total_key);
  ExpectSameStatus(r.status, EtcdctlStatus(path));
  EXPECT_EQ(r.meta.txid, 7u);
  EXPECT_EQ(r.meta.freelist, kPgidNoFreelist);
  EXPECT_EQ(static_cast<uint64_t>(r.status.total_size), testutil::ReadFile(path).size());

  EXPECT_EQ(testing::ReadContent(path), c);

  Reader rd = Reader::Open(path);
  if (c["key"].empty()) {
    EXPECT_EQ(rd.LastKey("key"), std::nullopt);
  } else {
    EXPECT_EQ(rd.LastKey("key"), c["key"].rbegin()->first);
  }
  EXPECT_EQ(rd.LastKey("alarm"), std::nullopt);
  EXPECT_EQ(rd.LastKey("nope"), std::nullopt);
  std::string file = testutil::ReadFile(path);
  int checked = 0;
  for (const auto& [k, v] : c["key"]) {
    if (checked++ % 97 != 0) continue;
    EXPECT_EQ(rd.Get("key", k), v);
    auto off = rd.ValueOffset("key", k);
    ASSERT_TRUE(off.has_value());
    EXPECT_EQ(file.substr(*off, v.size()), v);
  }
  auto off = rd.ValueOffset("meta", "consistent_index");
  ASSERT_TRUE(off.has_value());
  EXPECT_EQ(file.substr(*off, 8), c["meta"]["consistent_index"]);
  EXPECT_EQ(rd.Get("key", "nokey"), std::nullopt);
  EXPECT_EQ(rd.Get("nobucket", "x"), std::nullopt);
}

INSTANTIATE_TEST_SUITE_P(Shapes, BuilderPropertyTest,
                         ::testing::Values(std::make_tuple(1, 0, true), std::make_tuple(2, 3, true),
                                           std::make_tuple(3, 200, true),
                                           std::make_tuple(4, 6000, true),
                                           std::make_tuple(5, 6000, false),
                                           std::make_tuple(6, 30000, true)));

TEST(BuilderTest, EdgeShapesMatchEtcdctl) {
  testutil::TempDir dir;
  std::mt19937_64 rng(99);
  std::vector<Content> cases;
  cases.push_back({});                                   // no buckets at all
  cases.push_back({{"key", {}}});                        // one empty bucket
  cases.push_back({{"key", {{RevKey(5, 0), std::string(5 << 20, 'v')}}}});  // one 5 MB value
  Content big_keys;
  for (int i = 0; i < 20; i++) big_keys["b"][std::string(kMaxKeySize - i, char('a' + i))] = "v";
  cases.push_back(big_keys);
  Content tiny;  // many tiny elements per page, deep trees
  for (int i = 0; i < 100000; i++) tiny["t"][RevKey(i + 1, 0).substr(4)] = "";
  cases.push_back(tiny);
  Content many_buckets;  // a root bucket spanning several pages
  for (int i = 0; i < 3000; i++) many_buckets["bucket" + std::to_string(100000 + i)]["k"] = "v";
  cases.push_back(many_buckets);
  for (size_t i = 0; i < cases.size(); i++) {
    SCOPED_TRACE("case " + std::to_string(i));
    std::string path = dir.Sub("edge" + std::to_string(i) + ".db");
    testing::WriteContent(cases[i], path);
    InspectResult r = Inspect(path);
    EXPECT_EQ(r.problem_count, 0u) << r.problems.front();
    ExpectSameStatus(r.status, EtcdctlStatus(path));
    EXPECT_EQ(testing::ReadContent(path), cases[i]);
  }
}

TEST(BuilderTest, RejectsBadOrder) {
  testutil::TempDir dir;
  auto expect_invalid = [](auto fn) {
    try {
      fn();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    }
  };
  expect_invalid([&] {
    Builder b(dir.Sub("a.db"));
    b.BeginBucket("k");
    b.Put("b", "1");
    b.Put("a", "1");
  });
  expect_invalid([&] {
    Builder b(dir.Sub("b.db"));
    b.BeginBucket("k");
    b.Put("a", "1");
    b.Put("a", "2");
  });
  expect_invalid([&] {
    Builder b(dir.Sub("c.db"));
    b.BeginBucket("k");
    b.Put("", "1");
  });
  expect_invalid([&] {
    Builder b(dir.Sub("d.db"));
    b.BeginBucket("k");
    b.EndBucket();
    b.BeginBucket("a");
  });
  expect_invalid([&] {
    Builder b(dir.Sub("e.db"));
    b.Put("a", "1");
  });
  expect_invalid([&] {
    Builder b(dir.Sub("f.db"));
    b.BeginBucket("");
  });
}

TEST(RewriteTest, NoMutationsKeepsHash) {
  testutil::TempDir dir;
  for (const char* name : {"small", "medium"}) {
    std::string src = kData + "/" + std::string(name) + ".db";
    std::string dst = dir.Sub(std::string(name) + ".rewritten.db");
    Rewrite(src, dst, {});
    InspectResult a = Inspect(src);
    InspectResult b = Inspect(dst);
    EXPECT_EQ(b.problem_count, 0u);
    EXPECT_EQ(a.status.hash, b.status.hash);
    EXPECT_EQ(a.status.revision, b.status.revision);
    EXPECT_EQ(a.status.total_key, b.status.total_key);
    ExpectSameStatus(b.status, EtcdctlStatus(dst));
    EXPECT_EQ(testing::ReadContent(src), testing::ReadContent(dst));
  }
}

TEST(RewriteTest, AppliesMutations) {
  testutil::TempDir dir;
  std::string src = kData + "/medium.db";
  std::string dst = dir.Sub("m.db");
  Content want = testing::ReadContent(src);
  std::string last = want["key"].rbegin()->first;
  std::string bump = RevKey(LoadBE64(AsBytes(last).data()) + 1000, 0);
  std::string first = want["key"].begin()->first;
  std::string mid = std::next(want["key"].begin(), 500)->first;
  std::vector<Mutation> muts = {
      Mutation::Put("meta", "scheduledCompactRev", bump),
      Mutation::Put("key", bump, ""),
      Mutation::Delete("key", first),
      Mutation::Put("key", mid, "replaced"),
      Mutation::Delete("key", "absent"),
      Mutation::CreateBucket("zzz_new"),
      Mutation::CreateBucket("key"),
      Mutation::Put("aaa_new", "k", "v"),
      Mutation::Delete("no_such_bucket", "k"),
  };
  Rewrite(src, dst, muts);
  want["meta"]["scheduledCompactRev"] = bump;
  want["key"][bump] = "";
  want["key"].erase(first);
  want["key"][mid] = "replaced";
  want["zzz_new"];
  want["aaa_new"]["k"] = "v";
  EXPECT_EQ(testing::ReadContent(dst), want);
  InspectResult r = Inspect(dst);
  EXPECT_EQ(r.problem_count, 0u);
  EXPECT_EQ(r.status.revision, static_cast<int64_t>(LoadBE64(AsBytes(bump).data())));
  ExpectSameStatus(r.status, EtcdctlStatus(dst));

  try {
    Rewrite(src, dir.Sub("x.db"), {Mutation::Put("key", "a", "1"), Mutation::Delete("key", "a")});
    ADD_FAILURE() << "duplicate mutation accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace etcdsafe::bolt
