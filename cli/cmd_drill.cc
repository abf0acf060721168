// The `--drill` flags of `snapshot verify` and `backups verify` (drill_flags.h): restore
// the backup, start a real etcd on it and check it against the snapshot (src/ops/drill.h).
#include <cstdio>

#include "base/file.h"
#include "drill_flags.h"
#include "exit_codes.h"

namespace etcdsafe::cli {

void AddDrillFlags(CLI::App& cmd, DrillFlags& f) {
  cmd.add_flag("--drill", f.drill,
               "restore into a temp dir, start a real etcd on loopback and check revision, keys, hashkv and "
               "Kubernetes objects against the snapshot");
  cmd.add_flag("--not-kubernetes", f.not_kubernetes, "with --drill: skip the Kubernetes object and essentials checks");
  cmd.add_option("--max-age", f.max_age, "with --drill: fail when the snapshot is older than this (24h, 90m, 1d12h)");
  cmd.add_option("--report", f.report, "with --drill: write a JSON report to FILE (pass or fail)");
  cmd.add_option("--etcd-binary", f.etcd_binary, "with --drill: the etcd to start (default: etcd from PATH)");
}

std::optional<ops::DrillOptions> DrillRequested(const DrillFlags& f) {
  if (!f.drill) {
    const char* flag = f.not_kubernetes ? "--not-kubernetes"
                       : !f.max_age.empty() ? "--max-age"
                       : !f.report.empty() ? "--report"
                       : !f.etcd_binary.empty() ? "--etcd-binary"
                                                : nullptr;
    if (flag != nullptr) throw Error(ErrorCode::kInvalidArgument, std::string(flag) + " needs --drill");
    return std::nullopt;
  }
  ops::DrillOptions o;
  o.not_kubernetes = f.not_kubernetes;
  if (!f.max_age.empty()) o.max_age = ops::ParseMaxAge(f.max_age);
  o.report_path = f.report;
  if (!o.report_path.empty() && !IsDirectory(ParentDir(o.report_path))) {
    throw Error(ErrorCode::kInvalidArgument, "--report " + o.report_path + ": no directory " + ParentDir(o.report_path));
  }
  o.etcd_binary = f.etcd_binary;
  o.note = [](const std::string& n) { std::fprintf(stderr, "etcdsafe: %s\n", n.c_str()); };
  return o;
}

void FinishDrill(const ops::DrillReport& report) {
  std::fputs(ops::FormatDrillTable(report).c_str(), stdout);
  if (report.ok) {
    std::printf("%s\n", ops::DrillSummaryLine(report).c_str());
    return;
  }
  throw CommandExit{report.exit_code, ops::DrillSummaryLine(report)};
}

}  // namespace etcdsafe::cli
