// ReleaseIdleMemory: the clean pages of a read-only file mapping that only this process
// maps leave its RSS, stay readable (same bytes, faulted back in), and freed heap goes back.
#include "base/idle_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "testutil/temp_dir.h"

namespace etcdsafe {
namespace {

long StatusKb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::strtol(line.c_str() + field.size() + 1, nullptr, 10);
  }
  return -1;
}

TEST(IdleMemory, FilePagesLeaveTheRssAndStayReadable) {
  testutil::TempDir dir;
  const std::string path = dir.Sub("data");
  const size_t size = 64u << 20;
  {
    std::string block(1 << 20, '\0');
    std::ofstream out(path, std::ios::binary);
    for (size_t i = 0; i < size / block.size(); i++) {
      for (size_t j = 0; j < block.size(); j += 4096) block[j] = static_cast<char>(i + j / 4096);
      out.write(block.data(), static_cast<std::streamsize>(block.size()));
    }
  }
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  void* m = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ASSERT_NE(m, MAP_FAILED);
  close(fd);
  const auto* p = static_cast<const unsigned char*>(m);
  unsigned sum = 0;
  for (size_t i = 0; i < size; i += 4096) sum += p[i];
  const long before = StatusKb("RssFile");
  ASSERT_GT(before, 60 << 10) << "the mapping is resident";

  EXPECT_GE(ReleaseIdleMemory(), size);
  const long after = StatusKb("RssFile");
  EXPECT_LT(after, before - (48 << 10)) << "before " << before << " KiB, after " << after << " KiB";

  unsigned again = 0;
  for (size_t i = 0; i < size; i += 4096) again += p[i];
  EXPECT_EQ(again, sum) << "the same bytes come back";
  munmap(m, size);
}

TEST(IdleMemory, FreedHeapGoesBack) {
  // 256 blocks of 100 KiB (below malloc's mmap threshold) stay in the arena when freed.
  std::vector<char*> blocks;
  for (int i = 0; i < 256; i++) {
    char* b = static_cast<char*>(std::malloc(100 << 10));
    for (size_t j = 0; j < (100u << 10); j += 4096) b[j] = 1;
    blocks.push_back(b);
  }
  char* keep = static_cast<char*>(std::malloc(16));  // above them: the heap top cannot shrink
  for (char* b : blocks) std::free(b);
  const long before = StatusKb("RssAnon");
  ReleaseIdleMemory();
  const long after = StatusKb("RssAnon");
  EXPECT_GT(before, 8 << 10) << "the freed blocks are still resident";
  EXPECT_LT(after, before / 2) << "before " << before << " KiB, after " << after << " KiB";
  std::free(keep);
}

}  // namespace
}  // namespace etcdsafe
