// ops/live_keys: the live keys of synthetic snapshots with history (overwrites, deletes,
// re-creation, txn sub revisions) equal SnapshotKv::Range's answer at the current revision,
// for the whole key space and for prefix/single-key ranges, with everything in memory and
// with a buffer so small that dozens of sorted runs go to the temp file (and, with an
// unusable temp dir, stay in memory); summaries belong to the winning revision; corrupt
// entries are kDataLoss naming the entry.
#include "ops/live_keys.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "base/error.h"
#include "bolt/builder.h"
#include "etcdfmt/mvcc.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::ops {
namespace {

// etcd's own encoding of a KeyValue (fields 1..6, zero values left out).
std::string Pb(const KeyValue& kv) {
  return etcdfmt::EncodeKeyValue({kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease});
}

// A random etcd history over `nkeys` keys: puts (new or overwrite), deletes of live keys,
// a few multi-op txns (sub revisions), with etcd's create/version bookkeeping.
std::map<std::string, std::string> RandomHistory(uint64_t seed, int nkeys, int revisions) {
  std::mt19937_64 rng(seed);
  std::map<std::string, std::string> bucket;
  struct State {
    int64_t create = 0, version = 0;
  };
  std::map<std::string, State> live;
  for (int64_t rev = 2; rev < 2 + revisions; rev++) {
    const int ops = rng() % 10 == 0 ? 1 + int(rng() % 4) : 1;
    std::map<std::string, bool> touched;
    for (int64_t sub = 0; sub < ops; sub++) {
      std::string key = "/registry/pods/ns-" + std::to_string(rng() % 5) + "/p" + std::to_string(rng() % nkeys);
      if (touched.count(key)) continue;  // a txn touches a key once
      touched[key] = true;
      auto it = live.find(key);
      if (it != live.end() && rng() % 4 == 0) {
        bucket[RevisionKeyBytes(rev, sub) + "t"] = Pb(KeyValue{key, "", 0, 0, 0, 0});
        live.erase(it);
        continue;
      }
      State& st = live[key];
      if (st.create == 0) st.create = rev;
      st.version++;
      const std::string value = "v" + std::to_string(rev) + "." + std::to_string(sub) + std::string(rng() % 300, 'x');
      bucket[RevisionKeyBytes(rev, sub)] = Pb(KeyValue{key, value, st.create, rev, st.version, int64_t(rng() % 3)});
    }
  }
  return bucket;
}

void WriteDb(const std::string& path, const std::map<std::string, std::string>& bucket) {
  bolt::Builder b(path);
  b.BeginBucket("key");
  for (const auto& [k, v] : bucket) b.Put(k, v);
  b.EndBucket();
  b.Finish();
}

// "key value-summary create mod version lease size" per live key.
std::vector<std::string> ViaLiveKeys(SnapshotKv& kv, LiveKeysOptions o, LiveKeysStats* stats = nullptr,
                                     std::string* spill_error = nullptr) {
  LiveKeys live(kv, std::move(o), [](const KeyValueView& e, std::string* s) {
    s->assign(AsString(e.value).substr(0, 12));
  });
  live.Scan();
  std::vector<std::string> out;
  LiveKey e;
  while (live.Next(&e)) {
    out.push_back(std::string(e.key) + " " + std::string(e.summary) + " " + std::to_string(e.create_revision) + " " +
                  std::to_string(e.mod_revision) + " " + std::to_string(e.version) + " " + std::to_string(e.lease) +
                  " " + std::to_string(e.value_size));
  }
  EXPECT_FALSE(live.Next(&e));
  if (stats != nullptr) *stats = live.stats();
  if (spill_error != nullptr) *spill_error = live.spill_error();
  return out;
}

std::vector<std::string> ViaRange(SnapshotKv& kv, const std::string& begin, const std::string& end) {
  KvRange r;
  r.key = begin;
  r.range_end = end;
  std::vector<std::string> out;
  kv.Range(r, [&](const KeyValue& e) {
    out.push_back(e.key + " " + e.value.substr(0, 12) + " " + std::to_string(e.create_revision) + " " +
                  std::to_string(e.mod_revision) + " " + std::to_string(e.version) + " " + std::to_string(e.lease) +
                  " " + std::to_string(e.value.size()));
  });
  return out;
}

class LiveKeysTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(LiveKeysTest, EqualsRangeAtTheCurrentRevision) {
  testutil::TempDir dir;
  const auto bucket = RandomHistory(GetParam(), 400, 6000);
  WriteDb(dir.Sub("db"), bucket);
  SnapshotKv kv = SnapshotKv::Open(dir.Sub("db"));
  const std::string all(1, '\0');
  const std::vector<std::string> want = ViaRange(kv, all, all);
  ASSERT_GT(want.size(), 100u);

  LiveKeysStats st;
  EXPECT_EQ(ViaLiveKeys(kv, {}, &st), want);
  EXPECT_EQ(st.runs, 0);  // fits in the buffer
  EXPECT_EQ(st.entries, int64_t(bucket.size()));

  // 64 KiB buffers: many sorted runs on disk, merged.
  LiveKeysOptions small;
  small.memory_bytes = 64 << 10;
  small.temp_dir = dir.path();
  std::string spill_error;
  EXPECT_EQ(ViaLiveKeys(kv, small, &st, &spill_error), want);
  EXPECT_GT(st.runs, 5);
  EXPECT_GT(st.spilled_bytes, 0u);
  EXPECT_EQ(spill_error, "");

  // No usable temp dir: the runs stay in memory, same answer.
  small.temp_dir = dir.Sub("missing");
  EXPECT_EQ(ViaLiveKeys(kv, small, &st, &spill_error), want);
  EXPECT_GT(st.runs, 5);
  EXPECT_EQ(st.spilled_bytes, 0u);
  EXPECT_NE(spill_error, "");

  // Several workers over subtrees of the bucket: the same answer and entry count, with
  // everything in memory and with many runs.
  for (size_t threads : {2, 3}) {
    LiveKeysOptions par;
    par.threads = threads;
    par.min_parallel_pages = 0;
    EXPECT_EQ(ViaLiveKeys(kv, par, &st), want) << threads;
    EXPECT_EQ(st.entries, int64_t(bucket.size()));
    par.memory_bytes = 64 << 10;
    par.temp_dir = dir.path();
    EXPECT_EQ(ViaLiveKeys(kv, par, &st), want) << threads;
    EXPECT_GT(st.runs, 5);
  }

  // Ranges: a prefix, a single key, a key that is not there.
  for (const std::string& p : {std::string("/registry/pods/ns-3/"), std::string("/registry/pods/ns-0/p1")}) {
    LiveKeysOptions o = small;
    o.temp_dir = dir.path();
    o.begin = p;
    o.end = p;
    o.end.back()++;
    EXPECT_EQ(ViaLiveKeys(kv, o), ViaRange(kv, o.begin, o.end)) << p;
  }
  const std::string single = want[want.size() / 2].substr(0, want[want.size() / 2].find(' '));
  LiveKeysOptions one;
  one.begin = single;
  one.end = "";
  EXPECT_EQ(ViaLiveKeys(kv, one), ViaRange(kv, single, ""));
  EXPECT_EQ(ViaLiveKeys(kv, one).size(), 1u);
  one.begin = "/nope";
  EXPECT_TRUE(ViaLiveKeys(kv, one).empty());
}

INSTANTIATE_TEST_SUITE_P(Seeds, LiveKeysTest, ::testing::Values(1, 2, 3));

TEST(LiveKeysTest, TombstoneInALaterRunHidesTheKey) {
  testutil::TempDir dir;
  std::map<std::string, std::string> bucket;
  // 3000 puts of distinct keys, then deletes of every third, then one re-created.
  int64_t rev = 2;
  for (int i = 0; i < 3000; i++, rev++) {
    const std::string k = "k" + std::to_string(i);
    bucket[RevisionKeyBytes(rev, 0)] = Pb(KeyValue{k, std::string(40, 'a'), rev, rev, 1, 0});
  }
  for (int i = 0; i < 3000; i += 3, rev++) {
    bucket[RevisionKeyBytes(rev, 0) + "t"] = Pb(KeyValue{"k" + std::to_string(i), "", 0, 0, 0, 0});
  }
  bucket[RevisionKeyBytes(rev, 0)] = Pb(KeyValue{"k300", "again", rev, rev, 1, 0});
  WriteDb(dir.Sub("db"), bucket);
  SnapshotKv kv = SnapshotKv::Open(dir.Sub("db"));
  LiveKeysOptions o;
  o.memory_bytes = 64 << 10;
  o.temp_dir = dir.path();
  LiveKeysStats st;
  const auto got = ViaLiveKeys(kv, o, &st);
  EXPECT_GT(st.runs, 1);
  EXPECT_EQ(got.size(), 2000u + 1);
  const std::string all(1, '\0');
  EXPECT_EQ(got, ViaRange(kv, all, all));
}

TEST(LiveKeysTest, EmptyMissingBucketAndCorruptEntries) {
  testutil::TempDir dir;
  {
    bolt::Builder b(dir.Sub("nokey"));
    b.BeginBucket("meta");
    b.EndBucket();
    b.Finish();
    SnapshotKv kv = SnapshotKv::Open(dir.Sub("nokey"));
    EXPECT_TRUE(ViaLiveKeys(kv, {}).empty());
  }
  auto bucket = RandomHistory(7, 50, 300);
  bucket[RevisionKeyBytes(150, 9)] = std::string("\x0a\x09" "short", 7);
  WriteDb(dir.Sub("bad"), bucket);
  SnapshotKv kv = SnapshotKv::Open(dir.Sub("bad"));
  try {
    ViaLiveKeys(kv, {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    EXPECT_NE(std::string(e.what()).find(dir.Sub("bad") + ": bucket key: revision 150_9: not a KeyValue"),
              std::string::npos)
        << e.what();
  }
  // Two bad entries, walked by several workers: the error names the first, as on one.
  bucket = RandomHistory(7, 50, 3000);
  bucket[RevisionKeyBytes(400, 9)] = std::string("\x0a\x09" "short", 7);
  bucket[RevisionKeyBytes(2500, 9)] = std::string("\x0a\x09" "short", 7);
  WriteDb(dir.Sub("bad3"), bucket);
  SnapshotKv kv3 = SnapshotKv::Open(dir.Sub("bad3"));
  for (size_t threads : {2, 4}) {
    LiveKeysOptions par;
    par.threads = threads;
    par.min_parallel_pages = 0;
    try {
      ViaLiveKeys(kv3, par);
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(": bucket key: revision 400_9: not a KeyValue"), std::string::npos)
          << e.what();
    }
  }
  bucket = RandomHistory(7, 50, 300);
  bucket[std::string(1, '\0')] = Pb(KeyValue{"a", "1", 1, 1, 1, 0});  // sorts first (last: Open fails)
  WriteDb(dir.Sub("bad2"), bucket);
  SnapshotKv kv2 = SnapshotKv::Open(dir.Sub("bad2"));
  try {
    ViaLiveKeys(kv2, {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    EXPECT_NE(std::string(e.what()).find("a key of 1 bytes is not a revision"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace etcdsafe::ops
