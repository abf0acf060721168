// etcdsafe inspect: Kubernetes-aware reading of a snapshot file, offline (issue 11).
//   inspect inventory SNAPSHOT|--repo R [--backup ID|latest] [--check-values] [-w table|json]
//   inspect get SNAPSHOT|--repo R [--backup ID] KEY [-o json|yaml|raw]
//   inspect secrets-audit SNAPSHOT|--repo R [--backup ID] [--configmaps] [--fail-on-plaintext] [-w table|json]
//   inspect diff A B | --repo R ID_A ID_B [--prefix P] [-w table|json]
//   inspect export SNAPSHOT|--repo R [--backup ID] [--namespace N] [--resource R] [-o jsonl|json]
// The work is in k8s/inspect.h, k8s/diff.h and k8s/export.h; this file only wires flags and prints.
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "commands.h"
#include "exit_codes.h"
#include "k8s/backup_source.h"
#include "k8s/diff.h"
#include "k8s/export.h"
#include "k8s/inspect.h"
#include "repo_flags.h"
#include "ops/snapshot_kv.h"

namespace etcdsafe::cli {
namespace {

void Print(const std::string& s) { std::fwrite(s.data(), 1, s.size(), stdout); }

bool WantJson(const GlobalFlags& g) {
  if (g.write_out == "json") return true;
  if (g.write_out == "simple" || g.write_out == "table") return false;
  throw Error(ErrorCode::kUnsupported, "inspect: -w " + g.write_out + " is not supported (table or json)");
}

struct InspectFlags {
  std::string snapshot;
  std::string key;
  std::vector<std::string> args;  // get: [SNAPSHOT] KEY
  std::string output = "json";
  std::string prefix = std::string(k8s::kRegistryPrefix);
  size_t top = 10;
  bool configmaps = false;
  bool fail_on_plaintext = false;
  bool check_values = false;  // inventory --check-values
  std::string key_prefix;  // diff --prefix
  std::string ns, resource;  // export --namespace / --resource
  // --repo R --backup ID|latest instead of a snapshot file.
  RepoFlags repo;
  std::string backup_id = "latest";
};

// Runs `fn` on the snapshot file, or on the repository backup restored to a scratch dir.
void WithSource(const InspectFlags& f, const std::function<void(ops::SnapshotKv&)>& fn) {
  if (f.snapshot.empty() == f.repo.repos.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "give a SNAPSHOT file or --repo R [--backup ID], not both or neither");
  }
  if (!f.snapshot.empty()) {
    ops::SnapshotKv kv = ops::SnapshotKv::Open(f.snapshot);
    fn(kv);
    return;
  }
  const std::optional<pipeline::KeySpec> key = f.repo.KeyWithWarning();
  std::unique_ptr<backup::Repository> repo = f.repo.OpenOne();
  std::vector<std::string> notes;
  k8s::WithBackupDb(*repo, f.backup_id, key, &notes, fn);
  for (const auto& n : notes) std::fprintf(stderr, "etcdsafe: %s\n", n.c_str());
}

void RunInventory(const GlobalFlags& g, const InspectFlags& f) {
  const bool json = WantJson(g);
  WithSource(f, [&](ops::SnapshotKv& kv) {
    const k8s::Inventory inv = k8s::TakeInventory(kv, f.top, f.prefix, f.check_values);
    Print(json ? k8s::InventoryToJson(inv).dump(2) + "\n" : k8s::InventoryToTable(inv));
  });
}

void RunGet(const InspectFlags& f) {
  if (f.output != "json" && f.output != "yaml" && f.output != "raw") {
    throw Error(ErrorCode::kUnsupported, "inspect get: -o " + f.output + " is not supported (json, yaml or raw)");
  }
  WithSource(f, [&](ops::SnapshotKv& kv) {
    if (f.output == "raw") {
      Print(k8s::ReadValue(kv, f.key));
      return;
    }
    const nlohmann::json j = k8s::DescribeKey(kv, f.key, f.prefix);
    Print(f.output == "yaml" ? k8s::ToYaml(j)
                             : j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  });
}

void RunSecretsAudit(const GlobalFlags& g, const InspectFlags& f) {
  const bool json = WantJson(g);
  k8s::SecretsAudit a;
  WithSource(f, [&](ops::SnapshotKv& kv) { a = k8s::AuditSecrets(kv, f.configmaps, f.prefix); });
  Print(json ? k8s::SecretsAuditToJson(a).dump(2) + "\n" : k8s::SecretsAuditToTable(a));
  if (f.fail_on_plaintext && a.plain > 0) {
    throw CommandExit{kExitPlaintextSecrets, std::to_string(a.plain) + " Secret(s) stored without encryption"};
  }
}

void RunDiff(const GlobalFlags& g, const InspectFlags& f) {
  const bool json = WantJson(g);
  if (f.args.size() != 2) {
    throw Error(ErrorCode::kInvalidArgument, "inspect diff: give two snapshot files A B, or --repo R and two backup ids");
  }
  k8s::DiffOptions opts;
  opts.key_prefix = f.key_prefix;
  opts.etcd_prefix = f.prefix;
  bool first = true;
  auto run = [&](ops::SnapshotKv& a, ops::SnapshotKv& b) {
    if (json) Print("{\n\"changes\": [");
    const k8s::DiffSummary s = k8s::DiffSnapshots(a, b, opts, [&](const k8s::DiffEntry& e) {
      if (json) {
        Print(std::string(first ? "\n" : ",\n") + k8s::DiffEntryToJson(e).dump(-1, ' ', false,
                                                                         nlohmann::json::error_handler_t::replace));
      } else {
        Print(k8s::DiffEntryToLine(e));
      }
      first = false;
    });
    if (json) {
      Print("\n],\n\"summary\": " + k8s::DiffSummaryToJson(s).dump(2) + "\n}\n");
    } else {
      Print((first ? "" : "\n") + k8s::DiffSummaryToTable(s));
    }
  };
  if (f.repo.repos.empty()) {
    ops::SnapshotKv a = ops::SnapshotKv::Open(f.args[0]);
    ops::SnapshotKv b = ops::SnapshotKv::Open(f.args[1]);
    run(a, b);
    return;
  }
  const std::optional<pipeline::KeySpec> key = f.repo.KeyWithWarning();
  std::unique_ptr<backup::Repository> repo = f.repo.OpenOne();
  std::vector<std::string> notes;
  k8s::WithBackupDb(*repo, f.args[0], key, &notes, [&](ops::SnapshotKv& a) {
    k8s::WithBackupDb(*repo, f.args[1], key, &notes, [&](ops::SnapshotKv& b) { run(a, b); });
  });
  for (const auto& n : notes) std::fprintf(stderr, "etcdsafe: %s\n", n.c_str());
}

void RunExport(const InspectFlags& f) {
  if (f.output != "jsonl" && f.output != "json") {
    throw Error(ErrorCode::kUnsupported, "inspect export: -o " + f.output + " is not supported (jsonl or json)");
  }
  k8s::ObjectSelection sel;
  sel.ns = f.ns;
  sel.resource = f.resource;
  sel.etcd_prefix = f.prefix;
  const bool array = f.output == "json";
  WithSource(f, [&](ops::SnapshotKv& kv) {
    bool first = true;
    if (array) Print("[");
    k8s::ExportObjects(kv, sel, [&](const nlohmann::json& j) {
      const std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      if (array) {
        Print((first ? "\n" : ",\n") + line);
      } else {
        Print(line + "\n");
      }
      first = false;
    });
    if (array) Print(first ? "]\n" : "\n]\n");
  });
}

// The common flags: --etcd-prefix and the repository source.
void AddPrefix(CLI::App& cmd, InspectFlags& f) {
  cmd.add_option("--etcd-prefix", f.prefix, "the API server's --etcd-prefix, with a trailing slash")
      ->capture_default_str();
  AddRepoFlags(cmd, f.repo,
               {.repo_from_env = false, .upload_tuning = false,
                .repo_help = "read a repository backup instead of a SNAPSHOT file (see --backup)"});
  cmd.add_option("--backup", f.backup_id, "with --repo: backup id, or latest")->capture_default_str();
}

}  // namespace

void AddInspectCommands(CLI::App& app, GlobalFlags& g) {
  CLI::App* inspect = app.add_subcommand("inspect", "Read a Kubernetes cluster's snapshot offline (no etcd needed)");
  inspect->require_subcommand(1);
  inspect->fallthrough();  // global flags (-w) after the subcommand

  auto inv = std::make_shared<InspectFlags>();
  CLI::App* c = inspect->add_subcommand(
      "inventory", "Objects and bytes per resource and namespace, the largest objects, non-object keys (-w table|json)");
  c->add_option("snapshot", inv->snapshot, "snapshot (or backend db) file; or --repo");
  c->add_option("--top", inv->top, "how many of the largest objects to list")->capture_default_str();
  c->add_flag("--check-values", inv->check_values,
              "parse every JSON value, counting malformed ones apart (slower: JSON-heavy snapshots ~2x the time)");
  AddPrefix(*c, *inv);
  c->fallthrough();
  c->callback([&g, inv] { RunInventory(g, *inv); });

  auto get = std::make_shared<InspectFlags>();
  c = inspect->add_subcommand("get", "One key's envelope, type and metadata (-o json|yaml), or its raw value (-o raw)");
  // [SNAPSHOT] KEY: with --repo, the one positional is the key.
  c->add_option("args", get->args, "[SNAPSHOT] KEY, e.g. /backup/etcd.db /registry/pods/default/nginx")->required();
  c->add_option("-o,--output", get->output, "json, yaml or raw")->capture_default_str();
  AddPrefix(*c, *get);
  c->fallthrough();
  c->callback([get] {
    if (get->args.size() == 2) {
      get->snapshot = get->args[0];
      get->key = get->args[1];
    } else if (get->args.size() == 1 && !get->repo.repos.empty()) {
      get->key = get->args[0];
    } else {
      throw Error(ErrorCode::kInvalidArgument, "inspect get: give SNAPSHOT KEY, or --repo R [--backup ID] KEY");
    }
    RunGet(*get);
  });

  auto audit = std::make_shared<InspectFlags>();
  c = inspect->add_subcommand("secrets-audit",
                              "Secrets stored in plain text vs encrypted at rest, by provider (-w table|json)");
  c->add_option("snapshot", audit->snapshot, "snapshot (or backend db) file; or --repo");
  c->add_flag("--configmaps", audit->configmaps, "count ConfigMaps too");
  c->add_flag("--fail-on-plaintext", audit->fail_on_plaintext,
              "exit 16 when any Secret is stored without encryption (a CI/compliance check)");
  AddPrefix(*c, *audit);
  c->fallthrough();
  c->callback([&g, audit] { RunSecretsAudit(g, *audit); });

  auto diff = std::make_shared<InspectFlags>();
  c = inspect->add_subcommand("diff",
                              "Objects added, removed, changed and recreated between two snapshots A (old) and B (new)"
                              " (-w table|json)");
  c->add_option("args", diff->args, "A B: snapshot files; with --repo: two backup ids (or latest)")->required();
  c->add_option("--prefix", diff->key_prefix, "compare only keys starting with this, e.g. /registry/pods/default/");
  c->add_option("--etcd-prefix", diff->prefix, "the API server's --etcd-prefix, with a trailing slash")
      ->capture_default_str();
  AddRepoFlags(*c, diff->repo,
               {.repo_from_env = false, .upload_tuning = false,
                .repo_help = "compare two backups of a repository instead of two files"});
  c->get_option("--repo")->allow_extra_args(false);  // one URL per --repo: the ids follow
  c->fallthrough();
  c->callback([&g, diff] { RunDiff(g, *diff); });

  auto exp = std::make_shared<InspectFlags>();
  exp->output = "jsonl";
  c = inspect->add_subcommand("export", "Objects as JSON, one per line (-o jsonl) or as one array (-o json)");
  c->add_option("snapshot", exp->snapshot, "snapshot (or backend db) file; or --repo");
  c->add_option("--namespace", exp->ns, "objects of this namespace, and the Namespace itself (default: every object)");
  c->add_option("--resource", exp->resource, "only this resource: pods, deployments, example.com/widgets, ...");
  c->add_option("-o,--output", exp->output, "jsonl or json")->capture_default_str();
  AddPrefix(*c, *exp);
  c->fallthrough();
  c->callback([exp] { RunExport(*exp); });
}

}  // namespace etcdsafe::cli
