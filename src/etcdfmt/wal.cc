#include "etcdfmt/wal.h"

#include <dirent.h>

#include <algorithm>
#include <cstdio>

#include "base/checksum.h"
#include "base/error.h"
#include "base/file.h"

namespace etcdsafe::etcdfmt {
namespace {

// Appends records while keeping the CRC chain: non-crc records carry the running CRC
// after their data; a crc record carries the running value and adds nothing.
class WalEncoder {
 public:
  void Add(int64_t type, std::optional<std::string> data) {
    if (data) crc_ = Crc32cExtend(crc_, AsBytes(*data));
    out_ += FrameWalRecord(WalRecord{type, crc_, std::move(data)});
  }
  void AddCrc() { out_ += FrameWalRecord(WalRecord{kCrcType, crc_, std::nullopt}); }
  std::string Take() { return std::move(out_); }

 private:
  uint32_t crc_ = 0;
  std::string out_;
};

std::vector<std::string> ListWalFiles(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) throw SystemError("open dir " + dir, errno);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 4 && n.compare(n.size() - 4, 4, ".wal") == 0) names.push_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

bool ParseWalName(const std::string& name, uint64_t* seq, uint64_t* index) {
  if (name.size() != 16 + 1 + 16 + 4 || name[16] != '-') return false;
  auto hex = [&](size_t off, uint64_t* v) {
    *v = 0;
    for (size_t i = off; i < off + 16; i++) {
      char c = name[i];
      int d;
      if (c >= '0' && c <= '9') d = c - '0';
      else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else return false;
      *v = *v << 4 | static_cast<uint64_t>(d);
    }
    return true;
  };
  return hex(0, seq) && hex(17, index);
}

template <typename Decode, typename FailFn>
auto DecodeOrFail(Bytes b, Decode decode, const FailFn& fail_at) {
  try {
    return decode(b);
  } catch (const Error& e) {
    fail_at(std::string("bad record data: ") + e.what());
    throw;  // unreachable: fail_at throws
  }
}

}  // namespace

std::string WalFileName(uint64_t seq, uint64_t index) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%016llx-%016llx.wal", static_cast<unsigned long long>(seq),
                static_cast<unsigned long long>(index));
  return buf;
}

std::string FrameWalRecord(const WalRecord& rec) {
  std::string body = Encode(rec);
  uint64_t n = body.size();
  uint64_t pad = (8 - n % 8) % 8;
  uint64_t len_field = n;
  if (pad != 0) len_field |= (0x80 | pad) << 56;
  std::string out;
  AppendLE64(&out, len_field);
  out += body;
  out.append(pad, '\0');
  return out;
}

std::string EncodeRestoreWal(const RestoreCluster& cluster, uint64_t snapshot_term,
                             bool with_conf_state) {
  const uint64_t n = cluster.members.size();
  WalEncoder enc;
  // wal.Create: crc(0), metadata, snapshot{0,0}.
  enc.AddCrc();
  enc.Add(kMetadataType, Encode(WalMetadata{cluster.local_id, cluster.cluster_id}));
  enc.Add(kSnapshotType, Encode(WalSnapshot{}));
  // One AddNode ConfChange per member, ascending id, index 1..N.
  for (uint64_t i = 0; i < n; i++) {
    const Member& m = cluster.members[i];
    ConfChange cc{0, kAddNode, m.id, MemberJson(m)};
    enc.Add(kEntryType, Encode(Entry{snapshot_term, i + 1, kEntryConfChange, Encode(cc)}));
  }
  uint64_t vote = n > 0 ? cluster.members[0].id : 0;
  enc.Add(kStateType, Encode(HardState{snapshot_term, vote, n}));
  WalSnapshot last{n, snapshot_term, std::nullopt};
  if (with_conf_state) {
    ConfState cs;
    for (const auto& m : cluster.members) cs.voters.push_back(m.id);
    last.conf_state = cs;
  }
  enc.Add(kSnapshotType, Encode(last));
  return enc.Take();
}

void CreateRestoreWal(const std::string& wal_dir, const RestoreCluster& cluster,
                      uint64_t snapshot_term, bool with_conf_state) {
  if (IsDirectory(wal_dir) && !ListWalFiles(wal_dir).empty()) {
    throw Error(ErrorCode::kAlreadyExists, "wal dir " + wal_dir + " already has a WAL");
  }
  std::string bytes = EncodeRestoreWal(cluster, snapshot_term, with_conf_state);
  std::string parent = ParentDir(wal_dir);
  if (!parent.empty()) MakeDirs(parent, 0700);

  const std::string tmp = wal_dir + ".tmp";
  RemoveAll(tmp);
  MakeDirs(tmp, 0700);
  {
    File f = File::Create(tmp + "/" + WalFileName(0, 0), 0600);
    f.Preallocate(kWalSegmentSizeBytes);
    f.WriteAt(0, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
    f.Sync();
    f.Close();
  }
  SyncDir(tmp);
  RemoveAll(wal_dir);
  RenameDurable(tmp, wal_dir);
}

void DecodeWalSegment(Bytes data, const std::string& name, WalContents* c) {
  ByteReader r(data, name);
  while (r.remaining() >= 8) {
    size_t frame_start = r.offset();
    uint64_t len_field = r.LE64();
    if (len_field == 0) break;  // preallocated zero tail: end of the log
    uint64_t rec_bytes = len_field;
    uint64_t pad = 0;
    if (len_field >> 63) {  // negative as int64: padding present
      rec_bytes = len_field & ((uint64_t(1) << 56) - 1);
      pad = (len_field >> 56) & 0x7;
    }
    if (rec_bytes >= kWalMaxRecordBytes) {
      r.Fail("record length " + std::to_string(rec_bytes) + " exceeds the 10 MiB limit");
    }
    if (rec_bytes + pad > r.remaining()) {
      r.Fail("truncated record: frame at " + std::to_string(frame_start) + " needs " +
             std::to_string(rec_bytes + pad) + " bytes, " + std::to_string(r.remaining()) +
             " left");
    }
    size_t rec_off = r.offset();
    Bytes body = r.Take(static_cast<size_t>(rec_bytes));
    r.Take(static_cast<size_t>(pad));
    auto fail_at = [&](const std::string& why) {
      throw Error(ErrorCode::kDataLoss, name + " at offset " + std::to_string(rec_off) + ": " + why);
    };
    WalRecord rec;
    try {
      rec = DecodeWalRecord(body);
    } catch (const Error& e) {
      fail_at(std::string("bad record: ") + e.what());
    }
    c->records++;
    if (rec.type == kCrcType) {
      if (c->crc != 0 && rec.crc != c->crc) {
        fail_at("crc record mismatch: record has " + HexNoPad(rec.crc) + ", running crc is " +
                HexNoPad(c->crc));
      }
      c->crc = rec.crc;
      continue;
    }
    Bytes rec_data = rec.data ? AsBytes(*rec.data) : Bytes{};
    c->crc = Crc32cExtend(c->crc, rec_data);
    if (rec.crc != c->crc) {
      fail_at("crc mismatch: record has " + HexNoPad(rec.crc) + ", computed " + HexNoPad(c->crc));
    }
    switch (rec.type) {
      case kMetadataType: {
        WalMetadata md = DecodeOrFail(rec_data, DecodeWalMetadata, fail_at);
        if (c->metadata && !(*c->metadata == md)) fail_at("conflicting metadata found");
        c->metadata = md;
        break;
      }
      case kEntryType: {
        Entry e = DecodeOrFail(rec_data, DecodeEntry, fail_at);
        if (e.index == 0) break;  // at or below the start snapshot {0,0}: etcd skips it
        // A re-written index replaces the tail, as raft's log does.
        while (!c->entries.empty() && c->entries.back().index >= e.index) c->entries.pop_back();
        c->entries.push_back(std::move(e));
        break;
      }
      case kStateType:
        c->hard_state = DecodeOrFail(rec_data, DecodeHardState, fail_at);
        break;
      case kSnapshotType:
        c->snapshots.push_back(DecodeOrFail(rec_data, DecodeWalSnapshot, fail_at));
        break;
      default:
        fail_at("unexpected record type " + std::to_string(rec.type));
    }
  }
  // Fewer than 8 bytes left: etcd treats that as the end too, but only if they are zero.
  if (r.remaining() > 0 && r.remaining() < 8) {
    Bytes tail = r.Take(r.remaining());
    if (std::any_of(tail.begin(), tail.end(), [](uint8_t b) { return b != 0; })) {
      r.Fail("trailing partial length field");
    }
  }
}

WalContents ReadWal(const std::string& wal_dir) {
  std::vector<std::string> names = ListWalFiles(wal_dir);
  if (names.empty()) throw Error(ErrorCode::kNotFound, wal_dir + ": no .wal files");
  WalContents c;
  uint64_t prev_seq = 0;
  for (size_t i = 0; i < names.size(); i++) {
    uint64_t seq, index;
    if (!ParseWalName(names[i], &seq, &index)) {
      throw Error(ErrorCode::kDataLoss, wal_dir + "/" + names[i] + ": bad WAL file name");
    }
    if (i > 0 && seq != prev_seq + 1) {
      throw Error(ErrorCode::kDataLoss, wal_dir + "/" + names[i] + ": sequence " +
                                            std::to_string(seq) + " does not follow " +
                                            std::to_string(prev_seq));
    }
    prev_seq = seq;
    std::string path = wal_dir + "/" + names[i];
    File f = File::OpenRead(path);
    uint64_t size = f.Size();
    std::vector<uint8_t> buf(static_cast<size_t>(size));
    if (size > 0) f.ReadAt(0, buf.data(), buf.size());
    DecodeWalSegment(Bytes(buf.data(), buf.size()), path, &c);
    c.segments.push_back(names[i]);
  }
  return c;
}

}  // namespace etcdsafe::etcdfmt
