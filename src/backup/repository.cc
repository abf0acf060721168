#include "backup/repository.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "backup/backup.h"
#include "base/error.h"

namespace etcdsafe::backup {
namespace {

constexpr int kMarkerFormat = 1;
constexpr size_t kMarkerLimit = 4 << 10;
constexpr size_t kManifestLimit = 64 << 10;

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string RandomId() {
  std::random_device rd;
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 16; i++) out.push_back(kDigits[rd() % 16]);
  return out;
}

}  // namespace

Repository::Repository(std::unique_ptr<store::Store> store) : store_(std::move(store)) {}

bool Repository::HasMarker() {
  const std::string what = Describe() + "/" + kMarkerName;
  std::string body;
  try {
    body = store_->Get(kMarkerName, kMarkerLimit);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kNotFound) return false;
    throw;
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(body);
  } catch (const nlohmann::json::exception&) {
    throw Error(ErrorCode::kDataLoss, what + ": not an etcdsafe repository marker (not JSON)");
  }
  if (!j.is_object() || !j.contains("etcdsafe_repository") || !j["etcdsafe_repository"].is_number_integer()) {
    throw Error(ErrorCode::kDataLoss, what + ": not an etcdsafe repository marker");
  }
  int64_t format = j["etcdsafe_repository"].get<int64_t>();
  if (format > kMarkerFormat) {
    throw Error(ErrorCode::kUnsupported, what + ": repository format " + std::to_string(format) +
                                             " is newer than this etcdsafe understands");
  }
  if (format < 1) throw Error(ErrorCode::kDataLoss, what + ": bad repository format");
  return true;
}

void Repository::RequireMarker(const std::string& action) {
  if (!HasMarker()) {
    throw Error(ErrorCode::kNotFound, Describe() + " is not an etcdsafe repository (no " + kMarkerName +
                                          "): refusing to " + action);
  }
}

void Repository::EnsureMarker() {
  if (HasMarker()) return;
  nlohmann::ordered_json j;
  j["etcdsafe_repository"] = kMarkerFormat;
  j["id"] = RandomId();
  j["created"] = FormatUtc(NowUnix());
  j["created_by"] = kToolVersion;
  j["note"] = "etcdsafe backup repository; etcdsafe deletes only the objects it names at this level";
  store_->Put(kMarkerName, j.dump(2) + "\n");
}

Repository::Scan Repository::ScanTop() {
  Scan scan;
  scan.objects = store_->ListDir("", /*include_temp=*/true);
  struct Candidate {
    Manifest m;
    std::string name;
  };
  std::vector<Candidate> candidates;
  for (const auto& obj : scan.objects) {
    if (ClassifyName(obj.name).kind != NameKind::kManifest) continue;
    const std::string& what = obj.name;
    try {
      if (obj.size > kManifestLimit) {
        throw Error(ErrorCode::kDataLoss, what + ": invalid manifest: larger than " + std::to_string(kManifestLimit) + " bytes");
      }
      Manifest m = ManifestFromJson(store_->Get(obj.name, kManifestLimit), what);
      ValidateManifestName(m, obj.name, what);
      candidates.push_back({std::move(m), obj.name});
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kNotFound) continue;  // removed meanwhile
      scan.invalid.push_back(e.what());  // "<name>: ..."
    }
  }
  // A data object belongs to one backup: two manifests claiming one make both invalid
  // (one of them is a copy, and nothing says which).
  std::map<std::string, std::vector<std::string>> claims;
  for (const auto& c : candidates) claims[c.m.data_object].push_back(c.name);
  for (auto& c : candidates) {
    const auto& who = claims[c.m.data_object];
    if (who.size() > 1) {
      std::string others;
      for (const auto& n : who) {
        if (n != c.name) others += (others.empty() ? "" : ", ") + n;
      }
      scan.invalid.push_back(c.name + ": invalid manifest: data object " + c.m.data_object + " is claimed by " +
                             others + " too");
      continue;
    }
    scan.backups.push_back(std::move(c.m));
  }
  std::sort(scan.backups.begin(), scan.backups.end(), [](const Manifest& a, const Manifest& b) {
    return a.time_unix != b.time_unix ? a.time_unix < b.time_unix : a.id < b.id;
  });
  for (auto& s : scan.invalid) s = EscapeForTerminal(s);
  return scan;
}

namespace {

std::string KindNoun(BackupKind kind) {
  return kind == BackupKind::kPki ? "a pki backup (certificates and configuration)" : "an etcd snapshot backup";
}

}  // namespace

std::vector<Manifest> Repository::ListBackups(std::vector<std::string>* damaged, std::optional<BackupKind> kind) {
  Scan scan = ScanTop();
  if (damaged != nullptr) *damaged = std::move(scan.invalid);
  if (!kind) return std::move(scan.backups);
  std::vector<Manifest> out;
  for (auto& m : scan.backups) {
    if (m.Kind() == *kind) out.push_back(std::move(m));
  }
  return out;
}

Manifest Repository::Find(const std::string& id_or_latest, std::vector<std::string>* skipped,
                          std::optional<BackupKind> kind) {
  Scan scan = ScanTop();
  if (id_or_latest == "latest") {
    if (skipped != nullptr) *skipped = scan.invalid;
    for (auto it = scan.backups.rbegin(); it != scan.backups.rend(); ++it) {
      if (!kind || it->Kind() == *kind) return *it;
    }
    const std::string what = !kind || *kind == BackupKind::kSnapshot ? "backups" : "pki backups";
    throw Error(ErrorCode::kNotFound, Describe() + ": no " + what +
                                          (scan.invalid.empty() ? "" : " (" + std::to_string(scan.invalid.size()) +
                                                                           " invalid manifests: " + scan.invalid.front() + ")"));
  }
  std::string id = id_or_latest;
  if (id.size() > sizeof(kManifestSuffix) - 1 && id.ends_with(kManifestSuffix)) {
    id.resize(id.size() - (sizeof(kManifestSuffix) - 1));
  }
  if (!IsBackupId(id)) {
    throw Error(ErrorCode::kInvalidArgument, "\"" + EscapeForTerminal(id) + "\" is not a backup id (want e.g. "
                                             "etcd-snapshot-20261122-020000-r105106, or latest)");
  }
  const std::string name = id + kManifestSuffix;
  for (const auto& bad : scan.invalid) {
    if (bad.rfind(name + ": ", 0) == 0) {
      throw Error(ErrorCode::kDataLoss, Describe() + ": refusing backup " + id + ": " + bad.substr(name.size() + 2));
    }
  }
  for (const auto& m : scan.backups) {
    if (m.id != id) continue;
    if (kind && m.Kind() != *kind) {
      throw Error(ErrorCode::kInvalidArgument, "backup " + id + " is " + KindNoun(m.Kind()) + ", not " +
                                                   KindNoun(*kind) +
                                                   (m.Kind() == BackupKind::kPki ? ": use etcdsafe pki restore or pki check"
                                                                                 : ""));
    }
    return m;
  }
  throw Error(ErrorCode::kNotFound, Describe() + ": no backup " + id);
}

std::unique_ptr<RepositoryLock> Repository::Lock(const std::string& operation,
                                                 std::vector<std::string>* removed_stale) {
  std::vector<std::string> stale;
  std::unique_ptr<RepositoryLock> lock = AcquireLock(*store_, operation, &stale);
  if (!stale.empty()) {
    // The run whose lock went stale is gone: the store temporaries of etcdsafe's names it
    // left (a killed upload of a data object or sidecar, up to a whole backup in size) can
    // go now, as prune removes them. Intent records and data objects stay for prune, which
    // proves them. Not those another run holding a lock may be writing right now: a
    // recorder's follow lock does not exclude a backup's or a prune's, nor theirs a
    // recorder's (lock.h), so segment temporaries stay while a follow lock is held and
    // other temporaries while a backup or prune lock is. The locks are listed after the
    // objects: a writer writes its lock before any object.
    try {
      Scan scan = ScanTop();
      const std::vector<LockInfo> held = HeldLocks(*store_, lock->name());
      std::map<std::string, size_t> spared;  // lock name -> temporaries left for it
      std::map<std::string, std::string> holder;
      for (const auto& o : scan.objects) {
        ParsedName p = ClassifyName(o.name);
        if (p.kind != NameKind::kTemp) continue;
        const std::string writer = p.base_kind == NameKind::kSegment ? kFollowOperation : "backup";
        auto it = std::find_if(held.begin(), held.end(), [&](const LockInfo& l) { return LocksConflict(writer, l); });
        if (it != held.end()) {
          spared[it->name]++;
          holder[it->name] = it->DisplayName() + " (" + it->Describe() + ")";
          continue;
        }
        lock->CheckHeld();
        CommitSection section;
        store_->Remove(o.name);
        stale.push_back("removed " + EscapeForTerminal(o.name) + " (uncommitted temporary of the run whose lock was stale)");
      }
      for (const auto& [name, n] : spared) {
        stale.push_back("left " + std::to_string(n) + " store temporar" + (n == 1 ? "y" : "ies") +
                        " alone: lock " + holder[name] + " is held and its run may be writing them");
      }
    } catch (const Error& e) {
      stale.push_back(std::string("temporaries of the stale run not removed (prune removes them): ") + e.what());
    }
  }
  if (removed_stale != nullptr) removed_stale->insert(removed_stale->end(), stale.begin(), stale.end());
  return lock;
}

std::string Repository::FreshStem(const std::string& stem) {
  // A stem is taken by any object of an earlier backup: its data (whatever the
  // extension), sidecar, intent record, manifest, or a temporary of one of them.
  std::set<std::string> taken;
  for (const auto& obj : store_->ListDir("", /*include_temp=*/true)) {
    ParsedName p = ClassifyName(obj.name);
    if (!p.stem.empty()) taken.insert(p.stem);
  }
  std::string candidate = stem;
  for (int i = 2; taken.count(candidate); i++) candidate = stem + "-" + std::to_string(i);
  return candidate;
}

void Repository::WritePending(const std::string& data_object, const std::string& operation) {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  nlohmann::ordered_json j;
  j["data_object"] = data_object;
  j["operation"] = operation;
  j["host"] = host;
  j["pid"] = static_cast<int>(::getpid());
  j["since"] = FormatUtc(NowUnix());
  store_->Put(data_object + kPendingSuffix, j.dump() + "\n");
}

void Repository::RemovePending(const std::string& data_object) { store_->Remove(data_object + kPendingSuffix); }

void Repository::WriteSidecar(const std::string& data_object, const std::string& sha256_hex) {
  store_->Put(data_object + kSidecarSuffix, sha256_hex + "  " + data_object + "\n");
}

void Repository::WriteManifest(const Manifest& m) {
  // Backups are write-once: never replace an existing backup's manifest.
  if (store_->Stat(m.id + kManifestSuffix).has_value()) {
    throw Error(ErrorCode::kAlreadyExists, Describe() + ": backup " + m.id + " already exists");
  }
  store_->Put(m.id + kManifestSuffix, ManifestToJson(m));
}

Uncommitted::Uncommitted(Repository& repo, std::string data_object)
    : repo_(repo), data_(std::move(data_object)), on_interrupt_([this] {
        try {
          if (!committed_) Remove();
        } catch (...) {
          // Left behind with its intent record: the next prune removes it.
        }
      }) {}

Uncommitted::~Uncommitted() {
  try {
    if (!committed_) Remove();
  } catch (const Error&) {
    // Left behind with its intent record: the next prune removes it.
  }
}

void Uncommitted::Remove() {
  repo_.store().Remove(data_);
  repo_.store().Remove(data_ + kSidecarSuffix);
  repo_.RemovePending(data_);
}

}  // namespace etcdsafe::backup
