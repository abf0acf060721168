// etcdsafe unlock: removes repository locks left by runs that are gone (restic's escape
// hatch). Without --force only stale locks (backup/lock.h says when a lock is stale);
// with --force every lock, for a lock etcdsafe cannot read or a run known to be dead.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "backup/backup.h"
#include "backup/lock.h"
#include "backup/repository.h"
#include "base/error.h"
#include "commands.h"
#include "repo_flags.h"

namespace etcdsafe::cli {
namespace {

// The repository flags unlock needs (the store's, no keys): the same names as the other
// repository commands (cmd_backup.cc).
struct UnlockFlags {
  RepoFlags repo;
  bool force = false, dry_run = false;
};

void RunUnlock(const UnlockFlags& f) {
  std::unique_ptr<backup::Repository> repo = f.repo.OpenOne();
  // Only a repository's locks: never the locks/ of something else.
  repo->RequireMarker(f.dry_run ? "inspect its locks" : "remove locks");
  backup::UnlockReport r = backup::Unlock(repo->store(), f.force, f.dry_run);
  const char* verb = f.dry_run ? "would remove" : "removed";
  for (const auto& l : r.removed) {
    const std::string why = l.stale ? "stale: " + l.why : "not stale (" + l.why + "), removed by --force";
    std::printf("%s %s: %s; %s\n", verb, l.DisplayName().c_str(), l.Describe().c_str(), why.c_str());
  }
  for (const auto& l : r.kept) {
    const std::string why = l.readable ? "held: " + l.why : "never removed without --force";
    std::printf("kept %s: %s; %s\n", l.DisplayName().c_str(), l.Describe().c_str(), why.c_str());
  }
  if (r.removed.empty()) {
    std::printf("%s: no %slocks to remove%s\n", repo->Describe().c_str(), f.force ? "" : "stale ",
                r.kept.empty() ? "" : " (--force removes every lock)");
  } else if (f.dry_run) {
    std::printf("dry run: nothing was removed\n");
  }
}

}  // namespace

void AddUnlockCommand(CLI::App& app) {
  auto f = std::make_shared<UnlockFlags>();
  CLI::App* cmd = app.add_subcommand(
      "unlock", "Remove stale repository locks (--force: every lock); prints each lock it removes");
  AddRepoFlags(*cmd, f->repo, {.keys = false, .upload_tuning = false});
  cmd->add_flag("--force", f->force,
                "remove every lock, also those of running backups and locks etcdsafe cannot read: only when "
                "no etcdsafe uses the repository");
  cmd->add_flag("--dry-run", f->dry_run, "print what would be removed, remove nothing");
  cmd->callback([f] { RunUnlock(*f); });
}

}  // namespace etcdsafe::cli
