// etcdsafe restore: a repository backup into a new data dir (--repo), a point in time of
// a continuous backup (--repo with --to-revision, --to-time or --to-latest: the base plus
// its segments replayed offline, follow/replay.h), or the guarded
// restore of a control-plane node's etcd (--kubeadm, --systemd-unit; src/controlplane/
// guarded_restore.h), or the per-node commands for a whole control plane (--kubeadm --plan).
#include <unistd.h>

#include <time.h>

#include <cstdio>
#include <iostream>
#include <memory>

#include "backup/repo_ops.h"
#include "base/error.h"
#include "commands.h"
#include "controlplane/guarded_restore.h"
#include "exit_codes.h"
#include "follow/replay.h"
#include "progress.h"
#include "repo_flags.h"

namespace etcdsafe::cli {
namespace {

void RunRepoRestore(const RepoFlags& rf, const std::string& id, const snapshot::RestoreOptions& opts,
                    const backup::ReadOptions& read) {
  auto repo = rf.OpenOne();
  ProgressLine line("restoring from " + repo->Describe());
  std::vector<std::string> notes;
  snapshot::RestoreResult r = backup::RestoreFromRepository(
      *repo, id, opts, rf.KeyWithWarning(), [&](uint64_t b) { line.Update(b); }, read, &notes);
  line.Done();
  for (const auto& n : notes) std::fprintf(stderr, "etcdsafe: %s\n", n.c_str());
  PrintRestoreSummary(repo->Describe() + " backup " + id, r);
}

// restore --repo --all-members --output-dir DIR: every member of --initial-cluster from
// one download of the backup, then the start plan (as `snapshot restore --all-members`).
void RunRepoRestoreAll(const CLI::App& cmd, const RepoFlags& rf, const std::string& id,
                       const snapshot::RestoreOptions& opts, const std::string& output_dir,
                       const backup::ReadOptions& read) {
  snapshot::RestoreAllOptions o = AllMembersOptions(cmd, opts, output_dir);
  auto repo = rf.OpenOne();
  ProgressLine line("restoring from " + repo->Describe() + " for every member");
  std::vector<std::string> notes;
  snapshot::RestoreAllResult r = backup::RestoreAllFromRepository(
      *repo, id, o, rf.KeyWithWarning(), [&](uint64_t b) { line.Update(b); }, read, &notes);
  line.Done();
  for (const auto& n : notes) std::fprintf(stderr, "etcdsafe: %s\n", n.c_str());
  PrintRestoreAll(repo->Describe() + " backup " + id, r);
}

struct PointFlags {
  int64_t revision = 0;
  std::string time;
  bool latest = false;
};

std::string TimeText(int64_t ms) {
  time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

// restore --repo --to-revision N | --to-time T | --to-latest: the base, its segments
// replayed offline, the HashKV check, then the ordinary restore of the data dir.
void RunPointRestore(const RepoFlags& rf, const follow::PointInTime& target, const snapshot::RestoreOptions& opts) {
  auto repo = rf.OpenOne();
  ProgressLine line("restoring from " + repo->Describe());
  uint64_t base_bytes = 0;
  follow::PitrResult r = follow::RestoreToPoint(*repo, target, opts, rf.KeyWithWarning(),
                                                [&](const std::string& stage, uint64_t n) {
                                                  if (stage == "base") base_bytes = n;
                                                  line.Update(base_bytes);
                                                });
  line.Done();
  for (const auto& n : r.notes) std::fprintf(stderr, "etcdsafe: note: %s\n", n.c_str());
  PrintRestoreSummary(repo->Describe() + " backup " + r.base_id, r.restore);
  std::printf("restored revision %lld (seen at %s) from backup %s (revision %lld): %llu segment%s, %llu revision%s, "
              "%llu event%s replayed\n",
              static_cast<long long>(r.revision), TimeText(r.time_ms).c_str(), r.base_id.c_str(),
              static_cast<long long>(r.base_revision), static_cast<unsigned long long>(r.segments),
              r.segments == 1 ? "" : "s", static_cast<unsigned long long>(r.revisions), r.revisions == 1 ? "" : "s",
              static_cast<unsigned long long>(r.events), r.events == 1 ? "" : "s");
  if (r.hash_revision > 0) {
    std::printf("HashKV at revision %lld matches etcd's (0x%08x, compact revision %lld)\n",
                static_cast<long long>(r.hash_revision), r.hash, static_cast<long long>(r.hash_compact_revision));
  } else {
    std::printf("HashKV not checked: %s\n", r.hash_note.c_str());
  }
}

struct NodeFlags {
  bool kubeadm = false, yes = false, dry_run = false, plan = false, allow_other_cluster = false;
  bool no_mark_compacted = false;
  std::string snapshot, manifests_dir = "/etc/kubernetes/manifests", root, systemd_unit, journal_dir;
  int wait_timeout = 120;
};

bool Given(CLI::App& cmd, const std::string& flag) { return cmd.get_option(flag)->count() > 0; }

// Refuses without --yes unless a terminal user types "yes".
void Confirm(const NodeFlags& nf, const std::string& what) {
  if (nf.yes || nf.dry_run) return;
  if (!isatty(STDIN_FILENO)) {
    throw Error(ErrorCode::kInvalidArgument, what + " stops etcd on this node: give --yes (stdin is not a terminal)");
  }
  std::fprintf(stderr, "%s stops etcd on this node and replaces its data (the old dir is kept). Type yes to go on: ",
               what.c_str());
  std::string answer;
  std::getline(std::cin, answer);
  if (answer != "yes") throw Error(ErrorCode::kInvalidArgument, "not confirmed (typed \"" + answer + "\", not yes)");
}

void RunNodeRestore(CLI::App& cmd, const GlobalFlags& g, const RepoFlags& rf, const std::string& id,
                    const snapshot::RestoreOptions& ro, const backup::ReadOptions& read, const NodeFlags& nf) {
  controlplane::GuardedRestoreOptions o;
  o.systemd = !nf.systemd_unit.empty();
  if (nf.kubeadm && o.systemd) throw Error(ErrorCode::kInvalidArgument, "--kubeadm and --systemd-unit exclude each other");
  if (!nf.snapshot.empty() && !rf.repos.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "--snapshot and --repo exclude each other");
  }
  if (Given(cmd, "--wal-dir")) throw Error(ErrorCode::kUnsupported, "--wal-dir is not supported by a guarded restore");
  o.root = nf.root;
  o.manifests_dir = nf.manifests_dir;
  o.snapshot_path = nf.snapshot;
  std::unique_ptr<backup::Repository> repo;
  if (!rf.repos.empty()) {
    repo = rf.OpenOne();
    o.repo = repo.get();
    o.backup_id = id;
    o.repo_key = rf.KeyWithWarning();
    o.read = read;
  }
  if (Given(cmd, "--initial-cluster")) o.initial_cluster = ro.initial_cluster;
  if (Given(cmd, "--initial-cluster-token")) o.initial_cluster_token = ro.initial_cluster_token;
  o.bump_revision = Given(cmd, "--bump-revision") ? ro.bump_revision : controlplane::kDefaultBumpRevision;
  o.mark_compacted = true;  // --mark-compacted is the default here (Kubernetes watches must re-list)
  if (nf.no_mark_compacted) o.mark_compacted = false;
  o.skip_hash_check = ro.skip_hash_check;
  o.compact = ro.compact;
  o.allow_other_cluster = nf.allow_other_cluster;
  o.dry_run = nf.dry_run;
  o.journal_dir = nf.journal_dir;
  if (nf.wait_timeout <= 0) throw Error(ErrorCode::kInvalidArgument, "--wait-timeout must be > 0 seconds");
  o.wait_timeout = std::chrono::seconds(nf.wait_timeout);
  if (o.systemd) {
    o.unit = nf.systemd_unit;
    o.data_dir = ro.data_dir;
    o.name = Given(cmd, "--name") ? ro.name : "";
    o.peer_urls = Given(cmd, "--initial-advertise-peer-urls") ? ro.initial_advertise_peer_urls : "";
    client::ClientConfig c = ToClientConfig(g);
    o.client_url = c.endpoints.empty() ? "" : c.endpoints.front();
    if (!o.client_url.empty() && o.client_url.find("://") == std::string::npos) {
      o.client_url = (c.cacert.empty() && c.cert.empty() ? "http://" : "https://") + o.client_url;
    }
    o.cacert = c.cacert;
    o.cert = c.cert;
    o.key = c.key;
  } else {
    if (Given(cmd, "--data-dir")) {
      throw Error(ErrorCode::kInvalidArgument, "--data-dir comes from the etcd manifest with --kubeadm (use --root to relocate)");
    }
    if (Given(cmd, "--name")) o.expect_name = ro.name;
    if (Given(cmd, "--initial-advertise-peer-urls")) o.expect_peer_urls = ro.initial_advertise_peer_urls;
  }
  if (nf.plan) {
    if (o.systemd) throw Error(ErrorCode::kInvalidArgument, "--plan is for --kubeadm");
    std::vector<std::string> source;
    if (!nf.snapshot.empty()) {
      source = {"--snapshot", nf.snapshot};
    } else if (repo) {
      source = {"--repo", rf.repos.front(), "--backup", repo->Find(id).id};  // "latest" pinned for every node
      if (!rf.key_file.empty()) source.insert(source.end(), {"--encryption-key-file", rf.key_file});
      if (!rf.key_env.empty()) source.insert(source.end(), {"--encryption-key-env", rf.key_env});
      if (!rf.passphrase_file.empty()) source.insert(source.end(), {"--passphrase-file", rf.passphrase_file});
    } else {
      throw Error(ErrorCode::kInvalidArgument, "--plan needs --snapshot FILE or --repo R");
    }
    std::vector<std::string> extra = {"--bump-revision", std::to_string(o.bump_revision)};
    if (!o.mark_compacted) extra.push_back("--no-mark-compacted");
    if (o.compact) extra.push_back("--compact");  // --plan passes it to every node
    if (o.manifests_dir != "/etc/kubernetes/manifests") extra.insert(extra.end(), {"--manifests-dir", o.manifests_dir});
    extra.push_back("--yes");
    std::fputs(controlplane::FormatRestorePlan(o, source, extra).c_str(), stdout);
    return;
  }
  Confirm(nf, o.systemd ? "restore --systemd-unit " + o.unit : std::string("restore --kubeadm"));
  auto log = [](const std::string& line) { std::fprintf(stderr, "etcdsafe: %s\n", line.c_str()); };
  controlplane::GuardedRestoreResult r = controlplane::RunGuardedRestore(o, log);
  using Outcome = controlplane::GuardedRestoreResult::Outcome;
  switch (r.outcome) {
    case Outcome::kDryRun:
      std::printf("dry run: nothing was changed; the restore would run these steps:\n");
      for (const auto& l : r.plan) std::printf("  %s\n", l.c_str());
      return;
    case Outcome::kRestored: {
      double total = 0;
      for (const auto& s : r.steps) total += s.seconds;
      std::printf("restored %s in %.1fs; old data dir kept at %s%s\n", r.data_dir.c_str(), total,
                  r.aside_dir.empty() ? "(none)" : r.aside_dir.c_str(),
                  r.last_snapshot.empty() ? "" : ("; last snapshot of the old etcd: " + r.last_snapshot).c_str());
      for (const auto& s : r.steps) {
        std::printf("  %-13s %6.1fs  %s\n", s.step.c_str(), s.seconds, s.detail.c_str());
      }
      return;
    }
    case Outcome::kFinished:
      std::printf("an interrupted restore (at %s) was finished: %s\n", r.interrupted_step.c_str(),
                  r.plan.empty() ? "" : r.plan.front().c_str());
      return;
    case Outcome::kRolledBack:
      throw CommandExit{kExitError, "an interrupted restore (at " + r.interrupted_step + ") was " +
                                             (r.plan.empty() ? std::string("rolled back") : r.plan.front()) +
                                             "; the old data is back: run the command again to restore"};
  }
}

}  // namespace

void AddRestoreCommand(CLI::App& app, GlobalFlags& g) {
  auto rf = std::make_shared<RepoFlags>();
  auto id = std::make_shared<std::string>("latest");
  auto opts = std::make_shared<snapshot::RestoreOptions>();
  auto nf = std::make_shared<NodeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "restore",
      "Restore a backup from a repository into a new etcd data dir, or restore a control-plane node's etcd in place "
      "(--kubeadm, --systemd-unit)");
  AddRepoFlags(*cmd, *rf);
  cmd->add_option("--backup", *id, "backup id, or latest")->capture_default_str();
  auto read = std::make_shared<backup::ReadOptions>();
  AddRestoreFlags(*cmd, *opts);
  cmd->add_flag("--allow-unauthenticated-manifest", read->allow_unauthenticated_manifest,
                "restore an encrypted backup whose manifest has no MAC (written by etcdsafe 0.1)");
  cmd->add_flag("--kubeadm", nf->kubeadm,
                "guarded in-place restore on a kubeadm control-plane node (member flags from the etcd static-pod manifest)");
  cmd->add_option("--snapshot", nf->snapshot, "with --kubeadm/--systemd-unit: restore this snapshot file");
  cmd->add_option("--manifests-dir", nf->manifests_dir, "the kubelet's static-pod dir")->capture_default_str();
  cmd->add_option("--root", nf->root, "prefix for every path (manifests, data dir, certificates, journal)");
  cmd->add_flag("--yes", nf->yes, "do not ask for confirmation");
  cmd->add_flag("--dry-run", nf->dry_run, "print every step with its paths and flags; change nothing");
  cmd->add_flag("--plan", nf->plan, "with --kubeadm --initial-cluster: print the command to run on every node");
  cmd->add_flag("--allow-other-cluster", nf->allow_other_cluster, "restore a snapshot of another cluster");
  cmd->add_option("--systemd-unit", nf->systemd_unit, "guarded in-place restore of etcd run as this systemd unit "
                                                      "(with --data-dir, --name, --initial-advertise-peer-urls)");
  cmd->add_option("--journal-dir", nf->journal_dir, "where the restore journal and lock live (default: the data dir's parent)");
  cmd->add_option("--wait-timeout", nf->wait_timeout, "seconds to wait for etcd to stop and to become healthy")
      ->capture_default_str();
  cmd->add_flag("--no-mark-compacted", nf->no_mark_compacted,
                "with --kubeadm/--systemd-unit: do not mark the bumped revision compacted");
  auto pf = std::make_shared<PointFlags>();
  cmd->add_option("--to-revision", pf->revision,
                  "with --repo: restore etcd as it was at this revision (a base backup plus its recorded events)");
  cmd->add_option("--to-time", pf->time,
                  "with --repo: restore etcd as it was at this time (RFC 3339, e.g. 2026-11-30T10:15:00Z)");
  cmd->add_flag("--to-latest", pf->latest, "with --repo: restore the newest revision the repository holds");
  auto all = std::make_shared<AllMembersFlags>();
  cmd->add_flag("--all-members", all->all_members,
                "with --repo: restore every member of --initial-cluster into <output-dir>/<name> and print how to "
                "start each");
  cmd->add_option("--output-dir", all->output_dir, "with --all-members: the directory of the member dirs");
  cmd->callback([cmd, &g, rf, id, opts, read, nf, pf, all] {
    if (all->all_members || Given(*cmd, "--output-dir")) {
      if (!all->all_members) throw Error(ErrorCode::kInvalidArgument, "--output-dir needs --all-members");
      if (rf->repos.empty()) throw Error(ErrorCode::kInvalidArgument, "--all-members needs --repo");
      for (const char* f : {"--kubeadm", "--systemd-unit", "--snapshot", "--root", "--yes", "--dry-run", "--plan",
                            "--allow-other-cluster", "--journal-dir", "--no-mark-compacted", "--to-revision",
                            "--to-time", "--to-latest", "--data-dir", "--wal-dir"}) {
        if (Given(*cmd, f)) throw Error(ErrorCode::kInvalidArgument, std::string(f) + " does not go with --all-members");
      }
      if (all->output_dir.empty()) throw Error(ErrorCode::kInvalidArgument, "--all-members needs --output-dir");
      RunRepoRestoreAll(*cmd, *rf, *id, *opts, all->output_dir, *read);
      return;
    }
    const int points = (Given(*cmd, "--to-revision") ? 1 : 0) + (Given(*cmd, "--to-time") ? 1 : 0) + (pf->latest ? 1 : 0);
    if (points > 1) throw Error(ErrorCode::kInvalidArgument, "--to-revision, --to-time and --to-latest exclude each other");
    if (points == 1) {
      if (nf->kubeadm || !nf->systemd_unit.empty()) {
        throw Error(ErrorCode::kInvalidArgument, "--to-revision, --to-time and --to-latest need --repo without --kubeadm/--systemd-unit");
      }
      if (Given(*cmd, "--backup") && *id != "latest") {
        throw Error(ErrorCode::kInvalidArgument, "--backup and --to-revision/--to-time/--to-latest exclude each other "
                                                 "(the point chooses the backup)");
      }
      if (rf->repos.empty()) throw Error(ErrorCode::kInvalidArgument, "--to-revision, --to-time and --to-latest need --repo");
      for (const char* f : {"--snapshot", "--root", "--yes", "--dry-run", "--plan", "--allow-other-cluster",
                            "--journal-dir", "--no-mark-compacted", "--allow-unauthenticated-manifest"}) {
        if (Given(*cmd, f)) throw Error(ErrorCode::kInvalidArgument, std::string(f) + " does not go with a point-in-time restore");
      }
      follow::PointInTime target;
      if (Given(*cmd, "--to-revision")) {
        if (pf->revision <= 0) throw Error(ErrorCode::kInvalidArgument, "--to-revision must be > 0");
        target.kind = follow::PointInTime::Kind::kRevision;
        target.revision = pf->revision;
      } else if (Given(*cmd, "--to-time")) {
        target.kind = follow::PointInTime::Kind::kTime;
        target.time_ms = follow::ParseTimeArg(pf->time);
      }
      RunPointRestore(*rf, target, *opts);
      return;
    }
    if (nf->kubeadm || !nf->systemd_unit.empty()) {
      RunNodeRestore(*cmd, g, *rf, *id, *opts, *read, *nf);
      return;
    }
    for (const char* f : {"--snapshot", "--root", "--yes", "--dry-run", "--plan", "--allow-other-cluster", "--journal-dir",
                          "--no-mark-compacted"}) {
      if (Given(*cmd, f)) throw Error(ErrorCode::kInvalidArgument, std::string(f) + " needs --kubeadm or --systemd-unit");
    }
    RunRepoRestore(*rf, *id, *opts, *read);
  });
}

}  // namespace etcdsafe::cli
