// Command registration. Each Add*Commands defines its options, wires CLI11 and calls the
// library; it does no work of its own beyond printing results.
#pragma once

#include <CLI/CLI.hpp>

#include "global_flags.h"
#include "snapshot/restore.h"

namespace etcdsafe::cli {

void AddSnapshotCommands(CLI::App& app, GlobalFlags& globals);
void AddBackupCommands(CLI::App& app, GlobalFlags& globals);
void AddUnlockCommand(CLI::App& app);
void AddVersionCommand(CLI::App& app);
void AddEndpointCommands(CLI::App& app, GlobalFlags& globals);
void AddMemberCommands(CLI::App& app, GlobalFlags& globals);
void AddGetCommand(CLI::App& app, GlobalFlags& globals);
void AddAgentCommand(CLI::App& app);
void AddRestoreCommand(CLI::App& app, GlobalFlags& globals);  // restore --repo / --kubeadm / --systemd-unit
void AddPkiCommands(CLI::App& app, GlobalFlags& globals);
void AddInspectCommands(CLI::App& app, GlobalFlags& globals);

// The flags of `snapshot restore`, shared with `restore --repo`.
void AddRestoreFlags(CLI::App& restore, snapshot::RestoreOptions& opts);
void PrintRestoreSummary(const std::string& source, const snapshot::RestoreResult& r);

}  // namespace etcdsafe::cli
