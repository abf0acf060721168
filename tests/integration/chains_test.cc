// The repository side of continuous backup (issue 9) with the real etcdsafe binary: base
// backups of a real etcd 3.4 (`etcdsafe backup`), chains of segments after them written
// with SegmentBuilder + WriteSegment (synthetic records whose revisions continue from the
// base's), then what `prune`, `backups list`, `backups verify` and the repository lock
// make of them:
//  - prune keeps chains whole: a dropped base takes its segments with it, highest number
//    first and before its manifest; a kept base keeps every segment; orphans stay;
//  - a recorder's follow lock conflicts only with another follow lock, and the store
//    temporaries of segments survive stale-lock sweeps and prune while it is held;
//  - list shows chains with their base, orphans and holes as warnings;
//  - verify reads every chain with the key and finds a tampered, swapped, missing or
//    plaintext-forged segment; without the key an encrypted chain is "key required".
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backup/layout.h"
#include "backup/lock.h"
#include "backup/repository.h"
#include "base/checksum.h"
#include "base/error.h"
#include "follow/chain.h"
#include "follow/segment.h"
#include "pipeline/keys.h"
#include "store/store.h"
#include "testutil/cli.h"
#include "testutil/etcd_server.h"
#include "testutil/temp_dir.h"

namespace etcdsafe {
namespace {

using testutil::CmdResult;
using testutil::Concat;
using testutil::EtcdServer;
using testutil::TempDir;

constexpr int kExitError = 1, kExitLocked = 11, kExitAuth = 12;
constexpr char kTempSuffix[] = ".tmp-0123456789abcdef";

CmdResult Etcdsafe(const std::vector<std::string>& args) { return testutil::Exec(ETCDSAFE_BINARY, args); }

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A lock object as another host's etcdsafe writes it (judged by its mtime alone).
std::string ForeignLock(const std::string& operation) {
  nlohmann::ordered_json j;
  j["etcdsafe_lock"] = backup::kLockFormat;
  j["operation"] = operation;
  j["host"] = "other-host";
  j["pid"] = 4242;
  j["boot_id"] = "00000000-0000-0000-0000-000000000000";
  j["pid_ns"] = 4026530000u;
  j["pid_start"] = 0;
  j["since_unix"] = Now() - 3600;
  j["refreshed_unix"] = Now();
  j["token"] = std::string(32, 'a');
  return j.dump() + "\n";
}

size_t Pos(const std::string& text, const std::string& what) {
  size_t p = text.find(what);
  EXPECT_NE(p, std::string::npos) << "no \"" << what << "\" in:\n" << text;
  return p;
}

bool Contains(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

class Chains : public ::testing::Test {
 protected:
  std::string Dir(const std::string& repo) { return dir_.Sub(repo); }
  std::string Url(const std::string& repo) { return "file://" + Dir(repo); }
  bool Exists(const std::string& repo, const std::string& name) {
    return std::filesystem::exists(Dir(repo) + "/" + name);
  }
  std::string KeyFile() {
    const std::string path = dir_.Sub("backup.key");
    if (!std::filesystem::exists(path)) {
      testutil::WriteFile(path, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
      ::chmod(path.c_str(), 0600);
    }
    return path;
  }
  std::unique_ptr<backup::Repository> Open(const std::string& repo) {
    return std::make_unique<backup::Repository>(store::OpenStore(Url(repo)));
  }

  // A full backup of the etcd (after a write, so each base has its own revision), one
  // second after the previous one so that their times order them. Returns its manifest.
  backup::Manifest Backup(const std::string& repo, bool encrypted = false) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    etcd_.etcdctl({"put", "/k/" + std::to_string(writes_++), "v"});
    std::vector<std::string> args = {"backup", "--repo", Url(repo), "--endpoints", etcd_.client_url()};
    if (encrypted) args = Concat(args, {"--encryption-key-file", KeyFile()});
    CmdResult r = Etcdsafe(args);
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    std::string id = r.out.substr(7, r.out.find(':') - 7);  // "backup <id>: revision ..."
    return Open(repo)->Find(id);
  }

  // Segments 1..n continuing `base`, `revs` revisions each (plus a progress record),
  // encrypted when `key` is given. Returns their stored names in order.
  std::vector<std::string> WriteChain(const std::string& repo, const backup::Manifest& base, int n, int revs,
                                      const std::optional<pipeline::KeySpec>& key = std::nullopt,
                                      pipeline::Compression compression = pipeline::Compression::kZstd) {
    auto r = Open(repo);
    std::string prev = base.stored_sha256;
    int64_t last = base.revision;
    int64_t t = (base.time_unix + 1) * 1000;
    std::vector<std::string> names;
    for (int seq = 1; seq <= n; seq++) {
      follow::SegmentBuilder b(base.id, static_cast<uint64_t>(seq), last, prev);
      for (int i = 0; i < revs; i++) {
        const int64_t rev = last + 1 + i;
        follow::KeyValue kv;
        kv.key = "/synthetic/" + std::to_string(rev);
        kv.value = "value of " + std::to_string(rev);
        kv.create_revision = rev;
        kv.mod_revision = rev;
        kv.version = 1;
        b.AddRevision({rev, t += 10, {{false, follow::EncodeKeyValue(kv)}}});
      }
      b.AddProgress({b.header().last_revision, t += 10});
      follow::SegmentWriteOptions o;
      o.compression = compression;
      o.key = key;
      const std::string plain = b.Finish();
      follow::StoredSegment s = follow::WriteSegment(*r, b.header(), plain, o);
      names.push_back(s.name);
      prev = HexBytes(Sha256Of(AsBytes(plain)));  // the link: the previous segment's plain bytes
      last = b.header().last_revision;
    }
    return names;
  }

  std::string Range(const backup::Manifest& base, int n, int revs) {
    return std::to_string(base.revision + 1) + ".." + std::to_string(base.revision + n * revs);
  }

  void PutLock(const std::string& repo, const std::string& name, const std::string& body, int64_t mtime) {
    std::filesystem::create_directories(Dir(repo) + "/locks");
    const std::string path = Dir(repo) + "/locks/" + name;
    testutil::WriteFile(path, body);
    timespec times[2] = {{mtime, 0}, {mtime, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  }

  TempDir dir_;
  EtcdServer etcd_;
  int writes_ = 0;
};

// Retention decides per base backup; a chain goes and stays with its base. The dropped
// base's segments are removed highest number first and before its manifest, so a prune
// killed at any point leaves the base with a shorter chain that is still whole.
TEST_F(Chains, PruneDropsAnOldBaseWithItsWholeChainAndKeepsTheNewOne) {
  backup::Manifest a = Backup("p");
  std::vector<std::string> seg_a = WriteChain("p", a, 3, 2);
  backup::Manifest b = Backup("p");
  std::vector<std::string> seg_b = WriteChain("p", b, 2, 3);
  // Segments of a backup that has no manifest: never removed automatically.
  backup::Manifest ghost = a;
  ghost.id = "etcd-snapshot-20200101-000000-r5";
  ghost.revision = 5;
  std::vector<std::string> orphan = WriteChain("p", ghost, 1, 1);

  CmdResult dry = Etcdsafe({"prune", "--repo", Url("p"), "--keep-last", "1", "--dry-run"});
  ASSERT_EQ(dry.code, 0) << dry.out << dry.err;
  EXPECT_TRUE(Contains(dry.out, "drop    " + a.id + " (with 3 segments, revisions " + Range(a, 3, 2) + ")")) << dry.out;
  EXPECT_TRUE(Contains(dry.out, "keep    " + b.id + " (with 2 segments, revisions " + Range(b, 2, 3) + ")")) << dry.out;
  EXPECT_LT(Pos(dry.out, "would remove  " + seg_a[2]), Pos(dry.out, "would remove  " + seg_a[1]));
  EXPECT_LT(Pos(dry.out, "would remove  " + seg_a[1]), Pos(dry.out, "would remove  " + seg_a[0]));
  EXPECT_LT(Pos(dry.out, "would remove  " + seg_a[0]), Pos(dry.out, "would remove  " + a.id + ".manifest.json"));
  for (const auto& s : seg_a) EXPECT_TRUE(Exists("p", s)) << "dry run removed " << s;

  CmdResult real = Etcdsafe({"prune", "--repo", Url("p"), "--keep-last", "1"});
  ASSERT_EQ(real.code, 0) << real.out << real.err;
  // Removal order, as carried out: segments 3, 2, 1, then the manifest, then the data.
  const size_t s3 = Pos(real.out, "removed  " + seg_a[2]), s2 = Pos(real.out, "removed  " + seg_a[1]),
               s1 = Pos(real.out, "removed  " + seg_a[0]), man = Pos(real.out, "removed  " + a.id + ".manifest.json"),
               data = Pos(real.out, "removed  " + a.data_object + "  ");
  EXPECT_LT(s3, s2);
  EXPECT_LT(s2, s1);
  EXPECT_LT(s1, man);
  EXPECT_LT(man, data);
  EXPECT_TRUE(Contains(real.out, "(backup " + a.id + " (with 3 segments, revisions " + Range(a, 3, 2) +
                                     "), not kept by the policy)"))
      << real.out;
  for (const auto& s : seg_a) EXPECT_FALSE(Exists("p", s)) << s;
  EXPECT_FALSE(Exists("p", a.id + ".manifest.json"));
  for (const auto& s : seg_b) EXPECT_TRUE(Exists("p", s)) << s;
  EXPECT_TRUE(Exists("p", b.id + ".manifest.json"));
  EXPECT_TRUE(Exists("p", orphan[0]));
  EXPECT_TRUE(Contains(real.err, "left alone: " + orphan[0])) << real.err;
  EXPECT_TRUE(Contains(real.err, "never removed automatically")) << real.err;
  EXPECT_FALSE(Contains(real.out, orphan[0])) << real.out;

  // What is left verifies: the kept chain whole, the orphan only a warning.
  CmdResult v = Etcdsafe({"backups", "verify", "--repo", Url("p")});
  EXPECT_EQ(v.code, 0) << v.out << v.err;
  EXPECT_TRUE(Contains(v.out, "ok       chain of " + b.id + " (2 segments, revisions " + Range(b, 2, 3))) << v.out;
  EXPECT_TRUE(Contains(v.out, "1 backups and 1 chains verified")) << v.out;
  EXPECT_TRUE(Contains(v.err, "orphan segment " + orphan[0])) << v.err;

  // A second prune has nothing to do and still leaves the orphan.
  CmdResult again = Etcdsafe({"prune", "--repo", Url("p"), "--keep-last", "1"});
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_FALSE(Contains(again.out, "removed ")) << again.out;
  EXPECT_TRUE(Exists("p", orphan[0]));
}

// What a prune killed between two removals leaves: the highest segments gone first, the
// base's chain is shorter and whole. Had it removed a lower one first, the chain would
// have a hole (and verify says so).
TEST_F(Chains, AChainCutFromTheTopStaysWholeFromTheBottomItIsDamaged) {
  backup::Manifest a = Backup("k");
  std::vector<std::string> seg = WriteChain("k", a, 3, 2);
  ASSERT_TRUE(std::filesystem::remove(Dir("k") + "/" + seg[2]));
  CmdResult v = Etcdsafe({"backups", "verify", "--repo", Url("k")});
  EXPECT_EQ(v.code, 0) << v.out << v.err;
  EXPECT_TRUE(Contains(v.out, "ok       chain of " + a.id + " (2 segments, revisions " + Range(a, 2, 2))) << v.out;
  ASSERT_TRUE(std::filesystem::remove(Dir("k") + "/" + seg[0]));
  v = Etcdsafe({"backups", "verify", "--repo", Url("k")});
  EXPECT_EQ(v.code, kExitError) << v.out << v.err;
  EXPECT_TRUE(Contains(v.out, "DAMAGED  chain of " + a.id)) << v.out;
  EXPECT_TRUE(Contains(v.out, "segment 1 is missing")) << v.out;
}

// A recorder (follow lock) runs for days beside backups and prunes: only a second
// recorder is refused.
TEST_F(Chains, AFollowLockConflictsOnlyWithAnotherFollowLock) {
  Backup("l");
  auto store = store::OpenStore(Url("l"));
  {
    std::unique_ptr<backup::RepositoryLock> recorder = backup::AcquireLock(*store, backup::kFollowOperation, nullptr);
    try {
      backup::AcquireLock(*store, backup::kFollowOperation, nullptr);
      ADD_FAILURE() << "a second follow lock was granted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kLocked) << e.what();
      EXPECT_TRUE(Contains(e.what(), "follow on host")) << e.what();
    }
    // A backup and a prune run while the recorder holds its lock (and leave it).
    CmdResult b = Etcdsafe({"backup", "--repo", Url("l"), "--endpoints", etcd_.client_url()});
    EXPECT_EQ(b.code, 0) << b.out << b.err;
    CmdResult p = Etcdsafe({"prune", "--repo", Url("l"), "--keep-last", "5"});
    EXPECT_EQ(p.code, 0) << p.out << p.err;
    EXPECT_NO_THROW(recorder->CheckHeld());
    // Locks other than a follow lock still exclude each other.
    std::unique_ptr<backup::RepositoryLock> pruner = backup::AcquireLock(*store, "prune", nullptr);
    CmdResult b2 = Etcdsafe({"backup", "--repo", Url("l"), "--endpoints", etcd_.client_url()});
    EXPECT_EQ(b2.code, kExitLocked) << b2.out << b2.err;
  }
  // Another host's recorder: the same, judged by its lock's mtime.
  PutLock("l", "other-host-4242-aaaa.json", ForeignLock("follow"), Now());
  CmdResult b = Etcdsafe({"backup", "--repo", Url("l"), "--endpoints", etcd_.client_url()});
  EXPECT_EQ(b.code, 0) << b.out << b.err;
  EXPECT_THROW(backup::AcquireLock(*store, backup::kFollowOperation, nullptr), Error);
  EXPECT_TRUE(Exists("l", "locks/other-host-4242-aaaa.json"));
  // Once it is stale (30 min without a write), the next recorder takes over.
  PutLock("l", "other-host-4242-aaaa.json", ForeignLock("follow"), Now() - 3600);
  std::vector<std::string> notes;
  EXPECT_NO_THROW(backup::AcquireLock(*store, backup::kFollowOperation, &notes));
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_TRUE(Contains(notes[0], "removed stale lock")) << notes[0];
  // A recorder starts while a backup runs elsewhere; an unreadable lock stops it.
  PutLock("l", "other-host-4242-bbbb.json", ForeignLock("backup"), Now());
  EXPECT_NO_THROW(backup::AcquireLock(*store, backup::kFollowOperation, nullptr));
  PutLock("l", "other-host-4242-bbbb.json", "not a lock", Now());
  EXPECT_THROW(backup::AcquireLock(*store, backup::kFollowOperation, nullptr), Error);
}

// A recorder may be writing a segment through a store temporary at any moment: while its
// lock is fresh, neither a stale-lock sweep nor prune removes segment temporaries; once
// no recorder holds the repository, they go like any other killed run's.
TEST_F(Chains, SegmentTemporariesSurviveWhileARecorderHoldsItsLock) {
  backup::Manifest a = Backup("t");
  std::vector<std::string> seg = WriteChain("t", a, 1, 2);
  const std::string seg_tmp =
      backup::SegmentObjectName(a.id, 2, a.revision + 3, a.revision + 4, ".evt.zst") + kTempSuffix;
  const std::string data_tmp = std::string("etcd-snapshot-20200101-000000.db.zst") + kTempSuffix;
  testutil::WriteFile(Dir("t") + "/" + seg_tmp, "half a segment");
  testutil::WriteFile(Dir("t") + "/" + data_tmp, "half a snapshot");
  PutLock("t", "other-host-4242-f011.json", ForeignLock("follow"), Now());
  PutLock("t", "other-host-4243-dead.json", ForeignLock("backup"), Now() - 3600);

  // A backup takes over the stale lock and sweeps the dead run's temporaries, but not
  // the recorder's.
  CmdResult b = Etcdsafe({"backup", "--repo", Url("t"), "--endpoints", etcd_.client_url()});
  ASSERT_EQ(b.code, 0) << b.out << b.err;
  EXPECT_TRUE(Contains(b.err, "removed stale lock")) << b.err;
  EXPECT_FALSE(Exists("t", data_tmp)) << b.err;
  EXPECT_TRUE(Exists("t", seg_tmp)) << b.err;
  EXPECT_TRUE(Contains(b.err, "left 1 store temporary alone")) << b.err;

  // Prune, dry and real: the same.
  testutil::WriteFile(Dir("t") + "/" + data_tmp, "half a snapshot");
  CmdResult dry = Etcdsafe({"prune", "--repo", Url("t"), "--keep-last", "5", "--dry-run"});
  ASSERT_EQ(dry.code, 0) << dry.out << dry.err;
  EXPECT_TRUE(Contains(dry.out, "would remove  " + data_tmp)) << dry.out;
  EXPECT_FALSE(Contains(dry.out, seg_tmp)) << dry.out;
  CmdResult p = Etcdsafe({"prune", "--repo", Url("t"), "--keep-last", "5"});
  ASSERT_EQ(p.code, 0) << p.out << p.err;
  EXPECT_FALSE(Exists("t", data_tmp));
  EXPECT_TRUE(Exists("t", seg_tmp));
  EXPECT_TRUE(Contains(p.err, "left alone: " + seg_tmp)) << p.err;
  EXPECT_TRUE(Contains(p.err, "a recorder holds lock locks/other-host-4242-f011.json")) << p.err;
  EXPECT_TRUE(Exists("t", seg[0]));

  // The recorder is gone (its lock went stale): its temporary is a killed run's.
  PutLock("t", "other-host-4242-f011.json", ForeignLock("follow"), Now() - 3600);
  p = Etcdsafe({"prune", "--repo", Url("t"), "--keep-last", "5"});
  ASSERT_EQ(p.code, 0) << p.out << p.err;
  EXPECT_FALSE(Exists("t", seg_tmp)) << p.out << p.err;
  EXPECT_FALSE(Exists("t", "locks/other-host-4242-f011.json"));
  EXPECT_TRUE(Exists("t", seg[0]));  // committed segments of a kept base stay
}

// While a recorder holds its lock, prune keeps the chain it is extending (the one written
// last) even when the policy would drop its base.
TEST_F(Chains, PruneKeepsTheChainBeingRecorded) {
  backup::Manifest a = Backup("r");
  backup::Manifest b = Backup("r");
  std::vector<std::string> seg_b = WriteChain("r", b, 1, 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // a's segment is the newest object
  std::vector<std::string> seg_a = WriteChain("r", a, 2, 2);
  backup::Manifest c = Backup("r");
  PutLock("r", "other-host-4242-f011.json", ForeignLock("follow"), Now());
  CmdResult p = Etcdsafe({"prune", "--repo", Url("r"), "--keep-last", "1"});
  ASSERT_EQ(p.code, 0) << p.out << p.err;
  EXPECT_TRUE(Contains(p.out, "keep    " + a.id + " (with 2 segments, revisions " + Range(a, 2, 2) +
                                  ")  (chain being recorded (lock locks/other-host-4242-f011.json is held))"))
      << p.out;
  EXPECT_TRUE(Contains(p.out, "drop    " + b.id + " (with 1 segment, revisions " + Range(b, 1, 2) + ")")) << p.out;
  for (const auto& s : seg_a) EXPECT_TRUE(Exists("r", s)) << s;
  EXPECT_FALSE(Exists("r", seg_b[0]));
  EXPECT_TRUE(Exists("r", c.id + ".manifest.json"));
}

TEST_F(Chains, ListShowsChainsWithTheirBaseAndWarnsOfOrphansAndHoles) {
  backup::Manifest a = Backup("ls");
  WriteChain("ls", a, 3, 2);
  backup::Manifest b = Backup("ls");
  std::vector<std::string> seg_b = WriteChain("ls", b, 3, 1);
  ASSERT_TRUE(std::filesystem::remove(Dir("ls") + "/" + seg_b[1]));
  backup::Manifest c = Backup("ls");
  backup::Manifest ghost = a;
  ghost.id = "etcd-snapshot-20200101-000000-r5";
  ghost.revision = 5;
  std::vector<std::string> orphan = WriteChain("ls", ghost, 1, 1);

  CmdResult j = Etcdsafe({"backups", "list", "--repo", Url("ls"), "-w", "json"});
  ASSERT_EQ(j.code, 0) << j.err;
  nlohmann::json arr = nlohmann::json::parse(j.out);
  ASSERT_EQ(arr.size(), 3u) << j.out;
  EXPECT_EQ(arr[0]["id"], a.id);
  EXPECT_EQ(arr[0]["chain"]["segments"], 3);
  EXPECT_EQ(arr[0]["chain"]["first_revision"], a.revision + 1);
  EXPECT_EQ(arr[0]["chain"]["last_revision"], a.revision + 6);
  EXPECT_EQ(arr[0]["chain"]["usable_last_revision"], a.revision + 6);
  EXPECT_TRUE(arr[0]["chain"]["problems"].empty());
  EXPECT_EQ(arr[1]["id"], b.id);
  EXPECT_EQ(arr[1]["chain"]["segments"], 2);
  EXPECT_EQ(arr[1]["chain"]["last_revision"], b.revision + 3);
  EXPECT_EQ(arr[1]["chain"]["usable_last_revision"], b.revision + 1);
  ASSERT_EQ(arr[1]["chain"]["problems"].size(), 1u);
  EXPECT_TRUE(Contains(arr[1]["chain"]["problems"][0].get<std::string>(), "segment 2 is missing"));
  EXPECT_EQ(arr[2]["id"], c.id);
  EXPECT_EQ(arr[2]["chain"]["segments"], 0);
  EXPECT_EQ(arr[2]["chain"]["last_revision"], c.revision);
  EXPECT_TRUE(Contains(j.err, "warning: orphan segment " + orphan[0])) << j.err;
  EXPECT_TRUE(Contains(j.err, "warning: chain of " + b.id + ": segment 2 is missing")) << j.err;
  EXPECT_TRUE(Contains(j.err, "usable up to revision " + std::to_string(b.revision + 1))) << j.err;

  CmdResult t = Etcdsafe({"backups", "list", "--repo", Url("ls"), "-w", "table"});
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_TRUE(Contains(t.out, "3 segments, r" + Range(a, 3, 2))) << t.out;
  EXPECT_TRUE(Contains(t.out, "2 segments, r" + Range(b, 3, 1) + " (damaged)")) << t.out;
  EXPECT_TRUE(Contains(t.out, "CHAIN")) << t.out;
  CmdResult s = Etcdsafe({"backups", "list", "--repo", Url("ls"), "-w", "simple"});
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_TRUE(Contains(s.out, c.id)) << s.out;
}

TEST_F(Chains, VerifyPassesAnIntactEncryptedChainAndNeedsItsKey) {
  backup::Manifest a = Backup("v", /*encrypted=*/true);
  const pipeline::KeySpec key = pipeline::LoadKeyFile(KeyFile());
  std::vector<std::string> seg = WriteChain("v", a, 3, 2, key);
  for (const auto& s : seg) EXPECT_TRUE(s.ends_with(".evt.zst.enc")) << s;
  CmdResult ok = Etcdsafe({"backups", "verify", "--repo", Url("v"), "--encryption-key-file", KeyFile()});
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_TRUE(Contains(ok.out, "ok       chain of " + a.id + " (3 segments, revisions " + Range(a, 3, 2) + ", ")) << ok.out;
  CmdResult nokey = Etcdsafe({"backups", "verify", "--repo", Url("v")});
  EXPECT_EQ(nokey.code, kExitAuth) << nokey.out << nokey.err;
  EXPECT_TRUE(Contains(nokey.out, "KEY?     chain of " + a.id)) << nokey.out;
  EXPECT_TRUE(Contains(nokey.err, "key required")) << nokey.err;
  // Only this backup's chain.
  CmdResult one = Etcdsafe({"backups", "verify", "--repo", Url("v"), "--backup", a.id, "--encryption-key-file", KeyFile()});
  EXPECT_EQ(one.code, 0) << one.out << one.err;
  EXPECT_TRUE(Contains(one.out, "ok       chain of " + a.id)) << one.out;

  // A plaintext segment linked correctly onto the encrypted chain (by someone who can
  // read it, or onto the base, whose link is public): only the key holder can encrypt
  // a segment. Refused.
  {
    auto r = Open("v");
    follow::ChainScan scan = follow::ScanChains(*r);
    ASSERT_EQ(scan.chains.size(), 1u);
    follow::ChainReadResult end = follow::ReadChain(*r, scan.chains[0], key);
    follow::SegmentBuilder forged(a.id, 4, end.last_revision, end.last_link_sha256);
    forged.AddRevision({end.last_revision + 1, end.last_time_ms + 1, {{true, "/k/0"}}});
    follow::SegmentWriteOptions o;
    follow::WriteSegment(*r, forged.header(), forged.Finish(), o);
  }
  CmdResult bad = Etcdsafe({"backups", "verify", "--repo", Url("v"), "--encryption-key-file", KeyFile()});
  EXPECT_EQ(bad.code, kExitError) << bad.out << bad.err;
  EXPECT_TRUE(Contains(bad.out, "DAMAGED  chain of " + a.id)) << bad.out;
  EXPECT_TRUE(Contains(bad.out, "is not encrypted but its base backup is")) << bad.out;
}

TEST_F(Chains, VerifyFindsATamperedSegment) {
  backup::Manifest a = Backup("vt");
  std::vector<std::string> seg = WriteChain("vt", a, 3, 2);
  backup::Manifest b = Backup("vt");
  std::vector<std::string> seg_b = WriteChain("vt", b, 2, 2, std::nullopt, pipeline::Compression::kNone);
  CmdResult ok = Etcdsafe({"backups", "verify", "--repo", Url("vt")});
  ASSERT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_TRUE(Contains(ok.out, "2 backups and 2 chains verified")) << ok.out;
  // One byte of a middle segment (zstd), and the last byte (a record) of the last
  // segment of the other chain, which no successor links to.
  for (const auto& [path, where] : {std::pair{Dir("vt") + "/" + seg[1], 0.5}, std::pair{Dir("vt") + "/" + seg_b[1], 1.0}}) {
    std::string bytes = testutil::ReadFile(path);
    size_t at = std::min(bytes.size() - 1, static_cast<size_t>(bytes.size() * where));
    bytes[at] = static_cast<char>(bytes[at] ^ 0x20);
    testutil::WriteFile(path, bytes);
  }
  CmdResult v = Etcdsafe({"backups", "verify", "--repo", Url("vt")});
  EXPECT_EQ(v.code, kExitError) << v.out << v.err;
  EXPECT_TRUE(Contains(v.out, "DAMAGED  chain of " + a.id)) << v.out;
  EXPECT_TRUE(Contains(v.out, "DAMAGED  chain of " + b.id)) << v.out;
  EXPECT_TRUE(Contains(v.out, "ok       " + a.id)) << v.out;  // the bases themselves are fine
  EXPECT_TRUE(Contains(v.err, "2 of 2 chains")) << v.err;
}

TEST_F(Chains, VerifyFindsSwappedAndMissingSegments) {
  backup::Manifest a = Backup("vs");
  std::vector<std::string> seg_a = WriteChain("vs", a, 2, 2);
  backup::Manifest b = Backup("vs");
  std::vector<std::string> seg_b = WriteChain("vs", b, 2, 2);
  // Segment 2 of each chain under the other's name: each is a whole, valid segment.
  const std::string pa = Dir("vs") + "/" + seg_a[1], pb = Dir("vs") + "/" + seg_b[1];
  const std::string bytes_a = testutil::ReadFile(pa), bytes_b = testutil::ReadFile(pb);
  testutil::WriteFile(pa, bytes_b);
  testutil::WriteFile(pb, bytes_a);
  CmdResult v = Etcdsafe({"backups", "verify", "--repo", Url("vs")});
  EXPECT_EQ(v.code, kExitError) << v.out << v.err;
  EXPECT_TRUE(Contains(v.out, "DAMAGED  chain of " + a.id)) << v.out;
  EXPECT_TRUE(Contains(v.out, "DAMAGED  chain of " + b.id)) << v.out;
  EXPECT_TRUE(Contains(v.out, "does not match its name")) << v.out;
  // Put back, then lose the middle of a three-segment chain.
  testutil::WriteFile(pa, bytes_a);
  testutil::WriteFile(pb, bytes_b);
  backup::Manifest c = Backup("vs");
  std::vector<std::string> seg_c = WriteChain("vs", c, 3, 1);
  ASSERT_TRUE(std::filesystem::remove(Dir("vs") + "/" + seg_c[1]));
  v = Etcdsafe({"backups", "verify", "--repo", Url("vs")});
  EXPECT_EQ(v.code, kExitError) << v.out << v.err;
  EXPECT_TRUE(Contains(v.out, "ok       chain of " + a.id)) << v.out;
  EXPECT_TRUE(Contains(v.out, "ok       chain of " + b.id)) << v.out;
  EXPECT_TRUE(Contains(v.out, "DAMAGED  chain of " + c.id)) << v.out;
  EXPECT_TRUE(Contains(v.out, "segment 2 is missing")) << v.out;
  EXPECT_TRUE(Contains(v.out, "segments 1..1 check out, up to revision " + std::to_string(c.revision + 1))) << v.out;
}

}  // namespace
}  // namespace etcdsafe
