// Fuzz target for the bbolt reader: arbitrary bytes as a bbolt file, in memory. Runs
// Inspect (status + check) sequentially and with the parallel walk forced on (which
// must give the same outcome: numbers, problems in order, or the same error), and a
// full strict ForEach of every bucket plus point lookups. Only etcdsafe::Error may
// escape the library; anything else is a bug.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"
#include "bolt/inspect.h"
#include "bolt/reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace etcdsafe;
  try {
    bolt::Reader r = bolt::Reader::FromMemory(Bytes{data, size}, "fuzz.db");
    auto outcome = [&](const bolt::InspectOptions& opts) {
      std::string o;
      try {
        bolt::InspectResult res = bolt::Inspect(r, opts);
        o = std::to_string(res.status.hash) + "/" + std::to_string(res.status.revision) + "/" +
            std::to_string(res.status.total_key) + "/" + std::to_string(res.problem_count);
        for (const auto& p : res.problems) o += "|" + p;
      } catch (const Error& e) {
        o = std::string("error: ") + e.what();
      }
      return o;
    };
    bolt::InspectOptions seq;
    seq.threads = 1;
    bolt::InspectOptions par;
    par.threads = 2;
    par.min_parallel_pages = 0;
    if (outcome(seq) != outcome(par)) __builtin_trap();
    std::vector<std::string> names;
    r.ForEachBucket([&](std::string_view n) { names.emplace_back(n); });
    for (const auto& n : names) {
      std::string last;
      try {
        r.ForEach(n, [&](Bytes k, Bytes) { last.assign(AsString(k)); });
        (void)r.LastKey(n);
        (void)r.Get(n, last);
        (void)r.ValueOffset(n, last);
      } catch (const Error&) {
      }
    }
  } catch (const Error&) {
  }
  return 0;
}
