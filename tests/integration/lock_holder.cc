// lock_holder: takes a repository lock ("backup") the way etcdsafe does and holds it, for
// the lock integration tests (a real second process, possibly in another PID namespace).
//
//   lock_holder [--as-pid N] [--s3-endpoint URL] REPO_URL
//
// Prints "locked <lock name> pid <pid>", then reads commands from stdin: "check" runs
// RepositoryLock::CheckHeld and prints "held" or "lost: <error>". At EOF it releases the
// lock and exits 0. Failing to take the lock prints "error: <error>" and exits 11.
// --as-pid N (as pid 1 of a fresh PID namespace, e.g. under `unshare --pid --fork
// --mount-proc`): sets ns_last_pid so that the lock is taken by a child with pid N.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "backup/lock.h"
#include "base/error.h"
#include "store/store.h"

int main(int argc, char** argv) {
  std::string url, endpoint;
  long as_pid = 0;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--as-pid" && i + 1 < argc) {
      as_pid = std::stol(argv[++i]);
    } else if (a == "--s3-endpoint" && i + 1 < argc) {
      endpoint = argv[++i];
    } else {
      url = a;
    }
  }
  if (url.empty()) {
    std::fprintf(stderr, "usage: lock_holder [--as-pid N] [--s3-endpoint URL] REPO_URL\n");
    return 128;
  }
  if (as_pid > 0) {
    FILE* f = std::fopen("/proc/sys/kernel/ns_last_pid", "w");
    if (f == nullptr || std::fprintf(f, "%ld", as_pid - 1) < 0 || std::fclose(f) != 0) {
      std::printf("error: ns_last_pid: %s\n", std::strerror(errno));
      return 1;
    }
    pid_t child = ::fork();
    if (child < 0) return 1;
    if (child > 0) {
      int status = 0;
      ::waitpid(child, &status, 0);
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (::getpid() != as_pid) {
      std::printf("error: got pid %d, not %ld\n", static_cast<int>(::getpid()), as_pid);
      return 1;
    }
  }
  try {
    etcdsafe::store::StoreOptions o;
    o.s3_endpoint = endpoint;
    o.path_style = true;
    std::unique_ptr<etcdsafe::store::Store> store = etcdsafe::store::OpenStore(url, o);
    std::unique_ptr<etcdsafe::backup::RepositoryLock> lock = etcdsafe::backup::AcquireLock(*store, "backup", nullptr);
    std::printf("locked %s pid %d\n", lock->name().c_str(), static_cast<int>(::getpid()));
    std::fflush(stdout);
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line != "check") continue;
      try {
        lock->CheckHeld();
        std::printf("held\n");
      } catch (const etcdsafe::Error& e) {
        std::printf("lost: %s\n", e.what());
      }
      std::fflush(stdout);
    }
  } catch (const etcdsafe::Error& e) {
    std::printf("error: %s\n", e.what());
    return 11;
  }
  return 0;
}
