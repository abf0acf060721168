// etcdsafe: back up and restore etcd natively. main only builds the command tree,
// dispatches, and maps errors to exit codes (exit_codes.h).
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <mutex>
#include <thread>

#include "base/error.h"
#include "base/file.h"
#include "commands.h"
#include "exit_codes.h"
#include "global_flags.h"

namespace {

[[noreturn]] void ExitInterrupted(int sig, const char* outcome) {
  static std::mutex once;
  once.lock();  // never unlocked: a second caller waits here for the first one's exit
  std::fprintf(stderr, "\nError: interrupted by signal %d; %s\n", sig, outcome);
  std::_Exit(etcdsafe::cli::kExitInterrupted);
}

// Signals are taken by a dedicated thread so that half-written files and directories
// (registered CleanupGuards) and repository locks (InterruptCleanups) can be removed
// before exiting: a signal skips destructors. Removing a lock from S3 is a request that
// can hang on a stalled endpoint, so the cleanup runs on its own thread and a second
// signal, or 10 s, exits without it (a lock left behind goes stale).
void StartSignalThread() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    int sig = 0;
    sigwait(&set, &sig);
    std::thread([sig] {
      etcdsafe::RemovePendingCleanups();
      ExitInterrupted(sig, "partial output removed");
    }).detach();
    timespec limit{10, 0};
    while (sigtimedwait(&set, nullptr, &limit) < 0 && errno == EINTR) {
    }
    ExitInterrupted(sig, "cleanup cut short, partial output may remain");
  }).detach();
}

}  // namespace

int main(int argc, char** argv) {
  // gRPC, zstd, curl and the pipeline each allocate on their own threads; glibc's default
  // of one malloc arena per thread let a 1 GB S3 backup's RSS wander between 106 and
  // 137 MiB. Two arenas: 110-116 MiB, same speed.
  mallopt(M_ARENA_MAX, 2);
  StartSignalThread();
  CLI::App app{"etcdsafe: back up and restore etcd, natively (etcdctl-compatible snapshot commands)"};
  app.set_version_flag("--version", "etcdsafe 0.1.0");
  app.require_subcommand(1);
  app.footer(
      "Exit codes: 0 ok, 1 error (corrupt data, I/O), 2 endpoint unreachable, 4 unsupported,\n"
      "3 partial (some repositories failed), 10 not found, 11 repository locked, 12 authentication/permission/wrong key, 13 target exists,\n"
      "128 bad arguments, 130 interrupted.");
  etcdsafe::cli::GlobalFlags globals;
  etcdsafe::cli::AddGlobalFlags(app, globals);
  etcdsafe::cli::AddSnapshotCommands(app, globals);
  etcdsafe::cli::AddBackupCommands(app, globals);
  etcdsafe::cli::AddUnlockCommand(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "Error: %s\n", e.what());
    return etcdsafe::cli::kExitBadArgs;
  } catch (const etcdsafe::cli::CommandExit& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "Error: %s\n", e.message.c_str());
    return e.code;
  } catch (const etcdsafe::Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "Error: %s\n", e.what());
    return etcdsafe::cli::ExitCodeFor(e.code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "Error: internal: %s\n", e.what());
    return etcdsafe::cli::kExitError;
  }
  return etcdsafe::cli::kExitOk;
}
