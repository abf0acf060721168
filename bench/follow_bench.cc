// Continuous-backup recording benchmark (issue 9): a steady write load against a real etcd
// while `etcdsafe backup --follow` records it, measuring what the recorder promises:
//   - RPO: for every acknowledged write, the time from its acknowledgement until the
//     segment holding its revision is visible in the repository (polled every 10 ms);
//   - the recorder's peak RSS and CPU;
//   - the write rate actually achieved.
//
//   etcdsafe-follow-bench --etcdsafe BIN --endpoint http://127.0.0.1:PORT --repo DIR
//                         [--rate 5000] [--seconds 30] [--value-bytes 1024] [--threads 16]
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backup/layout.h"
#include "base/error.h"
#include "client/etcd_client.h"

namespace {

using Clock = std::chrono::steady_clock;
double Ms(Clock::time_point t) { return std::chrono::duration<double, std::milli>(t.time_since_epoch()).count(); }

long StatusKb(pid_t pid, const char* field) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(field, 0) == 0) return std::atol(line.c_str() + std::strlen(field));
  }
  return -1;
}

double CpuSeconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), {});
  size_t p = s.rfind(')');
  if (p == std::string::npos) return 0;
  std::vector<std::string> fields;
  size_t i = p + 2;
  while (i < s.size()) {
    size_t j = s.find(' ', i);
    if (j == std::string::npos) j = s.size();
    fields.push_back(s.substr(i, j - i));
    i = j + 1;
  }
  if (fields.size() < 13) return 0;
  return (std::stod(fields[11]) + std::stod(fields[12])) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

int64_t StoredRevision(const std::string& repo) {
  int64_t best = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(repo, ec)) {
    auto p = etcdsafe::backup::ClassifyName(e.path().filename().string());
    if (p.kind == etcdsafe::backup::NameKind::kSegment) best = std::max(best, p.last_revision);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::string bin, endpoint, repo;
  int rate = 5000, seconds = 30, value_bytes = 1024, threads = 16;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--etcdsafe") bin = v;
    else if (k == "--endpoint") endpoint = v;
    else if (k == "--repo") repo = v;
    else if (k == "--rate") rate = std::stoi(v);
    else if (k == "--seconds") seconds = std::stoi(v);
    else if (k == "--value-bytes") value_bytes = std::stoi(v);
    else if (k == "--threads") threads = std::stoi(v);
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  if (bin.empty() || endpoint.empty() || repo.empty()) {
    std::fprintf(stderr, "usage: %s --etcdsafe BIN --endpoint URL --repo DIR [--rate N --seconds N]\n", argv[0]);
    return 2;
  }
  std::filesystem::create_directories(repo);
  pid_t rec = fork();
  if (rec == 0) {
    std::string log = repo + "/../follow.log";
    FILE* f = std::fopen(log.c_str(), "w");
    if (f) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    std::string url = "file://" + std::filesystem::absolute(repo).string();
    execl(bin.c_str(), bin.c_str(), "backup", "--follow", "--repo", url.c_str(), "--endpoints", endpoint.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait for the base backup.
  for (int i = 0; i < 600; i++) {
    bool base = false;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(repo, ec)) {
      base = base || etcdsafe::backup::ClassifyName(e.path().filename().string()).kind ==
                         etcdsafe::backup::NameKind::kManifest;
    }
    if (base) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const double cpu0 = CpuSeconds(rec);
  std::mutex mu;
  std::vector<std::pair<int64_t, double>> acks;  // revision, ack time (ms)
  std::map<int64_t, double> seen;                // stored revision -> first seen (ms)
  std::atomic<bool> stop{false};
  std::atomic<long> peak_rss{0};
  std::thread monitor([&] {
    int64_t last = 0;
    while (!stop) {
      int64_t r = StoredRevision(repo);
      double now = Ms(Clock::now());
      if (r > last) {
        std::lock_guard<std::mutex> g(mu);
        seen[r] = now;
        last = r;
      }
      peak_rss = std::max(peak_rss.load(), StatusKb(rec, "VmRSS:"));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  const std::string value(static_cast<size_t>(value_bytes), 'v');
  const auto start = Clock::now();
  const auto end = start + std::chrono::seconds(seconds);
  std::atomic<long> done{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < threads; t++) {
    writers.emplace_back([&, t] {
      etcdsafe::client::ClientConfig cfg;
      cfg.endpoints = {endpoint};
      auto c = etcdsafe::client::EtcdClient::Connect(cfg);
      const double per_thread = static_cast<double>(rate) / threads;
      long n = 0;
      std::vector<std::pair<int64_t, double>> mine;
      while (Clock::now() < end) {
        auto due = start + std::chrono::microseconds(static_cast<long>(1e6 * n / per_thread));
        if (due > Clock::now()) std::this_thread::sleep_until(due);
        std::vector<etcdsafe::client::EtcdClient::TxnOp> op(1);
        op[0].key = "/bench/" + std::to_string(t) + "/" + std::to_string(n % 1000);
        op[0].value = value;
        auto h = c->Txn(op);
        mine.push_back({h.revision, Ms(Clock::now())});
        n++;
      }
      done += n;
      std::lock_guard<std::mutex> g(mu);
      acks.insert(acks.end(), mine.begin(), mine.end());
    });
  }
  for (auto& w : writers) w.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  int64_t max_rev = 0;
  for (auto& a : acks) max_rev = std::max(max_rev, a.first);
  for (int i = 0; i < 300 && StoredRevision(repo) < max_rev; i++) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  stop = true;
  monitor.join();
  const double cpu1 = CpuSeconds(rec);
  const long hwm = StatusKb(rec, "VmHWM:");
  kill(rec, SIGTERM);
  int status = 0;
  waitpid(rec, &status, 0);
  // RPO of each write: first time a stored revision >= its revision was seen, minus its ack.
  std::vector<double> lag;
  lag.reserve(acks.size());
  size_t missing = 0;
  for (auto& [rev, t] : acks) {
    auto it = seen.lower_bound(rev);
    if (it == seen.end()) {
      missing++;
      continue;
    }
    lag.push_back(std::max(0.0, it->second - t));
  }
  std::sort(lag.begin(), lag.end());
  auto pct = [&](double p) { return lag.empty() ? 0.0 : lag[std::min(lag.size() - 1, static_cast<size_t>(p * lag.size()))]; };
  size_t within = static_cast<size_t>(std::upper_bound(lag.begin(), lag.end(), 1000.0) - lag.begin());
  std::printf("writes            %ld in %.1f s = %.0f puts/s of %d B (target %d/s)\n", done.load(), elapsed,
              done.load() / elapsed, value_bytes, rate);
  std::printf("RPO (ack->stored) p50 %.0f ms, p99 %.0f ms, max %.0f ms; %.2f%% within 1 s; %zu never stored\n",
              pct(0.5), pct(0.99), lag.empty() ? 0.0 : lag.back(), lag.empty() ? 0.0 : 100.0 * within / lag.size(),
              missing);
  std::printf("recorder          peak RSS %.1f MiB (VmHWM %.1f MiB), CPU %.1f s = %.0f%% of one core\n",
              peak_rss.load() / 1024.0, hwm / 1024.0, cpu1 - cpu0, 100.0 * (cpu1 - cpu0) / elapsed);
  std::printf("recorder exit     %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  return 0;
}
