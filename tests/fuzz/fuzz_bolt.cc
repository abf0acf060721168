// Fuzz target for the bbolt reader: arbitrary bytes as a bbolt file, in memory. Runs
// Inspect (status + check) and a full strict ForEach of every bucket plus point
// lookups. Only etcdsafe::Error may escape the library; anything else is a bug.
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
    try {
      bolt::Inspect(r);
    } catch (const Error&) {
    }
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
