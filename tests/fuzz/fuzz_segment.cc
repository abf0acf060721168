// Fuzz target for the segment decoder (follow/segment.h): a segment's plain bytes come
// from a repository anyone with write access can fill. The whole input is decoded; only
// etcdsafe::Error may escape. Invariants checked (trap otherwise), for an accepted input:
//  - the records handed on agree with the header's counts and revision range, revisions
//    one by one from first_revision, times never decreasing and within the header's;
//  - the same records fed to a SegmentBuilder are accepted by it (what the decoder lets
//    through, the writer could have written), and the segment it builds decodes to the
//    same records again;
//  - every put event's KeyValue decodes or is refused with an etcdsafe::Error.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "follow/segment.h"

namespace {

using namespace etcdsafe;
using namespace etcdsafe::follow;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

bool SameRecord(const Record& a, const Record& b) {
  if (a.tag != b.tag) return false;
  switch (a.tag) {
    case 'R': {
      if (a.rev.revision != b.rev.revision || a.rev.time_ms != b.rev.time_ms ||
          a.rev.events.size() != b.rev.events.size()) {
        return false;
      }
      for (size_t i = 0; i < a.rev.events.size(); i++) {
        if (a.rev.events[i].is_delete != b.rev.events[i].is_delete || a.rev.events[i].data != b.rev.events[i].data) {
          return false;
        }
      }
      return true;
    }
    case 'L':
    case 'X':
      return a.lease.id == b.lease.id && a.lease.ttl == b.lease.ttl && a.lease.revision == b.lease.revision &&
             a.lease.time_ms == b.lease.time_ms;
    case 'H':
      return a.hash.revision == b.hash.revision && a.hash.hash == b.hash.hash &&
             a.hash.compact_revision == b.hash.compact_revision && a.hash.time_ms == b.hash.time_ms;
    case 'P': return a.progress.revision == b.progress.revision && a.progress.time_ms == b.progress.time_ms;
    default: return false;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<Record> records;
  SegmentHeader h;
  try {
    h = DecodeSegment(Bytes(data, size), "fuzz", [&](const Record& r) { records.push_back(r); });
  } catch (const Error&) {
    return 0;
  }
  uint64_t revisions = 0, events = 0, leases = 0, hashes = 0, progress = 0;
  int64_t next = h.first_revision, last_time = 0;
  for (const Record& r : records) {
    int64_t t = 0;
    switch (r.tag) {
      case 'R':
        Check(r.rev.revision == next++);
        Check(!r.rev.events.empty());
        revisions++;
        events += r.rev.events.size();
        t = r.rev.time_ms;
        for (const Event& e : r.rev.events) {
          Check(!e.data.empty());
          if (e.is_delete) continue;
          try {
            (void)DecodeKeyValue(AsBytes(e.data), "fuzz kv");
          } catch (const Error&) {
          }
        }
        break;
      case 'L':
      case 'X':
        Check(r.lease.id != 0 && r.lease.revision >= h.first_revision - 1 && r.lease.revision < next);
        leases++;
        t = r.lease.time_ms;
        break;
      case 'H':
        Check(r.hash.revision >= h.first_revision - 1 && r.hash.revision < next);
        hashes++;
        t = r.hash.time_ms;
        break;
      case 'P':
        Check(r.progress.revision == next - 1);
        progress++;
        t = r.progress.time_ms;
        break;
      default: Check(false);
    }
    Check(t >= last_time && t >= h.first_time_ms && t <= h.last_time_ms);
    last_time = t;
  }
  Check(revisions == h.revisions && events == h.events && leases == h.leases && hashes == h.hashes &&
        progress == h.progress);
  Check(next == h.last_revision + 1);

  // What the decoder accepts, the builder writes, and it reads back the same.
  SegmentBuilder b(h.chain, h.seq, h.first_revision - 1, h.prev_sha256);
  try {
    for (const Record& r : records) {
      if (r.tag == 'R') b.AddRevision(r.rev);
      if (r.tag == 'L' || r.tag == 'X') b.AddLease(r.lease);
      if (r.tag == 'H') b.AddHash(r.hash);
      if (r.tag == 'P') b.AddProgress(r.progress);
    }
  } catch (const Error&) {
    Check(false);
  }
  const std::string again = b.Finish(h.end);
  std::vector<Record> back;
  try {
    SegmentHeader h2 = DecodeSegment(AsBytes(again), "fuzz again", [&](const Record& r) { back.push_back(r); });
    Check(h2.chain == h.chain && h2.seq == h.seq && h2.first_revision == h.first_revision &&
          h2.last_revision == h.last_revision && h2.prev_sha256 == h.prev_sha256 && h2.end == h.end);
  } catch (const Error&) {
    Check(false);
  }
  Check(back.size() == records.size());
  for (size_t i = 0; i < back.size(); i++) Check(SameRecord(back[i], records[i]));
  return 0;
}
