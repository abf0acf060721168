// etcdsafe get: etcdctl 3.4's `get` over a live endpoint, or from a snapshot file with no
// etcd running (--from-snapshot FILE) or a repository backup (--repo R --backup ID): the
// answer an etcd restored from it would give.
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "backup/backup.h"
#include "backup/repository.h"
#include "base/error.h"
#include "client/etcd_client.h"
#include "commands.h"
#include "repo_flags.h"
#include "exit_codes.h"
#include "ops/get.h"
#include "ops/snapshot_kv.h"

namespace etcdsafe::cli {
namespace {

struct GetCliFlags {
  ops::GetFlags get;
  std::string from_snapshot;
  ops::RestoreIdentity identity;
  // --repo R --backup ID|latest: the repository flags of `restore --repo` (cmd_backup.cc).
  RepoFlags repo;
  std::string backup_id = "latest";
};

void RunGet(const GlobalFlags& g, GetCliFlags f) {
  f.get.write_out = g.write_out;
  const ops::GetRequest req = ops::ParseGet(f.get);
  ops::GetPrinter printer(req, [](std::string_view s) { std::fwrite(s.data(), 1, s.size(), stdout); });
  if (!f.from_snapshot.empty() && !f.repo.repos.empty()) {
    throw Error(ErrorCode::kInvalidArgument, "give --from-snapshot or --repo, not both");
  }
  try {
    if (!f.repo.repos.empty()) {
      const std::optional<pipeline::KeySpec> key = f.repo.KeyWithWarning();
      std::unique_ptr<backup::Repository> repo = f.repo.OpenOne();
      std::vector<std::string> notes;
      ops::GetFromRepository(*repo, f.backup_id, key, f.identity, req, printer, &notes);
      for (const auto& n : notes) std::fprintf(stderr, "etcdsafe: %s\n", n.c_str());
    } else if (!f.from_snapshot.empty()) {
      // Flags first: a bad --initial-cluster is refused before the file is read.
      const ops::Header header = ops::RestoredHeader(f.identity, 0);
      ops::SnapshotKv kv = ops::SnapshotKv::Open(f.from_snapshot);
      ops::GetFromSnapshot(kv, req, header, printer);
    } else {
      std::unique_ptr<client::EtcdClient> c = client::EtcdClient::Connect(ToClientConfig(g));
      const ops::GetResponse resp = ops::GetLive(*c, req);
      printer.Begin(resp.header);
      for (const ops::KeyValue& kv : resp.kvs) printer.Kv(kv);
      printer.End(resp.more, resp.count);
    }
  } catch (const Error& e) {
    // etcd refused the request (compacted, future revision, no key): etcdctl exits 1.
    if (ops::IsRejected(e)) throw CommandExit{kExitError, e.what()};
    throw;
  }
}

}  // namespace

void AddGetCommand(CLI::App& app, GlobalFlags& g) {
  auto f = std::make_shared<GetCliFlags>();
  CLI::App* cmd = app.add_subcommand(
      "get", "Get a key or a range of keys, from an endpoint or from a snapshot file (--from-snapshot)");
  cmd->add_option("key", f->get.args, "KEY [RANGE_END]");
  cmd->add_flag("--prefix", f->get.prefix, "get keys with matching prefix");
  cmd->add_flag("--from-key", f->get.from_key, "get keys that are greater than or equal to the given key");
  cmd->add_flag("--keys-only", f->get.keys_only, "get only the keys");
  cmd->add_flag("--print-value-only", f->get.print_value_only,
                "only write values when using the \"simple\" output format");
  cmd->add_option("--limit", f->get.limit, "maximum number of results");
  cmd->add_option("--rev", f->get.rev, "specify the kv revision");
  cmd->add_option("--from-snapshot", f->from_snapshot,
                  "read a snapshot file instead of an endpoint (no etcd needed): what an etcd restored from it "
                  "would answer");
  AddRepoFlags(*cmd, f->repo,
               {.repo_from_env = false, .upload_tuning = false,
                .repo_help = "read a repository backup instead (file:///path or s3://bucket/prefix; see --backup)"});
  cmd->add_option("--backup", f->backup_id, "with --repo: backup id, or latest")->capture_default_str();
  cmd->add_option("--name", f->identity.name, "with --from-snapshot: the --name the restore would get")
      ->capture_default_str();
  cmd->add_option("--initial-cluster", f->identity.initial_cluster,
                  "with --from-snapshot: the restore's --initial-cluster (decides the header's IDs)")
      ->capture_default_str();
  cmd->add_option("--initial-cluster-token", f->identity.initial_cluster_token,
                  "with --from-snapshot: the restore's --initial-cluster-token")
      ->capture_default_str();
  cmd->add_option("--initial-advertise-peer-urls", f->identity.initial_advertise_peer_urls,
                  "with --from-snapshot: the restore's --initial-advertise-peer-urls")
      ->capture_default_str();
  cmd->fallthrough();
  cmd->callback([&g, f] { RunGet(g, *f); });
}

}  // namespace etcdsafe::cli
