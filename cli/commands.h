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
void AddRestoreObjectsCommand(CLI::App& app, GlobalFlags& globals);  // restore-objects (cmd_restore_objects.cc)

// backup --follow (cmd_follow.cc): flags added to the backup command, and the run.
struct FollowFlags {
  bool follow = false;
  std::string segment_max_age = "1s", segment_max_size = "8MiB", heartbeat = "10s", hash_every = "5m";
  std::string full_every = "24h", spill_dir, max_spill = "1GiB", max_queue_memory = "24MiB";
  uint64_t full_every_events = 10000000;
  // Background compaction (follow/compact.h); compact_every "0": never.
  std::string compact_every = "10m", compact_min_age = "1h", compact_target_size = "64MiB";
  size_t compact_keep_last = 16;
};
struct RepoFlags;
void AddFollowFlags(CLI::App& backup, FollowFlags& flags);
// `backups compact` (cmd_follow.cc), added to the `backups` command AddBackupCommands made.
void AddCompactCommand(CLI::App& app, GlobalFlags& globals);
void RunFollow(const GlobalFlags& g, const RepoFlags& rf, const std::string& compression, int level,
               const FollowFlags& flags);
// A size flag (base/bytes.h ParseByteSize: "1GiB", "64MiB") that must be positive;
// kInvalidArgument naming the flag otherwise.
uint64_t ParseSize(const std::string& text, const std::string& flag);

// The flags of `snapshot restore`, shared with `restore --repo`.
void AddRestoreFlags(CLI::App& restore, snapshot::RestoreOptions& opts);
void PrintRestoreSummary(const std::string& source, const snapshot::RestoreResult& r);
struct AllMembersFlags {
  bool all_members = false;
  std::string output_dir;
};
// --all-members (snapshot restore, restore --repo): the flags, the options from the restore flags
// (--initial-cluster required; --name only checked) and the summaries + start plan.
snapshot::RestoreAllOptions AllMembersOptions(const CLI::App& restore, const snapshot::RestoreOptions& base,
                                              const std::string& output_dir);
void PrintRestoreAll(const std::string& source, const snapshot::RestoreAllResult& r);

}  // namespace etcdsafe::cli
