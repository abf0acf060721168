// Signal forwarding for commands that handle SIGINT/SIGTERM/SIGHUP themselves.
//
// The CLI blocks those signals in every thread and takes them on one signal thread, which
// normally removes partial output and exits 130 (cli/main.cc). A long-running command (the
// agent) installs a forwarder instead: the signal thread then calls it for every signal and
// keeps running. The forwarder runs on the signal thread, may block (e.g. wait out a grace
// period) and may itself call RemovePendingCleanups() and exit.
#pragma once

#include <functional>

namespace etcdsafe {

// Installs (or with an empty function removes) the process-wide forwarder. Thread-safe.
void SetSignalForwarder(std::function<void(int sig)> fn);

// Called by the signal thread: runs the forwarder and returns true, or returns false when
// none is installed.
bool ForwardSignal(int sig);

}  // namespace etcdsafe
