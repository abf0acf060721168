// etcdsafe version: etcdctl 3.4's two lines, with etcdsafe's version.
#include <cstdio>

#include "commands.h"
#include "ops/version.h"

namespace etcdsafe::cli {

void AddVersionCommand(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand("version", "Print the version of etcdsafe and of the etcd API it speaks");
  cmd->fallthrough();  // global flags (e.g. --debug) are accepted, as by etcdctl
  cmd->allow_extras();  // etcdctl ignores arguments
  cmd->callback([] { std::fputs(ops::VersionText().c_str(), stdout); });
}

}  // namespace etcdsafe::cli
