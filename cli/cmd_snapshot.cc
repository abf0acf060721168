// etcdsafe snapshot save | status | restore | verify — drop-in for etcdctl 3.4's
// `snapshot` commands: same flags, same stdout, same numbers.
#include <cstdio>
#include <memory>

#include "base/bytes.h"
#include "base/error.h"
#include "client/etcd_client.h"
#include "commands.h"
#include "drill_flags.h"
#include "progress.h"
#include "snapshot/inspect.h"
#include "snapshot/restore.h"
#include "snapshot/save.h"
#include "snapshot/status_format.h"

namespace etcdsafe::cli {
namespace {

// etcdctl wants exactly one positional argument and says so with exit code 128.
const std::string& OneArg(const std::vector<std::string>& args, const std::string& message) {
  if (args.size() != 1) throw Error(ErrorCode::kInvalidArgument, message);
  return args[0];
}

void RunSave(const GlobalFlags& g, const std::vector<std::string>& args) {
  const std::string& path = OneArg(args, "snapshot save expects one argument");
  client::ClientConfig config = ToClientConfig(g);
  snapshot::CheckSaveTarget(path);  // before connecting: a bad target never costs a stream
  std::unique_ptr<client::EtcdClient> client = client::EtcdClient::Connect(config);
  ProgressLine line("saving snapshot from " + client->endpoint());
  snapshot::SaveResult r = snapshot::SaveSnapshot(
      [&](const snapshot::BlobSink& sink) { client->Snapshot(sink); }, path,
      [&](uint64_t bytes) { line.Update(bytes); });
  line.Done();
  std::fprintf(stderr, "etcdsafe: %llu bytes from %s, sha256 %s verified\n",
               static_cast<unsigned long long>(r.db_size), client->endpoint().c_str(),
               HexBytes(r.db_sha256).c_str());
  std::printf("Snapshot saved at %s\n", path.c_str());
}

void RunStatus(const GlobalFlags& g, const std::vector<std::string>& args) {
  const std::string& path = OneArg(args, "snapshot status requires exactly one argument");
  // Reject the output format before reading a possibly large file.
  (void)snapshot::FormatStatus({}, g.write_out);
  snapshot::FileStatus st = snapshot::ReadStatus(path);
  std::fputs(snapshot::FormatStatus(st.numbers, g.write_out).c_str(), stdout);
  // On success etcdctl prints nothing else, and scripts capture 2>&1 to parse the JSON:
  // the note is for --debug only.
  if (g.debug) {
    std::fprintf(stderr, "etcdsafe debug: integrity check passed; sha256 trailer %s\n",
                 st.has_trailer ? "present (check it with `etcdsafe snapshot verify`)" : "absent");
  }
}

void RunVerify(const std::vector<std::string>& args) {
  const std::string& path = OneArg(args, "snapshot verify requires exactly one argument");
  ProgressLine line("verifying " + path);
  snapshot::VerifyResult r = snapshot::VerifySnapshotFile(path, [&](uint64_t b) { line.Update(b); });
  line.Done();
  std::printf("%s: OK: sha256 %s matches the trailer; integrity check passed; revision %lld, %llu keys, %s\n",
              path.c_str(), HexBytes(r.db_sha256).c_str(),
              static_cast<long long>(r.status.numbers.revision),
              static_cast<unsigned long long>(r.status.numbers.total_key),
              snapshot::HumanizeBytes(r.status.numbers.total_size).c_str());
}

void RunRestore(const snapshot::RestoreOptions& base, const std::vector<std::string>& args) {
  snapshot::RestoreOptions opts = base;
  opts.snapshot_path = OneArg(args, "snapshot restore requires exactly one argument");
  ProgressLine line("restoring " + opts.snapshot_path);
  snapshot::RestoreResult r = snapshot::Restore(opts, [&](const std::string& stage, uint64_t bytes) {
    if (stage == "copy") line.Update(bytes);
  });
  line.Done();
  PrintRestoreSummary(opts.snapshot_path, r);
}

// --all-members: every member of --initial-cluster into <output-dir>/<name>, then the
// start plan on stdout (the per-member summaries go to stderr as for one member).
void RunRestoreAll(const CLI::App& restore, const snapshot::RestoreOptions& base, const AllMembersFlags& all,
                   const std::vector<std::string>& args) {
  snapshot::RestoreAllOptions o = AllMembersOptions(restore, base, all.output_dir);
  o.base.snapshot_path = OneArg(args, "snapshot restore requires exactly one argument");
  ProgressLine line("restoring " + o.base.snapshot_path + " for every member");
  snapshot::RestoreAllResult r = snapshot::RestoreAllMembers(o, [&](const std::string& stage, uint64_t bytes) {
    if (stage == "copy") line.Update(bytes);
  });
  line.Done();
  PrintRestoreAll(o.base.snapshot_path, r);
}

}  // namespace

snapshot::RestoreAllOptions AllMembersOptions(const CLI::App& restore, const snapshot::RestoreOptions& base,
                                              const std::string& output_dir) {
  snapshot::RestoreAllOptions o;
  o.base = base;
  o.output_dir = output_dir;
  // Each member's name and peer URLs come from --initial-cluster: flags that name one
  // member are refused (--initial-advertise-peer-urls, --data-dir, --wal-dir) or, for
  // --name, only checked.
  if (restore.count("--name") > 0) o.name = base.name;
  if (restore.count("--initial-advertise-peer-urls") == 0) o.base.initial_advertise_peer_urls.clear();
  if (restore.count("--initial-cluster") == 0) {
    throw Error(ErrorCode::kInvalidArgument, "--all-members needs --initial-cluster");
  }
  return o;
}

void PrintRestoreAll(const std::string& source, const snapshot::RestoreAllResult& r) {
  for (const auto& m : r.members) PrintRestoreSummary(source, m);
  std::fputs(snapshot::FormatStartPlan(r).c_str(), stdout);
}

void PrintRestoreSummary(const std::string& source, const snapshot::RestoreResult& r) {
  // etcdctl prints nothing on stdout for a restore; keep stdout clean for scripts.
  std::fprintf(stderr,
               "etcdsafe: restored %s into %s (member %s, cluster %s, %zu member%s; revision %lld, "
               "%llu keys, hash %s%s)\n",
               source.c_str(), r.data_dir.c_str(), HexNoPad(r.member_id).c_str(),
               HexNoPad(r.cluster_id).c_str(), r.member_count, r.member_count == 1 ? "" : "s",
               static_cast<long long>(r.restored.revision),
               static_cast<unsigned long long>(r.restored.total_key),
               HexNoPad(r.restored.hash).c_str(),
               r.hash_checked ? ", sha256 verified" : ", sha256 NOT checked");
  if (r.compact_revision > 0) {
    std::fprintf(stderr, "etcdsafe: compacted at revision %lld: kept %llu revisions, dropped %llu\n",
                 static_cast<long long>(r.compact_revision), static_cast<unsigned long long>(r.compact_kept),
                 static_cast<unsigned long long>(r.compact_dropped));
  }
}

void AddRestoreFlags(CLI::App& restore, snapshot::RestoreOptions& opts) {
  restore.add_option("--data-dir", opts.data_dir, "path to the data directory (default <name>.etcd)");
  restore.add_option("--wal-dir", opts.wal_dir, "path to the WAL directory (default <data-dir>/member/wal)");
  restore.add_option("--name", opts.name, "human-readable name for this member")->capture_default_str();
  restore.add_option("--initial-cluster", opts.initial_cluster, "initial cluster configuration for restore bootstrap")
      ->capture_default_str();
  restore.add_option("--initial-cluster-token", opts.initial_cluster_token, "initial cluster token")
      ->capture_default_str();
  restore.add_option("--initial-advertise-peer-urls", opts.initial_advertise_peer_urls,
                      "this member's peer URLs")
      ->capture_default_str();
  restore.add_flag("--skip-hash-check", opts.skip_hash_check, "ignore a missing or wrong sha256 trailer");
  restore.add_option("--bump-revision", opts.bump_revision,
                      "add N to the latest revision, so clients never see revisions go backwards");
  restore.add_flag("--mark-compacted", opts.mark_compacted,
                    "mark the bumped revision compacted, so watchers re-list (needed with --bump-revision)");
  restore.add_flag("--compact", opts.compact,
                    "keep only each key's live revision, as a compaction at the snapshot's revision would (smaller "
                    "db, faster etcd start; reads of older revisions fail as compacted)");
  restore.fallthrough();
}

void AddSnapshotCommands(CLI::App& app, GlobalFlags& g) {
  CLI::App* snap = app.add_subcommand("snapshot", "Save, inspect, verify and restore etcd snapshots");
  snap->require_subcommand(1);
  // Global flags may follow the subcommand, as with etcdctl (`snapshot save f --endpoints=...`).
  snap->fallthrough();

  auto save_args = std::make_shared<std::vector<std::string>>();
  CLI::App* save = snap->add_subcommand("save", "Stream a snapshot from etcd into FILE, verifying its sha256");
  save->add_option("file", *save_args, "destination file");
  save->fallthrough();
  save->callback([&g, save_args] { RunSave(g, *save_args); });

  auto status_args = std::make_shared<std::vector<std::string>>();
  CLI::App* status = snap->add_subcommand("status", "Print hash, revision, key count and size of a snapshot");
  status->add_option("file", *status_args, "snapshot file");
  status->fallthrough();
  status->callback([&g, status_args] { RunStatus(g, *status_args); });

  auto verify_args = std::make_shared<std::vector<std::string>>();
  CLI::App* verify = snap->add_subcommand("verify", "Check a snapshot's sha256 trailer and its bbolt structure");
  verify->add_option("file", *verify_args, "snapshot file");
  verify->fallthrough();
  auto drill = std::make_shared<DrillFlags>();
  AddDrillFlags(*verify, *drill);
  verify->callback([verify_args, drill] {
    if (auto d = DrillRequested(*drill)) {
      FinishDrill(ops::DrillSnapshotFile(OneArg(*verify_args, "snapshot verify requires exactly one argument"), *d));
      return;
    }
    RunVerify(*verify_args);
  });

  auto restore_args = std::make_shared<std::vector<std::string>>();
  auto opts = std::make_shared<snapshot::RestoreOptions>();
  CLI::App* restore = snap->add_subcommand("restore", "Create an etcd data directory from a snapshot");
  restore->add_option("file", *restore_args, "snapshot file");
  AddRestoreFlags(*restore, *opts);
  auto all = std::make_shared<AllMembersFlags>();
  restore->add_flag("--all-members", all->all_members,
                    "restore every member of --initial-cluster into <output-dir>/<name> and print how to start each");
  restore->add_option("--output-dir", all->output_dir, "with --all-members: the directory of the member dirs");
  restore->callback([restore, restore_args, opts, all] {
    if (all->all_members) {
      RunRestoreAll(*restore, *opts, *all, *restore_args);
      return;
    }
    if (!all->output_dir.empty()) throw Error(ErrorCode::kInvalidArgument, "--output-dir needs --all-members");
    RunRestore(*opts, *restore_args);
  });
}

}  // namespace etcdsafe::cli
