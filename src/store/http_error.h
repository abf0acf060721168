// HttpErrorText: one line for a cpp-httplib transport failure (no HTTP response), shared
// by the S3 client (s3_store.cc) and the agent's webhooks (agent/notify.cc), which both
// speak HTTP through cpp-httplib.
#pragma once

#include <httplib.h>

#include <string>

namespace etcdsafe::store {

std::string HttpErrorText(httplib::Error e);

}  // namespace etcdsafe::store
