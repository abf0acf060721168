#include "ops/etcdctl_output.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>

#include "base/error.h"

namespace etcdsafe::ops {
namespace {

constexpr size_t kMaxColWidth = 30;  // tablewriter's default MaxColWidth
constexpr long kPenalty = 100000;    // tablewriter's defaultPenalty

// Display width: runes (the table cells etcdctl prints are ASCII).
size_t Width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::vector<std::string> SplitSpaces(const std::string& s) {
  std::vector<std::string> out(1);
  for (char c : s) {
    if (c == ' ' || c == '\n') {
      out.emplace_back();
    } else {
      out.back() += c;
    }
  }
  return out;
}

// tablewriter.WrapString: words split on single spaces, wrapped with WrapWords'
// minimum-raggedness rule at `lim` (raised to the longest word).
std::vector<std::string> WrapString(const std::string& s, size_t lim_in) {
  std::vector<std::string> words = SplitSpaces(s);
  long lim = static_cast<long>(lim_in);
  for (const auto& w : words) lim = std::max(lim, static_cast<long>(Width(w)));
  const size_t n = words.size();
  std::vector<std::vector<long>> length(n, std::vector<long>(n, 0));
  for (size_t i = 0; i < n; i++) {
    length[i][i] = static_cast<long>(Width(words[i]));
    for (size_t j = i + 1; j < n; j++) length[i][j] = length[i][j - 1] + 1 + static_cast<long>(Width(words[j]));
  }
  std::vector<size_t> nbrk(n, 0);
  std::vector<long> cost(n, INT32_MAX);
  for (size_t ii = n; ii-- > 0;) {
    if (length[ii][n - 1] <= lim) {
      cost[ii] = 0;
      nbrk[ii] = n;
    } else {
      for (size_t j = ii + 1; j < n; j++) {
        long d = lim - length[ii][j - 1];
        long c = d * d + cost[j];
        if (length[ii][j - 1] > lim) c += kPenalty;
        if (c < cost[ii]) {
          cost[ii] = c;
          nbrk[ii] = j;
        }
      }
    }
  }
  std::vector<std::string> lines;
  for (size_t i = 0; i < n;) {
    std::string line;
    for (size_t k = i; k < nbrk[i]; k++) {
      if (k > i) line += ' ';
      line += words[k];
    }
    lines.push_back(line);
    i = nbrk[i];
  }
  return lines;
}

std::string Repeat(char c, size_t n) { return std::string(n, c); }

std::string Center(const std::string& s, size_t w) {
  size_t have = Width(s);
  if (have >= w) return s;
  size_t gap = w - have, left = gap / 2;
  return Repeat(' ', left) + s + Repeat(' ', gap - left);
}

std::string Upper(std::string s) {
  for (char& c : s) {
    if (c == '_' || c == '.') c = ' ';
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}

void AppendUtf8Escaped(const std::string& s, std::string* out, bool json) {
  static const char kHex[] = "0123456789abcdef";
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': *out += "\\\""; break;
        case '\\': *out += "\\\\"; break;
        case '\n': *out += "\\n"; break;
        case '\r': *out += "\\r"; break;
        case '\t': *out += "\\t"; break;
        default:
          if (json && (c == '<' || c == '>' || c == '&')) {
            *out += "\\u00";
            *out += kHex[c >> 4];
            *out += kHex[c & 15];
          } else if (c < 0x20 || c == 0x7f) {
            if (json) {
              *out += "\\u00";
            } else if (c == 7) {
              *out += "\\a"; break;
            } else if (c == 8) {
              *out += "\\b"; break;
            } else if (c == 12) {
              *out += "\\f"; break;
            } else if (c == 11) {
              *out += "\\v"; break;
            } else {
              *out += "\\x";
            }
            *out += kHex[c >> 4];
            *out += kHex[c & 15];
          } else {
            *out += static_cast<char>(c);
          }
      }
      i++;
      continue;
    }
    // Multi-byte: copy a valid sequence, replace an invalid byte.
    size_t len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; k++) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
    if (!ok) {
      *out += json ? "\\ufffd" : "\\x";
      if (!json) {
        *out += kHex[c >> 4];
        *out += kHex[c & 15];
      }
      i++;
      continue;
    }
    out->append(s, i, len);
    i += len;
  }
}

}  // namespace

std::string RenderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  const size_t cols = header.size();
  std::vector<size_t> width(cols, 0);
  for (size_t c = 0; c < cols; c++) width[c] = std::min(Width(header[c]), kMaxColWidth);
  // Cells: the column width grows to min(cell, 30), then to the widest wrapped line.
  std::vector<std::vector<std::vector<std::string>>> cells(rows.size());
  for (size_t r = 0; r < rows.size(); r++) {
    cells[r].resize(cols);
    for (size_t c = 0; c < cols; c++) {
      const std::string& v = c < rows[r].size() ? rows[r][c] : std::string();
      width[c] = std::max(width[c], std::min(Width(v), kMaxColWidth));
      cells[r][c] = WrapString(v, width[c]);
      for (const auto& line : cells[r][c]) width[c] = std::max(width[c], Width(line));
    }
  }
  std::string line = "+";
  for (size_t c = 0; c < cols; c++) line += Repeat('-', width[c] + 2) + "+";
  line += "\n";
  std::string out = line + "|";
  for (size_t c = 0; c < cols; c++) out += " " + Center(Upper(header[c]), width[c]) + " |";
  out += "\n" + line;
  for (const auto& row : cells) {
    size_t height = 1;
    for (const auto& cell : row) height = std::max(height, cell.size());
    for (size_t h = 0; h < height; h++) {
      out += "|";
      for (size_t c = 0; c < cols; c++) {
        const std::string v = h < row[c].size() ? row[c][h] : std::string();
        out += " " + Repeat(' ', width[c] - std::min(width[c], Width(v))) + v + " |";
      }
      out += "\n";
    }
  }
  out += line;
  return out;
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  AppendUtf8Escaped(s, &out, true);
  return out + "\"";
}

std::string GoQuote(const std::string& s) {
  std::string out = "\"";
  AppendUtf8Escaped(s, &out, false);
  return out + "\"";
}

// Go's time.Duration.String.
std::string GoDuration(std::chrono::nanoseconds d) {
  int64_t ns = d.count();
  if (ns == 0) return "0s";
  const bool neg = ns < 0;
  uint64_t u = neg ? static_cast<uint64_t>(-ns) : static_cast<uint64_t>(ns);
  auto frac = [](uint64_t v, int prec, std::string* out) {
    // v has `prec` fractional digits; trailing zeros (and a lone '.') dropped.
    std::string digits;
    bool print = false;
    for (int i = 0; i < prec; i++) {
      int digit = static_cast<int>(v % 10);
      print = print || digit != 0;
      if (print) digits.insert(digits.begin(), static_cast<char>('0' + digit));
      v /= 10;
    }
    *out = std::to_string(v) + (digits.empty() ? "" : "." + digits);
  };
  std::string out;
  if (u < 1000000000ULL) {
    std::string num;
    if (u < 1000) {
      out = std::to_string(u) + "ns";
    } else if (u < 1000000) {
      frac(u, 3, &num);
      out = num + "\xC2\xB5s";
    } else {
      frac(u, 6, &num);
      out = num + "ms";
    }
  } else {
    uint64_t secs = u / 1000000000ULL;
    uint64_t rem = u % 1000000000ULL;
    std::string num;
    frac((secs % 60) * 1000000000ULL + rem, 9, &num);
    out = num + "s";
    uint64_t mins = secs / 60;
    if (mins > 0) {
      out = std::to_string(mins % 60) + "m" + out;
      if (mins >= 60) out = std::to_string(mins / 60) + "h" + out;
    }
  }
  return neg ? "-" + out : out;
}

OutputFormat ParseOutputFormat(const std::string& w) {
  if (w == "simple") return OutputFormat::kSimple;
  if (w == "table") return OutputFormat::kTable;
  if (w == "json") return OutputFormat::kJson;
  if (w == "fields") return OutputFormat::kFields;
  if (w == "protobuf") ThrowFormatNotSupported(w);
  throw Error(ErrorCode::kUnsupported, "unsupported output format");
}

void ThrowFormatNotSupported(const std::string& w) {
  throw Error(ErrorCode::kUnsupported, w + " not supported as output format");
}

}  // namespace etcdsafe::ops
