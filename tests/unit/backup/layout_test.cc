// Repository names (backup/layout.h): a segment's name says which chain it belongs to and
// where, and ClassifyName reads back exactly what SegmentObjectName writes. Anything
// that is only close to such a name is foreign: prune, list and verify never touch it.
#include "backup/layout.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace etcdsafe::backup {
namespace {

const std::vector<std::string> kExts = {".evt", ".evt.zst", ".evt.gz", ".evt.enc", ".evt.zst.enc", ".evt.gz.enc"};

TEST(SegmentNames, ExtensionsForEveryCompressionAndEncryption) {
  EXPECT_EQ(SegmentExtension("none", false), ".evt");
  EXPECT_EQ(SegmentExtension("zstd", false), ".evt.zst");
  EXPECT_EQ(SegmentExtension("gzip", false), ".evt.gz");
  EXPECT_EQ(SegmentExtension("none", true), ".evt.enc");
  EXPECT_EQ(SegmentExtension("zstd", true), ".evt.zst.enc");
  EXPECT_EQ(SegmentExtension("gzip", true), ".evt.gz.enc");
  EXPECT_FALSE(SegmentExtension("bzip2", false).has_value());
  EXPECT_FALSE(SegmentExtension("", true).has_value());
}

TEST(SegmentNames, ValidNamesRoundTrip) {
  struct Case {
    std::string chain, stem;
    int64_t revision;
    uint64_t seq;
    int64_t first, last;
    int64_t time_unix;
  };
  const std::vector<Case> cases = {
      {"etcd-snapshot-20261201-003000-r1234", "etcd-snapshot-20261201-003000", 1234, 1, 1235, 1300, 1796085000},
      {"etcd-snapshot-20261201-003000-2-r5", "etcd-snapshot-20261201-003000-2", 5, 42, 6, 5, 1796085000},  // empty
      {"a-20000101-000000-r0", "a", 0, 999999, 1, 1, 946684800},
      {"prod.eu_1-20261231-235959-r9", "prod.eu_1", 9, 1000000, 10, 9223372036854775807, 1798761599},
      {"x-20261201-003000-r7", "x", 7, 18446744073709551615ull >> 1, 8, 8, 1796085000},
  };
  for (const auto& c : cases) {
    for (const auto& ext : kExts) {
      const std::string name = SegmentObjectName(c.chain, c.seq, c.first, c.last, ext);
      ParsedName p = ClassifyName(name);
      ASSERT_EQ(p.kind, NameKind::kSegment) << name;
      EXPECT_EQ(p.stem + "-r" + std::to_string(p.revision), c.chain) << name;
      EXPECT_EQ(p.revision, c.revision) << name;
      EXPECT_EQ(p.seq, c.seq) << name;
      EXPECT_EQ(p.first_revision, c.first) << name;
      EXPECT_EQ(p.last_revision, c.last) << name;
      EXPECT_EQ(p.ext, ext) << name;
      EXPECT_EQ(p.time_unix, c.time_unix) << name;
      EXPECT_EQ(SegmentObjectName(p.stem + "-r" + std::to_string(p.revision), p.seq, p.first_revision,
                                  p.last_revision, p.ext),
                name);
      // Its file store temporary is a temporary of a segment.
      ParsedName t = ClassifyName(name + ".tmp-0123456789abcdef");
      EXPECT_EQ(t.kind, NameKind::kTemp) << name;
      EXPECT_EQ(t.base_kind, NameKind::kSegment) << name;
      EXPECT_EQ(t.base, name);
      EXPECT_EQ(t.seq, c.seq);
      EXPECT_EQ(p.seq_last, c.seq) << name;  // a plain segment
    }
  }
  // Numbers are zero-padded to six digits, no more.
  EXPECT_EQ(SegmentObjectName("e-20261201-003000-r1", 7, 2, 3, ".evt"), "e-20261201-003000-r1.seg-000007-2-3.evt");
  EXPECT_EQ(SegmentObjectName("e-20261201-003000-r1", 1234567, 2, 3, ".evt"),
            "e-20261201-003000-r1.seg-1234567-2-3.evt");
}

TEST(SegmentNames, NearMissesAreForeign) {
  const std::string id = "etcd-snapshot-20261201-003000-r100";
  const std::vector<std::string> foreign = {
      id + ".seg-00001-101-110.evt",              // five digits
      id + ".seg-0000001-101-110.evt",            // padded past six
      id + ".seg-000000-101-110.evt",             // number 0
      id + ".seg--101-110.evt",                   // no number
      id + ".seg-000001-0-110.evt",               // revision 0
      id + ".seg-000001-0101-110.evt",            // leading zero
      id + ".seg-000001-101-0110.evt",
      id + ".seg-000001-101-99.evt",              // last < first - 1
      id + ".seg-000001--101-110.evt",            // negative
      id + ".seg-000001-101--1.evt",
      id + ".seg-000001-101.evt",                 // no last
      id + ".seg-000001-101-110-1.evt",           // one number too many
      id + ".seg-000001-101-110.evt.enc.zst",     // extensions in the wrong order
      id + ".seg-000001-101-110.evt.bz2",
      id + ".seg-000001-101-110.EVT",
      id + ".seg-000001-101-110",                 // no extension
      id + ".seg-000001-101-110.evtx",
      id + ".seg-000001-101-110.evt.",
      id + ".seg-000001-101-1a0.evt",
      id + ".seg-000001-101-99999999999999999999.evt",  // past int64
      id + ".seg-000001-101-110.evt.sha256",      // segments have no sidecar
      id + ".seg-000001-101-110.evt.pending",     // nor intent record
      id + ".seg-000001-101-110.evt.manifest.json",
      id + ".SEG-000001-101-110.evt",
      id + ".seg_000001-101-110.evt",
      id + "seg-000001-101-110.evt",
      "etcd-snapshot-20261201-003000.seg-000001-101-110.evt",      // no -r<revision>
      "etcd-snapshot-20261201-003000-r.seg-000001-101-110.evt",
      "etcd-snapshot-20261201-003000-r0100.seg-000001-101-110.evt",
      "etcd-snapshot-20261301-003000-r100.seg-000001-101-110.evt",  // month 13
      "Etcd-20261201-003000-r100.seg-000001-101-110.evt",           // upper-case prefix
      "-etcd-20261201-003000-r100.seg-000001-101-110.evt",
      "sub/" + id + ".seg-000001-101-110.evt",                      // not at the top level
      id + ".seg-000001-101-110.evt.tmp-0123456789ABCDEF",          // not a store temporary
      id + ".seg-000001-101-110.evt\n",
      " " + id + ".seg-000001-101-110.evt",
      ".seg-000001-101-110.evt",
  };
  for (const auto& name : foreign) {
    EXPECT_EQ(ClassifyName(name).kind, NameKind::kForeign) << name;
  }
  // The same names done right are segments (the near-misses differ only where they say).
  EXPECT_EQ(ClassifyName(id + ".seg-000001-101-110.evt").kind, NameKind::kSegment);
  EXPECT_EQ(ClassifyName(id + ".seg-000001-101-100.evt").kind, NameKind::kSegment);  // no revisions
}

TEST(SegmentNames, MergedNamesRoundTrip) {
  const std::string id = "etcd-snapshot-20261201-003000-r100";
  EXPECT_EQ(MergedSegmentObjectName(id, 3, 7, 150, 420, ".evt.zst"), id + ".seg-000003_000007-150-420.evt.zst");
  EXPECT_EQ(MergedSegmentObjectName(id, 3, 3, 150, 420, ".evt"), SegmentObjectName(id, 3, 150, 420, ".evt"));
  EXPECT_EQ(MergedSegmentObjectName(id, 999999, 1234567, 5, 4, ".evt"), id + ".seg-999999_1234567-5-4.evt");
  struct Case {
    uint64_t seq, seq_last;
    int64_t first, last;
  };
  for (const Case& c : std::vector<Case>{{1, 2, 101, 200}, {1, 86400, 101, 9000000}, {41, 42, 500, 499},
                                         {999999, 1000000, 7, 9223372036854775807}}) {
    for (const auto& ext : kExts) {
      const std::string name = MergedSegmentObjectName(id, c.seq, c.seq_last, c.first, c.last, ext);
      ParsedName p = ClassifyName(name);
      ASSERT_EQ(p.kind, NameKind::kSegment) << name;
      EXPECT_EQ(p.stem + "-r" + std::to_string(p.revision), id) << name;
      EXPECT_EQ(p.seq, c.seq) << name;
      EXPECT_EQ(p.seq_last, c.seq_last) << name;
      EXPECT_EQ(p.first_revision, c.first) << name;
      EXPECT_EQ(p.last_revision, c.last) << name;
      EXPECT_EQ(p.ext, ext) << name;
      EXPECT_EQ(MergedSegmentObjectName(id, p.seq, p.seq_last, p.first_revision, p.last_revision, p.ext), name);
      ParsedName t = ClassifyName(name + ".tmp-0123456789abcdef");
      EXPECT_EQ(t.kind, NameKind::kTemp) << name;
      EXPECT_EQ(t.base_kind, NameKind::kSegment) << name;
      EXPECT_EQ(t.seq_last, c.seq_last) << name;
    }
  }
}

TEST(SegmentNames, MergedNearMissesAreForeign) {
  const std::string id = "etcd-snapshot-20261201-003000-r100";
  const std::vector<std::string> foreign = {
      id + ".seg-000003_000003-101-110.evt",   // one number twice: a merge of nothing
      id + ".seg-000007_000003-101-110.evt",   // backwards
      id + ".seg-000003_-101-110.evt",         // no last number
      id + ".seg-_000007-101-110.evt",         // no first number
      id + ".seg-000003_0000007-101-110.evt",  // padded past six
      id + ".seg-000003_00007-101-110.evt",    // five digits
      id + ".seg-000003_000000-101-110.evt",   // number 0
      id + ".seg-000000_000003-101-110.evt",
      id + ".seg-000003__000007-101-110.evt",
      id + ".seg-000003_000005_000007-101-110.evt",  // three numbers
      id + ".seg-000003-000007-101-110.evt",   // '-' for '_': one number too many
      id + ".seg-000003_000007-101.evt",       // no last revision
      id + ".seg-000003_000007-101-99.evt",    // last < first - 1
      id + ".seg-000003_000007-101-110.evt.sha256",
      id + ".seg-000003_00000a-101-110.evt",
      id + ".seg-000003_+00007-101-110.evt",
      id + ".seg-000003 000007-101-110.evt",
  };
  for (const auto& name : foreign) {
    EXPECT_EQ(ClassifyName(name).kind, NameKind::kForeign) << name;
  }
  EXPECT_EQ(ClassifyName(id + ".seg-000003_000007-101-110.evt").kind, NameKind::kSegment);
  EXPECT_EQ(ClassifyName(id + ".seg-000003_000007-101-100.evt").kind, NameKind::kSegment);
}

TEST(SegmentNames, CoversByNamesOnly) {
  const std::string id = "etcd-snapshot-20261201-003000-r100";
  auto seg = [&](uint64_t s1, uint64_t s2, int64_t first, int64_t last, const std::string& chain = "") {
    return ClassifyName(MergedSegmentObjectName(chain.empty() ? id : chain, s1, s2, first, last, ".evt"));
  };
  const ParsedName m = seg(3, 7, 150, 420);
  EXPECT_TRUE(SegmentCovers(m, seg(3, 3, 150, 200)));
  EXPECT_TRUE(SegmentCovers(m, seg(5, 5, 250, 300)));
  EXPECT_TRUE(SegmentCovers(m, seg(7, 7, 380, 420)));
  EXPECT_TRUE(SegmentCovers(m, seg(4, 6, 201, 379)));   // an earlier merge inside
  EXPECT_TRUE(SegmentCovers(m, seg(3, 5, 150, 300)));
  EXPECT_TRUE(SegmentCovers(m, seg(7, 7, 421, 420)));   // an event-less last one
  EXPECT_FALSE(SegmentCovers(m, seg(3, 7, 150, 420)));  // itself (or a twin): not a cover
  EXPECT_FALSE(SegmentCovers(m, seg(3, 7, 150, 421)));
  EXPECT_FALSE(SegmentCovers(m, seg(2, 2, 120, 149)));  // outside
  EXPECT_FALSE(SegmentCovers(m, seg(8, 8, 421, 430)));
  EXPECT_FALSE(SegmentCovers(m, seg(6, 8, 301, 430)));  // overlaps partly
  EXPECT_FALSE(SegmentCovers(m, seg(3, 3, 151, 200)));  // starts where m starts, at another revision
  EXPECT_FALSE(SegmentCovers(m, seg(7, 7, 380, 419)));  // ends where m ends, at another revision
  EXPECT_FALSE(SegmentCovers(m, seg(5, 5, 100, 300)));  // revisions outside m's
  EXPECT_FALSE(SegmentCovers(m, seg(5, 5, 250, 300, "etcd-snapshot-20261201-003000-r101")));  // another chain
  EXPECT_FALSE(SegmentCovers(seg(5, 5, 250, 300), seg(5, 5, 250, 300)));  // a plain one covers nothing
  EXPECT_FALSE(SegmentCovers(m, ClassifyName("etcd-snapshot-20261201-003000.db")));
}

TEST(SegmentNames, OtherNamesAreNotSegments) {
  EXPECT_EQ(ClassifyName("etcd-snapshot-20261201-003000.db.zst.enc").kind, NameKind::kData);
  EXPECT_EQ(ClassifyName("etcd-snapshot-20261201-003000-r100.manifest.json").kind, NameKind::kManifest);
  EXPECT_EQ(ClassifyName("etcd-snapshot-20261201-003000.db.zst.sha256").kind, NameKind::kSidecar);
  EXPECT_EQ(ClassifyName(kMarkerName).kind, NameKind::kMarker);
  ParsedName t = ClassifyName("etcd-snapshot-20261201-003000.db.tmp-0123456789abcdef");
  EXPECT_EQ(t.kind, NameKind::kTemp);
  EXPECT_EQ(t.base_kind, NameKind::kData);
  EXPECT_TRUE(IsBackupId("etcd-snapshot-20261201-003000-r100"));
  EXPECT_FALSE(IsBackupId("etcd-snapshot-20261201-003000-r100.seg-000001-101-110.evt"));
}

}  // namespace
}  // namespace etcdsafe::backup
