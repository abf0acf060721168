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

namespace {

// A mkdtemp directory removed when this object goes, or by the interrupt cleanup.
class ScratchDir {
 public:
  ScratchDir() : state_(std::make_shared<State>()) {
    std::shared_ptr<State> s = state_;
    cleanup_ = std::make_unique<InterruptCleanup>([s] {
      std::lock_guard lock(s->mu);
      if (!s->dir.empty()) RemoveAll(s->dir);
      s->dir.clear();
    });
    const char* t = std::getenv("TMPDIR");
    const std::string base = (t != nullptr && *t != '\0') ? t : "/tmp";
    std::string templ = base + "/etcdsafe-get-XXXXXX";
    CommitSection section;  // an interrupt that began already stops us here
    if (::mkdtemp(templ.data()) == nullptr) throw SystemError("create a scratch directory in " + base, errno);
    std::lock_guard lock(state_->mu);
    state_->dir = templ;
  }
  ~ScratchDir() {
    CommitSection section;
    std::lock_guard lock(state_->mu);
    if (!state_->dir.empty()) RemoveAll(state_->dir);
    state_->dir.clear();
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string path() const {
    std::lock_guard lock(state_->mu);
    return state_->dir;
  }

 private:
  struct State {
    std::mutex mu;
    std::string dir;
  };
  std::shared_ptr<State> state_;
  std::unique_ptr<InterruptCleanup> cleanup_;
};

}  // namespace

void GetFromRepository(backup::Repository& repo, const std::string& id_or_latest,
                       const std::optional<pipeline::KeySpec>& key, const RestoreIdentity& id, const GetRequest& req,
                       GetPrinter& printer, std::vector<std::string>* notes) {
  const Header header = RestoredHeader(id, 0);  // bad flags before any download
  if (req.key.empty()) throw Error(ErrorCode::kInvalidArgument, "etcdserver: key is not provided");
  ScratchDir scratch;
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
