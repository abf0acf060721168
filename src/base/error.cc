#include "base/error.h"

#include <cerrno>
#include <cstring>

namespace etcdsafe {

std::string_view ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kAlreadyExists: return "already_exists";
    case ErrorCode::kLocked: return "locked";
    case ErrorCode::kDataLoss: return "data_loss";
    case ErrorCode::kUnavailable: return "unavailable";
    case ErrorCode::kUnauthenticated: return "unauthenticated";
    case ErrorCode::kPermissionDenied: return "permission_denied";
    case ErrorCode::kIo: return "io";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kInternal: return "internal";
  }
  return "unknown";
}

Error SystemError(std::string_view what, int errnum) {
  ErrorCode code = ErrorCode::kIo;
  switch (errnum) {
    case ENOENT: case ENOTDIR: code = ErrorCode::kNotFound; break;
    case EEXIST: case ENOTEMPTY: code = ErrorCode::kAlreadyExists; break;
    case EACCES: case EPERM: case EROFS: code = ErrorCode::kPermissionDenied; break;
    default: break;
  }
  return Error(code, std::string(what) + ": " + std::strerror(errnum));
}

}  // namespace etcdsafe
