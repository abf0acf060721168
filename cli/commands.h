// Command registration. Each Add*Commands defines its options, wires CLI11 and calls the
// library; it does no work of its own beyond printing results.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

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

// backup --follow (cmd_follow.cc): flags added to the backup command, and the run.
struct FollowFlags {
  bool follow = false;
  std::string segment_max_age = "1s", segment_max_size = "8MiB", heartbeat = "10s", hash_every = "5m";
  std::string full_every = "24h", spill_dir, max_spill = "1GiB", max_queue_memory = "24MiB";
  uint64_t full_every_events = 10000000;
};
struct RepoFlags;
void AddFollowFlags(CLI::App& backup, FollowFlags& flags);
void RunFollow(const GlobalFlags& g, const RepoFlags& rf, const std::string& compression, int level,
               const FollowFlags& flags);

// The flags of `snapshot restore`, shared with `restore --repo`.
void AddRestoreFlags(CLI::App& restore, snapshot::RestoreOptions& opts);
void PrintRestoreSummary(const std::string& source, const snapshot::RestoreResult& r);

}  // namespace etcdsafe::cli
