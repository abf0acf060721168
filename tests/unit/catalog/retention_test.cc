// Tests for the prune retention policy (src/catalog/retention.h).
//
// Most cases are a table: backups (id, UTC time) + policy + now -> the expected
// decisions, newest first, with their reasons (no reasons = removed).
//
// Golden files: tests/unit/catalog/testdata/*.golden hold the full decision list for a
// generated ~400-day set of hourly backups. After an intended change of the semantics,
// regenerate them and review the diff:
//   ETCDSAFE_UPDATE_GOLDEN=1 ./retention_test --gtest_filter='RetentionGolden.*'
#include "catalog/retention.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "base/error.h"

namespace etcdsafe::catalog {
namespace {

using namespace std::chrono;
using TimePoint = system_clock::time_point;

// "2026-11-20 14:05" or "2026-11-20 14:05:07" (UTC) -> time point.
TimePoint T(const std::string& s) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  const int n = std::sscanf(s.c_str(), "%d-%d-%d %d:%d:%d", &y, &mo, &d, &h, &mi, &sec);
  if (n < 5) throw std::runtime_error("bad test time: " + s);
  return sys_days{year{y} / mo / d} + hours{h} + minutes{mi} + seconds{sec};
}

// "20261120T140507Z": also the id format of the generated golden set.
std::string Compact(TimePoint t) {
  const auto s = floor<seconds>(t);
  const auto day = floor<days>(s);
  const year_month_day ymd{day};
  const hh_mm_ss hms{s - day};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04d%02u%02uT%02d%02d%02dZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

std::string Join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
  return out;
}

// ---------------------------------------------------------------------------------
// Table-driven policy cases.

struct Expect {
  std::string id;
  std::vector<std::string> reasons;  // empty: removed
};

struct Case {
  std::string name;
  std::vector<std::pair<std::string, std::string>> backups;  // id, UTC time
  RetentionPolicy policy;
  std::string now;
  std::vector<Expect> expected;  // newest first
};

std::vector<Case> Cases() {
  return {
      {"KeepLastOnly",
       {{"a", "2026-11-01 12:00"}, {"b", "2026-11-02 12:00"}, {"c", "2026-11-03 12:00"},
        {"d", "2026-11-04 12:00"}, {"e", "2026-11-05 12:00"}},
       {.keep_last = 3},
       "2026-11-06 00:00",
       {{"e", {"last snapshot", "newest backup"}},
        {"d", {"last snapshot"}},
        {"c", {"last snapshot"}},
        {"b", {}},
        {"a", {}}}},

      {"KeepLastMoreThanBackups",
       {{"a", "2026-11-01 12:00"}, {"b", "2026-11-02 12:00"}},
       {.keep_last = 10},
       "2026-11-06 00:00",
       {{"b", {"last snapshot", "newest backup"}}, {"a", {"last snapshot"}}}},

      // Days without backups do not use up a daily slot.
      {"DailyWithGaps",
       {{"d01", "2026-11-01 12:00"}, {"d02", "2026-11-02 12:00"}, {"d05", "2026-11-05 12:00"},
        {"d06", "2026-11-06 12:00"}, {"d10", "2026-11-10 12:00"}},
       {.keep_daily = 3},
       "2026-11-11 00:00",
       {{"d10", {"daily snapshot (2026-11-10)", "newest backup"}},
        {"d06", {"daily snapshot (2026-11-06)"}},
        {"d05", {"daily snapshot (2026-11-05)"}},
        {"d02", {}},
        {"d01", {}}}},

      // The newest backup of each day is the one kept.
      {"SeveralPerDay",
       {{"a", "2026-11-20 01:00"}, {"b", "2026-11-20 09:00"}, {"c", "2026-11-20 23:59:59"},
        {"d", "2026-11-19 08:00"}, {"e", "2026-11-19 20:00"}, {"f", "2026-11-18 10:00"}},
       {.keep_daily = 2},
       "2026-11-21 00:00",
       {{"c", {"daily snapshot (2026-11-20)", "newest backup"}},
        {"b", {}},
        {"a", {}},
        {"e", {"daily snapshot (2026-11-19)"}},
        {"d", {}},
        {"f", {}}}},

      {"Hourly",
       {{"a", "2026-11-20 10:59:59"}, {"b", "2026-11-20 11:00"}, {"c", "2026-11-20 11:30"},
        {"d", "2026-11-20 09:10"}, {"e", "2026-11-20 07:00"}},
       {.keep_hourly = 3},
       "2026-11-20 12:00",
       {{"c", {"hourly snapshot (2026-11-20 11:00)", "newest backup"}},
        {"b", {}},
        {"a", {"hourly snapshot (2026-11-20 10:00)"}},
        {"d", {"hourly snapshot (2026-11-20 09:00)"}},
        {"e", {}}}},

      // 2026 has 53 ISO weeks: Mon 2026-12-28 .. Sun 2027-01-03 is 2026-W53 and
      // 2027-W01 starts on Mon 2027-01-04.
      {"WeeklyAcrossYearBoundary",
       {{"dec27", "2026-12-27 23:00"}, {"dec28", "2026-12-28 00:00"}, {"dec31", "2026-12-31 12:00"},
        {"jan03", "2027-01-03 23:59:59"}, {"jan04", "2027-01-04 00:00"}, {"jan05", "2027-01-05 08:00"},
        {"dec20", "2026-12-20 08:00"}},
       {.keep_weekly = 3},
       "2027-01-06 00:00",
       {{"jan05", {"weekly snapshot (2027-W01)", "newest backup"}},
        {"jan04", {}},
        {"jan03", {"weekly snapshot (2026-W53)"}},
        {"dec31", {}},
        {"dec28", {}},
        {"dec27", {"weekly snapshot (2026-W52)"}},
        {"dec20", {}}}},

      // 2024-12-30 (Monday) already belongs to 2025-W01.
      {"WeeklyDecemberInNextYearsWeekOne",
       {{"dec29", "2024-12-29 12:00"}, {"dec30", "2024-12-30 12:00"}, {"jan01", "2025-01-01 12:00"}},
       {.keep_weekly = 5},
       "2025-01-02 00:00",
       {{"jan01", {"weekly snapshot (2025-W01)", "newest backup"}},
        {"dec30", {}},
        {"dec29", {"weekly snapshot (2024-W52)"}}}},

      {"MonthlyAndYearly",
       {{"jun15", "2025-06-15 12:00"}, {"dec31", "2025-12-31 23:00"}, {"jan01", "2026-01-01 00:30"},
        {"jan20", "2026-01-20 12:00"}, {"mar05", "2026-03-05 12:00"}, {"mar25", "2026-03-25 12:00"}},
       {.keep_monthly = 3, .keep_yearly = 2},
       "2026-04-01 00:00",
       {{"mar25", {"monthly snapshot (2026-03)", "yearly snapshot (2026)", "newest backup"}},
        {"mar05", {}},
        {"jan20", {"monthly snapshot (2026-01)"}},
        {"jan01", {}},
        {"dec31", {"monthly snapshot (2025-12)", "yearly snapshot (2025)"}},
        {"jun15", {}}}},

      // Each rule counts on its own; a backup lists every rule that keeps it.
      {"CombinedRulesListAllReasons",
       {{"a", "2026-11-20 10:00"}, {"b", "2026-11-20 11:30"}, {"c", "2026-11-20 11:45"},
        {"d", "2026-11-19 22:00"}, {"e", "2026-11-18 12:00"}, {"f", "2026-11-10 12:00"}},
       {.keep_last = 2, .keep_hourly = 2, .keep_daily = 3, .keep_within = hours(36)},
       "2026-11-20 12:00",
       {{"c",
         {"within 1d12h", "last snapshot", "hourly snapshot (2026-11-20 11:00)",
          "daily snapshot (2026-11-20)", "newest backup"}},
        {"b", {"within 1d12h", "last snapshot"}},
        {"a", {"within 1d12h", "hourly snapshot (2026-11-20 10:00)"}},
        {"d", {"within 1d12h", "daily snapshot (2026-11-19)"}},
        {"e", {"daily snapshot (2026-11-18)"}},
        {"f", {}}}},

      // Kept when strictly newer than now - 7d; exactly at the cutoff is out.
      {"KeepWithinBoundary",
       {{"now", "2026-11-20 12:00:00"}, {"inside", "2026-11-13 12:00:01"},
        {"exact", "2026-11-13 12:00:00"}, {"outside", "2026-11-13 11:59:59"}},
       {.keep_within = days(7)},
       "2026-11-20 12:00:00",
       {{"now", {"within 7d", "newest backup"}},
        {"inside", {"within 7d"}},
        {"exact", {}},
        {"outside", {}}}},

      // Future backups are kept but take no keep-last slot; "now" itself is not future.
      {"FutureBackups",
       {{"tomorrow", "2026-11-21 12:00"}, {"plus1s", "2026-11-20 12:00:01"},
        {"atnow", "2026-11-20 12:00:00"}, {"yesterday", "2026-11-19 12:00"},
        {"older", "2026-11-18 12:00"}},
       {.keep_last = 2},
       "2026-11-20 12:00:00",
       {{"tomorrow", {"newer than now"}},
        {"plus1s", {"newer than now"}},
        {"atnow", {"last snapshot", "newest backup"}},
        {"yesterday", {"last snapshot"}},
        {"older", {}}}},

      {"OnlyFutureBackups",
       {{"a", "2026-11-21 12:00"}, {"b", "2026-11-22 12:00"}},
       {.keep_daily = 1},
       "2026-11-20 12:00",
       {{"b", {"newer than now"}}, {"a", {"newer than now"}}}},

      // The same three backups fall into different days depending on the offset.
      {"UtcOffsetZero",
       {{"a", "2026-11-19 20:00"}, {"b", "2026-11-19 17:00"}, {"c", "2026-11-19 03:00"}},
       {.keep_daily = 2},
       "2026-11-21 00:00",
       {{"a", {"daily snapshot (2026-11-19)", "newest backup"}}, {"b", {}}, {"c", {}}}},
      {"UtcOffsetPlus0530",
       {{"a", "2026-11-19 20:00"}, {"b", "2026-11-19 17:00"}, {"c", "2026-11-19 03:00"}},
       {.keep_hourly = 1, .keep_daily = 2, .utc_offset = minutes(5 * 60 + 30)},
       "2026-11-21 00:00",
       {{"a",
         {"hourly snapshot (2026-11-20 01:00)", "daily snapshot (2026-11-20)", "newest backup"}},
        {"b", {"daily snapshot (2026-11-19)"}},
        {"c", {}}}},
      {"UtcOffsetMinus0800",
       {{"a", "2026-11-19 20:00"}, {"b", "2026-11-19 17:00"}, {"c", "2026-11-19 03:00"}},
       {.keep_daily = 2, .utc_offset = minutes(-8 * 60)},
       "2026-11-21 00:00",
       {{"a", {"daily snapshot (2026-11-19)", "newest backup"}},
        {"b", {}},
        {"c", {"daily snapshot (2026-11-18)"}}}},
      // An offset can move a backup across a year (and ISO week) boundary.
      {"UtcOffsetMovesYear",
       {{"a", "2026-12-31 20:00"}, {"b", "2026-12-31 10:00"}},
       {.keep_yearly = 2, .utc_offset = minutes(5 * 60)},
       "2027-01-02 00:00",
       {{"a", {"yearly snapshot (2027)", "newest backup"}}, {"b", {"yearly snapshot (2026)"}}}},

      {"EmptyInput", {}, {.keep_last = 3}, "2026-11-20 12:00", {}},

      // The policy would remove everything; the newest backup stays anyway.
      {"NewestAlwaysKept",
       {{"a", "2026-11-10 12:00"}, {"b", "2026-11-05 12:00"}},
       {.keep_within = days(1)},
       "2026-11-20 12:00",
       {{"a", {"newest backup"}}, {"b", {}}}},

      // Equal times are ordered by id, whatever the input order.
      {"DuplicateTimesOrderedById",
       {{"c", "2026-11-20 12:00"}, {"a", "2026-11-20 12:00"}, {"b", "2026-11-20 12:00"},
        {"d", "2026-11-19 12:00"}},
       {.keep_last = 2, .keep_daily = 1},
       "2026-11-21 00:00",
       {{"a", {"last snapshot", "daily snapshot (2026-11-20)", "newest backup"}},
        {"b", {"last snapshot"}},
        {"c", {}},
        {"d", {}}}},

      // ApplyPolicy itself keeps everything for an empty policy (ValidatePolicy rejects it).
      {"EmptyPolicyKeepsEverything",
       {{"a", "2026-11-10 12:00"}, {"b", "2026-11-05 12:00"}},
       {},
       "2026-11-20 12:00",
       {{"a", {"policy is empty"}}, {"b", {"policy is empty"}}}},
  };
}

class RetentionTable : public ::testing::TestWithParam<Case> {};

void CheckCase(const Case& c, std::vector<BackupRef> input) {
  const std::vector<Decision> got = ApplyPolicy(std::move(input), c.policy, T(c.now));
  ASSERT_EQ(got.size(), c.expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const Expect& want = c.expected[i];
    SCOPED_TRACE("position " + std::to_string(i) + ", expected id " + want.id);
    EXPECT_EQ(got[i].backup.id, want.id);
    EXPECT_EQ(got[i].keep, !want.reasons.empty());
    EXPECT_EQ(Join(got[i].reasons, "; "), Join(want.reasons, "; "));
  }
}

TEST_P(RetentionTable, Decisions) {
  const Case& c = GetParam();
  std::vector<BackupRef> input;
  for (const auto& [id, time] : c.backups) input.push_back({id, T(time)});
  {
    SCOPED_TRACE("input as listed");
    CheckCase(c, input);
  }
  // The result must not depend on input order.
  std::reverse(input.begin(), input.end());
  {
    SCOPED_TRACE("input reversed");
    CheckCase(c, input);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, RetentionTable, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& p) { return p.param.name; });

// ---------------------------------------------------------------------------------
// Single-rule details.

TEST(Retention, KeepWithinIsNanosecondExact) {
  const TimePoint now = T("2026-11-20 12:00");
  const std::vector<BackupRef> in = {{"newest", now},
                                     {"in", now - hours(1) + nanoseconds(1)},
                                     {"edge", now - hours(1)}};
  const auto got = ApplyPolicy(in, {.keep_within = hours(1)}, now);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_TRUE(got[1].keep);
  EXPECT_EQ(got[1].backup.id, "in");
  EXPECT_FALSE(got[2].keep);
}

TEST(Retention, KeepWithinLongerThanClockRangeKeepsAll) {
  const TimePoint now = T("2026-11-20 12:00");
  const std::vector<BackupRef> in = {{"a", now}, {"b", T("1970-01-01 00:00")}, {"c", T("1900-01-01 00:00")}};
  const auto got = ApplyPolicy(in, {.keep_within = ParseKeepWithin("9999999y")}, now);
  ASSERT_EQ(got.size(), 3u);
  for (const auto& d : got) EXPECT_TRUE(d.keep) << d.backup.id;
  EXPECT_EQ(got[2].reasons, std::vector<std::string>{"within 3649999635d"});
}

// Independent ISO-8601 week computation (ordinal-day formula) to check the library's
// Thursday rule over every day of a long range.
std::string ReferenceIsoWeek(sys_days day) {
  const year_month_day ymd{day};
  const auto weeks_in = [](year y) {
    const unsigned jan1 = weekday{sys_days{y / January / 1}}.iso_encoding();
    return (jan1 == 4 || (y.is_leap() && jan1 == 3)) ? 53 : 52;
  };
  const int ordinal = static_cast<int>((day - sys_days{ymd.year() / January / 1}).count()) + 1;
  const int wd = static_cast<int>(weekday{day}.iso_encoding());
  int y = static_cast<int>(ymd.year());
  int w = (ordinal - wd + 10) / 7;
  if (w < 1) {
    --y;
    w = weeks_in(year{y});
  } else if (w > weeks_in(ymd.year())) {
    ++y;
    w = 1;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "weekly snapshot (%04d-W%02d)", y, w);
  return buf;
}

std::string WeekReason(TimePoint t) {
  const auto got = ApplyPolicy({{"x", t}}, {.keep_weekly = 1}, t);
  return got.at(0).reasons.at(0);
}

TEST(Retention, IsoWeekMatchesGnuDate) {
  // Expected values from `date -u -d DAY +%G-W%V`.
  const std::vector<std::pair<std::string, std::string>> table = {
      {"2026-12-27", "2026-W52"}, {"2026-12-28", "2026-W53"}, {"2026-12-31", "2026-W53"},
      {"2027-01-03", "2026-W53"}, {"2027-01-04", "2027-W01"}, {"2024-12-29", "2024-W52"},
      {"2024-12-30", "2025-W01"}, {"2021-01-03", "2020-W53"}, {"2021-01-04", "2021-W01"},
      {"2022-01-01", "2021-W52"}, {"2020-12-31", "2020-W53"}, {"2015-12-31", "2015-W53"},
      {"2016-01-03", "2015-W53"}, {"2008-12-29", "2009-W01"}, {"2010-01-03", "2009-W53"},
      {"2019-12-30", "2020-W01"}, {"2032-12-31", "2032-W53"}, {"2033-01-02", "2032-W53"},
  };
  for (const auto& [day, week] : table) {
    EXPECT_EQ(WeekReason(T(day + " 12:00")), "weekly snapshot (" + week + ")") << day;
  }
}

TEST(Retention, IsoWeekMatchesReferenceEveryDay) {
  for (sys_days d = sys_days{year{1990} / 1 / 1}; d < sys_days{year{2060} / 1 / 1}; d += days(1)) {
    ASSERT_EQ(WeekReason(d + hours(23) + minutes(59)), ReferenceIsoWeek(d)) << Compact(d);
  }
}

TEST(Retention, DuplicateIdIsAnError) {
  try {
    ApplyPolicy({{"a", T("2026-11-20 12:00")}, {"a", T("2026-11-19 12:00")}}, {.keep_last = 1},
                T("2026-11-21 00:00"));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_STREQ(e.what(), "duplicate backup id: a");
  }
}

// ---------------------------------------------------------------------------------
// Validation and parsing.

std::string ErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    return e.what();
  }
  return "";
}

TEST(Retention, ValidatePolicy) {
  EXPECT_EQ(ErrorOf([] { ValidatePolicy({}); }),
            "no retention policy given: refusing to remove anything (set keep-last, keep-within or "
            "keep-hourly/daily/weekly/monthly/yearly)");
  // An offset alone is not a policy.
  EXPECT_NE(ErrorOf([] { ValidatePolicy({.utc_offset = minutes(60)}); }), "");
  EXPECT_EQ(ErrorOf([] { ValidatePolicy({.keep_last = 1, .keep_daily = -1}); }),
            "keep-daily must not be negative: -1");
  EXPECT_EQ(ErrorOf([] { ValidatePolicy({.keep_yearly = -3}); }), "keep-yearly must not be negative: -3");
  EXPECT_EQ(ErrorOf([] { ValidatePolicy({.keep_within = seconds(-5)}); }),
            "keep-within must not be negative: -5s");
  EXPECT_EQ(ErrorOf([] { ValidatePolicy({.keep_last = 1, .utc_offset = hours(24)}); }),
            "utc offset must be less than 24h: 1440min");
  EXPECT_EQ(ErrorOf([] { ValidatePolicy({.keep_last = 1, .utc_offset = minutes(-23 * 60 - 59)}); }), "");
  EXPECT_EQ(ErrorOf([] { ValidatePolicy({.keep_within = hours(1)}); }), "");
  // ApplyPolicy refuses invalid values too (but not an empty policy).
  EXPECT_EQ(ErrorOf([] { ApplyPolicy({}, {.keep_last = -1}, T("2026-11-20 12:00")); }),
            "keep-last must not be negative: -1");
}

TEST(Retention, ParseKeepWithin) {
  EXPECT_EQ(ParseKeepWithin("36h"), hours(36));
  EXPECT_EQ(ParseKeepWithin("30d"), days(30));
  EXPECT_EQ(ParseKeepWithin("1y2m3d4h"), days(365 + 60 + 3) + hours(4));
  EXPECT_EQ(ParseKeepWithin("4h1y"), days(365) + hours(4));
  EXPECT_EQ(ParseKeepWithin("0d1h"), hours(1));
  EXPECT_EQ(ErrorOf([] { ParseKeepWithin("7w"); }),
            "invalid keep-within duration \"7w\": unknown unit 'w' (expected e.g. 36h, 30d, 1y2m3d4h)");
  for (const char* bad : {"", "d", "7", "7d3", "-1d", "+1d", " 1d", "1d ", "1.5d", "1d1d", "0d",
                          "0h0d", "12345678d", "1D"}) {
    EXPECT_NE(ErrorOf([&] { ParseKeepWithin(bad); }), "") << bad;
  }
}

TEST(Retention, ParseUtcOffset) {
  const std::vector<std::pair<std::string, int>> good = {
      {"Z", 0},        {"UTC", 0},       {"+00:00", 0},   {"+05:30", 330},  {"-08:00", -480},
      {"-0800", -480}, {"+0545", 345},   {"+5", 300},     {"-03", -180},    {"UTC+01:00", 60},
      {"utc-2", -120}, {"+23:59", 1439},
  };
  for (const auto& [text, mins] : good) EXPECT_EQ(ParseUtcOffset(text), minutes(mins)) << text;
  for (const char* bad : {"", "5", "+", "+24", "+05:60", "+5:3", "+123", "+05:30:00", "05:30", "GMT+1",
                          "+0a", "+:30", "+12345"}) {
    EXPECT_NE(ErrorOf([&] { ParseUtcOffset(bad); }), "") << bad;
  }
}

TEST(Retention, FormatKeepWithin) {
  EXPECT_EQ(FormatKeepWithin(days(7)), "7d");
  EXPECT_EQ(FormatKeepWithin(hours(36)), "1d12h");
  EXPECT_EQ(FormatKeepWithin(ParseKeepWithin("1y")), "365d");
  EXPECT_EQ(FormatKeepWithin(minutes(90)), "1h30min");
  EXPECT_EQ(FormatKeepWithin(seconds(5)), "5s");
  EXPECT_EQ(FormatKeepWithin(seconds(0)), "0s");
}

// ---------------------------------------------------------------------------------
// Golden files.

// Deterministic ~400 days of hourly backups from 2026-01-10 (crossing 2026-W53 and
// New Year 2027): about 1 in 10 hours missing, minute/second jitter, and a 5-day
// outage (days 300..304) to exercise gaps.
std::vector<BackupRef> MakeHourlySet() {
  std::vector<BackupRef> out;
  uint64_t x = 42;
  const TimePoint start = T("2026-01-10 00:00");
  for (int hour = 0; hour < 400 * 24; ++hour) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;  // Knuth's MMIX LCG
    const uint64_t r = x >> 33;
    if (r % 10 == 0) continue;
    if (hour / 24 >= 300 && hour / 24 < 305) continue;
    const TimePoint t = start + hours(hour) + minutes((r >> 4) % 60) + seconds((r >> 12) % 60);
    out.push_back({Compact(t), t});
  }
  return out;
}

std::string PolicyText(const RetentionPolicy& p) {
  std::ostringstream o;
  o << "keep-last=" << p.keep_last << " keep-hourly=" << p.keep_hourly << " keep-daily=" << p.keep_daily
    << " keep-weekly=" << p.keep_weekly << " keep-monthly=" << p.keep_monthly
    << " keep-yearly=" << p.keep_yearly
    << " keep-within=" << (p.keep_within.count() ? FormatKeepWithin(p.keep_within) : "off")
    << " utc-offset=" << p.utc_offset.count() << "min";
  return o.str();
}

// One line per kept backup; runs of removed backups collapse to one line (the order is
// the deterministic newest-first order, so a run is exact).
std::string Render(const std::string& title, const std::vector<BackupRef>& set,
                   const RetentionPolicy& p, TimePoint now) {
  const auto decisions = ApplyPolicy(set, p, now);
  std::ostringstream o;
  size_t kept = 0;
  for (const auto& d : decisions) kept += d.keep;
  o << "# " << title << "\n# policy: " << PolicyText(p) << "\n# now: " << Compact(now)
    << "\n# backups: " << decisions.size() << " (MakeHourlySet), kept " << kept << ", removed "
    << decisions.size() - kept << "\n";
  for (size_t i = 0; i < decisions.size();) {
    if (decisions[i].keep) {
      o << "keep    " << decisions[i].backup.id << "  " << Join(decisions[i].reasons, "; ") << "\n";
      ++i;
      continue;
    }
    size_t j = i;
    while (j < decisions.size() && !decisions[j].keep) ++j;
    o << "remove  " << decisions[i].backup.id;
    if (j - i > 1) o << " .. " << decisions[j - 1].backup.id;
    o << "  (" << j - i << ")\n";
    i = j;
  }
  return o.str();
}

void CheckGolden(const std::string& file, const std::string& got) {
  const std::string path = std::string(ETCDSAFE_RETENTION_TESTDATA) + "/" + file;
  const char* update = std::getenv("ETCDSAFE_UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    std::ofstream(path, std::ios::binary) << got;
    std::printf("rewrote %s\n", path.c_str());
    return;
  }
  std::ifstream in(path, std::ios::binary);
  ASSERT_TRUE(in) << "missing " << path << " (run with ETCDSAFE_UPDATE_GOLDEN=1 to create it)";
  std::stringstream want;
  want << in.rdbuf();
  // Report the first differing line rather than two huge strings.
  std::istringstream a(want.str()), b(got);
  std::string la, lb;
  for (int line = 1;; ++line) {
    const bool ha = static_cast<bool>(std::getline(a, la));
    const bool hb = static_cast<bool>(std::getline(b, lb));
    if (!ha && !hb) break;
    ASSERT_EQ(ha ? la : "<end of file>", hb ? lb : "<end of output>")
        << path << ":" << line << " differs (ETCDSAFE_UPDATE_GOLDEN=1 rewrites it)";
  }
  EXPECT_EQ(want.str(), got);  // catches a missing final newline
}

TEST(RetentionGolden, IssueExampleUtc) {
  const auto set = MakeHourlySet();
  const RetentionPolicy p{.keep_last = 24, .keep_daily = 7, .keep_weekly = 4, .keep_monthly = 6};
  CheckGolden("issue_example_utc.golden",
              Render("prune --keep-last 24 --keep-daily 7 --keep-weekly 4 --keep-monthly 6", set, p,
                     T("2027-02-14 00:10")));
}

TEST(RetentionGolden, EveryRuleOffset0530) {
  auto set = MakeHourlySet();
  // Two clock-skewed backups in the future.
  set.push_back({"future-a", T("2027-02-14 03:00")});
  set.push_back({"future-b", T("2028-01-01 00:00")});
  const RetentionPolicy p{.keep_last = 5,
                          .keep_hourly = 30,
                          .keep_daily = 10,
                          .keep_weekly = 60,
                          .keep_monthly = 14,
                          .keep_yearly = 3,
                          .keep_within = ParseKeepWithin("1d12h"),
                          .utc_offset = ParseUtcOffset("+05:30")};
  CheckGolden("every_rule_offset_0530.golden",
              Render("all rules, UTC+05:30, two future backups", set, p, T("2027-02-14 00:10")));
}

TEST(RetentionGolden, InputOrderDoesNotMatter) {
  auto set = MakeHourlySet();
  const RetentionPolicy p{.keep_last = 24, .keep_daily = 7, .keep_weekly = 4, .keep_monthly = 6};
  const TimePoint now = T("2027-02-14 00:10");
  const auto sorted = ApplyPolicy(set, p, now);
  std::reverse(set.begin(), set.end());
  std::rotate(set.begin(), set.begin() + static_cast<std::ptrdiff_t>(set.size() / 3), set.end());
  const auto shuffled = ApplyPolicy(set, p, now);
  ASSERT_EQ(sorted.size(), shuffled.size());
  for (size_t i = 0; i < sorted.size(); ++i) {
    EXPECT_EQ(sorted[i].backup.id, shuffled[i].backup.id);
    EXPECT_EQ(sorted[i].reasons, shuffled[i].reasons);
  }
}

}  // namespace
}  // namespace etcdsafe::catalog
