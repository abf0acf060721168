// The flags every repository command shares (--repo, S3 options, the key), in one place
// so that backup, backups, prune, restore --repo, unlock and get --repo spell and check
// them alike.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backup/repository.h"
#include "pipeline/keys.h"
#include "store/store.h"

namespace etcdsafe::cli {

struct RepoFlags {
  std::vector<std::string> repos;
  std::string s3_endpoint, s3_region = "us-east-1", s3_ca_file;
  bool s3_path_style = false, s3_insecure = false;
  int s3_parallel_parts = 4;
  std::string key_file, key_env, passphrase_file;

  store::StoreOptions StoreOptions() const;
  // The key never comes from argv: a file, an environment variable or a passphrase file.
  std::optional<pipeline::KeySpec> Key() const;
  // Key() for commands that only read backups; a key-file warning (e.g. readable by
  // others) is printed here, since no report carries it.
  std::optional<pipeline::KeySpec> KeyWithWarning() const;
  // Exactly one --repo, which must exist (a mistyped path is not an empty repository).
  std::unique_ptr<backup::Repository> OpenOne() const;
};

struct RepoFlagSet {
  bool multiple = false;         // --repo repeatable (backup)
  bool repo_from_env = true;     // ETCDSAFE_REPO (not for get: a plain get must read the live etcd)
  bool keys = true;              // --encryption-key-file/-env, --passphrase-file
  bool upload_tuning = true;     // --s3-parallel-parts
  const char* repo_help = nullptr;
};

void AddRepoFlags(CLI::App& cmd, RepoFlags& f, const RepoFlagSet& set = {});

}  // namespace etcdsafe::cli
