// Test data and chain helpers for the pipeline tests and bench.
#pragma once

#include <cstdint>
#include <string>

#include "base/stream.h"

namespace etcdsafe::pipeline::testing {

// Incompressible bytes.
std::string RandomBytes(size_t n, uint64_t seed);
// etcd-like data: Kubernetes-object-shaped JSON values with keys, ids and revisions,
// compressing roughly like a real etcd db.
std::string EtcdLike(size_t n, uint64_t seed);

// Writes `data` in pieces of `step` bytes.
void WriteInSteps(Sink& sink, const std::string& data, size_t step);
// Reads everything with reads of `step` bytes.
std::string ReadAllInSteps(Source& src, size_t step);

}  // namespace etcdsafe::pipeline::testing
