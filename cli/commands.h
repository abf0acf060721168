// Command registration. Each Add*Commands defines its options, wires CLI11 and calls the
// library; it does no work of its own beyond printing results.
#pragma once

#include <CLI/CLI.hpp>

#include "global_flags.h"

namespace etcdsafe::cli {

void AddSnapshotCommands(CLI::App& app, GlobalFlags& globals);

}  // namespace etcdsafe::cli
