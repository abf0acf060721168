#include "agent/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <system_error>

#include "base/error.h"

namespace etcdsafe::agent {
namespace {

[[noreturn]] void Bug(const std::string& message) { throw Error(ErrorCode::kInternal, "metrics: " + message); }

bool IsMetricName(const std::string& s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool IsLabelName(const std::string& s) {
  if (s.empty() || s.rfind("__", 0) == 0) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string EscapeLabelValue(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string EscapeHelp(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

// `{a="x",b="y"}` with an optional extra label (le) last; "" when there are no labels.
std::string LabelText(const Labels& labels, const std::string& extra_name = "", const std::string& extra_value = "") {
  if (labels.empty() && extra_name.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += k + "=\"" + EscapeLabelValue(v) + "\"";
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += extra_name + "=\"" + EscapeLabelValue(extra_value) + "\"";
  }
  return out + "}";
}

const char* TypeName(int t) {
  switch (t) {
    case 0: return "counter";
    case 1: return "gauge";
    default: return "histogram";
  }
}

}  // namespace

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == 0) return "0";  // also -0
  char buf[64];
  std::to_chars_result r;
  if (v == std::trunc(v) && std::fabs(v) < 1e21) {
    r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, 0);
  } else {
    r = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form
  }
  if (r.ec != std::errc()) Bug("cannot format a value");
  return std::string(buf, r.ptr);
}

void Metrics::DeclareCounter(const std::string& name, const std::string& help) {
  Declare(name, help, Type::kCounter, {});
}

void Metrics::DeclareGauge(const std::string& name, const std::string& help) { Declare(name, help, Type::kGauge, {}); }

void Metrics::DeclareHistogram(const std::string& name, const std::string& help, std::vector<double> buckets) {
  if (!buckets.empty() && std::isinf(buckets.back()) && buckets.back() > 0) buckets.pop_back();
  for (size_t i = 0; i < buckets.size(); ++i) {
    if (!std::isfinite(buckets[i])) Bug(name + ": histogram bucket bounds must be finite");
    if (i > 0 && !(buckets[i] > buckets[i - 1])) Bug(name + ": histogram bucket bounds must be strictly increasing");
  }
  Declare(name, help, Type::kHistogram, std::move(buckets));
}

void Metrics::Declare(const std::string& name, const std::string& help, Type type, std::vector<double> bounds) {
  if (!IsMetricName(name)) Bug("invalid metric name \"" + name + "\"");
  if (help.empty()) Bug(name + ": help text is empty");
  if (type == Type::kCounter && !EndsWith(name, "_total")) Bug(name + ": a counter's name must end in _total");
  if (type != Type::kCounter && EndsWith(name, "_total")) Bug(name + ": only counters' names end in _total");
  if (type == Type::kHistogram) {
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      if (EndsWith(name, suffix)) Bug(name + ": a histogram's name must not end in " + suffix);
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(name);
  if (it != index_.end()) {
    const Family& f = families_[it->second];
    if (f.type != type || f.help != help || f.bounds != bounds) Bug(name + ": declared twice, differently");
    return;
  }
  Family f;
  f.name = name;
  f.help = help;
  f.type = type;
  f.bounds = std::move(bounds);
  index_[name] = families_.size();
  families_.push_back(std::move(f));
}

Metrics::Family& Metrics::FamilyFor(const std::string& name, const char* op) {
  auto it = index_.find(name);
  if (it == index_.end()) Bug(std::string(op) + ": undeclared metric \"" + name + "\"");
  return families_[it->second];
}

const Metrics::Family& Metrics::FamilyFor(const std::string& name, const char* op) const {
  auto it = index_.find(name);
  if (it == index_.end()) Bug(std::string(op) + ": undeclared metric \"" + name + "\"");
  return families_[it->second];
}

Labels Metrics::Canonical(const Family& f, const Labels& labels) {
  Labels out = labels;
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < out.size(); ++i) {
    if (!IsLabelName(out[i].first)) Bug(f.name + ": invalid label name \"" + out[i].first + "\"");
    if (f.type == Type::kHistogram && out[i].first == "le") Bug(f.name + ": label \"le\" is reserved in histograms");
    if (i > 0 && out[i].first == out[i - 1].first) Bug(f.name + ": label \"" + out[i].first + "\" given twice");
  }
  return out;
}

Metrics::Series Metrics::NewSeries(const Family& f) {
  Series s;
  if (f.type == Type::kHistogram) s.bucket_hits.assign(f.bounds.size() + 1, 0);
  return s;
}

void Metrics::Set(const std::string& name, const Labels& labels, double v) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = FamilyFor(name, "Set");
  if (f.type != Type::kGauge) Bug("Set: " + name + " is a " + TypeName(static_cast<int>(f.type)) + ", not a gauge");
  Labels key = Canonical(f, labels);
  auto it = f.series.find(key);
  if (it == f.series.end()) it = f.series.emplace(std::move(key), NewSeries(f)).first;
  it->second.value = v;
}

void Metrics::Add(const std::string& name, const Labels& labels, double v) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = FamilyFor(name, "Add");
  if (f.type == Type::kHistogram) Bug("Add: " + name + " is a histogram (use Observe)");
  if (f.type == Type::kCounter && !(v >= 0)) Bug("Add: " + name + ": a counter only increases (got " + FormatValue(v) + ")");
  Labels key = Canonical(f, labels);
  auto it = f.series.find(key);
  if (it == f.series.end()) it = f.series.emplace(std::move(key), NewSeries(f)).first;
  it->second.value += v;
}

void Metrics::Observe(const std::string& name, const Labels& labels, double v) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = FamilyFor(name, "Observe");
  if (f.type != Type::kHistogram) Bug("Observe: " + name + " is a " + TypeName(static_cast<int>(f.type)) + ", not a histogram");
  Labels key = Canonical(f, labels);
  auto it = f.series.find(key);
  if (it == f.series.end()) it = f.series.emplace(std::move(key), NewSeries(f)).first;
  Series& s = it->second;
  // First bucket whose bound is >= v; NaN lands in +Inf (as the Go client does).
  size_t i = std::lower_bound(f.bounds.begin(), f.bounds.end(), v) - f.bounds.begin();
  if (std::isnan(v)) i = f.bounds.size();
  s.bucket_hits[i]++;
  s.sum += v;
  s.count++;
}

void Metrics::Touch(const std::string& name, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = FamilyFor(name, "Touch");
  Labels key = Canonical(f, labels);
  if (f.series.find(key) == f.series.end()) f.series.emplace(std::move(key), NewSeries(f));
}

double Metrics::Get(const std::string& name, const Labels& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  const Family& f = FamilyFor(name, "Get");
  auto it = f.series.find(Canonical(f, labels));
  if (it == f.series.end()) return 0;
  return f.type == Type::kHistogram ? static_cast<double>(it->second.count) : it->second.value;
}

std::optional<Metrics::HistogramValue> Metrics::GetHistogram(const std::string& name, const Labels& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  const Family& f = FamilyFor(name, "GetHistogram");
  if (f.type != Type::kHistogram) Bug("GetHistogram: " + name + " is not a histogram");
  auto it = f.series.find(Canonical(f, labels));
  if (it == f.series.end()) return std::nullopt;
  HistogramValue h;
  uint64_t cumulative = 0;
  for (size_t i = 0; i < it->second.bucket_hits.size(); ++i) {
    cumulative += it->second.bucket_hits[i];
    h.buckets.emplace_back(i < f.bounds.size() ? f.bounds[i] : HUGE_VAL, cumulative);
  }
  h.sum = it->second.sum;
  h.count = it->second.count;
  return h;
}

bool Metrics::Has(const std::string& name, const Labels& labels) const {
  std::lock_guard<std::mutex> lock(mu_);
  const Family& f = FamilyFor(name, "Has");
  return f.series.count(Canonical(f, labels)) > 0;
}

void Metrics::Remove(const std::string& name, const Labels& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = FamilyFor(name, "Remove");
  f.series.erase(Canonical(f, labels));
}

size_t Metrics::RemoveMatching(const Labels& match) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t removed = 0;
  for (Family& f : families_) removed += EraseMatching(f, match);
  return removed;
}

size_t Metrics::RemoveMatching(const std::string& name, const Labels& match) {
  std::lock_guard<std::mutex> lock(mu_);
  return EraseMatching(FamilyFor(name, "RemoveMatching"), match);
}

void Metrics::ReplaceGauges(const std::string& name, const std::vector<std::pair<Labels, double>>& series) {
  std::lock_guard<std::mutex> lock(mu_);
  Family& f = FamilyFor(name, "ReplaceGauges");
  if (f.type != Type::kGauge) Bug("ReplaceGauges: " + name + " is a " + TypeName(static_cast<int>(f.type)) + ", not a gauge");
  std::map<Labels, Series> next;
  for (const auto& [labels, v] : series) {
    Labels key = Canonical(f, labels);  // validates before anything changes
    auto [it, fresh] = next.emplace(std::move(key), NewSeries(f));
    it->second.value = fresh ? v : std::min(it->second.value, v);
  }
  f.series = std::move(next);
}

size_t Metrics::EraseMatching(Family& f, const Labels& match) {
  size_t removed = 0;
  for (auto it = f.series.begin(); it != f.series.end();) {
    const bool all = std::all_of(match.begin(), match.end(), [&](const auto& m) {
      return std::find(it->first.begin(), it->first.end(), m) != it->first.end();
    });
    if (all) {
      it = f.series.erase(it);
      ++removed;
    } else {
      ++it;
    }
  }
  return removed;
}

std::string Metrics::Render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const Family& f : families_) {
    out += "# HELP " + f.name + " " + EscapeHelp(f.help) + "\n";
    out += "# TYPE " + f.name + " " + TypeName(static_cast<int>(f.type)) + "\n";
    for (const auto& [labels, s] : f.series) {
      if (f.type != Type::kHistogram) {
        out += f.name + LabelText(labels) + " " + FormatValue(s.value) + "\n";
        continue;
      }
      uint64_t cumulative = 0;
      for (size_t i = 0; i < s.bucket_hits.size(); ++i) {
        cumulative += s.bucket_hits[i];
        const std::string le = i < f.bounds.size() ? FormatValue(f.bounds[i]) : "+Inf";
        out += f.name + "_bucket" + LabelText(labels, "le", le) + " " + std::to_string(cumulative) + "\n";
      }
      out += f.name + "_sum" + LabelText(labels) + " " + FormatValue(s.sum) + "\n";
      out += f.name + "_count" + LabelText(labels) + " " + std::to_string(s.count) + "\n";
    }
  }
  return out;
}

}  // namespace etcdsafe::agent
