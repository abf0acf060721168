// StreamInspector: the same result as Inspect(path) for every file, fed in any chunking;
// corrupt files give the same problems/errors; truncation is kDataLoss; memory stays
// O(pages) whatever the value sizes.
#include "bolt/stream_inspect.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>

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

// Outcome of one inspection, comparable across the two implementations.
struct Outcome {
  bool ok = false;
  std::string error;  // what() when !ok
  ErrorCode code = ErrorCode::kInternal;
  InspectResult r;
};

bool operator==(const Outcome& a, const Outcome& b) {
  if (a.ok != b.ok) return false;
  if (!a.ok) return a.error == b.error && a.code == b.code;
  const InspectResult &x = a.r, &y = b.r;
  return x.status.hash == y.status.hash && x.status.revision == y.status.revision &&
         x.status.total_key == y.status.total_key && x.status.total_size == y.status.total_size &&
         x.problems == y.problems && x.problem_count == y.problem_count &&
         x.meta.root == y.meta.root && x.meta.pgid == y.meta.pgid && x.meta.txid == y.meta.txid &&
         x.meta.freelist == y.meta.freelist && x.meta.page == y.meta.page;
}

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
  if (!o.ok) return os << "error: " << o.error;
  os << "hash=" << o.r.status.hash << " rev=" << o.r.status.revision
     << " keys=" << o.r.status.total_key << " size=" << o.r.status.total_size
     << " problems=" << o.r.problem_count;
  for (size_t i = 0; i < o.r.problems.size() && i < 5; i++) os << " [" << o.r.problems[i] << "]";
  return os;
}

template <class F>
Outcome Run(F&& f) {
  Outcome o;
  try {
    o.r = f();
    o.ok = true;
  } catch (const Error& e) {
    o.error = e.what();
    o.code = e.code();
  }
  return o;
}

Outcome ViaInspect(const std::string& image, const std::string& name) {
  return Run([&] {
    Reader r = Reader::FromMemory(AsBytes(image), name);
    return Inspect(r);
  });
}

// The parallel walk, forced on whatever the size: must give exactly ViaInspect's outcome.
Outcome ViaParallelInspect(const std::string& image, const std::string& name, size_t threads = 3) {
  return Run([&] {
    Reader r = Reader::FromMemory(AsBytes(image), name);
    InspectOptions opts;
    opts.threads = threads;
    opts.min_parallel_pages = 0;
    return Inspect(r, opts);
  });
}

// Summaries that spill after a few KiB: every record and page-table chunk goes through
// the spill file and back.
StreamInspector::Limits TinyLimits() {
  StreamInspector::Limits l;
  l.record_chunk_bytes = 4096;
  l.resident_record_chunks = 2;
  l.pages_per_chunk = 16;
  l.resident_page_chunks = 2;
  return l;
}

// chunk == 0: random sizes in [1, 70000].
Outcome ViaStream(const std::string& image, const std::string& name, size_t chunk,
                  uint64_t seed = 1, StreamInspector::Limits limits = {}) {
  return Run([&] {
    StreamInspector s(name, limits);
    std::mt19937_64 rng(seed);
    const auto* p = reinterpret_cast<const uint8_t*>(image.data());
    size_t off = 0;
    while (off < image.size()) {
      size_t n = chunk != 0 ? chunk : 1 + rng() % 70000;
      n = std::min(n, image.size() - off);
      s.Write(p + off, n);
      off += n;
    }
    EXPECT_EQ(s.bytes(), image.size());
    return s.Finish();
  });
}

void ExpectSame(const std::string& image, const std::string& what,
                std::vector<size_t> chunks = {1, 7, 4096, 32768, 0}) {
  Outcome want = ViaInspect(image, "db");
  for (size_t threads : {2, 3}) {
    Outcome par = ViaParallelInspect(image, "db", threads);
    EXPECT_EQ(par, want) << what << " parallel x" << threads << "\n want: " << want << "\n got:  " << par;
  }
  for (size_t c : chunks) {
    if (c == 1 && image.size() > (size_t{4} << 20)) continue;
    Outcome got = ViaStream(image, "db", c);
    EXPECT_EQ(got, want) << what << " chunk=" << c << "\n want: " << want << "\n got:  " << got;
  }
  Outcome spilled = ViaStream(image, "db", 0, 3, TinyLimits());
  EXPECT_EQ(spilled, want) << what << " spilled\n want: " << want << "\n got:  " << spilled;
}

using Image = testing::Image;

std::string Build(const testing::Content& c, BuilderOptions opts = {}) {
  testutil::TempDir dir;
  std::string path = dir.Sub("b.db");
  testing::WriteContent(c, path, opts);
  return testutil::ReadFile(path);
}

// One non-inline bucket "key" of 2000 keys (branch root over many leaves) + "meta".
Image BaseImage() {
  testing::Content c;
  for (int i = 1; i <= 2000; i++) c["key"][RevKey(i, 0)] = std::string(100, 'x');
  c["meta"]["consistent_index"] = std::string(8, '\0');
  return Image{Build(c)};
}

TEST(StreamInspectTest, TestdataFilesMatchInspectForEveryChunking) {
  for (const char* f : {"small.db", "medium.db"}) {
    std::string path = kData + "/" + f;
    std::string image = testutil::ReadFile(path);
    InspectResult want = Inspect(path);
    ASSERT_EQ(want.problem_count, 0u);
    for (size_t c : {size_t{1}, size_t{7}, size_t{4096}, size_t{32768}, size_t{0}}) {
      if (c == 1 && image.size() > (size_t{4} << 20)) continue;
      Outcome got = ViaStream(image, path, c, c + 5);
      ASSERT_TRUE(got.ok) << f << " " << got.error;
      EXPECT_EQ(got.r.status.hash, want.status.hash) << f << " chunk " << c;
      EXPECT_EQ(got.r.status.revision, want.status.revision) << f;
      EXPECT_EQ(got.r.status.total_key, want.status.total_key) << f;
      EXPECT_EQ(got.r.status.total_size, want.status.total_size) << f;
      EXPECT_TRUE(got.r.problems.empty()) << f;
    }
  }
}

TEST(StreamInspectTest, RandomBuiltDatabasesMatchInspect) {
  std::mt19937_64 rng(20240601);
  for (int round = 0; round < 40; round++) {
    testing::Content c;
    int nb = 1 + static_cast<int>(rng() % 6);
    for (int b = 0; b < nb; b++) {
      std::string name = b == 0 ? "key" : "bucket" + std::to_string(rng() % 1000);
      auto& kvs = c[name];
      int shape = static_cast<int>(rng() % 5);
      size_t n = shape == 0 ? 0 : shape == 1 ? rng() % 5 : shape == 2 ? rng() % 300 : rng() % 3000;
      for (size_t i = 0; i < n; i++) {
        std::string k = name == "key" ? RevKey(rng() % 100000 + 1, rng() % 3)
                                      : testing::RandomBytes(rng, 1 + rng() % 40);
        size_t vs;
        switch (rng() % 10) {
          case 0: vs = 0; break;
          case 1: vs = 4000 + rng() % 20000; break;  // overflow pages
          default: vs = rng() % 300;
        }
        kvs[k] = testing::RandomBytes(rng, vs);
      }
    }
    BuilderOptions opts;
    opts.inline_small_buckets = rng() % 2 == 0;
    Image img{Build(c, opts)};
    Status expect = testing::ExpectedStatus(c);
    if (rng() % 3 == 0) img.AddFreelist({}, rng() % 2 == 0, 0);  // empty stored freelist
    Outcome want = ViaInspect(img.b, "db");
    ASSERT_TRUE(want.ok) << want.error;
    ASSERT_EQ(want.r.problem_count, 0u) << want;
    ASSERT_EQ(want.r.status.hash, expect.hash);
    ExpectSame(img.b, "round " + std::to_string(round), {7, 4096, 32768, 0});
  }
}

// The parallel walk really runs on a clean db, and a cross-subtree defect (two branch
// entries pointing at one leaf) makes it fall back to the sequential walk's exact output.
TEST(InspectTest, ParallelWalkRunsAndFallsBackOnProblems) {
  Image base = BaseImage();
  Outcome seq = ViaInspect(base.b, "db");
  ASSERT_TRUE(seq.ok) << seq.error;
  EXPECT_EQ(seq.r.parallel_buckets, 0);  // small file: below min_parallel_pages
  for (size_t threads : {2, 4}) {
    Outcome par = ViaParallelInspect(base.b, "db", threads);
    EXPECT_EQ(par, seq);
    EXPECT_EQ(par.r.parallel_buckets, 1) << threads;
  }
  // Three levels (root -> branches -> ~650 leaves): the main thread expands the branch
  // level before the threads take over.
  testing::Content c;
  for (int i = 1; i <= 20000; i++) c["key"][RevKey(i, 0)] = std::string(100, static_cast<char>('a' + i % 26));
  c["meta"]["consistent_index"] = std::string(8, '\0');
  Image deep{Build(c)};
  Outcome deep_seq = ViaInspect(deep.b, "db");
  ASSERT_TRUE(deep_seq.ok) << deep_seq.error;
  EXPECT_EQ(deep_seq.r.status.hash, testing::ExpectedStatus(c).hash);
  for (size_t threads : {2, 4}) {
    Outcome par = ViaParallelInspect(deep.b, "db", threads);
    EXPECT_EQ(par, deep_seq);
    EXPECT_EQ(par.r.parallel_buckets, 1) << threads;
  }
  {
    Image img = deep;  // a leaf's key out of order below the expanded level
    Pgid root = img.FirstBucketRoot();
    Pgid branch = LoadLE64(img.page(root) + kPageHeaderSize + 16 + 8);
    EXPECT_TRUE(LoadLE16(img.page(branch) + kPageFlagsOffset) & kBranchPageFlag);
    Pgid leaf = LoadLE64(img.page(branch) + kPageHeaderSize + 3 * 16 + 8);
    uint8_t* e = img.page(leaf) + kPageHeaderSize;
    e[LoadLE32(e + 4) + 7] ^= 0xFF;
    Outcome want = ViaInspect(img.b, "db");
    EXPECT_GE(want.r.problem_count, 1u);
    EXPECT_EQ(ViaParallelInspect(img.b, "db", 4), want);
  }

  Image img = base;
  Pgid b = img.FirstBucketRoot();
  uint8_t* e0 = img.page(b) + kPageHeaderSize;
  StoreLE64(e0 + 16 + 8, LoadLE64(e0 + 8));  // child 1 := child 0
  Outcome want = ViaInspect(img.b, "db");
  Outcome par = ViaParallelInspect(img.b, "db", 2);
  EXPECT_EQ(par, want);
  EXPECT_EQ(par.r.parallel_buckets, 0);
  EXPECT_GE(want.r.problem_count, 1u);
}

// No writable TMPDIR (a read-only container root): the summaries stay in memory, the
// result is unchanged, and spill_error() says why (backup turns it into a note).
TEST(StreamInspectTest, UnwritableTmpdirKeepsSummariesInMemory) {
  Image img = BaseImage();
  Outcome want = ViaInspect(img.b, "db");
  const char* old = std::getenv("TMPDIR");
  std::string saved = old != nullptr ? old : "";
  ::setenv("TMPDIR", "/nonexistent-etcdsafe-tmp", 1);
  StreamInspector s("db", TinyLimits());
  s.Write(reinterpret_cast<const uint8_t*>(img.b.data()), img.b.size());
  Outcome got = ::etcdsafe::bolt::Run([&] { return s.Finish(); });
  if (old != nullptr) {
    ::setenv("TMPDIR", saved.c_str(), 1);
  } else {
    ::unsetenv("TMPDIR");
  }
  EXPECT_EQ(got, want);
  EXPECT_NE(s.spill_error().find("/nonexistent-etcdsafe-tmp"), std::string::npos) << s.spill_error();
  EXPECT_TRUE(ViaStream(img.b, "db", 0, 3, TinyLimits()) == want);  // and spilling works again
}

TEST(StreamInspectTest, TrailerAndSlackAreIgnored) {
  Image img = BaseImage();
  Outcome want = ViaInspect(img.b, "db");
  ASSERT_TRUE(want.ok);
  std::string with_sha = img.b + std::string(32, '\xAB');
  EXPECT_EQ(ViaStream(with_sha, "db", 0), want);
  EXPECT_EQ(ViaStream(with_sha + std::string(3 * kPageSize, '\x01'), "db", 4096), want);
}

TEST(StreamInspectTest, TruncatedStreamIsDataLoss) {
  Image img = BaseImage();
  Pgid pgid = img.meta(0, kMetaPgidOffset);
  for (size_t len : {img.b.size() - 1, img.b.size() - kPageSize, size_t{3 * kPageSize + 100},
                     size_t{2 * kPageSize}}) {
    Outcome o = ViaStream(img.b.substr(0, len), "s", 4096);
    ASSERT_FALSE(o.ok) << len;
    EXPECT_EQ(o.code, ErrorCode::kDataLoss);
    EXPECT_EQ(o.error, "s: snapshot stream truncated: got " + std::to_string(len) +
                           " bytes, meta says " + std::to_string(pgid * kPageSize));
  }
  // Shorter than the metas: the reader's own errors.
  EXPECT_EQ(ViaStream(img.b.substr(0, 100), "db", 7), ViaInspect(img.b.substr(0, 100), "db"));
  EXPECT_EQ(ViaStream(img.b.substr(0, 5000), "db", 7), ViaInspect(img.b.substr(0, 5000), "db"));
  EXPECT_EQ(ViaStream("", "db", 7), ViaInspect("", "db"));
}

TEST(StreamInspectTest, MetaChoiceAndMetaErrorsMatchReader) {
  Image img = BaseImage();
  Image a = img;
  a.page(0)[kMetaRootOffset] ^= 1;  // checksum error in meta 0 -> meta 1
  ExpectSame(a.b, "meta0 broken");
  Image b = img;
  b.page(0)[kMetaMagicOffset] ^= 1;
  b.page(1)[kMetaVersionOffset] ^= 1;
  ExpectSame(b.b, "both metas broken");
  Outcome o = ViaStream(b.b, "db", 4096);
  EXPECT_EQ(o.error, "db: invalid database");
  Image c = img;
  c.SetMeta(kMetaPgidOffset, 1);
  ExpectSame(c.b, "pgid 1");
}

TEST(StreamInspectTest, CorruptionsGiveInspectsProblems) {
  Image base = BaseImage();
  Pgid b = base.FirstBucketRoot();
  Pgid pgid = base.meta(0, kMetaPgidOffset);
  {
    Image img = base;
    Pgid leaf = LoadLE64(img.page(b) + kPageHeaderSize + 8);
    StoreLE64(img.page(leaf), leaf + 1000);
    ExpectSame(img.b, "page id mismatch");
    EXPECT_EQ(ViaStream(img.b, "db", 0).r.problems.size(), 1u);
  }
  {
    Image img = base;
    StoreLE64(img.page(b) + kPageHeaderSize + 16 + 8, pgid + 5);
    ExpectSame(img.b, "dangling child");
  }
  {
    Image img = base;
    uint8_t* e0 = img.page(b) + kPageHeaderSize;
    StoreLE64(e0 + 16 + 8, LoadLE64(e0 + 8));
    StoreLE64(e0 + 32 + 8, 0);
    ExpectSame(img.b, "multiple references + invalid type");
    EXPECT_EQ(ViaStream(img.b, "db", 0).r.problems.size(), 3u);
  }
  {
    Image img = base;
    uint8_t* root = img.page(img.meta(0, kMetaRootOffset));
    StoreLE32(root + kPageHeaderSize + 16, 0);  // "meta" loses its bucket flag
    ExpectSame(img.b, "plain key in root");
    EXPECT_NE(ViaStream(img.b, "db", 0).error.find("cannot get hash of bucket meta"), std::string::npos);
  }
  {
    Image img = base;
    Pgid leaf = LoadLE64(img.page(b) + kPageHeaderSize + 16 + 8);
    uint8_t* e = img.page(leaf) + kPageHeaderSize;
    e[LoadLE32(e + 4) + 7] ^= 0xFF;
    ExpectSame(img.b, "key order");
    EXPECT_GE(ViaStream(img.b, "db", 0).r.problem_count, 1u);
    // Swap two keys inside a leaf: in-page order problems.
    Image s = base;
    uint8_t* f = s.page(leaf) + kPageHeaderSize;
    uint8_t* k3 = f + 3 * 16 + LoadLE32(f + 3 * 16 + 4);
    k3[7] ^= 0x40;
    ExpectSame(s.b, "in-page order");
  }
  {
    Image img = base;
    Pgid leaf = LoadLE64(img.page(b) + kPageHeaderSize + 8);
    StoreLE32(img.page(leaf) + kPageHeaderSize + 12, 1u << 30);
    ExpectSame(img.b, "element outside page");
    EXPECT_NE(ViaStream(img.b, "db", 0).error.find("leaf element 0 is out of page bounds"),
              std::string::npos);
    StoreLE16(img.page(leaf) + kPageCountOffset, 0xFFFF);
    ExpectSame(img.b, "count too large");
  }
  {
    Image img = base;  // a short key in bucket "key"
    Pgid leaf = LoadLE64(img.page(b) + kPageHeaderSize + 8);
    StoreLE32(img.page(leaf) + kPageHeaderSize + 8, 5);
    ExpectSame(img.b, "short revision key");
  }
  // Stored freelist: fine, unreachable unfreed, already freed, reachable freed, bad page.
  for (bool big : {false, true}) {
    Image img = base;
    img.AddFreelist({pgid + 1}, big, 1);
    ExpectSame(img.b, "freelist ok");
    EXPECT_EQ(ViaStream(img.b, "db", 0).r.problem_count, 0u);
  }
  {
    Image img = base;
    img.AddFreelist({}, false, 1);
    ExpectSame(img.b, "unreachable unfreed");
    Image d = base;
    d.AddFreelist({pgid + 1, pgid + 1, 2, b, 0}, false, 1);
    ExpectSame(d.b, "already freed + reachable freed");
    EXPECT_GE(ViaStream(d.b, "db", 0).r.problem_count, 3u);
    std::vector<Pgid> many;
    for (Pgid i = 0; i < 70000; i++) many.push_back(pgid + 1 + i % 3);
    Image m = base;
    m.AddFreelist(many, true, 3);
    ExpectSame(m.b, "big freelist with overflow");
    Image t = base;
    t.AddFreelist({}, false, 1);
    StoreLE16(t.page(pgid) + kPageFlagsOffset, kLeafPageFlag);
    ExpectSame(t.b, "freelist page of wrong type");
    Image o = base;
    o.AddFreelist({}, false, 1);
    StoreLE32(o.page(pgid) + kPageOverflowOffset, 7);
    ExpectSame(o.b, "freelist overflow past pgid");
    Image c = base;
    c.AddFreelist({}, false, 1);
    StoreLE16(c.page(pgid) + kPageCountOffset, 1000);
    ExpectSame(c.b, "freelist count too large");
    Image x = base;
    x.AddFreelist({}, false, 1);
    x.SetMeta(kMetaFreelistOffset, pgid + 50);
    ExpectSame(x.b, "freelist id past pgid");
  }
}

// A freed page's stale header may claim the next pages as its overflow while they hold
// live pages: every page must be summarised as a possible page head.
TEST(StreamInspectTest, StaleOverflowHeaderOverLivePages) {
  Image img = BaseImage();
  Pgid b = img.FirstBucketRoot();
  Pgid pgid = img.meta(0, kMetaPgidOffset);
  Pgid leaf = LoadLE64(img.page(b) + kPageHeaderSize + 8);
  std::string stale(kPageSize, '\0');
  auto* s = reinterpret_cast<uint8_t*>(stale.data());
  StoreLE64(s, pgid);
  StoreLE16(s + kPageFlagsOffset, kLeafPageFlag);
  StoreLE32(s + kPageOverflowOffset, 2);
  img.b += stale;
  img.b += img.b.substr(leaf * kPageSize, kPageSize);  // live copy at pgid + 1
  StoreLE64(img.page(pgid + 1), pgid + 1);
  img.b += std::string(kPageSize, '\0');
  StoreLE64(img.page(b) + kPageHeaderSize + 8, pgid + 1);
  img.SetMeta(kMetaPgidOffset, pgid + 3);
  Outcome want = ViaInspect(img.b, "db");
  ASSERT_TRUE(want.ok) << want.error;
  EXPECT_EQ(want.r.problem_count, 0u) << want;
  ExpectSame(img.b, "stale overflow header");
}

// Random byte damage in data pages: whatever Inspect says, the stream says too.
TEST(StreamInspectTest, RandomDamageMatchesInspect) {
  std::mt19937_64 rng(7);
  Image base = BaseImage();
  Image with_fl = base;
  with_fl.AddFreelist({}, false, 0);
  int differing = 0;
  for (int round = 0; round < 400; round++) {
    Image img = round % 2 ? base : with_fl;
    Pgid pgid = img.meta(0, kMetaPgidOffset);
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; f++) {
      Pgid p = 2 + rng() % (pgid - 2);
      size_t off = rng() % 3 == 0 ? rng() % 64 : rng() % kPageSize;
      img.page(p)[off] ^= static_cast<uint8_t>(1u << (rng() % 8));
    }
    Outcome want = ViaInspect(img.b, "db");
    Outcome got = ViaStream(img.b, "db", 0, round, round % 3 == 0 ? TinyLimits() : StreamInspector::Limits{});
    Outcome par = ViaParallelInspect(img.b, "db", 2 + round % 2);
    if (!(got == want)) differing++;
    if (!(par == want)) differing++;
    EXPECT_EQ(par, want) << "parallel, round " << round << "\n want: " << want << "\n got:  " << par;
    EXPECT_EQ(got, want) << "round " << round << "\n want: " << want << "\n got:  " << got;
  }
  EXPECT_EQ(differing, 0);
}

// Memory: summaries only, never the values, and only a few MiB of those. ~48 MiB of 1 KiB
// values here.
TEST(StreamInspectTest, MemoryStaysFlat) {
  testutil::TempDir dir;
  std::string path = dir.Sub("m.db");
  {
    Builder bl(path);
    bl.BeginBucket("key");
    std::string v(1000, 'v');
    for (uint64_t i = 1; i <= 48000; i++) {
      StoreBE64(reinterpret_cast<uint8_t*>(v.data()), i);
      bl.Put(RevKey(i, 0), v);
    }
    bl.EndBucket();
    bl.Finish();
  }
  std::string image = testutil::ReadFile(path);
  StreamInspector s("m.db");
  size_t peak = 0;
  for (size_t off = 0; off < image.size(); off += 32768) {
    s.Write(reinterpret_cast<const uint8_t*>(image.data()) + off, std::min<size_t>(32768, image.size() - off));
    peak = std::max(peak, s.memory_bytes());
  }
  InspectResult got = s.Finish();
  InspectResult want = Inspect(path);
  EXPECT_EQ(got.status.hash, want.status.hash);
  EXPECT_EQ(got.status.revision, 48000);
  // Summaries beyond the resident chunks (8 x 1 MiB records, 4 x 768 KiB page table) are
  // spilled: memory stays flat however many pages there are.
  EXPECT_LT(peak, size_t{12} << 20) << image.size() / kPageSize << " pages";
  StreamInspector tiny("m.db", TinyLimits());
  tiny.Write(reinterpret_cast<const uint8_t*>(image.data()), image.size());
  EXPECT_LT(tiny.memory_bytes(), size_t{1} << 20);
  EXPECT_EQ(tiny.Finish().status.hash, want.status.hash);
}

long RssKb(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(field, 0) == 0) return std::atol(line.c_str() + std::strlen(field));
  }
  return -1;
}

// Always run (a few seconds): a >= 1 GiB database streamed in 32 KiB reads; peak RSS growth
// must stay under 64 MiB and the summaries held in memory under 12 MiB. Prints the timings (GTest RecordProperty).
TEST(StreamInspectTest, BigDatabaseBoundedRss) {
  testutil::TempDir dir;
  std::string path = dir.Sub("big.db");
  const uint64_t n = 4'400'000;  // 17-byte keys + 220-byte values: ~1.1 GiB
  {
    Builder bl(path);
    bl.BeginBucket("key");
    std::string v(220, 'v');
    for (uint64_t i = 1; i <= n; i++) {
      StoreBE64(reinterpret_cast<uint8_t*>(v.data()), i * 0x9E3779B97F4A7C15ull);
      bl.Put(RevKey(i, 0), v);
    }
    bl.EndBucket();
    bl.BeginBucket("meta");
    bl.Put("consistent_index", std::string(8, '\1'));
    bl.EndBucket();
    bl.Finish();
  }
  auto t0 = std::chrono::steady_clock::now();
  InspectResult want = Inspect(path);
  double inspect_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  long base_kb = RssKb("VmRSS:");
  long peak_kb = base_kb;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  ASSERT_NE(f, nullptr);
  std::vector<uint8_t> buf(32768);
  t0 = std::chrono::steady_clock::now();
  StreamInspector s(path);
  size_t peak_held = 0;
  uint64_t total = 0;
  for (size_t k = 0;; k++) {
    size_t got = std::fread(buf.data(), 1, buf.size(), f);
    if (got == 0) break;
    s.Write(buf.data(), got);
    total += got;
    if (k % 256 == 0) {
      peak_kb = std::max(peak_kb, RssKb("VmRSS:"));
      peak_held = std::max(peak_held, s.memory_bytes());
    }
  }
  std::fclose(f);
  InspectResult got = s.Finish();
  double stream_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  peak_kb = std::max(peak_kb, RssKb("VmRSS:"));
  EXPECT_GE(total, uint64_t{1} << 30);
  EXPECT_EQ(got.status.hash, want.status.hash);
  EXPECT_EQ(got.status.total_key, want.status.total_key);
  EXPECT_EQ(got.status.revision, static_cast<int64_t>(n));
  EXPECT_EQ(got.problem_count, 0u);
  long growth_kb = peak_kb - base_kb;
  EXPECT_LT(growth_kb, 64 * 1024);
  EXPECT_LT(peak_held, size_t{12} << 20);  // summaries of ~270k pages: the rest is spilled
  RecordProperty("bytes", std::to_string(total));
  RecordProperty("inspect_seconds", std::to_string(inspect_s));
  RecordProperty("stream_seconds", std::to_string(stream_s));
  RecordProperty("rss_growth_kb", std::to_string(growth_kb));
  std::fprintf(stderr, "big db: %llu bytes, Inspect %.3f s, stream %.3f s, RSS growth %ld KiB\n",
               static_cast<unsigned long long>(total), inspect_s, stream_s, growth_kb);
}

}  // namespace
}  // namespace etcdsafe::bolt
