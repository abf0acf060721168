// String formatting that must match Go's standard library byte for byte, because the
// output lands in files etcd reads (member JSON, v2 store JSON) or in error messages that
// must read exactly like etcdctl's.
//
// GoJsonQuote: Go encoding/json string escaping (HTML-safe, as json.Marshal does),
//   including the quotes. Invalid UTF-8 becomes \ufffd; U+2028/U+2029 are escaped.
// GoQuote: Go strconv.Quote / fmt %q, used only in error messages. Approximation for
//   non-ASCII: valid multi-byte UTF-8 is kept raw (Go escapes the rare non-printable
//   runes), invalid bytes become \xNN like Go.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace etcdsafe::etcdfmt {

std::string GoJsonQuote(std::string_view s);
std::string GoQuote(std::string_view s);
// fmt %q of a []string: ["a" "b"].
std::string GoQuoteList(const std::vector<std::string>& v);

// Decodes one UTF-8 sequence at s[i] like Go's utf8.DecodeRuneInString: returns its
// length (1..4) and sets *rune; invalid, overlong, surrogate or >U+10FFFF input returns
// 1 with *rune = -1.
int DecodeUtf8(std::string_view s, size_t i, int* rune);

}  // namespace etcdsafe::etcdfmt
