// Repository safety (docs/design.md, "Repository invariants"): the real binary against a
// real etcd 3.4, file:// repositories and s3:// on a real S3-compatible server (s3rver),
// with hostile repository contents: foreign files, nested repositories, forged, copied and
// malformed manifests, decompression bombs, tampered sidecars, control characters.
// Each test names the invariant it checks (I1..I7 in docs/design.md).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "base/file.h"
#include "client/etcd_client.h"
#include "testutil/cli.h"
#include "testutil/etcd_server.h"
#include "testutil/s3_server.h"
#include "testutil/temp_dir.h"

namespace etcdsafe {
namespace {

namespace fs = std::filesystem;
using testutil::CmdResult;
using testutil::Concat;
using testutil::EtcdServer;
using testutil::EtcdServerOptions;
using testutil::Exec;
using testutil::IsOneLineError;
using testutil::ReadFile;
using testutil::Shell;
using testutil::ShellQuote;
using testutil::TempDir;
using testutil::WriteFile;

CmdResult Etcdsafe(const std::vector<std::string>& args, const std::string& env = "") {
  return Exec(ETCDSAFE_BINARY, args, env);
}

// Every regular file under dir, relative, sorted (recursively: foreign trees included).
std::vector<std::string> Tree(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file()) out.push_back(fs::relative(it->path(), dir).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> WithSuffix(const std::string& dir, const std::string& suffix) {
  std::vector<std::string> out;
  for (const auto& f : Tree(dir)) {
    if (f.find('/') == std::string::npos && f.size() > suffix.size() &&
        f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0) {
      out.push_back(f);
    }
  }
  return out;
}

bool Contains(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }

class RepoSafety : public ::testing::Test {
 public:  // KillBackupMidStream (a free helper) uses the fixture
  static void SetUpTestSuite() {
    server_ = new EtcdServer(EtcdServerOptions{});
    auto c = client::EtcdClient::Connect(server_->client_config());
    for (int i = 0; i < 50; i++) c->Put("/registry/configmaps/default/cm-" + std::to_string(i), std::string(300, 'x'));
  }
  static void TearDownTestSuite() { delete server_; }
  static void Put(const std::string& k, const std::string& v) {
    client::EtcdClient::Connect(server_->client_config())->Put(k, v);
  }
  std::vector<std::string> Etcd() const { return {"--endpoints", server_->client_url()}; }
  std::string Repo(const std::string& name) const { return "file://" + dir_.Sub(name); }
  std::string Key() {
    std::string path = dir_.Sub("key");
    if (!PathExists(path)) {
      WriteFile(path, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n");
      ::chmod(path.c_str(), 0600);
    }
    return path;
  }
  CmdResult Backup(const std::string& repo, const std::vector<std::string>& extra = {}) {
    CmdResult r = Etcdsafe(Concat(Concat({"backup", "--repo", repo}, extra), Etcd()));
    EXPECT_EQ(r.code, 0) << r.err << r.out;
    // Backup stems have one-second resolution; keep times distinct.
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    return r;
  }
  nlohmann::ordered_json Manifest(const std::string& path) { return nlohmann::ordered_json::parse(ReadFile(path)); }

  static EtcdServer* server_;
  TempDir dir_;
};
EtcdServer* RepoSafety::server_ = nullptr;

// I1: prune removes only names etcdsafe writes, at the repository's top level.
TEST_F(RepoSafety, I1_PruneNeverDeletesForeignFilesOrNestedRepositories) {
  const std::string r = dir_.Sub("r");
  Backup(Repo("r"));
  Backup(Repo("r"));
  Backup(Repo("r/cluster-b"));
  // What the review found deleted: a restored data dir, an app's db, a user's snapshot.
  MakeDirs(r + "/etcd/member/snap", 0700);
  MakeDirs(r + "/etcd/member/wal", 0700);
  MakeDirs(r + "/app", 0700);
  WriteFile(r + "/etcd/member/snap/db", "bolt");
  WriteFile(r + "/etcd/member/wal/0000000000000000-0000000000000000.wal", "wal");
  WriteFile(r + "/app/users.db", "users");
  WriteFile(r + "/etcd-before-upgrade.db", "mine");
  WriteFile(r + "/etcd-snapshot-manual.db", "mine too");
  std::vector<std::string> before = Tree(r);
  CmdResult prune = Etcdsafe({"prune", "--repo", Repo("r"), "--keep-last", "1"});
  ASSERT_EQ(prune.code, 0) << prune.err << prune.out;
  EXPECT_TRUE(Contains(prune.out, "1 of 2 backups removed")) << prune.out;
  std::vector<std::string> after = Tree(r);
  for (const char* foreign : {"etcd/member/snap/db", "etcd/member/wal/0000000000000000-0000000000000000.wal",
                              "app/users.db", "etcd-before-upgrade.db", "etcd-snapshot-manual.db"}) {
    EXPECT_NE(std::find(after.begin(), after.end(), foreign), after.end()) << foreign << " was deleted";
  }
  // The nested repository is untouched and still verifies.
  size_t nested_before = 0, nested_after = 0;
  for (const auto& f : before) nested_before += f.rfind("cluster-b/", 0) == 0;
  for (const auto& f : after) nested_after += f.rfind("cluster-b/", 0) == 0;
  EXPECT_EQ(nested_before, nested_after);
  CmdResult verify = Etcdsafe({"backups", "verify", "--repo", Repo("r/cluster-b")});
  EXPECT_EQ(verify.code, 0) << verify.out << verify.err;
  EXPECT_EQ(WithSuffix(r, ".manifest.json").size(), 1u);
  EXPECT_EQ(WithSuffix(r, ".db.zst").size(), 1u);
}

// I1: a location without the marker is not a repository, whatever it holds.
TEST_F(RepoSafety, I1_PruneRefusesALocationWithoutTheMarker) {
  Backup(Repo("m"));
  Backup(Repo("m"));
  ASSERT_TRUE(PathExists(dir_.Sub("m/etcdsafe-repository.json")));
  ::unlink(dir_.Sub("m/etcdsafe-repository.json").c_str());
  std::vector<std::string> before = Tree(dir_.Sub("m"));
  CmdResult prune = Etcdsafe({"prune", "--repo", Repo("m"), "--keep-last", "1"});
  EXPECT_EQ(prune.code, 10) << prune.err;
  EXPECT_TRUE(IsOneLineError(prune)) << prune.err;
  EXPECT_TRUE(Contains(prune.err, "is not an etcdsafe repository")) << prune.err;
  EXPECT_EQ(Tree(dir_.Sub("m")), before);
  // Reading still works (repositories of etcdsafe 0.1 have no marker); the next backup adds it.
  EXPECT_EQ(Etcdsafe({"backups", "list", "--repo", Repo("m")}).code, 0);
  Backup(Repo("m"));
  EXPECT_TRUE(PathExists(dir_.Sub("m/etcdsafe-repository.json")));
}

// I1 on S3: the listing uses delimiter=/, so sub-prefixes are never seen.
TEST_F(RepoSafety, I1_S3PruneLeavesSubPrefixesAndForeignObjectsAlone) {
  testutil::S3Server s3;
  s3.CreateBucket("bkt");
  const std::string env = "AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER";
  // No --s3-path-style: an IP-address endpoint gets path-style requests, as with the AWS CLI.
  const std::vector<std::string> s3flags = {"--s3-endpoint", s3.endpoint()};
  for (const char* repo : {"s3://bkt/r", "s3://bkt/r", "s3://bkt/r/cluster-b"}) {
    CmdResult r = Etcdsafe(Concat(Concat({"backup", "--repo", repo}, s3flags), Etcd()), env);
    ASSERT_EQ(r.code, 0) << r.err;
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  }
  WriteFile(dir_.Sub("foreign"), "x");
  ASSERT_EQ(s3.Aws("s3 cp " + ShellQuote(dir_.Sub("foreign")) + " s3://bkt/r/etcd-before-upgrade.db"), 0);
  ASSERT_EQ(s3.Aws("s3 cp " + ShellQuote(dir_.Sub("foreign")) + " s3://bkt/r/app/users.db"), 0);
  std::string before;
  ASSERT_EQ(s3.Aws("s3 ls --recursive s3://bkt/r/cluster-b/", &before), 0);
  CmdResult prune = Etcdsafe(Concat({"prune", "--repo", "s3://bkt/r", "--keep-last", "1"}, s3flags), env);
  ASSERT_EQ(prune.code, 0) << prune.err << prune.out;
  EXPECT_TRUE(Contains(prune.out, "1 of 2 backups removed")) << prune.out;
  // s3rver cannot list multipart uploads: said, not fatal.
  EXPECT_TRUE(Contains(prune.err, "does not list multipart uploads")) << prune.err;
  std::string after;
  ASSERT_EQ(s3.Aws("s3 ls --recursive s3://bkt/r/cluster-b/", &after), 0);
  EXPECT_EQ(before, after);
  std::string all;
  ASSERT_EQ(s3.Aws("s3 ls --recursive s3://bkt/r/", &all), 0);
  EXPECT_TRUE(Contains(all, "r/etcd-before-upgrade.db")) << all;
  EXPECT_TRUE(Contains(all, "r/app/users.db")) << all;
  CmdResult verify = Etcdsafe(Concat({"backups", "verify", "--repo", "s3://bkt/r/cluster-b"}, s3flags), env);
  EXPECT_EQ(verify.code, 0) << verify.out << verify.err;
}

// I2: a manifest is valid only if its id is its file name, its data object is derived
// from the id, and no other manifest claims that data object; prune refuses before it
// removes anything while one is invalid.
TEST_F(RepoSafety, I2_CopiedRenamedAndPathManifestsMakePruneRefuseWithoutDeleting) {
  const std::string r = dir_.Sub("c");
  Backup(Repo("c"));
  Backup(Repo("c"));
  std::vector<std::string> manifests = WithSuffix(r, ".manifest.json");
  ASSERT_EQ(manifests.size(), 2u);
  const std::string newest = r + "/" + manifests[1];
  auto m = Manifest(newest);
  const std::string newest_id = m["id"];
  struct Case {
    std::string what, file, body;
  };
  std::vector<Case> cases;
  {  // A copy of the newest manifest under an older id and time (same data object).
    auto c = m;
    c["id"] = "etcd-snapshot-20200101-000000-r" + std::to_string(m["revision"].get<int64_t>());
    c["time_unix"] = 1577836800;
    c["time"] = "2020-01-01T00:00:00Z";
    cases.push_back({"older copy", c["id"].get<std::string>() + ".manifest.json", c.dump()});
  }
  {  // An id that differs from its file name.
    auto c = m;
    c["id"] = "etcd-snapshot-20200101-000000-r1";
    cases.push_back({"renamed", "etcd-snapshot-20200102-000000-r1.manifest.json", c.dump()});
  }
  {  // A path in the id.
    auto c = m;
    c["id"] = "../../../tmp/x";
    cases.push_back({"path id", "etcd-snapshot-20200103-000000-r5.manifest.json", c.dump()});
  }
  {  // The same data object claimed under a second revision.
    auto c = m;
    std::string id = newest_id.substr(0, newest_id.rfind("-r")) + "-r999999";
    c["id"] = id;
    c["revision"] = 999999;
    cases.push_back({"second claim", id + ".manifest.json", c.dump()});
  }
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    WriteFile(r + "/" + c.file, c.body);
    std::vector<std::string> before = Tree(r);
    CmdResult prune = Etcdsafe({"prune", "--repo", Repo("c"), "--keep-last", "1"});
    EXPECT_EQ(prune.code, 1) << prune.err << prune.out;
    EXPECT_TRUE(IsOneLineError(prune)) << prune.err;
    EXPECT_TRUE(Contains(prune.err, "invalid manifest")) << prune.err;
    EXPECT_TRUE(Contains(prune.err, "nothing was removed")) << prune.err;
    EXPECT_EQ(Tree(r), before);
    // The bad one is never restored; valid backups still are, by id and as latest.
    std::string bad_id = c.file.substr(0, c.file.size() - std::string(".manifest.json").size());
    CmdResult bad = Etcdsafe({"restore", "--repo", Repo("c"), "--backup", bad_id, "--data-dir", dir_.Sub("never")});
    EXPECT_EQ(bad.code, 1) << bad.err;
    EXPECT_FALSE(PathExists(dir_.Sub("never")));
    ::unlink((r + "/" + c.file).c_str());
  }
  // The second-claim case made the real newest manifest invalid too while it was there.
  CmdResult ok = Etcdsafe({"prune", "--repo", Repo("c"), "--keep-last", "1"});
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_TRUE(Contains(ok.out, "keep    " + newest_id)) << ok.out;
  EXPECT_EQ(Etcdsafe({"backups", "verify", "--repo", Repo("c")}).code, 0);
}

// I2: every field is range-checked and duplicate keys are refused.
TEST_F(RepoSafety, I2_OutOfRangeNumbersAndDuplicateKeysMakeAManifestInvalid) {
  const std::string r = dir_.Sub("n");
  Backup(Repo("n"));
  const std::string file = WithSuffix(r, ".manifest.json")[0];
  const std::string good = ReadFile(r + "/" + file);
  struct Case {
    std::string what, body, expect;
  };
  auto m = Manifest(r + "/" + file);
  std::vector<Case> cases;
  {
    auto c = m;
    c["db_size"] = -1;
    cases.push_back({"db_size -1", c.dump(), "db_size"});
  }
  {
    auto c = m;
    c["db_size"] = 18446744073709551615ull;
    cases.push_back({"db_size 2^64-1", c.dump(), "db_size"});
  }
  {
    std::string body = good;
    size_t at = body.find("\"time_unix\": ") + 13;
    body.replace(at, body.find(',', at) - at, "1e300");
    cases.push_back({"time 1e300", body, "time_unix"});
  }
  {
    std::string body = good;
    body.insert(1, "\"revision\": 1,");
    cases.push_back({"duplicate key", body, "duplicate key"});
  }
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    WriteFile(r + "/" + file, c.body);
    CmdResult list = Etcdsafe({"backups", "list", "--repo", Repo("n"), "-w", "table"});
    EXPECT_EQ(list.code, 0) << list.err;
    EXPECT_FALSE(Contains(list.out, "EB")) << list.out;
    EXPECT_TRUE(Contains(list.err, "invalid manifest")) << list.err;
    EXPECT_TRUE(Contains(list.err, c.expect)) << list.err;
    CmdResult restore = Etcdsafe({"restore", "--repo", Repo("n"), "--data-dir", dir_.Sub("never")});
    EXPECT_NE(restore.code, 0);
    EXPECT_FALSE(PathExists(dir_.Sub("never")));
  }
}

// I3: an encrypted backup's manifest is authenticated: a forged or rolled-back one is
// refused; without encryption, restore compares the restored db with the manifest.
TEST_F(RepoSafety, I3_ForgedManifestIsRefusedWithAndWithoutEncryption) {
  for (bool encrypted : {true, false}) {
    SCOPED_TRACE(encrypted ? "encrypted" : "plain");
    const std::string name = encrypted ? "fe" : "fp";
    const std::string r = dir_.Sub(name);
    std::vector<std::string> key;
    if (encrypted) key = {"--encryption-key-file", Key()};
    Backup(Repo(name), key);
    std::string old_manifest = r + "/" + WithSuffix(r, ".manifest.json")[0];
    for (int i = 0; i < 30; i++) Put("/registry/secrets/default/s-" + std::to_string(i), "v");
    Backup(Repo(name), key);
    auto old_m = Manifest(old_manifest);
    std::string newest_file = WithSuffix(r, ".manifest.json")[1];
    auto new_m = Manifest(r + "/" + newest_file);
    ASSERT_NE(old_m["revision"], new_m["revision"]);
    // Dated 2030, pointing at (a copy of) the older object, claiming the newer revision.
    const std::string stem = "etcd-snapshot-20300101-000000";
    const std::string ext = encrypted ? ".db.zst.enc" : ".db.zst";
    fs::copy_file(r + "/" + old_m["data_object"].get<std::string>(), r + "/" + stem + ext);
    auto forged = old_m;
    forged["id"] = stem + "-r" + std::to_string(new_m["revision"].get<int64_t>());
    forged["time"] = "2030-01-01T00:00:00Z";
    forged["time_unix"] = 1893456000;
    forged["data_object"] = stem + ext;
    forged["revision"] = new_m["revision"];
    forged["total_keys"] = new_m["total_keys"];
    WriteFile(r + "/" + forged["id"].get<std::string>() + ".manifest.json", forged.dump(2));
    CmdResult restore = Etcdsafe(Concat({"restore", "--repo", Repo(name), "--backup", "latest", "--data-dir", dir_.Sub(name + "-out")}, key));
    EXPECT_EQ(restore.code, encrypted ? 12 : 1) << restore.err;
    EXPECT_TRUE(IsOneLineError(restore)) << restore.err;
    EXPECT_TRUE(Contains(restore.err, encrypted ? "manifest authentication failed" : "the manifest says")) << restore.err;
    EXPECT_FALSE(PathExists(dir_.Sub(name + "-out")));
    // The genuine newest backup restores by id.
    std::string id = newest_file.substr(0, newest_file.size() - 14);
    CmdResult good = Etcdsafe(Concat({"restore", "--repo", Repo(name), "--backup", id, "--data-dir", dir_.Sub(name + "-ok")}, key));
    EXPECT_EQ(good.code, 0) << good.err;
    if (encrypted) {
      CmdResult verify = Etcdsafe(Concat({"backups", "verify", "--repo", Repo(name)}, key));
      EXPECT_EQ(verify.code, 1) << verify.out;
      EXPECT_TRUE(Contains(verify.out, "DAMAGED  " + forged["id"].get<std::string>())) << verify.out;
    }
  }
}

// restore --repo proves the decoded db by its content hash (etcdctl's status hash of every
// key and value) against the manifest, not by a sha256 of the decoded bytes: a plain
// manifest whose status_hash was altered refuses to restore, and nothing is left behind.
TEST_F(RepoSafety, I3_RestoreComparesTheDecodedContentHashWithTheManifest) {
  const std::string r = dir_.Sub("sh");
  Backup(Repo("sh"));
  const std::string path = r + "/" + WithSuffix(r, ".manifest.json")[0];
  auto m = Manifest(path);
  const uint32_t hash = m["status_hash"].get<uint32_t>();
  m["status_hash"] = hash ^ 1u;
  WriteFile(path, m.dump(2));
  CmdResult bad = Etcdsafe({"restore", "--repo", Repo("sh"), "--data-dir", dir_.Sub("sh-out")});
  EXPECT_EQ(bad.code, 1) << bad.err;
  EXPECT_TRUE(IsOneLineError(bad)) << bad.err;
  EXPECT_TRUE(Contains(bad.err, "decoded db has revision") && Contains(bad.err, "hash " + std::to_string(hash) + ";"))
      << bad.err;
  EXPECT_FALSE(PathExists(dir_.Sub("sh-out")));
  m["status_hash"] = hash;
  WriteFile(path, m.dump(2));
  CmdResult good = Etcdsafe({"restore", "--repo", Repo("sh"), "--data-dir", dir_.Sub("sh-ok")});
  EXPECT_EQ(good.code, 0) << good.err;
}

// I4: reads are bounded by the manifest: a decompression bomb stops at db_size.
TEST_F(RepoSafety, I4_DecompressionBombStopsAtTheManifestsDbSize) {
  for (const std::string codec : {"zstd", "gzip"}) {
    SCOPED_TRACE(codec);
    const std::string name = "bomb-" + codec;
    const std::string r = dir_.Sub(name);
    Backup(Repo(name), {"--compression", codec});
    std::string file = WithSuffix(r, ".manifest.json")[0];
    auto m = Manifest(r + "/" + file);
    const std::string data = r + "/" + m["data_object"].get<std::string>();
    // 256 MiB of zeros in a few hundred KB.
    ASSERT_EQ(Shell("head -c 268435456 /dev/zero | " + std::string(codec == "zstd" ? "zstd -q -c" : "gzip -c") +
                    " > " + ShellQuote(data)).code, 0);
    CmdResult sum = Shell("sha256sum " + ShellQuote(data) + " | cut -c1-64");
    m["stored_sha256"] = sum.out.substr(0, 64);
    m["stored_size"] = fs::file_size(data);
    m["db_size"] = 24576;
    WriteFile(r + "/" + file, m.dump(2));
    WriteFile(data + ".sha256", sum.out.substr(0, 64) + "  " + m["data_object"].get<std::string>() + "\n");
    auto start = std::chrono::steady_clock::now();
    CmdResult restore = Etcdsafe({"restore", "--repo", Repo(name), "--data-dir", dir_.Sub(name + "-out")});
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(restore.code, 1) << restore.err;
    EXPECT_TRUE(Contains(restore.err, "more than the manifest's db_size (24576 bytes)")) << restore.err;
    EXPECT_LT(secs, 10.0);
    EXPECT_FALSE(PathExists(dir_.Sub(name + "-out")));
    // verify stops at the first page that is not a db, or at db_size: never reads it all.
    start = std::chrono::steady_clock::now();
    CmdResult verify = Etcdsafe({"backups", "verify", "--repo", Repo(name)});
    EXPECT_EQ(verify.code, 1);
    EXPECT_TRUE(Contains(verify.out, "DAMAGED")) << verify.out;
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 10.0);
  }
}

// I4: file:// objects are regular files: a symlink to /dev/zero or a FIFO is refused at once.
TEST_F(RepoSafety, I4_SymlinkAndFifoDataObjectsAreRefusedAtOnce) {
  const std::string r = dir_.Sub("s");
  Backup(Repo("s"));
  auto m = Manifest(r + "/" + WithSuffix(r, ".manifest.json")[0]);
  const std::string data = r + "/" + m["data_object"].get<std::string>();
  for (const char* how : {"symlink", "fifo"}) {
    SCOPED_TRACE(how);
    ::unlink(data.c_str());
    if (std::string(how) == "symlink") {
      ASSERT_EQ(::symlink("/dev/zero", data.c_str()), 0);
    } else {
      ASSERT_EQ(::mkfifo(data.c_str(), 0600), 0);
    }
    CmdResult restore = Shell("timeout 20 " + std::string(ETCDSAFE_BINARY) + " restore --repo " + Repo("s") +
                              " --data-dir " + ShellQuote(dir_.Sub("never")));
    EXPECT_NE(restore.code, 0);
    EXPECT_NE(restore.code, 124) << "hung";
    CmdResult verify = Shell("timeout 20 " + std::string(ETCDSAFE_BINARY) + " backups verify --repo " + Repo("s"));
    EXPECT_EQ(verify.code, 1) << verify.out << verify.err;
    EXPECT_FALSE(PathExists(dir_.Sub("never")));
  }
}

// I5: verify checks the .sha256 sidecar; without a key, encrypted backups are "key
// required" (exit 12), not damaged.
TEST_F(RepoSafety, I5_VerifyChecksTheSidecarAndSaysWhenAKeyIsRequired) {
  const std::string r = dir_.Sub("v");
  Backup(Repo("v"), {"--encryption-key-file", Key()});
  CmdResult nokey = Etcdsafe({"backups", "verify", "--repo", Repo("v")});
  EXPECT_EQ(nokey.code, 12) << nokey.out << nokey.err;
  EXPECT_TRUE(Contains(nokey.out, "KEY?")) << nokey.out;
  EXPECT_FALSE(Contains(nokey.out, "DAMAGED")) << nokey.out;
  EXPECT_EQ(Etcdsafe({"backups", "verify", "--repo", Repo("v"), "--encryption-key-file", Key()}).code, 0);
  const std::string sidecar = r + "/" + WithSuffix(r, ".sha256")[0];
  const std::string saved = ReadFile(sidecar);
  WriteFile(sidecar, std::string(64, '0') + saved.substr(64));
  CmdResult zeroed = Etcdsafe({"backups", "verify", "--repo", Repo("v"), "--encryption-key-file", Key()});
  EXPECT_EQ(zeroed.code, 1);
  EXPECT_TRUE(Contains(zeroed.out, "sidecar")) << zeroed.out;
  EXPECT_NE(Shell("cd " + ShellQuote(r) + " && sha256sum -c --quiet *.sha256").code, 0);
  ::unlink(sidecar.c_str());
  CmdResult missing = Etcdsafe({"backups", "verify", "--repo", Repo("v"), "--encryption-key-file", Key()});
  EXPECT_EQ(missing.code, 1);
  EXPECT_TRUE(Contains(missing.out, "is missing")) << missing.out;
}

// I6: untrusted text never reaches the terminal raw.
TEST_F(RepoSafety, I6_ControlCharactersAreEscaped) {
  const std::string r = dir_.Sub("e");
  Backup(Repo("e"));
  std::string file = WithSuffix(r, ".manifest.json")[0];
  auto m = Manifest(r + "/" + file);
  m["id"] = "x\x1b[31mRED\nok       etcd-snapshot-FAKE";
  WriteFile(r + "/" + file, m.dump());
  WriteFile(r + "/etcd-snapshot-\x1b[2J\nok etcd-snapshot-FAKE.manifest.json", "{}");
  for (const auto& args : std::vector<std::vector<std::string>>{{"backups", "list", "--repo", Repo("e")},
                                                                 {"backups", "verify", "--repo", Repo("e")},
                                                                 {"prune", "--repo", Repo("e"), "--keep-last", "1"}}) {
    CmdResult c = Etcdsafe(args);
    EXPECT_FALSE(Contains(c.out + c.err, "\x1b")) << c.out << c.err;
    EXPECT_FALSE(Contains(c.out + c.err, "\nok       etcd-snapshot-FAKE")) << c.out << c.err;
  }
}

// I7: a backup killed with SIGKILL leaves an intent record; the next prune removes what
// it names (and the file store's temporaries), and nothing that is not provably ours.
// Kills `etcdsafe backup` into the file:// repository `name` with SIGKILL while its data
// object is a store temporary; true when that happened (an intent record and the
// temporary were left).
bool KillBackupMidStream(RepoSafety& t, const std::string& name);

TEST_F(RepoSafety, I7_PruneRemovesWhatAKilledBackupLeftAndOnlyThat) {
  const std::string r = dir_.Sub("k");
  Backup(Repo("k"));
  ASSERT_TRUE(KillBackupMidStream(*this, "k")) << "could not kill a backup mid-stream";
  bool temp = false;
  for (const auto& f : Tree(r)) temp = temp || Contains(f, ".tmp-");
  EXPECT_TRUE(temp);
  WriteFile(r + "/etcd-snapshot-20200101-000000.db", "a user's file that only looks like ours");
  CmdResult prune = Etcdsafe({"prune", "--repo", Repo("k"), "--keep-last", "5"});
  ASSERT_EQ(prune.code, 0) << prune.err << prune.out;
  EXPECT_TRUE(Contains(prune.out, "left by an interrupted backup")) << prune.out;
  EXPECT_TRUE(Contains(prune.err, "left alone: etcd-snapshot-20200101-000000.db")) << prune.err;
  for (const auto& f : Tree(r)) {
    EXPECT_FALSE(Contains(f, ".tmp-")) << f;
    EXPECT_FALSE(Contains(f, ".pending")) << f;
  }
  EXPECT_TRUE(PathExists(r + "/etcd-snapshot-20200101-000000.db"));
  EXPECT_EQ(WithSuffix(r, ".db.zst").size(), 1u);
  EXPECT_EQ(WithSuffix(r, ".db.gz").size(), 0u);
  EXPECT_EQ(Etcdsafe({"backups", "verify", "--repo", Repo("k")}).code, 0);
  CmdResult dry = Etcdsafe({"prune", "--repo", Repo("k"), "--keep-last", "5", "--dry-run"});
  EXPECT_EQ(dry.code, 0) << dry.err;
}

bool KillBackupMidStream(RepoSafety& t, const std::string& name) {
  const std::string r = t.dir_.Sub(name);
  // Large, poorly compressible values so the stream takes a while at gzip -9.
  std::mt19937 rng(7);
  for (int i = 0; i < 8; i++) {
    std::string v(1 << 20, 'a');
    for (char& c : v) c = static_cast<char>('a' + rng() % 16);
    t.Put("/big/" + std::to_string(i), v);
  }
  for (int attempt = 0; attempt < 5; attempt++) {
    // As soon as the data temporary appears the backup is stopped (SIGSTOP), so the state
    // checked is the state the kill lands on, however loaded the machine is: the data
    // object's temporary and a committed intent record (not the intent record's own
    // temporary, which ".pending.tmp-..." would also match).
    const std::string q = ShellQuote(r);
    std::string cmd = std::string(ETCDSAFE_BINARY) + " backup --repo " + t.Repo(name) +
                      " --compression gzip --compression-level 9 --endpoints " + t.server_->client_url() +
                      " >/dev/null 2>&1 & pid=$!; "
                      "for i in $(seq 1 2000); do ls " + q + " | grep -Eq '\\.db(\\.gz)?\\.tmp-' && break; sleep 0.002; done; "
                      "kill -STOP $pid; "
                      "if ls " + q + " | grep -Eq '\\.db(\\.gz)?\\.tmp-' && ls " + q + " | grep -q '\\.pending$'; then echo midstream; fi; "
                      "kill -9 $pid; wait $pid; echo $?";
    CmdResult k = Shell(cmd);
    if (Contains(k.out, "midstream") && Contains(k.out, "137")) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // a new second: a new backup name
  }
  return false;
}

// Defect 5 of issue 7: the next backup, taking over the killed run's stale lock, removes
// the store temporaries that run left (up to a whole backup in size), not only prune.
TEST_F(RepoSafety, I7_StaleLockTakeoverRemovesTheKilledRunsTemporaries) {
  const std::string r = dir_.Sub("t");
  Backup(Repo("t"));
  ASSERT_TRUE(KillBackupMidStream(*this, "t")) << "could not kill a backup mid-stream";
  bool temp = false;
  for (const auto& f : Tree(r)) temp = temp || Contains(f, ".tmp-");
  ASSERT_TRUE(temp);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // a new second: a new backup name
  CmdResult b = Etcdsafe({"backup", "--repo", Repo("t"), "--endpoints", server_->client_url()});
  ASSERT_EQ(b.code, 0) << b.err << b.out;
  EXPECT_TRUE(Contains(b.err, "uncommitted temporary of the run whose lock was stale")) << b.err;
  for (const auto& f : Tree(r)) EXPECT_FALSE(Contains(f, ".tmp-")) << f;
  // The intent record and its data stay for prune, which proves them.
  EXPECT_FALSE(WithSuffix(r, ".pending").empty());
  EXPECT_EQ(Etcdsafe({"backups", "verify", "--repo", Repo("t")}).code, 0);
}

// Locks: `prune --dry-run` takes no lock and removes nothing, not even a stale lock; it
// says what a real run would do about the locks it sees.
TEST_F(RepoSafety, PruneDryRunHasNoSideEffects) {
  const std::string r = dir_.Sub("d");
  Backup(Repo("d"));
  Backup(Repo("d"));
  MakeDirs(r + "/locks", 0700);
  // Stale by the store's clock: not written for two hours.
  WriteFile(r + "/locks/old.json", "{\"etcdsafe_lock\":1,\"operation\":\"backup\",\"host\":\"elsewhere\",\"pid\":7,"
            "\"boot_id\":\"x\",\"pid_ns\":1,\"pid_start\":0,\"since_unix\":1,\"refreshed_unix\":1,\"token\":\"t\"}\n");
  ASSERT_EQ(Shell("touch -d '2 hours ago' " + ShellQuote(r + "/locks/old.json")).code, 0);
  std::vector<std::string> before = Tree(r);
  struct stat st_before {};
  ASSERT_EQ(::stat((r + "/locks").c_str(), &st_before), 0);
  CmdResult dry = Etcdsafe({"prune", "--repo", Repo("d"), "--keep-last", "1", "--dry-run"});
  ASSERT_EQ(dry.code, 0) << dry.err;
  EXPECT_TRUE(Contains(dry.out, "would remove")) << dry.out;
  EXPECT_TRUE(Contains(dry.err, "stale lock locks/old.json")) << dry.err;
  EXPECT_EQ(Tree(r), before);
  struct stat st_after {};
  ASSERT_EQ(::stat((r + "/locks").c_str(), &st_after), 0);
  EXPECT_EQ(st_before.st_mtim.tv_sec, st_after.st_mtim.tv_sec);
  EXPECT_EQ(st_before.st_mtim.tv_nsec, st_after.st_mtim.tv_nsec) << "a lock was written and removed";
  CmdResult real = Etcdsafe({"prune", "--repo", Repo("d"), "--keep-last", "1"});
  ASSERT_EQ(real.code, 0) << real.err;
  EXPECT_TRUE(Contains(real.err, "removed stale lock")) << real.err;
  EXPECT_FALSE(PathExists(r + "/locks/old.json"));
}

}  // namespace
}  // namespace etcdsafe
