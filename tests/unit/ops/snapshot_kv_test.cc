// ops/snapshot_kv: revision keys, KeyValue protobufs and etcd's range semantics over a
// synthetic bbolt file (puts, overwrites, tombstones, re-creation, a txn's sub
// revisions, compaction marks), plus corrupt input. The same reads against a real etcd
// and a real snapshot are in integration/get_test.cc.
#include "ops/snapshot_kv.h"

#include <gtest/gtest.h>

#include <map>

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

struct Db {
  testutil::TempDir dir;
  std::string path = dir.Sub("db");
  std::map<std::string, std::string> key_bucket;  // revision key -> value
  std::map<std::string, std::string> meta;

  // A put at (main, sub) with etcd's create/version bookkeeping done by the caller.
  void Put(int64_t main, int64_t sub, const std::string& k, const std::string& v, int64_t create, int64_t version,
           int64_t lease = 0) {
    key_bucket[RevisionKeyBytes(main, sub)] = Pb(KeyValue{k, v, create, main, version, lease});
  }
  void Delete(int64_t main, int64_t sub, const std::string& k) {
    key_bucket[RevisionKeyBytes(main, sub) + "t"] = Pb(KeyValue{k, "", 0, 0, 0, 0});
  }
  void Write() {
    bolt::Builder b(path);
    b.BeginBucket("key");
    for (const auto& [k, v] : key_bucket) b.Put(k, v);
    b.EndBucket();
    if (!meta.empty()) {
      b.BeginBucket("meta");
      for (const auto& [k, v] : meta) b.Put(k, v);
      b.EndBucket();
    }
    b.Finish();
  }
};

std::vector<std::string> Keys(const KvRangeResult& r) {
  std::vector<std::string> out;
  for (const auto& kv : r.kvs) out.push_back(kv.key + "=" + kv.value + "@" + std::to_string(kv.mod_revision));
  return out;
}

KvRangeResult Range(SnapshotKv& s, std::string key, std::string end, int64_t rev = 0, int64_t limit = 0,
                    bool keys_only = false) {
  KvRange r;
  r.key = std::move(key);
  r.range_end = std::move(end);
  r.revision = rev;
  r.limit = limit;
  r.keys_only = keys_only;
  return s.Range(r);
}

const std::string kAll(1, '\0');

// rev 2: a=1; 3: b=1; 4: a=2; 5: del b; 6 (txn): c=1, d=1, e=1; 7: b=2 (re-created); 8: del a.
void History(Db& db) {
  db.Put(2, 0, "a", "1", 2, 1);
  db.Put(3, 0, "b", "1", 3, 1);
  db.Put(4, 0, "a", "2", 2, 2, 7587869398442071558);
  db.Delete(5, 0, "b");
  db.Put(6, 0, "c", "1", 6, 1);
  db.Put(6, 1, "d", "1", 6, 1);
  db.Put(6, 2, std::string("\xff\x00k", 3), std::string("\x80\x00", 2), 6, 1);
  db.Put(7, 0, "b", "2", 7, 1);
  db.Delete(8, 0, "a");
}

TEST(RevisionKeyTest, ParsesEtcdsLayout) {
  std::string k = RevisionKeyBytes(0x0102030405060708, 3);
  ASSERT_EQ(k.size(), 17u);
  EXPECT_EQ(k[8], '_');
  auto r = ParseRevisionKey(AsBytes(k));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->main, 0x0102030405060708);
  EXPECT_EQ(r->sub, 3);
  EXPECT_FALSE(r->tombstone);
  r = ParseRevisionKey(AsBytes(k + "t"));
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->tombstone);
  EXPECT_FALSE(ParseRevisionKey(AsBytes(k + "x")));
  EXPECT_FALSE(ParseRevisionKey(AsBytes(k.substr(0, 16))));
  EXPECT_FALSE(ParseRevisionKey(AsBytes(k + "tt")));
}

TEST(KeyValueTest, DecodesAndSkipsUnknownFields) {
  KeyValue in{"key", std::string("v\0", 2), 5, 9, 3, 77};
  std::string pb = Pb(in);
  pb += std::string("\x38\x01", 2);              // field 7 varint: unknown, skipped
  pb += std::string("\x41", 1) + std::string(8, 'x');  // field 8 fixed64
  KeyValue out;
  ASSERT_FALSE(DecodeKeyValue(AsBytes(pb), &out));
  EXPECT_EQ(out.key, in.key);
  EXPECT_EQ(out.value, in.value);
  EXPECT_EQ(out.create_revision, 5);
  EXPECT_EQ(out.mod_revision, 9);
  EXPECT_EQ(out.version, 3);
  EXPECT_EQ(out.lease, 77);
  Bytes key;
  ASSERT_FALSE(DecodeKeyField(AsBytes(pb), &key));
  EXPECT_EQ(AsString(key), "key");
}

TEST(KeyValueTest, MalformedIsAnError) {
  KeyValue out;
  std::string pb = Pb(KeyValue{"key", "value", 1, 1, 1, 0});
  EXPECT_TRUE(DecodeKeyValue(AsBytes(pb.substr(0, pb.size() - 2)), &out));  // value cut short
  EXPECT_TRUE(DecodeKeyValue(AsBytes(std::string("\x0a\x05" "ab", 4)), &out));
  EXPECT_TRUE(DecodeKeyValue(AsBytes(std::string("\x08\x01", 2)), &out));  // key as a varint
  EXPECT_TRUE(DecodeKeyValue(AsBytes(std::string("\x0b", 1)), &out));      // wire type 3
  EXPECT_TRUE(DecodeKeyValue(AsBytes(std::string("\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11)), &out));
  Bytes key;
  EXPECT_TRUE(DecodeKeyField(AsBytes(std::string("\x0a\x05" "ab", 4)), &key));
}

TEST(SnapshotKvTest, LatestLiveRevisionAtEachRevision) {
  Db db;
  History(db);
  db.Write();
  SnapshotKv s = SnapshotKv::Open(db.path);
  EXPECT_EQ(s.current_revision(), 8);
  EXPECT_EQ(s.compacted_revision(), 0);

  const std::string bin("\xff\x00k", 3);
  KvRangeResult r = Range(s, kAll, kAll);
  EXPECT_EQ(Keys(r), (std::vector<std::string>{"b=2@7", "c=1@6", "d=1@6", bin + "=" + std::string("\x80\x00", 2) + "@6"}));
  EXPECT_EQ(r.count, 4);
  EXPECT_FALSE(r.more);
  EXPECT_EQ(r.revision, 8);

  // Before the delete of a: the overwrite, with its lease and version.
  r = Range(s, "a", "", 7);
  ASSERT_EQ(r.kvs.size(), 1u);
  EXPECT_EQ(r.kvs[0].value, "2");
  EXPECT_EQ(r.kvs[0].version, 2);
  EXPECT_EQ(r.kvs[0].create_revision, 2);
  EXPECT_EQ(r.kvs[0].lease, 7587869398442071558);
  EXPECT_EQ(r.revision, 8);  // the header revision stays the store's
  EXPECT_EQ(Keys(Range(s, "a", "", 3)), (std::vector<std::string>{"a=1@2"}));
  EXPECT_TRUE(Range(s, "a", "", 1).kvs.empty());
  // b: live at 3, deleted at 5, re-created at 7.
  EXPECT_EQ(Keys(Range(s, "b", "", 4)), (std::vector<std::string>{"b=1@3"}));
  EXPECT_TRUE(Range(s, "b", "", 5).kvs.empty());
  EXPECT_TRUE(Range(s, "b", "", 6).kvs.empty());
  EXPECT_EQ(Keys(Range(s, "b", "", 7)), (std::vector<std::string>{"b=2@7"}));
  // The txn's sub revisions are all visible at 6.
  EXPECT_EQ(Range(s, "c", kAll, 6).count, 3);
  EXPECT_EQ(Range(s, "c", kAll, 5).count, 0);
  // [b, d): b and c.
  EXPECT_EQ(Keys(Range(s, "b", "d")), (std::vector<std::string>{"b=2@7", "c=1@6"}));
  // An end at or below the key is empty.
  EXPECT_EQ(Range(s, "d", "c").count, 0);
  // limit: the first ones, count of all, more.
  r = Range(s, kAll, kAll, 0, 2, /*keys_only=*/true);
  EXPECT_EQ(Keys(r), (std::vector<std::string>{"b=@7", "c=@6"}));
  EXPECT_EQ(r.count, 4);
  EXPECT_TRUE(r.more);
  r = Range(s, kAll, kAll, 0, 4);
  EXPECT_FALSE(r.more);
}

TEST(SnapshotKvTest, FutureAndCompactedRevisions) {
  Db db;
  History(db);
  db.meta["finishedCompactRev"] = RevisionKeyBytes(4, 0);
  db.meta["scheduledCompactRev"] = RevisionKeyBytes(5, 0);  // resumed by a restored etcd
  db.Write();
  SnapshotKv s = SnapshotKv::Open(db.path);
  EXPECT_EQ(s.compacted_revision(), 5);
  auto msg = [&](int64_t rev) {
    try {
      Range(s, "a", "", rev);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(msg(9), "etcdserver: mvcc: required revision is a future revision");
  EXPECT_EQ(msg(4), "etcdserver: mvcc: required revision has been compacted");
  EXPECT_EQ(msg(5), "");
  EXPECT_EQ(msg(0), "");
  EXPECT_EQ(msg(-3), "");
}

TEST(SnapshotKvTest, CompactionAboveTheLastKeyIsTheCurrentRevision) {
  Db db;
  db.Put(2, 0, "a", "1", 2, 1);
  db.meta["finishedCompactRev"] = RevisionKeyBytes(9, 0);
  db.Write();
  SnapshotKv s = SnapshotKv::Open(db.path);
  EXPECT_EQ(s.current_revision(), 9);
  EXPECT_EQ(Range(s, "a", "").revision, 9);
}

TEST(SnapshotKvTest, EmptyAndMissingKeyBucket) {
  testutil::TempDir dir;
  {
    bolt::Builder b(dir.Sub("nokey"));
    b.BeginBucket("meta");
    b.Put("x", "y");
    b.EndBucket();
    b.Finish();
  }
  SnapshotKv s = SnapshotKv::Open(dir.Sub("nokey"));
  EXPECT_EQ(s.current_revision(), 1);
  KvRangeResult r = Range(s, kAll, kAll);
  EXPECT_EQ(r.count, 0);
  EXPECT_EQ(r.revision, 1);
}

TEST(SnapshotKvTest, CorruptEntriesAreDataLoss) {
  {
    Db db;
    History(db);
    db.key_bucket[RevisionKeyBytes(7, 5)] = std::string("\x0a\x09" "short", 7);
    db.Write();
    SnapshotKv s = SnapshotKv::Open(db.path);
    try {
      Range(s, kAll, kAll);
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
      EXPECT_NE(std::string(e.what()).find("revision 7_5: not a KeyValue"), std::string::npos) << e.what();
    }
    // The walk stops before the bad entry when the range is read at an older revision.
    EXPECT_EQ(Range(s, kAll, kAll, 6).count, 4);  // a, c, d and the binary key
  }
  {
    Db db;
    History(db);
    db.key_bucket["short"] = Pb(KeyValue{"a", "1", 1, 1, 1, 0});
    db.Write();
    try {
      SnapshotKv s = SnapshotKv::Open(db.path);
      Range(s, kAll, kAll);
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
      EXPECT_NE(std::string(e.what()).find("not a revision"), std::string::npos) << e.what();
    }
  }
  {
    Db db;
    History(db);
    db.meta["finishedCompactRev"] = "abc";
    db.Write();
    EXPECT_THROW(SnapshotKv::Open(db.path), Error);
  }
  testutil::TempDir dir;
  testutil::WriteFile(dir.Sub("junk"), std::string(8192, 'j'));
  EXPECT_THROW(SnapshotKv::Open(dir.Sub("junk")), Error);
  EXPECT_THROW(SnapshotKv::Open(dir.Sub("missing")), Error);
}

}  // namespace
}  // namespace etcdsafe::ops
