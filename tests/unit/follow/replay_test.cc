// The offline replay (follow/replay.h) on its own, and ops/kv_hash.h's compact override.
//
// A base db and segments are made by hand; the db the replay must produce is written
// independently (explicit revision keys and values, as etcd's own put/delete write them)
// and compared entry by entry; HashKV records are computed on that expected db. The
// compact override is checked against a db compacted by hand exactly as etcd 3.4's
// compaction at C leaves it (kvindex.Compact(C)), including the case where no key is
// live at the hashed revision (Keep(R) empty), where etcd hashes what its compaction kept.
#include "follow/replay.h"

#include <gtest/gtest.h>
#include <time.h>

#include <map>
#include <string>
#include <vector>

#include "backup/layout.h"
#include "base/checksum.h"
#include "base/error.h"
#include "bolt/builder.h"
#include "bolt/reader.h"
#include "ops/kv_hash.h"
#include "store/store.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::follow {
namespace {

using testutil::TempDir;

std::string BE64(int64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; i--) {
    out[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
  return out;
}

std::string Rev(int64_t main, int64_t sub, bool tomb = false) {
  return BE64(main) + "_" + BE64(sub) + (tomb ? "t" : "");
}

std::string Put(const std::string& key, const std::string& value, int64_t create, int64_t mod, int64_t version,
                int64_t lease = 0) {
  KeyValue kv;
  kv.key = key;
  kv.value = value;
  kv.create_revision = create;
  kv.mod_revision = mod;
  kv.version = version;
  kv.lease = lease;
  return EncodeKeyValue(kv);
}

std::string Tomb(const std::string& key) {
  KeyValue kv;
  kv.key = key;
  return EncodeKeyValue(kv);
}

std::string LeaseValue(int64_t id, int64_t ttl) {  // leasepb.Lease{ID, TTL}
  std::string out;
  auto varint = [&](uint64_t v) {
    while (v >= 0x80) {
      out.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out.push_back(static_cast<char>(v));
  };
  out.push_back(0x08);
  varint(static_cast<uint64_t>(id));
  out.push_back(0x10);
  varint(static_cast<uint64_t>(ttl));
  return out;
}

using Entries = std::vector<std::pair<std::string, std::string>>;
using Buckets = std::map<std::string, Entries>;

void WriteDb(const std::string& path, const Buckets& buckets) {
  bolt::Builder b(path);
  for (const auto& [name, entries] : buckets) {
    b.BeginBucket(name);
    for (const auto& [k, v] : entries) b.Put(k, v);
    b.EndBucket();
  }
  b.Finish();
}

Buckets ReadDb(const std::string& path) {
  Buckets out;
  bolt::Reader r = bolt::Reader::Open(path);
  r.ForEachBucket([&](std::string_view name) { out[std::string(name)]; });
  for (auto& [name, entries] : out) {
    r.ForEach(name, [&](Bytes k, Bytes v) {
      entries.emplace_back(std::string(reinterpret_cast<const char*>(k.data()), k.size()),
                           std::string(reinterpret_cast<const char*>(v.data()), v.size()));
    });
  }
  return out;
}

constexpr int64_t kT0 = 1795000000000;  // ms
constexpr int64_t kLeaseA = 0x10, kLeaseB = 0x20, kUnknown = 0x99;

// Base at revision 4: k0 (lease B), kx; one lease (B) in bucket "lease".
Entries BaseKeys() {
  return {{Rev(2, 0), Put("k0", "base", 2, 2, 1, kLeaseB)},
          {Rev(3, 0), Put("kx", "x1", 3, 3, 1)},
          {Rev(4, 0), Put("kx", "x2", 3, 4, 2)}};
}

// The events, as etcd writes them into bucket "key": revision -> [(rev key, value)].
std::map<int64_t, Entries> EventKeys() {
  return {
      {5, {{Rev(5, 0), Put("k1", "a", 5, 5, 1, kLeaseA)}}},
      {6,
       {{Rev(6, 0), Put("k2", "b", 6, 6, 1)}, {Rev(6, 1, true), Tomb("k0")}, {Rev(6, 2), Put("k3", "c", 6, 6, 1, kUnknown)}}},
      {7, {{Rev(7, 0), Put("k1", "a2", 5, 7, 2)}}},
      {8, {{Rev(8, 0, true), Tomb("k3")}}},
  };
}

Revision RevisionOf(int64_t rev, int64_t time_ms) {
  Revision r;
  r.revision = rev;
  r.time_ms = time_ms;
  const std::map<int64_t, Entries> events = EventKeys();
  for (const auto& [k, v] : events.at(rev)) {
    Event e;
    e.is_delete = k.size() == 18;
    e.data = e.is_delete ? DecodeKeyValue(AsBytes(v), "test").key : v;
    r.events.push_back(e);
  }
  return r;
}

class Replay : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = std::make_unique<backup::Repository>(store::OpenStore("file://" + dir_.Sub("repo")));
    base_db_ = dir_.Sub("base.db");
    WriteDb(base_db_, {{"key", BaseKeys()},
                       {"lease", {{BE64(kLeaseB), LeaseValue(kLeaseB, 100)}}},
                       {"members", {{"m1", "{}"}}},
                       {"meta", {{"consistent_index", BE64(7)}}}});
    chain_.base.id = "etcd-snapshot-20261201-003000-r4";
    chain_.base.revision = 4;
    chain_.base.time_unix = kT0 / 1000 - 10;
    chain_.base.stored_sha256 = std::string(64, 'a');
  }

  // The db etcd holds at `rev` (its key bucket), for the expected result and HashKV.
  Entries ExpectedKeys(int64_t rev) {
    Entries out = BaseKeys();
    for (const auto& [r, entries] : EventKeys()) {
      if (r <= rev) out.insert(out.end(), entries.begin(), entries.end());
    }
    return out;
  }
  uint32_t HashAt(int64_t rev) {
    const std::string p = dir_.Sub("expected-" + std::to_string(rev) + ".db");
    WriteDb(p, {{"key", ExpectedKeys(rev)}});
    ops::KvHashOptions o;
    o.revision = rev;
    return ops::KvHashOfFile(p, o).hash;
  }

  // Two segments: (L A, R5, R6, H6, P6) and (R7, X B, R8, P8).
  void WriteChain(uint32_t hash6, const std::string& k2_value = "b") {
    std::string prev = chain_.base.stored_sha256;
    SegmentBuilder s1(chain_.base.id, 1, 4, prev);
    LeaseRecord la;
    la.id = kLeaseA;
    la.ttl = 30;
    la.revision = 4;
    la.time_ms = kT0 + 50;
    s1.AddLease(la);
    s1.AddRevision(RevisionOf(5, kT0 + 100));
    Revision r6 = RevisionOf(6, kT0 + 200);
    r6.events[0].data = Put("k2", k2_value, 6, 6, 1);
    s1.AddRevision(r6);
    HashRecord h;
    h.revision = 6;
    h.hash = hash6;
    h.compact_revision = 0;
    h.time_ms = kT0 + 200;
    s1.AddHash(h);
    s1.AddProgress({6, kT0 + 300});
    Store(s1, &prev);
    SegmentBuilder s2(chain_.base.id, 2, 6, prev);
    s2.AddRevision(RevisionOf(7, kT0 + 400));
    LeaseRecord xb;
    xb.gone = true;
    xb.id = kLeaseB;
    xb.revision = 7;
    xb.time_ms = kT0 + 400;
    s2.AddLease(xb);
    s2.AddRevision(RevisionOf(8, kT0 + 500));
    s2.AddProgress({8, kT0 + 600});
    Store(s2, &prev);
    Rescan();
  }
  void Store(SegmentBuilder& b, std::string* prev) {
    std::string plain = b.Finish();
    WriteSegment(*repo_, b.header(), plain, {});
    *prev = HexBytes(Sha256Of(AsBytes(plain)));
  }
  void Rescan() {
    chain_.segments.clear();
    for (const auto& o : repo_->store().List("")) {
      backup::ParsedName p = backup::ClassifyName(o.name);
      if (p.kind == backup::NameKind::kSegment) chain_.segments.push_back({o.name, p, o.size});
    }
    std::sort(chain_.segments.begin(), chain_.segments.end(),
              [](const SegmentObject& a, const SegmentObject& b) { return a.parsed.seq < b.parsed.seq; });
    chain_.usable_segments = chain_.segments.size();
    chain_.usable_last_revision = chain_.segments.empty() ? 4 : chain_.segments.back().parsed.last_revision;
  }

  ReplayStats Run(PointInTime t, const std::string& out) { return ReplayChain(*repo_, chain_, base_db_, out, t, {}); }

  TempDir dir_;
  std::unique_ptr<backup::Repository> repo_;
  std::string base_db_;
  Chain chain_;
};

PointInTime AtRevision(int64_t r) {
  PointInTime t;
  t.kind = PointInTime::Kind::kRevision;
  t.revision = r;
  return t;
}
PointInTime AtTime(int64_t ms) {
  PointInTime t;
  t.kind = PointInTime::Kind::kTime;
  t.time_ms = ms;
  return t;
}

TEST_F(Replay, LatestWritesEtcdsKeysLeasesAndCopiesTheRest) {
  WriteChain(HashAt(6));
  const std::string out = dir_.Sub("out.db");
  ReplayStats st = Run(PointInTime{}, out);
  EXPECT_EQ(st.revision, 8);
  EXPECT_EQ(st.time_ms, kT0 + 500);
  EXPECT_EQ(st.segments, 2u);
  EXPECT_EQ(st.revisions, 4u);
  EXPECT_EQ(st.events, 6u);
  ASSERT_EQ(st.hashes.size(), 1u);
  EXPECT_TRUE(st.notes.empty()) << st.notes[0];  // k3 (unknown lease) is deleted at 8
  Buckets db = ReadDb(out);
  EXPECT_EQ(db["key"], ExpectedKeys(8));
  // Lease B recorded gone, A recorded with its granted TTL.
  EXPECT_EQ(db["lease"], (Entries{{BE64(kLeaseA), LeaseValue(kLeaseA, 30)}}));
  EXPECT_EQ(db["members"], (Entries{{"m1", "{}"}}));
  EXPECT_EQ(db["meta"], (Entries{{"consistent_index", BE64(7)}}));
  std::optional<HashRecord> checked = CheckReplayedHash(out, st);
  ASSERT_TRUE(checked.has_value());
  EXPECT_EQ(checked->revision, 6);
}

TEST_F(Replay, RevisionInsideASegmentStopsThereAndCreatesUnknownLeases) {
  WriteChain(HashAt(6));
  const std::string out = dir_.Sub("out.db");
  ReplayStats st = Run(AtRevision(6), out);
  EXPECT_EQ(st.revision, 6);
  EXPECT_EQ(st.segments, 1u);
  EXPECT_EQ(st.revisions, 2u);
  Buckets db = ReadDb(out);
  EXPECT_EQ(db["key"], ExpectedKeys(6));
  // k3 is live with a lease nobody recorded; k0 (lease B) was deleted at 6, B is not gone yet.
  EXPECT_EQ(db["lease"], (Entries{{BE64(kLeaseA), LeaseValue(kLeaseA, 30)},
                                  {BE64(kLeaseB), LeaseValue(kLeaseB, 100)},
                                  {BE64(kUnknown), LeaseValue(kUnknown, kUnknownLeaseTtl)}}));
  ASSERT_EQ(st.notes.size(), 1u);
  EXPECT_NE(st.notes[0].find("lease 99 (attached to 1 key, e.g. k3) was not recorded"), std::string::npos)
      << st.notes[0];
  EXPECT_TRUE(CheckReplayedHash(out, st).has_value());

  // The base revision itself: a copy of the base (plus the recorded lease of its segment).
  ReplayStats at_base = Run(AtRevision(4), dir_.Sub("base-copy.db"));
  EXPECT_EQ(at_base.revision, 4);
  EXPECT_EQ(ReadDb(dir_.Sub("base-copy.db"))["key"], BaseKeys());
  EXPECT_FALSE(CheckReplayedHash(dir_.Sub("base-copy.db"), at_base).has_value());
}

TEST_F(Replay, TimeTargetsNeedProof) {
  WriteChain(HashAt(6));
  ReplayStats a = Run(AtTime(kT0 + 250), dir_.Sub("a.db"));  // proven by the progress at +300
  EXPECT_EQ(a.revision, 6);
  EXPECT_EQ(ReadDb(dir_.Sub("a.db"))["key"], ExpectedKeys(6));
  EXPECT_EQ(Run(AtTime(kT0 + 450), dir_.Sub("b.db")).revision, 7);
  EXPECT_EQ(Run(AtTime(kT0 + 600), dir_.Sub("c.db")).revision, 8);  // progress at exactly T
  EXPECT_EQ(Run(AtTime(kT0 - 5000), dir_.Sub("d.db")).revision, 4);  // before the first record
  try {
    Run(AtTime(kT0 + 601), dir_.Sub("e.db"));
    FAIL() << "an unproven time was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("proves times up to"), std::string::npos) << e.what();
  }
  try {
    Run(AtTime(kT0 - 20000), dir_.Sub("f.db"));
    FAIL() << "a time before the base was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

TEST_F(Replay, RevisionOutsideTheChainIsRefused) {
  WriteChain(HashAt(6));
  try {
    Run(AtRevision(9), dir_.Sub("x.db"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("reaches revision 8, not 9"), std::string::npos) << e.what();
  }
  try {
    Run(AtRevision(3), dir_.Sub("y.db"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

TEST_F(Replay, WrongRecordedHashIsDataLoss) {
  WriteChain(HashAt(6) ^ 1);
  const std::string out = dir_.Sub("out.db");
  ReplayStats st = Run(PointInTime{}, out);
  try {
    CheckReplayedHash(out, st);
    FAIL() << "a wrong hash passed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    EXPECT_NE(std::string(e.what()).find("etcd's HashKV was"), std::string::npos) << e.what();
  }
}

// A segment replaced by another valid one of the same name: the next one's link fails.
TEST_F(Replay, ReplacedSegmentBreaksTheChain) {
  WriteChain(HashAt(6));
  const std::string second = chain_.segments[1].name;
  const std::string good_second = repo_->store().Get(second, 1 << 20);
  for (const auto& s : chain_.segments) repo_->store().Remove(s.name);
  // A forged segment 1 (another value for k2), valid on its own, under the same name,
  // followed by the original segment 2: its prev_sha256 names the original segment 1.
  WriteChain(HashAt(6), "forged");
  repo_->store().Put(second, good_second);
  Rescan();
  ASSERT_EQ(chain_.segments.size(), 2u);
  try {
    Run(PointInTime{}, dir_.Sub("out.db"));
    FAIL() << "a broken link was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    EXPECT_NE(std::string(e.what()).find("does not follow"), std::string::npos) << e.what();
  }
  // Up to revision 6 only segment 1 is read: valid on its own, the forged value is what it holds.
  Run(AtRevision(6), dir_.Sub("six.db"));
  EXPECT_EQ(ReadDb(dir_.Sub("six.db"))["key"][4].second, Put("k2", "forged", 6, 6, 1));
}

TEST(ParseTimeArg, Rfc3339) {
  EXPECT_EQ(ParseTimeArg("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(ParseTimeArg("2026-11-30T10:15:00Z"), 1796033700000);
  EXPECT_EQ(ParseTimeArg("2026-11-30T11:15:00.250+01:00"), 1796033700250);
  EXPECT_EQ(ParseTimeArg("2026-11-30t10:15:00.123456789z"), 1796033700123);
  EXPECT_EQ(ParseTimeArg("2024-02-29T00:00:00-00:30"), 1709166600000);
  for (const char* bad : {"2026-11-30", "2026-11-30T10:15:00", "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z",
                          "2026-11-30T24:00:00Z", "2026-11-30T10:15:00Zx", "2026-11-30 10:15:00Z",
                          "2026-11-30T10:15:00.Z", "1795000000", ""}) {
    try {
      ParseTimeArg(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << bad;
    }
  }
}

// ops/kv_hash.h: hashing a db with more history than etcd kept, as etcd compacted at C.
class KvHashCompact : public ::testing::Test {
 protected:
  void SetUp() override {
    // 1 put a, 2 put b, 3 put a, 4 del b, 5 put c, 6 put a, 7 del a, 8 del c
    Entries full = {{Rev(1, 0), Put("a", "1", 1, 1, 1)}, {Rev(2, 0), Put("b", "1", 2, 2, 1)},
                    {Rev(3, 0), Put("a", "2", 1, 3, 2)}, {Rev(4, 0, true), Tomb("b")},
                    {Rev(5, 0), Put("c", "1", 5, 5, 1)}, {Rev(6, 0), Put("a", "3", 1, 6, 3)},
                    {Rev(7, 0, true), Tomb("a")},        {Rev(8, 0, true), Tomb("c")}};
    WriteDb(full_, {{"key", full}});
    // etcd's compaction at 5 keeps a@3 and c@5 below 6 (b's generation ended at 4).
    Entries compacted = {full[2], full[4], full[5], full[6], full[7]};
    WriteDb(compacted_, {{"key", compacted}, {"meta", {{"finishedCompactRev", Rev(5, 0)}}}});
  }
  uint32_t Hash(const std::string& db, int64_t rev, std::optional<int64_t> compact) {
    ops::KvHashOptions o;
    o.revision = rev;
    o.compact_revision = compact;
    return ops::KvHashOfFile(db, o).hash;
  }
  TempDir dir_;
  std::string full_ = dir_.Sub("full.db"), compacted_ = dir_.Sub("compacted.db");
};

TEST_F(KvHashCompact, FullHistoryHashedAsEtcdCompactedAtC) {
  for (int64_t rev : {6, 7, 8}) {
    EXPECT_EQ(Hash(full_, rev, 5), Hash(compacted_, rev, std::nullopt)) << "revision " << rev;
  }
  // At 8 no key is live (Keep(8) is empty): etcd hashes what its compaction kept; the
  // db's own view (never compacted) hashes every old revision and differs.
  EXPECT_NE(Hash(full_, 8, std::nullopt), Hash(compacted_, 8, std::nullopt));
  // Never compacted: -1 and 0 are the same as no override.
  EXPECT_EQ(Hash(full_, 8, 0), Hash(full_, 8, std::nullopt));
  EXPECT_EQ(Hash(full_, 8, -1), Hash(full_, 8, std::nullopt));
  EXPECT_EQ(ops::KvHashOfFile(full_, {8, false, 5}).compact_revision, 5);
}

TEST_F(KvHashCompact, ImpossibleOverridesAreRefused) {
  auto code = [&](const std::string& db, int64_t rev, int64_t c) {
    try {
      Hash(db, rev, c);
    } catch (const Error& e) {
      return std::string(e.what()).find("compacted") != std::string::npos ? 1 : 2;
    }
    return 0;
  };
  EXPECT_EQ(code(full_, 5, 5), 1);        // R <= C: "required revision has been compacted"
  EXPECT_NE(code(compacted_, 8, 3), 0);   // C before the db's own compaction
  EXPECT_NE(code(full_, 8, 9), 0);        // C beyond the current revision
}

}  // namespace
}  // namespace etcdsafe::follow
