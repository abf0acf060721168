// etcdsafe pki check | pki backup | pki restore: a control plane's certificates, keys,
// kubeconfigs and manifests (src/controlplane/pki*.h). Exit 15 (kExitPkiProblem) when a
// check finds a problem or a backup refuses keys that do not match their certificates.
#include <chrono>
#include <cstdio>
#include <memory>

#include "backup/layout.h"
#include "base/error.h"
#include "commands.h"
#include "controlplane/pki.h"
#include "controlplane/pki_archive.h"
#include "controlplane/pki_backup.h"
#include "exit_codes.h"
#include "pipeline/compress.h"
#include "repo_flags.h"
#include "snapshot/status_format.h"

namespace etcdsafe::cli {

void AddPkiCommands(CLI::App& app, GlobalFlags& globals);

namespace {

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct CheckFlags {
  std::string kubernetes_dir = "/etc/kubernetes", root, backup_id;
  int warn_days = 30;
};

void RunCheck(const GlobalFlags& g, const RepoFlags& rf, const CheckFlags& f) {
  if (g.write_out != "simple" && g.write_out != "table" && g.write_out != "json") {
    throw Error(ErrorCode::kUnsupported, "unsupported output format \"" + g.write_out + "\" (table or json)");
  }
  if (f.warn_days < 0) throw Error(ErrorCode::kInvalidArgument, "--warn-days must be >= 0");
  controlplane::PkiReport r;
  if (!rf.repos.empty()) {
    auto repo = rf.OpenOne();
    std::vector<std::string> notes;
    backup::Manifest m;
    std::vector<controlplane::ArchiveEntry> entries = controlplane::ReadPkiBackup(
        *repo, f.backup_id.empty() ? "latest" : f.backup_id, rf.KeyWithWarning(), {}, &m, &notes);
    for (const auto& n : notes) std::fprintf(stderr, "etcdsafe: %s\n", n.c_str());
    r = controlplane::CheckPkiEntries(entries, f.warn_days, NowUnix());
    r.dir = repo->Describe() + " backup " + m.id;
  } else {
    if (!f.backup_id.empty()) throw Error(ErrorCode::kInvalidArgument, "--backup needs --repo");
    r = controlplane::CheckPki(f.root + f.kubernetes_dir, f.warn_days, NowUnix());
  }
  std::fputs((g.write_out == "json" ? controlplane::PkiReportJson(r) : controlplane::PkiReportTable(r)).c_str(), stdout);
  if (r.certs.empty()) throw CommandExit{kExitPkiProblem, r.dir + ": no certificates found"};
  if (!r.ok()) {
    throw CommandExit{kExitPkiProblem, std::to_string(r.problems.size()) + " pki problem(s) in " + r.dir + ", first: " +
                                           backup::EscapeForTerminal(r.problems.front())};
  }
}

struct BackupFlags {
  controlplane::PkiPaths paths;
  std::string compression = "zstd", name_prefix;
  int level = 0;
  bool allow_unencrypted = false, force = false, no_kubelet_config = false;
};

void RunPkiBackup(const RepoFlags& rf, BackupFlags f) {
  controlplane::PkiBackupOptions o;
  o.repos = rf.repos;
  o.store_options = rf.StoreOptions();
  o.compression = pipeline::ParseCompression(f.compression);
  o.compression_level = f.level;
  o.key = rf.Key();
  o.allow_unencrypted = f.allow_unencrypted;
  o.force = f.force;
  o.paths = f.paths;
  if (f.no_kubelet_config) o.paths.kubelet_config.clear();
  o.name_prefix = f.name_prefix;
  controlplane::PkiBackupReport r;
  try {
    r = controlplane::RunPkiBackup(o);
  } catch (const controlplane::PkiInconsistentError& e) {
    throw CommandExit{kExitPkiProblem, e.what()};
  }
  for (const auto& n : r.notes) std::fprintf(stderr, "etcdsafe: %s\n", n.c_str());
  const backup::Manifest& m = r.manifest;
  std::printf("pki backup %s: %zu entries, tar %s -> stored %s (%s%s)\n", m.id.c_str(), r.files,
              snapshot::HumanizeBytes(m.db_size).c_str(), snapshot::HumanizeBytes(m.stored_size).c_str(),
              m.compression.c_str(), m.encryption == "none" ? ", NOT encrypted" : (", encrypted, key " + m.key_id).c_str());
  for (const auto& x : r.repos) {
    if (x.ok) {
      std::printf("  ok      %s\n", x.repo.c_str());
    } else {
      std::printf("  FAILED  %s: %s\n", x.repo.c_str(), x.error.c_str());
    }
  }
  if (!r.all_ok()) throw CommandExit{kExitPartial, "pki backup written to only some repositories (partial)"};
}

struct RestoreFlags {
  std::string backup_id = "latest";
  controlplane::PkiRestoreOptions opts;
  backup::ReadOptions read;
};

void RunPkiRestore(const RepoFlags& rf, const RestoreFlags& f) {
  if (f.opts.kubernetes_dir.empty()) throw Error(ErrorCode::kInvalidArgument, "--kubernetes-dir is required");
  auto repo = rf.OpenOne();
  std::vector<std::string> notes;
  backup::Manifest m;
  std::vector<controlplane::ArchiveEntry> entries =
      controlplane::ReadPkiBackup(*repo, f.backup_id, rf.KeyWithWarning(), f.read, &m, &notes);
  std::vector<controlplane::PkiRestoreItem> items = controlplane::RestorePkiEntries(entries, f.opts, &notes);
  for (const auto& n : notes) std::fprintf(stderr, "etcdsafe: %s\n", n.c_str());
  size_t written = 0;
  for (const auto& i : items) {
    std::printf("%-10s %s\n", i.action.substr(0, i.action.find(' ')).c_str(), backup::EscapeForTerminal(i.target).c_str());
    if (i.action == "create" || i.action == "overwrite") written++;
  }
  std::printf("%s%s: %zu entries, %zu %s\n", f.opts.dry_run ? "dry run: " : "", m.id.c_str(), items.size(), written,
              f.opts.dry_run ? "would be written (nothing was)" : "written");
}

}  // namespace

void AddPkiCommands(CLI::App& app, GlobalFlags& globals) {
  CLI::App* pki = app.add_subcommand("pki", "Control-plane certificates, keys and configuration: check, back up, restore");
  pki->require_subcommand(1);
  pki->fallthrough();
  {
    auto rf = std::make_shared<RepoFlags>();
    auto f = std::make_shared<CheckFlags>();
    CLI::App* cmd = pki->add_subcommand(
        "check", "Every certificate's subject, SANs, expiry, key and chain (-w table|json); exit 15 on a problem");
    AddRepoFlags(*cmd, *rf, {.repo_from_env = false, .upload_tuning = false,
                             .repo_help = "check a pki backup of this repository instead of a directory"});
    cmd->add_option("--kubernetes-dir", f->kubernetes_dir, "the kubernetes directory")->capture_default_str();
    cmd->add_option("--root", f->root, "prefix for every host path (a node's disk mounted elsewhere)");
    cmd->add_option("--warn-days", f->warn_days, "a certificate expiring within this many days is a problem")
        ->capture_default_str();
    cmd->add_option("--backup", f->backup_id, "with --repo: pki backup id, or latest (default)");
    cmd->callback([&globals, rf, f] { RunCheck(globals, *rf, *f); });
  }
  {
    auto rf = std::make_shared<RepoFlags>();
    auto f = std::make_shared<BackupFlags>();
    CLI::App* cmd = pki->add_subcommand(
        "backup", "Archive certificates, keys, kubeconfigs, static-pod manifests and kubeadm/kubelet config");
    AddRepoFlags(*cmd, *rf, {.multiple = true});
    cmd->add_option("--kubernetes-dir", f->paths.kubernetes_dir, "the kubernetes directory")->capture_default_str();
    cmd->add_option("--extra", f->paths.extra, "another file or directory to archive (absolute, repeatable)");
    cmd->add_option("--kubelet-config", f->paths.kubelet_config, "archived when present")->capture_default_str();
    cmd->add_flag("--no-kubelet-config", f->no_kubelet_config, "do not archive the kubelet config");
    cmd->add_option("--root", f->paths.root, "prefix for every host path (a node's disk mounted elsewhere)");
    cmd->add_option("--compression", f->compression, "zstd, gzip or none")->capture_default_str();
    cmd->add_option("--compression-level", f->level, "codec level (0: default)");
    cmd->add_option("--name-prefix", f->name_prefix, "object name prefix (default pki-<host>)");
    cmd->add_flag("--allow-unencrypted", f->allow_unencrypted, "store the private keys without encryption");
    cmd->add_flag("--force", f->force, "archive even when keys do not match their certificates");
    cmd->callback([rf, f] { RunPkiBackup(*rf, *f); });
  }
  {
    auto rf = std::make_shared<RepoFlags>();
    auto f = std::make_shared<RestoreFlags>();
    CLI::App* cmd = pki->add_subcommand("restore", "Write a pki backup's files back with their modes, owners and times");
    AddRepoFlags(*cmd, *rf);
    cmd->add_option("--backup", f->backup_id, "pki backup id, or latest")->capture_default_str();
    cmd->add_option("--kubernetes-dir", f->opts.kubernetes_dir, "where the kubernetes/ files go (required)");
    cmd->add_option("--root", f->opts.root,
                    "restore the files from outside the kubernetes dir (kubelet config, --extra) under this root "
                    "(/ for their original places); without it they are skipped");
    cmd->add_flag("--dry-run", f->opts.dry_run, "list create/overwrite/unchanged per path, write nothing");
    cmd->add_flag("--force", f->opts.force, "overwrite files whose content differs");
    cmd->add_flag("--allow-unauthenticated-manifest", f->read.allow_unauthenticated_manifest,
                  "accept an encrypted backup whose manifest has no MAC");
    cmd->callback([rf, f] { RunPkiRestore(*rf, *f); });
  }
}

}  // namespace etcdsafe::cli
