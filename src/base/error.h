// The one error type of etcdsafe.
//
// Every fallible library function reports failure by throwing etcdsafe::Error. The
// code says what kind of failure it is (the CLI maps it to an exit code); the message
// is one line that names the cause, e.g. "snapshot.db: truncated: 4096 bytes, meta says
// 8192". Layers add context with Error::Wrap rather than inventing new codes.
// Why exceptions and not Status: see docs/decisions/0001-errors.md.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace etcdsafe {

enum class ErrorCode {
  kInvalidArgument,    // bad flag or input the user can fix
  kNotFound,           // file, backup or key does not exist
  kAlreadyExists,      // refusing to overwrite (data dir exists, ...)
  kLocked,             // another etcdsafe holds the repository lock
  kDataLoss,           // corrupt or truncated bytes, hash mismatch
  kUnavailable,        // endpoint unreachable, connection dropped, timeout
  kUnauthenticated,    // wrong password, missing/invalid client cert
  kPermissionDenied,   // authenticated but not allowed
  kIo,                 // local filesystem failure (disk full, EACCES, ...)
  kUnsupported,        // valid request we do not implement (e.g. -w protobuf)
  kInternal,           // a bug in etcdsafe
};

// Name of the code, for logs and JSON ("data_loss").
std::string_view ErrorCodeName(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}

  ErrorCode code() const noexcept { return code_; }

  // Returns a copy whose message is "<context>: <message>", same code.
  Error Wrap(std::string_view context) const {
    return Error(code_, std::string(context) + ": " + what());
  }

 private:
  ErrorCode code_;
};

// Builds an Error for a failed system call from errno: ENOSPC/EIO/... map to kIo,
// ENOENT to kNotFound, EEXIST/ENOTEMPTY to kAlreadyExists, EACCES/EPERM to
// kPermissionDenied. Message: "<what>: <strerror>".
Error SystemError(std::string_view what, int errnum);

}  // namespace etcdsafe
