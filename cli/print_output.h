// Writes an ops::CommandOutput as etcdctl would: stdout, then stderr, then (on failure)
// exits with its code, with a last "Error: <error>" line only when there is one.
#pragma once

#include <cstdio>

#include "exit_codes.h"
#include "ops/endpoint.h"

namespace etcdsafe::cli {

inline void PrintCommandOutput(const ops::CommandOutput& r) {
  std::fputs(r.out.c_str(), stdout);
  std::fflush(stdout);
  std::fputs(r.err.c_str(), stderr);
  if (r.exit_code != 0) throw CommandExit{r.exit_code, r.error};
}

}  // namespace etcdsafe::cli
