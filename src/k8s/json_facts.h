// JsonFacts: what ParseEnvelope and DecodeObjectMetaJson (k8s/envelope.h) find in a JSON
// value, computed in one pass over the bytes without building a document. For the
// inspections that look at every value of a snapshot (`inspect inventory`, `inspect diff`):
// a DOM parse of ~1 GB of JSON values takes seconds, this scan runs close to memory speed
// (string bodies are skipped 16 bytes at a time).
//
// Contract, for any bytes s whose first byte that is not JSON whitespace (space, \t, \n, \r)
// is '{' (the values ParseEnvelope hands to nlohmann::json::parse):
//  * valid == nlohmann::json::parse(s, nullptr, false) gives an object, i.e. ParseEnvelope
//    says kJson and not kMalformed. That is nlohmann 3.11's grammar: RFC 8259 values;
//    strings of well-formed UTF-8 (RFC 3629) without raw control characters, escapes
//    \" \\ \/ \b \f \n \r \t \uXXXX with surrogates paired; numbers whose value overflows a
//    double are an error; after the object only whitespace, up to the end or up to a NUL
//    byte (nlohmann's end of input: the rest is ignored).
//  * when valid: has_metadata == the last top-level "metadata" member is an object, and
//    uid / generation are what DecodeObjectMetaJson would store: the last "uid" member of
//    that object when it is a string (escapes decoded), the last "generation" member when
//    it is an integer (an unsigned one above INT64_MAX cast as get<int64_t>() does);
//    "" and 0 otherwise. Member names are compared after unescaping.
// For s not starting with '{' (after whitespace) valid is false. Nesting depth is not
// limited (an explicit stack, one byte per level); nothing is read outside s.
// tests/unit/k8s/json_facts_test.cc and the k8s fuzz target compare it with nlohmann.
// Pure; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/bytes.h"
#include "k8s/envelope.h"

namespace etcdsafe::k8s {

struct JsonFacts {
  bool valid = false;
  bool has_metadata = false;
  std::string uid;
  int64_t generation = 0;
};

JsonFacts ScanJsonObject(std::string_view s);

// What inventory and diff need of a value: ParseEnvelope(value).encoding and, with
// `metadata`, the uid and generation diff reads (DecodeObjectMetaOfObject of a protobuf
// object, DecodeObjectMetaJson of a JSON one; "" and 0 when that fails or for other
// encodings). JSON values go through ScanJsonObject instead of a DOM parse; the others
// through ParseEnvelope itself.
struct ValueFacts {
  Encoding encoding = Encoding::kOther;
  std::string uid;
  int64_t generation = 0;
};
ValueFacts FactsOfValue(Bytes value, bool metadata);

// The encoding without parsing JSON: FactsOfValue(value, false).encoding, except that a
// value whose first byte that is not JSON whitespace is '{' is kJson unread (a malformed
// one included). What `inspect inventory` counts unless told to --check-values: the
// envelope prefixes and the protobuf envelope are checked, JSON bodies are not.
Encoding EncodingUnchecked(Bytes value);

}  // namespace etcdsafe::k8s
