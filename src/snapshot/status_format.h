// Renders `snapshot status` numbers exactly as etcdctl 3.4 prints them for
// -w simple|table|json|fields (spec §2.2), so scripts that parse etcdctl's output keep
// working. Pure functions; no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace etcdsafe::snapshot {

struct StatusNumbers {
  uint32_t hash = 0;
  int64_t revision = 0;
  uint64_t total_key = 0;
  uint64_t total_size = 0;
};

// go-humanize Bytes(): SI units, "20 kB", "1.5 MB", half-to-even like Go's %.0f.
std::string HumanizeBytes(uint64_t size);

// format: "simple", "table", "json" or "fields". Each result ends with '\n'.
// Errors, with etcdctl's words: "protobuf not supported as output format" and, for any
// other name, "unsupported output format" (both kUnsupported).
std::string FormatStatus(const StatusNumbers& s, const std::string& format);

// A plain ASCII table like tablewriter's: centred upper-case headers, right-aligned cells.
std::string RenderTable(const std::vector<std::string>& headers,
                        const std::vector<std::vector<std::string>>& rows);

}  // namespace etcdsafe::snapshot
