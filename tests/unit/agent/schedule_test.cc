// Schedule::Parse and Schedule::Next: concrete cases worked out by hand (UTC instants of
// the DST days checked with python3's zoneinfo), and a randomized comparison against a
// brute-force minute-by-minute reference written here independently of schedule.cc.
#include "agent/schedule.h"

#include <absl/time/civil_time.h>
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"

namespace etcdsafe::agent {
namespace {

using std::chrono::system_clock;

absl::TimeZone Zone(const std::string& name) {
  absl::TimeZone tz;
  EXPECT_TRUE(absl::LoadTimeZone(name, &tz)) << name;
  return tz;
}

// "2026-03-29T01:00:00Z" (or with fractional seconds) → time_point.
system_clock::time_point T(const std::string& rfc3339) {
  absl::Time t;
  std::string err;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err)) << rfc3339 << ": " << err;
  return absl::ToChronoTime(t);
}

std::string Fmt(std::optional<system_clock::time_point> tp) {
  if (!tp) return "never";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", absl::FromChrono(*tp), absl::UTCTimeZone());
}

std::string NextUtc(const std::string& expr, const std::string& after, const std::string& zone = "UTC") {
  return Fmt(Schedule::Parse(expr).Next(T(after), Zone(zone)));
}

// The next `n` firings, chained.
std::vector<std::string> Chain(const std::string& expr, const std::string& after, const std::string& zone, int n) {
  Schedule s = Schedule::Parse(expr);
  absl::TimeZone tz = Zone(zone);
  std::vector<std::string> out;
  std::optional<system_clock::time_point> t = T(after);
  for (int i = 0; i < n && t; i++) {
    t = s.Next(*t, tz);
    out.push_back(Fmt(t));
  }
  return out;
}

TEST(ScheduleTest, EmptyNeverFires) {
  Schedule s;
  EXPECT_TRUE(s.empty());
  EXPECT_FALSE(s.Next(T("2026-01-01T00:00:00Z"), absl::UTCTimeZone()).has_value());
}

TEST(ScheduleTest, BasicCron) {
  EXPECT_EQ(NextUtc("0 */6 * * *", "2026-01-01T00:00:00Z"), "2026-01-01T06:00:00Z");
  EXPECT_EQ(NextUtc("0 */6 * * *", "2026-01-01T23:59:59Z"), "2026-01-02T00:00:00Z");
  EXPECT_EQ(NextUtc("* * * * *", "2026-01-01T00:00:00Z"), "2026-01-01T00:01:00Z");
  EXPECT_EQ(NextUtc("* * * * *", "2026-01-01T00:00:30.5Z"), "2026-01-01T00:01:00Z");
  // Strictly after: a time that matches exactly is not returned again.
  EXPECT_EQ(NextUtc("0 0 * * *", "2026-01-01T00:00:00Z"), "2026-01-02T00:00:00Z");
  EXPECT_EQ(NextUtc("0 0 * * *", "2025-12-31T23:59:59.999Z"), "2026-01-01T00:00:00Z");
  EXPECT_EQ(NextUtc("5-20/5 * * * *", "2026-01-01T00:20:00Z"), "2026-01-01T01:05:00Z");
  EXPECT_EQ(NextUtc("5-20/5 * * * *", "2026-01-01T00:06:00Z"), "2026-01-01T00:10:00Z");
  EXPECT_EQ(NextUtc("7,3,59 * * * *", "2026-01-01T00:03:00Z"), "2026-01-01T00:07:00Z");
  EXPECT_EQ(NextUtc("7,3,59 * * * *", "2026-01-01T00:07:00Z"), "2026-01-01T00:59:00Z");
  EXPECT_EQ(NextUtc("30 23 31 12 *", "2026-01-01T00:00:00Z"), "2026-12-31T23:30:00Z");
  EXPECT_EQ(NextUtc("0 0 31 * *", "2026-01-31T00:00:00Z"), "2026-03-31T00:00:00Z");
  EXPECT_EQ(NextUtc("0 12 1 */3 *", "2026-02-10T00:00:00Z"), "2026-04-01T12:00:00Z");
  // Extra spaces and tabs between fields are fine.
  EXPECT_EQ(NextUtc("  0\t0  1 1 *  ", "2026-06-01T00:00:00Z"), "2027-01-01T00:00:00Z");
}

TEST(ScheduleTest, MonthAndWeekdayNames) {
  // 2026-01-01 is a Thursday; 2026-01-09 a Friday.
  EXPECT_EQ(NextUtc("0 9 * * mon-fri", "2026-01-09T10:00:00Z"), "2026-01-12T09:00:00Z");
  EXPECT_EQ(NextUtc("0 9 * * MON-Fri", "2026-01-09T08:00:00Z"), "2026-01-09T09:00:00Z");
  EXPECT_EQ(NextUtc("0 9 * * sat,sun", "2026-01-05T00:00:00Z"), "2026-01-10T09:00:00Z");
  EXPECT_EQ(NextUtc("0 0 1 jan,JUL *", "2026-02-01T00:00:00Z"), "2026-07-01T00:00:00Z");
  EXPECT_EQ(NextUtc("0 0 1 mar-may *", "2026-05-01T00:00:00Z"), "2027-03-01T00:00:00Z");
  // 7 and 0 are both Sunday.
  EXPECT_EQ(NextUtc("0 0 * * 7", "2026-01-01T00:00:00Z"), "2026-01-04T00:00:00Z");
  EXPECT_EQ(NextUtc("0 0 * * 0", "2026-01-01T00:00:00Z"), "2026-01-04T00:00:00Z");
  EXPECT_EQ(Chain("0 0 * * 5-7", "2026-01-01T00:00:00Z", "UTC", 4),
            (std::vector<std::string>{"2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z",
                                      "2026-01-09T00:00:00Z"}));
}

TEST(ScheduleTest, DayOfMonthOrDayOfWeek) {
  // Both restricted: the 13th OR any Friday.
  EXPECT_EQ(Chain("0 0 13 * fri", "2026-01-01T00:00:00Z", "UTC", 4),
            (std::vector<std::string>{"2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z", "2026-01-13T00:00:00Z",
                                      "2026-01-16T00:00:00Z"}));
  // Day-of-week `*`: only the day of month counts.
  EXPECT_EQ(NextUtc("0 0 13 * *", "2026-01-01T00:00:00Z"), "2026-01-13T00:00:00Z");
  // Day-of-month `*`: only the weekday counts.
  EXPECT_EQ(NextUtc("0 0 * * fri", "2026-01-01T00:00:00Z"), "2026-01-02T00:00:00Z");
  // Vixie: "*/2" starts with '*' so it counts as unrestricted and both must match:
  // odd days that are Fridays (2026-01-02 is an even Friday, 2026-01-09 an odd one).
  EXPECT_EQ(NextUtc("0 0 */2 * fri", "2026-01-01T00:00:00Z"), "2026-01-09T00:00:00Z");
  // "1-31/2" is the same set but restricted: odd days OR Fridays.
  EXPECT_EQ(NextUtc("0 0 1-31/2 * fri", "2026-01-01T00:00:00Z"), "2026-01-02T00:00:00Z");
}

TEST(ScheduleTest, Descriptors) {
  const std::string after = "2026-01-07T10:20:30Z";  // a Wednesday
  EXPECT_EQ(NextUtc("@hourly", after), "2026-01-07T11:00:00Z");
  EXPECT_EQ(NextUtc("@daily", after), "2026-01-08T00:00:00Z");
  EXPECT_EQ(NextUtc("@midnight", after), "2026-01-08T00:00:00Z");
  EXPECT_EQ(NextUtc("@weekly", after), "2026-01-11T00:00:00Z");
  EXPECT_EQ(NextUtc("@monthly", after), "2026-02-01T00:00:00Z");
  EXPECT_EQ(NextUtc("@yearly", after), "2027-01-01T00:00:00Z");
  EXPECT_EQ(NextUtc("@annually", after), "2027-01-01T00:00:00Z");
  EXPECT_EQ(NextUtc("@DAILY", after), "2026-01-08T00:00:00Z");
  EXPECT_EQ(NextUtc("@daily", after, "Europe/Berlin"), "2026-01-07T23:00:00Z");
  EXPECT_EQ(Schedule::Parse("@daily").text(), "@daily");
  EXPECT_FALSE(Schedule::Parse("@daily").every().has_value());
}

TEST(ScheduleTest, Every) {
  Schedule s = Schedule::Parse("@every 1s");
  ASSERT_TRUE(s.every().has_value());
  EXPECT_EQ(s.every()->count(), 1);
  EXPECT_EQ(NextUtc("@every 1s", "2026-01-01T00:00:00Z"), "2026-01-01T00:00:01Z");
  EXPECT_EQ(NextUtc("@every 1s", "2026-01-01T00:00:00.5Z"), "2026-01-01T00:00:01Z");
  EXPECT_EQ(NextUtc("@every 15m", "2026-01-01T00:00:07.25Z"), "2026-01-01T00:15:07Z");
  EXPECT_EQ(NextUtc("@every 1h30m", "2026-01-01T00:00:00Z"), "2026-01-01T01:30:00Z");
  EXPECT_EQ(NextUtc("@every 1500ms", "2026-01-01T00:00:00Z"), "2026-01-01T00:00:01Z");
  EXPECT_EQ(NextUtc("@every 2d", "2026-01-01T00:00:00Z"), "2026-01-03T00:00:00Z");
  // Independent of the zone, also across a DST change: always 1 h of real time.
  EXPECT_EQ(NextUtc("@every 1h", "2026-03-29T00:30:00Z", "Europe/Berlin"), "2026-03-29T01:30:00Z");
  EXPECT_EQ(Schedule::Parse("@every 1h30m").every()->count(), 5400);
  EXPECT_EQ(Schedule::Parse("@every 1.5h").every()->count(), 5400);
}

TEST(ScheduleTest, LeapDayAndNeverMatching) {
  EXPECT_EQ(NextUtc("0 0 29 2 *", "2026-01-01T00:00:00Z"), "2028-02-29T00:00:00Z");
  EXPECT_EQ(NextUtc("0 0 29 2 *", "2028-02-29T00:00:00Z"), "2032-02-29T00:00:00Z");
  // Midnight of 2028-02-29 in Berlin is 23:00Z the day before; from 23:59Z it is past.
  EXPECT_EQ(NextUtc("0 0 29 feb *", "2028-02-28T22:59:00Z", "Europe/Berlin"), "2028-02-28T23:00:00Z");
  EXPECT_EQ(NextUtc("0 0 29 feb *", "2028-02-28T23:59:00Z", "Europe/Berlin"), "2032-02-28T23:00:00Z");
  EXPECT_EQ(NextUtc("0 0 30 2 *", "2026-01-01T00:00:00Z"), "never");
  EXPECT_EQ(NextUtc("0 0 31 4,6,9,11 *", "2026-01-01T00:00:00Z"), "never");
  // ... but with a restricted weekday the OR rule makes it fire on those weekdays.
  EXPECT_EQ(NextUtc("0 0 30 2 mon", "2026-01-01T00:00:00Z"), "2026-02-02T00:00:00Z");
}

TEST(ScheduleTest, BerlinSpringForward) {
  // 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00Z). 02:30 does not exist: fires once at 03:00 CEST.
  EXPECT_EQ(Chain("30 2 * * *", "2026-03-27T12:00:00Z", "Europe/Berlin", 3),
            (std::vector<std::string>{"2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}));
  // Every hour: one firing per real hour, the skipped 02:00 fires at the transition (= 03:00 CEST).
  EXPECT_EQ(Chain("0 * * * *", "2026-03-28T23:30:00Z", "Europe/Berlin", 4),
            (std::vector<std::string>{"2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z",
                                      "2026-03-29T03:00:00Z"}));
  // Every 15 minutes: 02:00..02:45 all collapse into the one firing at 03:00 CEST.
  EXPECT_EQ(Chain("*/15 * * * *", "2026-03-29T00:40:00Z", "Europe/Berlin", 3),
            (std::vector<std::string>{"2026-03-29T00:45:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:15:00Z"}));
  // 03:30 local exists: unaffected.
  EXPECT_EQ(NextUtc("30 3 * * *", "2026-03-28T12:00:00Z", "Europe/Berlin"), "2026-03-29T01:30:00Z");
}

TEST(ScheduleTest, BerlinFallBack) {
  // 2026-10-25: 03:00 CEST goes back to 02:00 CET (01:00Z). 02:30 happens twice: fires at the first.
  EXPECT_EQ(Chain("30 2 * * *", "2026-10-24T12:00:00Z", "Europe/Berlin", 3),
            (std::vector<std::string>{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z", "2026-10-27T01:30:00Z"}));
  // Asked from inside the second 02:xx hour: the first 02:30 was already, the next is tomorrow.
  EXPECT_EQ(NextUtc("30 2 * * *", "2026-10-25T01:10:00Z", "Europe/Berlin"), "2026-10-26T01:30:00Z");
  EXPECT_EQ(NextUtc("45 2 * * *", "2026-10-25T01:30:00Z", "Europe/Berlin"), "2026-10-26T01:45:00Z");
  // Every hour: 02:00 fires once (00:00Z), the repeated hour (01:00Z) does not fire.
  EXPECT_EQ(Chain("0 * * * *", "2026-10-24T22:30:00Z", "Europe/Berlin", 4),
            (std::vector<std::string>{"2026-10-24T23:00:00Z", "2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z",
                                      "2026-10-25T03:00:00Z"}));
  // Every minute inside the repeated hour: after 02:59 CEST comes 03:00 CET, an hour later.
  EXPECT_EQ(Chain("* * * * *", "2026-10-25T00:58:00Z", "Europe/Berlin", 2),
            (std::vector<std::string>{"2026-10-25T00:59:00Z", "2026-10-25T02:00:00Z"}));
}

TEST(ScheduleTest, NewYork) {
  // 2026-03-08: 02:00 EST → 03:00 EDT (07:00Z).
  EXPECT_EQ(NextUtc("30 2 * * *", "2026-03-07T12:00:00Z", "America/New_York"), "2026-03-08T07:00:00Z");
  EXPECT_EQ(NextUtc("30 2 * * *", "2026-03-08T07:00:00Z", "America/New_York"), "2026-03-09T06:30:00Z");
  // 2026-11-01: 02:00 EDT → 01:00 EST (06:00Z); 01:30 happens at 05:30Z and 06:30Z.
  EXPECT_EQ(Chain("30 1 * * *", "2026-10-31T12:00:00Z", "America/New_York", 2),
            (std::vector<std::string>{"2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"}));
  EXPECT_EQ(NextUtc("0 9 * * mon-fri", "2026-07-03T14:00:00Z", "America/New_York"), "2026-07-06T13:00:00Z");
  EXPECT_EQ(NextUtc("0 9 * * mon-fri", "2026-12-04T14:00:00Z", "America/New_York"), "2026-12-07T14:00:00Z");
}

TEST(ScheduleTest, EfficientFarAhead) {
  // Five years of non-matching days are skipped quickly (months and days are skipped, not minutes).
  Schedule s = Schedule::Parse("0 0 30 2 *");
  absl::TimeZone tz = Zone("Europe/Berlin");
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 200; i++) EXPECT_FALSE(s.Next(T("2026-01-01T00:00:00Z"), tz).has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

void ExpectParseError(const std::string& expr, const std::string& want) {
  try {
    Schedule::Parse(expr);
    ADD_FAILURE() << "\"" << expr << "\" parsed";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << msg;
    EXPECT_NE(msg.find(want), std::string::npos) << "\"" << expr << "\": got: " << msg << "\nwant: " << want;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    EXPECT_EQ(msg.rfind("\"" + expr + "\": ", 0), 0u) << msg;
  }
}

TEST(ScheduleTest, ParseErrors) {
  ExpectParseError("", "empty schedule");
  ExpectParseError("0 */6 * *", "cron needs 5 fields (minute hour day-of-month month day-of-week), got 4");
  ExpectParseError("0 0 */6 * * *", "cron needs 5 fields (minute hour day-of-month month day-of-week), got 6");
  ExpectParseError("60 * * * *", "minute field \"60\" has 60, out of range 0-59");
  ExpectParseError("0 24 * * *", "hour field \"24\" has 24, out of range 0-23");
  ExpectParseError("0 0 0 * *", "day-of-month field \"0\" has 0, out of range 1-31");
  ExpectParseError("0 0 32 * *", "day-of-month field \"32\" has 32, out of range 1-31");
  ExpectParseError("0 0 * 13 *", "month field \"13\" has 13, out of range 1-12");
  ExpectParseError("0 0 * * 8", "day-of-week field \"8\" has 8, out of range 0-7");
  ExpectParseError("*/0 * * * *", "minute field \"*/0\" has a step of 0");
  ExpectParseError("5-2 * * * *", "minute field \"5-2\" has a backwards range 5-2");
  ExpectParseError("0 0 * foo *", "month field \"foo\" has an unknown name \"foo\"");
  ExpectParseError("0 0 * * monday", "day-of-week field \"monday\" has an unknown name \"monday\"");
  ExpectParseError("0 jan * * *", "hour field \"jan\" has a bad number \"jan\"");
  ExpectParseError("1,,2 * * * *", "minute field \"1,,2\" has an empty list item");
  ExpectParseError("5/10 * * * *", "minute field \"5/10\" has a step after a single value");
  ExpectParseError("*/x * * * *", "minute field \"*/x\" has a bad step \"x\"");
  ExpectParseError("-5 * * * *", "minute field \"-5\" has an empty value");
  ExpectParseError("@every 0s", "@every needs a duration of at least 1s");
  ExpectParseError("@every 500ms", "@every needs a duration of at least 1s");
  ExpectParseError("@every banana", "@every: bad duration \"banana\"");
  ExpectParseError("@every 5", "missing unit");
  ExpectParseError("@every", "@every needs one duration");
  ExpectParseError("@every 1m 2m", "@every needs one duration");
  ExpectParseError("@fortnightly", "unknown descriptor @fortnightly");
  ExpectParseError("@daily 5", "@daily takes no arguments");
}

TEST(ScheduleTest, GoDurations) {
  using namespace std::chrono;
  EXPECT_EQ(ParseGoDuration("1s"), seconds(1));
  EXPECT_EQ(ParseGoDuration("1h30m"), minutes(90));
  EXPECT_EQ(ParseGoDuration("7d"), hours(168));
  EXPECT_EQ(ParseGoDuration("1.5s"), milliseconds(1500));
  EXPECT_EQ(ParseGoDuration("500ms"), milliseconds(500));
  EXPECT_EQ(ParseGoDuration("3us"), nanoseconds(3000));
  EXPECT_EQ(ParseGoDuration("3\xC2\xB5s"), nanoseconds(3000));
  EXPECT_EQ(ParseGoDuration("10ns"), nanoseconds(10));
  EXPECT_EQ(ParseGoDuration("0"), nanoseconds(0));
  EXPECT_EQ(ParseGoDuration(".5m"), seconds(30));
  EXPECT_EQ(ParseGoDuration("2562047h"), hours(2562047));
  for (const char* bad :
       {"", "s", "1", "1x", "-1s", "+1s", "1 s", "1s2", "1.s.", "3000000h", "99999999999999999999999h", "0s1"}) {
    EXPECT_THROW(ParseGoDuration(bad), Error) << bad;
  }
}

// ---------------------------------------------------------------------------------------
// Randomized comparison with a brute-force reference.

struct RandomField {
  std::string text;
  std::set<int> values;
};

// One field: a list of 1-3 items, each `*`, `*/n`, `a`, `a-b` or `a-b/n`, sometimes names.
RandomField MakeField(std::mt19937& rng, int min, int max, const std::vector<std::string>& names, int names_base) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  auto name = [&](int v) {
    if (!names.empty() && pick(0, 2) == 0 && v - names_base < static_cast<int>(names.size())) {
      return names[v - names_base];
    }
    return std::to_string(v);
  };
  RandomField f;
  int form = pick(0, 9);
  if (form <= 3) {
    f.text = "*";
    for (int v = min; v <= max; v++) f.values.insert(v);
    return f;
  }
  if (form == 4) {
    int step = pick(1, std::max(1, (max - min) / 2));
    f.text = "*/" + std::to_string(step);
    for (int v = min; v <= max; v += step) f.values.insert(v);
    return f;
  }
  int items = pick(1, 3);
  for (int i = 0; i < items; i++) {
    if (i > 0) f.text += ",";
    int kind = pick(0, 2);
    int a = pick(min, max);
    if (kind == 0) {
      f.text += name(a);
      f.values.insert(a);
    } else {
      int b = pick(a, max);
      int step = kind == 2 ? pick(1, 5) : 1;
      f.text += name(a) + "-" + name(b);
      if (kind == 2) f.text += "/" + std::to_string(step);
      for (int v = a; v <= b; v += step) f.values.insert(v);
    }
  }
  return f;
}

struct RandomCron {
  std::string text;
  RandomField f[5];
  bool Matches(absl::CivilMinute m) const {
    int wd = (static_cast<int>(absl::GetWeekday(absl::CivilDay(m))) + 1) % 7;  // 0 = Sunday
    bool dom = f[2].values.count(m.day()) > 0;
    bool dow = f[4].values.count(wd) > 0 || (wd == 0 && f[4].values.count(7) > 0);
    bool day = (f[2].text[0] == '*' || f[4].text[0] == '*') ? (dom && dow) : (dom || dow);
    return f[0].values.count(m.minute()) && f[1].values.count(m.hour()) && f[3].values.count(m.month()) && day;
  }
};

RandomField Star(int min, int max) {
  RandomField f{"*", {}};
  for (int v = min; v <= max; v++) f.values.insert(v);
  return f;
}

// With `near_dst`, the day fields are `*` and the hours cover 02:00 most of the time, so
// that the firings around a transition are exercised.
RandomCron MakeCron(std::mt19937& rng, bool near_dst) {
  static const std::vector<std::string> kMonths = {"jan", "feb", "mar", "apr", "may", "jun",
                                                   "jul", "aug", "sep", "oct", "nov", "dec"};
  static const std::vector<std::string> kDays = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
  RandomCron c;
  c.f[0] = MakeField(rng, 0, 59, {}, 0);
  c.f[1] = MakeField(rng, 0, 23, {}, 0);
  c.f[2] = MakeField(rng, 1, 31, {}, 0);
  c.f[3] = MakeField(rng, 1, 12, kMonths, 1);
  c.f[4] = MakeField(rng, 0, 7, kDays, 0);
  if (near_dst) {
    static const std::vector<RandomField> kHours = {Star(0, 23),
                                                    {"2", {2}},
                                                    {"1-3", {1, 2, 3}},
                                                    {"2,3", {2, 3}},
                                                    {"*/2", {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22}}};
    int h = std::uniform_int_distribution<int>(0, 5)(rng);
    if (h < 5) c.f[1] = kHours[h];
    for (int i : {2, 4}) {
      if (std::uniform_int_distribution<int>(0, 3)(rng) > 0) c.f[i] = Star(i == 2 ? 1 : 0, i == 2 ? 31 : 6);
    }
    c.f[3] = Star(1, 12);
  }
  if (c.f[4].text == "*") c.f[4].values.erase(7);
  c.text = c.f[0].text + " " + c.f[1].text + " " + c.f[2].text + " " + c.f[3].text + " " + c.f[4].text;
  return c;
}

// Walks real time minute by minute. A civil minute fires the first time the wall clock
// reaches it (so the second pass through a repeated hour does not fire), and civil minutes
// the wall clock jumps over fire at the instant of the jump. The walk starts 3 hours early
// so that "first time" is known when `after` lies in a repeated hour.
std::optional<absl::Time> BruteNext(const RandomCron& c, absl::Time after, const absl::TimeZone& tz,
                                    absl::Duration window) {
  absl::Time t = absl::FromUnixSeconds(absl::ToUnixSeconds(after) / 60 * 60) - absl::Hours(3);
  absl::CivilMinute high(tz.At(t).cs);
  for (absl::Time end = after + window; t <= end;) {
    t += absl::Minutes(1);
    absl::CivilMinute cm(tz.At(t).cs);
    if (cm <= high) continue;  // repeated wall-clock time
    bool fire = false;
    for (absl::CivilMinute skipped = high + 1; skipped <= cm; ++skipped) fire = fire || c.Matches(skipped);
    high = cm;
    if (fire && t > after) return t;
  }
  return std::nullopt;
}

TEST(ScheduleTest, RandomAgainstBruteForce) {
  std::mt19937 rng(20260329);
  const std::vector<std::string> zones = {"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC"};
  // DST transitions of 2026 and 2027 (Lord Howe shifts by 30 minutes), to start near them
  // half of the time.
  const std::vector<std::pair<std::string, std::string>> near = {
      {"Europe/Berlin", "2026-03-29T01:00:00Z"},       {"Europe/Berlin", "2026-10-25T01:00:00Z"},
      {"Europe/Berlin", "2027-03-28T01:00:00Z"},       {"Europe/Berlin", "2027-10-31T01:00:00Z"},
      {"America/New_York", "2026-03-08T07:00:00Z"},    {"America/New_York", "2026-11-01T06:00:00Z"},
      {"Australia/Lord_Howe", "2026-04-04T15:00:00Z"}, {"Australia/Lord_Howe", "2026-10-03T15:30:00Z"}};
  const absl::Duration window = absl::Hours(24 * 14);
  int compared = 0, found = 0;
  for (int i = 0; i < 300; i++) {
    RandomCron c = MakeCron(rng, i % 2 == 0);
    Schedule s = Schedule::Parse(c.text);
    absl::TimeZone tz;
    absl::Time after;
    if (i % 2 == 0) {
      const auto& [zone, when] = near[std::uniform_int_distribution<size_t>(0, near.size() - 1)(rng)];
      tz = Zone(zone);
      after =
          absl::FromChrono(T(when)) + absl::Seconds(std::uniform_int_distribution<int64_t>(-12 * 3600, 3 * 3600)(rng));
    } else {
      tz = Zone(zones[std::uniform_int_distribution<size_t>(0, zones.size() - 1)(rng)]);
      after = absl::FromUnixSeconds(std::uniform_int_distribution<int64_t>(1767225600, 1830297600)(rng));  // 2026-2027
    }
    if (i % 3 == 0) after += absl::Milliseconds(std::uniform_int_distribution<int>(0, 999)(rng));
    // Up to 10 chained firings, each compared.
    for (int k = 0; k < 10; k++) {
      std::optional<absl::Time> want = BruteNext(c, after, tz, window);
      auto got_tp = s.Next(absl::ToChronoTime(after), tz);
      compared++;
      std::string ctx = "\"" + c.text + "\" in " + tz.name() + " after " + absl::FormatTime(after, tz);
      if (want) {
        found++;
        ASSERT_TRUE(got_tp.has_value()) << ctx;
        ASSERT_EQ(absl::FromChrono(*got_tp), *want)
            << ctx << ": got " << absl::FormatTime(absl::FromChrono(*got_tp), tz) << ", want "
            << absl::FormatTime(*want, tz);
        after = *want;
      } else {
        if (got_tp) {
          ASSERT_GT(absl::FromChrono(*got_tp), after + window) << ctx;
        }
        break;
      }
    }
  }
  EXPECT_GT(found, 1000);  // the comparison is not vacuous
  std::printf("compared %d firings, %d within two weeks\n", compared, found);
}

}  // namespace
}  // namespace etcdsafe::agent
