#include "base/direct_writer.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>

#include <cstring>
#include <random>
#include <utility>
#include <vector>

#include "base/error.h"
#include "base/file.h"
#include "testutil/temp_dir.h"

namespace etcdsafe {
namespace {

std::string Pattern(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// Writes `data` through a DirectWriter in chunks of at most kChunkSize.
void WriteAll(DirectWriter& w, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    size_t n = std::min(DirectWriter::kChunkSize, data.size() - done);
    uint8_t* buf = w.Buffer();
    std::memcpy(buf, data.data() + done, n);
    w.Submit(n);
    done += n;
  }
}

TEST(DirectWriter, WritesExactBytesForAlignedAndUnalignedSizes) {
  testutil::TempDir dir;
  const size_t chunk = DirectWriter::kChunkSize;
  // Empty, tiny, one page, a page and a byte, whole chunks, and several chunks with an
  // unaligned tail (the part that falls back to buffered I/O).
  for (size_t size : {size_t{0}, size_t{1}, size_t{4096}, size_t{4097}, chunk, chunk + 1, 3 * chunk + 12345}) {
    std::string path = dir.Sub("f" + std::to_string(size));
    std::string data = Pattern(size, static_cast<uint32_t>(size));
    DirectWriter w(path, 0600);
    WriteAll(w, data);
    w.Finish();
    EXPECT_EQ(testutil::ReadFile(path), data) << size;
    struct stat st;
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
}

// kCached (a restored db) writes the same bytes, durable, and leaves them in the page cache
// for the etcd that reads the file next; kDirect leaves its whole chunks out of it.
TEST(DirectWriter, CachedModeWritesExactBytesAndKeepsThemInThePageCache) {
  testutil::TempDir dir;
  const size_t size = 12 * DirectWriter::kChunkSize + 777;  // past the 4-chunk writeback lag
  const std::string data = Pattern(size, 42);
  auto resident_pages = [&](const std::string& path) {
    File f = File::OpenRead(path);
    void* m = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, f.fd(), 0);
    EXPECT_NE(m, MAP_FAILED);
    std::vector<unsigned char> vec((size + 4095) / 4096);
    EXPECT_EQ(::mincore(m, size, vec.data()), 0);
    ::munmap(m, size);
    size_t n = 0;
    for (unsigned char v : vec) n += v & 1;
    return std::make_pair(n, vec.size());
  };
  {
    DirectWriter w(dir.Sub("cached"), 0600, WriteMode::kCached);
    WriteAll(w, data);
    w.Finish();
    EXPECT_FALSE(w.direct());
    EXPECT_EQ(testutil::ReadFile(dir.Sub("cached")), data);
  }
  {
    DirectWriter w(dir.Sub("direct"), 0600, WriteMode::kDirect);
    WriteAll(w, data);
    w.Finish();
  }
  auto [cached, pages] = resident_pages(dir.Sub("cached"));
  EXPECT_EQ(cached, pages);
  // Where the filesystem takes O_DIRECT (not tmpfs), the whole chunks never entered the cache.
  DirectWriter probe(dir.Sub("probe"), 0600, WriteMode::kDirect);
  probe.Finish();
  if (probe.direct()) {
    auto [direct_resident, direct_pages] = resident_pages(dir.Sub("direct"));
    EXPECT_LT(direct_resident, direct_pages / 4);
  }
}

TEST(DirectWriter, RefusesAnExistingFile) {
  testutil::TempDir dir;
  testutil::WriteFile(dir.Sub("f"), "keep me");
  try {
    DirectWriter w(dir.Sub("f"), 0600);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kAlreadyExists);
  }
  EXPECT_EQ(testutil::ReadFile(dir.Sub("f")), "keep me");
}

TEST(DirectWriter, OnlyTheLastChunkMayBeShort) {
  testutil::TempDir dir;
  DirectWriter w(dir.Sub("f"), 0600);
  w.Buffer();
  w.Submit(100);
  w.Buffer();
  EXPECT_THROW(w.Submit(100), Error);
}

TEST(DirectWriter, AbandonedWriterStopsWithoutFinish) {
  testutil::TempDir dir;
  {
    DirectWriter w(dir.Sub("f"), 0600);
    WriteAll(w, Pattern(2 * DirectWriter::kChunkSize, 7));
  }  // destructor joins the writer thread: must not hang or crash
  SUCCEED();
}

// A write error on the writer thread (here EFBIG from a 1 MiB file-size limit, the same
// path ENOSPC takes) surfaces in the producer's next call or in Finish, with the path.
void WriteBeyondLimit(const std::string& path) {
  std::signal(SIGXFSZ, SIG_IGN);
  rlimit lim{1 << 20, 1 << 20};
  if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) std::_Exit(3);
  try {
    DirectWriter w(path, 0600);
    WriteAll(w, Pattern(3 * DirectWriter::kChunkSize, 1));
    w.Finish();
  } catch (const Error& e) {
    std::string msg = e.what();
    std::_Exit(e.code() == ErrorCode::kIo && msg.find("write " + path) != std::string::npos ? 0 : 2);
  }
  std::_Exit(1);
}

TEST(DirectWriter, WriteErrorsReachTheProducer) {
  testutil::TempDir dir;
  EXPECT_EXIT(WriteBeyondLimit(dir.Sub("f")), ::testing::ExitedWithCode(0), "");
}

// The save path: a LockedTemp's file written through a dup of its locked descriptor; the
// lock survives the writer's close (a later run must not take the file for a leftover).
TEST(DirectWriter, WritesAnOpenLockedTemporary) {
  testutil::TempDir dir;
  const std::string data = Pattern(DirectWriter::kChunkSize * 2 + 12345, 9);
  LockedTemp t(dir.path(), "x.etcdsafe-", ".part", LockedTemp::Kind::kFile, 0600);
  DirectWriter w(t.OpenForWrite());
  WriteAll(w, data);
  w.Finish();
  EXPECT_TRUE(RemoveStaleTemps(dir.path(), "x.etcdsafe-", ".part").empty());
  EXPECT_EQ(testutil::ReadFile(t.path()), data);
  t.CommitTo(dir.Sub("x"));
  EXPECT_EQ(testutil::ReadFile(dir.Sub("x")), data);
}

}  // namespace
}  // namespace etcdsafe
