// Tests for the shipped Prometheus rules, deploy/prometheus/alerts.yaml, with the real
// promtool: `promtool check rules` and `promtool test rules` (alerts_test.yaml) pass; the
// rules use only metrics the agent exports; every alert is tested firing and resolving;
// and the unit tests bite (mutated rules make them fail).
#include <gtest/gtest.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <map>
#include <regex>
#include <set>
#include <string>

#include "testutil/cli.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::agent {
namespace {

using testutil::ShellQuote;

const std::string kPromtool = "/usr/bin/promtool";
const std::string kDir = std::string(ETCDSAFE_SOURCE_DIR) + "/deploy/prometheus";

const std::set<std::string> kAlerts = {"EtcdBackupStale",       "EtcdBackupNeverSucceeded", "EtcdBackupFailed",
                                       "EtcdBackupTooSmall",    "EtcdBackupDrillFailed",    "EtcdBackupDrillStale",
                                       "EtcdUnreachable",       "EtcdsafeAgentDown",
                                       "EtcdContinuousBackupBehind", "EtcdContinuousBackupGap",
                                       "EtcdContinuousBackupDown",
                                       "EtcdCertificateExpiringSoon", "EtcdCertificateExpired"};

// The agent's exported families (issue 8); the rules may use no other etcdsafe_ metric.
const std::set<std::string> kExported = {
    "etcdsafe_build_info",
    "etcdsafe_backup_last_success_timestamp_seconds",
    "etcdsafe_backup_last_attempt_timestamp_seconds",
    "etcdsafe_backup_max_age_seconds",
    "etcdsafe_backup_duration_seconds_bucket",
    "etcdsafe_backup_duration_seconds_sum",
    "etcdsafe_backup_duration_seconds_count",
    "etcdsafe_job_duration_seconds_bucket",
    "etcdsafe_job_duration_seconds_sum",
    "etcdsafe_job_duration_seconds_count",
    "etcdsafe_job_last_success_timestamp_seconds",
    "etcdsafe_job_last_attempt_timestamp_seconds",
    "etcdsafe_backup_failures_total",
    "etcdsafe_backup_last_result",
    "etcdsafe_backup_db_bytes",
    "etcdsafe_backup_previous_db_bytes",
    "etcdsafe_backup_stored_bytes",
    "etcdsafe_backup_revision",
    "etcdsafe_backup_keys",
    "etcdsafe_retention_deleted_total",
    "etcdsafe_drill_last_success_timestamp_seconds",
    "etcdsafe_drill_last_attempt_timestamp_seconds",
    "etcdsafe_drill_duration_seconds",
    "etcdsafe_drill_last_result",
    "etcdsafe_drill_failures_total",
    "etcdsafe_drill_max_age_seconds",
    "etcdsafe_repository_backups",
    "etcdsafe_repository_bytes",
    "etcdsafe_etcd_up",
    // The continuous job (issue 9).
    "etcdsafe_continuous_up",
    "etcdsafe_continuous_recorded_revision",
    "etcdsafe_continuous_stored_revision",
    "etcdsafe_continuous_last_stored_timestamp_seconds",
    "etcdsafe_continuous_pending_bytes",
    "etcdsafe_continuous_segments_stored_total",
    "etcdsafe_continuous_events_recorded_total",
    "etcdsafe_continuous_stored_bytes_total",
    "etcdsafe_continuous_gaps_total",
    "etcdsafe_continuous_chains_started_total",
    "etcdsafe_continuous_upload_failures_total",
    "etcdsafe_continuous_reconnects_total",
    "etcdsafe_continuous_failures_total",
    // jobs.pki_check (issue 10).
    "etcdsafe_certificate_expiry_timestamp_seconds",
    "etcdsafe_certificate_problems",
    "etcdsafe_pki_check_last_success_timestamp_seconds",
};

void RequirePromtool() {
  ASSERT_EQ(::access(kPromtool.c_str(), X_OK), 0) << kPromtool << " is missing (make deps installs prometheus)";
}

TEST(AlertRules, PromtoolCheckRulesPasses) {
  RequirePromtool();
  auto r = testutil::Exec(kPromtool, {"check", "rules", kDir + "/alerts.yaml"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("SUCCESS: " + std::to_string(kAlerts.size()) + " rules found"), std::string::npos)
      << r.out << r.err;
}

TEST(AlertRules, PromtoolUnitTestsPass) {
  RequirePromtool();
  auto r = testutil::Exec(kPromtool, {"test", "rules", kDir + "/alerts_test.yaml"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("SUCCESS"), std::string::npos) << r.out << r.err;
}

TEST(AlertRules, EveryAlertIsDocumentedAndUsesExportedMetrics) {
  YAML::Node doc = YAML::LoadFile(kDir + "/alerts.yaml");
  ASSERT_EQ(doc["groups"].size(), 1u);
  EXPECT_EQ(doc["groups"][0]["name"].as<std::string>(), "etcdsafe");
  std::set<std::string> names;
  const std::regex metric_re("etcdsafe_[a-z_]+");
  for (const auto& rule : doc["groups"][0]["rules"]) {
    ASSERT_TRUE(rule["alert"]) << "recording rules are not expected here";
    const std::string name = rule["alert"].as<std::string>();
    names.insert(name);
    SCOPED_TRACE(name);
    const std::string severity = rule["labels"]["severity"].as<std::string>("");
    EXPECT_TRUE(severity == "critical" || severity == "warning") << severity;
    EXPECT_FALSE(rule["annotations"]["summary"].as<std::string>("").empty());
    EXPECT_FALSE(rule["annotations"]["description"].as<std::string>("").empty());
    const std::string expr = rule["expr"].as<std::string>();
    for (std::sregex_iterator it(expr.begin(), expr.end(), metric_re), end; it != end; ++it) {
      EXPECT_TRUE(kExported.count(it->str())) << it->str() << " is not a metric the agent exports";
    }
  }
  EXPECT_EQ(names, kAlerts);
}

// Each alert appears in some test group both firing and, at a later eval_time, not firing.
TEST(AlertRules, EveryAlertIsTestedFiringAndResolving) {
  YAML::Node doc = YAML::LoadFile(kDir + "/alerts_test.yaml");
  auto seconds = [](const std::string& d) {
    const double n = std::stod(d.substr(0, d.size() - 1));
    switch (d.back()) {
      case 's': return n;
      case 'm': return n * 60;
      case 'h': return n * 3600;
      default: ADD_FAILURE() << "eval_time " << d; return n;
    }
  };
  std::set<std::string> fires, resolves, quiet_before;
  for (const auto& group : doc["tests"]) {
    std::map<std::string, double> first_firing;
    for (const auto& t : group["alert_rule_test"]) {
      const std::string name = t["alertname"].as<std::string>();
      const double at = seconds(t["eval_time"].as<std::string>());
      if (t["exp_alerts"].size() > 0) {
        fires.insert(name);
        if (!first_firing.count(name)) first_firing[name] = at;
      } else if (first_firing.count(name) && at > first_firing[name]) {
        resolves.insert(name);
      } else if (!first_firing.count(name)) {
        quiet_before.insert(name);
      }
    }
  }
  EXPECT_EQ(fires, kAlerts);
  EXPECT_EQ(resolves, kAlerts);
  EXPECT_EQ(quiet_before, kAlerts);
}

// Weakened or broken rules make `promtool test rules` fail: the unit tests are not vacuous.
TEST(AlertRules, MutatedRulesFailTheUnitTests) {
  RequirePromtool();
  const std::string rules = testutil::ReadFile(kDir + "/alerts.yaml");
  const std::string tests = testutil::ReadFile(kDir + "/alerts_test.yaml");
  const std::vector<std::pair<std::string, std::string>> mutations = {
      {"etcdsafe_etcd_up == 0", "etcdsafe_etcd_up == 2"},
      {"for: 2m", "for: 0m"},
      {"0.5 * etcdsafe_backup_previous_db_bytes", "0.3 * etcdsafe_backup_previous_db_bytes"},
      {"(etcdsafe_backup_max_age_seconds > 0)", "etcdsafe_backup_max_age_seconds"},
      {"(etcdsafe_drill_max_age_seconds > 0)", "etcdsafe_drill_max_age_seconds"},
      {"[1h])) >= 3", "[1h])) >= 4"},
      {"(etcdsafe_drill_last_attempt_timestamp_seconds > 0)", "(etcdsafe_drill_last_attempt_timestamp_seconds >= 0)"},
      {"(etcdsafe_backup_last_attempt_timestamp_seconds > 0)", "(etcdsafe_backup_last_attempt_timestamp_seconds >= 0)"},
      {"(etcdsafe_backup_last_attempt_timestamp_seconds) > 0", "(etcdsafe_backup_last_attempt_timestamp_seconds) >= 0"},
      {"up{job=~\".*etcdsafe.*\"} == 0", "up{job=~\".*etcdsafe.*\"} == 2"},
      {"absent(up{job=~\".*etcdsafe.*\"})", "absent(up{job=\"etcdsafe\"})"},
      {"group_left ()\n          (etcdsafe_backup_max_age_seconds > 0)",
       "group_left ()\n          (etcdsafe_backup_max_age_seconds > 0) * 2"},
      {"_timestamp_seconds > 300)", "_timestamp_seconds > 400)"},
      {"(etcdsafe_continuous_recorded_revision > etcdsafe_continuous_stored_revision)",
       "(etcdsafe_continuous_recorded_revision >= etcdsafe_continuous_stored_revision)"},
      {"gaps_total[1h]) > 0", "gaps_total[2h]) > 0"},
      {"(etcdsafe_continuous_up == 0)", "(etcdsafe_continuous_up == 2)"},
      {"[15m])) >= 3", "[15m])) >= 30"},
      {"> 0 < 30 * 86400", "> 0 < 20 * 86400"},
      {" > 0 < 30 * 86400", " < 30 * 86400"},
      {"time() - etcdsafe_certificate_expiry_timestamp_seconds >= 0",
       "time() - etcdsafe_certificate_expiry_timestamp_seconds >= 2 * 86400"},
  };
  for (const auto& [from, to] : mutations) {
    SCOPED_TRACE(from);
    const size_t pos = rules.find(from);
    ASSERT_NE(pos, std::string::npos);
    ASSERT_EQ(rules.find(from, pos + 1), std::string::npos) << "ambiguous mutation";
    testutil::TempDir tmp;
    testutil::WriteFile(tmp.Sub("alerts.yaml"), rules.substr(0, pos) + to + rules.substr(pos + from.size()));
    testutil::WriteFile(tmp.Sub("alerts_test.yaml"), tests);
    auto r = testutil::Exec(kPromtool, {"test", "rules", tmp.Sub("alerts_test.yaml")});
    EXPECT_NE(r.code, 0) << r.out << r.err;
    EXPECT_NE((r.out + r.err).find("FAILED"), std::string::npos) << r.out << r.err;
  }
  // And the unmutated copy passes in the same setup.
  testutil::TempDir tmp;
  testutil::WriteFile(tmp.Sub("alerts.yaml"), rules);
  testutil::WriteFile(tmp.Sub("alerts_test.yaml"), tests);
  auto r = testutil::Exec(kPromtool, {"test", "rules", tmp.Sub("alerts_test.yaml")});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
}

}  // namespace
}  // namespace etcdsafe::agent
