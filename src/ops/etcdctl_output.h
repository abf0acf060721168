// The pieces of etcdctl 3.4's output machinery that `endpoint` and `member` print with,
// reproduced byte for byte (checked against the real etcdctl in
// tests/integration/ops_cluster_test.cc):
//  * RenderTable: olekukonko/tablewriter as etcdctl configures it (upper-case centred
//    header, right-aligned cells, '+', '-', '|' borders, cells over 30 columns wrapped at
//    spaces with tablewriter's minimum-raggedness rule; a word never breaks).
//  * JsonString: Go's encoding/json string encoding (\u003c \u003e \u0026 escaped,
//    control characters as \n \r \t or \u00XX, invalid UTF-8 as \ufffd).
//  * GoQuote: Go's %q / strconv.Quote for ASCII and valid UTF-8 text.
//  * GoDuration: Go's time.Duration.String() ("6.111181ms", "5.000799252s").
// Pure functions; thread-safe.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace etcdsafe::ops {

std::string RenderTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);
std::string JsonString(const std::string& s);
std::string GoQuote(const std::string& s);
std::string GoDuration(std::chrono::nanoseconds d);

// The output formats etcdctl's -w accepts. Anything else is etcdctl's
// "unsupported output format" (kUnsupported, exit 4).
enum class OutputFormat { kSimple, kTable, kJson, kFields };
OutputFormat ParseOutputFormat(const std::string& w);
// etcdctl's "<w> not supported as output format" (kUnsupported) for a format a command
// has no printer for.
[[noreturn]] void ThrowFormatNotSupported(const std::string& w);

}  // namespace etcdsafe::ops
