// Job schedules: five-field cron expressions and descriptors, evaluated in a named time
// zone (abseil's time-zone support; GCC 12 has no C++20 tzdb).
//
// Accepted:
//   * "M H DoM Mon DoW": each field `*`, a number, a range `a-b`, a list `a,b,c`, a step
//     `*/n` or `a-b/n`; month and weekday names (jan..dec, sun..sat, case-insensitive);
//     weekday 7 = Sunday. As in Vixie cron, when both day-of-month and day-of-week are
//     restricted (neither is `*`), a day matches if EITHER matches. As there, a field
//     that starts with `*` (also `*/2`) counts as `*`: the day must then match both fields.
//   * "@yearly"/"@annually", "@monthly", "@weekly", "@daily"/"@midnight", "@hourly".
//   * "@every D" with a Go-style duration (≥ 1s), e.g. "@every 15m", "@every 1s".
// Times are evaluated in the given time zone. Daylight-saving transitions:
//   * a local time that does not exist (skipped by a spring-forward) fires once at the
//     first instant after the gap (as cronie does for jobs in the skipped hour);
//   * a local time that occurs twice (fall-back) fires once, at its first occurrence.
// "@every D" is independent of the time zone: Next(t) = t + D (truncated to whole seconds).
// Parse errors: Error(kInvalidArgument), one line naming the field and the reason.
#pragma once

#include <absl/time/time.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace etcdsafe::agent {

class Schedule {
 public:
  Schedule() = default;  // empty: never fires (Next returns nullopt)
  static Schedule Parse(const std::string& text);

  // The first firing time strictly after `after`, or nullopt for an empty schedule or a
  // cron expression that never matches (e.g. "0 0 30 2 *"; searched up to 5 years ahead).
  std::optional<std::chrono::system_clock::time_point> Next(std::chrono::system_clock::time_point after,
                                                            const absl::TimeZone& tz) const;

  bool empty() const { return text_.empty(); }
  const std::string& text() const { return text_; }
  // Set for "@every D".
  std::optional<std::chrono::seconds> every() const { return every_; }

 private:
  std::string text_;
  std::optional<std::chrono::seconds> every_;
  // Bit sets of allowed values (implementation detail).
  uint64_t minutes_ = 0;
  uint32_t hours_ = 0;
  uint32_t days_ = 0;     // bit 1..31
  uint16_t months_ = 0;   // bit 1..12
  uint8_t weekdays_ = 0;  // bit 0..6, 0 = Sunday
  bool dom_star_ = true, dow_star_ = true;
};

// Parses a Go-style duration: one or more <number><unit> with an optional fraction
// ("1.5h"), units ns, us (µs), ms, s, m, h and d (= 24h); "0" alone is zero. No sign.
// Over ~292 years is an error. Throws kInvalidArgument. (Used by "@every" and by the
// config file's ParseDuration.)
std::chrono::nanoseconds ParseGoDuration(const std::string& text);

}  // namespace etcdsafe::agent
