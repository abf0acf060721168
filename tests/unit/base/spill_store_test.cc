#include "base/spill_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstring>
#include <filesystem>
#include <random>

#include "base/error.h"
#include "testutil/temp_dir.h"

namespace etcdsafe {
namespace {

std::vector<uint8_t> Record(size_t i, size_t n) {
  std::vector<uint8_t> r(n);
  for (size_t k = 0; k < n; k++) r[k] = static_cast<uint8_t>(i * 31 + k);
  return r;
}

// Records of mixed sizes (some larger than a chunk) come back intact in any order while
// at most `resident` chunks stay in memory; the rest went to the spill file.
TEST(SpillStore, RecordsSurviveSpillingAndRandomReads) {
  testutil::TempDir dir;
  SpillStore s(4096, 3, dir.path());
  std::mt19937 rng(5);
  std::vector<std::pair<uint64_t, std::vector<uint8_t>>> recs;
  for (size_t i = 0; i < 3000; i++) {
    size_t n = i % 97 == 0 ? 9000 : 1 + rng() % 300;
    recs.emplace_back(0, Record(i, n));
    recs.back().first = s.Append(recs.back().second);
    EXPECT_LE(s.memory_bytes(), 3 * 9000u);
  }
  EXPECT_GT(s.spilled_bytes(), 200000u);
  for (int round = 0; round < 3; round++) {
    for (size_t k = 0; k < recs.size(); k++) {
      size_t i = round == 0 ? k : rng() % recs.size();
      SpillStore::View v = s.At(recs[i].first);
      ASSERT_EQ(0, std::memcmp(v.data, recs[i].second.data(), recs[i].second.size())) << i;
      EXPECT_LE(s.memory_bytes(), 3 * 9000u);
    }
  }
  // The spill file has no name: the directory stays empty.
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(SpillStore, KeepHoldsAChunkTheStoreDropped) {
  testutil::TempDir dir;
  SpillStore s(1024, 2, dir.path());
  uint64_t first = s.Append(Record(1, 1000));
  SpillStore::View v = s.At(first);
  for (size_t i = 0; i < 50; i++) s.Append(Record(i, 1000));  // first chunk spilled and dropped
  EXPECT_EQ(0, std::memcmp(v.data, Record(1, 1000).data(), 1000));
}

TEST(SpillStore, OverwriteReachesSpilledAndCachedChunks) {
  testutil::TempDir dir;
  SpillStore s(1024, 2, dir.path());
  std::vector<uint64_t> refs;
  for (size_t i = 0; i < 40; i++) refs.push_back(s.Append(Record(i, 1000)));
  const uint8_t patch[4] = {9, 8, 7, 6};
  s.Overwrite(refs[0] + 10, patch, 4);  // on disk only
  (void)s.At(refs[1]);                  // cached copy
  s.Overwrite(refs[1] + 20, patch, 4);
  for (size_t i = 2; i < 40; i++) (void)s.At(refs[i]);  // push both out of the cache
  EXPECT_EQ(0, std::memcmp(s.At(refs[0]).data + 10, patch, 4));
  EXPECT_EQ(0, std::memcmp(s.At(refs[1]).data + 20, patch, 4));
  EXPECT_EQ(s.At(refs[1]).data[19], Record(1, 1000)[19]);
}

// No usable temp directory (a read-only container root, say): nothing spills, every
// record stays readable, and spill_error() says why.
TEST(SpillStore, UnusableDirectoryKeepsRecordsInMemory) {
  SpillStore s(64, 2, "/nonexistent-etcdsafe-dir");
  std::vector<uint64_t> refs;
  for (size_t i = 0; i < 40; i++) refs.push_back(s.Append(Record(i, 60)));
  EXPECT_NE(s.spill_error().find("create a temporary file in /nonexistent-etcdsafe-dir"), std::string::npos) << s.spill_error();
  EXPECT_EQ(s.spilled_bytes(), 0u);
  EXPECT_GE(s.memory_bytes(), 40 * 60u);
  for (size_t i = 0; i < 40; i++) EXPECT_EQ(0, std::memcmp(s.At(refs[i]).data, Record(i, 60).data(), 60)) << i;
}

}  // namespace
}  // namespace etcdsafe
