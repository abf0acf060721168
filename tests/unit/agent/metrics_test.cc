// Tests for agent/metrics.h: exact exposition text, value formatting, programming errors,
// and the real consumers: `promtool check metrics` and python3-prometheus-client's parser.
#include "agent/metrics.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "base/error.h"
#include "testutil/cli.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::agent {
namespace {

using testutil::ShellQuote;

void ExpectBug(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInternal) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
}

TEST(FormatValue, IntegersWithoutExponentDoublesRoundTrip) {
  EXPECT_EQ(FormatValue(1764547200), "1764547200");
  EXPECT_EQ(FormatValue(1764547200.5), "1764547200.5");
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(-0.0), "0");
  EXPECT_EQ(FormatValue(-3), "-3");
  EXPECT_EQ(FormatValue(1e9), "1000000000");
  EXPECT_EQ(FormatValue(1152921504606846976.0), "1152921504606846976");  // 2^60
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(0.25), "0.25");
  EXPECT_EQ(FormatValue(1.5e-7), "1.5e-07");
  EXPECT_EQ(FormatValue(1e21), "1e+21");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::quiet_NaN()), "NaN");
  EXPECT_EQ(FormatValue(HUGE_VAL), "+Inf");
  EXPECT_EQ(FormatValue(-HUGE_VAL), "-Inf");
  std::mt19937_64 rng(42);
  std::uniform_real_distribution<double> exp_dist(-300, 300);
  for (int i = 0; i < 20000; ++i) {
    const double v = std::pow(10.0, exp_dist(rng)) * ((rng() & 1) ? 1 : -1) * (1 + (rng() % 1000) / 997.0);
    const std::string s = FormatValue(v);
    EXPECT_EQ(std::strtod(s.c_str(), nullptr), v) << s;
  }
}

TEST(Metrics, RendersExactText) {
  Metrics m;
  m.DeclareCounter("t_requests_total", "Requests.\nSecond \\ line");
  m.DeclareGauge("t_temp", "Temperature");
  m.DeclareHistogram("t_latency_seconds", "Latency", {0.1, 1});
  m.DeclareGauge("t_empty", "Declared but no series yet");
  m.Add("t_requests_total", {{"method", "get"}, {"code", "200"}}, 3);
  m.Add("t_requests_total", {{"code", "200"}, {"method", "get"}});  // the same series
  m.Touch("t_requests_total", {{"code", "500"}, {"method", "get"}});
  m.Touch("t_requests_total", {{"code", "200"}, {"method", "get"}});  // existing: unchanged
  m.Set("t_temp", {}, 1764547200);
  m.Set("t_temp", {{"path", "a\"b\\c\nd"}}, 0.25);
  m.Add("t_temp", {{"path", "x"}}, -2);
  m.Observe("t_latency_seconds", {{"job", "x"}}, 0.25);
  m.Observe("t_latency_seconds", {{"job", "x"}}, 0.5);
  m.Observe("t_latency_seconds", {{"job", "x"}}, 7);
  m.Observe("t_latency_seconds", {{"job", "a"}}, 0.1);  // == bound: in that bucket
  m.Touch("t_latency_seconds", {{"job", "z"}});
  EXPECT_EQ(m.Render(),
            "# HELP t_requests_total Requests.\\nSecond \\\\ line\n"
            "# TYPE t_requests_total counter\n"
            "t_requests_total{code=\"200\",method=\"get\"} 4\n"
            "t_requests_total{code=\"500\",method=\"get\"} 0\n"
            "# HELP t_temp Temperature\n"
            "# TYPE t_temp gauge\n"
            "t_temp 1764547200\n"
            "t_temp{path=\"a\\\"b\\\\c\\nd\"} 0.25\n"
            "t_temp{path=\"x\"} -2\n"
            "# HELP t_latency_seconds Latency\n"
            "# TYPE t_latency_seconds histogram\n"
            "t_latency_seconds_bucket{job=\"a\",le=\"0.1\"} 1\n"
            "t_latency_seconds_bucket{job=\"a\",le=\"1\"} 1\n"
            "t_latency_seconds_bucket{job=\"a\",le=\"+Inf\"} 1\n"
            "t_latency_seconds_sum{job=\"a\"} 0.1\n"
            "t_latency_seconds_count{job=\"a\"} 1\n"
            "t_latency_seconds_bucket{job=\"x\",le=\"0.1\"} 0\n"
            "t_latency_seconds_bucket{job=\"x\",le=\"1\"} 2\n"
            "t_latency_seconds_bucket{job=\"x\",le=\"+Inf\"} 3\n"
            "t_latency_seconds_sum{job=\"x\"} 7.75\n"
            "t_latency_seconds_count{job=\"x\"} 3\n"
            "t_latency_seconds_bucket{job=\"z\",le=\"0.1\"} 0\n"
            "t_latency_seconds_bucket{job=\"z\",le=\"1\"} 0\n"
            "t_latency_seconds_bucket{job=\"z\",le=\"+Inf\"} 0\n"
            "t_latency_seconds_sum{job=\"z\"} 0\n"
            "t_latency_seconds_count{job=\"z\"} 0\n"
            "# HELP t_empty Declared but no series yet\n"
            "# TYPE t_empty gauge\n");
  EXPECT_EQ(m.Get("t_requests_total", {{"method", "get"}, {"code", "200"}}), 4);
  EXPECT_EQ(m.Get("t_requests_total", {{"method", "post"}, {"code", "200"}}), 0);
  EXPECT_EQ(m.Get("t_latency_seconds", {{"job", "x"}}), 3);  // a histogram's count
  auto h = m.GetHistogram("t_latency_seconds", {{"job", "x"}});
  ASSERT_TRUE(h.has_value());
  ASSERT_EQ(h->buckets.size(), 3u);
  EXPECT_EQ(h->buckets[1], std::make_pair(1.0, uint64_t{2}));
  EXPECT_TRUE(std::isinf(h->buckets[2].first));
  EXPECT_EQ(h->buckets[2].second, 3u);
  EXPECT_EQ(h->sum, 7.75);
  EXPECT_FALSE(m.GetHistogram("t_latency_seconds", {{"job", "nope"}}).has_value());
}

TEST(Metrics, ReplaceGauges) {
  Metrics m;
  m.DeclareGauge("t_cert_expiry", "Not-after.");
  m.DeclareCounter("t_things_total", "Things.");
  m.Set("t_cert_expiry", {{"path", "gone.crt"}}, 5);
  m.ReplaceGauges("t_cert_expiry", {{{{"path", "a.crt"}, {"subject", "CN=a"}}, 100},
                                    {{{"subject", "CN=b"}, {"path", "b.crt"}}, 300},
                                    {{{"path", "b.crt"}, {"subject", "CN=b"}}, 200}});  // same series: the smaller
  EXPECT_FALSE(m.Has("t_cert_expiry", {{"path", "gone.crt"}}));
  EXPECT_EQ(m.Get("t_cert_expiry", {{"path", "a.crt"}, {"subject", "CN=a"}}), 100);
  EXPECT_EQ(m.Get("t_cert_expiry", {{"path", "b.crt"}, {"subject", "CN=b"}}), 200);
  EXPECT_EQ(m.Render(),
            "# HELP t_cert_expiry Not-after.\n# TYPE t_cert_expiry gauge\n"
            "t_cert_expiry{path=\"a.crt\",subject=\"CN=a\"} 100\nt_cert_expiry{path=\"b.crt\",subject=\"CN=b\"} 200\n"
            "# HELP t_things_total Things.\n# TYPE t_things_total counter\n");
  // A bad label leaves the family as it was; a counter is refused.
  EXPECT_THROW(m.ReplaceGauges("t_cert_expiry", {{{{"__bad", "x"}}, 1}}), Error);
  EXPECT_EQ(m.Get("t_cert_expiry", {{"path", "a.crt"}, {"subject", "CN=a"}}), 100);
  EXPECT_THROW(m.ReplaceGauges("t_things_total", {}), Error);
  m.ReplaceGauges("t_cert_expiry", {});
  EXPECT_FALSE(m.Has("t_cert_expiry", {{"path", "a.crt"}, {"subject", "CN=a"}}));
}

TEST(Metrics, RemoveAndRemoveMatching) {
  Metrics m;
  m.DeclareGauge("t_repo_bytes", "Bytes per repo");
  m.DeclareCounter("t_deleted_total", "Deleted per repo");
  m.Set("t_repo_bytes", {{"repo", "a"}}, 1);
  m.Set("t_repo_bytes", {{"repo", "b"}}, 2);
  m.Add("t_deleted_total", {{"repo", "b"}, {"kind", "x"}}, 5);
  m.Add("t_deleted_total", {{"repo", "a"}, {"kind", "x"}}, 5);
  EXPECT_TRUE(m.Has("t_repo_bytes", {{"repo", "a"}}));
  m.Remove("t_repo_bytes", {{"repo", "a"}});
  m.Remove("t_repo_bytes", {{"repo", "absent"}});  // no-op
  EXPECT_FALSE(m.Has("t_repo_bytes", {{"repo", "a"}}));
  EXPECT_EQ(m.Get("t_repo_bytes", {{"repo", "a"}}), 0);
  EXPECT_EQ(m.RemoveMatching({{"repo", "b"}}), 2u);
  EXPECT_EQ(m.Render(),
            "# HELP t_repo_bytes Bytes per repo\n# TYPE t_repo_bytes gauge\n"
            "# HELP t_deleted_total Deleted per repo\n# TYPE t_deleted_total counter\n"
            "t_deleted_total{kind=\"x\",repo=\"a\"} 5\n");
}

TEST(Metrics, ProgrammingErrorsAreInternal) {
  Metrics m;
  ExpectBug([&] { m.DeclareGauge("1abc", "h"); }, "invalid metric name");
  ExpectBug([&] { m.DeclareGauge("a-b", "h"); }, "invalid metric name");
  ExpectBug([&] { m.DeclareGauge("", "h"); }, "invalid metric name");
  ExpectBug([&] { m.DeclareGauge("t_g", ""); }, "help");
  ExpectBug([&] { m.DeclareCounter("t_requests", "h"); }, "_total");
  ExpectBug([&] { m.DeclareGauge("t_g_total", "h"); }, "_total");
  ExpectBug([&] { m.DeclareHistogram("t_h", "h", {1, 1}); }, "strictly increasing");
  ExpectBug([&] { m.DeclareHistogram("t_h", "h", {2, 1}); }, "strictly increasing");
  ExpectBug([&] { m.DeclareHistogram("t_h", "h", {std::nan(""), 1}); }, "finite");
  ExpectBug([&] { m.DeclareHistogram("t_h_count", "h", {1}); }, "_count");
  m.DeclareGauge("t_g", "gauge");
  m.DeclareGauge("t_g", "gauge");  // identical: a no-op
  m.DeclareCounter("t_c_total", "counter");
  m.DeclareHistogram("t_h", "histogram", {1, 2, HUGE_VAL});  // trailing +Inf is implied
  m.DeclareHistogram("t_h", "histogram", {1, 2});            // so this is identical
  ExpectBug([&] { m.DeclareGauge("t_g", "other help"); }, "declared twice");
  ExpectBug([&] { m.DeclareGauge("t_h", "histogram"); }, "declared twice");
  ExpectBug([&] { m.Set("t_undeclared", {}, 1); }, "undeclared metric \"t_undeclared\"");
  ExpectBug([&] { m.Get("t_undeclared", {}); }, "undeclared");
  ExpectBug([&] { m.Set("t_c_total", {}, 1); }, "not a gauge");
  ExpectBug([&] { m.Observe("t_g", {}, 1); }, "not a histogram");
  ExpectBug([&] { m.Add("t_h", {}, 1); }, "histogram");
  ExpectBug([&] { m.Add("t_c_total", {}, -1); }, "only increases");
  ExpectBug([&] { m.Add("t_c_total", {}, std::nan("")); }, "only increases");
  ExpectBug([&] { m.Set("t_g", {{"__x", "v"}}, 1); }, "invalid label name \"__x\"");
  ExpectBug([&] { m.Set("t_g", {{"a-b", "v"}}, 1); }, "invalid label name");
  ExpectBug([&] { m.Set("t_g", {{"", "v"}}, 1); }, "invalid label name");
  ExpectBug([&] { m.Set("t_g", {{"a", "1"}, {"a", "2"}}, 1); }, "given twice");
  ExpectBug([&] { m.Observe("t_h", {{"le", "1"}}, 1); }, "reserved");
  m.Set("t_g", {{"le", "fine on a gauge"}}, 1);
  m.Add("t_g", {}, -5);  // gauges may go down
  EXPECT_EQ(m.Get("t_g", {}), -5);
  // Nothing invalid was recorded.
  EXPECT_EQ(m.Render().find("__x"), std::string::npos);
}

// A registry with every kind of family and value, for the consumers below.
void FillEverything(Metrics& m) {
  m.DeclareGauge("etcdsafe_build_info", "Build information; always 1.");
  m.DeclareGauge("etcdsafe_backup_last_success_timestamp_seconds", "Unix time of the last successful backup.");
  m.DeclareCounter("etcdsafe_backup_failures_total", "Failed backup attempts by reason.");
  m.DeclareHistogram("etcdsafe_backup_duration_seconds", "Backup duration in seconds.", {0.5, 1, 5, 30, 120, 600});
  m.DeclareGauge("etcdsafe_test_odd_values", "NaN, infinities, tiny and huge values.\nWith a \\ and a newline.");
  m.Set("etcdsafe_build_info", {{"version", "1.2.3"}}, 1);
  m.Set("etcdsafe_backup_last_success_timestamp_seconds", {{"repo", "file:///var/backups/etcd"}}, 1764547200);
  m.Set("etcdsafe_backup_last_success_timestamp_seconds", {{"repo", "s3://b/p"}}, 1764547200.125);
  for (const char* r : {"unreachable", "unhealthy", "locked", "storage"}) m.Touch("etcdsafe_backup_failures_total", {{"reason", r}});
  m.Add("etcdsafe_backup_failures_total", {{"reason", "storage"}}, 2);
  m.Observe("etcdsafe_backup_duration_seconds", {{"result", "success"}}, 0.75);
  m.Observe("etcdsafe_backup_duration_seconds", {{"result", "success"}}, 42.5);
  m.Observe("etcdsafe_backup_duration_seconds", {{"result", "failure"}}, 1000);
  m.Set("etcdsafe_test_odd_values", {{"v", "nan"}}, std::nan(""));
  m.Set("etcdsafe_test_odd_values", {{"v", "+inf"}}, HUGE_VAL);
  m.Set("etcdsafe_test_odd_values", {{"v", "-inf"}}, -HUGE_VAL);
  m.Set("etcdsafe_test_odd_values", {{"v", "tiny"}}, 1.5e-300);
  m.Set("etcdsafe_test_odd_values", {{"v", "huge"}}, 1.7e300);
  m.Set("etcdsafe_test_odd_values", {{"v", "escaped \"q\" \\ \n end"}, {"w", "ünïcödé"}}, -0.1);
}

TEST(Metrics, PromtoolCheckMetricsAcceptsEveryKind) {
  ASSERT_EQ(::access("/usr/bin/promtool", X_OK), 0) << "promtool is missing (make deps installs prometheus)";
  Metrics m;
  FillEverything(m);
  testutil::TempDir tmp;
  testutil::WriteFile(tmp.Sub("metrics.txt"), m.Render());
  auto r = testutil::Shell("/usr/bin/promtool check metrics < " + ShellQuote(tmp.Sub("metrics.txt")));
  EXPECT_EQ(r.code, 0) << r.out << r.err << m.Render();
  EXPECT_EQ(r.out + r.err, "") << m.Render();
  // And promtool does reject a broken exposition (the check is not vacuous).
  testutil::WriteFile(tmp.Sub("bad.txt"), m.Render() + "etcdsafe_backup_failures_total{reason=\"x\" 1\n");
  r = testutil::Shell("/usr/bin/promtool check metrics < " + ShellQuote(tmp.Sub("bad.txt")));
  EXPECT_NE(r.code, 0);
}

TEST(Metrics, PythonPrometheusClientParsesValues) {
  Metrics m;
  FillEverything(m);
  testutil::TempDir tmp;
  testutil::WriteFile(tmp.Sub("metrics.txt"), m.Render());
  // One JSON line per sample: [family type, sample name, labels, value as float.hex()].
  const std::string py =
      "import json, sys\n"
      "from prometheus_client.parser import text_string_to_metric_families\n"
      "for f in text_string_to_metric_families(open(sys.argv[1], encoding='utf-8').read()):\n"
      "    for s in f.samples:\n"
      "        print(json.dumps([f.type, s.name, s.labels, float(s.value).hex()], ensure_ascii=False))\n";
  auto r = testutil::Exec("/usr/bin/python3", {"-c", py, tmp.Sub("metrics.txt")});
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream in(r.out);
  std::string line;
  int samples = 0, buckets = 0;
  std::set<std::string> types;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    const std::string type = j[0], name = j[1];
    types.insert(type);
    Labels labels;
    std::string le;
    for (auto& [k, v] : j[2].items()) {
      if (k == "le") le = v.get<std::string>();
      else labels.emplace_back(k, v.get<std::string>());
    }
    const double got = std::strtod(j[3].get<std::string>().c_str(), nullptr);
    ++samples;
    SCOPED_TRACE(line);
    if (type == "histogram") {
      const std::string base = "etcdsafe_backup_duration_seconds";
      auto h = m.GetHistogram(base, labels);
      ASSERT_TRUE(h.has_value());
      if (name == base + "_bucket") {
        ++buckets;
        bool found = false;
        for (auto& [bound, count] : h->buckets) {
          if (FormatValue(bound) == le) {
            EXPECT_EQ(got, static_cast<double>(count));
            found = true;
          }
        }
        EXPECT_TRUE(found) << le;
      } else if (name == base + "_sum") {
        EXPECT_EQ(got, h->sum);
      } else {
        EXPECT_EQ(name, base + "_count");
        EXPECT_EQ(got, static_cast<double>(h->count));
      }
      continue;
    }
    const double want = m.Get(name, labels);
    if (std::isnan(want)) EXPECT_TRUE(std::isnan(got));
    else EXPECT_EQ(got, want);
  }
  EXPECT_EQ(types, (std::set<std::string>{"counter", "gauge", "histogram"}));
  EXPECT_EQ(buckets, 2 * 7);
  EXPECT_EQ(samples, 1 + 2 + 4 + 2 * (7 + 2) + 6);
  // The unicode and escaped label value came through intact.
  EXPECT_NE(r.out.find("escaped \\\"q\\\" \\\\ \\n end"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ünïcödé"), std::string::npos) << r.out;
}

TEST(Metrics, ConcurrentUpdatesAndRenders) {
  Metrics m;
  m.DeclareCounter("t_ops_total", "ops");
  m.DeclareGauge("t_last", "last value");
  m.DeclareHistogram("t_sizes", "sizes", {10, 100, 1000});
  constexpr int kThreads = 4, kIterations = 20000;
  std::atomic<bool> stop{false};
  std::atomic<int> renders{0};
  std::thread renderer([&] {
    while (!stop.load()) {
      const std::string text = m.Render();
      ASSERT_EQ(text.rfind("# HELP t_ops_total ops\n", 0), 0u);
      renders++;
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([&, t] {
      const std::string id = std::to_string(t);
      for (int i = 0; i < kIterations; ++i) {
        m.Add("t_ops_total", {{"worker", "all"}});
        m.Add("t_ops_total", {{"worker", id}}, 2);
        m.Set("t_last", {{"worker", id}}, i);
        m.Observe("t_sizes", {}, i % 2000);
        if (i % 1000 == 0) m.Remove("t_last", {{"worker", "gone"}});
      }
    });
  }
  for (auto& w : workers) w.join();
  stop = true;
  renderer.join();
  EXPECT_GT(renders.load(), 0);
  EXPECT_EQ(m.Get("t_ops_total", {{"worker", "all"}}), kThreads * kIterations);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(m.Get("t_ops_total", {{"worker", std::to_string(t)}}), 2.0 * kIterations);
    EXPECT_EQ(m.Get("t_last", {{"worker", std::to_string(t)}}), kIterations - 1);
  }
  auto h = m.GetHistogram("t_sizes", {});
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->count, uint64_t{kThreads} * kIterations);
  // i % 2000 over 0..19999: each residue 10 times per thread; <= 10 covers 0..10.
  EXPECT_EQ(h->buckets[0].second, uint64_t{kThreads} * 10 * 11);
  EXPECT_NE(m.Render().find("t_ops_total{worker=\"all\"} 80000\n"), std::string::npos);
}

}  // namespace
}  // namespace etcdsafe::agent
