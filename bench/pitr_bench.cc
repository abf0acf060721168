// Helper of bench/pitr_replay.sh (issue 9, "Numbers"): makes a chain of segments and
// applies a chain through a real etcd, for the offline replay vs etcd API comparison.
//
//   etcdsafe-pitr-bench gen --repo URL --events N [--value-size B] [--keys K]
//     continues the repository's newest backup with segments holding N put events (1 KB
//     pseudo-random values by default, incompressible; every 50th revision a txn of 4
//     puts), as the recorder would have stored them (8 MiB segments, zstd).
//   etcdsafe-pitr-bench apply --repo URL --endpoint E [--max-events N]
//     reads the newest chain and applies it to etcd revision by revision, in order: a Put
//     for a single-event revision, a Txn for several (what an embedded-etcd replay does).
//     Prints "applied EVENTS events REVISIONS revisions in SECONDS s".
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backup/backup.h"
#include "base/checksum.h"
#include "base/error.h"
#include "client/etcd_client.h"
#include "follow/chain.h"

using namespace etcdsafe;

namespace {

std::string Flag(int argc, char** argv, const std::string& name, const std::string& def) {
  for (int i = 2; i + 1 < argc; i++) {
    if (name == argv[i]) return argv[i + 1];
  }
  return def;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int Gen(int argc, char** argv) {
  const std::string url = Flag(argc, argv, "--repo", "");
  const uint64_t events = std::stoull(Flag(argc, argv, "--events", "1000000"));
  const size_t value_size = std::stoul(Flag(argc, argv, "--value-size", "1024"));
  const uint64_t keys = std::stoull(Flag(argc, argv, "--keys", "100000"));
  auto repo = backup::OpenRepository(url, {}, true);
  std::vector<backup::Manifest> bases = repo->ListBackups();
  if (bases.empty()) throw Error(ErrorCode::kNotFound, "no backup in " + url);
  const backup::Manifest& base = bases.back();
  std::vector<int64_t> create(keys, 0), version(keys, 0);
  uint64_t x = 88172645463325252ULL;
  auto next = [&] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  std::string prev = base.stored_sha256;
  uint64_t seq = 1, done = 0, segments = 0;
  int64_t rev = base.revision;
  follow::SegmentWriteOptions wo;
  auto builder = std::make_unique<follow::SegmentBuilder>(base.id, seq, rev, prev);
  auto flush = [&](bool last) {
    if (last) builder->AddProgress({rev, NowMs()});
    std::string plain = builder->Finish();
    follow::WriteSegment(*repo, builder->header(), plain, wo);
    prev = HexBytes(Sha256Of(AsBytes(plain)));
    segments++;
    builder = std::make_unique<follow::SegmentBuilder>(base.id, ++seq, rev, prev);
  };
  std::string value(value_size, '\0');
  while (done < events) {
    rev++;
    follow::Revision r;
    r.revision = rev;
    r.time_ms = NowMs();
    const int n = (rev % 50 == 0 && events - done >= 4) ? 4 : 1;
    for (int i = 0; i < n; i++) {
      const uint64_t k = (done + static_cast<uint64_t>(i)) % keys;
      for (size_t off = 0; off < value.size(); off += 8) {
        uint64_t v = next();
        std::memcpy(value.data() + off, &v, std::min<size_t>(8, value.size() - off));
      }
      if (version[k] == 0) create[k] = rev;
      version[k]++;
      char name[32];
      std::snprintf(name, sizeof name, "/bench/key-%08llu", static_cast<unsigned long long>(k));
      follow::Event e;
      e.data = follow::EncodeKeyValue({name, value, create[k], rev, version[k], 0});
      r.events.push_back(std::move(e));
    }
    done += static_cast<uint64_t>(n);
    builder->AddRevision(r);
    if (builder->size() >= (8u << 20)) flush(false);
  }
  flush(true);
  std::printf("generated %llu events, revisions %lld..%lld, %llu segments, continuing %s\n",
              static_cast<unsigned long long>(done), static_cast<long long>(base.revision + 1),
              static_cast<long long>(rev), static_cast<unsigned long long>(segments), base.id.c_str());
  return 0;
}

struct Stop {};

int Apply(int argc, char** argv) {
  const std::string url = Flag(argc, argv, "--repo", "");
  const uint64_t max_events = std::stoull(Flag(argc, argv, "--max-events", "0"));
  client::ClientConfig cfg;
  cfg.endpoints = {Flag(argc, argv, "--endpoint", "")};
  auto c = client::EtcdClient::Connect(cfg);
  auto repo = backup::OpenRepository(url, {}, true);
  follow::ChainScan scan = follow::ScanChains(*repo);
  if (scan.chains.empty()) throw Error(ErrorCode::kNotFound, "no chain in " + url);
  uint64_t events = 0, revisions = 0;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    follow::ReadChain(*repo, scan.chains.back(), std::nullopt, 0, [&](const follow::Record& rec) {
      if (rec.tag != 'R') return;
      if (max_events > 0 && events >= max_events) throw Stop{};
      if (rec.rev.events.size() == 1 && !rec.rev.events[0].is_delete) {
        follow::KeyValue kv = follow::DecodeKeyValue(AsBytes(rec.rev.events[0].data), "event");
        c->Put(kv.key, kv.value, kv.lease);
      } else {
        std::vector<client::EtcdClient::TxnOp> ops;
        for (const auto& e : rec.rev.events) {
          client::EtcdClient::TxnOp op;
          if (e.is_delete) {
            op.kind = client::EtcdClient::TxnOp::kDelete;
            op.key = e.data;
          } else {
            follow::KeyValue kv = follow::DecodeKeyValue(AsBytes(e.data), "event");
            op.key = kv.key;
            op.value = kv.value;
            op.lease = kv.lease;
          }
          ops.push_back(op);
        }
        c->Txn(ops);
      }
      events += rec.rev.events.size();
      revisions++;
    });
  } catch (const Stop&) {
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("applied %llu events %llu revisions in %.2f s\n", static_cast<unsigned long long>(events),
              static_cast<unsigned long long>(revisions), secs);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc >= 2 && std::string(argv[1]) == "gen") return Gen(argc, argv);
    if (argc >= 2 && std::string(argv[1]) == "apply") return Apply(argc, argv);
    std::fprintf(stderr, "usage: etcdsafe-pitr-bench gen|apply --repo URL ...\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "Error: %s\n", e.what());
    return 1;
  }
}
