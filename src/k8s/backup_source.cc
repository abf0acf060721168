#include "k8s/backup_source.h"

#include <stdlib.h>

#include <cerrno>
#include <memory>
#include <mutex>

#include "backup/repo_ops.h"
#include "base/error.h"
#include "base/file.h"

namespace etcdsafe::k8s {
namespace {

// A mkdtemp directory removed when this object goes, or by the interrupt cleanup (as
// ops/get_repo.cc's, which is private to that file).
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
    std::string templ = base + "/etcdsafe-inspect-XXXXXX";
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

void WithBackupDb(backup::Repository& repo, const std::string& id_or_latest,
                  const std::optional<pipeline::KeySpec>& key, std::vector<std::string>* notes,
                  const std::function<void(ops::SnapshotKv&)>& fn) {
  ScratchDir scratch;
  snapshot::RestoreOptions opts;
  opts.data_dir = scratch.path() + "/restored";
  opts.note = [notes](const std::string& n) {
    if (notes != nullptr) notes->push_back(n);
  };
  backup::RestoreFromRepository(repo, id_or_latest, opts, key, {}, {}, notes);
  ops::SnapshotKv kv = ops::SnapshotKv::Open(opts.data_dir + "/member/snap/db");
  fn(kv);
}

}  // namespace etcdsafe::k8s
