// etcdsafe: back up and restore etcd natively. main only builds the command tree,
// dispatches, and maps errors to exit codes (exit_codes.h).
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <thread>

#include "base/error.h"
#include "base/file.h"
#include "base/signals.h"
#include "commands.h"
#include "exit_codes.h"
#include "global_flags.h"

namespace {

// Blocked before any static initializer (gRPC's, abseil's) runs and before main: a signal
// that arrives while the process starts stays pending until the signal thread takes it
// (exit 130), instead of killing the process by default action (exit 143). Threads
// started from now on inherit the mask, so only the signal thread ever receives them.
__attribute__((constructor(101))) void BlockSignalsEarly() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  sigprocmask(SIG_BLOCK, &set, nullptr);
}

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
//
// The cleanup (RemovePendingCleanups) first takes the commit lock: it waits for a commit
// in progress, and from then on the main thread stops at its next commit or file
// creation (see base/file.h), so nothing is created, moved or committed while the
// cleanup removes what is pending, and nothing committed is ever removed.
//
// A second signal within kSecondSignalGrace of the first is the same request again, not
// a user insisting: `timeout` signals its child and then its whole process group (the
// child again), and a terminal's Ctrl-C reaches every process of the foreground group.
// It does not cut the cleanup short; a later one (a deliberate second Ctrl-C) does.
constexpr auto kSecondSignalGrace = std::chrono::seconds(2);
// Set by the signal thread before the cleanup starts: main then never exits on its own.
std::atomic<bool> g_interrupted{false};
constexpr auto kCleanupLimit = std::chrono::seconds(10);

void StartSignalThread() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    int sig = 0;
    for (;;) {
      sigwait(&set, &sig);
      // A command that handles signals itself (the agent) gets every one of them.
      if (!etcdsafe::ForwardSignal(sig)) break;
    }
    g_interrupted = true;
    const auto first = std::chrono::steady_clock::now();
    std::thread([sig] {
      size_t removed = etcdsafe::RemovePendingCleanups();
      ExitInterrupted(sig, removed > 0 ? "partial output removed" : "no partial output to remove");
    }).detach();
    for (;;) {
      auto left = kCleanupLimit - (std::chrono::steady_clock::now() - first);
      if (left <= std::chrono::nanoseconds::zero()) break;
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      timespec limit{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
      int got = sigtimedwait(&set, nullptr, &limit);
      if (got < 0) {
        if (errno == EINTR) continue;
        break;  // EAGAIN: the time is up
      }
      if (std::chrono::steady_clock::now() - first >= kSecondSignalGrace) break;  // a deliberate second signal
    }
    ExitInterrupted(sig, "cleanup cut short, partial output may remain");
  }).detach();
}

// Every way out of main once the signal thread runs: the commit lock first (if an
// interrupt cleanup has begun, this waits for its exit: 130), then flush and _exit, so
// static destructors never run while the cleanup thread still walks static objects.
// An interrupted run always ends with the signal thread's 130 and its message, even when
// the command got to finish its commit while the cleanup waited for it.
[[noreturn]] void Exit(int code) {
  std::cout.flush();
  std::fflush(stdout);
  std::fflush(stderr);
  for (;;) {
    if (!g_interrupted) {
      etcdsafe::CommitSection done;  // never released if we exit here
      // A signal from here on finds the work done: its cleanup waits for this lock, and
      // the process ends first.
      if (!g_interrupted) std::_Exit(code);
    }
    // The signal thread's cleanup takes the lock (released above) and exits 130.
    std::this_thread::sleep_for(std::chrono::hours(1));
  }
}

int Run(int argc, char** argv) {
  CLI::App app{"etcdsafe: back up and restore etcd, natively (etcdctl-compatible snapshot commands)"};
  app.set_version_flag("--version", "etcdsafe 0.2.0");
  app.require_subcommand(1);
  app.footer(
      "Exit codes: 0 ok, 1 error (corrupt data, I/O), 2 endpoint unreachable, 4 unsupported,\n"
      "3 partial (some repositories failed), 10 not found, 11 repository locked, 12 authentication/permission/wrong key, 13 target exists, 14 drill check failed,\n"
      "15 certificate expiring/expired or PKI inconsistent, 16 plaintext Secrets found (inspect secrets-audit --fail-on-plaintext),\n"
      "128 bad arguments, 130 interrupted.");
  etcdsafe::cli::GlobalFlags globals;
  etcdsafe::cli::AddGlobalFlags(app, globals);
  etcdsafe::cli::AddSnapshotCommands(app, globals);
  etcdsafe::cli::AddBackupCommands(app, globals);
  etcdsafe::cli::AddCompactCommand(app, globals);  // under `backups`: after AddBackupCommands
  etcdsafe::cli::AddRestoreCommand(app, globals);
  etcdsafe::cli::AddPkiCommands(app, globals);
  etcdsafe::cli::AddUnlockCommand(app);
  etcdsafe::cli::AddVersionCommand(app);
  etcdsafe::cli::AddEndpointCommands(app, globals);
  etcdsafe::cli::AddMemberCommands(app, globals);
  etcdsafe::cli::AddGetCommand(app, globals);
  etcdsafe::cli::AddAgentCommand(app);
  etcdsafe::cli::AddInspectCommands(app, globals);
  etcdsafe::cli::AddRestoreObjectsCommand(app, globals);
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
    if (!e.message.empty()) std::fprintf(stderr, "Error: %s\n", e.message.c_str());  // etcdctl: some exits have none
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

}  // namespace

int main(int argc, char** argv) {
  // gRPC, zstd, curl and the pipeline each allocate on their own threads; glibc's default
  // of one malloc arena per thread let a 1 GB S3 backup's RSS wander between 106 and
  // 137 MiB. Two arenas: 110-116 MiB, same speed.
  mallopt(M_ARENA_MAX, 2);
  StartSignalThread();
  // Run's locals (the command tree, clients) are destroyed before Exit; static objects
  // never are.
  Exit(Run(argc, argv));
}
