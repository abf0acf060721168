// k8s/diff and k8s/export's ObjectSelection over synthetic snapshot files (bbolt written by
// bolt::Builder with etcd's revision keys): thousands of keys so both readers' queues fill
// and drain, a change of every kind at known keys, uid vs create-revision recreation, a
// --prefix, an exception from the sink (both reader threads stop), and which keys the
// selections pick.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

#include "base/error.h"
#include "bolt/builder.h"
#include "k8s/diff.h"
#include "k8s/envelope.h"
#include "k8s/export.h"
#include "k8s/wire.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::k8s {
namespace {

struct Obj {
  std::string value;
  int64_t create = 0, mod = 0, version = 1, lease = 0;
};

std::string Pb(const std::string& key, const Obj& o) {
  std::string out;
  AppendBytesField(&out, 1, key);
  AppendVarintField(&out, 2, uint64_t(o.create));
  AppendVarintField(&out, 3, uint64_t(o.mod));
  AppendVarintField(&out, 4, uint64_t(o.version));
  if (!o.value.empty()) AppendBytesField(&out, 5, o.value);
  if (o.lease != 0) AppendVarintField(&out, 6, uint64_t(o.lease));
  return out;
}

// A snapshot holding exactly `objs` as live keys (one revision per key, in map order).
void WriteDb(const std::string& path, const std::map<std::string, Obj>& objs) {
  std::map<std::string, std::string> bucket;
  int64_t rev = 2;
  for (const auto& [k, o] : objs) {
    Obj c = o;
    if (c.mod == 0) c.mod = rev;
    if (c.create == 0) c.create = c.mod;
    bucket[ops::RevisionKeyBytes(std::max(c.mod, rev), 0)] = Pb(k, c);
    rev = std::max(c.mod, rev) + 1;
  }
  bolt::Builder b(path);
  b.BeginBucket("key");
  for (const auto& [k, v] : bucket) b.Put(k, v);
  b.EndBucket();
  b.Finish();
}

std::string Pod(const std::string& ns, const std::string& name, const std::string& uid, int64_t gen,
                const std::string& spec = "spec") {
  std::string meta;
  AppendBytesField(&meta, 1, name);
  AppendBytesField(&meta, 3, ns);
  AppendBytesField(&meta, 5, uid);
  AppendVarintField(&meta, 7, uint64_t(gen));
  std::string obj;
  AppendBytesField(&obj, 1, meta);
  AppendBytesField(&obj, 2, spec);
  std::string tm;
  AppendBytesField(&tm, 1, "v1");
  AppendBytesField(&tm, 2, "Pod");
  std::string v(kProtobufMagic);
  AppendBytesField(&v, 1, tm);
  AppendBytesField(&v, 2, obj);
  return v;
}

class DiffTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // 3000 pods in three namespaces, a few other keys.
    for (int i = 0; i < 3000; i++) {
      const std::string ns = "ns-" + std::to_string(i % 3);
      const std::string name = "p" + std::to_string(i);
      a_["/registry/pods/" + ns + "/" + name] = {Pod(ns, name, "uid-" + std::to_string(i), 1)};
    }
    a_["/registry/secrets/ns-0/enc"] = {std::string("k8s:enc:aescbc:v1:key1:") + std::string(40, 'x'), 10000};
    a_["/registry/ranges/serviceips"] = {"range-a"};
    a_["/other/key"] = {"same"};
    b_ = a_;
    // Known changes.
    b_.erase("/registry/pods/ns-1/p1");                                          // removed
    b_.erase("/registry/pods/ns-2/p2");                                          // removed
    b_["/registry/pods/ns-0/p3000"] = {Pod("ns-0", "p3000", "uid-new", 1)};      // added
    b_["/registry/configmaps/ns-2/cfg"] = {"{\"metadata\":{\"name\":\"cfg\",\"namespace\":\"ns-2\",\"uid\":\"c\"}}"};
    b_["/registry/pods/ns-0/p300"] = {Pod("ns-0", "p300", "uid-300", 2, "new spec")};  // changed, gen 1 -> 2
    b_["/registry/pods/ns-1/p100"] = {Pod("ns-1", "p100", "uid-100-again", 1)};      // recreated (uid)
    // Encrypted: no uid, so the create revision decides.
    b_["/registry/secrets/ns-0/enc"] = {std::string("k8s:enc:aescbc:v1:key1:") + std::string(40, 'y'), 20000};
    b_["/registry/ranges/serviceips"] = {"range-b"};                            // changed non-object
    WriteDb(dir_.Sub("a.db"), a_);
    WriteDb(dir_.Sub("b.db"), b_);
  }

  testutil::TempDir dir_;
  std::map<std::string, Obj> a_, b_;
};

TEST_F(DiffTest, ReportsExactlyTheKnownChanges) {
  ops::SnapshotKv a = ops::SnapshotKv::Open(dir_.Sub("a.db"));
  ops::SnapshotKv b = ops::SnapshotKv::Open(dir_.Sub("b.db"));
  std::map<std::string, DiffEntry> got;
  std::string last;
  const DiffSummary s = DiffSnapshots(a, b, {}, [&](const DiffEntry& e) {
    EXPECT_LT(last, e.key);  // key order
    last = e.key;
    got[e.key] = e;
  });
  std::map<std::string, std::string> changes;
  for (const auto& [k, e] : got) changes[k] = ChangeName(e.change);
  EXPECT_EQ(changes, (std::map<std::string, std::string>{
                         {"/registry/configmaps/ns-2/cfg", "added"},
                         {"/registry/pods/ns-0/p3000", "added"},
                         {"/registry/pods/ns-0/p300", "changed"},
                         {"/registry/pods/ns-1/p1", "removed"},
                         {"/registry/pods/ns-1/p100", "recreated"},
                         {"/registry/pods/ns-2/p2", "removed"},
                         {"/registry/ranges/serviceips", "changed"},
                         {"/registry/secrets/ns-0/enc", "recreated"},
                     }));
  EXPECT_EQ(got["/registry/pods/ns-0/p300"].a.generation, 1);
  EXPECT_EQ(got["/registry/pods/ns-0/p300"].b.generation, 2);
  EXPECT_EQ(got["/registry/pods/ns-1/p100"].a.uid, "uid-100");
  EXPECT_EQ(got["/registry/pods/ns-1/p100"].b.uid, "uid-100-again");
  EXPECT_EQ(got["/registry/pods/ns-1/p100"].resource, "pods");
  EXPECT_EQ(got["/registry/pods/ns-1/p100"].ns, "ns-1");
  EXPECT_EQ(got["/registry/ranges/serviceips"].key_kind, KeyKind::kNonObject);
  EXPECT_EQ(s.keys_a, int64_t(a_.size()));
  EXPECT_EQ(s.keys_b, int64_t(b_.size()));
  EXPECT_EQ(s.unchanged, int64_t(a_.size()) - 2 - 4);
  EXPECT_EQ(s.total.Total(), 8);
  EXPECT_EQ(s.objects.added, 2);
  EXPECT_EQ(s.objects.removed, 2);
  EXPECT_EQ(s.objects.changed, 1);
  EXPECT_EQ(s.objects.recreated, 2);
  EXPECT_EQ(s.by_resource.at("pods").removed, 2);
  EXPECT_EQ(s.by_resource.at("configmaps").added, 1);
  EXPECT_EQ(s.by_namespace.at("ns-1").recreated, 1);
  EXPECT_EQ(s.by_namespace.at("ns-1").removed, 1);
  EXPECT_EQ(s.by_namespace.at("ns-2").added, 1);
  EXPECT_EQ(DiffSummaryToJson(s)["objects"]["recreated"], 2);
  EXPECT_NE(DiffEntryToLine(got["/registry/pods/ns-0/p300"]).find("generation 1 -> 2"), std::string::npos);

  // The same files the other way round: added <-> removed.
  ops::SnapshotKv a2 = ops::SnapshotKv::Open(dir_.Sub("a.db"));
  ops::SnapshotKv b2 = ops::SnapshotKv::Open(dir_.Sub("b.db"));
  const DiffSummary r = DiffSnapshots(b2, a2, {}, [](const DiffEntry&) {});
  EXPECT_EQ(r.objects.added, 2);
  EXPECT_EQ(r.objects.removed, 2);
  EXPECT_EQ(r.objects.recreated, 2);
}

TEST_F(DiffTest, PrefixNarrows) {
  ops::SnapshotKv a = ops::SnapshotKv::Open(dir_.Sub("a.db"));
  ops::SnapshotKv b = ops::SnapshotKv::Open(dir_.Sub("b.db"));
  std::set<std::string> keys;
  DiffOptions o;
  o.key_prefix = "/registry/pods/ns-1/";
  const DiffSummary s = DiffSnapshots(a, b, o, [&](const DiffEntry& e) { keys.insert(e.key); });
  EXPECT_EQ(keys, (std::set<std::string>{"/registry/pods/ns-1/p1", "/registry/pods/ns-1/p100"}));
  EXPECT_EQ(s.keys_a, 1000);
  EXPECT_EQ(s.keys_b, 999);
}

TEST_F(DiffTest, SinkExceptionStopsBothReaders) {
  ops::SnapshotKv a = ops::SnapshotKv::Open(dir_.Sub("a.db"));
  ops::SnapshotKv b = ops::SnapshotKv::Open(dir_.Sub("b.db"));
  EXPECT_THROW(DiffSnapshots(a, b, {}, [](const DiffEntry&) { throw std::runtime_error("stop"); }),
               std::runtime_error);
}

TEST_F(DiffTest, CorruptSideIsDataLoss) {
  const std::string bad = dir_.Sub("bad.db");
  {
    bolt::Builder bld(bad);
    bld.BeginBucket("key");
    bld.Put(ops::RevisionKeyBytes(2, 0), std::string("\xff\xff\xff", 3));
    bld.EndBucket();
    bld.Finish();
  }
  ops::SnapshotKv a = ops::SnapshotKv::Open(dir_.Sub("a.db"));
  ops::SnapshotKv b = ops::SnapshotKv::Open(bad);
  try {
    DiffSnapshots(a, b, {}, [](const DiffEntry&) {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
  }
}

TEST(ObjectSelection, PicksByNamespacePrefixKeyAndResource) {
  auto match = [](const ObjectSelection& s, const std::string& k) { return s.Matches(k, ClassifyKey(k)); };
  ObjectSelection ns;
  ns.ns = "team-a";
  EXPECT_TRUE(match(ns, "/registry/pods/team-a/web"));
  EXPECT_TRUE(match(ns, "/registry/example.com/widgets/team-a/w1"));
  EXPECT_TRUE(match(ns, "/registry/services/specs/team-a/svc"));
  EXPECT_TRUE(match(ns, "/registry/namespaces/team-a"));
  EXPECT_FALSE(match(ns, "/registry/namespaces/team-b"));
  EXPECT_FALSE(match(ns, "/registry/pods/team-ab/web"));
  EXPECT_FALSE(match(ns, "/registry/minions/team-a"));
  EXPECT_FALSE(match(ns, "/registry/pods/team-a/x/y"));  // unknown shape
  EXPECT_EQ(ns.NamespaceKey(), "/registry/namespaces/team-a");
  ns.resource = "pods";
  EXPECT_TRUE(match(ns, "/registry/pods/team-a/web"));
  EXPECT_FALSE(match(ns, "/registry/namespaces/team-a"));
  EXPECT_FALSE(match(ns, "/registry/configmaps/team-a/c"));
  EXPECT_EQ(ns.NamespaceKey(), "");
  ns.resource = "widgets";
  EXPECT_TRUE(match(ns, "/registry/example.com/widgets/team-a/w1"));
  ns.resource = "example.com/widgets";
  EXPECT_TRUE(match(ns, "/registry/example.com/widgets/team-a/w1"));

  ObjectSelection p;
  p.key_prefix = "/registry/pods/team-a/";
  EXPECT_TRUE(match(p, "/registry/pods/team-a/web"));
  EXPECT_TRUE(match(p, "/registry/pods/team-a/x/y"));
  EXPECT_FALSE(match(p, "/registry/pods/team-b/web"));
  EXPECT_EQ(p.RangeBegin(), "/registry/pods/team-a/");
  EXPECT_EQ(p.RangeEnd(), "/registry/pods/team-a0");

  ObjectSelection k;
  k.key = "/registry/pods/team-a/web";
  EXPECT_TRUE(match(k, "/registry/pods/team-a/web"));
  EXPECT_FALSE(match(k, "/registry/pods/team-a/web2"));
  EXPECT_EQ(k.RangeEnd(), "");

  ObjectSelection all;
  EXPECT_TRUE(match(all, "/registry/pods/team-a/web"));
  EXPECT_FALSE(match(all, "/registry/ranges/serviceips"));
  EXPECT_FALSE(match(all, "/other"));
  EXPECT_EQ(PrefixRangeEnd(std::string("a\xff", 2)), "b");
}

}  // namespace
}  // namespace etcdsafe::k8s
