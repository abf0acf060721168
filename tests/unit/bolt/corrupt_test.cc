// Corrupt and hand-patched files: the right error or Tx.Check problem, never a crash.
#include <gtest/gtest.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "base/checksum.h"
#include "base/error.h"
#include "bolt/builder.h"
#include "bolt/format.h"
#include "bolt/inspect.h"
#include "bolt/reader.h"
#include "test_util.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::bolt {
namespace {

using testing::RevKey;

const std::string kData = ETCDSAFE_TESTDATA;

std::string ErrorOf(const std::string& path) {
  try {
    Inspect(path);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
    return e.what();
  }
  return "";
}

std::string EtcdctlOutput(const std::string& path) {
  std::string out;
  testutil::RunCommand("ETCDCTL_API=3 /usr/bin/etcdctl snapshot status '" + path + "' -w json", &out);
  return out;
}

using testing::Image;

// One non-inline bucket "key" of 2000 keys: a branch root over many leaves.
Image BuiltImage(const testutil::TempDir& dir) {
  std::string path = dir.Sub("base.db");
  Builder b(path);
  b.BeginBucket("key");
  for (int i = 1; i <= 2000; i++) b.Put(RevKey(i, 0), std::string(100, 'x'));
  b.EndBucket();
  b.BeginBucket("meta");
  b.Put("consistent_index", std::string(8, '\0'));
  b.EndBucket();
  b.Finish();
  return Image{testutil::ReadFile(path)};
}

TEST(CorruptTest, TooShortFiles) {
  testutil::TempDir dir;
  std::string p = dir.Sub("f.db");
  testutil::WriteFile(p, "");
  EXPECT_NE(ErrorOf(p).find("invalid database"), std::string::npos);
  testutil::WriteFile(p, std::string(100, '\x5a'));
  EXPECT_NE(ErrorOf(p).find("invalid database"), std::string::npos);
  testutil::WriteFile(p, testutil::ReadFile(kData + "/small.db").substr(0, 5000));
  EXPECT_NE(ErrorOf(p).find("file size too small"), std::string::npos);
  testutil::WriteFile(p, testutil::ReadFile(kData + "/small.db").substr(0, 12288));
  std::string err = ErrorOf(p);
  EXPECT_NE(err.find("truncated: file is 12288 bytes"), std::string::npos) << err;
  EXPECT_NE(err.find("20480 bytes"), std::string::npos) << err;
  try {
    Inspect(dir.Sub("missing.db"));
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

TEST(CorruptTest, FlippedMetaFallsBackToOtherMeta) {
  testutil::TempDir dir;
  Image img{testutil::ReadFile(kData + "/small.db")};
  int newer = img.meta(1, kMetaTxidOffset) > img.meta(0, kMetaTxidOffset) ? 1 : 0;
  *img.at(newer * kPageSize + kMetaRootOffset + 3) ^= 0x40;
  std::string p = dir.Sub("flip.db");
  img.Write(p);
  InspectResult r = Inspect(p);
  EXPECT_EQ(r.meta.page, 1 - newer);
  EXPECT_EQ(r.problem_count, 0u);
  auto j = nlohmann::json::parse(testutil::ReadFile(kData + "/small.status.json"));
  EXPECT_EQ(r.status.hash, j["hash"].get<uint32_t>());
  EXPECT_EQ(r.status.total_key, j["totalKey"].get<int64_t>());
  EXPECT_NE(EtcdctlOutput(p).find(std::to_string(r.status.hash)), std::string::npos);
}

TEST(CorruptTest, BothMetasBrokenReportsMetaZerosError) {
  testutil::TempDir dir;
  std::string p = dir.Sub("m.db");
  const std::string src = testutil::ReadFile(kData + "/small.db");
  struct Case {
    size_t off0;  // byte flipped in meta 0
    const char* want;
  };
  for (Case c : {Case{kMetaMagicOffset, "invalid database"}, Case{kMetaVersionOffset, "version mismatch"},
                 Case{kMetaTxidOffset, "checksum error"}}) {
    Image img{src};
    *img.at(c.off0) ^= 1;
    *img.at(kPageSize + kMetaTxidOffset) ^= 1;  // meta 1: checksum error
    img.Write(p);
    std::string err = ErrorOf(p);
    EXPECT_NE(err.find(c.want), std::string::npos) << err;
    EXPECT_NE(EtcdctlOutput(p).find(c.want), std::string::npos);
  }
}

TEST(CorruptTest, PageIdMismatch) {
  testutil::TempDir dir;
  Image img = BuiltImage(dir);
  Pgid b = img.FirstBucketRoot();
  Pgid leaf = LoadLE64(img.page(b) + kPageHeaderSize + 8);
  StoreLE64(img.page(leaf), leaf + 1000);
  std::string p = dir.Sub("id.db");
  img.Write(p);
  InspectResult r = Inspect(p);
  ASSERT_EQ(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0], "page " + std::to_string(leaf) + ": page id mismatch: header says " +
                               std::to_string(leaf + 1000));
  // The strict reader refuses it too.
  Reader rd = Reader::Open(p);
  EXPECT_THROW(rd.ForEach("key", [](Bytes, Bytes) {}), Error);
}

TEST(CorruptTest, DanglingChildPastHighWaterMark) {
  testutil::TempDir dir;
  Image img = BuiltImage(dir);
  Pgid b = img.FirstBucketRoot();
  Pgid pgid = img.meta(0, kMetaPgidOffset);
  StoreLE64(img.page(b) + kPageHeaderSize + 16 + 8, pgid + 5);  // child of element 1
  std::string p = dir.Sub("dangle.db");
  img.Write(p);
  InspectResult r = Inspect(p);
  ASSERT_GE(r.problems.size(), 1u);
  EXPECT_EQ(r.problems[0], "page " + std::to_string(pgid + 5) + ": out of bounds: " + std::to_string(pgid));
  Reader rd = Reader::Open(p);
  try {
    rd.ForEach("key", [](Bytes, Bytes) {});
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
    EXPECT_NE(std::string(e.what()).find("out of bounds"), std::string::npos);
  }
}

TEST(CorruptTest, MultipleReferencesAndInvalidType) {
  testutil::TempDir dir;
  Image img = BuiltImage(dir);
  Pgid b = img.FirstBucketRoot();
  uint8_t* e0 = img.page(b) + kPageHeaderSize;
  Pgid c0 = LoadLE64(e0 + 8);
  StoreLE64(e0 + 16 + 8, c0);  // element 1 -> element 0's child
  StoreLE64(e0 + 32 + 8, 0);   // element 2 -> meta page 0
  std::string p = dir.Sub("multi.db");
  img.Write(p);
  InspectResult r = Inspect(p);
  std::vector<std::string> want = {"page " + std::to_string(c0) + ": multiple references",
                                   "page 0: multiple references", "page 0: invalid type: meta"};
  EXPECT_EQ(r.problems, want);
  // etcdctl 3.4.23 panics here (freelist=none rebuilds the freelist first), naming the
  // first problem.
  EXPECT_NE(EtcdctlOutput(p).find(want[0]), std::string::npos);
}

TEST(CorruptTest, StoredFreelistChecks) {
  testutil::TempDir dir;
  Image base = BuiltImage(dir);
  Pgid pgid = base.meta(0, kMetaPgidOffset);
  // A freelist page (at pgid) listing `ids` and one unused page (pgid + 1).
  auto with_freelist = [&](std::vector<Pgid> ids, bool big_form) {
    Image img = base;
    img.AddFreelist(ids, big_form, 1);
    return img;
  };
  std::string p = dir.Sub("fl.db");
  const std::string unused = std::to_string(pgid + 1);

  with_freelist({}, false).Write(p);
  InspectResult r = Inspect(p);
  EXPECT_EQ(r.problems, std::vector<std::string>{"page " + unused + ": unreachable unfreed"});
  EXPECT_NE(EtcdctlOutput(p).find("1 errors found.\npage " + unused + ": unreachable unfreed"),
            std::string::npos);

  for (bool big : {false, true}) {
    with_freelist({pgid + 1}, big).Write(p);
    r = Inspect(p);
    EXPECT_EQ(r.problem_count, 0u) << r.problems.front();
    EXPECT_NE(EtcdctlOutput(p).find(std::to_string(r.status.hash)), std::string::npos);
  }

  with_freelist({pgid + 1, pgid + 1, 2}, false).Write(p);
  r = Inspect(p);
  std::vector<std::string> want = {"page " + unused + ": already freed", "page 2: reachable freed"};
  EXPECT_EQ(r.problems, want);
  std::string out = EtcdctlOutput(p);
  for (const auto& w : want) EXPECT_NE(out.find(w), std::string::npos) << out;
}

TEST(CorruptTest, PlainKeyInRootAndKeyOrder) {
  testutil::TempDir dir;
  Image img = BuiltImage(dir);
  std::string p = dir.Sub("root.db");
  Image a = img;
  uint8_t* root = a.page(a.meta(0, kMetaRootOffset));
  StoreLE32(root + kPageHeaderSize + 16, 0);  // "meta" entry loses its bucket flag
  a.Write(p);
  std::string err = ErrorOf(p);
  EXPECT_NE(err.find("cannot get hash of bucket meta"), std::string::npos) << err;
  EXPECT_NE(EtcdctlOutput(p).find("cannot get hash of bucket meta"), std::string::npos);

  Image o = img;
  Pgid b = o.FirstBucketRoot();
  Pgid leaf = LoadLE64(o.page(b) + kPageHeaderSize + 16 + 8);  // second leaf
  uint8_t* e = o.page(leaf) + kPageHeaderSize;
  e[LoadLE32(e + 4) + 7] ^= 0xFF;  // first key now sorts far beyond the rest
  o.Write(p);
  InspectResult r = Inspect(p);
  EXPECT_GE(r.problem_count, 1u);
  EXPECT_NE(r.problems[0].find("page " + std::to_string(leaf)), std::string::npos) << r.problems[0];
}

TEST(CorruptTest, ElementOutsidePageThrowsNamingThePage) {
  testutil::TempDir dir;
  Image img = BuiltImage(dir);
  Pgid b = img.FirstBucketRoot();
  Pgid leaf = LoadLE64(img.page(b) + kPageHeaderSize + 8);
  StoreLE32(img.page(leaf) + kPageHeaderSize + 12, 1u << 30);  // vsize of element 0
  std::string p = dir.Sub("elem.db");
  img.Write(p);
  std::string err = ErrorOf(p);
  EXPECT_NE(err.find("page " + std::to_string(leaf) + ": leaf element 0 is out of page bounds"),
            std::string::npos)
      << err;
  StoreLE16(img.page(leaf) + kPageCountOffset, 0xFFFF);
  img.Write(p);
  EXPECT_NE(ErrorOf(p).find("page " + std::to_string(leaf)), std::string::npos);
}

}  // namespace
}  // namespace etcdsafe::bolt

namespace etcdsafe::bolt {
namespace {

std::string WalkError(const std::string& path, size_t threads) {
  Reader rd = Reader::Open(path);
  try {
    if (threads == 0) {
      rd.ForEachEntry("key", [](Bytes, Bytes, bool) {});
    } else {
      rd.ForEachEntryParallel("key", threads, [](size_t, Bytes, Bytes, bool) {}, 0);
    }
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
    return e.what();
  }
  return "";
}

// The parallel walk of a clean bucket hands out every entry exactly once; on a damaged
// one (a problem in one subtree, a page two subtrees share) or when fn throws, what it
// throws is the sequential walk's error, whatever the thread count.
TEST(CorruptTest, ParallelWalkEntriesOnceAndSequentialErrors) {
  testutil::TempDir dir;
  Image img = BuiltImage(dir);
  const std::string clean = dir.Sub("clean.db");
  img.Write(clean);
  std::vector<std::string> want;
  Reader::Open(clean).ForEachEntry("key", [&](Bytes k, Bytes v, bool) {
    want.push_back(std::string(AsString(k)) + std::string(AsString(v)));
  });
  ASSERT_EQ(want.size(), 2000u);
  for (size_t threads : {1, 2, 3, 4}) {
    std::vector<std::vector<std::string>> per(threads);
    Reader rd = Reader::Open(clean);
    rd.ForEachEntryParallel("key", threads, [&](size_t w, Bytes k, Bytes v, bool is_bucket) {
      ASSERT_LT(w, threads);
      EXPECT_FALSE(is_bucket);
      per[w].push_back(std::string(AsString(k)) + std::string(AsString(v)));
    }, 0);
    std::vector<std::string> got;
    for (auto& p : per) got.insert(got.end(), p.begin(), p.end());
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, want) << threads;
    // fn's own error: the first in key order wins, as on one thread.
    try {
      rd.ForEachEntryParallel("key", threads, [&](size_t, Bytes k, Bytes, bool) {
        const std::string_view key = AsString(k);
        if (key == want[1500].substr(0, 17) || key == want[300].substr(0, 17)) {
          throw Error(ErrorCode::kDataLoss, "bad " + std::to_string(LoadBE64(k.data())));
        }
      }, 0);
      ADD_FAILURE() << threads;
    } catch (const Error& e) {
      EXPECT_STREQ(e.what(), "bad 301") << threads;
    }
  }
  // A default min_pages keeps a small file on one worker.
  {
    Reader rd = Reader::Open(clean);
    size_t max_worker = 0;
    rd.ForEachEntryParallel("key", 4, [&](size_t w, Bytes, Bytes, bool) { max_worker = std::max(max_worker, w); });
    EXPECT_EQ(max_worker, 0u);
  }

  const Pgid b = img.FirstBucketRoot();
  uint8_t* e0 = img.page(b) + kPageHeaderSize;
  const uint16_t n = LoadLE16(img.page(b) + kPageCountOffset);
  ASSERT_GE(n, 8);
  std::vector<std::string> cases;
  {  // page id mismatch in a late subtree
    Image c = img;
    const Pgid leaf = LoadLE64(e0 + 16 * (n - 2) + 8);
    StoreLE64(c.page(leaf), leaf + 1000);
    cases.push_back(dir.Sub("id.db"));
    c.Write(cases.back());
  }
  {  // the last subtree points at the first one's leaf: "multiple references" on the last
    Image c = img;
    uint8_t* ce0 = c.page(b) + kPageHeaderSize;
    StoreLE64(ce0 + 16 * (n - 1) + 8, LoadLE64(ce0 + 8));
    cases.push_back(dir.Sub("multi.db"));
    c.Write(cases.back());
  }
  {  // a dangling child in the middle and a bad page id later
    Image c = img;
    uint8_t* ce0 = c.page(b) + kPageHeaderSize;
    StoreLE64(ce0 + 16 * (n / 2) + 8, c.meta(0, kMetaPgidOffset) + 5);
    const Pgid leaf = LoadLE64(ce0 + 16 * (n - 1) + 8);
    StoreLE64(c.page(leaf), leaf + 7);
    cases.push_back(dir.Sub("two.db"));
    c.Write(cases.back());
  }
  for (const std::string& p : cases) {
    const std::string seq = WalkError(p, 0);
    ASSERT_NE(seq, "") << p;
    for (size_t threads : {2, 3, 4}) {
      for (int round = 0; round < 5; round++) EXPECT_EQ(WalkError(p, threads), seq) << p << " x" << threads;
    }
  }
}

}  // namespace
}  // namespace etcdsafe::bolt
