// Fuzz target: arbitrary bytes as one WAL segment (framing, CRC chain, record decoding),
// plus the raw bytes as a walpb.Record and as each payload message, so the decoders
// behind the CRC check are reached too. Any outcome but Error(kDataLoss) is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "base/error.h"
#include "etcdfmt/raftpb.h"
#include "etcdfmt/wal.h"

namespace {
template <typename F>
void Expect(F f) {
  try {
    f();
  } catch (const etcdsafe::Error& e) {
    if (e.code() != etcdsafe::ErrorCode::kDataLoss) std::abort();
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace etcdsafe::etcdfmt;
  etcdsafe::Bytes b(data, size);
  Expect([&] {
    WalContents c;
    DecodeWalSegment(b, "fuzz.wal", &c);
    for (const Entry& e : c.entries) {
      if (e.type == kEntryConfChange && e.data) DecodeConfChange(etcdsafe::AsBytes(*e.data));
    }
  });
  Expect([&] { DecodeWalRecord(b); });
  Expect([&] { DecodeEntry(b); });
  Expect([&] { DecodeWalSnapshot(b); });
  Expect([&] { DecodeHardState(b); });
  return 0;
}
