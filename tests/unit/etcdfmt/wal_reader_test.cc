// WalReader / snap reader robustness: corrupt, truncated and oversized input is reported
// as kDataLoss with the file and offset, never a crash.
#include <gtest/gtest.h>

#include "base/checksum.h"
#include "base/error.h"
#include "base/file.h"
#include "etcdfmt/membership.h"
#include "etcdfmt/snap.h"
#include "etcdfmt/wal.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::etcdfmt {
namespace {

RestoreCluster Three() {
  return BuildRestoreCluster(
      "b", "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380,b=https://10.0.0.2:2381,c=http://10.0.0.3:2380",
      "tok3", "https://10.0.0.2:2381,http://10.0.0.2:2380");
}

std::string DataLossOf(const std::string& bytes) {
  WalContents c;
  try {
    DecodeWalSegment(AsBytes(bytes), "seg.wal", &c);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
    return e.what();
  }
  return "";
}

TEST(WalReaderTest, RoundTrip) {
  RestoreCluster rc = Three();
  std::string wal = EncodeRestoreWal(rc, 1, /*with_conf_state=*/true);
  WalContents c;
  DecodeWalSegment(AsBytes(wal), "seg.wal", &c);
  EXPECT_EQ(c.records, 8u);
  ASSERT_EQ(c.snapshots.size(), 2u);
  EXPECT_EQ(c.snapshots[0], (WalSnapshot{0, 0, std::nullopt}));
  ASSERT_TRUE(c.snapshots[1].conf_state);
  EXPECT_EQ(c.snapshots[1].conf_state->voters.size(), 3u);
  EXPECT_EQ(c.snapshots[1].index, 3u);
  for (size_t i = 0; i < 3; i++) {
    EXPECT_EQ(c.entries[i].index, i + 1);
    EXPECT_EQ(c.entries[i].type, kEntryConfChange);
    ConfChange cc = DecodeConfChange(AsBytes(*c.entries[i].data));
    EXPECT_EQ(cc.node_id, rc.members[i].id);
    EXPECT_EQ(*cc.context, MemberJson(rc.members[i]));
  }
  // Zero tail (preallocation) ends the log.
  std::string padded = wal + std::string(4096, '\0');
  WalContents c2;
  DecodeWalSegment(AsBytes(padded), "seg.wal", &c2);
  EXPECT_EQ(c2.records, 8u);
}

TEST(WalReaderTest, EveryFlippedByteIsDetected) {
  std::string wal = EncodeRestoreWal(Three());
  // Flipping any bit of a record body must be caught (CRC or framing/decoding), except
  // bytes of padding, which carry no data.
  size_t detected = 0, total = 0;
  for (size_t i = 0; i < wal.size(); i++) {
    std::string bad = wal;
    bad[i] ^= 0x01;
    total++;
    if (!DataLossOf(bad).empty()) detected++;
  }
  // Padding bytes and the crc record's own varint are the only undetectable spots.
  EXPECT_GT(detected, total * 9 / 10) << detected << "/" << total;
}

TEST(WalReaderTest, FlippedDataByteIsCrcMismatch) {
  std::string wal = EncodeRestoreWal(Three());
  size_t p = wal.find("\"name\":\"b\"");
  ASSERT_NE(p, std::string::npos);
  wal[p + 9] = 'X';
  std::string err = DataLossOf(wal);
  EXPECT_NE(err.find("seg.wal at offset"), std::string::npos) << err;
  EXPECT_NE(err.find("crc mismatch"), std::string::npos) << err;
}

TEST(WalReaderTest, TruncationIsDetected) {
  std::string wal = EncodeRestoreWal(Three());
  for (size_t n : {size_t(9), size_t(20), size_t(100), wal.size() - 1, wal.size() - 8}) {
    std::string err = DataLossOf(wal.substr(0, n));
    EXPECT_NE(err, "") << "truncated to " << n;
  }
}

TEST(WalReaderTest, HugeLengthRejectedWithoutAllocating) {
  std::string wal = EncodeRestoreWal(Three());
  std::string bad = wal.substr(0, 8);
  bad[6] = 0x7f;  // ~ 2^54 bytes
  bad += wal.substr(8);
  std::string err = DataLossOf(bad);
  EXPECT_NE(err.find("10 MiB"), std::string::npos) << err;
  // Just under the limit but larger than the file: truncated, not allocated.
  std::string bad2 = wal;
  StoreLE64(reinterpret_cast<uint8_t*>(bad2.data()), 10 * 1024 * 1024 - 1);
  EXPECT_NE(DataLossOf(bad2).find("truncated"), std::string::npos);
}

TEST(WalReaderTest, ConflictingMetadataAndCrcRecord) {
  RestoreCluster rc = Three();
  std::string wal = EncodeRestoreWal(rc);
  // Append a second segment-like crc record with a wrong value.
  std::string bad = wal + FrameWalRecord(WalRecord{kCrcType, 12345, std::nullopt});
  EXPECT_NE(DataLossOf(bad).find("crc record mismatch"), std::string::npos);
}

TEST(WalReaderTest, EntryIndexesLikeEtcd) {
  // Index 0 is at the start snapshot and skipped; a lower index replaces the tail.
  std::string wal;
  uint32_t crc = 0;
  auto add = [&](uint64_t index, const std::string& payload) {
    std::string d = Encode(Entry{1, index, kEntryNormal, payload});
    crc = Crc32cExtend(crc, AsBytes(d));
    wal += FrameWalRecord(WalRecord{kEntryType, crc, d});
  };
  add(0, "zero");
  add(1, "a");
  add(2, "b");
  add(3, "c");
  add(2, "b2");
  WalContents c;
  DecodeWalSegment(AsBytes(wal), "seg.wal", &c);
  ASSERT_EQ(c.entries.size(), 2u);
  EXPECT_EQ(*c.entries[0].data, "a");
  EXPECT_EQ(*c.entries[1].data, "b2");
}

TEST(WalReaderTest, DirectoryChecks) {
  testutil::TempDir tmp;
  std::string dir = tmp.Sub("wal");
  CreateRestoreWal(dir, Three());
  WalContents c = ReadWal(dir);
  EXPECT_EQ(c.segments, std::vector<std::string>{"0000000000000000-0000000000000000.wal"});
  // A gap in the sequence is refused.
  testutil::WriteFile(dir + "/0000000000000002-0000000000000005.wal", "");
  EXPECT_THROW(ReadWal(dir), Error);
  RemoveAll(dir + "/0000000000000002-0000000000000005.wal");
  testutil::WriteFile(dir + "/bogus.wal", "");
  EXPECT_THROW(ReadWal(dir), Error);
  EXPECT_THROW(ReadWal(tmp.Sub("missing")), Error);
}

TEST(SnapReaderTest, CorruptionDetected) {
  RestoreCluster rc = Three();
  std::string good = EncodeSnapFile(RestoreSnapshot(rc));
  EXPECT_EQ(DecodeSnapFile(AsBytes(good), "x.snap"), RestoreSnapshot(rc));
  auto code_of = [](const std::string& b) {
    try {
      DecodeSnapFile(AsBytes(b), "x.snap");
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::kInternal;
  };
  std::string flipped = good;
  flipped[good.size() / 2] ^= 0x20;
  EXPECT_EQ(code_of(flipped), ErrorCode::kDataLoss);
  EXPECT_EQ(code_of(good.substr(0, good.size() - 1)), ErrorCode::kDataLoss);
  EXPECT_EQ(code_of(""), ErrorCode::kDataLoss);
  EXPECT_EQ(code_of(EncodeSnappb(0, AsBytes(std::string("abc")))), ErrorCode::kDataLoss);
  EXPECT_EQ(code_of(std::string("\x08\x01", 2)), ErrorCode::kDataLoss);  // crc, no data
  // Valid container, garbage payload with matching CRC.
  std::string junk = "\xff\xff\xff";
  EXPECT_EQ(code_of(EncodeSnappb(Crc32c(AsBytes(junk)), AsBytes(junk))), ErrorCode::kDataLoss);
}

TEST(RaftpbTest, DecodersAcceptPackedAndUnknownFields) {
  ConfState cs;
  cs.voters = {1, 300, 70000};
  std::string unpacked = Encode(cs);
  EXPECT_EQ(HexBytes(AsBytes(unpacked)), "080108ac0208f0a2042800");
  std::string packed = std::string("\x0a\x06\x01\xac\x02\xf0\xa2\x04", 8) + std::string("\x28\x00", 2) +
                       std::string("\x30\x07", 2) /* unknown field 6 */;
  EXPECT_EQ(DecodeConfState(AsBytes(packed)), cs);
  ConfChange cc{0, kAddNode, 5, std::nullopt};
  EXPECT_EQ(HexBytes(AsBytes(Encode(cc))), "080010001805");
  EXPECT_EQ(DecodeConfChange(AsBytes(Encode(cc))), cc);
  Entry e{1, 2, kEntryNormal, std::string()};
  EXPECT_EQ(HexBytes(AsBytes(Encode(e))), "08001001180222" "00");
  EXPECT_EQ(DecodeEntry(AsBytes(Encode(e))), e);
}

}  // namespace
}  // namespace etcdsafe::etcdfmt
