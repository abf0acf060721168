// Fuzz target: arbitrary bytes as a .snap file (snappb container + CRC + raftpb.Snapshot),
// and the same bytes directly as a raftpb.Snapshot so the payload decoder is reached
// without a matching CRC. A successful decode must re-encode and decode to the same value.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "base/error.h"
#include "etcdfmt/raftpb.h"
#include "etcdfmt/snap.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace etcdsafe::etcdfmt;
  etcdsafe::Bytes b(data, size);
  try {
    DecodeSnapFile(b, "fuzz.snap");
  } catch (const etcdsafe::Error& e) {
    if (e.code() != etcdsafe::ErrorCode::kDataLoss) std::abort();
  }
  try {
    Snapshot s = DecodeSnapshot(b);
    std::string again = Encode(s);
    if (!(DecodeSnapshot(etcdsafe::AsBytes(again)) == s)) std::abort();
  } catch (const etcdsafe::Error& e) {
    if (e.code() != etcdsafe::ErrorCode::kDataLoss) std::abort();
  }
  return 0;
}
