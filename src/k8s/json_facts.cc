#include "k8s/json_facts.h"

#include <clocale>
#include <cmath>
#include <cstdlib>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace etcdsafe::k8s {
namespace {

bool IsWs(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void AppendUtf8(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(char(cp));
  } else if (cp <= 0x7FF) {
    out->push_back(char(0xC0 | (cp >> 6)));
    out->push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp <= 0xFFFF) {
    out->push_back(char(0xE0 | (cp >> 12)));
    out->push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(char(0xF0 | (cp >> 18)));
    out->push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(char(0x80 | (cp & 0x3F)));
  }
}

class Scanner {
 public:
  explicit Scanner(std::string_view s) : p_(s.data()), end_(s.data() + s.size()) {}

  JsonFacts Run() {
    JsonFacts f;
    SkipWs();
    if (p_ == end_ || *p_ != '{') return f;
    if (!Value()) return JsonFacts{};
    SkipWs();
    if (p_ != end_ && *p_ != '\0') return JsonFacts{};
    f.valid = true;
    f.has_metadata = has_metadata_;
    if (has_metadata_) {
      f.uid = std::move(uid_);
      f.generation = generation_;
    }
    return f;
  }

 private:
  // What the value being read is to the metadata extraction.
  enum class Role { kNone, kMetadata, kUid, kGeneration };

  void SkipWs() {
    while (p_ != end_ && IsWs(*p_)) p_++;
  }

  // The whole top-level value (an object), iteratively.
  bool Value() {
    // stack_: 'o' or 'a' per open container; meta_open_: the object at depth 2 is the
    // current "metadata" member's value. `role`: what the next value is to the extraction
    // (reset at its member name, so the last member wins as in nlohmann's object).
    Role role = Role::kNone;
    for (;;) {
      // Expect a value.
      SkipWs();
      if (p_ == end_) return false;
      const char c = *p_;
      bool closed_value = true;  // a scalar was read, or an empty container
      switch (c) {
        case '{':
        case '[': {
          p_++;
          if (role == Role::kMetadata && c == '{') has_metadata_ = meta_open_ = true;
          stack_.push_back(c == '{' ? 'o' : 'a');
          SkipWs();
          if (p_ == end_) return false;
          if ((c == '{' && *p_ == '}') || (c == '[' && *p_ == ']')) {
            p_++;
            Pop();
            break;
          }
          closed_value = false;
          break;
        }
        case '"': {
          p_++;
          if (role == Role::kUid) {
            uid_.clear();
            if (!String(&uid_)) return false;
          } else if (!String(nullptr)) {
            return false;
          }
          break;
        }
        case 't':
          if (!Literal("true", 4)) return false;
          break;
        case 'f':
          if (!Literal("false", 5)) return false;
          break;
        case 'n':
          if (!Literal("null", 4)) return false;
          break;
        case '-':
        case '0':
        case '1':
        case '2':
        case '3':
        case '4':
        case '5':
        case '6':
        case '7':
        case '8':
        case '9':
          if (!Number(role == Role::kGeneration)) return false;
          break;
        default:
          return false;
      }
      if (closed_value) {
        // After a value: ',' or the end of containers.
        for (;;) {
          if (stack_.empty()) return true;
          SkipWs();
          if (p_ == end_) return false;
          const char d = *p_++;
          if (d == ',') break;
          if ((d == '}' && stack_.back() == 'o') || (d == ']' && stack_.back() == 'a')) {
            Pop();
            continue;
          }
          return false;
        }
      }
      // Inside a container, before a value (after '[' / ',' in an array) or a member.
      role = Role::kNone;
      if (stack_.back() == 'a') continue;
      SkipWs();
      if (p_ == end_ || *p_ != '"') return false;
      p_++;
      const size_t depth = stack_.size();
      if (depth == 1 || (depth == 2 && meta_open_)) {
        key_.clear();
        if (!String(&key_)) return false;
        if (depth == 1) {
          if (key_ == "metadata") {
            role = Role::kMetadata;
            has_metadata_ = meta_open_ = false;
            uid_.clear();
            generation_ = 0;
          }
        } else if (key_ == "uid") {
          role = Role::kUid;
          uid_.clear();
        } else if (key_ == "generation") {
          role = Role::kGeneration;
          generation_ = 0;
        }
      } else if (!String(nullptr)) {
        return false;
      }
      SkipWs();
      if (p_ == end_ || *p_ != ':') return false;
      p_++;
    }
  }

  void Pop() {
    stack_.pop_back();
    if (stack_.size() < 2) meta_open_ = false;  // the metadata object (depth 2) closed
  }

  bool Literal(const char* word, size_t n) {
    if (size_t(end_ - p_) < n || std::memcmp(p_, word, n) != 0) return false;
    p_ += n;
    return true;
  }

  // After the opening quote; on success p_ is past the closing quote. `out`: the decoded
  // bytes are appended (nullptr: validate only).
  bool String(std::string* out) {
    for (;;) {
      const char* run = p_;
#if defined(__SSE2__)
      const __m128i quote = _mm_set1_epi8('"');
      const __m128i slash = _mm_set1_epi8('\\');
      const __m128i space = _mm_set1_epi8(0x20);
      while (end_ - p_ >= 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p_));
        // Signed compare: bytes >= 0x80 are negative, so "< 0x20" also finds them.
        const __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, slash)),
                                         _mm_cmplt_epi8(v, space));
        const int mask = _mm_movemask_epi8(hit);
        if (mask != 0) {
          p_ += __builtin_ctz(unsigned(mask));
          goto special;
        }
        p_ += 16;
      }
#endif
      while (p_ != end_) {
        const unsigned char u = static_cast<unsigned char>(*p_);
        if (u == '"' || u == '\\' || u < 0x20 || u >= 0x80) break;
        p_++;
      }
#if defined(__SSE2__)
    special:
#endif
      if (out != nullptr) out->append(run, size_t(p_ - run));
      if (p_ == end_) return false;
      const unsigned char u = static_cast<unsigned char>(*p_);
      if (u == '"') {
        p_++;
        return true;
      }
      if (u < 0x20) return false;
      if (u == '\\') {
        if (!Escape(out)) return false;
        continue;
      }
      const char* start = p_;
      if (!Utf8()) return false;
      if (out != nullptr) out->append(start, size_t(p_ - start));
    }
  }

  // One UTF-8 sequence starting at a byte >= 0x80 (nlohmann's table, RFC 3629).
  bool Utf8() {
    const unsigned char u = static_cast<unsigned char>(*p_++);
    auto next = [&](unsigned char lo, unsigned char hi) {
      if (p_ == end_) return false;
      const unsigned char c = static_cast<unsigned char>(*p_);
      if (c < lo || c > hi) return false;
      p_++;
      return true;
    };
    if (u >= 0xC2 && u <= 0xDF) return next(0x80, 0xBF);
    if (u == 0xE0) return next(0xA0, 0xBF) && next(0x80, 0xBF);
    if ((u >= 0xE1 && u <= 0xEC) || u == 0xEE || u == 0xEF) return next(0x80, 0xBF) && next(0x80, 0xBF);
    if (u == 0xED) return next(0x80, 0x9F) && next(0x80, 0xBF);
    if (u == 0xF0) return next(0x90, 0xBF) && next(0x80, 0xBF) && next(0x80, 0xBF);
    if (u >= 0xF1 && u <= 0xF3) return next(0x80, 0xBF) && next(0x80, 0xBF) && next(0x80, 0xBF);
    if (u == 0xF4) return next(0x80, 0x8F) && next(0x80, 0xBF) && next(0x80, 0xBF);
    return false;
  }

  int CodeUnit() {
    if (end_ - p_ < 4) return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
      const int d = HexDigit(p_[i]);
      if (d < 0) return -1;
      v = v * 16 + d;
    }
    p_ += 4;
    return v;
  }

  // At a backslash.
  bool Escape(std::string* out) {
    p_++;
    if (p_ == end_) return false;
    const char e = *p_++;
    char c = 0;
    switch (e) {
      case '"': c = '"'; break;
      case '\\': c = '\\'; break;
      case '/': c = '/'; break;
      case 'b': c = '\b'; break;
      case 'f': c = '\f'; break;
      case 'n': c = '\n'; break;
      case 'r': c = '\r'; break;
      case 't': c = '\t'; break;
      case 'u': {
        const int cu1 = CodeUnit();
        if (cu1 < 0) return false;
        uint32_t cp = uint32_t(cu1);
        if (cu1 >= 0xD800 && cu1 <= 0xDBFF) {
          if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
          p_ += 2;
          const int cu2 = CodeUnit();
          if (cu2 < 0xDC00 || cu2 > 0xDFFF) return false;
          cp = (uint32_t(cu1) << 10) + uint32_t(cu2) - 0x35FDC00u;
        } else if (cu1 >= 0xDC00 && cu1 <= 0xDFFF) {
          return false;
        }
        if (out != nullptr) AppendUtf8(out, cp);
        return true;
      }
      default:
        return false;
    }
    if (out != nullptr) out->push_back(c);
    return true;
  }

  // RFC 8259 number at p_ ('-' or a digit). An integer that fits int64 (negative) or
  // uint64 is an integer as for nlohmann; anything else must be a finite double.
  bool Number(bool want_generation) {
    const char* start = p_;
    bool negative = false, is_float = false;
    if (*p_ == '-') {
      negative = true;
      p_++;
    }
    if (p_ == end_) return false;
    uint64_t mag = 0;
    bool overflow = false;
    if (*p_ == '0') {
      p_++;
    } else if (*p_ >= '1' && *p_ <= '9') {
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') {
        const uint64_t d = uint64_t(*p_ - '0');
        if (mag > (UINT64_MAX - d) / 10) overflow = true;
        else mag = mag * 10 + d;
        p_++;
      }
    } else {
      return false;
    }
    if (p_ != end_ && *p_ == '.') {
      is_float = true;
      p_++;
      if (p_ == end_ || *p_ < '0' || *p_ > '9') return false;
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') p_++;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      is_float = true;
      p_++;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) p_++;
      if (p_ == end_ || *p_ < '0' || *p_ > '9') return false;
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') p_++;
    }
    if (!is_float && !overflow && (!negative || mag <= (uint64_t{1} << 63))) {
      if (want_generation) generation_ = negative ? int64_t(0 - mag) : int64_t(mag);
      return true;
    }
    // A double (nlohmann: strtod on the token with the locale's decimal point; an
    // infinite result is a parse error).
    std::string token(start, size_t(p_ - start));
    const char* dp = std::localeconv()->decimal_point;
    if (dp != nullptr && dp[0] != '\0' && dp[0] != '.') {
      for (char& ch : token) {
        if (ch == '.') ch = dp[0];
      }
    }
    return std::isfinite(std::strtod(token.c_str(), nullptr));
  }

  const char* p_;
  const char* end_;
  std::string stack_;
  bool meta_open_ = false;
  bool has_metadata_ = false;
  std::string uid_;
  int64_t generation_ = 0;
  std::string key_;
};

}  // namespace

JsonFacts ScanJsonObject(std::string_view s) { return Scanner(s).Run(); }

namespace {

// ParseEnvelope's JSON case: the first byte that is not JSON whitespace is '{' (so neither
// "k8s:enc:" nor "k8s\0").
bool LooksLikeJsonObject(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && IsWs(s[i])) i++;
  return i < s.size() && s[i] == '{';
}

}  // namespace

ValueFacts FactsOfValue(Bytes value, bool metadata) {
  ValueFacts out;
  const std::string_view s = AsString(value);
  if (LooksLikeJsonObject(s)) {
    JsonFacts j = ScanJsonObject(s);
    out.encoding = j.valid ? Encoding::kJson : Encoding::kMalformed;
    if (metadata && j.has_metadata) {
      out.uid = std::move(j.uid);
      out.generation = j.generation;
    }
    return out;
  }
  const Envelope env = ParseEnvelope(value);
  out.encoding = env.encoding;
  if (metadata && env.encoding == Encoding::kProtobuf) {
    ObjectMeta m;
    if (!DecodeObjectMetaOfObject(env.raw, &m).has_value()) {
      out.uid = std::move(m.uid);
      out.generation = m.generation;
    }
  }
  return out;
}

Encoding EncodingUnchecked(Bytes value) {
  return LooksLikeJsonObject(AsString(value)) ? Encoding::kJson : ParseEnvelope(value).encoding;
}

}  // namespace etcdsafe::k8s
