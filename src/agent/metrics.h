// The agent's metrics registry and its Prometheus text exposition (format 0.0.4).
//
// Debian 12 packages no C++ Prometheus client library (prometheus-cpp is not in the
// archive), so this is a small one written for the agent: counters, gauges and histograms
// with labels, rendered by Render() for GET /metrics. It is NOT a general client: no
// summaries, no exemplars, no OpenMetrics, no timestamps on samples.
//
// Contract:
//   * Thread-safe: every method may be called from any thread at any time (one mutex).
//   * Families are declared once (Declare*). Declaring the same name again with the same
//     type, help and buckets is a no-op (so a config reload may re-declare); with a
//     different definition it is an error.
//   * Names are checked at declaration and use: a metric name matches
//     [a-zA-Z_:][a-zA-Z0-9_:]*, a label name [a-zA-Z_][a-zA-Z0-9_]* and does not start
//     with "__"; "le" is reserved in histograms; a label name may not repeat within one
//     series. Counter names must end in "_total" and other names must not (promtool's lint
//     rules); help must not be empty. Using an undeclared family, the wrong operation for
//     its type (Set on a counter, Observe on a gauge, ...), a negative or NaN counter
//     increment, or histogram buckets that are not finite and strictly increasing is a
//     programming error: Error(kInternal), one line naming the metric.
//   * Labels identify a series independently of their order: {a,b} and {b,a} are the
//     same series (they are sorted by label name on entry).
//   * Render(): families in declaration order, each with "# HELP" and "# TYPE" (also when
//     it has no series yet); series sorted by their (sorted) labels; label values escaped
//     (\\, \", \n), help escaped (\\, \n); histograms as cumulative _bucket{le=...} lines
//     ending with le="+Inf", then _sum and _count. Values by FormatValue().
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace etcdsafe::agent {

using Labels = std::vector<std::pair<std::string, std::string>>;

// A sample value as the exposition format spells it: integral values (|v| < 1e21) print
// without exponent or fraction ("1764547200", "0", "-3"); other finite values print in
// the shortest form that parses back to the same double ("0.25", "1.5e-07"); "NaN",
// "+Inf", "-Inf".
std::string FormatValue(double v);

class Metrics {
 public:
  Metrics() = default;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  void DeclareCounter(const std::string& name, const std::string& help);
  void DeclareGauge(const std::string& name, const std::string& help);
  // `buckets`: finite upper bounds, strictly increasing; a trailing +Inf may be given and
  // is implied anyway. Empty: only the +Inf bucket.
  void DeclareHistogram(const std::string& name, const std::string& help, std::vector<double> buckets);

  void Set(const std::string& name, const Labels& labels, double v);       // gauge
  void Add(const std::string& name, const Labels& labels, double v = 1);  // counter (v >= 0) or gauge
  void Observe(const std::string& name, const Labels& labels, double v);  // histogram
  // Ensures a series exists with value 0 (counters start at 0 so rate() and increase()
  // work; histograms get all-zero buckets). An existing series is left as it is.
  void Touch(const std::string& name, const Labels& labels);

  // For tests and for the agent's own decisions (/readyz). 0 if the series is absent.
  // For a histogram: the number of observations (its _count).
  double Get(const std::string& name, const Labels& labels) const;
  // A histogram series: (upper bound, cumulative count) per bucket, the last bound +Inf.
  struct HistogramValue {
    std::vector<std::pair<double, uint64_t>> buckets;
    double sum = 0;
    uint64_t count = 0;
  };
  std::optional<HistogramValue> GetHistogram(const std::string& name, const Labels& labels) const;
  bool Has(const std::string& name, const Labels& labels) const;

  // Removes one series (e.g. a repository removed by a reload); absent: no-op.
  void Remove(const std::string& name, const Labels& labels);
  // Removes, in every family, each series whose labels include all of `match`
  // (e.g. {{"repo", "s3://old"}}). Returns how many series were removed.
  size_t RemoveMatching(const Labels& match);
  // The same within one family.
  size_t RemoveMatching(const std::string& name, const Labels& match);
  // A gauge family's whole set of series replaced at once (a scrape sees the old set or
  // the new one, never a mix): e.g. one series per certificate, after each check. A label
  // set given twice keeps the smaller value.
  void ReplaceGauges(const std::string& name, const std::vector<std::pair<Labels, double>>& series);

  std::string Render() const;  // text exposition format 0.0.4

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Series {
    double value = 0;                  // counter, gauge
    std::vector<uint64_t> bucket_hits;  // histogram: per bucket (not cumulative), +Inf last
    double sum = 0;
    uint64_t count = 0;
  };
  struct Family {
    std::string name, help;
    Type type;
    std::vector<double> bounds;  // histogram: finite bounds (+Inf implied)
    std::map<Labels, Series> series;
  };

  void Declare(const std::string& name, const std::string& help, Type type, std::vector<double> bounds);
  // REQUIRES: mu_ held. Throws kInternal for an undeclared name.
  Family& FamilyFor(const std::string& name, const char* op);
  const Family& FamilyFor(const std::string& name, const char* op) const;
  // Validated, sorted copy of `labels`.
  static Labels Canonical(const Family& f, const Labels& labels);
  static Series NewSeries(const Family& f);
  // REQUIRES: mu_ held. Removes f's series whose labels include all of `match`.
  static size_t EraseMatching(Family& f, const Labels& match);

  mutable std::mutex mu_;
  std::vector<Family> families_;             // declaration order
  std::map<std::string, size_t> index_;      // name -> position in families_
};

}  // namespace etcdsafe::agent
