// etcdsafe restore-objects: selected Kubernetes objects of a snapshot or repository backup
// written back into a live etcd (issue 11).
//   restore-objects --from SNAPSHOT | --repo R [--backup ID] --to ENDPOINTS
//       --namespace N | --prefix P | --key K [--resource R]
//       [--dry-run (default) | --apply] [--overwrite] [--allow-encrypted] [--report FILE]
// The work is in k8s/restore_objects.h; this file wires flags and prints one line per key.
// Exit 13 when --apply left conflicting keys untouched (without --overwrite).
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "client/etcd_client.h"
#include "commands.h"
#include "exit_codes.h"
#include "k8s/backup_source.h"
#include "k8s/restore_objects.h"
#include "ops/snapshot_kv.h"
#include "repo_flags.h"

namespace etcdsafe::cli {
namespace {

struct RestoreObjectsFlags {
  std::string from;
  RepoFlags repo;
  std::string backup_id = "latest";
  std::string to;
  k8s::ObjectSelection selection;
  bool dry_run = false, apply = false, overwrite = false, allow_encrypted = false;
  std::string report;
};

// The --report file: {"source", "target", "apply", "overwrite", "sourceRevision", "keys":
// [...], "complete", "summary"}, written as the keys are processed.
class Report {
 public:
  Report(const std::string& path, const nlohmann::json& head) : path_(path) {
    if (path.empty()) return;
    f_ = std::fopen(path.c_str(), "w");
    if (f_ == nullptr) throw Error(ErrorCode::kIo, "cannot write the report " + path);
    std::string h = head.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    h.pop_back();  // the closing brace: "keys" and "summary" follow
    Write(h + (head.empty() ? "" : ",") + "\n\"keys\": [");
  }
  // Without Finish (an error stopped the run): still valid JSON, with the keys processed so
  // far (those written are marked) and "complete": false.
  ~Report() {
    if (f_ == nullptr) return;
    Write("\n],\n\"complete\": false\n}\n");
    std::fclose(f_);
  }
  void Key(const nlohmann::json& j) {
    if (f_ == nullptr) return;
    Write(std::string(first_ ? "\n" : ",\n") + j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    first_ = false;
  }
  void Finish(const nlohmann::json& summary) {
    if (f_ == nullptr) return;
    Write("\n],\n\"complete\": true,\n\"summary\": " + summary.dump(2) + "\n}\n");
    const bool bad = std::fflush(f_) != 0 || std::ferror(f_) != 0;
    std::fclose(f_);
    f_ = nullptr;
    if (bad) throw Error(ErrorCode::kIo, "cannot write the report " + path_);
  }

 private:
  void Write(const std::string& s) { std::fwrite(s.data(), 1, s.size(), f_); }
  std::string path_;
  std::FILE* f_ = nullptr;
  bool first_ = true;
};

void Run(const GlobalFlags& g, RestoreObjectsFlags& f) {
  if (f.from.empty() == f.repo.repos.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "restore-objects: give --from SNAPSHOT or --repo R [--backup ID], not both or neither");
  }
  if (f.to.empty()) throw Error(ErrorCode::kInvalidArgument, "restore-objects: --to ENDPOINTS is required");
  if (f.dry_run && f.apply) throw Error(ErrorCode::kInvalidArgument, "restore-objects: --dry-run and --apply exclude each other");
  GlobalFlags target_flags = g;
  target_flags.endpoints = f.to;
  k8s::RestoreObjectsOptions opts;
  opts.selection = f.selection;
  opts.apply = f.apply;
  opts.overwrite = f.overwrite;
  opts.allow_encrypted = f.allow_encrypted;

  // Flags are checked before anything is read or dialled.
  const int given = int(!f.selection.ns.empty()) + int(!f.selection.key_prefix.empty()) + int(!f.selection.key.empty());
  if (given != 1) throw Error(ErrorCode::kInvalidArgument, "restore-objects: give exactly one of --namespace, --prefix or --key");

  std::unique_ptr<client::EtcdClient> target = client::EtcdClient::Connect(ToClientConfig(target_flags));
  k8s::RestoreObjectsSummary sum;
  auto run = [&](ops::SnapshotKv& kv) {
    Report report(f.report, {{"source", f.from.empty() ? f.repo.repos.front() + " backup " + f.backup_id : f.from},
                             {"target", target->endpoint()},
                             {"apply", f.apply},
                             {"overwrite", f.overwrite},
                             {"sourceRevision", kv.current_revision()}});
    sum = k8s::RestoreObjects(kv, *target, opts, [&](const k8s::ObjectOutcome& o) {
      std::string line = std::string(k8s::ObjectActionName(o.action)) + " " + o.key;
      if (o.written) line += " (written at revision " + std::to_string(o.written_revision) + ")";
      if (o.action == k8s::ObjectAction::kConflict || o.action == k8s::ObjectAction::kOverwrite) {
        line += " (target mod revision " + std::to_string(o.target_mod_revision) + ")";
      }
      line += "\n";
      std::fwrite(line.data(), 1, line.size(), stdout);
      report.Key(k8s::ObjectOutcomeToJson(o));
    });
    report.Finish(k8s::RestoreObjectsSummaryToJson(sum));
  };
  if (!f.from.empty()) {
    ops::SnapshotKv kv = ops::SnapshotKv::Open(f.from);
    run(kv);
  } else {
    const std::optional<pipeline::KeySpec> key = f.repo.KeyWithWarning();
    std::unique_ptr<backup::Repository> repo = f.repo.OpenOne();
    std::vector<std::string> notes;
    k8s::WithBackupDb(*repo, f.backup_id, key, &notes, run);
    for (const auto& n : notes) std::fprintf(stderr, "etcdsafe: %s\n", n.c_str());
  }
  std::printf("%s: %lld selected: %lld create, %lld equal, %lld conflict, %lld overwrite, %lld skipped (leased), "
              "%lld refused (encrypted); %lld written in %lld transaction(s)%s\n",
              f.apply ? "applied" : "dry run", (long long)sum.selected, (long long)sum.create, (long long)sum.equal,
              (long long)sum.conflict, (long long)sum.overwrite, (long long)sum.skipped_leased,
              (long long)sum.refused_encrypted, (long long)sum.written, (long long)sum.transactions,
              f.apply ? "" : " (nothing written: --apply to write)");
  std::fflush(stdout);
  if (f.apply && sum.conflict > 0) {
    throw CommandExit{kExitExists, std::to_string(sum.conflict) +
                                       " key(s) exist in the target with other values and were left untouched "
                                       "(--overwrite replaces them)"};
  }
}

}  // namespace

void AddRestoreObjectsCommand(CLI::App& app, GlobalFlags& g) {
  auto f = std::make_shared<RestoreObjectsFlags>();
  CLI::App* c = app.add_subcommand(
      "restore-objects",
      "Write selected Kubernetes objects of a snapshot or backup back into a live etcd (dry run unless --apply)");
  c->add_option("--from", f->from, "snapshot (or backend db) file; or --repo");
  AddRepoFlags(*c, f->repo,
               {.repo_from_env = false, .upload_tuning = false,
                .repo_help = "read a repository backup instead of a snapshot file (see --backup)"});
  c->add_option("--backup", f->backup_id, "with --repo: backup id, or latest")->capture_default_str();
  c->add_option("--to", f->to, "the target etcd's endpoints (comma separated); TLS and auth flags as for every command");
  c->add_option("--namespace", f->selection.ns, "every object of this namespace, and the Namespace object first");
  c->add_option("--prefix", f->selection.key_prefix, "every key starting with this");
  c->add_option("--key", f->selection.key, "this one key");
  c->add_option("--resource", f->selection.resource, "only objects of this resource (pods, example.com/widgets, ...)");
  c->add_option("--etcd-prefix", f->selection.etcd_prefix, "the API server's --etcd-prefix, with a trailing slash")
      ->capture_default_str();
  c->add_flag("--dry-run", f->dry_run, "classify only: create / equal / conflict per key (the default)");
  c->add_flag("--apply", f->apply, "write: one transaction per batch, creating only keys that do not exist");
  c->add_flag("--overwrite", f->overwrite,
              "with --apply: also replace keys whose value differs, if their mod revision is still the one seen");
  c->add_flag("--allow-encrypted", f->allow_encrypted,
              "write values encrypted at rest (k8s:enc:...): only when the target's API server has the same key");
  c->add_option("--report", f->report, "write a JSON report of every key (action, written, revisions) to FILE");
  c->fallthrough();
  c->callback([&g, f] { Run(g, *f); });
}

}  // namespace etcdsafe::cli
