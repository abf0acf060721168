// Starting a server process for a test: stdin from /dev/null, stdout and stderr appended
// to a log file, and killed with the test process (PR_SET_PDEATHSIG) so a crashed test
// leaves no server behind. Shared by EtcdServer and S3Server.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace etcdsafe::testutil {

// args[0] is the program path. Returns the child's pid; throws std::runtime_error.
pid_t SpawnLogged(const std::vector<std::string>& args, const std::vector<std::string>& env,
                  const std::string& log_path);

}  // namespace etcdsafe::testutil
