#include "k8s/diff.h"

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include "k8s/envelope.h"
#include "k8s/export.h"

namespace etcdsafe::k8s {
namespace {

// Pulls the live kvs of [begin, end) out of a SnapshotKv in key order: Range runs on a
// thread of its own and its sink blocks while the queue is full.
class LiveCursor {
 public:
  LiveCursor(ops::SnapshotKv& kv, std::string begin, std::string end) {
    thread_ = std::thread([this, &kv, begin = std::move(begin), end = std::move(end)] {
      try {
        ops::KvRange r;
        r.key = begin;
        r.range_end = end;
        kv.Range(r, [this](const ops::KeyValue& e) {
          std::unique_lock<std::mutex> lock(mu_);
          cv_.wait(lock, [this] { return cancel_ || (queue_.size() < kMaxKvs && queued_bytes_ < kMaxBytes); });
          if (cancel_) throw Cancelled{};
          queue_.push_back(e);
          queued_bytes_ += e.key.size() + e.value.size();
          cv_.notify_all();
        });
      } catch (const Cancelled&) {
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        error_ = std::current_exception();
      }
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
      cv_.notify_all();
    });
  }
  ~LiveCursor() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancel_ = true;
      cv_.notify_all();
    }
    thread_.join();
  }
  LiveCursor(const LiveCursor&) = delete;
  LiveCursor& operator=(const LiveCursor&) = delete;

  // The next kv, or nullopt at the end; rethrows the reader's error.
  std::optional<ops::KeyValue> Next() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !queue_.empty() || done_; });
    if (queue_.empty()) {
      if (error_) std::rethrow_exception(error_);
      return std::nullopt;
    }
    ops::KeyValue e = std::move(queue_.front());
    queue_.pop_front();
    queued_bytes_ -= e.key.size() + e.value.size();
    cv_.notify_all();
    return e;
  }

 private:
  struct Cancelled {};
  static constexpr size_t kMaxKvs = 256;
  static constexpr size_t kMaxBytes = 8u << 20;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ops::KeyValue> queue_;
  size_t queued_bytes_ = 0;
  bool done_ = false, cancel_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};


DiffSide Side(const ops::KeyValue& e) {
  DiffSide s;
  s.present = true;
  s.create_revision = e.create_revision;
  s.mod_revision = e.mod_revision;
  s.version = e.version;
  s.bytes = int64_t(e.value.size());
  const Envelope env = ParseEnvelope(AsBytes(e.value));
  s.encoding = EncodingName(env.encoding);
  ObjectMeta m;
  bool ok = false;
  if (env.encoding == Encoding::kProtobuf) ok = !DecodeObjectMetaOfObject(env.raw, &m).has_value();
  if (env.encoding == Encoding::kJson) ok = !DecodeObjectMetaJson(e.value, &m).has_value();
  if (ok) {
    s.uid = m.uid;
    s.generation = m.generation;
  }
  return s;
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
  const std::string begin = options.key_prefix.empty() ? std::string(1, '\0') : options.key_prefix;
  const std::string end = options.key_prefix.empty() ? std::string(1, '\0') : PrefixRangeEnd(options.key_prefix);
  LiveCursor ca(a, begin, end);
  LiveCursor cb(b, begin, end);
  std::optional<ops::KeyValue> ea = ca.Next();
  std::optional<ops::KeyValue> eb = cb.Next();

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

  while (ea || eb) {
    DiffEntry d;
    if (eb && (!ea || eb->key < ea->key)) {
      sum.keys_b++;
      d.change = Change::kAdded;
      d.key = eb->key;
      d.b = Side(*eb);
      eb = cb.Next();
      report(d);
      continue;
    }
    if (ea && (!eb || ea->key < eb->key)) {
      sum.keys_a++;
      d.change = Change::kRemoved;
      d.key = ea->key;
      d.a = Side(*ea);
      ea = ca.Next();
      report(d);
      continue;
    }
    // The same key on both sides.
    sum.keys_a++;
    sum.keys_b++;
    if (ea->value == eb->value) {
      sum.unchanged++;
    } else {
      d.key = ea->key;
      d.a = Side(*ea);
      d.b = Side(*eb);
      const bool uids_known = !d.a.uid.empty() && !d.b.uid.empty();
      const bool recreated = uids_known ? d.a.uid != d.b.uid : d.a.create_revision != d.b.create_revision;
      d.change = recreated ? Change::kRecreated : Change::kChanged;
    }
    ea = ca.Next();
    eb = cb.Next();
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
