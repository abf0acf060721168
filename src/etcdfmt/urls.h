// Peer-URL parsing exactly as etcd 3.4 does it (Go net/url.Parse + etcd's
// types.NewURLs / NewURLsMap checks), so that
//   * accepted/rejected inputs and the error texts match etcdctl's, and
//   * the re-serialized form (Go url.URL.String()) used for sorting, member IDs and
//     JSON is byte-identical (e.g. "HTTP://h:1" becomes "http://h:1", non-ASCII host
//     bytes become %XX).
// Errors are thrown as Error(kInvalidArgument, <etcd's message>).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace etcdsafe::etcdfmt {

// The subset of Go's url.URL that matters for peer URLs.
struct GoUrl {
  std::string scheme;  // lower-cased
  std::string opaque;
  bool has_user = false;
  std::string username;
  bool has_password = false;
  std::string password;
  std::string host;  // unescaped, including ":port"
  std::string path;  // unescaped
  std::string raw_query;
  bool force_query = false;
  std::string fragment;      // unescaped
  std::string raw_fragment;  // as written

  // Go's url.URL.String().
  std::string String() const;
};

// Go url.Parse. Error text: `parse "<url>": <reason>`.
GoUrl ParseGoUrl(std::string_view raw);

// etcd types.NewURLs: trims each string, parses, requires scheme http/https/unix/unixs,
// a "host:port" host and an empty path; returns the String() forms sorted.
std::vector<std::string> NewPeerUrls(const std::vector<std::string>& raw);

// etcd types.NewURLsMap: "name=url,name=url,..." (empty items skipped, split at the first
// '='; a name may repeat) -> name -> sorted URL strings. Names are processed in sorted
// order (Go iterates a map, so with several bad URLs etcd's choice of error is random).
std::map<std::string, std::vector<std::string>> NewUrlsMap(std::string_view s);

// Go strings.Split(s, ",") (keeps empty items).
std::vector<std::string> SplitComma(std::string_view s);

}  // namespace etcdsafe::etcdfmt
