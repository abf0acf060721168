#include "test_data.h"

#include <random>
#include <vector>

namespace etcdsafe::pipeline::testing {

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    for (size_t j = 0; j < 8 && i + j < n; j++) s[i + j] = static_cast<char>(v >> (8 * j));
  }
  return s;
}

std::string EtcdLike(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  static const char* kKinds[] = {"pods", "configmaps", "secrets", "events", "leases", "endpointslices"};
  static const char* kImages[] = {"nginx:1.25", "redis:7.2", "registry.k8s.io/pause:3.9", "quay.io/app/api:v2.14.1"};
  std::string s;
  s.reserve(n + 4096);
  auto hex = [&](int len) {
    std::string h;
    for (int i = 0; i < len; i++) h += "0123456789abcdef"[rng() % 16];
    return h;
  };
  uint64_t rev = 1000;
  while (s.size() < n) {
    const char* kind = kKinds[rng() % 6];
    std::string ns = "team-" + std::to_string(rng() % 40);
    std::string name = std::string(kind).substr(0, 4) + "-" + hex(10) + "-" + hex(5);
    rev += 1 + rng() % 7;
    s += "/registry/" + std::string(kind) + "/" + ns + "/" + name;
    s += "{\"kind\":\"" + std::string(kind) + "\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"" + name +
         "\",\"namespace\":\"" + ns + "\",\"uid\":\"" + hex(8) + "-" + hex(4) + "-" + hex(4) + "-" + hex(4) + "-" +
         hex(12) + "\",\"resourceVersion\":\"" + std::to_string(rev) +
         "\",\"labels\":{\"app\":\"web\",\"tier\":\"frontend\",\"pod-template-hash\":\"" + hex(10) +
         "\"}},\"spec\":{\"containers\":[{\"name\":\"main\",\"image\":\"" + kImages[rng() % 4] +
         "\",\"resources\":{\"requests\":{\"cpu\":\"" + std::to_string(50 + rng() % 500) + "m\",\"memory\":\"" +
         std::to_string(64 + rng() % 960) + "Mi\"}}}],\"nodeName\":\"node-" + std::to_string(rng() % 200) + "\"}";
    if (rng() % 4 == 0) {  // secrets/leases carry opaque base64-ish payloads
      std::string blob = hex(64 + static_cast<int>(rng() % 256));
      s += ",\"data\":\"" + blob + "\"";
    }
    s += "}\n";
  }
  s.resize(n);
  return s;
}

void WriteInSteps(Sink& sink, const std::string& data, size_t step) {
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  for (size_t off = 0; off < data.size(); off += step) {
    sink.Write(p + off, std::min(step, data.size() - off));
  }
}

std::string ReadAllInSteps(Source& src, size_t step) {
  std::string out;
  std::vector<uint8_t> buf(step);
  for (;;) {
    size_t r = src.Read(buf.data(), buf.size());
    if (r == 0) break;
    out.append(reinterpret_cast<char*>(buf.data()), r);
  }
  return out;
}

}  // namespace etcdsafe::pipeline::testing
