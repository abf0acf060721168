// etcdsafe backup | backups list | backups verify | prune (restore: cmd_restore.cc): the
// repository workflow that replaces the seeds' backup scripts (etcdctl save, gzip,
// sha256sum, gpg, aws s3 cp, find -mtime +30 -delete, lock file, disk-space check).
// list, verify and prune show, check and retain chains of continuous backup (follow/)
// with their base backups.
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "backup/backup.h"
#include "backup/layout.h"
#include "backup/repo_ops.h"
#include "backup/repository.h"
#include "base/error.h"
#include "commands.h"
#include "controlplane/pki_archive.h"
#include "drill_flags.h"
#include "follow/chain.h"
#include "follow/verify.h"
#include "exit_codes.h"
#include "pipeline/keys.h"
#include "progress.h"
#include "repo_flags.h"
#include "snapshot/status_format.h"

namespace etcdsafe::cli {
namespace {

std::string Size(uint64_t bytes) { return snapshot::HumanizeBytes(bytes); }

void RunBackup(const GlobalFlags& g, const RepoFlags& rf, const std::string& compression, int level,
               const FollowFlags& f) {
  backup::BackupOptions opts;
  opts.spill_dir = f.spill_dir;
  opts.max_spill_bytes = ParseSize(f.max_spill, "--max-spill");
  opts.repos = rf.repos;
  opts.store_options = rf.StoreOptions();
  opts.compression = pipeline::ParseCompression(compression);
  opts.compression_level = level;
  opts.key = rf.Key();
  if (opts.repos.empty()) throw Error(ErrorCode::kInvalidArgument, "--repo is required");
  std::unique_ptr<client::EtcdClient> client = client::EtcdClient::Connect(ToClientConfig(g));
  ProgressLine line("backing up " + client->endpoint());
  backup::BackupReport r = backup::RunBackup(*client, opts, [&](uint64_t b) { line.Update(b); });
  line.Done();
  for (const auto& n : r.notes) std::fprintf(stderr, "etcdsafe: %s\n", n.c_str());
  const backup::Manifest& m = r.manifest;
  std::printf("backup %s: revision %lld, %llu keys, hash %s, db %s -> stored %s (%s%s)\n", m.id.c_str(),
              static_cast<long long>(m.revision), static_cast<unsigned long long>(m.total_keys),
              HexNoPad(m.status_hash).c_str(), Size(m.db_size).c_str(), Size(m.stored_size).c_str(),
              m.compression.c_str(), m.encryption == "none" ? "" : (", encrypted, key " + m.key_id).c_str());
  for (const auto& o : r.repos) {
    if (o.ok) {
      std::printf("  ok      %s\n", o.repo.c_str());
    } else {
      std::printf("  FAILED  %s: %s\n", o.repo.c_str(), o.error.c_str());
    }
  }
  if (!r.all_ok()) throw CommandExit{kExitPartial, "backup written to only some repositories (partial)"};
}

// "-" or "3 segments, r101..250" (+ " (damaged)" when the names show a problem).
std::string ChainCell(const follow::Chain* c) {
  if (c == nullptr || c->segments.empty()) return "-";
  std::string s = std::to_string(c->segments.size()) + (c->segments.size() == 1 ? " segment, r" : " segments, r") +
                  std::to_string(c->base.revision + 1) + ".." + std::to_string(c->last_revision());
  if (!c->problems.empty()) s += " (damaged)";
  return s;
}

void RunList(const GlobalFlags& g, const RepoFlags& rf) {
  auto repo = rf.OpenOne();
  // One listing: every kind of backup, and the chains of continuous backup from their names
  // (nothing read: times would need reads).
  backup::Repository::Scan scan = repo->ScanTop();
  std::vector<std::string> damaged = scan.invalid;
  const follow::ChainScan chains = follow::ScanChains(scan);
  std::vector<backup::Manifest> all = std::move(scan.backups);
  std::map<std::string, const follow::Chain*> chain_of;
  for (const auto& c : chains.chains) chain_of[c.base.id] = &c;
  auto find_chain = [&](const backup::Manifest& m) -> const follow::Chain* {
    auto it = chain_of.find(m.id);
    return it == chain_of.end() ? nullptr : it->second;
  };
  if (g.write_out == "json") {
    nlohmann::ordered_json arr = nlohmann::json::array();
    for (const auto& m : all) {
      nlohmann::ordered_json j = nlohmann::ordered_json::parse(backup::ManifestToJson(m));
      j["kind"] = std::string(backup::BackupKindName(m.Kind()));  // also where the manifest has none
      if (m.Kind() == backup::BackupKind::kSnapshot) {
        // Revisions first..last continue this backup (first = revision + 1; no segments:
        // last = revision); usable_last_revision: up to where a restore can go.
        const follow::Chain* c = find_chain(m);
        nlohmann::ordered_json chain;
        chain["segments"] = c == nullptr ? 0 : c->segments.size();
        chain["first_revision"] = m.revision + 1;
        chain["last_revision"] = c == nullptr ? m.revision : c->last_revision();
        chain["usable_last_revision"] = c == nullptr ? m.revision : c->usable_last_revision;
        chain["problems"] = c == nullptr ? std::vector<std::string>{} : c->problems;
        j["chain"] = std::move(chain);
      }
      arr.push_back(std::move(j));
    }
    std::printf("%s\n", arr.dump().c_str());
  } else if (g.write_out == "table" || g.write_out == "simple") {
    std::vector<std::vector<std::string>> rows;
    for (const auto& m : all) {
      const bool pki = m.Kind() == backup::BackupKind::kPki;
      // A PKI backup has no revision; its "keys" are the files in its archive.
      rows.push_back({m.id, std::string(backup::BackupKindName(m.Kind())), backup::FormatUtc(m.time_unix),
                      pki ? "-" : std::to_string(m.revision), std::to_string(m.total_keys), Size(m.db_size),
                      Size(m.stored_size), m.compression, m.encryption == "none" ? "-" : m.key_id,
                      ChainCell(find_chain(m))});
    }
    if (g.write_out == "table") {
      std::fputs(snapshot::RenderTable(
                     {"id", "kind", "time", "revision", "keys", "db size", "stored", "compression", "key", "chain"},
                     rows)
                     .c_str(),
                 stdout);
    } else {
      for (const auto& r : rows) {
        std::string line;
        for (size_t i = 0; i < r.size(); i++) line += (i ? ", " : "") + r[i];
        std::printf("%s\n", line.c_str());
      }
    }
  } else {
    throw Error(ErrorCode::kUnsupported, "unsupported output format");
  }
  for (const auto& d : damaged) std::fprintf(stderr, "etcdsafe: invalid manifest %s\n", d.c_str());
  for (const auto& c : chains.chains) {
    for (const auto& p : c.problems) {
      std::fprintf(stderr, "etcdsafe: warning: chain of %s: %s (usable up to revision %lld)\n", c.base.id.c_str(),
                   p.c_str(), static_cast<long long>(c.usable_last_revision));
    }
  }
  for (const auto& o : chains.orphans) {
    std::fprintf(stderr,
                 "etcdsafe: warning: orphan segment %s: the backup it continues (%s) has no valid manifest\n",
                 backup::EscapeForTerminal(o.name).c_str(),
                 backup::EscapeForTerminal(o.parsed.stem + "-r" + std::to_string(o.parsed.revision)).c_str());
  }
}

void RunVerify(const RepoFlags& rf, const std::string& id) {
  auto repo = rf.OpenOne();
  std::optional<std::string> which;
  if (!id.empty()) which = id;
  const std::optional<pipeline::KeySpec> key = rf.KeyWithWarning();
  ProgressLine line("verifying");
  auto outcomes = backup::VerifyBackups(*repo, which, key, [&](uint64_t b) { line.Update(b); },
                                       controlplane::CheckPkiArchive);
  line.Done();
  follow::ChainVerifyReport chains = follow::VerifyChains(*repo, key, which);
  size_t bad = 0, need_key = 0;
  for (const auto& o : outcomes) {
    const std::string who = backup::EscapeForTerminal(o.manifest.id.empty() ? o.name : o.manifest.id);
    switch (o.state) {
      case backup::VerifyOutcome::State::kOk:
        if (o.manifest.Kind() == backup::BackupKind::kPki) {
          std::printf("ok       %s (pki, %llu files, %s)\n", who.c_str(),
                      static_cast<unsigned long long>(o.manifest.total_keys), Size(o.manifest.db_size).c_str());
          break;
        }
        std::printf("ok       %s (revision %lld, %s)\n", who.c_str(), static_cast<long long>(o.manifest.revision),
                    Size(o.manifest.db_size).c_str());
        break;
      case backup::VerifyOutcome::State::kKeyRequired:
        need_key++;
        std::printf("KEY?     %s: %s\n", who.c_str(), backup::EscapeForTerminal(o.problem).c_str());
        break;
      case backup::VerifyOutcome::State::kDamaged:
        bad++;
        std::printf("DAMAGED  %s: %s\n", who.c_str(), backup::EscapeForTerminal(o.problem).c_str());
        break;
    }
  }
  size_t bad_chains = 0, key_chains = 0;
  for (const auto& c : chains.chains) {
    const std::string range = std::to_string(c.segments) + (c.segments == 1 ? " segment" : " segments") +
                              ", revisions " + std::to_string(c.first_revision) + ".." +
                              std::to_string(c.last_revision);
    switch (c.state) {
      case follow::ChainVerifyOutcome::State::kOk: {
        std::string times;
        if (c.first_time_ms > 0) {
          times = ", " + backup::FormatUtc(c.first_time_ms / 1000) + " .. " + backup::FormatUtc(c.last_time_ms / 1000);
        }
        std::printf("ok       chain of %s (%s%s%s)\n", c.base_id.c_str(), range.c_str(), times.c_str(),
                    c.end.empty() ? "" : (", ended: " + backup::EscapeForTerminal(c.end)).c_str());
        break;
      }
      case follow::ChainVerifyOutcome::State::kKeyRequired:
        key_chains++;
        std::printf("KEY?     chain of %s (%s): %s\n", c.base_id.c_str(), range.c_str(), c.problem.c_str());
        break;
      case follow::ChainVerifyOutcome::State::kDamaged:
        bad_chains++;
        std::printf("DAMAGED  chain of %s (%s): %s\n", c.base_id.c_str(), range.c_str(), c.problem.c_str());
        break;
    }
  }
  for (const auto& o : chains.orphans) std::fprintf(stderr, "etcdsafe: warning: orphan segment %s\n", o.c_str());
  const std::string chain_count =
      chains.chains.empty() ? "" : " and " + std::to_string(chains.chains.size()) + " chains";
  if (bad > 0 || bad_chains > 0) {
    std::string what;
    if (bad > 0) what = std::to_string(bad) + " of " + std::to_string(outcomes.size()) + " backups";
    if (bad_chains > 0) {
      what += (what.empty() ? "" : " and ") + std::to_string(bad_chains) + " of " +
              std::to_string(chains.chains.size()) + " chains";
    }
    throw Error(ErrorCode::kDataLoss, what + " in " + repo->Describe() + " are damaged");
  }
  if (need_key > 0 || key_chains > 0) {
    std::string what;
    if (need_key > 0) what = std::to_string(need_key) + " of " + std::to_string(outcomes.size()) + " backups";
    if (key_chains > 0) {
      what += (what.empty() ? "" : " and ") + std::to_string(key_chains) + " of " +
              std::to_string(chains.chains.size()) + " chains";
    }
    throw Error(ErrorCode::kUnauthenticated,
                what + " in " + repo->Describe() + " are encrypted and were checked only as stored bytes: key required");
  }
  std::printf("%zu backups%s verified in %s\n", outcomes.size(), chain_count.c_str(), repo->Describe().c_str());
}

struct PruneFlags {
  catalog::RetentionPolicy policy;
  std::string keep_within, utc_offset;
  bool dry_run = false;
};

void RunPrune(const RepoFlags& rf, PruneFlags pf) {
  if (!pf.keep_within.empty()) pf.policy.keep_within = catalog::ParseKeepWithin(pf.keep_within);
  if (!pf.utc_offset.empty()) pf.policy.utc_offset = catalog::ParseUtcOffset(pf.utc_offset);
  catalog::ValidatePolicy(pf.policy);
  auto repo = rf.OpenOne();
  backup::PruneReport r = backup::Prune(*repo, pf.policy, pf.dry_run);
  for (const auto& n : r.notes) std::fprintf(stderr, "etcdsafe: %s\n", n.c_str());
  size_t removed = 0;
  for (const auto& d : r.decisions) {
    std::string reasons;
    for (size_t i = 0; i < d.reasons.size(); i++) reasons += (i ? ", " : "") + d.reasons[i];
    auto chain = r.chains.find(d.backup.id);
    // "backup X (with N segments, revisions A..B)" without the word "backup".
    const std::string who =
        backup::DescribeBackupWithChain(d.backup.id, chain == r.chains.end() ? nullptr : &chain->second).substr(7);
    if (d.keep) {
      std::printf("keep    %s  (%s)\n", who.c_str(), reasons.c_str());
    } else {
      removed++;
      std::printf("drop    %s\n", who.c_str());
    }
  }
  for (const auto& o : r.removed) {
    std::printf("%s  %s\n", pf.dry_run ? "would remove" : "removed", backup::EscapeForTerminal(o).c_str());
  }
  for (const auto& o : r.left_alone) std::fprintf(stderr, "etcdsafe: left alone: %s\n", o.c_str());
  std::printf("%s%zu of %zu backups removed, %zu kept%s\n", pf.dry_run ? "dry run: " : "", removed,
              r.decisions.size(), r.decisions.size() - removed, pf.dry_run ? " (nothing was deleted)" : "");
}

}  // namespace

void AddBackupCommands(CLI::App& app, GlobalFlags& g) {
  {
    auto rf = std::make_shared<RepoFlags>();
    auto compression = std::make_shared<std::string>("zstd");
    auto level = std::make_shared<int>(0);
    CLI::App* cmd = app.add_subcommand("backup", "Snapshot etcd into one or more repositories: verified, compressed, encrypted");
    AddRepoFlags(*cmd, *rf, {.multiple = true});
    cmd->add_option("--compression", *compression, "zstd, gzip or none")->capture_default_str();
    cmd->add_option("--compression-level", *level, "codec level (0: default, zstd 1 / gzip 6)");
    auto ff = std::make_shared<FollowFlags>();
    AddFollowFlags(*cmd, *ff);
    cmd->callback([&g, rf, compression, level, ff] {
      if (ff->follow) return RunFollow(g, *rf, *compression, *level, *ff);
      RunBackup(g, *rf, *compression, *level, *ff);
    });
  }
  CLI::App* backups = app.add_subcommand("backups", "List and verify the backups of a repository");
  backups->require_subcommand(1);
  backups->fallthrough();
  {
    auto rf = std::make_shared<RepoFlags>();
    CLI::App* cmd = backups->add_subcommand("list", "List complete backups, oldest first (-w table|simple|json)");
    AddRepoFlags(*cmd, *rf);
    cmd->callback([&g, rf] { RunList(g, *rf); });
  }
  {
    auto rf = std::make_shared<RepoFlags>();
    auto id = std::make_shared<std::string>();
    CLI::App* cmd = backups->add_subcommand("verify", "Re-download backups and check every hash and the db itself");
    AddRepoFlags(*cmd, *rf);
    cmd->add_option("--backup", *id, "only this backup (id or latest)");
    auto drill = std::make_shared<DrillFlags>();
    AddDrillFlags(*cmd, *drill);
    cmd->callback([rf, id, drill] {
      if (auto d = DrillRequested(*drill)) {
        auto repo = rf->OpenOne();
        FinishDrill(ops::DrillRepositoryBackup(*repo, id->empty() ? "latest" : *id, rf->KeyWithWarning(), {}, *d));
        return;
      }
      RunVerify(*rf, *id);
    });
  }
  {
    auto rf = std::make_shared<RepoFlags>();
    auto pf = std::make_shared<PruneFlags>();
    CLI::App* cmd = app.add_subcommand("prune", "Delete backups the retention policy does not keep");
    AddRepoFlags(*cmd, *rf);
    cmd->add_option("--keep-last", pf->policy.keep_last, "keep the N newest backups");
    cmd->add_option("--keep-hourly", pf->policy.keep_hourly, "keep the newest backup of each of the last N hours");
    cmd->add_option("--keep-daily", pf->policy.keep_daily, "... of each of the last N days");
    cmd->add_option("--keep-weekly", pf->policy.keep_weekly, "... of each of the last N ISO weeks");
    cmd->add_option("--keep-monthly", pf->policy.keep_monthly, "... of each of the last N months");
    cmd->add_option("--keep-yearly", pf->policy.keep_yearly, "... of each of the last N years");
    cmd->add_option("--keep-within", pf->keep_within, "keep everything newer than this, e.g. 7d, 36h, 1y2m");
    cmd->add_option("--utc-offset", pf->utc_offset, "calendar buckets in this fixed offset, e.g. +02:00 (default UTC)");
    cmd->add_flag("--dry-run", pf->dry_run, "print what would be removed, remove nothing");
    cmd->callback([rf, pf] { RunPrune(*rf, *pf); });
  }
}

}  // namespace etcdsafe::cli
