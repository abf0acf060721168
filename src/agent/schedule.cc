#include "agent/schedule.h"

#include <absl/time/civil_time.h>

#include <cctype>
#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace etcdsafe::agent {
namespace {

using std::chrono::system_clock;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) b++;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) e--;
  return std::string(s.substr(b, e - b));
}

std::vector<std::string> SplitFields(const std::string& s) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) i++;
    size_t start = i;
    while (i < s.size() && !std::isspace(static_cast<unsigned char>(s[i]))) i++;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

struct FieldSpec {
  const char* name;
  int min, max;
  const char* const* names;  // names[0] is value `names_base`; nullptr: numbers only
  int names_base;
  int names_count;
};

constexpr const char* kMonthNames[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                       "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr const char* kDayNames[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

constexpr FieldSpec kFields[5] = {
    {"minute", 0, 59, nullptr, 0, 0},       {"hour", 0, 23, nullptr, 0, 0},
    {"day-of-month", 1, 31, nullptr, 0, 0}, {"month", 1, 12, kMonthNames, 1, 12},
    {"day-of-week", 0, 7, kDayNames, 0, 7},
};

class FieldParser {
 public:
  FieldParser(const std::string& text, const FieldSpec& spec, const std::string& field)
      : text_(text), spec_(spec), field_(field) {}

  // Bit i set for each allowed value i (day-of-week 7 is folded to 0 by the caller).
  uint64_t Parse() {
    if (field_.empty()) throw Bad("is empty");
    uint64_t bits = 0;
    size_t start = 0;
    while (true) {
      size_t comma = field_.find(',', start);
      std::string item = field_.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      bits |= ParseItem(item);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    return bits;
  }

 private:
  Error Bad(const std::string& reason) const {
    return Error(ErrorCode::kInvalidArgument,
                 "\"" + text_ + "\": " + spec_.name + " field \"" + field_ + "\" " + reason);
  }

  int Value(const std::string& s) const {
    if (s.empty()) throw Bad("has an empty value");
    if (std::isdigit(static_cast<unsigned char>(s[0]))) {
      if (s.size() > 4 || s.find_first_not_of("0123456789") != std::string::npos) {
        throw Bad("has a bad number \"" + s + "\"");
      }
      int v = std::stoi(s);
      if (v < spec_.min || v > spec_.max) {
        throw Bad("has " + s + ", out of range " + std::to_string(spec_.min) + "-" + std::to_string(spec_.max));
      }
      return v;
    }
    if (spec_.names != nullptr) {
      std::string l = Lower(s);
      for (int i = 0; i < spec_.names_count; i++) {
        if (l == spec_.names[i]) return spec_.names_base + i;
      }
      throw Bad("has an unknown name \"" + s + "\"");
    }
    throw Bad("has a bad number \"" + s + "\"");
  }

  uint64_t ParseItem(const std::string& item) {
    if (item.empty()) throw Bad("has an empty list item");
    std::string range = item;
    int step = 1;
    size_t slash = item.find('/');
    if (slash != std::string::npos) {
      range = item.substr(0, slash);
      std::string s = item.substr(slash + 1);
      if (s.empty() || s.size() > 4 || s.find_first_not_of("0123456789") != std::string::npos) {
        throw Bad("has a bad step \"" + s + "\"");
      }
      step = std::stoi(s);
      if (step == 0) throw Bad("has a step of 0");
      if (range != "*" && range.find('-') == std::string::npos) {
        throw Bad("has a step after a single value (write \"" + range + "-" + std::to_string(spec_.max) + "/" + s +
                  "\" or \"*/" + s + "\")");
      }
    }
    int lo, hi;
    if (range == "*") {
      lo = spec_.min;
      hi = spec_.max;
      if (spec_.max == 7) hi = 6;  // day-of-week: 7 is an alias of 0
    } else {
      size_t dash = range.find('-');
      if (dash == std::string::npos) {
        lo = hi = Value(range);
      } else {
        lo = Value(range.substr(0, dash));
        hi = Value(range.substr(dash + 1));
        if (lo > hi) throw Bad("has a backwards range " + range);
      }
    }
    uint64_t bits = 0;
    for (int v = lo; v <= hi; v += step) bits |= uint64_t{1} << v;
    return bits;
  }

  const std::string& text_;
  const FieldSpec& spec_;
  std::string field_;
};

bool DayMatches(uint32_t days, uint8_t weekdays, bool dom_star, bool dow_star, absl::CivilDay d) {
  bool dom = (days >> d.day()) & 1;
  // absl::Weekday: monday = 0 ... sunday = 6; ours: sunday = 0.
  int wd = (static_cast<int>(absl::GetWeekday(d)) + 1) % 7;
  bool dow = (weekdays >> wd) & 1;
  if (dom_star || dow_star) return dom && dow;
  return dom || dow;
}

}  // namespace

std::chrono::nanoseconds ParseGoDuration(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument,
                 "bad duration \"" + text + "\": " + why + " (examples: 90s, 15m, 1h30m, 7d)");
  };
  if (text.empty()) throw bad("empty");
  if (text == "0") return std::chrono::nanoseconds(0);
  using i128 = __int128;
  const i128 kMax = std::numeric_limits<int64_t>::max();
  i128 total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t int_start = i;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) i++;
    std::string int_part = text.substr(int_start, i - int_start);
    std::string frac_part;
    if (i < text.size() && text[i] == '.') {
      i++;
      size_t frac_start = i;
      while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) i++;
      frac_part = text.substr(frac_start, i - frac_start);
    }
    if (int_part.empty() && frac_part.empty()) throw bad("expected a number at \"" + text.substr(int_start) + "\"");
    size_t unit_start = i;
    while (i < text.size() && !std::isdigit(static_cast<unsigned char>(text[i])) && text[i] != '.') i++;
    std::string unit = text.substr(unit_start, i - unit_start);
    static const std::pair<const char*, int64_t> kUnits[] = {
        {"ns", 1},
        {"us", 1000},
        {"\xC2\xB5s", 1000},  // µs (micro sign)
        {"\xCE\xBCs", 1000},  // μs (Greek mu)
        {"ms", 1000000},
        {"s", 1000000000},
        {"m", int64_t{60} * 1000000000},
        {"h", int64_t{3600} * 1000000000},
        {"d", int64_t{86400} * 1000000000},
    };
    i128 mult = 0;
    for (const auto& [name, ns] : kUnits) {
      if (unit == name) mult = ns;
    }
    if (unit.empty()) throw bad("missing unit (ns, us, ms, s, m, h, d)");
    if (mult == 0) throw bad("unknown unit \"" + unit + "\"");
    if (int_part.size() > 20) throw bad("too large");
    i128 whole = 0;
    for (char c : int_part) whole = whole * 10 + (c - '0');
    i128 part = whole * mult;
    i128 scale = 1;
    i128 frac = 0;
    for (char c : frac_part) {
      if (scale > i128{1000000000} * 1000000000) break;  // beyond nanosecond precision
      frac = frac * 10 + (c - '0');
      scale *= 10;
    }
    part += frac * mult / scale;
    total += part;
    if (total > kMax) throw bad("too large");
  }
  return std::chrono::nanoseconds(static_cast<int64_t>(total));
}

Schedule Schedule::Parse(const std::string& input) {
  Schedule s;
  std::string text = Trim(input);
  auto bad = [&](const std::string& why) { return Error(ErrorCode::kInvalidArgument, "\"" + input + "\": " + why); };
  if (text.empty()) throw bad("empty schedule");
  std::string cron = text;
  if (text[0] == '@') {
    std::vector<std::string> words = SplitFields(text);
    std::string d = Lower(words[0]);
    if (d == "@every") {
      if (words.size() != 2) throw bad("@every needs one duration, e.g. \"@every 15m\"");
      std::chrono::nanoseconds ns;
      try {
        ns = ParseGoDuration(words[1]);
      } catch (const Error& e) {
        throw bad(std::string("@every: ") + e.what());
      }
      auto secs = std::chrono::duration_cast<std::chrono::seconds>(ns);
      if (secs < std::chrono::seconds(1)) throw bad("@every needs a duration of at least 1s");
      s.text_ = text;
      s.every_ = secs;
      return s;
    }
    if (words.size() != 1) throw bad(words[0] + " takes no arguments");
    static const std::pair<const char*, const char*> kDescriptors[] = {
        {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
        {"@daily", "0 0 * * *"},  {"@midnight", "0 0 * * *"}, {"@hourly", "0 * * * *"},
    };
    cron.clear();
    for (const auto& [name, expansion] : kDescriptors) {
      if (d == name) cron = expansion;
    }
    if (cron.empty()) {
      throw bad("unknown descriptor " + words[0] +
                " (want @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or @every D)");
    }
  }
  std::vector<std::string> fields = SplitFields(cron);
  if (fields.size() != 5) {
    throw bad("cron needs 5 fields (minute hour day-of-month month day-of-week), got " + std::to_string(fields.size()));
  }
  uint64_t bits[5];
  for (int i = 0; i < 5; i++) bits[i] = FieldParser(input, kFields[i], fields[i]).Parse();
  s.text_ = text;
  s.minutes_ = bits[0];
  s.hours_ = static_cast<uint32_t>(bits[1]);
  s.days_ = static_cast<uint32_t>(bits[2]);
  s.months_ = static_cast<uint16_t>(bits[3]);
  uint64_t dow = bits[4];
  if (dow & (uint64_t{1} << 7)) dow = (dow | 1) & 0x7f;  // 7 = Sunday
  s.weekdays_ = static_cast<uint8_t>(dow);
  // As Vixie cron and cronie: a field that starts with '*' (also "*/2") counts as unrestricted.
  s.dom_star_ = fields[2][0] == '*';
  s.dow_star_ = fields[4][0] == '*';
  return s;
}

std::optional<system_clock::time_point> Schedule::Next(system_clock::time_point after, const absl::TimeZone& tz) const {
  if (text_.empty()) return std::nullopt;
  const absl::Time after_t = absl::FromChrono(after);
  if (every_) {
    absl::Time floor = absl::FromUnixSeconds(absl::ToUnixSeconds(after_t));
    if (floor > after_t) floor -= absl::Seconds(1);  // ToUnixSeconds rounds toward -inf already; be safe
    return absl::ToChronoTime(floor + absl::FromChrono(*every_));
  }
  // Walk local civil minutes from the one holding `after`. Their firing instants (SKIPPED:
  // the transition; REPEATED: the first occurrence) never decrease as the civil time
  // grows, so the first matching civil minute whose instant is after `after` is the answer.
  const absl::CivilMinute start(tz.At(after_t).cs);
  const absl::CivilDay first_day(start);
  const absl::CivilDay last_day(absl::CivilYear(start.year() + 5) + 1);  // 5 whole years ahead
  for (absl::CivilDay day = first_day; day < last_day;) {
    if (!((months_ >> day.month()) & 1)) {
      day = absl::CivilDay(absl::CivilMonth(day) + 1);
      continue;
    }
    if (!DayMatches(days_, weekdays_, dom_star_, dow_star_, day)) {
      ++day;
      continue;
    }
    const bool today = day == first_day;
    for (int h = today ? start.hour() : 0; h < 24; h++) {
      if (!((hours_ >> h) & 1)) continue;
      for (int m = (today && h == start.hour()) ? start.minute() : 0; m < 60; m++) {
        if (!((minutes_ >> m) & 1)) continue;
        const absl::CivilMinute cm(day.year(), day.month(), day.day(), h, m);
        const absl::TimeZone::TimeInfo ti = tz.At(cm);
        absl::Time when = ti.pre;  // UNIQUE, and the first occurrence of a REPEATED time
        if (ti.kind == absl::TimeZone::TimeInfo::SKIPPED) when = ti.trans;
        if (when > after_t) return absl::ToChronoTime(when);
      }
    }
    ++day;
  }
  return std::nullopt;
}

}  // namespace etcdsafe::agent
