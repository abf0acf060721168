// The golden vectors of spec §7.3, §9.1 and §9.2 (all captured from etcdctl 3.4.23).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "base/checksum.h"
#include "base/file.h"
#include "etcdfmt/membership.h"
#include "etcdfmt/snap.h"
#include "etcdfmt/v2store.h"
#include "etcdfmt/wal.h"
#include "test_helpers.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::etcdfmt {
namespace {

using test::FromHex;
using test::Sha256FileHex;
using test::Sha256Hex;

RestoreCluster Default() {
  return BuildRestoreCluster("default", "default=http://localhost:2380", "etcd-cluster",
                             "http://localhost:2380");
}
RestoreCluster Three() {
  return BuildRestoreCluster(
      "b", "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380,b=https://10.0.0.2:2381,c=http://10.0.0.3:2380",
      "tok3", "https://10.0.0.2:2381,http://10.0.0.2:2380");
}

const char kDefaultWalHead[] = R"(
04 00 00 00 00 00 00 84 08 04 10 00 00 00 00 00
20 00 00 00 00 00 00 00 08 01 10 bb 81 c7 fc 05
1a 16 08 cd d2 91 8b d2 b8 81 cf 8e 01 10 b2 98
ea f1 94 83 86 fc cd 01 0e 00 00 00 00 00 00 82
08 05 10 94 bb c7 ed 0e 1a 04 08 00 10 00 00 00
74 00 00 00 00 00 00 84 08 02 10 c2 ee 92 95 0b
1a 6a 08 01 10 01 18 01 22 62 08 00 10 00 18 cd
d2 91 8b d2 b8 81 cf 8e 01 22 51 7b 22 69 64 22
3a 31 30 32 37 36 36 35 37 37 34 33 39 33 32 39
37 35 34 33 37 2c 22 70 65 65 72 55 52 4c 73 22
3a 5b 22 68 74 74 70 3a 2f 2f 6c 6f 63 61 6c 68
6f 73 74 3a 32 33 38 30 22 5d 2c 22 6e 61 6d 65
22 3a 22 64 65 66 61 75 6c 74 22 7d 00 00 00 00
19 00 00 00 00 00 00 87 08 03 10 9b 98 d6 c3 08
1a 0f 08 01 10 cd d2 91 8b d2 b8 81 cf 8e 01 18
01 00 00 00 00 00 00 00 0e 00 00 00 00 00 00 82
08 05 10 b8 e0 e0 e1 06 1a 04 08 01 10 01 00 00
)";

TEST(GoldenTest, DefaultWalBytes) {
  std::string wal = EncodeRestoreWal(Default());
  std::string head = FromHex(kDefaultWalHead);
  ASSERT_EQ(head.size(), 272u);
  // The golden dump ends with 2 bytes of the next (zero) region; the used part is 270
  // bytes rounded to 8 = 272.
  EXPECT_EQ(wal.size(), 272u);
  EXPECT_EQ(HexBytes(AsBytes(wal)), HexBytes(AsBytes(head)));
}

TEST(GoldenTest, DefaultWalRunningCrcs) {
  WalContents c;
  std::string wal = EncodeRestoreWal(Default());
  // Decode record by record and collect the crc field of each record.
  std::vector<uint32_t> crcs;
  ByteReader r(AsBytes(wal), "wal");
  while (r.remaining() >= 8) {
    uint64_t len = r.LE64();
    uint64_t n = len & ((uint64_t(1) << 56) - 1);
    uint64_t pad = (len >> 63) ? (len >> 56) & 7 : 0;
    crcs.push_back(DecodeWalRecord(r.Take(n)).crc);
    r.Take(pad);
  }
  EXPECT_EQ(crcs, (std::vector<uint32_t>{0, 0x5f91c0bb, 0xedb1dd94, 0xb2a4b742, 0x88758c1b,
                                         0x6c383038}));
  DecodeWalSegment(AsBytes(wal), "wal", &c);
  EXPECT_EQ(c.crc, 0x6c383038u);
}

TEST(GoldenTest, DefaultWalFile) {
  testutil::TempDir tmp;
  std::string wal_dir = tmp.Sub("data/member/wal");
  CreateRestoreWal(wal_dir, Default());
  std::string path = wal_dir + "/0000000000000000-0000000000000000.wal";
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 64000000);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(::stat(wal_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_FALSE(PathExists(wal_dir + ".tmp"));
  EXPECT_EQ(Sha256FileHex(path), "73fd7868675205938f74fe11200674fec6b6704f3a3e0412e55e4ded923099f3");
  // A second create over an existing WAL is refused.
  EXPECT_THROW(CreateRestoreWal(wal_dir, Default()), Error);
}

TEST(GoldenTest, ThreeMemberWalFile) {
  testutil::TempDir tmp;
  std::string wal_dir = tmp.Sub("wal");
  CreateRestoreWal(wal_dir, Three());
  EXPECT_EQ(Sha256FileHex(wal_dir + "/0000000000000000-0000000000000000.wal"),
            "17f01bd532174d79c4a5883d345465d6d879925970bf43f9f05e4530a74fbbb5");
  WalContents c = ReadWal(wal_dir);
  ASSERT_TRUE(c.metadata);
  EXPECT_EQ(c.metadata->node_id, 0x2c0b7e8b59ef1eabULL);
  EXPECT_EQ(c.metadata->cluster_id, 0x228b779f4a403376ULL);
  ASSERT_EQ(c.entries.size(), 3u);
  ConfChange cc = DecodeConfChange(AsBytes(*c.entries[0].data));
  EXPECT_EQ(*cc.context,
            R"({"id":3173769499387043499,"peerURLs":["http://10.0.0.2:2380","https://10.0.0.2:2381"],"name":"b"})");
  ASSERT_TRUE(c.hard_state);
  EXPECT_EQ(*c.hard_state, (HardState{1, 0x2c0b7e8b59ef1eabULL, 3}));
}

TEST(GoldenTest, DefaultV2StoreJson) {
  std::string json = RestoreV2StoreJson(Default());
  EXPECT_EQ(json.size(), 6457u);
  EXPECT_EQ(Sha256Hex(json), "91d7bbbd7a7e8d1e2cfa9b797bfa3d06a07ed0312463a571a03d02fca1efeb4f");
}

TEST(GoldenTest, DefaultSnapFile) {
  RestoreCluster c = Default();
  Snapshot s = RestoreSnapshot(c);
  EXPECT_EQ(HexBytes(AsBytes(Encode(s.metadata))), "0a0d08cdd2918bd2b881cf8e012800" "10011801");
  std::string raft = Encode(s);
  EXPECT_EQ(raft.size(), 6481u);
  EXPECT_EQ(Crc32c(AsBytes(raft)), 0x11e07c36u);

  testutil::TempDir tmp;
  mode_t old = ::umask(022);
  std::string path = WriteRestoreSnap(tmp.path(), c);
  ::umask(027);
  std::string path2 = WriteRestoreSnap(tmp.Sub(""), c);  // same name: overwritten
  struct stat st2;
  ASSERT_EQ(::stat(path2.c_str(), &st2), 0);
  EXPECT_EQ(st2.st_mode & 07777, 0640u);
  ::umask(022);
  path = WriteRestoreSnap(tmp.path(), c);
  ::umask(old);
  EXPECT_EQ(path, tmp.Sub("0000000000000001-0000000000000001.snap"));
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 6490);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(Sha256FileHex(path), "391e233526d2ed237b95d33b9d3c7975cf3db23b1913a478baacdeee4177b533");
  EXPECT_EQ(ReadSnapFile(path), s);
}

TEST(GoldenTest, ThreeMemberSnapFile) {
  testutil::TempDir tmp;
  std::string path = WriteRestoreSnap(tmp.path(), Three());
  EXPECT_EQ(path, tmp.Sub("0000000000000001-0000000000000003.snap"));
  std::string bytes = testutil::ReadFile(path);
  EXPECT_EQ(bytes.size(), 7610u);
  EXPECT_EQ(Sha256Hex(bytes), "4c41f46fc27259cbb1fb88537401b92e227c590a6052e75ea551c7dfd6f343e8");
  Snapshot s = ReadSnapFile(path);
  EXPECT_EQ(s.metadata.conf_state.voters,
            (std::vector<uint64_t>{0x2c0b7e8b59ef1eabULL, 0x64a12af469d3c35eULL, 0xba3d8e585d4e3172ULL}));
  EXPECT_EQ(s.metadata.index, 3u);
  EXPECT_EQ(s.metadata.term, 1u);
}

}  // namespace
}  // namespace etcdsafe::etcdfmt
