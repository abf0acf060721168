#include "ops/kv_hash.h"

#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/checksum.h"
#include "base/error.h"
#include "etcdfmt/mvcc.h"

namespace etcdsafe::ops {
namespace {

constexpr size_t kRevBytesLen = 17;  // 8 bytes main, '_', 8 bytes sub (mvcc revToBytes)
constexpr size_t kMarkedRevBytesLen = kRevBytesLen + 1;
constexpr uint8_t kMarkTombstone = 't';

struct Rev {
  int64_t main = 0, sub = 0;
  bool operator<(const Rev& o) const { return main < o.main || (main == o.main && sub < o.sub); }
  bool operator==(const Rev& o) const { return main == o.main && sub == o.sub; }
};

struct RevHash {
  size_t operator()(const Rev& r) const {
    return std::hash<uint64_t>()(static_cast<uint64_t>(r.main) * 0x9E3779B97F4A7C15ULL ^
                                 static_cast<uint64_t>(r.sub));
  }
};

int64_t LoadBE64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return static_cast<int64_t>(v);
}

std::string RevText(Bytes k) {
  if (k.size() < kRevBytesLen) return "a " + std::to_string(k.size()) + "-byte key";
  return "revision " + std::to_string(LoadBE64(k.data())) + "_" + std::to_string(LoadBE64(k.data() + 9));
}

// mvcc's bytesToRev; etcd panics on shorter keys, we refuse them.
Rev BytesToRev(Bytes k, const std::string& what) {
  if (k.size() < kRevBytesLen) {
    throw Error(ErrorCode::kDataLoss, what + ": bucket \"key\" holds " + RevText(k) +
                                          " (a revision needs 17 bytes)");
  }
  return Rev{LoadBE64(k.data()), LoadBE64(k.data() + 9)};
}

bool IsTombstone(Bytes k) { return k.size() == kMarkedRevBytesLen && k.data()[kRevBytesLen] == kMarkTombstone; }

// Field 1 (key) of an mvccpb.KeyValue. Any malformed protobuf is refused, as etcd's
// Unmarshal would refuse it (and stop at start-up).
std::optional<std::string_view> KeyValueKey(Bytes v) {
  std::optional<etcdfmt::KeyValueView> kv = etcdfmt::ParseKeyValueView(v);
  if (!kv) return std::nullopt;
  return kv->key;
}

// What kvindex.Keep(R) needs of one key's index (keyIndex), maintained as the entries
// arrive in revision order instead of keeping every generation: see keyIndex.keep and
// doCompact. The chosen generation is the first whose tombstone is above R, else the
// last one; its largest revision <= R is kept.
struct KeyState {
  bool in_index = false;        // restoreIntoIndex inserted it (its first entry was a put)
  bool last_gen_empty = false;  // the last generation is the empty one after a tombstone
  bool chosen = false;          // a generation with its tombstone above R was found
  bool has_keep = false;
  bool live = false;  // exists at R
  Rev keep;
};

// restoreIntoIndex, reduced to what Keep(rev) needs: the first entry of a key (a put).
void StartKey(KeyState& s, const Rev& kr, int64_t rev) {
  s.in_index = true;
  if (kr.main <= rev) {
    s.has_keep = true;
    s.keep = kr;
    s.live = true;
  }
}

// Every later entry of a key.
void NextEntry(KeyState& s, const Rev& kr, bool tomb, int64_t rev) {
  if (tomb) {
    if (s.last_gen_empty) return;  // ErrRevisionNotFound: ignored
    if (!s.chosen) {
      if (kr.main > rev) {
        s.chosen = true;  // this generation's tombstone is above rev: it is Keep's
      } else {
        s.has_keep = false;  // a whole generation at or below rev: nothing of it kept
      }
    }
    s.last_gen_empty = true;
    if (kr.main <= rev) s.live = false;
    return;
  }
  s.last_gen_empty = false;
  if (!s.chosen && kr.main <= rev) {
    s.has_keep = true;
    s.keep = kr;
  }
  if (kr.main <= rev) s.live = true;
}

// Per key: the state for Keep(R), and for Compact(C) with a compact override.
struct KeyStates {
  KeyState at_r, at_c;
};

struct LowEntry {
  Rev rev;
  uint32_t crc = 0;
  uint64_t len = 0;
};

std::optional<int64_t> MetaRev(bolt::Reader& db, std::string_view name) {
  if (!db.HasBucket("meta")) return std::nullopt;
  std::optional<std::string> v = db.Get("meta", name);
  if (!v) return std::nullopt;
  if (v->size() < 8) {
    throw Error(ErrorCode::kDataLoss, db.name() + ": meta/" + std::string(name) + " is " +
                                          std::to_string(v->size()) + " bytes, not a revision");
  }
  return LoadBE64(reinterpret_cast<const uint8_t*>(v->data()));
}

}  // namespace

std::string RegistryGroup(std::string_view key) {
  constexpr std::string_view kPrefix = "/registry/";
  if (!key.starts_with(kPrefix)) return "";
  std::string_view rest = key.substr(kPrefix.size());
  size_t slash = rest.rfind('/');
  if (slash == std::string_view::npos) return "";
  return std::string(rest.substr(0, slash));
}

KvSpace KvHashOfDb(bolt::Reader& db, const KvHashOptions& options) {
  KvSpace out;
  const std::string what = db.name();
  if (!db.HasBucket("key")) throw Error(ErrorCode::kDataLoss, what + ": no bucket \"key\": not an etcd db");

  // store.restore: the compacted revision and the current revision.
  int64_t compact = MetaRev(db, "finishedCompactRev").value_or(-1);
  int64_t current = 1;
  if (std::optional<std::string> last = db.LastKey("key")) current = BytesToRev(AsBytes(*last), what).main;
  if (current < compact) current = compact;
  // A compaction scheduled but not finished is resumed at start-up (compactLockfree),
  // unless it is beyond the current revision (ErrFutureRev).
  if (std::optional<int64_t> scheduled = MetaRev(db, "scheduledCompactRev");
      scheduled && *scheduled > compact && *scheduled <= current) {
    compact = *scheduled;
  }
  // An etcd compacted later than this db (its HashKV's compact_revision).
  bool emulate_compaction = false;
  if (options.compact_revision) {
    const int64_t c = *options.compact_revision <= 0 ? -1 : *options.compact_revision;
    if (c < compact) {
      throw Error(ErrorCode::kInvalidArgument, what + ": compacted at revision " + std::to_string(compact) +
                                                   ", after " + std::to_string(c) +
                                                   ": the history etcd hashed is not in it");
    }
    if (c > current) {
      throw Error(ErrorCode::kInvalidArgument, what + ": compact revision " + std::to_string(c) +
                                                   " is beyond the current revision " + std::to_string(current));
    }
    emulate_compaction = c > compact;
    compact = c;
  }
  out.current_revision = current;
  out.compact_revision = compact;

  // hashByRev's checks, with etcd's words.
  int64_t rev = options.revision;
  if (rev > 0 && rev <= compact) {
    throw Error(ErrorCode::kInvalidArgument, "mvcc: required revision has been compacted");
  }
  if (rev > 0 && rev > current) {
    throw Error(ErrorCode::kInvalidArgument, "mvcc: required revision is a future revision");
  }
  if (rev == 0) rev = current;
  out.hash_revision = rev;

  const Rev upper{rev + 1, 0};
  const Rev lower{compact + 1, 0};
  const Rev index_min{1, 0};  // restore indexes from revision 1 on

  std::unordered_map<std::string, KeyStates> keys;
  std::vector<LowEntry> low;          // entries below `lower`, in order
  uint32_t high_crc = 0;              // CRC-32C of the entries in [lower, upper)
  uint64_t high_len = 0;

  db.ForEach("key", [&](Bytes k, Bytes v) {
    const Rev kr = BytesToRev(k, what);
    const bool tomb = IsTombstone(k);
    // restoreIntoIndex (every entry, whatever R), reduced to what Keep(R) needs.
    if (!(kr < index_min)) {
      std::optional<std::string_view> user_key = KeyValueKey(v);
      if (!user_key) {
        throw Error(ErrorCode::kDataLoss, what + ": bucket \"key\": " + RevText(k) +
                                              " holds no valid mvccpb.KeyValue");
      }
      auto it = keys.find(std::string(*user_key));
      if (it == keys.end()) {
        if (!tomb) {  // a tombstone of a key the index does not hold is ignored
          KeyStates& s = keys[std::string(*user_key)];
          StartKey(s.at_r, kr, rev);
          if (emulate_compaction) StartKey(s.at_c, kr, compact);
        }
      } else {
        NextEntry(it->second.at_r, kr, tomb, rev);
        if (emulate_compaction) NextEntry(it->second.at_c, kr, tomb, compact);
      }
    }
    // hashByRev's filter (the keep test waits for the end of the pass).
    if (!(kr < upper)) return;
    if (kr < lower) {
      uint32_t c = Crc32cExtend(0, k);
      c = Crc32cExtend(c, v);
      low.push_back({kr, c, static_cast<uint64_t>(k.size()) + v.size()});
      return;
    }
    high_crc = Crc32cExtend(high_crc, k);
    high_crc = Crc32cExtend(high_crc, v);
    high_len += k.size() + v.size();
  });

  std::unordered_set<Rev, RevHash> keep, compact_kept;
  for (auto& [key, both] : keys) {
    const KeyState& s = both.at_r;
    if (s.has_keep) keep.insert(s.keep);
    // Compact(C) drops a kept tombstone (keyIndex.compact), as Keep does.
    if (emulate_compaction && both.at_c.has_keep) compact_kept.insert(both.at_c.keep);
    if (!s.live) continue;
    out.live_keys++;
    if (!options.count_groups) continue;
    std::string group = RegistryGroup(key);
    if (!group.empty()) out.groups[group]++;
    if (key == "/registry/namespaces/default") out.has_default_namespace = true;
    if (key == "/registry/namespaces/kube-system") out.has_kube_system_namespace = true;
    if (key.starts_with("/registry/ranges/")) out.has_range_key = true;
  }

  static constexpr uint8_t kBucket[] = {'k', 'e', 'y'};
  uint32_t crc = Crc32cExtend(0, kBucket, sizeof kBucket);
  for (const LowEntry& e : low) {
    if (!keep.empty()) {
      if (!keep.contains(e.rev)) continue;  // what compaction would remove
    } else if (emulate_compaction && !compact_kept.contains(e.rev)) {
      continue;  // etcd's own compaction at C removed it from its db
    }
    crc = Crc32cCombine(crc, e.crc, e.len);
  }
  out.hash = Crc32cCombine(crc, high_crc, high_len);
  return out;
}

KvSpace KvHashOfFile(const std::string& path, const KvHashOptions& options) {
  bolt::Reader db = bolt::Reader::Open(path);
  return KvHashOfDb(db, options);
}

}  // namespace etcdsafe::ops
