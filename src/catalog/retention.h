// Retention policy for `etcdsafe prune`: which backups to keep and why.
//
// ApplyPolicy is a pure function (backups + policy + now -> keep/remove with reasons):
// no clock reads, no I/O, no printing. Its semantics follow restic's `forget` policy:
//
//   * Backups are ordered newest first; equal times are ordered by id ascending, so
//     the result does not depend on input order.
//   * keep-last N:   the N newest backups ("last snapshot").
//   * keep-hourly/daily/weekly/monthly/yearly N: walking newest to oldest, a backup is
//     kept when it is the newest one of its bucket (hour, day, ISO-8601 week, month,
//     year), until N buckets have been taken. Buckets without backups do not count.
//     Reason names the bucket: "hourly snapshot (2026-11-20 14:00)",
//     "daily snapshot (2026-11-20)", "weekly snapshot (2026-W47)",
//     "monthly snapshot (2026-11)", "yearly snapshot (2026)".
//   * keep-within D: every backup strictly newer than now - D ("within 7d"). Unlike
//     restic (relative to the latest snapshot) this is relative to `now`, as the
//     issue asks.
//   * A backup kept by several rules lists every reason, in the order above
//     ("within", "last", hourly..yearly), then "newest backup".
//   * Backups whose time is after `now` (clock skew) are kept with the single reason
//     "newer than now" and take no part in the rules: they use up no keep-last count
//     and no bucket, so they cannot push real backups out.
//   * The newest backup not after `now` is always kept ("newest backup") even if the
//     policy would remove it. (If the newest overall is in the future it is kept too,
//     as above.) Callers must pass complete backups only: an incomplete newest backup
//     would otherwise be the one this rule protects.
//   * An empty policy keeps everything ("policy is empty"); the CLI must call
//     ValidatePolicy first, which rejects it, so `prune` never runs without a policy.
//
// Calendar buckets use UTC shifted by a fixed utc_offset (e.g. +05:30). Named IANA time
// zones (DST) are not supported: GCC 12's libstdc++ has no C++20 tzdb.
// Not implemented from restic: keep-tag, "unlimited" (-1) counts, the restic >= 0.15
// "oldest X snapshot" rule, keep-within-hourly/..., calendar months/years in keep-within
// (here 1y = 365d and 1m = 30d exactly).
//
// Errors: etcdsafe::Error (kInvalidArgument), one-line messages.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace etcdsafe::catalog {

struct BackupRef {
  std::string id;  // unique
  std::chrono::system_clock::time_point time;
};

struct RetentionPolicy {
  int keep_last = 0;
  int keep_hourly = 0;
  int keep_daily = 0;
  int keep_weekly = 0;
  int keep_monthly = 0;
  int keep_yearly = 0;
  std::chrono::seconds keep_within{0};  // 0 = off
  std::chrono::minutes utc_offset{0};   // calendar buckets are in UTC + utc_offset

  // True when no keep rule is set (utc_offset alone is not a rule).
  bool Empty() const;
};

// Throws kInvalidArgument for a negative count or keep_within, |utc_offset| >= 24h,
// or an empty policy ("no retention policy given").
void ValidatePolicy(const RetentionPolicy& policy);

// Parses a restic-style duration: one or more <number><unit> with unit y (365d),
// m (30d), d (24h) or h, each unit at most once, e.g. "1y2m3d4h", "36h", "30d".
// The total must be positive. Throws kInvalidArgument.
std::chrono::seconds ParseKeepWithin(const std::string& text);

// Parses a fixed UTC offset: "Z", "UTC", "+05:30", "-0800", "+5", "-03". Throws
// kInvalidArgument.
std::chrono::minutes ParseUtcOffset(const std::string& text);

// Formats a keep-within duration as used in the "within ..." reason: days and hours,
// "7d", "1d12h", "36d"; sub-hour remainders as "30min", "5s".
std::string FormatKeepWithin(std::chrono::seconds d);

struct Decision {
  BackupRef backup;
  bool keep = false;
  std::vector<std::string> reasons;  // empty when !keep
};

// One Decision per backup, newest first (see the ordering above). Throws
// kInvalidArgument for duplicate ids or a policy with negative/out-of-range values
// (an empty policy is not an error here: everything is kept).
std::vector<Decision> ApplyPolicy(std::vector<BackupRef> backups, const RetentionPolicy& policy,
                                  std::chrono::system_clock::time_point now);

}  // namespace etcdsafe::catalog
