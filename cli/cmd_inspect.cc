// etcdsafe inspect: Kubernetes-aware reading of a snapshot file, offline (issue 11).
//   inspect inventory SNAPSHOT [-w table|json]
//   inspect get SNAPSHOT KEY [-o json|yaml|raw]
//   inspect secrets-audit SNAPSHOT [--configmaps] [--fail-on-plaintext] [-w table|json]
// The work is in k8s/inspect.h; this file only wires flags and prints.
#include <cstdio>
#include <memory>
#include <string>

#include "base/error.h"
#include "commands.h"
#include "exit_codes.h"
#include "k8s/inspect.h"
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
  std::string output = "json";
  std::string prefix = std::string(k8s::kRegistryPrefix);
  size_t top = 10;
  bool configmaps = false;
  bool fail_on_plaintext = false;
};

void RunInventory(const GlobalFlags& g, const InspectFlags& f) {
  const bool json = WantJson(g);
  ops::SnapshotKv kv = ops::SnapshotKv::Open(f.snapshot);
  const k8s::Inventory inv = k8s::TakeInventory(kv, f.top, f.prefix);
  Print(json ? k8s::InventoryToJson(inv).dump(2) + "\n" : k8s::InventoryToTable(inv));
}

void RunGet(const InspectFlags& f) {
  if (f.output != "json" && f.output != "yaml" && f.output != "raw") {
    throw Error(ErrorCode::kUnsupported, "inspect get: -o " + f.output + " is not supported (json, yaml or raw)");
  }
  ops::SnapshotKv kv = ops::SnapshotKv::Open(f.snapshot);
  if (f.output == "raw") {
    Print(k8s::ReadValue(kv, f.key));
    return;
  }
  const nlohmann::json j = k8s::DescribeKey(kv, f.key, f.prefix);
  Print(f.output == "yaml" ? k8s::ToYaml(j)
                           : j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

void RunSecretsAudit(const GlobalFlags& g, const InspectFlags& f) {
  const bool json = WantJson(g);
  ops::SnapshotKv kv = ops::SnapshotKv::Open(f.snapshot);
  const k8s::SecretsAudit a = k8s::AuditSecrets(kv, f.configmaps, f.prefix);
  Print(json ? k8s::SecretsAuditToJson(a).dump(2) + "\n" : k8s::SecretsAuditToTable(a));
  if (f.fail_on_plaintext && a.plain > 0) {
    throw CommandExit{kExitPlaintextSecrets, std::to_string(a.plain) + " Secret(s) stored without encryption"};
  }
}

void AddPrefix(CLI::App& cmd, InspectFlags& f) {
  cmd.add_option("--etcd-prefix", f.prefix, "the API server's --etcd-prefix, with a trailing slash")
      ->capture_default_str();
}

}  // namespace

void AddInspectCommands(CLI::App& app, GlobalFlags& g) {
  CLI::App* inspect = app.add_subcommand("inspect", "Read a Kubernetes cluster's snapshot offline (no etcd needed)");
  inspect->require_subcommand(1);
  inspect->fallthrough();  // global flags (-w) after the subcommand

  auto inv = std::make_shared<InspectFlags>();
  CLI::App* c = inspect->add_subcommand(
      "inventory", "Objects and bytes per resource and namespace, the largest objects, non-object keys (-w table|json)");
  c->add_option("snapshot", inv->snapshot, "snapshot (or backend db) file")->required();
  c->add_option("--top", inv->top, "how many of the largest objects to list")->capture_default_str();
  AddPrefix(*c, *inv);
  c->fallthrough();
  c->callback([&g, inv] { RunInventory(g, *inv); });

  auto get = std::make_shared<InspectFlags>();
  c = inspect->add_subcommand("get", "One key's envelope, type and metadata (-o json|yaml), or its raw value (-o raw)");
  c->add_option("snapshot", get->snapshot, "snapshot (or backend db) file")->required();
  c->add_option("key", get->key, "the etcd key, e.g. /registry/pods/default/nginx")->required();
  c->add_option("-o,--output", get->output, "json, yaml or raw")->capture_default_str();
  AddPrefix(*c, *get);
  c->fallthrough();
  c->callback([get] { RunGet(*get); });

  auto audit = std::make_shared<InspectFlags>();
  c = inspect->add_subcommand("secrets-audit",
                              "Secrets stored in plain text vs encrypted at rest, by provider (-w table|json)");
  c->add_option("snapshot", audit->snapshot, "snapshot (or backend db) file")->required();
  c->add_flag("--configmaps", audit->configmaps, "count ConfigMaps too");
  c->add_flag("--fail-on-plaintext", audit->fail_on_plaintext,
              "exit 16 when any Secret is stored without encryption (a CI/compliance check)");
  AddPrefix(*c, *audit);
  c->fallthrough();
  c->callback([&g, audit] { RunSecretsAudit(g, *audit); });
}

}  // namespace etcdsafe::cli
