#include "snapshot/status_format.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

#include "base/bytes.h"
#include "base/error.h"

namespace etcdsafe::snapshot {

std::string HumanizeBytes(uint64_t size) {
  static const char* kSuffix[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
  char buf[64];
  if (size < 10) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(size));
    return buf;
  }
  double s = static_cast<double>(size);
  int e = static_cast<int>(std::floor(std::log(s) / std::log(1000.0)));
  double val = std::floor(s / std::pow(1000.0, e) * 10 + 0.5) / 10;
  // printf's %.0f rounds half to even, exactly like Go's strconv; keep it.
  std::snprintf(buf, sizeof buf, val < 10 ? "%.1f %s" : "%.0f %s", val, kSuffix[e]);
  return buf;
}

std::string RenderTable(const std::vector<std::string>& headers,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(headers.size());
  for (size_t i = 0; i < headers.size(); i++) {
    width[i] = headers[i].size();
    for (const auto& row : rows) width[i] = std::max(width[i], row[i].size());
  }
  std::string border = "+";
  for (size_t w : width) border += std::string(w + 2, '-') + "+";
  border += "\n";
  std::string out = border + "|";
  for (size_t i = 0; i < headers.size(); i++) {
    std::string h = headers[i];
    std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return std::toupper(c); });
    size_t gap = width[i] - h.size();
    out += " " + std::string(gap / 2, ' ') + h + std::string(gap - gap / 2, ' ') + " |";
  }
  out += "\n" + border;
  for (const auto& row : rows) {
    out += "|";
    for (size_t i = 0; i < row.size(); i++) {
      out += " " + std::string(width[i] - row[i].size(), ' ') + row[i] + " |";
    }
    out += "\n";
  }
  return out + border;
}

std::string FormatStatus(const StatusNumbers& s, const std::string& format) {
  std::string hash_hex = HexNoPad(s.hash);
  std::string rev = std::to_string(s.revision);
  std::string keys = std::to_string(s.total_key);
  if (format == "simple") {
    return hash_hex + ", " + rev + ", " + keys + ", " + HumanizeBytes(s.total_size) + "\n";
  }
  if (format == "table") {
    return RenderTable({"hash", "revision", "total keys", "total size"},
                       {{hash_hex, rev, keys, HumanizeBytes(s.total_size)}});
  }
  if (format == "json") {
    return "{\"hash\":" + std::to_string(s.hash) + ",\"revision\":" + rev +
           ",\"totalKey\":" + keys + ",\"totalSize\":" + std::to_string(s.total_size) + "}\n";
  }
  if (format == "fields") {
    return "\"Hash\" : " + std::to_string(s.hash) + "\n\"Revision\" : " + rev +
           "\n\"Keys\" : " + keys + "\n\"Size\" : " + std::to_string(s.total_size) + "\n";
  }
  if (format == "protobuf") {
    throw Error(ErrorCode::kUnsupported, "protobuf not supported as output format");
  }
  throw Error(ErrorCode::kUnsupported, "unsupported output format");
}

}  // namespace etcdsafe::snapshot
