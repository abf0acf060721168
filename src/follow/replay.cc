#include "follow/replay.h"

#include <time.h>

#include <algorithm>
#include <map>
#include <unordered_map>

#include "backup/layout.h"
#include "backup/repo_ops.h"
#include "base/error.h"
#include "base/file.h"
#include "bolt/builder.h"
#include "bolt/reader.h"
#include "etcdfmt/mvcc.h"
#include "ops/kv_hash.h"

namespace etcdsafe::follow {
namespace {

constexpr size_t kRevBytesLen = 17;  // 8 bytes main, '_', 8 bytes sub (mvcc revToBytes)

int64_t LoadBE64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return static_cast<int64_t>(v);
}

void StoreBE64(char* p, uint64_t v) {
  for (int i = 7; i >= 0; i--) {
    p[i] = static_cast<char>(v & 0xff);
    v >>= 8;
  }
}

std::string BE64(int64_t v) {
  std::string out(8, '\0');
  StoreBE64(out.data(), static_cast<uint64_t>(v));
  return out;
}

// mvcc's revToBytes (+ appendMarkTombstone).
std::string RevKey(int64_t main, int64_t sub, bool tombstone) {
  std::string k(tombstone ? kRevBytesLen + 1 : kRevBytesLen, '\0');
  StoreBE64(k.data(), static_cast<uint64_t>(main));
  k[8] = '_';
  StoreBE64(k.data() + 9, static_cast<uint64_t>(sub));
  if (tombstone) k[kRevBytesLen] = 't';
  return k;
}

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

// leasepb.Lease as etcd 3.4's lessor persists it: ID (1), TTL (2); RemainingTTL (3) is
// only set by lease checkpointing, which a fresh start does not need.
std::string EncodeLease(int64_t id, int64_t ttl) {
  std::string out;
  if (id != 0) {
    out.push_back(0x08);
    PutVarint(out, static_cast<uint64_t>(id));
  }
  if (ttl != 0) {
    out.push_back(0x10);
    PutVarint(out, static_cast<uint64_t>(ttl));
  }
  return out;
}

std::string Hex(int64_t v) {
  char buf[20];
  std::snprintf(buf, sizeof buf, "%llx", static_cast<unsigned long long>(v));
  return buf;
}

struct StrHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// Thrown from the record callback to stop reading the chain (kTime: a record after T).
struct StopReplay {};

int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

int DaysInMonth(int64_t y, int64_t m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
  return kDays[m - 1];
}

std::string FormatTimeMs(int64_t ms) {
  time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

int64_t RecordTime(const Record& rec) {
  switch (rec.tag) {
    case 'R': return rec.rev.time_ms;
    case 'L':
    case 'X': return rec.lease.time_ms;
    case 'H': return rec.hash.time_ms;
    case 'P': return rec.progress.time_ms;
    default: return 0;
  }
}

}  // namespace

int64_t ParseTimeArg(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument, "time \"" + backup::EscapeForTerminal(text) +
                                                  "\" is not RFC 3339 (like 2026-11-30T10:15:00Z): " + why);
  };
  size_t i = 0;
  auto digits = [&](size_t n, const char* what) -> int64_t {
    if (i + n > text.size()) throw bad(std::string("missing ") + what);
    int64_t v = 0;
    for (size_t k = 0; k < n; k++) {
      char c = text[i + k];
      if (c < '0' || c > '9') throw bad(std::string("bad ") + what);
      v = v * 10 + (c - '0');
    }
    i += n;
    return v;
  };
  auto expect = [&](char c, const char* what) {
    if (i >= text.size() || text[i] != c) throw bad(std::string("expected ") + what);
    i++;
  };
  const int64_t year = digits(4, "year");
  expect('-', "'-' after the year");
  const int64_t month = digits(2, "month");
  expect('-', "'-' after the month");
  const int64_t day = digits(2, "day");
  if (i >= text.size() || (text[i] != 'T' && text[i] != 't')) throw bad("expected 'T' after the date");
  i++;
  const int64_t hour = digits(2, "hour");
  expect(':', "':' after the hour");
  const int64_t minute = digits(2, "minute");
  expect(':', "':' after the minutes");
  const int64_t second = digits(2, "second");
  int64_t ms = 0;
  if (i < text.size() && text[i] == '.') {
    i++;
    size_t n = 0;
    int64_t scale = 100;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      ms += (text[i] - '0') * scale;
      scale /= 10;
      i++;
      n++;
    }
    if (n == 0 || n > 9) throw bad("bad fraction of a second");
  }
  if (month < 1 || month > 12) throw bad("month out of range");
  if (day < 1 || day > DaysInMonth(year, month)) throw bad("day out of range");
  if (hour > 23 || minute > 59 || second > 59) throw bad("time of day out of range");
  int64_t offset_min = 0;
  if (i < text.size() && (text[i] == 'Z' || text[i] == 'z')) {
    i++;
  } else if (i < text.size() && (text[i] == '+' || text[i] == '-')) {
    const int sign = text[i] == '-' ? -1 : 1;
    i++;
    const int64_t oh = digits(2, "offset hours");
    expect(':', "':' in the offset");
    const int64_t om = digits(2, "offset minutes");
    if (oh > 23 || om > 59) throw bad("offset out of range");
    offset_min = sign * (oh * 60 + om);
  } else {
    throw bad("missing time zone (Z or +HH:MM)");
  }
  if (i != text.size()) throw bad("trailing characters");
  const int64_t secs = DaysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset_min * 60;
  return secs * 1000 + ms;
}

ReplayStats ReplayChain(backup::Repository& repo, const Chain& chain, const std::string& base_db,
                        const std::string& out_db, const PointInTime& target,
                        const std::optional<pipeline::KeySpec>& key,
                        const std::function<void(uint64_t segments_done)>& progress) {
  ReplayStats st;
  const int64_t base_rev = ChainStart(chain.base);
  const int64_t base_time_ms = chain.base.time_unix * 1000;
  int64_t up_to = 0;
  if (target.kind == PointInTime::Kind::kRevision) {
    if (target.revision < base_rev) {
      throw Error(ErrorCode::kInvalidArgument, "revision " + std::to_string(target.revision) + " is before backup " +
                                                   chain.base.id + " (revision " + std::to_string(base_rev) + ")");
    }
    if (target.revision > chain.usable_last_revision) {
      std::string why = chain.problems.empty() ? "" : " (" + chain.problems.front() + ")";
      throw Error(ErrorCode::kNotFound, "the chain of " + chain.base.id + " reaches revision " +
                                            std::to_string(chain.usable_last_revision) + ", not " +
                                            std::to_string(target.revision) + why);
    }
    up_to = target.revision;
  } else if (target.kind == PointInTime::Kind::kTime && target.time_ms < base_time_ms) {
    throw Error(ErrorCode::kInvalidArgument, FormatTimeMs(target.time_ms) + " is before backup " + chain.base.id +
                                                 " was taken (" + FormatTimeMs(base_time_ms) + ")");
  }

  bolt::Reader base = bolt::Reader::Open(base_db);
  const std::string what = "backup " + chain.base.id;
  std::vector<std::string> buckets;
  base.ForEachBucket([&](std::string_view name) { buckets.emplace_back(name); });
  for (const char* need : {"key", "lease"}) {
    if (std::find(buckets.begin(), buckets.end(), need) == buckets.end()) buckets.emplace_back(need);
  }
  std::sort(buckets.begin(), buckets.end());
  if (base.HasBucket("key")) {
    if (std::optional<std::string> last = base.LastKey("key")) {
      if (last->size() < kRevBytesLen) {
        throw Error(ErrorCode::kDataLoss, what + ": bucket \"key\" ends with a " + std::to_string(last->size()) +
                                              "-byte key, not a revision");
      }
      const int64_t main = LoadBE64(reinterpret_cast<const uint8_t*>(last->data()));
      if (main > base_rev) {
        throw Error(ErrorCode::kDataLoss, what + ": its db holds revision " + std::to_string(main) +
                                              ", beyond the manifest's revision " + std::to_string(base_rev));
      }
    }
  }

  // Keys whose latest value has a lease (base, then events): which leases must exist.
  std::unordered_map<std::string, int64_t, StrHash, std::equal_to<>> key_lease;
  auto track = [&](std::string_view k, int64_t lease) {
    if (lease != 0) {
      auto it = key_lease.find(k);
      if (it == key_lease.end()) {
        key_lease.emplace(std::string(k), lease);
      } else {
        it->second = lease;
      }
    } else if (!key_lease.empty()) {
      auto it = key_lease.find(k);
      if (it != key_lease.end()) key_lease.erase(it);
    }
  };
  std::map<int64_t, std::optional<int64_t>> recorded_leases;  // id → granted TTL, nullopt: gone

  bolt::Builder out(out_db);
  int64_t applied = base_rev;
  st.time_ms = base_time_ms;
  bool time_proven = false;
  int64_t last_record_time = base_time_ms;
  const bool by_time = target.kind == PointInTime::Kind::kTime;

  auto on_record = [&](const Record& rec) {
    const int64_t t = RecordTime(rec);
    if (by_time) {
      if (t > target.time_ms) {
        time_proven = true;
        throw StopReplay{};
      }
      if (rec.tag == 'P' && t >= target.time_ms) time_proven = true;
    }
    last_record_time = t;
    switch (rec.tag) {
      case 'R': {
        const int64_t r = rec.rev.revision;
        for (size_t i = 0; i < rec.rev.events.size(); i++) {
          const Event& e = rec.rev.events[i];
          const std::string k = RevKey(r, static_cast<int64_t>(i), e.is_delete);
          if (e.is_delete) {
            KeyValue kv;
            kv.key = e.data;
            out.Put(k, EncodeKeyValue(kv));
            track(e.data, 0);
            continue;
          }
          std::optional<etcdfmt::KeyValueView> f = etcdfmt::ParseKeyValueView(AsBytes(e.data));
          if (!f || f->key.empty() || f->mod_revision != r) {
            throw Error(ErrorCode::kDataLoss, "the chain of " + chain.base.id + ": revision " + std::to_string(r) +
                                                  " event " + std::to_string(i) +
                                                  " is not an mvccpb.KeyValue of that revision");
          }
          out.Put(k, e.data);
          track(f->key, f->lease);
        }
        applied = r;
        st.time_ms = rec.rev.time_ms;
        st.revisions++;
        st.events += rec.rev.events.size();
        break;
      }
      case 'L': recorded_leases[rec.lease.id] = rec.lease.ttl; break;
      case 'X': recorded_leases[rec.lease.id] = std::nullopt; break;
      case 'H': st.hashes.push_back(rec.hash); break;
      default: break;
    }
  };

  for (const std::string& bucket : buckets) {
    out.BeginBucket(bucket);
    if (bucket == "key") {
      if (base.HasBucket("key")) {
        base.ForEach("key", [&](Bytes k, Bytes v) {
          out.Put(k, v);
          if (k.size() < kRevBytesLen) return;
          std::optional<etcdfmt::KeyValueView> f = etcdfmt::ParseKeyValueView(v);
          if (!f) return;  // etcd's own check (ops/kv_hash.h) names it; copied as is
          const bool tomb = k.size() == kRevBytesLen + 1 && k.data()[kRevBytesLen] == 't';
          track(f->key, tomb ? 0 : f->lease);
        });
      }
      uint64_t segments_done = 0;
      bool stopped = false;
      try {
        ReadChain(repo, chain, key, up_to, on_record, [&](uint64_t n) {
          segments_done = n;
          if (progress) progress(n);
        });
      } catch (const StopReplay&) {
        stopped = true;
      }
      st.segments = segments_done + (stopped ? 1 : 0);
      if (by_time && !time_proven) {
        throw Error(ErrorCode::kNotFound, "the chain of " + chain.base.id + " proves times up to " +
                                              FormatTimeMs(last_record_time) + ", not " +
                                              FormatTimeMs(target.time_ms) +
                                              " (a later record or a progress record is needed)");
      }
      if (up_to != 0 && applied != up_to) {
        throw Error(ErrorCode::kNotFound, "the chain of " + chain.base.id + " reaches revision " +
                                              std::to_string(applied) + ", not " + std::to_string(up_to));
      }
    } else if (bucket == "lease") {
      // Raw 8-byte big-endian ids sort like the (positive) ids: bbolt order.
      std::map<std::string, std::string> leases;
      if (base.HasBucket("lease")) {
        base.ForEach("lease", [&](Bytes k, Bytes v) {
          leases.emplace(std::string(reinterpret_cast<const char*>(k.data()), k.size()),
                         std::string(reinterpret_cast<const char*>(v.data()), v.size()));
        });
      }
      for (const auto& [id, ttl] : recorded_leases) {
        if (ttl) {
          leases[BE64(id)] = EncodeLease(id, *ttl);
        } else {
          leases.erase(BE64(id));
        }
      }
      std::map<int64_t, std::pair<uint64_t, std::string>> unknown;  // id → (keys, an example)
      for (const auto& [k, lease] : key_lease) {
        if (leases.count(BE64(lease))) continue;
        auto& u = unknown[lease];
        if (u.first++ == 0 || k < u.second) u.second = k;
      }
      for (const auto& [id, u] : unknown) {
        leases[BE64(id)] = EncodeLease(id, kUnknownLeaseTtl);
        st.notes.push_back("lease " + Hex(id) + " (attached to " + std::to_string(u.first) + " key" +
                           (u.first == 1 ? "" : "s") + ", e.g. " + backup::EscapeForTerminal(u.second.substr(0, 100)) +
                           ") was not recorded: created with a TTL of " + std::to_string(kUnknownLeaseTtl) + " s");
      }
      for (const auto& [k, v] : leases) out.Put(k, v);
    } else {
      base.ForEachEntry(bucket, [&](Bytes k, Bytes v, bool is_bucket) {
        if (is_bucket) {
          throw Error(ErrorCode::kUnsupported, what + ": bucket \"" + backup::EscapeForTerminal(bucket) +
                                                   "\" holds a nested bucket (etcd has none)");
        }
        out.Put(k, v);
      });
    }
    out.EndBucket();
  }
  out.Finish();
  st.revision = applied;
  return st;
}

std::optional<HashRecord> CheckReplayedHash(const std::string& db, const ReplayStats& stats) {
  std::optional<HashRecord> newest;
  for (const HashRecord& h : stats.hashes) {
    if (h.revision <= stats.revision && (!newest || h.revision >= newest->revision)) newest = h;
  }
  if (!newest) return std::nullopt;
  ops::KvHashOptions o;
  o.revision = newest->revision;
  o.compact_revision = newest->compact_revision;
  ops::KvSpace space;
  try {
    space = ops::KvHashOfFile(db, o);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kInvalidArgument) throw;
    throw Error(ErrorCode::kDataLoss, "the HashKV recorded at revision " + std::to_string(newest->revision) +
                                          " (compact revision " + std::to_string(newest->compact_revision) +
                                          ") cannot be checked against the replayed db: " + e.what());
  }
  if (space.hash != newest->hash) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "the replayed key space hashes to 0x%08x at revision %lld, etcd's HashKV was 0x%08x",
                  space.hash, static_cast<long long>(newest->revision), newest->hash);
    throw Error(ErrorCode::kDataLoss, std::string(buf) + " (compact revision " +
                                          std::to_string(newest->compact_revision) + "): nothing was restored");
  }
  return newest;
}

namespace {

struct Choice {
  const backup::Manifest* base = nullptr;
  const Chain* chain = nullptr;  // nullptr: the base alone
};

std::string ChainSummary(const std::vector<Chain>& chains) {
  std::string out;
  for (const Chain& c : chains) {
    if (!out.empty()) out += "; ";
    out += c.base.id + ": revisions " + std::to_string(c.base.revision) + ".." + std::to_string(c.usable_last_revision);
    if (!c.problems.empty()) out += ", then " + c.problems.front();
  }
  return out.empty() ? "no chains" : out;
}

}  // namespace

PitrResult RestoreToPoint(backup::Repository& repo, const PointInTime& target, const snapshot::RestoreOptions& opts,
                          const std::optional<pipeline::KeySpec>& key,
                          const std::function<void(const std::string& stage, uint64_t n)>& progress) {
  ChainScan scan = ScanChains(repo);
  std::vector<backup::Manifest> bases = repo.ListBackups();
  if (bases.empty()) throw Error(ErrorCode::kNotFound, repo.Describe() + " holds no etcd snapshot backup");
  std::map<std::string, const Chain*> chain_of;
  for (const Chain& c : scan.chains) chain_of[c.base.id] = &c;
  auto find_chain = [&](const backup::Manifest& m) -> const Chain* {
    auto it = chain_of.find(m.id);
    return it == chain_of.end() ? nullptr : it->second;
  };

  PitrResult result;
  Choice choice;
  switch (target.kind) {
    case PointInTime::Kind::kRevision: {
      std::vector<const backup::Manifest*> order;
      for (const auto& m : bases) order.push_back(&m);
      std::sort(order.begin(), order.end(), [](const backup::Manifest* a, const backup::Manifest* b) {
        return a->revision != b->revision ? a->revision > b->revision : a->time_unix > b->time_unix;
      });
      for (const backup::Manifest* m : order) {
        if (m->revision > target.revision) continue;
        if (m->revision == target.revision) {
          choice.base = m;
          break;
        }
        const Chain* c = find_chain(*m);
        if (c != nullptr && c->usable_last_revision >= target.revision) {
          choice = {m, c};
          break;
        }
      }
      if (choice.base == nullptr) {
        throw Error(ErrorCode::kNotFound, "no backup or chain in " + repo.Describe() + " reaches revision " +
                                              std::to_string(target.revision) + " (" + ChainSummary(scan.chains) +
                                              "; newest backup at revision " +
                                              std::to_string(std::max_element(bases.begin(), bases.end(),
                                                                              [](const auto& a, const auto& b) {
                                                                                return a.revision < b.revision;
                                                                              })->revision) +
                                              ")");
      }
      break;
    }
    case PointInTime::Kind::kTime: {
      // The newest base taken at or before T whose chain's last segment reaches T (or a
      // base taken at T itself); the replay proves T exactly.
      std::vector<const backup::Manifest*> order;
      for (const auto& m : bases) {
        if (m.time_unix * 1000 <= target.time_ms) order.push_back(&m);
      }
      std::sort(order.begin(), order.end(), [](const backup::Manifest* a, const backup::Manifest* b) {
        return a->time_unix != b->time_unix ? a->time_unix > b->time_unix : a->revision > b->revision;
      });
      int64_t newest_provable = 0;
      for (const backup::Manifest* m : order) {
        if (m->time_unix * 1000 == target.time_ms) {
          choice.base = m;
          break;
        }
        const Chain* c = find_chain(*m);
        if (c == nullptr || c->usable_segments == 0) {
          newest_provable = std::max(newest_provable, m->time_unix * 1000);
          continue;
        }
        ReadSegmentResult last = ReadSegment(repo, c->segments[c->usable_segments - 1], key);
        newest_provable = std::max(newest_provable, last.header.last_time_ms);
        if (last.header.last_time_ms >= target.time_ms) {
          choice = {m, c};
          break;
        }
      }
      if (choice.base == nullptr) {
        throw Error(ErrorCode::kNotFound,
                    "no backup chain in " + repo.Describe() + " proves " + FormatTimeMs(target.time_ms) +
                        (newest_provable > 0 ? ": the newest provable time is " + FormatTimeMs(newest_provable)
                                             : ": no backup was taken at or before it"));
      }
      break;
    }
    case PointInTime::Kind::kLatest: {
      int64_t best = -1;
      for (const auto& m : bases) {
        if (m.revision > best || (m.revision == best && choice.chain != nullptr)) {
          best = m.revision;
          choice = {&m, nullptr};
        }
        const Chain* c = find_chain(m);
        if (c != nullptr && c->usable_last_revision > best) {
          best = c->usable_last_revision;
          choice = {&m, c};
        }
      }
      if (choice.chain != nullptr && !choice.chain->problems.empty()) {
        throw Error(ErrorCode::kDataLoss, "the newest chain (of " + choice.base->id + ") has a problem: " +
                                              choice.chain->problems.front() + "; it is usable up to revision " +
                                              std::to_string(choice.chain->usable_last_revision) +
                                              ": restore that with --to-revision " +
                                              std::to_string(choice.chain->usable_last_revision));
      }
      break;
    }
  }

  const backup::Manifest& base = *choice.base;
  result.base_id = base.id;
  result.base_revision = base.revision;
  if (choice.chain == nullptr) {
    // The base alone: the ordinary restore, checked against its manifest.
    std::vector<std::string> notes;
    result.restore = backup::RestoreFromRepository(
        repo, base.id, opts, key, [&](uint64_t b) { if (progress) progress("base", b); }, {}, &notes);
    result.revision = base.revision;
    result.time_ms = base.time_unix * 1000;
    result.hash_note = "the backup itself was restored (checked against its manifest); no event replayed";
    result.notes = std::move(notes);
    return result;
  }

  const Chain& chain = *choice.chain;
  if (target.kind == PointInTime::Kind::kRevision && !chain.problems.empty()) {
    result.notes.push_back("the chain of " + chain.base.id + " has a problem after revision " +
                           std::to_string(chain.usable_last_revision) + ": " + chain.problems.front());
  }
  uint64_t segment_bytes = 0;
  for (size_t i = 0; i < chain.usable_segments; i++) {
    const SegmentObject& s = chain.segments[i];
    if (target.kind == PointInTime::Kind::kRevision && s.parsed.first_revision > target.revision) break;
    segment_bytes += s.stored_size;
  }
  ReplayStats stats;
  std::optional<HashRecord> checked;
  const uint64_t size_hint = base.db_size * 2 + segment_bytes * 4;
  result.restore = snapshot::RestoreFromDb(
      opts, size_hint,
      [&](const std::string& db_path) {
        const std::string base_path = db_path + ".base";
        {
          CleanupGuard remove_base(base_path);
          {
            File f = File::Create(base_path, 0600, true);
            backup::ReadBackupData(
                repo, base, key, [&](const uint8_t* p, size_t n) { f.WriteAll(p, n); }, {},
                [&](uint64_t b) { if (progress) progress("base", b); });
            f.Close();
          }
          stats = ReplayChain(repo, chain, base_path, db_path, target, key,
                              [&](uint64_t n) { if (progress) progress("replay", n); });
        }
        if (progress) progress("hash", 0);
        checked = CheckReplayedHash(db_path, stats);
      },
      [&](const std::string& stage, uint64_t n) { if (progress) progress(stage, n); },
      [&](const snapshot::StatusNumbers& s) {
        if (s.revision != stats.revision) {
          throw Error(ErrorCode::kDataLoss, "the replayed db ends at revision " + std::to_string(s.revision) +
                                                ", not " + std::to_string(stats.revision) + ": nothing was restored");
        }
      });
  result.revision = stats.revision;
  result.time_ms = stats.time_ms;
  result.segments = stats.segments;
  result.revisions = stats.revisions;
  result.events = stats.events;
  for (auto& n : stats.notes) result.notes.push_back(std::move(n));
  if (checked) {
    result.hash_revision = checked->revision;
    result.hash = checked->hash;
    result.hash_compact_revision = checked->compact_revision;
  } else {
    result.hash_note = "no HashKV was recorded between revisions " + std::to_string(base.revision) + " and " +
                       std::to_string(stats.revision);
  }
  return result;
}

}  // namespace etcdsafe::follow
