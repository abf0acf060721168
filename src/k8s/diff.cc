#include "k8s/diff.h"

#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <thread>

#include "base/error.h"
#include "k8s/envelope.h"
#include "k8s/export.h"
#include "k8s/json_facts.h"
#include "ops/live_keys.h"

namespace etcdsafe::k8s {
namespace {

// Each side's LiveKeys buffer: two of them, plus two page caches, stay under 64 MiB.
constexpr size_t kScanMemoryBytes = size_t{12} << 20;

// A 128-bit fingerprint of a value: four XXH64-style lanes over 32-byte blocks, the tail
// zero-padded into one more block, finished two ways (with the length) into two words.
// Not cryptographic: two values are taken as equal when their sizes and fingerprints are.
struct Fingerprint {
  uint64_t lo = 0, hi = 0;
};

constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull, kP2 = 0xC2B2AE3D27D4EB4Full, kP3 = 0x165667B19E3779F9ull,
                   kP4 = 0x85EBCA77C2B2AE63ull, kP5 = 0x27D4EB2F165667C5ull;

inline uint64_t Rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t Lane(uint64_t acc, uint64_t in) { return Rotl(acc + in * kP2, 31) * kP1; }
inline uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint64_t Avalanche(uint64_t h) {
  h ^= h >> 33;
  h *= kP2;
  h ^= h >> 29;
  h *= kP3;
  h ^= h >> 32;
  return h;
}

Fingerprint FingerprintOf(Bytes b) {
  uint64_t v1 = kP1 + kP2, v2 = kP2, v3 = 0, v4 = 0 - kP1;
  const uint8_t* p = b.data();
  size_t n = b.size();
  while (n >= 32) {
    v1 = Lane(v1, Load64(p));
    v2 = Lane(v2, Load64(p + 8));
    v3 = Lane(v3, Load64(p + 16));
    v4 = Lane(v4, Load64(p + 24));
    p += 32;
    n -= 32;
  }
  if (n > 0) {
    uint8_t tail[32] = {};
    std::memcpy(tail, p, n);
    v1 = Lane(v1, Load64(tail));
    v2 = Lane(v2, Load64(tail + 8));
    v3 = Lane(v3, Load64(tail + 16));
    v4 = Lane(v4, Load64(tail + 24));
  }
  const uint64_t len = b.size();
  Fingerprint f;
  f.lo = Avalanche(Rotl(v1, 1) + Rotl(v2, 7) + Rotl(v3, 12) + Rotl(v4, 18) + len * kP5);
  f.hi = Avalanche((Rotl(v1, 29) ^ (v2 * kP4)) + (Rotl(v3, 43) ^ (v4 * kP3)) + (len ^ kP1));
  return f;
}

// The summary LiveKeys keeps per put: the value's fingerprint (16 bytes). Encoding, uid
// and generation are read only for the keys that differ (Side), from the value itself.
void Summarize(const ops::KeyValueView& e, std::string* out) {
  const Fingerprint f = FingerprintOf(e.value);
  char buf[16];
  std::memcpy(buf, &f.lo, 8);
  std::memcpy(buf + 8, &f.hi, 8);
  out->append(buf, sizeof buf);
}

// One side of a reported key: its fields, and the facts of its value, which is read back
// by its revision (a point lookup in bucket "key").
DiffSide Side(ops::SnapshotKv& kv, const ops::LiveKey& e) {
  DiffSide s;
  s.present = true;
  s.create_revision = e.create_revision;
  s.mod_revision = e.mod_revision;
  s.version = e.version;
  s.bytes = e.value_size;
  const ops::KeyValue kv_at = kv.EntryAt(e.main_revision, e.sub_revision);
  if (kv_at.key != e.key) {
    throw Error(ErrorCode::kDataLoss, kv.reader().name() + ": bucket key: revision " + std::to_string(e.main_revision) +
                                          "_" + std::to_string(e.sub_revision) + ": holds " + kv_at.key +
                                          ", not " + std::string(e.key));
  }
  ValueFacts v = FactsOfValue(AsBytes(kv_at.value), true);
  s.encoding = EncodingName(v.encoding);
  s.generation = v.generation;
  s.uid = std::move(v.uid);
  return s;
}

bool SameValue(const ops::LiveKey& a, const ops::LiveKey& b) {
  return a.value_size == b.value_size && a.summary == b.summary;
}

nlohmann::json SideJson(const DiffSide& s) {
  nlohmann::json j = {{"createRevision", s.create_revision}, {"modRevision", s.mod_revision},
                      {"version", s.version}, {"bytes", s.bytes}, {"encoding", s.encoding}};
  if (!s.uid.empty()) j["uid"] = s.uid;
  if (s.generation != 0) j["generation"] = s.generation;
  return j;
}

nlohmann::json CountsJson(const ChangeCounts& c) {
  return {{"added", c.added}, {"removed", c.removed}, {"changed", c.changed}, {"recreated", c.recreated}};
}

std::string Row(const std::string& a, int64_t b, int64_t c, int64_t d, int64_t e) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "%-48s %8lld %8lld %8lld %10lld\n", a.c_str(), (long long)b, (long long)c,
                (long long)d, (long long)e);
  return buf;
}

std::string Header(const char* what) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-48s %8s %8s %8s %10s\n", what, "ADDED", "REMOVED", "CHANGED", "RECREATED");
  return buf;
}

}  // namespace

const char* ChangeName(Change c) {
  switch (c) {
    case Change::kAdded: return "added";
    case Change::kRemoved: return "removed";
    case Change::kChanged: return "changed";
    case Change::kRecreated: return "recreated";
  }
  return "changed";
}

void ChangeCounts::Add(Change c) {
  switch (c) {
    case Change::kAdded: added++; return;
    case Change::kRemoved: removed++; return;
    case Change::kChanged: changed++; return;
    case Change::kRecreated: recreated++; return;
  }
}

DiffSummary DiffSnapshots(ops::SnapshotKv& a, ops::SnapshotKv& b, const DiffOptions& options,
                          const std::function<void(const DiffEntry&)>& sink) {
  DiffSummary sum;
  sum.revision_a = a.current_revision();
  sum.revision_b = b.current_revision();
  ops::LiveKeysOptions lo;
  if (!options.key_prefix.empty()) {
    lo.begin = options.key_prefix;
    lo.end = PrefixRangeEnd(options.key_prefix);
  }
  lo.memory_bytes = kScanMemoryBytes;
  ops::LiveKeys la(a, lo, Summarize);
  ops::LiveKeys lb(b, lo, Summarize);
  // Both files at once: A on a thread of its own, B here.
  {
    std::exception_ptr error_a;
    std::thread ta([&] {
      try {
        la.Scan();
      } catch (...) {
        error_a = std::current_exception();
      }
    });
    std::exception_ptr error_b;
    try {
      lb.Scan();
    } catch (...) {
      error_b = std::current_exception();
    }
    ta.join();
    if (error_a) std::rethrow_exception(error_a);
    if (error_b) std::rethrow_exception(error_b);
  }
  ops::LiveKey ea, eb;
  bool has_a = la.Next(&ea);
  bool has_b = lb.Next(&eb);

  auto report = [&](DiffEntry& d) {
    const KeyInfo info = ClassifyKey(d.key, options.etcd_prefix);
    d.key_kind = info.kind;
    d.resource = info.kind == KeyKind::kObject || info.kind == KeyKind::kNonObject ? info.GroupResource() : "";
    d.ns = info.ns;
    d.name = info.name;
    sum.total.Add(d.change);
    if (info.kind == KeyKind::kObject) {
      sum.objects.Add(d.change);
      sum.by_resource[d.resource].Add(d.change);
      if (!info.cluster_scoped) sum.by_namespace[info.ns].Add(d.change);
    }
    sink(d);
  };

  while (has_a || has_b) {
    DiffEntry d;
    if (has_b && (!has_a || eb.key < ea.key)) {
      sum.keys_b++;
      d.change = Change::kAdded;
      d.key = eb.key;
      d.b = Side(b, eb);
      has_b = lb.Next(&eb);
      report(d);
      continue;
    }
    if (has_a && (!has_b || ea.key < eb.key)) {
      sum.keys_a++;
      d.change = Change::kRemoved;
      d.key = ea.key;
      d.a = Side(a, ea);
      has_a = la.Next(&ea);
      report(d);
      continue;
    }
    // The same key on both sides.
    sum.keys_a++;
    sum.keys_b++;
    if (SameValue(ea, eb)) {
      sum.unchanged++;
    } else {
      d.key = ea.key;
      d.a = Side(a, ea);
      d.b = Side(b, eb);
      const bool uids_known = !d.a.uid.empty() && !d.b.uid.empty();
      const bool recreated = uids_known ? d.a.uid != d.b.uid : d.a.create_revision != d.b.create_revision;
      d.change = recreated ? Change::kRecreated : Change::kChanged;
    }
    has_a = la.Next(&ea);
    has_b = lb.Next(&eb);
    if (!d.key.empty()) report(d);
  }
  return sum;
}

nlohmann::json DiffEntryToJson(const DiffEntry& e) {
  nlohmann::json j = {{"change", ChangeName(e.change)}, {"key", e.key}, {"keyKind", KeyKindName(e.key_kind)}};
  if (!e.resource.empty()) j["resource"] = e.resource;
  if (!e.ns.empty()) j["namespace"] = e.ns;
  if (!e.name.empty()) j["name"] = e.name;
  if (e.a.present) j["a"] = SideJson(e.a);
  if (e.b.present) j["b"] = SideJson(e.b);
  return j;
}

nlohmann::json DiffSummaryToJson(const DiffSummary& s) {
  nlohmann::json res = nlohmann::json::object(), ns = nlohmann::json::object();
  for (const auto& [k, c] : s.by_resource) res[k] = CountsJson(c);
  for (const auto& [k, c] : s.by_namespace) ns[k] = CountsJson(c);
  return {{"revisionA", s.revision_a}, {"revisionB", s.revision_b}, {"keysA", s.keys_a},
          {"keysB", s.keys_b},         {"unchanged", s.unchanged},   {"total", CountsJson(s.total)},
          {"objects", CountsJson(s.objects)}, {"byResource", res},  {"byNamespace", ns}};
}

std::string DiffEntryToLine(const DiffEntry& e) {
  std::string line = std::string(ChangeName(e.change)) + " " + e.key;
  if (e.a.present && e.b.present) {
    if (e.a.uid != e.b.uid) line += " uid " + (e.a.uid.empty() ? "?" : e.a.uid) + " -> " + (e.b.uid.empty() ? "?" : e.b.uid);
    if (e.a.generation != e.b.generation) {
      line += " generation " + std::to_string(e.a.generation) + " -> " + std::to_string(e.b.generation);
    }
  } else if (e.a.present && !e.a.uid.empty()) {
    line += " uid " + e.a.uid;
  } else if (e.b.present && !e.b.uid.empty()) {
    line += " uid " + e.b.uid;
  }
  return line + "\n";
}

std::string DiffSummaryToTable(const DiffSummary& s) {
  std::string out = "A revision " + std::to_string(s.revision_a) + " (" + std::to_string(s.keys_a) +
                    " keys), B revision " + std::to_string(s.revision_b) + " (" + std::to_string(s.keys_b) +
                    " keys), unchanged " + std::to_string(s.unchanged) + "\n";
  out += Header("KEYS");
  out += Row("objects", s.objects.added, s.objects.removed, s.objects.changed, s.objects.recreated);
  out += Row("all keys", s.total.added, s.total.removed, s.total.changed, s.total.recreated);
  if (!s.by_resource.empty()) {
    out += "\n" + Header("RESOURCE");
    for (const auto& [k, c] : s.by_resource) out += Row(k, c.added, c.removed, c.changed, c.recreated);
  }
  if (!s.by_namespace.empty()) {
    out += "\n" + Header("NAMESPACE");
    for (const auto& [k, c] : s.by_namespace) out += Row(k, c.added, c.removed, c.changed, c.recreated);
  }
  return out;
}

}  // namespace etcdsafe::k8s
