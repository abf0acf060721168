#include "store/store.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <string_view>

#include "base/error.h"
#include "store/file_store.h"
#include "store/s3_store.h"

namespace etcdsafe::store {
namespace {

constexpr char kTempMarker[] = ".tmp-";
constexpr size_t kTempHex = 16;

}  // namespace

bool IsTempName(const std::string& name) {
  const size_t suffix = sizeof(kTempMarker) - 1 + kTempHex;
  if (name.size() < suffix) return false;
  size_t p = name.size() - suffix;
  if (name.compare(p, sizeof(kTempMarker) - 1, kTempMarker) != 0) return false;
  for (size_t i = name.size() - kTempHex; i < name.size(); ++i) {
    char c = name[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::string TempName(const std::string& name) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t r = rng();
  std::string out = name + kTempMarker;
  for (size_t i = 0; i < kTempHex; ++i) out += kHex[(r >> (4 * i)) & 15];
  return out;
}

namespace {

// Why `name` is not a valid object name, or nullptr.
const char* NameProblem(const std::string& name, bool allow_temp) {
  if (name.empty()) return "empty";
  if (name.size() > 900) return "longer than 900 bytes";
  if (name.find('\0') != std::string::npos) return "contains NUL";
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "contains a control character";
  }
  size_t start = 0;
  for (;;) {
    size_t end = name.find('/', start);
    std::string_view seg(name.data() + start,
                         (end == std::string::npos ? name.size() : end) - start);
    if (seg.empty()) return "empty path segment";
    if (seg == "." || seg == "..") return "'.' or '..' segment";
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (!allow_temp && IsTempName(name)) return "reserved temporary-file suffix";
  return nullptr;
}

// Control characters shown escaped, so the message stays one line.
std::string Printable(const std::string& s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

bool IsValidName(const std::string& name, bool allow_temp) {
  return NameProblem(name, allow_temp) == nullptr;
}

void ValidateName(const std::string& store_url, const std::string& name, bool allow_temp) {
  if (const char* why = NameProblem(name, allow_temp)) {
    throw Error(ErrorCode::kInvalidArgument,
                store_url + ": invalid object name \"" + Printable(name) + "\": " + why);
  }
}

void ValidateDir(const std::string& store_url, const std::string& dir) {
  if (dir.empty()) return;
  const char* why = dir.back() != '/' ? "a directory ends in '/'"
                                      : NameProblem(dir.substr(0, dir.size() - 1), false);
  if (why != nullptr) {
    throw Error(ErrorCode::kInvalidArgument,
                store_url + ": invalid directory \"" + Printable(dir) + "\": " + why);
  }
}

void Store::Put(const std::string& name, const std::string& data) {
  auto sink = Create(name);
  sink->Write(AsBytes(data));
  sink->Close();
}

std::string Store::Get(const std::string& name, size_t limit) {
  auto src = Open(name);
  std::string out;
  uint8_t buf[64 << 10];
  // Never asks for more than limit + 1 bytes: one past the limit proves "larger".
  const size_t want_total = limit == SIZE_MAX ? SIZE_MAX : limit + 1;
  for (;;) {
    size_t n = src->Read(buf, std::min(sizeof buf, want_total - out.size()));
    if (n == 0) break;
    if (out.size() + n > limit) {
      throw Error(ErrorCode::kDataLoss, Describe() + "/" + name + ": larger than " +
                                            std::to_string(limit) + " bytes");
    }
    out.append(reinterpret_cast<char*>(buf), n);
  }
  return out;
}

std::vector<std::string> Store::AbortStaleUploads(int64_t, const std::function<bool(const std::string&)>&) {
  return {};
}

std::unique_ptr<Store> OpenStore(const std::string& url, const StoreOptions& options) {
  if (url.starts_with("file://")) {
    std::string path = url.substr(7);
    if (path.empty() || path[0] != '/') {
      throw Error(ErrorCode::kInvalidArgument,
                  "repository " + url + ": file URL needs an absolute path (file:///dir)");
    }
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    return NewFileStore(path, options);
  }
  if (url.starts_with("s3://")) return NewS3Store(url, options);
  size_t colon = url.find("://");
  throw Error(ErrorCode::kInvalidArgument,
              "unknown repository scheme " +
                  (colon == std::string::npos ? "in \"" + url + "\""
                                              : "\"" + url.substr(0, colon) + "\"") +
                  ": want file:///path or s3://bucket/prefix");
}

}  // namespace etcdsafe::store
