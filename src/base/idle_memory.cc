#include "base/idle_memory.h"

#include <malloc.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdio>
#include <cstring>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21  // Linux 5.4
#endif

namespace etcdsafe {

size_t ReleaseIdleMemory() {
  malloc_trim(0);
  FILE* maps = std::fopen("/proc/self/maps", "re");
  if (maps == nullptr) return 0;
  size_t advised = 0;
  char line[4096 + 256];
  while (std::fgets(line, sizeof line, maps) != nullptr) {
    uintptr_t begin = 0, end = 0;
    char perms[5] = {0};
    unsigned long long offset = 0;
    char dev[16] = {0};
    unsigned long inode = 0;
    if (std::sscanf(line, "%lx-%lx %4s %llx %15s %lu", &begin, &end, perms, &offset, dev, &inode) != 6) continue;
    // Read-only (no 'w'), private, backed by a file (inode != 0): code and constants.
    if (inode == 0 || perms[0] != 'r' || perms[1] == 'w' || perms[3] != 'p' || end <= begin) continue;
    if (madvise(reinterpret_cast<void*>(begin), end - begin, MADV_PAGEOUT) == 0) advised += end - begin;
  }
  std::fclose(maps);
  return advised;
}

}  // namespace etcdsafe
