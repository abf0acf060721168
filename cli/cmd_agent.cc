// etcdsafe agent --config FILE [--check-config]: the long-running scheduler (src/agent).
// Exit codes: 0 stopped by SIGTERM/SIGINT (or --check-config passed), 128 invalid
// configuration (one line: file:line: key: reason), 10 configuration file missing,
// 1 start-up failure (HTTP address in use, state dir not writable).
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "agent/agent.h"
#include "agent/config.h"
#include "agent/event_log.h"
#include "base/error.h"
#include "base/signals.h"
#include "commands.h"
#include "exit_codes.h"

namespace etcdsafe::cli {
namespace {

struct AgentFlags {
  std::string config = "/etc/etcdsafe/agent.yaml";
  bool check_config = false;
};

std::string When(const std::optional<std::chrono::system_clock::time_point>& t, const absl::TimeZone& tz) {
  if (!t) return "never";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S %Z", absl::FromChrono(*t), tz);
}

void CheckConfig(const agent::AgentConfig& cfg) {
  const auto now = std::chrono::system_clock::now();
  std::printf("configuration %s is valid\n", cfg.path.c_str());
  std::printf("  etcd: %zu endpoint(s); repositories:", cfg.etcd.endpoints.size());
  for (const auto& r : cfg.repositories) std::printf(" %s", r.name.c_str());
  std::printf("\n");
  auto job = [&](const char* name, bool enabled, const agent::Schedule& s) {
    if (!enabled) return;
    std::printf("  %-6s \"%s\", next run %s\n", name, s.text().c_str(), When(s.Next(now, cfg.tz), cfg.tz).c_str());
  };
  job("backup", cfg.backup.enabled, cfg.backup.schedule);
  job("prune", cfg.prune.enabled, cfg.prune.schedule);
  job("drill", cfg.drill.enabled, cfg.drill.schedule);
  job("pki_check", cfg.pki_check.enabled, cfg.pki_check.schedule);
  if (cfg.continuous.enabled) {
    const auto& c = cfg.continuous;
    std::printf("  continuous into %s: a segment every %lld ms (or %llu bytes), a new full backup every %lld s\n",
                c.repository.empty() ? cfg.repositories.front().name.c_str() : c.repository.c_str(),
                static_cast<long long>(c.segment_max_age.count()), static_cast<unsigned long long>(c.segment_max_bytes),
                static_cast<long long>(c.full_every.count() / 1000));
  }
  std::printf("  http: %s; webhooks: %zu; state dir: %s\n", cfg.http_listen.empty() ? "off" : cfg.http_listen.c_str(),
              cfg.webhooks.size(), cfg.state_dir.c_str());
}

void RunAgent(const AgentFlags& f) {
  agent::AgentConfig cfg = agent::LoadConfig(f.config);
  if (f.check_config) {
    CheckConfig(cfg);
    return;
  }
  agent::EventLog log(agent::ResolveLogFormat(cfg.log_format, STDERR_FILENO), STDERR_FILENO);
  agent::Agent a(std::move(cfg), log);
  SetSignalForwarder([&a](int sig) { a.HandleSignal(sig); });
  try {
    int code = a.Run();
    SetSignalForwarder({});
    if (code != 0) throw CommandExit{code, ""};
  } catch (...) {
    SetSignalForwarder({});
    throw;
  }
}

}  // namespace

void AddAgentCommand(CLI::App& app) {
  auto f = std::make_shared<AgentFlags>();
  CLI::App* cmd = app.add_subcommand(
      "agent", "run scheduled backups, prunes and restore drills; serve /metrics, /healthz, /readyz");
  cmd->add_option("--config", f->config, "agent configuration (YAML; see deploy/agent.example.yaml)")
      ->capture_default_str();
  cmd->add_flag("--check-config", f->check_config, "validate the configuration, print the next run times, and exit");
  cmd->callback([f] { RunAgent(*f); });
}

}  // namespace etcdsafe::cli
