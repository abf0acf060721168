// The segment format (follow/segment.h): what SegmentBuilder writes DecodeSegment reads
// back record for record, and DecodeSegment treats its input as hostile: every
// truncation, every flipped bit, a bad header, counts that do not match, revisions or
// times out of order end in an etcdsafe::Error (kDataLoss; kUnsupported only for a newer
// format), never in a crash or a record handed on from bytes the header does not vouch for.
#include "follow/segment.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <cctype>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/checksum.h"
#include "base/error.h"

namespace etcdsafe::follow {
namespace {

constexpr char kChain[] = "etcd-snapshot-20261201-003000-r100";
const std::string kPrev(64, 'a');
constexpr size_t kMagicLen = sizeof(kSegmentMagic) - 1;

Event Put(const std::string& key, const std::string& value, int64_t create, int64_t mod, int64_t version,
          int64_t lease = 0) {
  KeyValue kv;
  kv.key = key;
  kv.value = value;
  kv.create_revision = create;
  kv.mod_revision = mod;
  kv.version = version;
  kv.lease = lease;
  return Event{false, EncodeKeyValue(kv)};
}

Event Delete(const std::string& key) { return Event{true, key}; }

// A segment with every kind of record: revisions 101..104 (a txn of three events at
// 103), a lease granted and one gone, a HashKV, progress.
SegmentBuilder Full() {
  SegmentBuilder b(kChain, 1, 100, kPrev);
  b.AddRevision({101, 1000, {Put("a", "1", 101, 101, 1)}});
  b.AddLease({false, 7, 60, 101, 1001});
  b.AddRevision({102, 1002, {Put("b", std::string(300, 'x'), 102, 102, 1, 7)}});
  b.AddRevision({103, 1003, {Put("a", "2", 101, 103, 2), Delete("b"), Put("c", "", 103, 103, 1)}});
  b.AddHash({103, 0xdeadbeef, 50, 1004});
  b.AddLease({true, 7, 0, 103, 1005});
  b.AddRevision({104, 1006, {Delete("a")}});
  b.AddProgress({104, 2000});
  return b;
}

std::vector<Record> DecodeAll(const std::string& plain, SegmentHeader* h = nullptr) {
  std::vector<Record> out;
  SegmentHeader got = DecodeSegment(AsBytes(plain), "test", [&](const Record& r) { out.push_back(r); });
  if (h != nullptr) *h = got;
  return out;
}

// Magic, length, header text and records as given (for hostile inputs).
std::string Assemble(const std::string& header, const std::string& records) {
  std::string out(kSegmentMagic, kMagicLen);
  uint32_t n = static_cast<uint32_t>(header.size());
  for (int i = 0; i < 4; i++) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return out + header + records;
}

// Splits a plain segment into its header JSON and its records.
std::pair<std::string, std::string> Split(const std::string& plain) {
  uint32_t n = 0;
  for (int i = 0; i < 4; i++) n |= static_cast<uint32_t>(static_cast<uint8_t>(plain[kMagicLen + i])) << (8 * i);
  return {plain.substr(kMagicLen + 4, n), plain.substr(kMagicLen + 4 + n)};
}

// The error code DecodeSegment throws (nullopt if it accepts the input); anything other
// than an etcdsafe::Error fails the test.
std::optional<ErrorCode> CodeOf(const std::string& plain, std::string* message = nullptr) {
  try {
    DecodeSegment(AsBytes(plain), "seg", [](const Record&) {});
    return std::nullopt;
  } catch (const Error& e) {
    if (message != nullptr) *message = e.what();
    return e.code();
  }
}

// Raw records, for inputs the builder refuses to write.
class Raw {
 public:
  Raw& Tag(char t) {
    s_.push_back(t);
    return *this;
  }
  Raw& V(uint64_t v) {
    while (v >= 0x80) {
      s_.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    s_.push_back(static_cast<char>(v));
    return *this;
  }
  Raw& B(const std::string& b) {
    V(b.size());
    s_ += b;
    return *this;
  }
  Raw& Byte(uint8_t c) {
    s_.push_back(static_cast<char>(c));
    return *this;
  }
  const std::string& str() const { return s_; }

 private:
  std::string s_;
};

// A header that matches `records` in size and sha256, with the given counts; the rest
// from the arguments.
std::string HeaderFor(const std::string& records, int64_t first, int64_t last, uint64_t revisions, uint64_t events,
                      uint64_t leases = 0, uint64_t hashes = 0, uint64_t progress = 0, int64_t t0 = 1000,
                      int64_t t1 = 9000) {
  SegmentHeader h;
  h.chain = kChain;
  h.seq = 1;
  h.first_revision = first;
  h.last_revision = last;
  h.first_time_ms = t0;
  h.last_time_ms = t1;
  h.revisions = revisions;
  h.events = events;
  h.leases = leases;
  h.hashes = hashes;
  h.progress = progress;
  h.records_size = records.size();
  h.records_sha256 = HexBytes(Sha256Of(AsBytes(records)));
  h.prev_sha256 = kPrev;
  return HeaderToJson(h);
}

TEST(KeyValue, RoundTripsEveryField) {
  KeyValue kv;
  kv.key = std::string("k\0ey", 4);
  kv.value = std::string(1000, 'v');
  kv.create_revision = 5;
  kv.mod_revision = 1ll << 40;
  kv.version = 3;
  kv.lease = 0x7fffffffffffffffll;
  KeyValue back = DecodeKeyValue(AsBytes(EncodeKeyValue(kv)), "kv");
  EXPECT_EQ(back.key, kv.key);
  EXPECT_EQ(back.value, kv.value);
  EXPECT_EQ(back.create_revision, kv.create_revision);
  EXPECT_EQ(back.mod_revision, kv.mod_revision);
  EXPECT_EQ(back.version, kv.version);
  EXPECT_EQ(back.lease, kv.lease);
  // Zero values and empty bytes are left out, as gogoproto does.
  EXPECT_EQ(EncodeKeyValue(KeyValue{}), "");
}

TEST(KeyValue, TruncationsAreDataLoss) {
  KeyValue kv;
  kv.key = "key";
  kv.value = "value";
  kv.mod_revision = 300;
  const std::string enc = EncodeKeyValue(kv);
  for (size_t i = 1; i < enc.size(); i++) {
    try {
      DecodeKeyValue(AsBytes(enc.substr(0, i)), "kv");
      // Cut exactly between fields: a shorter valid message.
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << i;
    }
  }
  EXPECT_THROW(DecodeKeyValue(AsBytes(std::string("\x0f", 1)), "kv"), Error);  // wire type 7
}

TEST(Segment, RoundTripsEveryKindOfRecord) {
  SegmentBuilder b = Full();
  EXPECT_FALSE(b.empty());
  const std::string plain = b.Finish("stopped");
  SegmentHeader h;
  std::vector<Record> recs = DecodeAll(plain, &h);
  EXPECT_EQ(h.chain, kChain);
  EXPECT_EQ(h.seq, 1u);
  EXPECT_EQ(h.first_revision, 101);
  EXPECT_EQ(h.last_revision, 104);
  EXPECT_EQ(h.first_time_ms, 1000);
  EXPECT_EQ(h.last_time_ms, 2000);
  EXPECT_EQ(h.revisions, 4u);
  EXPECT_EQ(h.events, 6u);
  EXPECT_EQ(h.leases, 2u);
  EXPECT_EQ(h.hashes, 1u);
  EXPECT_EQ(h.progress, 1u);
  EXPECT_EQ(h.prev_sha256, kPrev);
  EXPECT_EQ(h.end, "stopped");
  ASSERT_EQ(recs.size(), 8u);
  std::string tags;
  for (const auto& r : recs) tags.push_back(r.tag);
  EXPECT_EQ(tags, "RLRRHXRP");
  EXPECT_EQ(recs[0].rev.revision, 101);
  EXPECT_EQ(recs[0].rev.time_ms, 1000);
  ASSERT_EQ(recs[3].rev.events.size(), 3u);  // the txn, in sub-revision order
  EXPECT_FALSE(recs[3].rev.events[0].is_delete);
  KeyValue a2 = DecodeKeyValue(AsBytes(recs[3].rev.events[0].data), "kv");
  EXPECT_EQ(a2.key, "a");
  EXPECT_EQ(a2.value, "2");
  EXPECT_EQ(a2.create_revision, 101);
  EXPECT_EQ(a2.mod_revision, 103);
  EXPECT_EQ(a2.version, 2);
  EXPECT_TRUE(recs[3].rev.events[1].is_delete);
  EXPECT_EQ(recs[3].rev.events[1].data, "b");
  KeyValue b1 = DecodeKeyValue(AsBytes(recs[2].rev.events[0].data), "kv");
  EXPECT_EQ(b1.lease, 7);
  EXPECT_EQ(b1.value, std::string(300, 'x'));
  EXPECT_FALSE(recs[1].lease.gone);
  EXPECT_EQ(recs[1].lease.id, 7);
  EXPECT_EQ(recs[1].lease.ttl, 60);
  EXPECT_EQ(recs[1].lease.revision, 101);
  EXPECT_EQ(recs[1].lease.time_ms, 1001);
  EXPECT_TRUE(recs[5].lease.gone);
  EXPECT_EQ(recs[5].lease.revision, 103);
  EXPECT_EQ(recs[4].hash.revision, 103);
  EXPECT_EQ(recs[4].hash.hash, 0xdeadbeefu);
  EXPECT_EQ(recs[4].hash.compact_revision, 50);
  EXPECT_EQ(recs[7].progress.revision, 104);
  EXPECT_EQ(recs[7].progress.time_ms, 2000);
  // Deterministic: the same records give the same bytes.
  EXPECT_EQ(Full().Finish("stopped"), plain);
}

TEST(Segment, EmptyAndProgressOnlySegmentsDecode) {
  SegmentBuilder empty(kChain, 2, 150, kPrev);
  EXPECT_TRUE(empty.empty());
  SegmentHeader h;
  EXPECT_TRUE(DecodeAll(empty.Finish(), &h).empty());
  EXPECT_EQ(h.first_revision, 151);
  EXPECT_EQ(h.last_revision, 150);
  EXPECT_EQ(h.revisions, 0u);

  // "Nothing was written up to revision 150 at these times."
  SegmentBuilder idle(kChain, 3, 150, kPrev);
  idle.AddProgress({150, 5000});
  idle.AddProgress({150, 6000});
  std::vector<Record> recs = DecodeAll(idle.Finish(), &h);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(h.last_revision, 150);
  EXPECT_EQ(h.first_time_ms, 5000);
  EXPECT_EQ(h.last_time_ms, 6000);
}

TEST(Segment, BuilderRefusesWhatTheFormatForbids) {
  SegmentBuilder b(kChain, 1, 100, kPrev);
  auto internal = [](const std::function<void()>& f) {
    try {
      f();
      return false;
    } catch (const Error& e) {
      return e.code() == ErrorCode::kInternal;
    }
  };
  EXPECT_TRUE(internal([&] { b.AddRevision({102, 1000, {Delete("a")}}); }));  // 101 skipped
  EXPECT_TRUE(internal([&] { b.AddRevision({101, 1000, {}}); }));             // no events
  EXPECT_TRUE(internal([&] { b.AddHash({101, 1, 0, 1000}); }));               // not recorded yet
  EXPECT_TRUE(internal([&] { b.AddProgress({99, 1000}); }));
  b.AddRevision({101, 1000, {Delete("a")}});
  EXPECT_TRUE(internal([&] { b.AddRevision({101, 1001, {Delete("a")}}); }));  // twice
  // A clock that steps back does not break the order of times.
  b.AddRevision({102, 500, {Delete("b")}});
  std::vector<Record> recs = DecodeAll(b.Finish());
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[1].rev.time_ms, 1000);
}

TEST(Segment, EveryTruncationIsDataLoss) {
  const std::string plain = Full().Finish();
  for (size_t i = 0; i < plain.size(); i++) {
    std::string message;
    EXPECT_EQ(CodeOf(plain.substr(0, i), &message), ErrorCode::kDataLoss) << "cut at " << i;
    EXPECT_NE(message.find("seg"), std::string::npos) << message;
  }
  // One byte more is as bad as one byte less.
  EXPECT_EQ(CodeOf(plain + "R"), ErrorCode::kDataLoss);
}

TEST(Segment, FlippedBitsAreRefusedOrOnlyChangeTheHeader) {
  const std::string plain = Full().Finish("stopped");
  const auto [header, records] = Split(plain);
  const size_t header_begin = kMagicLen + 4, records_begin = header_begin + header.size();
  size_t accepted = 0;
  for (size_t i = 0; i < plain.size(); i++) {
    for (int bit = 0; bit < 8; bit++) {
      std::string bad = plain;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      std::vector<Record> recs;
      try {
        DecodeSegment(AsBytes(bad), "seg", [&](const Record& r) { recs.push_back(r); });
      } catch (const Error& e) {
        EXPECT_TRUE(e.code() == ErrorCode::kDataLoss || e.code() == ErrorCode::kUnsupported)
            << i << "/" << bit << ": " << e.what();
        continue;
      }
      // Accepted: the records sha256 vouches for every record byte, so only a header
      // field the records do not pin down (the chain's name, the end, last_time_ms,
      // prev_sha256) can have changed; the chain's link and its name catch those.
      accepted++;
      EXPECT_GE(i, header_begin) << bit;
      EXPECT_LT(i, records_begin) << i << "/" << bit << " changed a record and was accepted";
      EXPECT_EQ(recs.size(), 8u);
    }
  }
  EXPECT_GT(accepted, 0u);  // the chain's name and the end are not pinned by the records
}

TEST(Segment, BadMagicAndHeaderLengths) {
  const std::string plain = Full().Finish();
  const auto [header, records] = Split(plain);
  std::string bad = plain;
  bad[0] = 'X';
  EXPECT_EQ(CodeOf(bad), ErrorCode::kDataLoss);
  EXPECT_EQ(CodeOf(""), ErrorCode::kDataLoss);
  // Length past the end, larger than the limit, and zero.
  for (uint32_t n : {static_cast<uint32_t>(plain.size()), static_cast<uint32_t>(kMaxSegmentHeader + 1), 0xffffffffu, 0u}) {
    std::string s = plain;
    for (int i = 0; i < 4; i++) s[kMagicLen + i] = static_cast<char>((n >> (8 * i)) & 0xff);
    EXPECT_EQ(CodeOf(s), ErrorCode::kDataLoss) << n;
  }
  // A header that is not the whole JSON: one byte short or long.
  EXPECT_EQ(CodeOf(Assemble(header.substr(0, header.size() - 1), "}" + records)), ErrorCode::kDataLoss);
}

TEST(Segment, BadHeaderJsonIsDataLoss) {
  const std::string plain = Full().Finish();
  const auto [header, records] = Split(plain);
  const nlohmann::json good = nlohmann::json::parse(header);
  auto with = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = good;
    edit(j);
    return Assemble(j.dump(), records);
  };
  EXPECT_EQ(CodeOf(with([](nlohmann::json&) {})), std::nullopt);  // the harness itself
  EXPECT_EQ(CodeOf(Assemble("not json", records)), ErrorCode::kDataLoss);
  EXPECT_EQ(CodeOf(Assemble("[1,2]", records)), ErrorCode::kDataLoss);
  EXPECT_EQ(CodeOf(Assemble("", records)), ErrorCode::kDataLoss);
  EXPECT_EQ(CodeOf(Assemble(header + " x", records)), ErrorCode::kDataLoss);
  const std::vector<std::pair<std::string, std::function<void(nlohmann::json&)>>> cases = {
      {"unknown key", [](nlohmann::json& j) { j["extra"] = 1; }},
      {"no chain", [](nlohmann::json& j) { j.erase("chain"); }},
      {"no records_sha256", [](nlohmann::json& j) { j.erase("records_sha256"); }},
      {"seq 0", [](nlohmann::json& j) { j["seq"] = 0; }},
      {"seq a string", [](nlohmann::json& j) { j["seq"] = "1"; }},
      {"seq a float", [](nlohmann::json& j) { j["seq"] = 1.5; }},
      {"revision negative", [](nlohmann::json& j) { j["first_revision"] = -1; }},
      {"revision past int64", [](nlohmann::json& j) { j["last_revision"] = 18446744073709551615ull; }},
      {"last before first - 1", [](nlohmann::json& j) { j["last_revision"] = 99; }},
      {"times reversed", [](nlohmann::json& j) { j["first_time_ms"] = 3000; }},
      {"format 0", [](nlohmann::json& j) { j["format"] = 0; }},
      {"sha256 upper case",
       [](nlohmann::json& j) {
         std::string s = j["records_sha256"];
         for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
         j["records_sha256"] = s;
       }},
      {"prev_sha256 short", [](nlohmann::json& j) { j["prev_sha256"] = "abc"; }},
      {"chain an object", [](nlohmann::json& j) { j["chain"] = nlohmann::json::object(); }},
      {"end empty", [](nlohmann::json& j) { j["end"] = ""; }},
      {"chain too long", [](nlohmann::json& j) { j["chain"] = std::string(5000, 'c'); }},
      {"revisions do not span the range", [](nlohmann::json& j) { j["revisions"] = 3; }},
      {"fewer events than revisions",
       [](nlohmann::json& j) {
         j["events"] = 3;
       }},
      {"events count off", [](nlohmann::json& j) { j["events"] = 7; }},
      {"leases count off", [](nlohmann::json& j) { j["leases"] = 1; }},
      {"hashes count off", [](nlohmann::json& j) { j["hashes"] = 2; }},
      {"progress count off", [](nlohmann::json& j) { j["progress"] = 0; }},
      {"records_size off", [](nlohmann::json& j) { j["records_size"] = j["records_size"].get<uint64_t>() - 1; }},
      {"records sha256 of other bytes", [](nlohmann::json& j) { j["records_sha256"] = std::string(64, '0'); }},
      {"last_time before a record's time", [](nlohmann::json& j) { j["last_time_ms"] = 1500; }},
      {"first_time after a record's time", [](nlohmann::json& j) { j["first_time_ms"] = 1001; }},
  };
  for (const auto& [name, edit] : cases) {
    std::string message;
    EXPECT_EQ(CodeOf(with(edit), &message), ErrorCode::kDataLoss) << name;
    EXPECT_FALSE(message.empty()) << name;
  }
  // A newer format is not damage: this build cannot read it.
  EXPECT_EQ(CodeOf(with([](nlohmann::json& j) { j["format"] = 2; })), ErrorCode::kUnsupported);
  // A header that does not fit the limit.
  EXPECT_EQ(CodeOf(with([](nlohmann::json& j) { j["end"] = std::string(kMaxSegmentHeader, 'e'); })),
            ErrorCode::kDataLoss);
}

// Records the builder never writes, under a header that matches them in size, sha256 and
// counts: only the targeted rule is broken.
TEST(Segment, RecordsOutOfOrderAreDataLoss) {
  struct Case {
    std::string name;
    std::string records;
    int64_t first, last;
    uint64_t revisions, events, leases, hashes, progress;
  };
  const std::string kv = EncodeKeyValue({"k", "v", 101, 101, 1, 0});
  auto rev = [&](Raw& r, uint64_t revision, uint64_t t) -> Raw& {
    return r.Tag('R').V(revision).V(t).V(1).Byte(0).B(kv);
  };
  std::vector<Case> cases;
  {
    Raw r;
    rev(r, 101, 1000);
    rev(r, 103, 1001);
    cases.push_back({"revision skipped", r.str(), 101, 102, 2, 2, 0, 0, 0});
  }
  {
    Raw r;
    rev(r, 102, 1000);
    rev(r, 101, 1001);
    cases.push_back({"revisions reversed", r.str(), 101, 102, 2, 2, 0, 0, 0});
  }
  {
    Raw r;
    rev(r, 101, 1000);
    rev(r, 101, 1001);
    cases.push_back({"revision twice", r.str(), 101, 102, 2, 2, 0, 0, 0});
  }
  {
    Raw r;
    rev(r, 101, 2000);
    rev(r, 102, 1500);
    cases.push_back({"time goes back", r.str(), 101, 102, 2, 2, 0, 0, 0});
  }
  {
    Raw r;
    rev(r, 101, 1000);
    rev(r, 102, 1001);
    rev(r, 103, 1002);
    cases.push_back({"revision past last_revision", r.str(), 101, 102, 2, 3, 0, 0, 0});
  }
  {
    Raw r;
    rev(r, 101, 1000);
    cases.push_back({"revisions missing at the end", r.str(), 101, 102, 2, 2, 0, 0, 0});
  }
  {
    Raw r;
    rev(r, 101, 1000);
    r.Tag('H').V(102).V(5).V(0).V(1001);
    cases.push_back({"HashKV ahead of the revisions", r.str(), 101, 101, 1, 1, 0, 1, 0});
  }
  {
    Raw r;
    r.Tag('H').V(50).V(5).V(0).V(1001);
    cases.push_back({"HashKV before the segment", r.str(), 101, 100, 0, 0, 0, 1, 0});
  }
  {
    Raw r;
    rev(r, 101, 1000);
    r.Tag('P').V(100).V(1001);
    cases.push_back({"progress behind", r.str(), 101, 101, 1, 1, 0, 0, 1});
  }
  {
    Raw r;
    r.Tag('L').V(0).V(60).V(100).V(1000);
    cases.push_back({"lease id 0", r.str(), 101, 100, 0, 0, 1, 0, 0});
  }
  {
    Raw r;
    r.Tag('X').V(5).V(101).V(1000);
    cases.push_back({"lease gone at a future revision", r.str(), 101, 100, 0, 0, 1, 0, 0});
  }
  {
    Raw r;
    r.Tag('R').V(101).V(1000).V(1).Byte(2).B(kv);
    cases.push_back({"event kind 2", r.str(), 101, 101, 1, 1, 0, 0, 0});
  }
  {
    Raw r;
    r.Tag('R').V(101).V(1000).V(1).Byte(0).B("");
    cases.push_back({"empty event", r.str(), 101, 101, 1, 1, 0, 0, 0});
  }
  {
    Raw r;
    r.Tag('R').V(101).V(1000).V(0);
    cases.push_back({"revision without events", r.str(), 101, 101, 1, 1, 0, 0, 0});
  }
  {
    Raw r;
    r.Tag('R').V(101).V(1000).V(1000000).Byte(0).B(kv);
    cases.push_back({"event count past the end", r.str(), 101, 101, 1, 1, 0, 0, 0});
  }
  {
    Raw r;
    r.Tag('R').V(101).V(1000).V(1).Byte(0).V(1ull << 40);
    cases.push_back({"event length past the end", r.str(), 101, 101, 1, 1, 0, 0, 0});
  }
  {
    Raw r;
    r.Tag('Q').V(1);
    cases.push_back({"unknown tag", r.str(), 101, 100, 0, 0, 0, 0, 0});
  }
  {
    Raw r;
    r.Tag('P').V(100);
    for (int i = 0; i < 11; i++) r.Byte(0xff);
    cases.push_back({"varint longer than 10 bytes", r.str(), 101, 100, 0, 0, 0, 0, 1});
  }
  {
    Raw r;
    r.Tag('P').V(100).V(1ull << 63);
    cases.push_back({"time past int64", r.str(), 101, 100, 0, 0, 0, 0, 1});
  }
  {
    Raw r;
    rev(r, 101, 1000);
    cases.push_back({"counts: an event more than recorded", r.str(), 101, 101, 1, 2, 0, 0, 0});
  }
  {
    Raw r;
    rev(r, 101, 1000);
    cases.push_back({"counts: a lease more than recorded", r.str(), 101, 101, 1, 1, 1, 0, 0});
  }
  for (const auto& c : cases) {
    std::string message;
    const std::string plain = Assemble(
        HeaderFor(c.records, c.first, c.last, c.revisions, c.events, c.leases, c.hashes, c.progress), c.records);
    EXPECT_EQ(CodeOf(plain, &message), ErrorCode::kDataLoss) << c.name;
    EXPECT_NE(message.find("seg"), std::string::npos) << c.name << ": " << message;
  }
  // The harness accepts the same records when they follow the rules.
  Raw ok;
  rev(ok, 101, 1000);
  ok.Tag('P').V(101).V(1001);
  EXPECT_EQ(CodeOf(Assemble(HeaderFor(ok.str(), 101, 101, 1, 1, 0, 0, 1), ok.str())), std::nullopt);
}

TEST(Segment, OverTheSizeLimitIsRefusedBeforeParsing) {
  // Mapped, never touched: no memory is used for it.
  const size_t n = kMaxSegmentBytes + 1;
  void* p = ::mmap(nullptr, n, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  ASSERT_NE(p, MAP_FAILED);
  std::string message;
  try {
    DecodeSegment(Bytes(static_cast<const uint8_t*>(p), n), "seg");
  } catch (const Error& e) {
    message = e.what();
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss);
  }
  ::munmap(p, n);
  EXPECT_NE(message.find("over the limit"), std::string::npos) << message;
}

// A merged segment: the records of consecutive segments in order, seq..seq_last, the first
// one's prev_sha256 and the last one's sha256 as its link.
TEST(MergedSegment, CarriesTheRecordsOfWhatItReplaces) {
  const std::string one = Full().Finish();
  SegmentBuilder b2(kChain, 2, 104, HexBytes(Sha256Of(AsBytes(one))));
  b2.AddProgress({104, 2500});
  b2.AddRevision({105, 3000, {Put("z", "9", 105, 105, 1)}});
  b2.AddHash({105, 77, -1, 3001});
  const std::string two = b2.Finish();
  SegmentBuilder b3(kChain, 3, 105, HexBytes(Sha256Of(AsBytes(two))));
  b3.AddProgress({105, 4000});  // an event-less heartbeat
  const std::string three = b3.Finish("stopped");

  SegmentBuilder m(kChain, 1, 100, kPrev);
  std::vector<Record> originals;
  for (const std::string* plain : {&one, &two, &three}) {
    for (const Record& r : DecodeAll(*plain)) {
      originals.push_back(r);
      m.AddRecord(r);
    }
  }
  const std::string link = HexBytes(Sha256Of(AsBytes(three)));
  const std::string merged = m.FinishMerged(3, link, "stopped");
  SegmentHeader h;
  std::vector<Record> got = DecodeAll(merged, &h);
  EXPECT_EQ(h.seq, 1u);
  EXPECT_EQ(h.seq_last, 3u);
  EXPECT_TRUE(h.merged());
  EXPECT_EQ(h.link_sha256, link);
  EXPECT_EQ(h.prev_sha256, kPrev);
  EXPECT_EQ(h.first_revision, 101);
  EXPECT_EQ(h.last_revision, 105);
  EXPECT_EQ(h.first_time_ms, 1000);
  EXPECT_EQ(h.last_time_ms, 4000);
  EXPECT_EQ(h.end, "stopped");
  EXPECT_EQ(h.revisions, 5u);
  EXPECT_EQ(h.hashes, 2u);
  EXPECT_EQ(h.progress, 3u);
  ASSERT_EQ(got.size(), originals.size());
  for (size_t i = 0; i < got.size(); i++) {
    EXPECT_EQ(got[i].tag, originals[i].tag) << i;
    switch (got[i].tag) {
      case 'R':
        EXPECT_EQ(got[i].rev.revision, originals[i].rev.revision);
        EXPECT_EQ(got[i].rev.time_ms, originals[i].rev.time_ms);
        ASSERT_EQ(got[i].rev.events.size(), originals[i].rev.events.size());
        for (size_t k = 0; k < got[i].rev.events.size(); k++) {
          EXPECT_EQ(got[i].rev.events[k].is_delete, originals[i].rev.events[k].is_delete);
          EXPECT_EQ(got[i].rev.events[k].data, originals[i].rev.events[k].data);
        }
        break;
      case 'L':
      case 'X':
        EXPECT_EQ(got[i].lease.id, originals[i].lease.id);
        EXPECT_EQ(got[i].lease.ttl, originals[i].lease.ttl);
        EXPECT_EQ(got[i].lease.revision, originals[i].lease.revision);
        EXPECT_EQ(got[i].lease.time_ms, originals[i].lease.time_ms);
        break;
      case 'H':
        EXPECT_EQ(got[i].hash.revision, originals[i].hash.revision);
        EXPECT_EQ(got[i].hash.hash, originals[i].hash.hash);
        EXPECT_EQ(got[i].hash.compact_revision, originals[i].hash.compact_revision);
        break;
      case 'P':
        EXPECT_EQ(got[i].progress.revision, originals[i].progress.revision);
        EXPECT_EQ(got[i].progress.time_ms, originals[i].progress.time_ms);
        break;
    }
  }
  // The header says so; a plain segment's says nothing of it.
  const nlohmann::json j = nlohmann::json::parse(Split(merged).first);
  EXPECT_EQ(j["seq_last"], 3);
  EXPECT_EQ(j["link_sha256"], link);
  const nlohmann::json plain_header = nlohmann::json::parse(Split(one).first);
  EXPECT_FALSE(plain_header.contains("seq_last"));
  EXPECT_FALSE(plain_header.contains("link_sha256"));
  SegmentHeader ph;
  DecodeAll(one, &ph);
  EXPECT_EQ(ph.seq_last, 1u);
  EXPECT_FALSE(ph.merged());
  EXPECT_TRUE(ph.link_sha256.empty());
  // The builder refuses a merged segment of nothing or without a link.
  SegmentBuilder bad(kChain, 4, 105, kPrev);
  EXPECT_THROW(bad.FinishMerged(4, link), Error);
  EXPECT_THROW(bad.FinishMerged(5, "abc"), Error);
}

TEST(MergedSegment, BadMergedHeadersAreDataLoss) {
  SegmentBuilder m(kChain, 3, 100, kPrev);
  for (const Record& r : DecodeAll(Full().Finish())) m.AddRecord(r);
  const std::string merged = m.FinishMerged(7, std::string(64, 'b'));
  const auto [header, records] = Split(merged);
  const nlohmann::json good = nlohmann::json::parse(header);
  auto with = [&](const std::function<void(nlohmann::json&)>& edit) {
    nlohmann::json j = good;
    edit(j);
    return Assemble(j.dump(), records);
  };
  EXPECT_EQ(CodeOf(with([](nlohmann::json&) {})), std::nullopt);
  const std::vector<std::pair<std::string, std::function<void(nlohmann::json&)>>> cases = {
      {"seq_last without link", [](nlohmann::json& j) { j.erase("link_sha256"); }},
      {"link without seq_last", [](nlohmann::json& j) { j.erase("seq_last"); }},
      {"seq_last == seq", [](nlohmann::json& j) { j["seq_last"] = 3; }},
      {"seq_last before seq", [](nlohmann::json& j) { j["seq_last"] = 2; }},
      {"seq_last 0", [](nlohmann::json& j) { j["seq_last"] = 0; }},
      {"seq_last a string", [](nlohmann::json& j) { j["seq_last"] = "7"; }},
      {"seq_last negative", [](nlohmann::json& j) { j["seq_last"] = -7; }},
      {"link short", [](nlohmann::json& j) { j["link_sha256"] = "abc"; }},
      {"link upper case", [](nlohmann::json& j) { j["link_sha256"] = std::string(64, 'B'); }},
      {"link a number", [](nlohmann::json& j) { j["link_sha256"] = 5; }},
  };
  for (const auto& [name, edit] : cases) {
    EXPECT_EQ(CodeOf(with(edit)), ErrorCode::kDataLoss) << name;
  }
}

}  // namespace
}  // namespace etcdsafe::follow
