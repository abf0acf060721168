#include "catalog/retention.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string_view>
#include <unordered_set>

#include "base/error.h"

namespace etcdsafe::catalog {
namespace {

using namespace std::chrono;

Error Invalid(const std::string& message) { return Error(ErrorCode::kInvalidArgument, message); }

// Values that are wrong whatever else is set; ApplyPolicy checks these too.
void CheckValues(const RetentionPolicy& p) {
  const std::array<std::pair<const char*, int>, 6> counts = {{
      {"keep-last", p.keep_last},
      {"keep-hourly", p.keep_hourly},
      {"keep-daily", p.keep_daily},
      {"keep-weekly", p.keep_weekly},
      {"keep-monthly", p.keep_monthly},
      {"keep-yearly", p.keep_yearly},
  }};
  for (const auto& [name, n] : counts) {
    if (n < 0) throw Invalid(std::string(name) + " must not be negative: " + std::to_string(n));
  }
  if (p.keep_within < seconds::zero()) {
    throw Invalid("keep-within must not be negative: " + std::to_string(p.keep_within.count()) + "s");
  }
  if (abs(p.utc_offset) >= hours(24)) {
    throw Invalid("utc offset must be less than 24h: " + std::to_string(p.utc_offset.count()) + "min");
  }
}

// A backup's place in the calendar of UTC + offset.
struct Civil {
  sys_seconds local;  // wall-clock time at the offset, as if it were UTC
  sys_days day;
  year_month_day ymd;
  int hour;
  int iso_year;
  int iso_week;
};

Civil ToCivil(system_clock::time_point t, minutes offset) {
  Civil c;
  // Whole seconds first: the nanosecond time_point has no headroom for adding offsets
  // near its range limits, int64 seconds do.
  c.local = floor<seconds>(t) + offset;
  c.day = floor<days>(c.local);
  c.ymd = year_month_day{c.day};
  c.hour = static_cast<int>(duration_cast<hours>(c.local - c.day).count());
  // ISO 8601: weeks start on Monday and belong to the year of their Thursday.
  const sys_days thursday = c.day + days{4 - static_cast<int>(weekday{c.day}.iso_encoding())};
  const year iy = year_month_day{thursday}.year();
  c.iso_year = static_cast<int>(iy);
  c.iso_week = static_cast<int>((thursday - sys_days{iy / January / 1}).count() / 7 + 1);
  return c;
}

enum class Unit { kHour, kDay, kWeek, kMonth, kYear };

int64_t BucketKey(Unit u, const Civil& c) {
  switch (u) {
    case Unit::kHour: return floor<hours>(c.local).time_since_epoch().count();
    case Unit::kDay: return c.day.time_since_epoch().count();
    case Unit::kWeek: return int64_t{c.iso_year} * 100 + c.iso_week;
    case Unit::kMonth:
      return int64_t{static_cast<int>(c.ymd.year())} * 12 + static_cast<unsigned>(c.ymd.month());
    case Unit::kYear: return static_cast<int>(c.ymd.year());
  }
  return 0;
}

std::string BucketReason(Unit u, const Civil& c) {
  const int y = static_cast<int>(c.ymd.year());
  const unsigned m = static_cast<unsigned>(c.ymd.month());
  const unsigned d = static_cast<unsigned>(c.ymd.day());
  char buf[96];
  switch (u) {
    case Unit::kHour:
      std::snprintf(buf, sizeof buf, "hourly snapshot (%04d-%02u-%02u %02d:00)", y, m, d, c.hour);
      break;
    case Unit::kDay: std::snprintf(buf, sizeof buf, "daily snapshot (%04d-%02u-%02u)", y, m, d); break;
    case Unit::kWeek:
      std::snprintf(buf, sizeof buf, "weekly snapshot (%04d-W%02d)", c.iso_year, c.iso_week);
      break;
    case Unit::kMonth: std::snprintf(buf, sizeof buf, "monthly snapshot (%04d-%02u)", y, m); break;
    case Unit::kYear: std::snprintf(buf, sizeof buf, "yearly snapshot (%04d)", y); break;
  }
  return buf;
}

// Parses 1..max_digits decimal digits at s[*pos]; -1 when there are none.
int64_t TakeNumber(std::string_view s, size_t* pos, size_t max_digits) {
  size_t start = *pos;
  int64_t n = 0;
  while (*pos < s.size() && s[*pos] >= '0' && s[*pos] <= '9' && *pos - start < max_digits) {
    n = n * 10 + (s[*pos] - '0');
    ++*pos;
  }
  return *pos == start ? -1 : n;
}

}  // namespace

bool RetentionPolicy::Empty() const {
  return keep_last == 0 && keep_hourly == 0 && keep_daily == 0 && keep_weekly == 0 &&
         keep_monthly == 0 && keep_yearly == 0 && keep_within == seconds::zero();
}

void ValidatePolicy(const RetentionPolicy& policy) {
  CheckValues(policy);
  if (policy.Empty()) {
    throw Invalid(
        "no retention policy given: refusing to remove anything (set keep-last, keep-within or "
        "keep-hourly/daily/weekly/monthly/yearly)");
  }
}

seconds ParseKeepWithin(const std::string& text) {
  const auto bad = [&](const std::string& why) {
    return Invalid("invalid keep-within duration \"" + text + "\": " + why +
                   " (expected e.g. 36h, 30d, 1y2m3d4h)");
  };
  if (text.empty()) throw bad("empty");
  seconds total{0};
  std::string seen;
  size_t pos = 0;
  while (pos < text.size()) {
    // 7 digits is ~27000 years of days, far beyond anything useful and far from overflow.
    const int64_t n = TakeNumber(text, &pos, 7);
    if (n < 0) throw bad("expected a number at offset " + std::to_string(pos));
    if (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') throw bad("number too large");
    if (pos == text.size()) throw bad("missing unit after " + std::to_string(n));
    const char unit = text[pos++];
    if (seen.find(unit) != std::string::npos) throw bad(std::string("unit ") + unit + " given twice");
    seen += unit;
    switch (unit) {
      case 'y': total += days(365) * n; break;
      case 'm': total += days(30) * n; break;
      case 'd': total += days(1) * n; break;
      case 'h': total += hours(1) * n; break;
      default: throw bad(std::string("unknown unit '") + unit + "'");
    }
  }
  if (total == seconds::zero()) throw bad("must be positive");
  return total;
}

minutes ParseUtcOffset(const std::string& text) {
  const auto bad = [&] {
    return Invalid("invalid utc offset \"" + text + "\" (expected Z, UTC, +05:30, -0800, +5)");
  };
  std::string_view s = text;
  if (s == "Z" || s == "UTC" || s == "utc") return minutes(0);
  if (s.starts_with("UTC") || s.starts_with("utc")) s.remove_prefix(3);
  if (s.empty() || (s[0] != '+' && s[0] != '-')) throw bad();
  const int sign = s[0] == '-' ? -1 : 1;
  s.remove_prefix(1);
  size_t pos = 0;
  int64_t h = 0, m = 0;
  const size_t colon = s.find(':');
  if (colon != std::string_view::npos) {
    if (colon == 0 || colon > 2 || s.size() != colon + 3) throw bad();
    h = TakeNumber(s, &pos, 2);
    ++pos;
    m = TakeNumber(s, &pos, 2);
  } else if (s.size() == 1 || s.size() == 2) {
    h = TakeNumber(s, &pos, 2);
  } else if (s.size() == 4) {
    h = TakeNumber(s, &pos, 2);
    m = TakeNumber(s, &pos, 2);
  } else {
    throw bad();
  }
  if (pos != s.size() || h < 0 || m < 0 || h > 23 || m > 59) throw bad();
  return minutes(sign * (h * 60 + m));
}

std::string FormatKeepWithin(seconds d) {
  std::string out;
  if (d < seconds::zero()) {
    out = "-";
    d = -d;
  }
  const struct {
    seconds unit;
    const char* name;
  } parts[] = {{days(1), "d"}, {hours(1), "h"}, {minutes(1), "min"}, {seconds(1), "s"}};
  for (const auto& part : parts) {
    const int64_t n = d / part.unit;
    d -= part.unit * n;
    if (n != 0) out += std::to_string(n) + part.name;
  }
  return out.empty() || out == "-" ? "0s" : out;
}

std::vector<Decision> ApplyPolicy(std::vector<BackupRef> backups, const RetentionPolicy& policy,
                                  system_clock::time_point now) {
  CheckValues(policy);
  // Newest first; ties by id so the outcome never depends on input order.
  std::sort(backups.begin(), backups.end(), [](const BackupRef& a, const BackupRef& b) {
    return a.time != b.time ? a.time > b.time : a.id < b.id;
  });
  {
    std::unordered_set<std::string_view> ids;
    for (const BackupRef& b : backups) {
      if (!ids.insert(b.id).second) throw Invalid("duplicate backup id: " + b.id);
    }
  }

  std::vector<Decision> out;
  out.reserve(backups.size());
  if (policy.Empty()) {
    for (BackupRef& b : backups) out.push_back({std::move(b), true, {"policy is empty"}});
    return out;
  }

  // keep-within cutoff in clock ticks, saturating: a duration longer than the clock's
  // range back from `now` means "everything not in the future".
  using Rep = system_clock::duration::rep;
  const Rep now_ticks = now.time_since_epoch().count();
  bool within_all = false;
  Rep cutoff = 0;
  if (policy.keep_within > seconds::zero()) {
    const auto max_secs = duration_cast<seconds>(system_clock::duration::max());
    Rep within_ticks = std::numeric_limits<Rep>::max();
    if (policy.keep_within < max_secs) {
      within_ticks = duration_cast<system_clock::duration>(policy.keep_within).count();
    }
    within_all = __builtin_sub_overflow(now_ticks, within_ticks, &cutoff);
  }
  const std::string within_reason = "within " + FormatKeepWithin(policy.keep_within);

  struct Bucket {
    Unit unit;
    int left;
    bool has_last;
    int64_t last;
  };
  std::array<Bucket, 5> buckets = {{
      {Unit::kHour, policy.keep_hourly, false, 0},
      {Unit::kDay, policy.keep_daily, false, 0},
      {Unit::kWeek, policy.keep_weekly, false, 0},
      {Unit::kMonth, policy.keep_monthly, false, 0},
      {Unit::kYear, policy.keep_yearly, false, 0},
  }};
  int last_left = policy.keep_last;
  bool newest_seen = false;

  for (BackupRef& b : backups) {
    Decision d{std::move(b), false, {}};
    if (d.backup.time > now) {
      // Clock skew: keep, but let it take no count or bucket from real backups.
      d.keep = true;
      d.reasons.push_back("newer than now");
      out.push_back(std::move(d));
      continue;
    }
    if (policy.keep_within > seconds::zero() &&
        (within_all || d.backup.time.time_since_epoch().count() > cutoff)) {
      d.reasons.push_back(within_reason);
    }
    if (last_left > 0) {
      --last_left;
      d.reasons.push_back("last snapshot");
    }
    const Civil civil = ToCivil(d.backup.time, policy.utc_offset);
    for (Bucket& bucket : buckets) {
      if (bucket.left == 0) continue;
      const int64_t key = BucketKey(bucket.unit, civil);
      if (bucket.has_last && key == bucket.last) continue;  // an older backup of a taken bucket
      bucket.has_last = true;
      bucket.last = key;
      --bucket.left;
      d.reasons.push_back(BucketReason(bucket.unit, civil));
    }
    if (!newest_seen) {
      newest_seen = true;
      d.reasons.push_back("newest backup");
    }
    d.keep = !d.reasons.empty();
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace etcdsafe::catalog
