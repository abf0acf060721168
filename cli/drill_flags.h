// `--drill` on `snapshot verify` and `backups verify`: the flags both commands share and
// the output of a drill (src/ops/drill.h). Defined in cmd_drill.cc.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "ops/drill.h"

namespace etcdsafe::cli {

struct DrillFlags {
  bool drill = false;
  bool not_kubernetes = false;
  std::string max_age, report, etcd_binary;
};

// --drill [--not-kubernetes] [--max-age D] [--report FILE] [--etcd-binary PATH]
void AddDrillFlags(CLI::App& cmd, DrillFlags& flags);

// The drill's options when --drill was given, nullopt otherwise. A drill-only flag
// without --drill, or a bad --max-age, is kInvalidArgument (exit 128).
std::optional<ops::DrillOptions> DrillRequested(const DrillFlags& flags);

// Prints the table and the summary line on stdout; a failed drill throws CommandExit with
// the report's exit code and the failed checks named (main prints it last, on stderr).
void FinishDrill(const ops::DrillReport& report);

}  // namespace etcdsafe::cli
