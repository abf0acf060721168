// Background compaction (follow/compact.h) on a file:// repository: merged segments read
// back as exactly the records of the segments they replace, the chain's links stay
// checked end to end, merging merged segments works, and a compaction killed after any
// step of its commit (write the merged object, remove each original) leaves a chain that
// reads the same, which the next compaction (or prune, by names) finishes. Also the
// compact lock's conflicts, and prune of chains holding merged segments.
#include "follow/compact.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "backup/backup.h"
#include "backup/layout.h"
#include "backup/lock.h"
#include "backup/repo_ops.h"
#include "base/checksum.h"
#include "base/error.h"
#include "follow/chain.h"
#include "store/store.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::follow {
namespace {

using testutil::TempDir;

constexpr char kBase[] = "etcd-snapshot-20261201-003000-r100";
constexpr char kBase2[] = "etcd-snapshot-20261202-003000-r5000";
constexpr int64_t kT0 = 1796085000000;

std::string Hex64(char c) { return std::string(64, c); }

backup::Manifest BaseManifest(const std::string& id, int64_t revision, int64_t time_unix, char sha) {
  backup::Manifest m;
  m.id = id;
  m.time_unix = time_unix;
  m.data_object = id.substr(0, id.rfind("-r")) + ".db";
  m.revision = revision;
  m.total_keys = 1;
  m.db_size = 1;
  m.db_sha256 = Hex64('d');
  m.stored_size = 1;
  m.stored_sha256 = Hex64(sha);
  return m;
}

Event PutEvent(const std::string& key, const std::string& value, int64_t rev) {
  KeyValue kv;
  kv.key = key;
  kv.value = value;
  kv.create_revision = rev;
  kv.mod_revision = rev;
  kv.version = 1;
  return Event{false, EncodeKeyValue(kv)};
}

// What a chain reads as, record by record, as a comparable string.
std::vector<std::string> Flatten(const std::vector<Record>& records) {
  std::vector<std::string> out;
  for (const Record& r : records) {
    std::string s(1, r.tag);
    switch (r.tag) {
      case 'R':
        s += std::to_string(r.rev.revision) + "@" + std::to_string(r.rev.time_ms);
        for (const Event& e : r.rev.events) s += (e.is_delete ? "|d:" : "|p:") + HexBytes(Sha256Of(AsBytes(e.data)));
        break;
      case 'L':
      case 'X':
        s += std::to_string(r.lease.id) + "/" + std::to_string(r.lease.ttl) + "/" + std::to_string(r.lease.revision) +
             "@" + std::to_string(r.lease.time_ms);
        break;
      case 'H':
        s += std::to_string(r.hash.revision) + "/" + std::to_string(r.hash.hash) + "/" +
             std::to_string(r.hash.compact_revision) + "@" + std::to_string(r.hash.time_ms);
        break;
      case 'P':
        s += std::to_string(r.progress.revision) + "@" + std::to_string(r.progress.time_ms);
        break;
    }
    out.push_back(s);
  }
  return out;
}

class CompactTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(dir_.path()); }

  void Open(const std::string& path) {
    repo_ = backup::OpenRepository("file://" + path, store::StoreOptions{});
    repo_->EnsureMarker();
  }

  // Base kBase at revision 100 and `n` segments: revisions, a lease, hashes, progress,
  // event-less heartbeats, each segment small. Returns the chain's last revision.
  int64_t RecordChain(int n, const std::optional<pipeline::KeySpec>& key = std::nullopt, const std::string& end = "") {
    repo_->WriteManifest(BaseManifest(kBase, 100, 1796085000, 'b'));
    SegmentWriteOptions w;
    w.key = key;
    std::string prev = Hex64('b');
    int64_t rev = 100, t = kT0;
    for (int seq = 1; seq <= n; seq++) {
      SegmentBuilder b(kBase, seq, rev, prev);
      if (seq % 5 == 0) {
        b.AddProgress({rev, t += 10});  // a heartbeat: no revision
      } else {
        for (int i = 0; i < 3; i++) {
          rev++;
          b.AddRevision({rev, t += 7, {PutEvent("k" + std::to_string(rev % 11), std::string(40, 'v'), rev)}});
          if (seq % 4 == 1 && i == 0) b.AddLease({false, 1000 + seq, 60, rev, t += 1});
        }
        if (seq % 3 == 0) b.AddHash({rev, static_cast<uint32_t>(rev * 31), 90, t += 2});
        if (seq % 7 == 0) b.AddLease({true, 1000 + seq - 6, 0, rev, t += 1});
      }
      const std::string plain = b.Finish(seq == n ? end : "");
      WriteSegment(*repo_, b.header(), plain, w);
      prev = HexBytes(Sha256Of(AsBytes(plain)));
    }
    return rev;
  }

  Chain TheChain() {
    ChainScan scan = ScanChains(*repo_);
    EXPECT_EQ(scan.chains.size(), 1u);
    return scan.chains.empty() ? Chain{} : scan.chains.front();
  }

  std::vector<std::string> ReadAll(const std::optional<pipeline::KeySpec>& key = std::nullopt,
                                   ChainReadResult* result = nullptr) {
    std::vector<Record> records;
    ChainReadResult r = ReadChain(*repo_, TheChain(), key, 0, [&](const follow::Record& rec) { records.push_back(rec); });
    if (result != nullptr) *result = r;
    return Flatten(records);
  }

  std::set<std::string> Names() {
    std::set<std::string> out;
    for (const auto& o : repo_->store().ListDir("")) out.insert(o.name);
    return out;
  }

  static CompactOptions Options(uint64_t target, size_t keep_last = 0) {
    CompactOptions o;
    o.target_bytes = target;
    o.min_age = std::chrono::seconds(0);
    o.keep_last = keep_last;
    return o;
  }

  TempDir dir_;
  std::unique_ptr<backup::Repository> repo_;
};

TEST_F(CompactTest, MergedChainReadsAsTheOriginal) {
  const int64_t last = RecordChain(40, std::nullopt, "stopped");
  ChainReadResult before_r;
  const std::vector<std::string> before = ReadAll(std::nullopt, &before_r);
  ASSERT_GT(before.size(), 100u);

  CompactReport r = CompactChain(*repo_, TheChain(), std::nullopt, Options(2000, 5));
  EXPECT_GE(r.merged_written, 3u);
  EXPECT_EQ(r.segments_read, 35u);  // the newest 5 are kept as they are
  EXPECT_EQ(r.removed, r.segments_replaced);

  Chain c = TheChain();
  EXPECT_TRUE(c.problems.empty()) << c.problems.front();
  EXPECT_TRUE(c.superseded.empty());
  EXPECT_EQ(c.segments.size(), 40u - r.segments_replaced + r.merged_written);
  EXPECT_EQ(c.merged_segments(), r.merged_written);
  EXPECT_EQ(c.usable_last_revision, last);
  EXPECT_EQ(c.usable_segments, c.segments.size());
  // The newest five are untouched, the merged ones cover 1..35 without a hole.
  for (size_t i = c.segments.size() - 5; i < c.segments.size(); i++) EXPECT_FALSE(c.segments[i].merged());
  EXPECT_EQ(c.segments.front().parsed.seq, 1u);
  EXPECT_TRUE(c.segments.front().merged());

  ChainReadResult after_r;
  EXPECT_EQ(ReadAll(std::nullopt, &after_r), before);
  EXPECT_EQ(after_r.last_revision, before_r.last_revision);
  EXPECT_EQ(after_r.last_link_sha256, before_r.last_link_sha256);
  EXPECT_EQ(after_r.end, "stopped");
  EXPECT_EQ(after_r.hashes.size(), before_r.hashes.size());
  // Every merged segment stays within the target (plus one segment's worth at most: a run
  // is closed before a segment that would take it past).
  for (const auto& s : c.segments) {
    if (!s.merged()) continue;
    ReadSegmentResult m = ReadSegment(*repo_, s, std::nullopt);
    EXPECT_LE(m.header.records_size, 2000u) << s.name;
    EXPECT_EQ(m.header.seq_last, s.parsed.seq_last);
  }

  // A restore up to a revision inside a merged segment stops there.
  Chain chain = TheChain();
  std::vector<Record> part;
  ReadChain(*repo_, chain, std::nullopt, 150, [&](const follow::Record& rec) { part.push_back(rec); });
  ASSERT_FALSE(part.empty());
  int64_t max_rev = 0;
  for (const auto& rec : part) {
    if (rec.tag == 'R') max_rev = rec.rev.revision;
  }
  EXPECT_EQ(max_rev, 150);

  // Merged segments merge again (a bigger target), and the chain still reads the same.
  CompactReport again = CompactChain(*repo_, TheChain(), std::nullopt, Options(1 << 20, 5));
  EXPECT_EQ(again.merged_written, 1u);
  Chain c2 = TheChain();
  EXPECT_EQ(c2.segments.size(), 6u);
  EXPECT_EQ(c2.segments.front().parsed.seq, 1u);
  EXPECT_EQ(c2.segments.front().parsed.seq_last, 35u);
  EXPECT_EQ(ReadAll(), before);
  // Nothing left to do: a third pass writes nothing.
  CompactReport third = CompactChain(*repo_, TheChain(), std::nullopt, Options(1 << 20, 5));
  EXPECT_EQ(third.merged_written, 0u);
  EXPECT_EQ(third.removed, 0u);
}

TEST_F(CompactTest, ResumeLinkAfterAMergedLastSegment) {
  RecordChain(10);
  CompactChain(*repo_, TheChain(), std::nullopt, Options(1 << 20, 0));
  Chain c = TheChain();
  ASSERT_EQ(c.segments.size(), 1u);
  ReadSegmentResult last = ReadSegment(*repo_, c.segments.back(), std::nullopt);
  EXPECT_EQ(last.header.seq_last, 10u);
  // A recorder resuming writes segment 11 with prev = the merged one's link.
  SegmentBuilder b(kBase, last.header.seq_last + 1, last.header.last_revision, last.link_sha256);
  b.AddRevision({last.header.last_revision + 1, kT0 + 100000, {PutEvent("n", "1", last.header.last_revision + 1)}});
  const std::string plain = b.Finish();
  WriteSegment(*repo_, b.header(), plain, {});
  EXPECT_NO_THROW(ReadAll());
  EXPECT_TRUE(TheChain().problems.empty());
  // A wrong link after the merged segment is found.
  repo_->store().Remove(TheChain().segments.back().name);
  SegmentBuilder bad(kBase, 11, last.header.last_revision, last.plain_sha256);  // not the link
  bad.AddRevision({last.header.last_revision + 1, kT0 + 100000, {PutEvent("n", "1", last.header.last_revision + 1)}});
  WriteSegment(*repo_, bad.header(), bad.Finish(), {});
  try {
    ReadAll();
    ADD_FAILURE() << "a broken link after a merged segment was read";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
  }
}

TEST_F(CompactTest, KilledAfterEveryStepReadsTheSameAndFinishes) {
  RecordChain(24);
  const std::vector<std::string> before = ReadAll();
  // The steps of a clean run.
  std::vector<std::string> steps;
  std::set<std::string> clean_names;
  {
    TempDir copy;
    std::filesystem::copy(dir_.path(), copy.path(), std::filesystem::copy_options::recursive |
                                                        std::filesystem::copy_options::overwrite_existing);
    auto repo = backup::OpenRepository("file://" + copy.path(), store::StoreOptions{});
    CompactOptions o = Options(3000, 2);
    o.on_step = [&](const std::string& s) { steps.push_back(s); };
    ChainScan scan = ScanChains(*repo);
    CompactChain(*repo, scan.chains.front(), std::nullopt, o);
    for (const auto& obj : repo->store().ListDir("")) clean_names.insert(obj.name);
  }
  ASSERT_GT(steps.size(), 6u);
  for (size_t kill = 0; kill < steps.size(); kill++) {
    SCOPED_TRACE("killed after step " + std::to_string(kill) + ": " + steps[kill]);
    TempDir copy;
    std::filesystem::copy(dir_.path(), copy.path(), std::filesystem::copy_options::recursive |
                                                        std::filesystem::copy_options::overwrite_existing);
    auto repo = backup::OpenRepository("file://" + copy.path(), store::StoreOptions{});
    CompactOptions o = Options(3000, 2);
    size_t n = 0;
    o.on_step = [&](const std::string&) {
      if (n++ == kill) throw Error(ErrorCode::kUnavailable, "killed");
    };
    EXPECT_THROW(CompactChain(*repo, ScanChains(*repo).chains.front(), std::nullopt, o), Error);
    // The chain reads the same: leftovers are superseded, never a problem.
    Chain c = ScanChains(*repo).chains.front();
    EXPECT_TRUE(c.problems.empty()) << c.problems.front();
    std::vector<Record> records;
    ReadChain(*repo, c, std::nullopt, 0, [&](const follow::Record& rec) { records.push_back(rec); });
    EXPECT_EQ(Flatten(records), before);
    const bool mid_commit = steps[kill].rfind("wrote ", 0) == 0 ||
                            (kill + 1 < steps.size() && steps[kill + 1].rfind("removed ", 0) == 0);
    if (mid_commit) {
      EXPECT_FALSE(c.superseded.empty());
    }
    // The next compaction finishes the job: the same objects as a clean run.
    CompactChain(*repo, c, std::nullopt, Options(3000, 2));
    std::set<std::string> names;
    for (const auto& obj : repo->store().ListDir("")) names.insert(obj.name);
    EXPECT_EQ(names, clean_names);
    records.clear();
    ReadChain(*repo, ScanChains(*repo).chains.front(), std::nullopt, 0,
              [&](const follow::Record& rec) { records.push_back(rec); });
    EXPECT_EQ(Flatten(records), before);
  }
}

TEST_F(CompactTest, PruneRemovesSupersededByNamesAndDropsMergedChainsWhole) {
  RecordChain(12);
  const std::vector<std::string> before = ReadAll();
  // Kill a merge after its object is written: every original it replaces is left.
  CompactOptions o = Options(1 << 20, 2);
  o.on_step = [](const std::string& s) {
    if (s.rfind("wrote ", 0) == 0) throw Error(ErrorCode::kUnavailable, "killed");
  };
  EXPECT_THROW(CompactChain(*repo_, TheChain(), std::nullopt, o), Error);
  Chain c = TheChain();
  ASSERT_EQ(c.superseded.size(), 10u);
  ASSERT_EQ(c.segments.size(), 3u);
  const std::string merged = c.segments.front().name;
  // A second base, newer, so a policy of one drops the first.
  repo_->WriteManifest(BaseManifest(kBase2, 5000, 1796085000 + 86400, 'c'));

  catalog::RetentionPolicy keep_all;
  keep_all.keep_last = 10;
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1796085000 + 3 * 86400));
  backup::PruneReport p = backup::Prune(*repo_, keep_all, false, now);
  ASSERT_EQ(p.removed.size(), 10u);
  for (const auto& line : p.removed) {
    EXPECT_NE(line.find("superseded by " + merged), std::string::npos) << line;
  }
  EXPECT_EQ(p.chains[kBase].merged, 1u);
  EXPECT_TRUE(TheChain().superseded.empty());
  EXPECT_EQ(ReadAll(), before);

  // Leave some superseded objects again, then drop the whole chain: every segment goes
  // before the manifest, the highest number first, what a merged one replaces before it.
  CompactOptions o2 = Options(1 << 20, 0);
  size_t n = 0;
  o2.on_step = [&](const std::string&) {
    if (n++ == 1) throw Error(ErrorCode::kUnavailable, "killed");  // wrote, removed one
  };
  EXPECT_THROW(CompactChain(*repo_, TheChain(), std::nullopt, o2), Error);
  ASSERT_EQ(TheChain().superseded.size(), 2u);
  catalog::RetentionPolicy keep_one;
  keep_one.keep_last = 1;
  const auto later = std::chrono::system_clock::time_point(std::chrono::seconds(1796085000 + 3 * 86400));
  backup::PruneReport drop = backup::Prune(*repo_, keep_one, false, later);
  std::vector<backup::ParsedName> order;
  for (const auto& line : drop.removed) {
    backup::ParsedName pn = backup::ClassifyName(line.substr(0, line.find("  (")));
    if (pn.kind == backup::NameKind::kSegment) {
      order.push_back(pn);
      EXPECT_NE(line.find("with 3 segments (2 merged)"), std::string::npos) << line;
    }
    if (pn.kind == backup::NameKind::kManifest) {
      EXPECT_EQ(order.size(), 3u) << "segments go before the manifest";
    }
  }
  // 11 (left by the merge of 1..12, which removed 12), then 1..10 (superseded), then 1..12.
  ASSERT_EQ(order.size(), 3u);
  for (size_t i = 1; i < order.size(); i++) {
    EXPECT_TRUE(order[i - 1].seq > order[i].seq ||
                (order[i - 1].seq == order[i].seq && order[i - 1].seq_last < order[i].seq_last))
        << i;
  }
  EXPECT_TRUE(ScanChains(*repo_).chains.empty());
}

TEST_F(CompactTest, DamagedRunIsNotMergedAndNothingChanges) {
  RecordChain(8);
  const std::set<std::string> names = Names();
  // Segment 4 replaced by one that does not follow segment 3 (right name, wrong link).
  Chain c = TheChain();
  ReadSegmentResult four = ReadSegment(*repo_, c.segments[3], std::nullopt);
  std::vector<follow::Record> recs;
  ReadSegment(*repo_, c.segments[3], std::nullopt, [&](const follow::Record& r) { recs.push_back(r); });
  SegmentBuilder b(kBase, 4, four.header.first_revision - 1, Hex64('0'));
  for (const auto& r : recs) b.AddRecord(r);
  WriteSegment(*repo_, b.header(), b.Finish(), {});
  try {
    CompactChain(*repo_, TheChain(), std::nullopt, Options(1 << 20, 0));
    ADD_FAILURE() << "a broken link was merged";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
    EXPECT_NE(std::string(e.what()).find("does not follow"), std::string::npos) << e.what();
  }
  EXPECT_EQ(Names(), names);
}

TEST_F(CompactTest, AgeAndKeepLastAreRespectedAndDryRunWritesNothing) {
  RecordChain(10);
  const std::set<std::string> names = Names();
  CompactOptions young = Options(1 << 20, 0);
  young.min_age = std::chrono::seconds(3600);
  CompactReport r = CompactChain(*repo_, TheChain(), std::nullopt, young);
  EXPECT_EQ(r.merged_written, 0u);
  EXPECT_EQ(r.segments_read, 0u);
  EXPECT_EQ(Names(), names);
  // keep_last 9 of 10 leaves one segment: a run of one is not merged.
  EXPECT_EQ(CompactChain(*repo_, TheChain(), std::nullopt, Options(1 << 20, 9)).merged_written, 0u);
  EXPECT_EQ(Names(), names);
  CompactOptions dry = Options(1 << 20, 3);
  dry.dry_run = true;
  CompactReport d = CompactChain(*repo_, TheChain(), std::nullopt, dry);
  EXPECT_EQ(d.merged_written, 1u);
  EXPECT_EQ(d.segments_replaced, 7u);
  ASSERT_FALSE(d.actions.empty());
  EXPECT_EQ(d.actions.front().rfind("would write " + std::string(kBase) + ".seg-000001_000007-", 0), 0u)
      << d.actions.front();
  EXPECT_EQ(Names(), names);
  // Bad targets are refused.
  EXPECT_THROW(CompactChain(*repo_, TheChain(), std::nullopt, Options(0, 0)), Error);
}

TEST_F(CompactTest, EncryptedSegmentsMergeEncryptedAndNeedTheKey) {
  pipeline::KeySpec key = pipeline::ParseKey(Hex64('7'), "test key");
  RecordChain(6, key);
  const std::vector<std::string> before = ReadAll(key);
  try {
    CompactChain(*repo_, TheChain(), std::nullopt, Options(1 << 20, 0));
    ADD_FAILURE() << "merged without the key";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
  CompactChain(*repo_, TheChain(), key, Options(1 << 20, 0));
  Chain c = TheChain();
  ASSERT_EQ(c.segments.size(), 1u);
  EXPECT_TRUE(c.segments.front().parsed.ext.ends_with(".enc"));
  EXPECT_EQ(ReadAll(key), before);
}

TEST_F(CompactTest, OverlapsThatAreNotAMergeAreProblems) {
  RecordChain(6);
  Chain c = TheChain();
  // A merged object of 3..5 whose revisions do not match segments 3..5: not a cover.
  const auto& s3 = c.segments[2].parsed;
  const auto& s5 = c.segments[4].parsed;
  const std::string bogus =
      backup::MergedSegmentObjectName(kBase, 3, 5, s3.first_revision + 1, s5.last_revision, ".evt");
  repo_->store().Put(bogus, "x");
  Chain bad = TheChain();
  EXPECT_FALSE(bad.problems.empty());
  EXPECT_TRUE(bad.superseded.empty());
  EXPECT_EQ(bad.usable_segments, 2u);
  repo_->store().Remove(bogus);
  // One overlapping partly (4..7 over a chain of 6, after a merged 1..5).
  CompactChain(*repo_, TheChain(), std::nullopt, Options(1 << 20, 1));
  Chain merged = TheChain();
  ASSERT_EQ(merged.segments.size(), 2u);
  const std::string partly = backup::MergedSegmentObjectName(kBase, 4, 7, merged.segments[0].parsed.last_revision - 2,
                                                             merged.segments[1].parsed.last_revision + 5, ".evt");
  repo_->store().Put(partly, "x");
  Chain p = TheChain();
  ASSERT_FALSE(p.problems.empty());
  EXPECT_NE(p.problems.front().find("overlaps"), std::string::npos) << p.problems.front();
  EXPECT_EQ(p.usable_segments, 1u);
}

TEST(CompactLock, ConflictsWithCompactAndPruneOnly) {
  TempDir dir;
  auto store = store::OpenStore("file://" + dir.path());
  auto compact = backup::AcquireLock(*store, backup::kCompactOperation, nullptr);
  for (const char* op : {backup::kCompactOperation, "prune"}) {
    try {
      backup::AcquireLock(*store, op, nullptr);
      ADD_FAILURE() << op << " ran beside a compaction";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kLocked) << op;
    }
  }
  { auto f = backup::AcquireLock(*store, backup::kFollowOperation, nullptr); }
  { auto b = backup::AcquireLock(*store, "backup", nullptr); }
  compact.reset();
  // The other way round: a prune excludes a compaction; a recorder or backup does not.
  auto prune = backup::AcquireLock(*store, "prune", nullptr);
  EXPECT_THROW(backup::AcquireLock(*store, backup::kCompactOperation, nullptr), Error);
  prune.reset();
  auto follow = backup::AcquireLock(*store, backup::kFollowOperation, nullptr);
  auto backup_lock = backup::AcquireLock(*store, "backup", nullptr);
  EXPECT_NO_THROW(backup::AcquireLock(*store, backup::kCompactOperation, nullptr));
}

}  // namespace
}  // namespace etcdsafe::follow
