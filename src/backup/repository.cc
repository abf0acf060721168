#include "backup/repository.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "base/error.h"

namespace etcdsafe::backup {
namespace {

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

Repository::Repository(std::unique_ptr<store::Store> store) : store_(std::move(store)) {}

std::vector<Manifest> Repository::ListBackups(std::vector<std::string>* damaged) {
  std::vector<Manifest> out;
  for (const auto& obj : store_->List("")) {
    if (!EndsWith(obj.name, kManifestSuffix) || obj.name.find('/') != std::string::npos) continue;
    try {
      out.push_back(ManifestFromJson(store_->Get(obj.name, 1 << 20), Describe() + "/" + obj.name));
    } catch (const Error& e) {
      if (damaged != nullptr) damaged->push_back(obj.name + ": " + e.what());
    }
  }
  std::sort(out.begin(), out.end(), [](const Manifest& a, const Manifest& b) {
    return a.time_unix != b.time_unix ? a.time_unix < b.time_unix : a.id < b.id;
  });
  return out;
}

Manifest Repository::Find(const std::string& id_or_latest) {
  std::vector<Manifest> all = ListBackups();
  if (id_or_latest == "latest") {
    if (all.empty()) throw Error(ErrorCode::kNotFound, Describe() + ": no backups");
    return all.back();
  }
  std::string id = id_or_latest;
  if (EndsWith(id, kManifestSuffix)) id.resize(id.size() - std::string(kManifestSuffix).size());
  for (const auto& m : all) {
    if (m.id == id) return m;
  }
  throw Error(ErrorCode::kNotFound, Describe() + ": no backup " + id);
}

std::vector<std::string> Repository::Orphans() {
  std::set<std::string> referenced;
  std::vector<store::ObjectInfo> objects = store_->List("");
  for (const auto& m : ListBackups()) {
    referenced.insert(m.data_object);
    referenced.insert(m.data_object + kSidecarSuffix);
  }
  std::vector<std::string> out;
  for (const auto& obj : objects) {
    if (obj.name.rfind(kLockPrefix, 0) == 0 || EndsWith(obj.name, kManifestSuffix)) continue;
    if (obj.name.rfind("etcd", 0) != 0 && obj.name.find(".db") == std::string::npos) continue;  // not ours
    if (!referenced.count(obj.name)) out.push_back(obj.name);
  }
  return out;
}

std::unique_ptr<RepositoryLock> Repository::Lock(const std::string& operation,
                                                 std::vector<std::string>* removed_stale) {
  return AcquireLock(*store_, operation, removed_stale);
}

std::string Repository::FreshStem(const std::string& stem) {
  // A stem is taken by any object of an earlier backup: its data (whatever the
  // extension), sidecar or manifest ("<stem>-r<rev>.manifest.json").
  auto taken = [&](const std::string& candidate) {
    for (const auto& obj : store_->List(candidate)) {
      const std::string rest = obj.name.substr(candidate.size());
      if (rest.rfind(".", 0) == 0 || rest.rfind("-r", 0) == 0) return true;
    }
    return false;
  };
  std::string candidate = stem;
  for (int i = 2; taken(candidate); i++) candidate = stem + "-" + std::to_string(i);
  return candidate;
}

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

void Repository::RemoveBackup(const Manifest& m) {
  store_->Remove(m.id + kManifestSuffix);
  store_->Remove(m.data_object);
  store_->Remove(m.data_object + kSidecarSuffix);
}

}  // namespace etcdsafe::backup
