// ReleaseIdleMemory: a long-running process that is about to idle (the agent after its
// start-up and after each job) gives back memory it will not touch until the next job.
//
//  * malloc_trim(0): free heap pages in every malloc arena go back to the kernel (a
//    backup's buffers are tens of MiB, freed but otherwise kept resident by the arenas).
//  * MADV_PAGEOUT on the process's read-only, file-backed mappings (its binary and shared
//    libraries): the kernel reclaims the clean pages that only this process maps (pages
//    other processes map, such as libc's, stay), i.e. the code and read-only data that
//    start-up (CLI set-up, config parsing, TLS set-up) or the finished job touched. What
//    the idle loop uses (health probes, the HTTP server, timers) faults back in from the
//    page cache at its next use; a page that was reclaimed is read from disk again at the
//    next job. Measured on the bench agent (issue 8): 20.2 MiB idle RSS without this,
//    15.1 MiB after a minute of probes and scrapes with it.
//
// Best effort and cheap (one madvise per mapping, a few dozen): errors (a kernel before
// 5.4 without MADV_PAGEOUT, an unreadable /proc) are ignored. Returns the number of bytes
// advised (0 when nothing was). Thread-safe.
#pragma once

#include <cstddef>

namespace etcdsafe {

size_t ReleaseIdleMemory();

}  // namespace etcdsafe
