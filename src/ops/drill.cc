#include "ops/drill.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <functional>
#include <future>
#include <map>
#include <utility>
#include <vector>
#include <nlohmann/json.hpp>

#include "backup/layout.h"
#include "base/error.h"
#include "base/file.h"
#include "client/etcd_client.h"
#include "ops/etcd_process.h"
#include "ops/kv_hash.h"
#include "snapshot/inspect.h"
#include "snapshot/restore.h"
#include "snapshot/status_format.h"

namespace etcdsafe::ops {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kMemberName[] = "drill";
constexpr char kDefaultNs[] = "/registry/namespaces/default";
constexpr char kKubeSystemNs[] = "/registry/namespaces/kube-system";
constexpr char kRangesPrefix[] = "/registry/ranges/";

std::string Printable(const std::string& s) { return backup::EscapeForTerminal(s); }

std::string FormatAge(int64_t seconds) {
  if (seconds < 0) return "in the future by " + FormatAge(-seconds);
  int64_t d = seconds / 86400, h = seconds % 86400 / 3600, m = seconds % 3600 / 60, s = seconds % 60;
  std::string out;
  if (d) out += std::to_string(d) + "d";
  if (h) out += std::to_string(h) + "h";
  if (m) out += std::to_string(m) + "m";
  if (s || out.empty()) out += std::to_string(s) + "s";
  return out;
}

std::string Hex32(uint32_t v) { return std::to_string(v); }

// Runs the checks in order and stops at the first one a later check depends on.
class Drill {
 public:
  explicit Drill(const DrillOptions& o) : options_(o) {}

  // Runs `fn`, which fills expected/found and returns ok; an exception is a failed check
  // whose `found` is the error. Returns ok.
  bool Check(const std::string& name, const std::string& expected,
             const std::function<bool(DrillCheck&)>& fn) {
    DrillCheck c;
    c.name = name;
    c.expected = expected;
    const auto start = Clock::now();
    try {
      c.ok = fn(c);
    } catch (const Error& e) {
      c.ok = false;
      c.found = e.what();
      // Nothing to drill with or nothing to drill: "not found", as elsewhere in the CLI.
      if (e.code() == ErrorCode::kNotFound && (name == "etcd binary" || name == "backup")) not_found_ = true;
    } catch (const std::exception& e) {
      c.ok = false;
      c.found = std::string("internal error: ") + e.what();
    }
    // A check whose work ran beside others (key space) reports that work's own time.
    if (c.ms == 0) c.ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
    c.expected = Printable(c.expected);
    c.found = Printable(c.found);
    report_.checks.push_back(std::move(c));
    return report_.checks.back().ok;
  }

  void Freshness(int64_t snapshot_unix, const std::string& what) {
    if (!options_.max_age) return;
    const int64_t limit = options_.max_age->count();
    Check("freshness", "at most " + FormatAge(limit) + " old", [&](DrillCheck& c) {
      const int64_t age = static_cast<int64_t>(std::time(nullptr)) - snapshot_unix;
      c.found = FormatAge(age) + " old (" + what + " " + backup::FormatUtc(snapshot_unix) + ")";
      return age <= limit;
    });
  }

  bool EtcdBinary() {
    return Check("etcd binary", "an etcd binary (" + (options_.etcd_binary.empty() ? std::string("PATH")
                                                                                     : options_.etcd_binary) + ")",
                 [&](DrillCheck& c) {
                   binary_ = FindEtcdBinary(options_.etcd_binary);
                   c.found = binary_;
                   return true;
                 });
  }

  EtcdSandbox& Sandbox() {
    if (!sandbox_) {
      sandbox_ = std::make_unique<EtcdSandbox>(options_.work_parent);
      if (options_.note) {
        for (const auto& p : sandbox_->removed_stale()) options_.note("removed " + p + " (left by a drill that was killed)");
      }
    }
    return *sandbox_;
  }
  std::string DataDir() { return Sandbox().dir() + "/data"; }

  // Restore options for a single member listening on a free loopback peer port.
  snapshot::RestoreOptions RestoreOpts() {
    std::vector<int> ports = FreeLoopbackPorts(2);
    client_port_ = ports[0];
    peer_port_ = ports[1];
    snapshot::RestoreOptions r;
    r.data_dir = DataDir();
    r.name = kMemberName;
    const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
    r.initial_cluster = std::string(kMemberName) + "=" + peer;
    r.initial_advertise_peer_urls = peer;
    r.initial_cluster_token = "etcdsafe-drill";
    r.scratch = true;  // etcd starts on it at once and it is removed after the drill
    r.note = options_.note;
    return r;
  }

  // The offline key space is read on the other core while the drill goes on (the
  // restore, or etcd's start on the same db, which the scratch restore left in the page
  // cache); KeySpace() waits for it and records the check with the time the read took.
  void StartKeySpace(const std::string& db_path) {
    key_space_ = std::async(std::launch::async, [db_path] {
      const auto start = Clock::now();
      KvHashOptions o;
      o.count_groups = true;
      KvSpace r = KvHashOfFile(db_path, o);
      return std::make_pair(std::move(r), std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start));
    });
  }
  bool KeySpace() {
    return Check("key space", "bucket \"key\" readable", [&](DrillCheck& c) {
      auto [result, took] = key_space_.get();
      kv_ = std::move(result);
      c.ms = took.count();
      uint64_t objects = 0;
      for (const auto& [g, n] : kv_.groups) objects += n;
      c.found = std::to_string(kv_.live_keys) + " keys at revision " + std::to_string(kv_.current_revision) +
                (kv_.compact_revision > 0 ? ", compacted at " + std::to_string(kv_.compact_revision) : "") +
                ", " + std::to_string(objects) + " under /registry/ in " + std::to_string(kv_.groups.size()) +
                " groups";
      return true;
    });
  }

  // Starts etcd on the restored dir and runs every check against it.
  void Live(uint64_t db_size) {
    bool started = Check("etcd start", "healthy on 127.0.0.1", [&](DrillCheck& c) {
      EtcdStartOptions o;
      o.binary = binary_;
      o.data_dir = DataDir();
      o.name = kMemberName;
      o.client_port = client_port_;
      o.peer_port = peer_port_;
      o.start_timeout = options_.start_timeout;
      // etcd raises a NOSPACE alarm for a db above its quota: give it room (at most
      // etcd's recommended maximum, 8 GiB).
      const uint64_t two_gib = uint64_t{2} << 30, max = uint64_t{8} << 30;
      if (db_size * 2 > two_gib) o.quota_backend_bytes = std::min(db_size * 2, max);
      Sandbox().StartEtcd(o);
      c.found = Sandbox().client_url() + " (pid " + std::to_string(Sandbox().pid()) + ")";
      return true;
    });
    if (!started) return;
    if (key_space_.valid() && !KeySpace()) return;  // read while etcd started
    TestPause("drill-etcd-running");  // tests signal us here, while etcd runs
    client::ClientConfig cfg;
    cfg.endpoints = {Sandbox().client_url()};
    cfg.dial_timeout = std::chrono::milliseconds(2000);
    cfg.command_timeout = std::chrono::milliseconds(60000);
    std::unique_ptr<client::EtcdClient> cli;
    client::EtcdClient::RangeResult all;
    const std::string nul(1, '\0');
    const std::string rev_note =
        status_revision_ == kv_.current_revision || status_revision_ == 0
            ? " (snapshot)"
            : " (snapshot revision " + std::to_string(status_revision_) + ", raised to its compaction as etcd does)";
    Check("revision", std::to_string(kv_.current_revision) + rev_note, [&](DrillCheck& c) {
      cli = client::EtcdClient::Connect(cfg);
      all = cli->Range(nul, nul, 1, 0, /*keys_only=*/true);
      c.found = std::to_string(all.revision);
      return all.revision == kv_.current_revision;
    });
    if (!cli) return;
    Check("key count", std::to_string(kv_.live_keys) + " (snapshot)", [&](DrillCheck& c) {
      c.found = std::to_string(all.count);
      return all.count >= 0 && static_cast<uint64_t>(all.count) == kv_.live_keys;
    });
    Check("hashkv", Hex32(kv_.hash) + " at revision " + std::to_string(kv_.hash_revision) + " (computed offline)",
          [&](DrillCheck& c) {
            // HashKV refuses a revision <= the compacted one; 0 (the current revision) is
            // the same revision then.
            const int64_t rev = kv_.hash_revision <= kv_.compact_revision ? 0 : kv_.hash_revision;
            client::EtcdClient::HashKVResult h = cli->HashKV(rev);
            c.found = Hex32(h.hash) + " at revision " + std::to_string(h.header.revision) + ", compact revision " +
                      std::to_string(h.compact_revision);
            return h.hash == kv_.hash && h.header.revision == kv_.hash_revision;
          });
    if (options_.not_kubernetes) return;
    uint64_t objects = 0;
    for (const auto& [g, n] : kv_.groups) objects += n;
    Check("kubernetes objects",
          std::to_string(objects) + " objects in " + std::to_string(kv_.groups.size()) +
              " resource/namespace groups (snapshot)",
          [&](DrillCheck& c) {
            // First per group G, etcd's count of the keys under "/registry/G/" at the
            // snapshot revision (count_only: answered from etcd's index, no value read)
            // against the snapshot's keys of G and of the groups nested in it ("pods"
            // holds "pods/default"). On the 1.1 GB bench db this took the check from
            // 1.5-1.7 s (every key listed, every value read by etcd) to 0.2-0.3 s. Only
            // when a count differs is every key listed, to name the groups that differ.
            if (CountsAgree(*cli)) {
              c.found = std::to_string(objects) + " objects in " + std::to_string(kv_.groups.size()) +
                        " groups (etcd's count per group)";
              return true;
            }
            std::map<std::string, uint64_t> live;
            uint64_t live_objects = 0;
            std::string from = "/registry/";
            const std::string end = "/registry0";
            for (;;) {
              client::EtcdClient::RangeResult r = cli->Range(from, end, 10000, kv_.current_revision, true);
              for (const auto& kv : r.kvs) {
                std::string g = RegistryGroup(kv.key);
                if (g.empty()) continue;
                live[g]++;
                live_objects++;
              }
              if (!r.more || r.kvs.empty()) break;
              from = r.kvs.back().key + nul;
            }
            std::vector<std::string> diffs;
            auto it = kv_.groups.begin();
            auto jt = live.begin();
            while (it != kv_.groups.end() || jt != live.end()) {
              if (jt == live.end() || (it != kv_.groups.end() && it->first < jt->first)) {
                diffs.push_back(it->first + ": 0 (snapshot " + std::to_string(it->second) + ")");
                ++it;
              } else if (it == kv_.groups.end() || jt->first < it->first) {
                diffs.push_back(jt->first + ": " + std::to_string(jt->second) + " (snapshot 0)");
                ++jt;
              } else {
                if (it->second != jt->second) {
                  diffs.push_back(it->first + ": " + std::to_string(jt->second) + " (snapshot " +
                                  std::to_string(it->second) + ")");
                }
                ++it;
                ++jt;
              }
            }
            c.found = std::to_string(live_objects) + " objects in " + std::to_string(live.size()) + " groups";
            if (!diffs.empty()) {
              c.found += "; differ: ";
              for (size_t i = 0; i < diffs.size() && i < 5; i++) c.found += (i ? ", " : "") + diffs[i];
              if (diffs.size() > 5) c.found += " and " + std::to_string(diffs.size() - 5) + " more";
            }
            return diffs.empty();
          });
    Check("essentials",
          std::string(kDefaultNs) + ", " + kKubeSystemNs + ", a " + kRangesPrefix + " key",
          [&](DrillCheck& c) {
            std::vector<std::string> missing;
            if (cli->Range(kDefaultNs, "", 1, 0, true).kvs.empty()) missing.push_back(kDefaultNs);
            if (cli->Range(kKubeSystemNs, "", 1, 0, true).kvs.empty()) missing.push_back(kKubeSystemNs);
            if (cli->Range(kRangesPrefix, "/registry/ranges0", 1, 0, true).kvs.empty()) {
              missing.push_back(std::string("any ") + kRangesPrefix + " key");
            }
            if (missing.empty()) {
              c.found = "all present";
              return true;
            }
            c.found = "missing ";
            for (size_t i = 0; i < missing.size(); i++) c.found += (i ? ", " : "") + missing[i];
            c.found += " (not Kubernetes data? use --not-kubernetes)";
            return false;
          });
  }

  // Whether etcd's count of keys under "/registry/G/" equals the snapshot's for every
  // group G the snapshot has (see the "kubernetes objects" check).
  bool CountsAgree(client::EtcdClient& cli) const {
    std::map<std::string, uint64_t> expected;  // G -> keys of G and of the groups under it
    for (const auto& [g, n] : kv_.groups) {
      for (std::string a = g;;) {
        if (kv_.groups.contains(a)) expected[a] += n;
        size_t slash = a.rfind('/');
        if (slash == std::string::npos) break;
        a.resize(slash);
      }
    }
    for (const auto& [g, n] : expected) {
      std::string from = "/registry/" + g + "/";
      std::string end = from;
      end.back() = '/' + 1;
      const int64_t live = cli.CountRange(from, end, kv_.current_revision);
      if (live < 0 || static_cast<uint64_t>(live) != n) return false;
    }
    return true;
  }

  // Stops etcd and removes the scratch dir, then seals and writes the report.
  DrillReport Finish(std::string source) {
    if (key_space_.valid()) KeySpace();  // still running when a later check failed: kept in the report
    sandbox_.reset();
    report_.source = std::move(source);
    report_.ok = !report_.checks.empty();
    for (const auto& c : report_.checks) report_.ok = report_.ok && c.ok;
    report_.exit_code = report_.ok ? 0 : (not_found_ ? kExitDrillNotFound : kExitDrillFailed);
    if (!options_.report_path.empty()) WriteDrillReport(options_.report_path, report_);
    return report_;
  }

  const DrillOptions& options_;
  DrillReport report_;
  std::unique_ptr<EtcdSandbox> sandbox_;
  std::string binary_;
  KvSpace kv_;
  std::future<std::pair<KvSpace, std::chrono::milliseconds>> key_space_;  // StartKeySpace
  int client_port_ = 0, peer_port_ = 0;
  int64_t status_revision_ = 0;  // `snapshot status`'s revision (the manifest's)
  bool not_found_ = false;
};

}  // namespace

std::chrono::seconds ParseMaxAge(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument,
                 "invalid --max-age \"" + Printable(text) + "\": " + why + " (e.g. 24h, 90m, 1d12h)");
  };
  if (text.empty()) throw bad("empty");
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) throw bad("expected a number");
    int64_t n = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      if (n > 1000000000) throw bad("too large");
      n = n * 10 + (text[i++] - '0');
    }
    if (i == text.size()) throw bad("missing unit");
    int64_t unit = 0;
    switch (text[i++]) {
      case 'd': unit = 86400; break;
      case 'h': unit = 3600; break;
      case 'm': unit = 60; break;
      case 's': unit = 1; break;
      default: throw bad("unknown unit (use d, h, m or s)");
    }
    total += n * unit;
    if (total > int64_t{100} * 365 * 86400) throw bad("too large");
  }
  if (total <= 0) throw bad("must be positive");
  return std::chrono::seconds(total);
}

DrillReport DrillSnapshotFile(const std::string& path, const DrillOptions& options) {
  Drill d(options);
  {
    struct stat st{};
    if (::stat(path.c_str(), &st) == 0) {
      d.Freshness(static_cast<int64_t>(st.st_mtim.tv_sec), "file modified");
    } else if (options.max_age) {
      d.Check("freshness", "at most " + FormatAge(options.max_age->count()) + " old", [&](DrillCheck&) -> bool {
        throw SystemError("stat " + path, errno);
      });
    }
  }
  if (!d.EtcdBinary()) return d.Finish(path);
  snapshot::VerifyResult verified;
  if (!d.Check("integrity", "sha256 trailer matches; bbolt check passes", [&](DrillCheck& c) {
        verified = snapshot::VerifySnapshotFile(path);
        c.found = "sha256 " + HexBytes(verified.db_sha256) + " ok; revision " +
                  std::to_string(verified.status.numbers.revision) + ", " +
                  std::to_string(verified.status.numbers.total_key) + " keys";
        return true;
      })) {
    return d.Finish(path);
  }
  d.StartKeySpace(path);  // beside the restore, which reads the same file
  if (!d.Check("restore", "a data dir for member \"drill\"", [&](DrillCheck& c) {
        snapshot::RestoreOptions r = d.RestoreOpts();
        r.snapshot_path = path;
        snapshot::RestoreResult res = snapshot::Restore(r);
        c.found = "revision " + std::to_string(res.restored.revision) + ", " +
                  std::to_string(res.restored.total_key) + " keys" +
                  (res.hash_checked ? ", sha256 verified" : ", sha256 NOT verified");
        return res.hash_checked;
      })) {
    return d.Finish(path);
  }
  if (!d.KeySpace()) return d.Finish(path);
  d.status_revision_ = verified.status.numbers.revision;
  d.Live(verified.status.numbers.total_size);
  return d.Finish(path);
}

DrillReport DrillRepositoryBackup(backup::Repository& repo, const std::string& id_or_latest,
                                  const std::optional<pipeline::KeySpec>& key, const backup::ReadOptions& read,
                                  const DrillOptions& options) {
  Drill d(options);
  std::vector<std::string> skipped;
  backup::Manifest m;
  if (!d.Check("backup", "backup " + id_or_latest + " in " + repo.Describe(), [&](DrillCheck& c) {
        m = repo.Find(id_or_latest, &skipped);
        c.found = m.id + " (revision " + std::to_string(m.revision) + ", " + snapshot::HumanizeBytes(m.db_size) + ")";
        return true;
      })) {
    return d.Finish(repo.Describe() + " backup " + id_or_latest);
  }
  if (options.note) {
    for (const auto& s : skipped) options.note("skipped invalid manifest " + s);
  }
  if (m.encryption != "none" && !key) {
    throw Error(ErrorCode::kInvalidArgument,
                "backup " + m.id + " is encrypted: give --encryption-key-file, --encryption-key-env or --passphrase-file");
  }
  const std::string source = repo.Describe() + " backup " + m.id;
  d.Freshness(m.time_unix, "taken");
  if (!d.EtcdBinary()) return d.Finish(source);
  if (!d.Check("restore",
               "stored sha256 " + m.stored_sha256.substr(0, 16) + "..., revision " + std::to_string(m.revision) +
                   ", " + std::to_string(m.total_keys) + " keys, status hash as the manifest says; bbolt check passes",
               [&](DrillCheck& c) {
                 snapshot::RestoreOptions r = d.RestoreOpts();
                 std::vector<std::string> notes;
                 snapshot::RestoreResult res = backup::RestoreFromRepository(repo, m.id, r, key, {}, read, &notes);
                 if (options.note) {
                   for (const auto& n : notes) options.note(n);
                 }
                 c.found = "verified; data dir restored (revision " + std::to_string(res.restored.revision) + ")";
                 return true;
               })) {
    return d.Finish(source);
  }
  d.StartKeySpace(d.DataDir() + "/member/snap/db");  // beside etcd's start on the same db
  d.status_revision_ = m.revision;
  d.Live(m.db_size);
  return d.Finish(source);
}

std::string DrillReportJson(const DrillReport& report) {
  nlohmann::ordered_json j;
  j["ok"] = report.ok;
  j["checks"] = nlohmann::ordered_json::array();
  for (const auto& c : report.checks) {
    nlohmann::ordered_json o;
    o["name"] = c.name;
    o["ok"] = c.ok;
    o["expected"] = c.expected;
    o["found"] = c.found;
    o["ms"] = c.ms;
    j["checks"].push_back(std::move(o));
  }
  return j.dump(2) + "\n";
}

void WriteDrillReport(const std::string& path, const DrillReport& report) {
  const std::string json = DrillReportJson(report);
  LockedTemp tmp(ParentDir(path), "." + BaseName(path) + ".", ".tmp", LockedTemp::Kind::kFile, 0644);
  File f = tmp.OpenForWrite();
  f.WriteAll(reinterpret_cast<const uint8_t*>(json.data()), json.size());
  f.Sync();
  f.Close();
  tmp.CommitTo(path);
}

std::string FormatDrillTable(const DrillReport& report) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : report.checks) {
    rows.push_back({c.name, c.ok ? "ok" : "FAILED", c.expected, c.found, std::to_string(c.ms)});
  }
  return snapshot::RenderTable({"check", "result", "expected", "found", "ms"}, rows);
}

std::string DrillSummaryLine(const DrillReport& report) {
  int64_t ms = 0;
  for (const auto& c : report.checks) ms += c.ms;
  if (report.ok) {
    return "drill passed: " + std::to_string(report.checks.size()) + " checks on " + Printable(report.source) +
           " in " + std::to_string(ms) + " ms";
  }
  std::string names, first;
  size_t failed = 0;
  for (const auto& c : report.checks) {
    if (c.ok) continue;
    names += (failed++ ? ", " : "") + c.name;
    if (first.empty()) first = c.name + ": expected " + c.expected + ", found " + c.found;
  }
  if (failed == 0) return "drill failed: no check ran";
  // One failed check: "drill failed (hashkv): expected ..."; several: each named, then
  // the first one's numbers.
  if (failed == 1) first = first.substr(names.size() + 2);
  return "drill failed (" + names + "): " + first;
}

}  // namespace etcdsafe::ops
