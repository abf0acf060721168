#include "store/store.h"

#include <random>

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

void ValidateName(const std::string& store_url, const std::string& name) {
  auto bad = [&](const char* why) {
    throw Error(ErrorCode::kInvalidArgument,
                store_url + ": invalid object name \"" + name + "\": " + why);
  };
  if (name.empty()) bad("empty");
  if (name.size() > 900) bad("longer than 900 bytes");
  if (name.find('\0') != std::string::npos) bad("contains NUL");
  size_t start = 0;
  for (;;) {
    size_t end = name.find('/', start);
    std::string_view seg(name.data() + start,
                         (end == std::string::npos ? name.size() : end) - start);
    if (seg.empty()) bad("empty path segment");
    if (seg == "." || seg == "..") bad("'.' or '..' segment");
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (IsTempName(name)) bad("reserved temporary-file suffix");
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
  for (;;) {
    size_t n = src->Read(buf, sizeof buf);
    if (n == 0) break;
    if (out.size() + n > limit) {
      throw Error(ErrorCode::kDataLoss, Describe() + "/" + name + ": larger than " +
                                            std::to_string(limit) + " bytes");
    }
    out.append(reinterpret_cast<char*>(buf), n);
  }
  return out;
}

// Placeholder until every backend lists one level itself (filters the recursive List).
std::vector<ObjectInfo> Store::ListDir(const std::string& dir, bool /*include_temp*/) {
  std::vector<ObjectInfo> out;
  for (auto& o : List(dir)) {
    if (o.name.find('/', dir.size()) == std::string::npos) out.push_back(std::move(o));
  }
  return out;
}

std::unique_ptr<Store> OpenStore(const std::string& url, const StoreOptions& options) {
  if (url.starts_with("file://")) {
    std::string path = url.substr(7);
    if (path.empty() || path[0] != '/') {
      throw Error(ErrorCode::kInvalidArgument,
                  "repository " + url + ": file URL needs an absolute path (file:///dir)");
    }
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    return NewFileStore(path);
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
