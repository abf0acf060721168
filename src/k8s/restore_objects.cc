#include "k8s/restore_objects.h"

#include <vector>

#include "base/error.h"
#include "k8s/envelope.h"

namespace etcdsafe::k8s {
namespace {

using client::EtcdClient;

struct Item {
  ops::KeyValue kv;
  ObjectOutcome outcome;
};

class Restorer {
 public:
  Restorer(EtcdClient& target, const RestoreObjectsOptions& o, RestoreObjectsSummary& sum,
           const std::function<void(const ObjectOutcome&)>& sink)
      : target_(target), o_(o), sum_(sum), sink_(sink) {}

  // One selected source kv.
  void Add(const ops::KeyValue& e) {
    sum_.selected++;
    Item it;
    const KeyInfo info = ClassifyKey(e.key, o_.selection.etcd_prefix);
    it.outcome.key = e.key;
    if (info.kind == KeyKind::kObject || info.kind == KeyKind::kNonObject) it.outcome.resource = info.GroupResource();
    it.outcome.ns = info.ns;
    it.outcome.name = info.name;
    const Envelope env = ParseEnvelope(AsBytes(e.value));
    it.outcome.encoding = EncodingName(env.encoding);
    it.outcome.bytes = int64_t(e.value.size());
    if (e.lease != 0) {
      it.outcome.action = ObjectAction::kSkippedLeased;
      Emit(it.outcome);
      return;
    }
    if (env.encoding == Encoding::kEncrypted && !o_.allow_encrypted) {
      it.outcome.action = ObjectAction::kRefusedEncrypted;
      Emit(it.outcome);
      return;
    }
    it.kv = e;
    batch_bytes_ += e.key.size() + e.value.size();
    batch_.push_back(std::move(it));
    if (batch_.size() >= o_.batch_ops || batch_bytes_ >= o_.batch_bytes) Flush();
  }

  void Flush() {
    if (batch_.empty()) return;
    for (int attempt = 0;; attempt++) {
      if (TryBatch()) break;
      if (attempt >= 4) {
        throw Error(ErrorCode::kUnavailable,
                    "restore-objects: the target kept changing the keys of a batch (first " + batch_.front().outcome.key +
                        "); nothing of that batch was written");
      }
      sum_.retries++;
    }
    for (Item& it : batch_) Emit(it.outcome);
    batch_.clear();
    batch_bytes_ = 0;
  }

 private:
  // Classifies the batch against the target and, with apply, writes it in one txn.
  // False when the txn's compares failed (the target changed since the classification).
  bool TryBatch() {
    std::vector<EtcdClient::Compare> compares;
    std::vector<EtcdClient::TxnOp> ops;
    for (Item& it : batch_) {
      const EtcdClient::RangeResult r = target_.Range(it.kv.key);
      it.outcome.written = false;
      it.outcome.written_revision = 0;
      if (r.kvs.empty()) {
        it.outcome.action = ObjectAction::kCreate;
        it.outcome.target_mod_revision = 0;
        compares.push_back({.target = EtcdClient::Compare::kCreateRevision, .result = EtcdClient::Compare::kEqual,
                            .key = it.kv.key, .number = 0, .value = ""});
      } else {
        it.outcome.target_mod_revision = r.kvs.front().mod_revision;
        if (r.kvs.front().value == it.kv.value) {
          it.outcome.action = ObjectAction::kEqual;
          continue;
        }
        if (!o_.overwrite) {
          it.outcome.action = ObjectAction::kConflict;
          continue;
        }
        it.outcome.action = ObjectAction::kOverwrite;
        compares.push_back({.target = EtcdClient::Compare::kModRevision, .result = EtcdClient::Compare::kEqual,
                            .key = it.kv.key, .number = it.outcome.target_mod_revision, .value = ""});
      }
      ops.push_back({.kind = EtcdClient::TxnOp::kPut, .key = it.kv.key, .value = it.kv.value, .range_end = "",
                     .lease = 0});
    }
    if (!o_.apply || ops.empty()) return true;
    const EtcdClient::TxnResult res = target_.TxnIf(compares, ops);
    sum_.transactions++;
    if (!res.succeeded) return false;
    for (Item& it : batch_) {
      if (it.outcome.action == ObjectAction::kCreate || it.outcome.action == ObjectAction::kOverwrite) {
        it.outcome.written = true;
        it.outcome.written_revision = res.header.revision;
      }
    }
    return true;
  }

  void Emit(const ObjectOutcome& o) {
    switch (o.action) {
      case ObjectAction::kCreate: sum_.create++; break;
      case ObjectAction::kEqual: sum_.equal++; break;
      case ObjectAction::kConflict: sum_.conflict++; break;
      case ObjectAction::kOverwrite: sum_.overwrite++; break;
      case ObjectAction::kSkippedLeased: sum_.skipped_leased++; break;
      case ObjectAction::kRefusedEncrypted: sum_.refused_encrypted++; break;
    }
    if (o.written) sum_.written++;
    sink_(o);
  }

  EtcdClient& target_;
  const RestoreObjectsOptions& o_;
  RestoreObjectsSummary& sum_;
  const std::function<void(const ObjectOutcome&)>& sink_;
  std::vector<Item> batch_;
  size_t batch_bytes_ = 0;
};

}  // namespace

const char* ObjectActionName(ObjectAction a) {
  switch (a) {
    case ObjectAction::kCreate: return "create";
    case ObjectAction::kEqual: return "equal";
    case ObjectAction::kConflict: return "conflict";
    case ObjectAction::kOverwrite: return "overwrite";
    case ObjectAction::kSkippedLeased: return "skipped-leased";
    case ObjectAction::kRefusedEncrypted: return "refused-encrypted";
  }
  return "conflict";
}

RestoreObjectsSummary RestoreObjects(ops::SnapshotKv& source, client::EtcdClient& target,
                                     const RestoreObjectsOptions& options,
                                     const std::function<void(const ObjectOutcome&)>& sink) {
  const ObjectSelection& sel = options.selection;
  const int given = int(!sel.ns.empty()) + int(!sel.key_prefix.empty()) + int(!sel.key.empty());
  if (given != 1) {
    throw Error(ErrorCode::kInvalidArgument, "restore-objects: give exactly one of --namespace, --prefix or --key");
  }
  RestoreObjectsSummary sum;
  sum.source_revision = source.current_revision();
  ops::KvRange range;
  range.key = sel.RangeBegin();
  range.range_end = sel.RangeEnd();
  const std::string ns_key = sel.NamespaceKey();

  // Encrypted values refuse an apply before anything is written.
  if (options.apply && !options.allow_encrypted) {
    int64_t encrypted = 0;
    std::string first;
    source.Range(range, [&](const ops::KeyValue& e) {
      if (e.lease != 0 || !sel.Matches(e.key, ClassifyKey(e.key, sel.etcd_prefix))) return;
      if (ParseEnvelope(AsBytes(e.value)).encoding != Encoding::kEncrypted) return;
      if (encrypted++ == 0) first = e.key;
    });
    if (encrypted > 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  "restore-objects: " + std::to_string(encrypted) + " selected value(s) are encrypted at rest (first " +
                      first + "); nothing written: give --allow-encrypted only if the target's API server has the "
                      "same encryption key, or narrow the selection");
    }
  }

  Restorer r(target, options, sum, sink);
  if (!ns_key.empty()) {
    ops::KvRange one;
    one.key = ns_key;
    ops::KvRangeResult res = source.Range(one);
    if (!res.kvs.empty()) {
      r.Add(res.kvs.front());
      r.Flush();
    }
  }
  source.Range(range, [&](const ops::KeyValue& e) {
    if (e.key == ns_key) return;  // done first
    if (!sel.Matches(e.key, ClassifyKey(e.key, sel.etcd_prefix))) return;
    r.Add(e);
  });
  r.Flush();
  return sum;
}

nlohmann::json ObjectOutcomeToJson(const ObjectOutcome& o) {
  nlohmann::json j = {{"key", o.key}, {"action", ObjectActionName(o.action)}, {"written", o.written}};
  if (!o.resource.empty()) j["resource"] = o.resource;
  if (!o.ns.empty()) j["namespace"] = o.ns;
  if (!o.name.empty()) j["name"] = o.name;
  j["encoding"] = o.encoding;
  j["bytes"] = o.bytes;
  if (o.target_mod_revision != 0) j["targetModRevision"] = o.target_mod_revision;
  if (o.written) j["writtenRevision"] = o.written_revision;
  return j;
}

nlohmann::json RestoreObjectsSummaryToJson(const RestoreObjectsSummary& s) {
  return {{"sourceRevision", s.source_revision}, {"selected", s.selected},
          {"create", s.create},                  {"equal", s.equal},
          {"conflict", s.conflict},              {"overwrite", s.overwrite},
          {"skippedLeased", s.skipped_leased},   {"refusedEncrypted", s.refused_encrypted},
          {"written", s.written},                {"transactions", s.transactions},
          {"retries", s.retries}};
}

}  // namespace etcdsafe::k8s
