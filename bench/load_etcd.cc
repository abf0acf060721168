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

std::string Hex(std::mt19937_64& rng, int n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < n; i++) out.push_back(kDigits[rng() % 16]);
  return out;
}

std::string Uid(std::mt19937_64& rng) {
  return Hex(rng, 8) + "-" + Hex(rng, 4) + "-" + Hex(rng, 4) + "-" + Hex(rng, 4) + "-" + Hex(rng, 12);
}

std::string Timestamp(std::mt19937_64& rng) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "2026-%02d-%02dT%02d:%02d:%02dZ", int(1 + rng() % 11), int(1 + rng() % 28),
                int(rng() % 24), int(rng() % 60), int(rng() % 60));
  return buf;
}

// A Kubernetes-shaped JSON object of roughly `size` bytes: the structure, field names and
// most values repeat across objects (as in a real cluster); uids, hashes, timestamps,
// IPs and some env values vary.
std::string MakeObject(std::mt19937_64& rng, const std::string& resource, const std::string& ns,
                       const std::string& name, size_t size) {
  std::string app = "app-" + std::to_string(rng() % 50);
  std::string v = "{\"apiVersion\":\"v1\",\"kind\":\"" + resource + "\",\"metadata\":{\"name\":\"" + name +
                  "\",\"namespace\":\"" + ns + "\",\"uid\":\"" + Uid(rng) + "\",\"resourceVersion\":\"" +
                  std::to_string(rng() % 10000000) + "\",\"creationTimestamp\":\"" + Timestamp(rng) +
                  "\",\"labels\":{\"app\":\"" + app + "\",\"pod-template-hash\":\"" + Hex(rng, 10) +
                  "\",\"team\":\"platform\"},\"ownerReferences\":[{\"apiVersion\":\"apps/v1\",\"kind\":\"ReplicaSet\","
                  "\"name\":\"" + app + "-" + Hex(rng, 10) + "\",\"uid\":\"" + Uid(rng) +
                  "\",\"controller\":true,\"blockOwnerDeletion\":true}],\"managedFields\":[";
  for (int i = 0; i < 2; i++) {
    v += "{\"manager\":\"kube-controller-manager\",\"operation\":\"Update\",\"apiVersion\":\"v1\",\"time\":\"" +
         Timestamp(rng) + "\",\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{\"f:metadata\":{\"f:labels\":{\".\":{},"
         "\"f:app\":{},\"f:pod-template-hash\":{}},\"f:ownerReferences\":{\".\":{}}},\"f:spec\":{\"f:containers\":{}}}},";
  }
  v.back() = ']';
  v += "},\"spec\":{\"nodeName\":\"node-" + std::to_string(rng() % 200) + "\",\"serviceAccountName\":\"default\","
       "\"containers\":[";
  int c = 0;
  while (v.size() + 400 < size) {
    v += "{\"name\":\"c" + std::to_string(c++) + "\",\"image\":\"registry.local/platform/" + app + ":v1." +
         std::to_string(rng() % 20) + "." + std::to_string(rng() % 10) +
         "\",\"imagePullPolicy\":\"IfNotPresent\",\"resources\":{\"limits\":{\"cpu\":\"500m\",\"memory\":\"512Mi\"},"
         "\"requests\":{\"cpu\":\"100m\",\"memory\":\"128Mi\"}},\"env\":[";
    for (int e = 0; e < 12 && v.size() + 100 < size; e++) {
      v += "{\"name\":\"CONFIG_" + std::to_string(e) + "\",\"value\":\"" +
           (rng() % 4 == 0 ? Hex(rng, 16) : "https://" + app + ".svc.cluster.local:" + std::to_string(8000 + e)) +
           "\"},";
    }
    v.back() = ']';
    v += ",\"volumeMounts\":[{\"name\":\"kube-api-access\",\"mountPath\":\"/var/run/secrets/kubernetes.io/serviceaccount\","
         "\"readOnly\":true}]},";
  }
  v.back() = ']';
  v += "},\"status\":{\"phase\":\"Running\",\"podIP\":\"10." + std::to_string(rng() % 256) + "." +
       std::to_string(rng() % 256) + "." + std::to_string(rng() % 256) + "\",\"startTime\":\"" + Timestamp(rng) +
       "\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"lastTransitionTime\":\"" + Timestamp(rng) + "\"}]}}";
  return v;
}

std::string MakeValue(std::mt19937_64& rng, const std::string& resource, const std::string& ns,
                      const std::string& name) {
  std::uniform_int_distribution<int> pick(0, 99);
  size_t size = pick(rng) < 3 ? 90000 + rng() % 20000 : 1000 + rng() % 19000;
  return MakeObject(rng, resource, ns, name, size);
}

}  // namespace

int main(int argc, char** argv) {
  std::string endpoint;
  uint64_t target_mb = 1024;
  int threads = 4;
  std::string sample;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--endpoint") endpoint = argv[i + 1];
    else if (a == "--target-mb") target_mb = std::strtoull(argv[i + 1], nullptr, 10);
    else if (a == "--threads") threads = std::atoi(argv[i + 1]);
    else if (a == "--sample") sample = argv[i + 1];
  }
  if (endpoint.empty() && !sample.empty()) {
    // --sample FILE: write ~target-mb of values to a file (to check compressibility offline).
    std::FILE* out = std::fopen(sample.c_str(), "wb");
    std::mt19937_64 rng(42);
    uint64_t written = 0;
    while (out != nullptr && written < target_mb << 20) {
      std::string v = MakeValue(rng, kResources[rng() % 10], "ns-1", "obj-" + std::to_string(rng() % 20000));
      std::fwrite(v.data(), 1, v.size(), out);
      written += v.size();
    }
    if (out != nullptr) std::fclose(out);
    return out == nullptr ? 1 : 0;
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
          std::string resource = kResources[rng() % 10];
          std::string key = "/registry/" + resource + "/" + ns + "/" + name;
          if (rng() % 20 == 0) {
            client->DeleteRange(key);
            deletes++;
          } else {
            client->Put(key, MakeValue(rng, resource, ns, name));
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
