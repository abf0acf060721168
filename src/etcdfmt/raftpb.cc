#include "etcdfmt/raftpb.h"

#include <functional>

#include "base/error.h"

namespace etcdsafe::etcdfmt {
namespace {

enum Wire { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

void Tag(std::string* out, int field, Wire w) { AppendVarint(out, uint64_t(field) << 3 | w); }
void U64(std::string* out, int field, uint64_t v) {
  Tag(out, field, kVarint);
  AppendVarint(out, v);
}
// Go int32/int64/enum fields are sign-extended to 64 bits on the wire.
void I64(std::string* out, int field, int64_t v) { U64(out, field, static_cast<uint64_t>(v)); }
void Len(std::string* out, int field, std::string_view v) {
  Tag(out, field, kLen);
  AppendVarint(out, v.size());
  out->append(v);
}

// Walks the fields of one message; `on_field` gets (field, wire type, reader) and must
// consume the value (helpers below) or return false to have it skipped.
using FieldFn = std::function<bool(int field, int wire, ByteReader& r)>;

Bytes TakeLen(ByteReader& r) {
  uint64_t n = r.Varint();
  if (n > r.remaining()) r.Fail("length " + std::to_string(n) + " exceeds message");
  return r.Take(static_cast<size_t>(n));
}

void ParseMsg(Bytes b, const char* what, const FieldFn& on_field) {
  ByteReader r(b, what);
  while (!r.empty()) {
    uint64_t key = r.Varint();
    uint64_t field = key >> 3;
    int wire = static_cast<int>(key & 7);
    if (field == 0 || field > (1u << 29) - 1) r.Fail("invalid field number");
    if (on_field(static_cast<int>(field), wire, r)) continue;
    switch (wire) {
      case kVarint: r.Varint(); break;
      case kFixed64: r.Take(8); break;
      case kLen: TakeLen(r); break;
      case kFixed32: r.Take(4); break;
      default: r.Fail("unsupported wire type " + std::to_string(wire));
    }
  }
}

uint64_t VarintField(int wire, ByteReader& r) {
  if (wire != kVarint) r.Fail("wrong wire type " + std::to_string(wire) + " for varint field");
  return r.Varint();
}
Bytes LenField(int wire, ByteReader& r) {
  if (wire != kLen) r.Fail("wrong wire type " + std::to_string(wire) + " for bytes field");
  return TakeLen(r);
}
std::string Str(Bytes b) { return std::string(AsString(b)); }

// repeated uint64, packed or not.
void RepeatedU64(int wire, ByteReader& r, std::vector<uint64_t>* out) {
  if (wire == kVarint) {
    out->push_back(r.Varint());
    return;
  }
  Bytes packed = LenField(wire, r);
  ByteReader p(packed, "packed uint64");
  while (!p.empty()) out->push_back(p.Varint());
}

}  // namespace

std::string Encode(const Entry& m) {
  std::string out;
  I64(&out, 1, m.type);
  U64(&out, 2, m.term);
  U64(&out, 3, m.index);
  if (m.data) Len(&out, 4, *m.data);
  return out;
}

std::string Encode(const ConfChange& m) {
  std::string out;
  U64(&out, 1, m.id);
  I64(&out, 2, m.type);
  U64(&out, 3, m.node_id);
  if (m.context) Len(&out, 4, *m.context);
  return out;
}

std::string Encode(const HardState& m) {
  std::string out;
  U64(&out, 1, m.term);
  U64(&out, 2, m.vote);
  U64(&out, 3, m.commit);
  return out;
}

std::string Encode(const ConfState& m) {
  std::string out;
  for (uint64_t v : m.voters) U64(&out, 1, v);
  for (uint64_t v : m.learners) U64(&out, 2, v);
  for (uint64_t v : m.voters_outgoing) U64(&out, 3, v);
  for (uint64_t v : m.learners_next) U64(&out, 4, v);
  U64(&out, 5, m.auto_leave ? 1 : 0);
  return out;
}

std::string Encode(const SnapshotMetadata& m) {
  std::string out;
  Len(&out, 1, Encode(m.conf_state));
  U64(&out, 2, m.index);
  U64(&out, 3, m.term);
  return out;
}

std::string Encode(const Snapshot& m) {
  std::string out;
  if (m.data) Len(&out, 1, *m.data);
  Len(&out, 2, Encode(m.metadata));
  return out;
}

std::string Encode(const WalMetadata& m) {
  std::string out;
  U64(&out, 1, m.node_id);
  U64(&out, 2, m.cluster_id);
  return out;
}

std::string Encode(const WalSnapshot& m) {
  std::string out;
  U64(&out, 1, m.index);
  U64(&out, 2, m.term);
  if (m.conf_state) Len(&out, 3, Encode(*m.conf_state));
  return out;
}

std::string Encode(const WalRecord& m) {
  std::string out;
  I64(&out, 1, m.type);
  U64(&out, 2, m.crc);
  if (m.data) Len(&out, 3, *m.data);
  return out;
}

std::string EncodeSnappb(uint32_t crc, Bytes data) {
  std::string out;
  U64(&out, 1, crc);
  Len(&out, 2, AsString(data));
  return out;
}

Entry DecodeEntry(Bytes b) {
  Entry m;
  ParseMsg(b, "raftpb.Entry", [&](int f, int w, ByteReader& r) {
    switch (f) {
      case 1: m.type = static_cast<int32_t>(VarintField(w, r)); return true;
      case 2: m.term = VarintField(w, r); return true;
      case 3: m.index = VarintField(w, r); return true;
      case 4: m.data = Str(LenField(w, r)); return true;
      default: return false;
    }
  });
  return m;
}

ConfChange DecodeConfChange(Bytes b) {
  ConfChange m;
  ParseMsg(b, "raftpb.ConfChange", [&](int f, int w, ByteReader& r) {
    switch (f) {
      case 1: m.id = VarintField(w, r); return true;
      case 2: m.type = static_cast<int32_t>(VarintField(w, r)); return true;
      case 3: m.node_id = VarintField(w, r); return true;
      case 4: m.context = Str(LenField(w, r)); return true;
      default: return false;
    }
  });
  return m;
}

HardState DecodeHardState(Bytes b) {
  HardState m;
  ParseMsg(b, "raftpb.HardState", [&](int f, int w, ByteReader& r) {
    switch (f) {
      case 1: m.term = VarintField(w, r); return true;
      case 2: m.vote = VarintField(w, r); return true;
      case 3: m.commit = VarintField(w, r); return true;
      default: return false;
    }
  });
  return m;
}

ConfState DecodeConfState(Bytes b) {
  ConfState m;
  ParseMsg(b, "raftpb.ConfState", [&](int f, int w, ByteReader& r) {
    switch (f) {
      case 1: RepeatedU64(w, r, &m.voters); return true;
      case 2: RepeatedU64(w, r, &m.learners); return true;
      case 3: RepeatedU64(w, r, &m.voters_outgoing); return true;
      case 4: RepeatedU64(w, r, &m.learners_next); return true;
      case 5: m.auto_leave = VarintField(w, r) != 0; return true;
      default: return false;
    }
  });
  return m;
}

SnapshotMetadata DecodeSnapshotMetadata(Bytes b) {
  SnapshotMetadata m;
  ParseMsg(b, "raftpb.SnapshotMetadata", [&](int f, int w, ByteReader& r) {
    switch (f) {
      case 1: m.conf_state = DecodeConfState(LenField(w, r)); return true;
      case 2: m.index = VarintField(w, r); return true;
      case 3: m.term = VarintField(w, r); return true;
      default: return false;
    }
  });
  return m;
}

Snapshot DecodeSnapshot(Bytes b) {
  Snapshot m;
  ParseMsg(b, "raftpb.Snapshot", [&](int f, int w, ByteReader& r) {
    switch (f) {
      case 1: m.data = Str(LenField(w, r)); return true;
      case 2: m.metadata = DecodeSnapshotMetadata(LenField(w, r)); return true;
      default: return false;
    }
  });
  return m;
}

WalMetadata DecodeWalMetadata(Bytes b) {
  WalMetadata m;
  ParseMsg(b, "etcdserverpb.Metadata", [&](int f, int w, ByteReader& r) {
    switch (f) {
      case 1: m.node_id = VarintField(w, r); return true;
      case 2: m.cluster_id = VarintField(w, r); return true;
      default: return false;
    }
  });
  return m;
}

WalSnapshot DecodeWalSnapshot(Bytes b) {
  WalSnapshot m;
  ParseMsg(b, "walpb.Snapshot", [&](int f, int w, ByteReader& r) {
    switch (f) {
      case 1: m.index = VarintField(w, r); return true;
      case 2: m.term = VarintField(w, r); return true;
      case 3: m.conf_state = DecodeConfState(LenField(w, r)); return true;
      default: return false;
    }
  });
  return m;
}

WalRecord DecodeWalRecord(Bytes b) {
  WalRecord m;
  ParseMsg(b, "walpb.Record", [&](int f, int w, ByteReader& r) {
    switch (f) {
      case 1: m.type = static_cast<int64_t>(VarintField(w, r)); return true;
      case 2: m.crc = static_cast<uint32_t>(VarintField(w, r)); return true;
      case 3: m.data = Str(LenField(w, r)); return true;
      default: return false;
    }
  });
  return m;
}

Snappb DecodeSnappb(Bytes b) {
  Snappb m;
  ParseMsg(b, "snappb.snapshot", [&](int f, int w, ByteReader& r) {
    switch (f) {
      case 1: m.crc = static_cast<uint32_t>(VarintField(w, r)); return true;
      case 2: m.data = Str(LenField(w, r)); return true;
      default: return false;
    }
  });
  return m;
}

}  // namespace etcdsafe::etcdfmt
