#include "backup/layout.h"

#include <algorithm>
#include <ctime>
#include <vector>

#include "store/store.h"

namespace etcdsafe::backup {
namespace {

constexpr size_t kMaxPrefix = 64;
constexpr std::string_view kSegExts[] = {".evt.zst.enc", ".evt.gz.enc", ".evt.enc", ".evt.zst", ".evt.gz", ".evt"};
constexpr std::string_view kSegInfix = ".seg-";
constexpr std::string_view kExts[] = {".db.zst.enc",  ".db.gz.enc",  ".db.enc", ".db.zst", ".db.gz", ".db",
                                      ".tar.zst.enc", ".tar.gz.enc", ".tar.enc", ".tar.zst", ".tar.gz", ".tar"};

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool AllDigits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// Decimal without leading zeros, 1..max.
std::optional<int64_t> PositiveDecimal(std::string_view s, int64_t max) {
  if (!AllDigits(s) || s[0] == '0' || s.size() > 19) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (v > (UINT64_MAX - 9) / 10) return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  if (v > static_cast<uint64_t>(max)) return std::nullopt;
  return static_cast<int64_t>(v);
}

int Num(std::string_view s) {
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

bool ValidPrefix(std::string_view p) {
  if (p.empty() || p.size() > kMaxPrefix) return false;
  for (size_t i = 0; i < p.size(); i++) {
    char c = p[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-'))) return false;
  }
  return true;
}

// "YYYYMMDD", "HHMMSS" → UTC seconds, or nullopt for an impossible date or time.
std::optional<int64_t> ParseUtc(std::string_view date, std::string_view time) {
  if (date.size() != 8 || time.size() != 6 || !AllDigits(date) || !AllDigits(time)) return std::nullopt;
  std::tm tm{};
  tm.tm_year = Num(date.substr(0, 4)) - 1900;
  tm.tm_mon = Num(date.substr(4, 2)) - 1;
  tm.tm_mday = Num(date.substr(6, 2));
  tm.tm_hour = Num(time.substr(0, 2));
  tm.tm_min = Num(time.substr(2, 2));
  tm.tm_sec = Num(time.substr(4, 2));
  if (tm.tm_year < 100 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 59) return std::nullopt;
  const std::tm want = tm;
  std::time_t t = timegm(&tm);
  std::tm back{};
  gmtime_r(&t, &back);
  if (back.tm_year != want.tm_year || back.tm_mon != want.tm_mon || back.tm_mday != want.tm_mday ||
      back.tm_hour != want.tm_hour || back.tm_min != want.tm_min || back.tm_sec != want.tm_sec) {
    return std::nullopt;
  }
  return static_cast<int64_t>(t);
}

// "<prefix>-<YYYYMMDD>-<HHMMSS>[-<N>]" → its UTC time.
std::optional<int64_t> ParseStem(std::string_view stem) {
  auto try_split = [&](bool with_n) -> std::optional<int64_t> {
    std::string_view rest = stem;
    if (with_n) {
      size_t dash = rest.rfind('-');
      if (dash == std::string_view::npos) return std::nullopt;
      auto n = PositiveDecimal(rest.substr(dash + 1), 999999);
      if (!n || *n < 2) return std::nullopt;
      rest = rest.substr(0, dash);
    }
    if (rest.size() < 1 + 1 + 8 + 1 + 6) return std::nullopt;
    std::string_view time = rest.substr(rest.size() - 6);
    if (rest[rest.size() - 7] != '-') return std::nullopt;
    std::string_view date = rest.substr(rest.size() - 15, 8);
    if (rest[rest.size() - 16] != '-') return std::nullopt;
    if (!ValidPrefix(rest.substr(0, rest.size() - 16))) return std::nullopt;
    return ParseUtc(date, time);
  };
  if (auto t = try_split(true)) return t;
  return try_split(false);
}

// "<stem>-r<revision>" → kManifest with stem, revision and time; kForeign otherwise.
ParsedName ClassifyManifestId(std::string_view id) {
  ParsedName p;
  size_t r = id.rfind("-r");
  if (r == std::string_view::npos) return p;
  // Revision 0 is the snapshot of an etcd nothing was ever written to (etcdctl's
  // status says 0 too): a real backup, named "-r0".
  std::string_view rev_text = id.substr(r + 2);
  auto rev = rev_text == "0" ? std::optional<int64_t>(0) : PositiveDecimal(rev_text, INT64_MAX);
  auto t = ParseStem(id.substr(0, r));
  if (!rev || !t) return p;
  p.kind = NameKind::kManifest;
  p.stem = std::string(id.substr(0, r));
  p.revision = *rev;
  p.time_unix = *t;
  return p;
}

// A segment number as written: at least 6 digits, zero-padded only up to 6, not 0.
std::optional<int64_t> SeqNumber(std::string_view text) {
  if (text.size() < 6 || !AllDigits(text) || (text.size() > 6 && text[0] == '0')) return std::nullopt;
  size_t k = 0;
  while (k < text.size() && text[k] == '0') k++;
  return PositiveDecimal(text.substr(k), INT64_MAX);
}

std::string SeqText(uint64_t seq) {
  std::string s = std::to_string(seq);
  if (s.size() < 6) s.insert(0, 6 - s.size(), '0');
  return s;
}

// "<id>.seg-<seq>[_<seq_last>]-<first>-<last><ext>", exactly as SegmentObjectName and
// MergedSegmentObjectName write it.
ParsedName ClassifySegment(std::string_view name) {
  ParsedName p;
  for (std::string_view ext : kSegExts) {
    if (!EndsWith(name, ext)) continue;
    std::string_view body = name.substr(0, name.size() - ext.size());
    size_t infix = body.rfind(kSegInfix);
    if (infix == std::string_view::npos) return p;
    ParsedName id = ClassifyManifestId(body.substr(0, infix));
    if (id.kind != NameKind::kManifest) return p;
    std::string_view nums = body.substr(infix + kSegInfix.size());
    size_t d1 = nums.find('-');
    if (d1 == std::string_view::npos) return p;
    size_t d2 = nums.find('-', d1 + 1);
    if (d2 == std::string_view::npos) return p;
    std::string_view seq_text = nums.substr(0, d1);
    // "<seq>" or "<seq>_<seq_last>" (a merged segment, seq < seq_last).
    const size_t u = seq_text.find('_');
    const bool merged = u != std::string_view::npos;
    auto seq = SeqNumber(merged ? seq_text.substr(0, u) : seq_text);
    if (!seq) return p;
    auto seq_last = merged ? SeqNumber(seq_text.substr(u + 1)) : seq;
    if (!seq_last || (merged && *seq_last <= *seq)) return p;
    auto first = PositiveDecimal(nums.substr(d1 + 1, d2 - d1 - 1), INT64_MAX);
    std::string_view last_text = nums.substr(d2 + 1);
    auto last = last_text == "0" ? std::optional<int64_t>(0) : PositiveDecimal(last_text, INT64_MAX);
    if (!first || !last || *last < *first - 1) return p;
    p.kind = NameKind::kSegment;
    p.stem = id.stem;
    p.revision = id.revision;
    p.time_unix = id.time_unix;
    p.seq = static_cast<uint64_t>(*seq);
    p.seq_last = static_cast<uint64_t>(*seq_last);
    p.first_revision = *first;
    p.last_revision = *last;
    p.ext = std::string(ext);
    return p;
  }
  return p;
}

ParsedName ClassifyBase(std::string_view name) {
  ParsedName p;
  if (name == kMarkerName) {
    p.kind = NameKind::kMarker;
    return p;
  }
  if (name.find(kSegInfix) != std::string_view::npos) return ClassifySegment(name);
  if (EndsWith(name, kManifestSuffix)) {
    return ClassifyManifestId(name.substr(0, name.size() - (sizeof(kManifestSuffix) - 1)));
  }
  NameKind kind = NameKind::kData;

  std::string_view data = name;
  if (EndsWith(name, kSidecarSuffix)) {
    kind = NameKind::kSidecar;
    data = name.substr(0, name.size() - (sizeof(kSidecarSuffix) - 1));
  } else if (EndsWith(name, kPendingSuffix)) {
    kind = NameKind::kPending;
    data = name.substr(0, name.size() - (sizeof(kPendingSuffix) - 1));
  }
  for (std::string_view ext : kExts) {
    if (!EndsWith(data, ext)) continue;
    std::string_view stem = data.substr(0, data.size() - ext.size());
    auto t = ParseStem(stem);
    if (!t) return p;
    p.kind = kind;
    p.stem = std::string(stem);
    p.ext = std::string(ext);
    p.time_unix = *t;
    return p;
  }
  return p;
}

size_t Utf8SequenceLength(std::string_view s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
  if (len == 0 || i + len > s.size()) return 0;
  for (size_t k = 1; k < len; k++) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 0;
  }
  return len;
}

}  // namespace

ParsedName ClassifyName(std::string_view name) {
  if (name.find('/') != std::string_view::npos) return ParsedName{};
  if (store::IsTempName(std::string(name))) {
    std::string_view base = name.substr(0, name.size() - 21);  // ".tmp-" + 16 hex digits
    ParsedName b = ClassifyBase(base);
    if (b.kind == NameKind::kForeign) return ParsedName{};
    b.base_kind = b.kind;
    b.kind = NameKind::kTemp;
    b.base = std::string(base);
    return b;
  }
  return ClassifyBase(name);
}

std::string_view BackupKindName(BackupKind kind) { return kind == BackupKind::kPki ? "pki" : "snapshot"; }

std::optional<std::string> DataExtension(std::string_view compression, std::string_view encryption, BackupKind kind) {
  std::string ext = kind == BackupKind::kPki ? ".tar" : ".db";
  if (compression == "zstd") {
    ext += ".zst";
  } else if (compression == "gzip") {
    ext += ".gz";
  } else if (compression != "none") {
    return std::nullopt;
  }
  if (encryption == "aes-256-gcm-chunked") {
    ext += ".enc";
  } else if (encryption != "none") {
    return std::nullopt;
  }
  return ext;
}

std::optional<std::string> SegmentExtension(std::string_view compression, bool encrypted) {
  std::string ext = ".evt";
  if (compression == "zstd") {
    ext += ".zst";
  } else if (compression == "gzip") {
    ext += ".gz";
  } else if (compression != "none") {
    return std::nullopt;
  }
  if (encrypted) ext += ".enc";
  return ext;
}

std::string SegmentObjectName(std::string_view chain, uint64_t seq, int64_t first, int64_t last, std::string_view ext) {
  return MergedSegmentObjectName(chain, seq, seq, first, last, ext);
}

std::string MergedSegmentObjectName(std::string_view chain, uint64_t seq, uint64_t seq_last, int64_t first,
                                    int64_t last, std::string_view ext) {
  std::string s = SeqText(seq);
  if (seq_last != seq) s += "_" + SeqText(seq_last);
  return std::string(chain) + std::string(kSegInfix) + s + "-" + std::to_string(first) + "-" + std::to_string(last) +
         std::string(ext);
}

std::vector<std::optional<size_t>> SupersededSegments(const std::vector<ParsedName>& segments) {
  std::vector<size_t> order(segments.size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const ParsedName& x = segments[a];
    const ParsedName& y = segments[b];
    if (x.seq != y.seq) return x.seq < y.seq;
    if (x.seq_last != y.seq_last) return x.seq_last > y.seq_last;
    if (x.first_revision != y.first_revision) return x.first_revision < y.first_revision;
    return a < b;
  });
  std::vector<std::optional<size_t>> out(segments.size());
  std::optional<size_t> cover;
  uint64_t expect_seq = 1;
  int64_t expect_first = 0;
  bool first = true;
  for (size_t i : order) {
    const ParsedName& p = segments[i];
    if (first) {
      expect_first = (p.revision < 1 ? 1 : p.revision) + 1;
      first = false;
    }
    if (cover && SegmentCovers(segments[*cover], p)) {
      out[i] = cover;
      continue;
    }
    if (p.seq_last > p.seq && p.seq == expect_seq && p.first_revision == expect_first) cover = i;
    expect_seq = p.seq_last + 1;
    expect_first = p.last_revision + 1;
  }
  return out;
}

bool SegmentCovers(const ParsedName& merged, const ParsedName& other) {
  if (merged.kind != NameKind::kSegment || other.kind != NameKind::kSegment) return false;
  if (merged.seq_last <= merged.seq || merged.stem != other.stem || merged.revision != other.revision) return false;
  if (other.seq == merged.seq && other.seq_last == merged.seq_last) return false;  // the same place: not a cover
  if (other.seq < merged.seq || other.seq_last > merged.seq_last) return false;
  if (other.first_revision < merged.first_revision || other.last_revision > merged.last_revision) return false;
  if (other.seq == merged.seq && other.first_revision != merged.first_revision) return false;
  if (other.seq_last == merged.seq_last && other.last_revision != merged.last_revision) return false;
  return true;
}

bool IsBackupId(std::string_view id) {
  return ClassifyBase(std::string(id) + kManifestSuffix).kind == NameKind::kManifest;
}

std::string EscapeForTerminal(std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      if (size_t len = Utf8SequenceLength(s, i); len > 0) {
        // C1 controls (U+0080..U+009F) act on terminals too.
        bool c1 = c == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0;
        if (!c1) {
          out.append(s.substr(i, len));
          i += len;
          continue;
        }
      }
    } else if (c >= 0x20 && c != 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
      i++;
      continue;
    }
    out += "\\x";
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
    i++;
  }
  return out;
}

}  // namespace etcdsafe::backup
