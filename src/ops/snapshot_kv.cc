#include "ops/snapshot_kv.h"

#include <map>
#include <utility>

#include "base/error.h"

namespace etcdsafe::ops {

namespace {

constexpr size_t kRevBytes = 17;
constexpr size_t kMarkedRevBytes = 18;
constexpr char kKeyBucket[] = "key";
constexpr char kMetaBucket[] = "meta";

// Reads one varint from [*p, end); false when truncated or longer than 10 bytes.
bool ReadVarint(const uint8_t** p, const uint8_t* end, uint64_t* v) {
  uint64_t out = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*p >= end) return false;
    uint8_t b = *(*p)++;
    out |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) {
      *v = out;
      return true;
    }
  }
  return false;
}

// Walks the fields of a protobuf message; fn(field, wire_type, varint, bytes).
template <class F>
std::optional<std::string> WalkFields(Bytes pb, F&& fn) {
  const uint8_t* p = pb.data();
  const uint8_t* end = pb.data() + pb.size();
  while (p < end) {
    uint64_t tag = 0;
    if (!ReadVarint(&p, end, &tag)) return "truncated field tag";
    const uint64_t field = tag >> 3;
    const uint32_t wire = static_cast<uint32_t>(tag & 7);
    if (field == 0 || field > 0x1fffffff) return "invalid field number " + std::to_string(field);
    uint64_t num = 0;
    Bytes bytes;
    switch (wire) {
      case 0:
        if (!ReadVarint(&p, end, &num)) return "truncated varint in field " + std::to_string(field);
        break;
      case 1:
        if (end - p < 8) return "truncated fixed64 in field " + std::to_string(field);
        p += 8;
        break;
      case 2: {
        uint64_t len = 0;
        if (!ReadVarint(&p, end, &len)) return "truncated length in field " + std::to_string(field);
        if (len > static_cast<uint64_t>(end - p)) return "field " + std::to_string(field) + " runs past the end";
        bytes = Bytes{p, static_cast<size_t>(len)};
        p += len;
        break;
      }
      case 5:
        if (end - p < 4) return "truncated fixed32 in field " + std::to_string(field);
        p += 4;
        break;
      default:
        return "invalid wire type " + std::to_string(wire) + " in field " + std::to_string(field);
    }
    fn(field, wire, num, bytes);
  }
  return std::nullopt;
}

struct Latest {
  int64_t main = 0;
  int64_t sub = 0;
};

struct StopWalk {};

std::string EntryName(const std::string& file, const RevisionKey& r) {
  return file + ": bucket key: revision " + std::to_string(r.main) + "_" + std::to_string(r.sub);
}

}  // namespace

std::optional<RevisionKey> ParseRevisionKey(Bytes key) {
  if (key.size() != kRevBytes && key.size() != kMarkedRevBytes) return std::nullopt;
  if (key.size() == kMarkedRevBytes && key[kRevBytes] != 't') return std::nullopt;
  RevisionKey r;
  r.main = static_cast<int64_t>(LoadBE64(key.data()));
  r.sub = static_cast<int64_t>(LoadBE64(key.data() + 9));
  r.tombstone = key.size() == kMarkedRevBytes;
  return r;
}

std::string RevisionKeyBytes(int64_t main, int64_t sub) {
  std::string out;
  AppendBE64(&out, static_cast<uint64_t>(main));
  out.push_back('_');
  AppendBE64(&out, static_cast<uint64_t>(sub));
  return out;
}

std::optional<std::string> DecodeKeyValueView(Bytes pb, KeyValueView* out) {
  KeyValueView kv;
  std::optional<std::string> bad;
  auto err = WalkFields(pb, [&](uint64_t field, uint32_t wire, uint64_t num, Bytes bytes) {
    if (bad || field > 6) return;  // unknown fields are skipped
    const uint32_t want = (field == 1 || field == 5) ? 2 : 0;
    if (wire != want) {
      bad = "field " + std::to_string(field) + " has wire type " + std::to_string(wire);
      return;
    }
    switch (field) {
      case 1: kv.key = bytes; break;
      case 2: kv.create_revision = static_cast<int64_t>(num); break;
      case 3: kv.mod_revision = static_cast<int64_t>(num); break;
      case 4: kv.version = static_cast<int64_t>(num); break;
      case 5: kv.value = bytes; break;
      case 6: kv.lease = static_cast<int64_t>(num); break;
    }
  });
  if (err) return err;
  if (bad) return bad;
  *out = kv;
  return std::nullopt;
}

std::optional<std::string> DecodeKeyValue(Bytes pb, KeyValue* out) {
  KeyValueView v;
  if (std::optional<std::string> bad = DecodeKeyValueView(pb, &v)) return bad;
  KeyValue kv;
  kv.key.assign(AsString(v.key));
  kv.create_revision = v.create_revision;
  kv.mod_revision = v.mod_revision;
  kv.version = v.version;
  kv.value.assign(AsString(v.value));
  kv.lease = v.lease;
  *out = std::move(kv);
  return std::nullopt;
}

std::optional<std::string> DecodeKeyField(Bytes pb, Bytes* key) {
  Bytes found;
  std::optional<std::string> bad;
  auto err = WalkFields(pb, [&](uint64_t field, uint32_t wire, uint64_t, Bytes bytes) {
    if (field == 1 && !bad) {
      if (wire != 2) {
        bad = "field 1 has wire type " + std::to_string(wire);
        return;
      }
      found = bytes;
    } else if (field >= 2 && field <= 6 && !bad && wire != (field == 5 ? 2u : 0u)) {
      bad = "field " + std::to_string(field) + " has wire type " + std::to_string(wire);
    }
  });
  if (err) return err;
  if (bad) return bad;
  *key = found;
  return std::nullopt;
}

SnapshotKv::SnapshotKv(bolt::Reader reader) : reader_(std::move(reader)) {
  has_key_bucket_ = reader_.HasBucket(kKeyBucket);
  int64_t last_main = 1;
  if (has_key_bucket_) {
    if (std::optional<std::string> last = reader_.LastKey(kKeyBucket)) {
      std::optional<RevisionKey> r = ParseRevisionKey(AsBytes(*last));
      if (!r) {
        throw Error(ErrorCode::kDataLoss, reader_.name() + ": bucket key: last key has " +
                                              std::to_string(last->size()) +
                                              " bytes, not a revision");
      }
      last_main = r->main;
    }
  }
  const int64_t finished = MetaRevision("finishedCompactRev").value_or(0);
  const int64_t scheduled = MetaRevision("scheduledCompactRev").value_or(0);
  current_ = std::max(last_main, finished);
  compacted_ = std::max(finished, scheduled);
}

std::optional<int64_t> SnapshotKv::MetaRevision(const char* name) {
  if (!reader_.HasBucket(kMetaBucket)) return std::nullopt;
  std::optional<std::string> v = reader_.Get(kMetaBucket, name);
  if (!v) return std::nullopt;
  // etcd's bytesToRev reads [0,8) and [9,17): anything shorter would make it panic.
  if (v->size() < kRevBytes) {
    throw Error(ErrorCode::kDataLoss, reader_.name() + ": bucket meta: " + name + " has " +
                                          std::to_string(v->size()) + " bytes, not a revision");
  }
  return static_cast<int64_t>(LoadBE64(reinterpret_cast<const uint8_t*>(v->data())));
}

SnapshotKv SnapshotKv::Open(const std::string& path) { return SnapshotKv(bolt::Reader::Open(path)); }

SnapshotKv SnapshotKv::FromMemory(Bytes data) { return SnapshotKv(bolt::Reader::FromMemory(data)); }

KvRangeResult SnapshotKv::Range(const KvRange& req) {
  KvRangeResult out;
  std::vector<KeyValue> kvs;
  out = Range(req, [&](const KeyValue& kv) { kvs.push_back(kv); });
  out.kvs = std::move(kvs);
  return out;
}

KvRangeResult SnapshotKv::Range(const KvRange& req, const KvSink& sink) {
  // etcd's order of checks (mvcc rangeKeys): future first, then compacted.
  if (req.revision > current_) {
    throw Error(ErrorCode::kInvalidArgument, "etcdserver: mvcc: required revision is a future revision");
  }
  const int64_t at = req.revision <= 0 ? current_ : req.revision;
  if (at < compacted_) {
    throw Error(ErrorCode::kInvalidArgument, "etcdserver: mvcc: required revision has been compacted");
  }
  KvRangeResult out;
  out.revision = current_;
  if (!has_key_bucket_) return out;

  const std::string& begin = req.key;
  const std::string& end = req.range_end;
  const bool single = end.empty();
  const bool to_last = end.size() == 1 && end[0] == '\0';
  auto in_range = [&](std::string_view k) {
    if (single) return k == begin;
    if (k < std::string_view(begin)) return false;
    return to_last || k < std::string_view(end);
  };

  // Live keys at `at`: the latest non-tombstone revision of each. A tombstone removes the
  // key; a later put adds it back.
  std::map<std::string, Latest, std::less<>> live;
  const std::string& file = reader_.name();
  try {
    reader_.ForEachEntry(kKeyBucket, [&](Bytes k, Bytes v, bool is_bucket) {
      std::optional<RevisionKey> r = ParseRevisionKey(k);
      if (!r) {
        throw Error(ErrorCode::kDataLoss, file + ": bucket key: a key of " + std::to_string(k.size()) +
                                              " bytes is not a revision");
      }
      if (r->main > at) throw StopWalk{};
      if (is_bucket) throw Error(ErrorCode::kDataLoss, EntryName(file, *r) + ": a bucket, not a value");
      Bytes key;
      if (std::optional<std::string> bad = DecodeKeyField(v, &key)) {
        throw Error(ErrorCode::kDataLoss, EntryName(file, *r) + ": not a KeyValue: " + *bad);
      }
      const std::string_view ks = AsString(key);
      if (!in_range(ks)) return;
      if (r->tombstone) {
        auto it = live.find(ks);
        if (it != live.end()) live.erase(it);
        return;
      }
      auto it = live.find(ks);
      if (it == live.end()) {
        live.emplace(std::string(ks), Latest{r->main, r->sub});
      } else {
        it->second = Latest{r->main, r->sub};
      }
    });
  } catch (const StopWalk&) {
  }

  out.count = static_cast<int64_t>(live.size());
  size_t n = live.size();
  if (req.limit > 0 && static_cast<uint64_t>(req.limit) < n) {
    n = static_cast<size_t>(req.limit);
    out.more = true;
  }
  size_t sent = 0;
  for (auto it = live.begin(); sent < n; ++it, ++sent) {
    KeyValue kv = EntryAt(it->second.main, it->second.sub);
    if (req.keys_only) kv.value.clear();
    sink(kv);
  }
  return out;
}

KeyValue SnapshotKv::EntryAt(int64_t main, int64_t sub) {
  const RevisionKey r{main, sub, false};
  std::optional<std::string> v = reader_.Get(kKeyBucket, RevisionKeyBytes(main, sub));
  if (!v) throw Error(ErrorCode::kDataLoss, EntryName(reader_.name(), r) + ": vanished on the second read");
  KeyValue kv;
  if (std::optional<std::string> bad = DecodeKeyValue(AsBytes(*v), &kv)) {
    throw Error(ErrorCode::kDataLoss, EntryName(reader_.name(), r) + ": not a KeyValue: " + *bad);
  }
  return kv;
}

}  // namespace etcdsafe::ops
