// Peak memory of the whole backup + restore chain must not grow with the data size.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "base/checksum.h"
#include "base/error.h"
#include "pipeline/compress.h"
#include "pipeline/encrypt.h"
#include "pipeline/hash.h"
#include "test_data.h"

namespace etcdsafe::pipeline {
namespace {

class FdSink : public Sink {
 public:
  explicit FdSink(int fd) : fd_(fd) {}
  void Write(const uint8_t* p, size_t n) override {
    while (n > 0) {
      ssize_t w = ::write(fd_, p, n);
      if (w < 0) throw SystemError("write pipe", errno);
      p += w;
      n -= size_t(w);
    }
  }
  void Close() override { ::close(fd_); }

 private:
  int fd_;
};

class FdSource : public Source {
 public:
  explicit FdSource(int fd) : fd_(fd) {}
  size_t Read(uint8_t* buf, size_t n) override {
    ssize_t r = ::read(fd_, buf, n);
    if (r < 0) throw SystemError("read pipe", errno);
    return size_t(r);
  }

 private:
  int fd_;
};

long RssKiB(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::strlen(field)));
  }
  return -1;
}

// Runs in a forked child so earlier tests' peaks do not hide ours (a child's peak starts
// at its current RSS). Returns "<growth KiB> <ok 0|1>".
std::string ChildRun(uint64_t total, Compression c) {
  std::string block = testing::EtcdLike(8 << 20, 77);
  KeySpec key;
  key.kind = KeySpec::Kind::kRawKey;
  key.raw.fill(0x5a);
  long base = RssKiB("VmRSS:");

  int fds[2];
  if (pipe(fds) != 0) return "-1 0";
  Sha256Digest in_digest{};
  std::thread writer([&] {
    FdSink fd(fds[1]);
    auto enc = NewEncryptSink(key, fd);
    // gzip at level 1: the point is memory, and level 6 would take 15 s here.
    int level = c == Compression::kGzip ? 1 : 0;
    auto comp = NewCompressSink(c, CompressOptions{.level = level, .zstd_workers = 1}, *enc);
    HashSink hash(*comp);
    for (uint64_t done = 0; done < total; done += block.size()) {
      block[done % 4096] ^= 1;  // every block differs
      hash.Write(AsBytes(block));
    }
    hash.Close();
    in_digest = hash.digest();
  });
  FdSource fd(fds[0]);
  auto dec = NewDecryptSource(key, fd);
  auto decomp = NewDecompressSource(c, *dec);
  HashSource hash(*decomp);
  std::vector<uint8_t> buf(1 << 20);
  while (hash.Read(buf.data(), buf.size()) > 0) {
  }
  writer.join();
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  bool ok = hash.bytes() == total && hash.digest() == in_digest;
  return std::to_string(ru.ru_maxrss - base) + " " + (ok ? "1" : "0");
}

void CheckBounded(Compression c) {
  const uint64_t total = uint64_t{512} << 20;
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(p[0]);
    std::string r;
    try {
      r = ChildRun(total, c);
    } catch (const std::exception& e) {
      r = std::string("-2 0 ") + e.what();
    }
    (void)!write(p[1], r.data(), r.size());
    _exit(0);
  }
  close(p[1]);
  char buf[512] = {};
  size_t got = 0;
  ssize_t r;
  while ((r = read(p[0], buf + got, sizeof buf - 1 - got)) > 0) got += size_t(r);
  close(p[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  long growth_kib = -1;
  int ok = 0;
  ASSERT_EQ(std::sscanf(buf, "%ld %d", &growth_kib, &ok), 2) << buf;
  EXPECT_EQ(ok, 1) << "round trip of 512 MiB did not reproduce the input: " << buf;
  EXPECT_GE(growth_kib, 0) << buf;
  EXPECT_LT(growth_kib, 48 * 1024) << "peak RSS grew by " << growth_kib / 1024 << " MiB";
  std::printf("[ info ] %s: 512 MiB through compress+encrypt+decrypt+decompress, peak RSS +%ld MiB\n",
              std::string(CompressionName(c)).c_str(), growth_kib / 1024);
}

TEST(Memory, ZstdEncryptedRoundTripOf512MiBIsBounded) { CheckBounded(Compression::kZstd); }
TEST(Memory, GzipEncryptedRoundTripOf512MiBIsBounded) { CheckBounded(Compression::kGzip); }

}  // namespace
}  // namespace etcdsafe::pipeline
