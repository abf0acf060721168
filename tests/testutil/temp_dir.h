// Per-test temporary directory, removed on destruction (kept when ETCDSAFE_KEEP_TMP=1
// so a failing test's files can be inspected).
#pragma once

#include <string>

namespace etcdsafe::testutil {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Writes `data` to `path` (truncating), for fixtures.
void WriteFile(const std::string& path, const std::string& data);
std::string ReadFile(const std::string& path);

// Runs a shell command, returns its exit status; stdout+stderr captured into *output.
int RunCommand(const std::string& cmd, std::string* output = nullptr);

}  // namespace etcdsafe::testutil
