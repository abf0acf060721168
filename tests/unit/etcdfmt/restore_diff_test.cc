// Differential tests against the real `etcdctl snapshot restore` (3.4.23): for several
// flag sets, our WAL and .snap must be byte-identical to etcdctl's, and for bad flags our
// error text must equal what etcdctl prints after "Error: ".
#include <gtest/gtest.h>

#include <optional>

#include "base/error.h"
#include "base/file.h"
#include "etcdfmt/membership.h"
#include "etcdfmt/snap.h"
#include "etcdfmt/wal.h"
#include "test_helpers.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::etcdfmt {
namespace {

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out.push_back(c);
  }
  return out + "'";
}

struct Flags {
  std::string name = "default";
  std::string cluster = "default=http://localhost:2380";
  std::string token = "etcd-cluster";
  std::string advertise = "http://localhost:2380";
};

std::string SmallDb() { return std::string(ETCDSAFE_SOURCE_DIR) + "/tests/testdata/small.db"; }

// Runs etcdctl; returns "" on success, else the text after "Error: ".
std::string RunEtcdctl(const Flags& f, const std::string& data_dir) {
  std::string cmd = "ETCDCTL_API=3 etcdctl snapshot restore " + ShellQuote(SmallDb()) +
                    " --data-dir " + ShellQuote(data_dir) + " --name " + ShellQuote(f.name) +
                    " --initial-cluster " + ShellQuote(f.cluster) + " --initial-cluster-token " +
                    ShellQuote(f.token) + " --initial-advertise-peer-urls " + ShellQuote(f.advertise);
  std::string out;
  int rc = testutil::RunCommand(cmd, &out);
  if (rc == 0) return "";
  size_t p = out.find("Error: ");
  if (p == std::string::npos) return "<etcdctl failed without Error: line: " + out + ">";
  std::string msg = out.substr(p + 7);
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  return msg;
}

void ExpectSameFile(const std::string& theirs, const std::string& ours) {
  std::string a = testutil::ReadFile(theirs);
  std::string b = testutil::ReadFile(ours);
  ASSERT_EQ(a.size(), b.size()) << theirs;
  if (a != b) {
    size_t i = 0;
    while (a[i] == b[i]) i++;
    FAIL() << "first difference at byte " << i << " of " << theirs << ": etcdctl "
           << HexBytes(AsBytes(std::string_view(a).substr(i, 32))) << " ours "
           << HexBytes(AsBytes(std::string_view(b).substr(i, 32)));
  }
}

void CheckSameAsEtcdctl(const Flags& f) {
  testutil::TempDir tmp;
  std::string ref = tmp.Sub("ref");
  std::string err = RunEtcdctl(f, ref);
  ASSERT_EQ(err, "") << "etcdctl refused the flags";

  RestoreCluster c = BuildRestoreCluster(f.name, f.cluster, f.token, f.advertise);
  std::string mine = tmp.Sub("mine/member");
  CreateRestoreWal(mine + "/wal", c);
  MakeDirs(mine + "/snap", 0700);
  std::string snap = WriteRestoreSnap(mine + "/snap", c);

  std::string wal_name = "/member/wal/0000000000000000-0000000000000000.wal";
  ExpectSameFile(ref + wal_name, mine + "/wal/0000000000000000-0000000000000000.wal");
  std::string snap_name = SnapFileName(1, c.members.size());
  ExpectSameFile(ref + "/member/snap/" + snap_name, snap);

  // Our reader agrees with what etcdctl wrote.
  WalContents w = ReadWal(ref + "/member/wal");
  ASSERT_TRUE(w.metadata);
  EXPECT_EQ(w.metadata->node_id, c.local_id);
  EXPECT_EQ(w.metadata->cluster_id, c.cluster_id);
  EXPECT_EQ(w.entries.size(), c.members.size());
  Snapshot s = ReadSnapFile(ref + "/member/snap/" + snap_name);
  EXPECT_EQ(s.metadata.index, c.members.size());
}

TEST(RestoreDiffTest, Default) { CheckSameAsEtcdctl(Flags{}); }

TEST(RestoreDiffTest, ThreeMembersMultipleUnsortedUrls) {
  Flags f;
  f.name = "m2";
  f.cluster =
      "m3=http://127.0.0.3:2380,m2=https://127.0.0.2:2390,m1=http://127.0.0.1:2380,"
      "m2=http://127.0.0.2:2380,m1=unix://sock1:1";
  f.token = "tok-3";
  f.advertise = "https://127.0.0.2:2390, http://127.0.0.2:2380";
  CheckSameAsEtcdctl(f);
}

TEST(RestoreDiffTest, OddCharactersInNamesTokenAndUrls) {
  Flags f;
  f.name = "we\"ird<&>\xc3\xa9\\\xe2\x80\xa8";
  f.cluster = f.name + "=HTTP://127.0.0.1:12380,other\x01\xff=http://h\xc3\xa9st:1";
  f.token = "t\"ok<\xe2\x80\xa9>&";
  f.advertise = "http://127.0.0.1:12380";
  CheckSameAsEtcdctl(f);
}

TEST(RestoreDiffTest, IdsWithDifferentHexLengths) {
  // With token "hex2" the member on :22382 has the 15-digit id a544528fb2de046: smallest
  // numerically (index 1) but last in lexicographic (JSON Children) order.
  Flags f;
  f.name = "n1";
  f.cluster = "n1=http://127.0.0.1:22380,n2=http://127.0.0.1:22381,n3=http://127.0.0.1:22382";
  f.token = "hex2";
  f.advertise = "http://127.0.0.1:22380";
  RestoreCluster c = BuildRestoreCluster(f.name, f.cluster, f.token, f.advertise);
  ASSERT_EQ(HexNoPad(c.members[0].id), "a544528fb2de046");
  CheckSameAsEtcdctl(f);
}

TEST(RestoreDiffTest, UserinfoQueryAndIpv6) {
  Flags f;
  f.name = "x";
  f.cluster = "x=http://[::1]:2380,y=https://u:p%40w@h:1?q=1#frag";
  f.advertise = "http://[::1]:2380";
  CheckSameAsEtcdctl(f);
}

TEST(RestoreDiffTest, ValidationErrorsSameText) {
  std::vector<Flags> cases;
  auto add = [&](std::string name, std::string cluster, std::string adv) {
    Flags f;
    f.name = std::move(name);
    f.cluster = std::move(cluster);
    f.advertise = std::move(adv);
    cases.push_back(f);
  };
  const std::string lh = "http://localhost:2380";
  add("default", "default=ftp://localhost:2380", lh);                    // bad scheme
  add("default", "default=localhost:2380", lh);                          // no scheme
  add("default", "default=http://localhost:2380/x", lh);                 // path
  add("default", "default=http://localhost", lh);                        // no port
  add("default", "default=http://a:1:2", lh);                            // too many colons
  add("nobody", "default=http://localhost:2380", lh);                    // name missing
  add("default", "default=http://localhost:2380", "http://127.0.0.1:2380");  // mismatch
  add("default", "default=http://localhost:2380", lh + ",http://127.0.0.1:2380");
  add("default", "default=http://localhost:2380,default=http://localhost:2381", lh);
  add("default", "default=http://localhost:2380,dup=http://localhost:2380", lh);  // dup url
  add("default", "default=http://localhost:2380", "http://localhost:2380,");
  add("default", "default=http://host name:2380", lh);
  add("default", "default=http://h%zz:1", lh);
  add("default", "default=http://[::1:2380", lh);
  add("default", "default=http://h:1x", lh);
  add("default", "default", lh);                                         // no '='
  add("default", "default=http://u\xc3\xa9@h:1", lh);                    // bad userinfo
  for (const Flags& f : cases) {
    testutil::TempDir tmp;
    std::string theirs = RunEtcdctl(f, tmp.Sub("d"));
    std::string ours;
    try {
      BuildRestoreCluster(f.name, f.cluster, f.token, f.advertise);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      ours = e.what();
    }
    EXPECT_NE(theirs, "") << f.cluster;
    EXPECT_EQ(ours, theirs) << "cluster=" << f.cluster << " advertise=" << f.advertise;
  }
}

}  // namespace
}  // namespace etcdsafe::etcdfmt
