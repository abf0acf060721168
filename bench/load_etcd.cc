// Fills an etcd with Kubernetes-shaped data until its db reaches a target size, for the
// benchmarks: keys /registry/<resource>/<namespace>/<name>, JSON-ish values of 1–20 KB
// with some ~100 KB, plus overwrites (history) and deletes (tombstones).
//
//   etcdsafe-load --endpoint http://127.0.0.1:PORT --target-mb 1024 [--threads 4]
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "client/etcd_client.h"

namespace {

const char* kResources[] = {"pods", "configmaps", "secrets", "services", "deployments",
                            "replicasets", "events", "leases", "endpointslices", "serviceaccounts"};

std::string MakeValue(std::mt19937_64& rng, const std::string& key) {
  std::uniform_int_distribution<int> pick(0, 99);
  size_t size = pick(rng) < 3 ? 90000 + rng() % 20000 : 1000 + rng() % 19000;
  std::string v = "{\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"" + key + "\",\"labels\":{";
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789-";
  while (v.size() < size) {
    v += "\"label-" + std::to_string(rng() % 1000) + "\":\"";
    for (int i = 0; i < 24; i++) v.push_back(kAlphabet[rng() % (sizeof kAlphabet - 1)]);
    v += "\",";
  }
  v += "\"end\":\"1\"}}}";
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::string endpoint;
  uint64_t target_mb = 1024;
  int threads = 4;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--endpoint") endpoint = argv[i + 1];
    else if (a == "--target-mb") target_mb = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--threads") threads = std::atoi(argv[i + 1]);
  }
  if (endpoint.empty()) {
    std::fprintf(stderr, "usage: %s --endpoint URL [--target-mb N] [--threads N]\n", argv[0]);
    return 128;
  }
  try {
    etcdsafe::client::ClientConfig config;
    config.endpoints = {endpoint};
    std::atomic<bool> done{false};
    std::atomic<uint64_t> puts{0}, deletes{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; t++) {
      workers.emplace_back([&, t] {
        auto client = etcdsafe::client::EtcdClient::Connect(config);
        std::mt19937_64 rng(1234 + t);
        uint64_t n = 0;
        while (!done.load()) {
          std::string ns = "ns-" + std::to_string(rng() % 40);
          std::string name = "obj-" + std::to_string(t) + "-" + std::to_string(rng() % 20000);
          std::string key = std::string("/registry/") + kResources[rng() % 10] + "/" + ns + "/" + name;
          if (rng() % 20 == 0) {
            client->DeleteRange(key);
            deletes++;
          } else {
            client->Put(key, MakeValue(rng, name));
            puts++;
          }
          if (++n % 500 == 0 && t == 0) {
            auto st = client->EndpointStatus();
            std::fprintf(stderr, "\rdb %lld MB, %llu puts, %llu deletes", static_cast<long long>(st.db_size >> 20),
                         static_cast<unsigned long long>(puts.load()), static_cast<unsigned long long>(deletes.load()));
            if (static_cast<uint64_t>(st.db_size) >= target_mb << 20) done = true;
          }
        }
      });
    }
    for (auto& w : workers) w.join();
    std::fprintf(stderr, "\n");
  } catch (const etcdsafe::Error& e) {
    std::fprintf(stderr, "Error: %s\n", e.what());
    return 1;
  }
  return 0;
}
