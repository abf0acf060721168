// Fuzz target for the streaming bbolt inspector: arbitrary bytes fed to StreamInspector
// in several chunkings (one Write, 7-byte pieces, pieces of a size taken from the input,
// the last with summaries spilled to disk after a few KiB)
// must give exactly what Inspect() gives on the same bytes in memory: the same status
// and problems, or the same error. Only etcdsafe::Error may escape the library; any
// mismatch is a bug and aborts.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>

#include "base/error.h"
#include "bolt/inspect.h"
#include "bolt/reader.h"
#include "bolt/stream_inspect.h"

namespace {

using namespace etcdsafe;

struct Outcome {
  std::optional<bolt::InspectResult> r;
  std::string error;
  ErrorCode code = ErrorCode::kInternal;
};

bool Same(const Outcome& a, const Outcome& b) {
  if (a.r.has_value() != b.r.has_value()) return false;
  if (!a.r) {
    // The only intended difference: a short stream vs a short file.
    bool ta = a.error.find("truncated") != std::string::npos;
    bool tb = b.error.find("truncated") != std::string::npos;
    return a.code == b.code && (a.error == b.error || (ta && tb));
  }
  const bolt::InspectResult &x = *a.r, &y = *b.r;
  return x.status.hash == y.status.hash && x.status.revision == y.status.revision &&
         x.status.total_key == y.status.total_key && x.status.total_size == y.status.total_size &&
         x.problems == y.problems && x.problem_count == y.problem_count &&
         x.meta.root == y.meta.root && x.meta.pgid == y.meta.pgid && x.meta.page == y.meta.page;
}

[[noreturn]] void Mismatch(const char* what, const Outcome& a, const Outcome& b) {
  auto show = [](const Outcome& o) {
    if (!o.r) return "error: " + o.error;
    std::string s = "hash=" + std::to_string(o.r->status.hash) +
                    " keys=" + std::to_string(o.r->status.total_key) +
                    " problems=" + std::to_string(o.r->problem_count);
    for (const auto& p : o.r->problems) s += " [" + p + "]";
    return s;
  };
  std::fprintf(stderr, "%s mismatch\n inspect: %s\n stream:  %s\n", what, show(a).c_str(),
               show(b).c_str());
  std::abort();
}

Outcome Stream(const uint8_t* data, size_t size, size_t chunk, bool spill) {
  Outcome o;
  try {
    // spill: summaries leave memory after a few KiB, through the spill file and back.
    bolt::StreamInspector::Limits limits;
    if (spill) limits = {4096, 2, 16, 2};
    bolt::StreamInspector s("fuzz.db", limits);
    for (size_t off = 0; off < size; off += chunk) s.Write(data + off, std::min(chunk, size - off));
    o.r = s.Finish();
  } catch (const Error& e) {
    o.error = e.what();
    o.code = e.code();
  }
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Outcome want;
  try {
    bolt::Reader r = bolt::Reader::FromMemory(Bytes{data, size}, "fuzz.db");
    want.r = bolt::Inspect(r);
  } catch (const Error& e) {
    want.error = e.what();
    want.code = e.code();
  }
  size_t odd = size > 0 ? 1 + data[size - 1] * 37u % 9000 : 1;
  for (size_t chunk : {size > 0 ? size : size_t{1}, size_t{7}, odd}) {
    Outcome got = Stream(data, size, chunk, chunk == odd);
    if (!Same(want, got)) Mismatch(("chunk " + std::to_string(chunk)).c_str(), want, got);
  }
  return 0;
}
