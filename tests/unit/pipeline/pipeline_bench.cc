// Throughput of the pipeline stages (not a test).
//   pipeline_bench [MiB | file]       each stage in memory on etcd-like JSON or a file's bytes
//   pipeline_bench --stream DB OUT     backup-shaped run: DB → sha256 → OUT (plain save), then
//                                      DB → sha256 → zstd-3 (0 and 1 workers) → AES → OUT,
//                                      reading 1 MiB at a time like the snapshot stream
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

// A file sink that writes like a snapshot save (buffered writes, fsync at the end).
class FileSink : public Sink {
 public:
  explicit FileSink(const std::string& path) : f_(File::Create(path, 0600, true)) {}
  void Write(const uint8_t* d, size_t n) override { f_.WriteAll(d, n); }
  void Close() override {
    f_.Sync();
    f_.Close();
  }

 private:
  File f_;
};

int Stream(const std::string& db, const std::string& out) {
  KeySpec key;
  key.kind = KeySpec::Kind::kRawKey;
  key.raw.fill(7);
  std::vector<uint8_t> buf(1 << 20);
  auto run = [&](const char* name, int mode) {
    double s = Secs([&] {
      File in = File::OpenRead(db);
      FileSink file(out);
      std::unique_ptr<EncryptSink> enc;
      std::unique_ptr<Sink> comp;
      Sink* next = &file;
      if (mode >= 0) {
        enc = NewEncryptSink(key, file);
        comp = NewCompressSink(Compression::kZstd, CompressOptions{.level = 3, .zstd_workers = mode}, *enc);
        next = comp.get();
      }
      HashSink hash(*next);
      size_t r;
      while ((r = in.Read(buf.data(), buf.size())) > 0) hash.Write(buf.data(), r);
      hash.Close();
    });
    File o = File::OpenRead(out);
    std::printf("%-34s %6.2f s  %8.1f MB/s  out %llu bytes\n", name, s, double(File::OpenRead(db).Size()) / s / 1e6,
                static_cast<unsigned long long>(o.Size()));
    return s;
  };
  double plain = run("plain: sha256 → file", -1);
  double w0 = run("sha256 → zstd-3 (0 workers) → aes", 0);
  double w1 = run("sha256 → zstd-3 (1 worker) → aes", 1);
  std::printf("ratio to plain: workers=0 %.2fx, workers=1 %.2fx\n", w0 / plain, w1 / plain);
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--stream") return Stream(argv[2], argv[3]);
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
