// Throughput of the pipeline stages (not a test). Usage: pipeline_bench [MiB | file]
// Data: etcd-like JSON values (test_data.cc) or the bytes of a given file (e.g. an etcd db).
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <string>

#include "base/file.h"
#include "pipeline/compress.h"
#include "pipeline/encrypt.h"
#include "pipeline/hash.h"
#include "test_data.h"

using namespace etcdsafe;
using namespace etcdsafe::pipeline;

namespace {

class CountSink : public Sink {
 public:
  void Write(const uint8_t*, size_t n) override { bytes += n; }
  void Close() override {}
  uint64_t bytes = 0;
};

void Feed(Sink& s, const std::string& data) {
  testing::WriteInSteps(s, data, 1 << 20);  // gRPC delivers the snapshot in ~1 MiB-ish messages
  s.Close();
}

double Secs(const std::function<void()>& f) {
  auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void Report(const char* name, size_t in, double s, uint64_t out) {
  std::printf("%-34s %8.1f MB/s  %6.3f s  out %6.1f%%\n", name, in / s / 1e6, s, 100.0 * double(out) / double(in));
}

}  // namespace

int main(int argc, char** argv) {
  std::string data;
  std::string arg = argc > 1 ? argv[1] : "256";
  if (!arg.empty() && std::isdigit(static_cast<unsigned char>(arg[0]))) {
    data = testing::EtcdLike(size_t(std::stoul(arg)) << 20, 1);
  } else {
    data = ReadSmallFile(arg, size_t{4} << 30);
  }
  std::printf("input: %zu bytes\n", data.size());
  KeySpec key;
  key.kind = KeySpec::Kind::kRawKey;
  key.raw.fill(7);

  {
    CountSink out;
    double s = Secs([&] { Sha256 h; h.Update(AsBytes(data)); (void)h.Finish(); });
    Report("sha256", data.size(), s, data.size());
  }
  for (int level : {1, 3, 6}) {
    for (int workers : {0, 1, 2}) {
      CountSink out;
      auto c = NewCompressSink(Compression::kZstd, CompressOptions{.level = level, .zstd_workers = workers}, out);
      double s = Secs([&] { Feed(*c, data); });
      std::string name = "zstd-" + std::to_string(level) + " workers=" + std::to_string(workers);
      Report(name.c_str(), data.size(), s, out.bytes);
    }
  }
  for (int level : {1, 6}) {
    CountSink out;
    auto c = NewCompressSink(Compression::kGzip, level, out);
    double s = Secs([&] { Feed(*c, data); });
    Report(("gzip-" + std::to_string(level)).c_str(), data.size(), s, out.bytes);
  }
  {
    CountSink out;
    auto e = NewEncryptSink(key, out);
    double s = Secs([&] { Feed(*e, data); });
    Report("aes-256-gcm encrypt", data.size(), s, out.bytes);
  }
  std::string packed;
  for (int workers : {0, 1}) {
    StringSink out;
    double s = Secs([&] {
      auto e = NewEncryptSink(key, out);
      auto c = NewCompressSink(Compression::kZstd, CompressOptions{.level = 3, .zstd_workers = workers}, *e);
      HashSink h(*c);
      Feed(h, data);
    });
    Report(("chain sha+zstd-3(w" + std::to_string(workers) + ")+aes").c_str(), data.size(), s, out.str().size());
    packed = out.str();
  }
  {
    uint64_t n = 0;
    double s = Secs([&] {
      StringSource in(packed);
      auto d = NewDecryptSource(key, in);
      auto z = NewDecompressSource(Compression::kZstd, *d);
      HashSource h(*z);
      std::vector<uint8_t> buf(1 << 20);
      size_t r;
      while ((r = h.Read(buf.data(), buf.size())) > 0) n += r;
    });
    Report("restore chain aes+zstd+sha", data.size(), s, n);
  }
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("peak RSS %ld MiB (includes the input and the packed copy)\n", ru.ru_maxrss / 1024);
  return 0;
}
