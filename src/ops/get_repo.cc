// `etcdsafe get --repo R --backup ID|latest`: the backup read pipeline restores the backup
// into a scratch directory, and the restored db is read like a snapshot file.
#include <stdlib.h>

#include <cerrno>
#include <memory>
#include <mutex>

#include "backup/repo_ops.h"
#include "base/error.h"
#include "base/file.h"
#include "ops/get.h"

namespace etcdsafe::ops {

void GetFromRepository(backup::Repository& repo, const std::string& id_or_latest,
                       const std::optional<pipeline::KeySpec>& key, const RestoreIdentity& id, const GetRequest& req,
                       GetPrinter& printer, std::vector<std::string>* notes) {
  const Header header = RestoredHeader(id, 0);  // bad flags before any download
  if (req.key.empty()) throw Error(ErrorCode::kInvalidArgument, "etcdserver: key is not provided");
  ScratchDir scratch("etcdsafe-get");
  snapshot::RestoreOptions opts;
  opts.data_dir = scratch.path() + "/restored";
  opts.name = id.name;
  opts.initial_cluster = id.initial_cluster;
  opts.initial_cluster_token = id.initial_cluster_token;
  opts.initial_advertise_peer_urls = id.initial_advertise_peer_urls;
  opts.note = [notes](const std::string& n) {
    if (notes != nullptr) notes->push_back(n);
  };
  backup::RestoreFromRepository(repo, id_or_latest, opts, key, {}, {}, notes);
  SnapshotKv kv = SnapshotKv::Open(opts.data_dir + "/member/snap/db");
  GetFromSnapshot(kv, req, header, printer);
}

}  // namespace etcdsafe::ops
