#include "follow/segment.h"

#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "base/checksum.h"
#include "base/error.h"
#include "etcdfmt/mvcc.h"

namespace etcdsafe::follow {
namespace {

constexpr size_t kMagicLen = sizeof(kSegmentMagic) - 1;

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void PutBytes(std::string& out, std::string_view b) {
  PutVarint(out, b.size());
  out.append(b);
}

// A bounded reader over untrusted bytes.
class Reader {
 public:
  Reader(Bytes b, const std::string& what) : p_(b.data()), end_(b.data() + b.size()), start_(b.data()), what_(what) {}
  bool done() const { return p_ == end_; }
  size_t offset() const { return static_cast<size_t>(p_ - start_); }
  [[noreturn]] void Fail(const std::string& why) const {
    throw Error(ErrorCode::kDataLoss, what_ + ": " + why + " at offset " + std::to_string(offset()));
  }
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) Fail("truncated varint");
      uint8_t c = *p_++;
      if (shift == 63 && c > 1) Fail("varint overflows 64 bits");
      v |= static_cast<uint64_t>(c & 0x7f) << shift;
      if (!(c & 0x80)) return v;
    }
    Fail("varint longer than 10 bytes");
  }
  int64_t NonNegative(const char* field) {
    uint64_t v = Varint();
    if (v > static_cast<uint64_t>(INT64_MAX)) Fail(std::string(field) + " out of range");
    return static_cast<int64_t>(v);
  }
  std::string_view Take(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) Fail("length " + std::to_string(n) + " past the end");
    std::string_view s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }
  std::string_view LengthPrefixed() { return Take(Varint()); }
  uint8_t Byte() {
    if (p_ == end_) Fail("truncated");
    return *p_++;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
  const uint8_t* start_;
  const std::string& what_;
};

bool IsHex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

std::string EncodeKeyValue(const KeyValue& kv) {
  return etcdfmt::EncodeKeyValue(
      {kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease});
}

KeyValue DecodeKeyValue(Bytes b, const std::string& what) {
  std::optional<etcdfmt::KeyValueView> v = etcdfmt::ParseKeyValueView(b);
  if (!v) throw Error(ErrorCode::kDataLoss, what + ": not an mvccpb.KeyValue");
  return KeyValue{std::string(v->key), std::string(v->value), v->create_revision, v->mod_revision, v->version,
                  v->lease};
}

SegmentBuilder::SegmentBuilder(std::string chain, uint64_t seq, int64_t prev_last_revision, std::string prev_sha256) {
  header_.chain = std::move(chain);
  header_.seq = seq;
  header_.seq_last = seq;
  header_.first_revision = prev_last_revision + 1;
  header_.last_revision = prev_last_revision;
  header_.prev_sha256 = std::move(prev_sha256);
}

void SegmentBuilder::Touch(int64_t time_ms) {
  if (empty()) {
    header_.first_time_ms = time_ms;
    header_.last_time_ms = time_ms;
  }
  if (time_ms < header_.last_time_ms) time_ms = header_.last_time_ms;  // clocks step back: keep order
  header_.last_time_ms = time_ms;
}

void SegmentBuilder::AddRevision(const Revision& r) {
  if (r.revision != header_.last_revision + 1) {
    throw Error(ErrorCode::kInternal, "segment: revision " + std::to_string(r.revision) + " after " +
                                          std::to_string(header_.last_revision));
  }
  if (r.events.empty()) throw Error(ErrorCode::kInternal, "segment: revision without events");
  Touch(r.time_ms);
  records_.push_back('R');
  PutVarint(records_, static_cast<uint64_t>(r.revision));
  PutVarint(records_, static_cast<uint64_t>(header_.last_time_ms));
  PutVarint(records_, r.events.size());
  for (const Event& e : r.events) {
    records_.push_back(e.is_delete ? 1 : 0);
    PutBytes(records_, e.data);
  }
  header_.last_revision = r.revision;
  header_.revisions++;
  header_.events += r.events.size();
}

void SegmentBuilder::AddLease(const LeaseRecord& l) {
  Touch(l.time_ms);
  records_.push_back(l.gone ? 'X' : 'L');
  PutVarint(records_, static_cast<uint64_t>(l.id));
  if (!l.gone) PutVarint(records_, static_cast<uint64_t>(l.ttl));
  PutVarint(records_, static_cast<uint64_t>(std::max(l.revision, header_.first_revision - 1)));
  PutVarint(records_, static_cast<uint64_t>(header_.last_time_ms));
  header_.leases++;
}

void SegmentBuilder::AddHash(const HashRecord& h) {
  if (h.revision < header_.first_revision - 1 || h.revision > header_.last_revision) {
    throw Error(ErrorCode::kInternal, "segment: HashKV at revision " + std::to_string(h.revision) +
                                          " outside the segment");
  }
  Touch(h.time_ms);
  records_.push_back('H');
  PutVarint(records_, static_cast<uint64_t>(h.revision));
  PutVarint(records_, h.hash);
  if (h.compact_revision < -1) throw Error(ErrorCode::kInternal, "segment: compact revision below -1");
  PutVarint(records_, static_cast<uint64_t>(h.compact_revision + 1));
  PutVarint(records_, static_cast<uint64_t>(header_.last_time_ms));
  header_.hashes++;
}

void SegmentBuilder::AddProgress(const ProgressRecord& p) {
  if (p.revision != header_.last_revision) {
    throw Error(ErrorCode::kInternal, "segment: progress at revision " + std::to_string(p.revision) +
                                          " but the last recorded revision is " +
                                          std::to_string(header_.last_revision));
  }
  Touch(p.time_ms);
  records_.push_back('P');
  PutVarint(records_, static_cast<uint64_t>(p.revision));
  PutVarint(records_, static_cast<uint64_t>(header_.last_time_ms));
  header_.progress++;
}

void SegmentBuilder::AddRecord(const Record& r) {
  switch (r.tag) {
    case 'R': AddRevision(r.rev); return;
    case 'L':
    case 'X': {
      LeaseRecord l = r.lease;
      l.gone = r.tag == 'X';
      AddLease(l);
      return;
    }
    case 'H': AddHash(r.hash); return;
    case 'P': AddProgress(r.progress); return;
    default: throw Error(ErrorCode::kInternal, "segment: unknown record tag");
  }
}

std::string HeaderToJson(const SegmentHeader& h) {
  nlohmann::ordered_json j;
  j["format"] = h.format;
  j["chain"] = h.chain;
  j["seq"] = h.seq;
  if (h.merged()) j["seq_last"] = h.seq_last;
  j["first_revision"] = h.first_revision;
  j["last_revision"] = h.last_revision;
  j["first_time_ms"] = h.first_time_ms;
  j["last_time_ms"] = h.last_time_ms;
  j["revisions"] = h.revisions;
  j["events"] = h.events;
  j["leases"] = h.leases;
  j["hashes"] = h.hashes;
  j["progress"] = h.progress;
  j["records_size"] = h.records_size;
  j["records_sha256"] = h.records_sha256;
  j["prev_sha256"] = h.prev_sha256;
  if (h.merged()) j["link_sha256"] = h.link_sha256;
  if (!h.end.empty()) j["end"] = h.end;
  return j.dump();
}

std::string SegmentBuilder::FinishMerged(uint64_t seq_last, const std::string& link_sha256, const std::string& end) {
  if (seq_last <= header_.seq || link_sha256.size() != 64) {
    throw Error(ErrorCode::kInternal, "segment: a merged segment needs a later last number and a link");
  }
  header_.seq_last = seq_last;
  header_.link_sha256 = link_sha256;
  return Finish(end);
}

std::string SegmentBuilder::Finish(const std::string& end) {
  header_.end = end;
  header_.records_size = records_.size();
  header_.records_sha256 = HexBytes(Sha256Of(AsBytes(records_)));
  std::string json = HeaderToJson(header_);
  std::string out;
  out.reserve(kMagicLen + 4 + json.size() + records_.size());
  out.append(kSegmentMagic, kMagicLen);
  uint32_t n = static_cast<uint32_t>(json.size());
  for (int i = 0; i < 4; i++) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += json;
  out += records_;
  return out;
}

namespace {

SegmentHeader ParseHeader(std::string_view text, const std::string& what) {
  auto fail = [&](const std::string& why) -> Error {
    return Error(ErrorCode::kDataLoss, what + ": segment header: " + why);
  };
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw fail("not a JSON object");
  static const std::set<std::string> kKnown = {"format", "chain", "seq", "first_revision", "last_revision",
                                               "first_time_ms", "last_time_ms", "revisions", "events", "leases",
                                               "hashes", "progress", "records_size", "records_sha256",
                                               "prev_sha256", "end", "seq_last", "link_sha256"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!kKnown.count(it.key())) throw fail("unknown key \"" + it.key().substr(0, 40) + "\"");
  }
  auto num = [&](const char* k, int64_t min) -> int64_t {
    if (!j.contains(k) || !j[k].is_number_integer()) throw fail(std::string(k) + " missing or not an integer");
    if (j[k].is_number_unsigned() && j[k].get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      throw fail(std::string(k) + " out of range");
    }
    int64_t v = j[k].get<int64_t>();
    if (v < min) throw fail(std::string(k) + " out of range");
    return v;
  };
  auto str = [&](const char* k, size_t max) -> std::string {
    if (!j.contains(k) || !j[k].is_string()) throw fail(std::string(k) + " missing or not a string");
    std::string v = j[k].get<std::string>();
    if (v.size() > max) throw fail(std::string(k) + " too long");
    return v;
  };
  SegmentHeader h;
  const int64_t format = num("format", 1);
  h.format = format > 1000 ? 1000 : static_cast<int>(format);
  if (format != kSegmentFormat) {
    throw Error(ErrorCode::kUnsupported, what + ": segment format " + std::to_string(h.format) +
                                             " is newer than this etcdsafe reads (" +
                                             std::to_string(kSegmentFormat) + ")");
  }
  h.chain = str("chain", 200);
  h.seq = static_cast<uint64_t>(num("seq", 1));
  h.seq_last = h.seq;
  if (j.contains("seq_last") != j.contains("link_sha256")) throw fail("seq_last and link_sha256 go together");
  if (j.contains("seq_last")) {
    h.seq_last = static_cast<uint64_t>(num("seq_last", 1));
    if (h.seq_last <= h.seq) throw fail("seq_last is not after seq");
    h.link_sha256 = str("link_sha256", 64);
    if (!IsHex64(h.link_sha256)) throw fail("link_sha256 is not 64 lowercase hex digits");
  }
  h.first_revision = num("first_revision", 1);
  h.last_revision = num("last_revision", 0);
  if (h.last_revision < h.first_revision - 1) throw fail("last_revision before first_revision");
  h.first_time_ms = num("first_time_ms", 0);
  h.last_time_ms = num("last_time_ms", 0);
  if (h.last_time_ms < h.first_time_ms) throw fail("last_time_ms before first_time_ms");
  h.revisions = static_cast<uint64_t>(num("revisions", 0));
  h.events = static_cast<uint64_t>(num("events", 0));
  h.leases = static_cast<uint64_t>(num("leases", 0));
  h.hashes = static_cast<uint64_t>(num("hashes", 0));
  h.progress = static_cast<uint64_t>(num("progress", 0));
  h.records_size = static_cast<uint64_t>(num("records_size", 0));
  h.records_sha256 = str("records_sha256", 64);
  h.prev_sha256 = str("prev_sha256", 64);
  if (!IsHex64(h.records_sha256)) throw fail("records_sha256 is not 64 lowercase hex digits");
  if (!IsHex64(h.prev_sha256)) throw fail("prev_sha256 is not 64 lowercase hex digits");
  if (j.contains("end")) {
    h.end = str("end", 1000);
    if (h.end.empty()) throw fail("end is empty");
  }
  if (h.revisions != static_cast<uint64_t>(h.last_revision - h.first_revision + 1)) {
    throw fail("revisions " + std::to_string(h.revisions) + " do not span " + std::to_string(h.first_revision) +
               ".." + std::to_string(h.last_revision));
  }
  if (h.events < h.revisions) throw fail("fewer events than revisions");
  return h;
}

}  // namespace

SegmentHeader DecodeSegment(Bytes plain, const std::string& what,
                            const std::function<void(const Record&)>& on_record) {
  if (plain.size() > kMaxSegmentBytes) {
    throw Error(ErrorCode::kDataLoss, what + ": segment of " + std::to_string(plain.size()) +
                                          " bytes is over the limit of " + std::to_string(kMaxSegmentBytes));
  }
  if (plain.size() < kMagicLen + 4 || std::memcmp(plain.data(), kSegmentMagic, kMagicLen) != 0) {
    throw Error(ErrorCode::kDataLoss, what + ": not an etcdsafe segment (bad magic)");
  }
  uint32_t n = 0;
  for (int i = 0; i < 4; i++) n |= static_cast<uint32_t>(plain[kMagicLen + i]) << (8 * i);
  if (n > kMaxSegmentHeader || n > plain.size() - kMagicLen - 4) {
    throw Error(ErrorCode::kDataLoss, what + ": segment header length " + std::to_string(n) + " out of range");
  }
  std::string_view json(reinterpret_cast<const char*>(plain.data() + kMagicLen + 4), n);
  SegmentHeader h = ParseHeader(json, what);
  Bytes records = plain.subspan(kMagicLen + 4 + n);
  if (records.size() != h.records_size) {
    throw Error(ErrorCode::kDataLoss, what + ": " + std::to_string(records.size()) +
                                          " bytes of records, the header says " + std::to_string(h.records_size));
  }
  Reader r(records, what);
  uint64_t revisions = 0, events = 0, leases = 0, hashes = 0, progress = 0;
  int64_t next_rev = h.first_revision;
  int64_t last_time = h.first_time_ms;
  Record rec;
  auto time_of = [&]() {
    int64_t t = r.NonNegative("time");
    if (t < last_time || t > h.last_time_ms) r.Fail("time " + std::to_string(t) + " out of order");
    last_time = t;
    return t;
  };
  auto rev_in_range = [&](int64_t rev) {
    if (rev < h.first_revision - 1 || rev > next_rev - 1) r.Fail("revision " + std::to_string(rev) + " out of range");
  };
  while (!r.done()) {
    rec.tag = static_cast<char>(r.Byte());
    switch (rec.tag) {
      case 'R': {
        rec.rev.revision = r.NonNegative("revision");
        if (rec.rev.revision != next_rev || next_rev > h.last_revision) {
          r.Fail("revision " + std::to_string(rec.rev.revision) + " where " + std::to_string(next_rev) +
                 " was expected");
        }
        rec.rev.time_ms = time_of();
        uint64_t count = r.Varint();
        if (count == 0 || count > records.size()) r.Fail("bad event count");
        rec.rev.events.resize(count);
        for (Event& e : rec.rev.events) {
          uint8_t kind = r.Byte();
          if (kind > 1) r.Fail("bad event kind");
          e.is_delete = kind == 1;
          e.data.assign(r.LengthPrefixed());
          if (e.data.empty()) r.Fail("empty event");
        }
        next_rev++;
        revisions++;
        events += count;
        break;
      }
      case 'L':
      case 'X': {
        rec.lease = LeaseRecord{};
        rec.lease.gone = rec.tag == 'X';
        rec.lease.id = r.NonNegative("lease id");
        if (rec.lease.id == 0) r.Fail("lease id 0");
        if (!rec.lease.gone) rec.lease.ttl = r.NonNegative("lease ttl");
        rec.lease.revision = r.NonNegative("revision");
        rev_in_range(rec.lease.revision);
        rec.lease.time_ms = time_of();
        leases++;
        break;
      }
      case 'H': {
        rec.hash.revision = r.NonNegative("revision");
        rev_in_range(rec.hash.revision);
        uint64_t hv = r.Varint();
        if (hv > UINT32_MAX) r.Fail("hash out of range");
        rec.hash.hash = static_cast<uint32_t>(hv);
        rec.hash.compact_revision = r.NonNegative("compact revision") - 1;
        rec.hash.time_ms = time_of();
        hashes++;
        break;
      }
      case 'P': {
        rec.progress.revision = r.NonNegative("revision");
        if (rec.progress.revision != next_rev - 1) r.Fail("progress revision out of order");
        rec.progress.time_ms = time_of();
        progress++;
        break;
      }
      default:
        r.Fail("unknown record tag");
    }
    if (on_record) on_record(rec);
  }
  if (revisions != h.revisions || events != h.events || leases != h.leases || hashes != h.hashes ||
      progress != h.progress) {
    throw Error(ErrorCode::kDataLoss, what + ": the records do not match the header's counts");
  }
  if (next_rev != h.last_revision + 1) throw Error(ErrorCode::kDataLoss, what + ": revisions missing at the end");
  if (HexBytes(Sha256Of(records)) != h.records_sha256) {
    throw Error(ErrorCode::kDataLoss, what + ": records sha256 mismatch");
  }
  return h;
}

}  // namespace etcdsafe::follow
