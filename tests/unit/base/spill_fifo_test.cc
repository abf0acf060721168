#include "base/spill_fifo.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <deque>
#include <filesystem>
#include <random>
#include <string>

#include "testutil/temp_dir.h"

namespace etcdsafe {
namespace {

std::string Batch(size_t i, size_t n) {
  std::string b(n, '\0');
  for (size_t k = 0; k < n; k++) b[k] = static_cast<char>(i * 131 + k * 7);
  return b;
}

// Interleaved pushes and pops of mixed sizes come back intact and in order; the counters
// follow; the directory stays empty (the file has no name).
TEST(SpillFifo, BatchesComeBackInOrder) {
  testutil::TempDir dir;
  SpillFifo f(dir.path(), uint64_t{1} << 30);
  std::deque<std::string> expect;
  std::mt19937 rng(7);
  uint64_t pushed = 0, waiting = 0, peak = 0;
  for (size_t i = 0; i < 2000; i++) {
    std::string b = Batch(i, 1 + rng() % (i % 50 == 0 ? 3000000 : 70000));
    ASSERT_TRUE(f.Push(b)) << f.error();
    pushed += b.size();
    waiting += b.size();
    peak = std::max(peak, waiting);
    expect.push_back(std::move(b));
    while (!expect.empty() && rng() % 3 == 0) {
      ASSERT_EQ(f.front_size(), expect.front().size());
      ASSERT_EQ(f.Pop(), expect.front());
      waiting -= expect.front().size();
      expect.pop_front();
    }
    ASSERT_EQ(f.bytes(), waiting);
  }
  while (!expect.empty()) {
    ASSERT_EQ(f.Pop(), expect.front());
    expect.pop_front();
  }
  EXPECT_TRUE(f.empty());
  EXPECT_EQ(f.bytes(), 0u);
  EXPECT_EQ(f.total_bytes(), pushed);
  EXPECT_EQ(f.peak_bytes(), peak);
  EXPECT_GT(peak, uint64_t{16} << 20);  // enough to punch holes on the way
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
  EXPECT_EQ(f.error(), "");
}

// What waits never exceeds max_bytes: a batch that would is refused (and not added), and
// accepted again once the consumer took enough back.
TEST(SpillFifo, RefusesPastItsBound) {
  testutil::TempDir dir;
  SpillFifo f(dir.path(), 10000);
  EXPECT_TRUE(f.Push(Batch(1, 6000)));
  EXPECT_FALSE(f.Push(Batch(2, 6000)));
  EXPECT_EQ(f.bytes(), 6000u);
  EXPECT_TRUE(f.Push(Batch(3, 4000)));
  EXPECT_EQ(f.Pop(), Batch(1, 6000));
  EXPECT_TRUE(f.Push(Batch(4, 6000)));
  EXPECT_EQ(f.Pop(), Batch(3, 4000));
  EXPECT_EQ(f.Pop(), Batch(4, 6000));
  EXPECT_TRUE(f.empty());
  EXPECT_EQ(f.error(), "");  // a refusal for size is not a failure
}

// No usable directory: Push refuses with the reason, and keeps refusing.
TEST(SpillFifo, UnusableDirectoryRefusesWithReason) {
  testutil::TempDir dir;
  SpillFifo f(dir.path() + "/missing", uint64_t{1} << 30);
  EXPECT_FALSE(f.Open());
  EXPECT_FALSE(f.Push(Batch(1, 100)));
  EXPECT_TRUE(f.empty());
  EXPECT_NE(f.error().find("create a temporary file in " + dir.path() + "/missing"), std::string::npos) << f.error();
  EXPECT_FALSE(f.Push(Batch(2, 100)));
}

// The space a consumer took back goes back to the filesystem: the file is emptied when
// the queue is, and holes are punched behind the reader on the way.
TEST(SpillFifo, GivesConsumedSpaceBack) {
  testutil::TempDir dir;
  SpillFifo f(dir.path(), uint64_t{1} << 30);
  const std::string mib(1 << 20, 'q');
  for (int i = 0; i < 40; i++) ASSERT_TRUE(f.Push(mib));
  // Find the unnamed file among our descriptors: the one whose /proc link names the dir.
  int fd = -1;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    std::string target = std::filesystem::read_symlink(e.path(), ec).string();
    if (!ec && target.rfind(dir.path() + "/", 0) == 0) fd = std::stoi(e.path().filename().string());
  }
  ASSERT_GE(fd, 0);
  auto allocated = [&] {
    struct stat st;
    EXPECT_EQ(::fstat(fd, &st), 0);
    return static_cast<uint64_t>(st.st_blocks) * 512;
  };
  EXPECT_GE(allocated(), uint64_t{40} << 20);
  for (int i = 0; i < 36; i++) f.Pop();
  EXPECT_LE(allocated(), uint64_t{24} << 20);  // 32 MiB punched behind the reader
  for (int i = 0; i < 4; i++) f.Pop();
  EXPECT_EQ(allocated(), 0u);
}

}  // namespace
}  // namespace etcdsafe
