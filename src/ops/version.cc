#include "ops/version.h"

namespace etcdsafe::ops {

std::string VersionText() {
  return std::string("etcdsafe version: ") + kVersion + "\nAPI version: " + kApiVersion + "\n";
}

}  // namespace etcdsafe::ops
