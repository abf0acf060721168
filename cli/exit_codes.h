// The single table from error codes to process exit codes (published in docs/cli.md).
// Where etcdctl has a code for the same situation we use it, so scripts written for
// etcdctl keep their meaning: 2 bad connection, 4 unsupported output format, 128 bad args.
#pragma once

#include <string>

#include "base/error.h"

namespace etcdsafe::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitError = 1,          // corrupt data, I/O failure, internal error
  kExitUnavailable = 2,    // endpoint unreachable or connection lost (etcdctl: ExitBadConnection)
  kExitPartial = 3,        // some repositories failed, others succeeded
  kExitUnsupported = 4,    // e.g. -w protobuf (etcdctl: ExitBadFeature)
  kExitNotFound = 10,      // file, backup or key not found
  kExitLocked = 11,        // the repository is locked by another etcdsafe
  kExitAuth = 12,          // authentication or permission failure, wrong key
  kExitExists = 13,        // refusing to overwrite an existing target
  kExitDrillFailed = 14,   // a restore drill ran and one of its checks failed (ops::kExitDrillFailed)
  kExitPkiProblem = 15,    // pki check: a certificate expired or expiring within --warn-days, a key that does
                           // not match its certificate, a chain that does not verify; pki backup: keys that
                           // do not match their certificates (without --force)
  kExitPlaintextSecrets = 16,  // inspect secrets-audit --fail-on-plaintext: a Secret stored without encryption
  kExitBadArgs = 128,      // invalid flags or arguments (etcdctl: ExitBadArgs)
  kExitInterrupted = 130,  // SIGINT/SIGTERM
};

// Thrown by a command whose outcome is not an error of one kind, e.g. a backup that
// reached only some repositories: main prints the message and exits with `code`.
struct CommandExit {
  int code;
  std::string message;
};

inline int ExitCodeFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return kExitBadArgs;
    case ErrorCode::kNotFound: return kExitNotFound;
    case ErrorCode::kAlreadyExists: return kExitExists;
    case ErrorCode::kLocked: return kExitLocked;
    case ErrorCode::kUnavailable: return kExitUnavailable;
    case ErrorCode::kUnauthenticated:
    case ErrorCode::kPermissionDenied: return kExitAuth;
    case ErrorCode::kUnsupported: return kExitUnsupported;
    case ErrorCode::kDataLoss:
    case ErrorCode::kIo:
    case ErrorCode::kInternal: return kExitError;
  }
  return kExitError;
}

}  // namespace etcdsafe::cli
