// Fuzz target for the offline `get --from-snapshot` decoder (ops/snapshot_kv): untrusted
// snapshot bytes. The first byte picks the mode:
//  * even: the rest is one mvccpb.KeyValue and the first 18 bytes a revision key; the
//    key-only decoder must agree with the full one.
//  * odd: the rest is a bbolt file; ranges over every key at several revisions and
//    limits must keep etcd's invariants (keys strictly ascending and inside the range,
//    count >= returned kvs, more == count > limit, keys_only gives the same keys with no
//    values, a limited read is a prefix of the full one), and ops::LiveKeys (one pass +
//    external sort, with a buffer small enough to spill sorted runs) must give the same
//    live keys as Range at the current revision whenever both read the file.
// Only etcdsafe::Error may escape; anything else (or a broken invariant) is a bug.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "ops/live_keys.h"
#include "ops/snapshot_kv.h"

namespace {

using namespace etcdsafe;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

void FuzzDecoders(Bytes b) {
  ops::KeyValue kv;
  std::optional<std::string> full = ops::DecodeKeyValue(b, &kv);
  Bytes key;
  std::optional<std::string> only = ops::DecodeKeyField(b, &key);
  Check(full.has_value() == only.has_value());
  if (!full) Check(AsString(key) == kv.key);
  std::optional<ops::RevisionKey> r = ops::ParseRevisionKey(b.first(std::min<size_t>(b.size(), 18)));
  if (r) {
    // Byte 8 is etcd's '_' separator, which etcd (and we) never check.
    std::string want(AsString(b.first(17)));
    want[8] = '_';
    Check(ops::RevisionKeyBytes(r->main, r->sub) == want);
    Check(r->tombstone == (b.size() >= 18 && b[17] == 't'));
  }
}

void FuzzRange(ops::SnapshotKv& s, int64_t rev, int64_t limit, const std::string& from, const std::string& end) {
  ops::KvRange req;
  req.key = from;
  req.range_end = end;
  req.revision = rev;
  ops::KvRangeResult all;
  try {
    all = s.Range(req);
  } catch (const Error&) {
    return;
  }
  Check(all.count == static_cast<int64_t>(all.kvs.size()));
  Check(!all.more);
  Check(all.revision == s.current_revision());
  for (size_t i = 0; i < all.kvs.size(); i++) {
    Check(all.kvs[i].key >= from);
    if (end.size() > 1 || (end.size() == 1 && end[0] != '\0')) Check(all.kvs[i].key < end);
    if (i > 0) Check(all.kvs[i - 1].key < all.kvs[i].key);
  }
  req.limit = limit;
  req.keys_only = true;
  ops::KvRangeResult some = s.Range(req);
  Check(some.count == all.count);
  Check(some.more == (limit > 0 && all.count > limit));
  Check(some.kvs.size() <= all.kvs.size());
  for (size_t i = 0; i < some.kvs.size(); i++) {
    Check(some.kvs[i].key == all.kvs[i].key);
    Check(some.kvs[i].value.empty());
    Check(some.kvs[i].mod_revision == all.kvs[i].mod_revision);
  }
}

// LiveKeys against Range over every key at the current revision.
void FuzzLiveKeys(ops::SnapshotKv& s, size_t memory) {
  ops::KvRange req;
  req.key = std::string(1, '\0');
  req.range_end = req.key;
  std::vector<ops::KeyValue> want;
  try {
    want = s.Range(req).kvs;
  } catch (const Error&) {
    return;
  }
  ops::LiveKeysOptions o;
  o.memory_bytes = memory;
  ops::LiveKeys live(s, o, [](const ops::KeyValueView& e, std::string* sum) { sum->assign(AsString(e.value)); });
  try {
    live.Scan();
  } catch (const Error&) {
    return;
  }
  ops::LiveKey e;
  size_t i = 0;
  while (live.Next(&e)) {
    Check(i < want.size());
    Check(e.key == want[i].key);
    Check(e.summary == want[i].value);
    Check(e.value_size == int64_t(want[i].value.size()));
    Check(e.create_revision == want[i].create_revision && e.mod_revision == want[i].mod_revision);
    Check(e.version == want[i].version && e.lease == want[i].lease);
    i++;
  }
  Check(i == want.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Bytes rest{data + 1, size - 1};
  try {
    if ((data[0] & 1) == 0) {
      FuzzDecoders(rest);
      return 0;
    }
    ops::SnapshotKv s = ops::SnapshotKv::FromMemory(rest);
    const int64_t cur = s.current_revision();
    const std::string all(1, '\0');
    for (int64_t rev : {int64_t{0}, cur - 1, s.compacted_revision(), cur / 2}) {
      FuzzRange(s, rev, (data[0] >> 1) & 3, all, all);
    }
    FuzzRange(s, 0, 1, "a", "");
    FuzzRange(s, 0, 2, "/", "0");
    FuzzLiveKeys(s, (data[0] & 8) != 0 ? 0 : size_t{16} << 20);  // 0: the 64 KiB minimum, spills
  } catch (const Error&) {
  }
  return 0;
}
