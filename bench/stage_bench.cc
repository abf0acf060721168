// Throughput of each stage of `etcdsafe backup` on a real snapshot file, alone and in
// memory (the file is read into RAM first), so the stage that limits is known:
//   etcdsafe-stage-bench SNAPSHOT.db [stage...]
// stages: sha256 inspect zstd3 zstd3-long zstd3-long-w1 zstd1-long zstd3-w1 aes chain
// (default: all). One core each, except the -w1 variants (libzstd's worker thread).
// Prints MB/s of input, CPU seconds and the output ratio.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include <zstd.h>

#include "base/error.h"
#include "base/file.h"
#include "bolt/stream_inspect.h"
#include "pipeline/compress.h"
#include "pipeline/encrypt.h"
#include "pipeline/hash.h"
#include "snapshot/trailer.h"

using namespace etcdsafe;
using namespace etcdsafe::pipeline;

namespace {

constexpr size_t kStep = 2 << 20;  // the gRPC reader hands over ~1-2 MiB at a time

class CountSink : public Sink {
 public:
  void Write(const uint8_t*, size_t n) override { bytes += n; }
  void Close() override {}
  uint64_t bytes = 0;
};

double CpuSecs() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

void Run(const char* name, const std::string& data, const std::function<uint64_t()>& f) {
  auto t0 = std::chrono::steady_clock::now();
  double c0 = CpuSecs();
  uint64_t out = f();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%-16s %8.1f MB/s  wall %6.3f s  cpu %6.3f s  out %6.2f%%\n", name, double(data.size()) / s / 1e6, s,
              CpuSecs() - c0, 100.0 * double(out) / double(data.size()));
  std::fflush(stdout);
}

uint64_t Feed(const std::string& data, const std::function<void(const uint8_t*, size_t)>& w) {
  auto* p = reinterpret_cast<const uint8_t*>(data.data());
  for (size_t off = 0; off < data.size(); off += kStep) w(p + off, std::min(kStep, data.size() - off));
  return data.size();
}

uint64_t Zstd(const std::string& data, int level, bool long_matching, int workers) {
  CountSink out;
  auto c = NewCompressSink(Compression::kZstd,
                           CompressOptions{.level = level, .zstd_workers = workers, .zstd_long = long_matching}, out);
  Feed(data, [&](const uint8_t* p, size_t n) { c->Write(p, n); });
  c->Close();
  return out.bytes;
}

// "zstd:LEVEL:WLOG:LDM:RATELOG:MINMATCH:HASHLOG" (0 = libzstd's default), raw libzstd.
uint64_t ZstdRaw(const std::string& data, const std::string& spec) {
  int v[7] = {0};
  size_t pos = 5;
  for (int i = 1; i < 7 && pos <= spec.size(); i++) {
    size_t colon = spec.find(':', pos);
    v[i] = std::atoi(spec.substr(pos, colon - pos).c_str());
    if (colon == std::string::npos) break;
    pos = colon + 1;
  }
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, v[1]);
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
  if (v[2]) ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, v[2]);
  if (v[3]) ZSTD_CCtx_setParameter(c, ZSTD_c_enableLongDistanceMatching, 1);
  if (v[4]) ZSTD_CCtx_setParameter(c, ZSTD_c_ldmHashRateLog, v[4]);
  if (v[5]) ZSTD_CCtx_setParameter(c, ZSTD_c_ldmMinMatch, v[5]);
  if (v[6]) ZSTD_CCtx_setParameter(c, ZSTD_c_ldmHashLog, v[6]);
  std::vector<uint8_t> out(ZSTD_CStreamOutSize());
  uint64_t total = 0;
  Feed(data, [&](const uint8_t* p, size_t n) {
    ZSTD_inBuffer in{p, n, 0};
    while (in.pos < in.size) {
      ZSTD_outBuffer o{out.data(), out.size(), 0};
      size_t r = ZSTD_compressStream2(c, &o, &in, ZSTD_e_continue);
      if (ZSTD_isError(r)) throw Error(ErrorCode::kInternal, ZSTD_getErrorName(r));
      total += o.pos;
    }
  });
  ZSTD_inBuffer in{nullptr, 0, 0};
  for (;;) {
    ZSTD_outBuffer o{out.data(), out.size(), 0};
    size_t r = ZSTD_compressStream2(c, &o, &in, ZSTD_e_end);
    total += o.pos;
    if (r == 0) break;
  }
  ZSTD_freeCCtx(c);
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s SNAPSHOT.db [stage...]\n", argv[0]);
    return 2;
  }
  std::string data = ReadSmallFile(argv[1], size_t{16} << 30);
  std::vector<std::string> stages(argv + 2, argv + argc);
  auto want = [&](const std::string& s) {
    return stages.empty() || std::find(stages.begin(), stages.end(), s) != stages.end();
  };
  std::printf("input: %zu bytes\n", data.size());
  KeySpec key;
  key.kind = KeySpec::Kind::kRawKey;
  key.raw.fill(7);
  if (want("sha256")) {
    Run("sha256", data, [&] {
      snapshot::TrailerVerifier v;
      Feed(data, [&](const uint8_t* p, size_t n) { v.Update(p, n); });
      return v.Finish().matches ? data.size() : 0;
    });
  }
  if (want("inspect")) {
    Run("inspect", data, [&] {
      bolt::StreamInspector in("bench");
      Feed(data, [&](const uint8_t* p, size_t n) { in.Write(p, n); });
      auto t = std::chrono::steady_clock::now();
      auto r = in.Finish();
      std::printf("  (Finish %.3f s, %zu problems)\n",
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count(), r.problems.size());
      return uint64_t{0};
    });
  }
  if (want("zstd3")) Run("zstd3", data, [&] { return Zstd(data, 3, false, 0); });
  if (want("zstd3-w1")) Run("zstd3-w1", data, [&] { return Zstd(data, 3, false, 1); });
  if (want("zstd3-long")) Run("zstd3-long", data, [&] { return Zstd(data, 3, true, 0); });
  if (want("zstd3-long-w1")) Run("zstd3-long-w1", data, [&] { return Zstd(data, 3, true, 1); });
  if (want("zstd1-long")) Run("zstd1-long", data, [&] { return Zstd(data, 1, true, 0); });
  if (want("zstd2-long")) Run("zstd2-long", data, [&] { return Zstd(data, 2, true, 0); });
  if (want("zstd1")) Run("zstd1", data, [&] { return Zstd(data, 1, false, 0); });
  for (const auto& st : stages) {
    if (st.rfind("zstd:", 0) == 0) Run(st.c_str(), data, [&] { return ZstdRaw(data, st); });
  }
  if (want("aes")) {
    Run("aes", data, [&] {
      CountSink out;
      auto e = NewEncryptSink(key, out);
      Feed(data, [&](const uint8_t* p, size_t n) { e->Write(p, n); });
      e->Close();
      return out.bytes;
    });
  }
  if (want("chain")) {
    Run("chain (1 thread)", data, [&] {
      CountSink out;
      HashSink stored(out);
      auto e = NewEncryptSink(key, stored);
      auto c = NewCompressSink(Compression::kZstd, CompressOptions{.level = 3, .zstd_workers = 0}, *e);
      snapshot::TrailerVerifier v;
      bolt::StreamInspector in("bench");
      Feed(data, [&](const uint8_t* p, size_t n) {
        v.Update(p, n);
        in.Write(p, n);
        c->Write(p, n);
      });
      (void)in.Finish();
      c->Close();
      return out.bytes;
    });
  }
  return 0;
}
