#include "store/s3_store.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_set>

#include "base/error.h"
#include "base/file.h"
#include "store/http_error.h"

namespace etcdsafe::store {

// ---------------------------------------------------------------- XML helpers

namespace s3xml {

std::string Unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) {
      throw Error(ErrorCode::kDataLoss, "S3 response: malformed XML entity");
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp") out += '&';
    else if (ent == "lt") out += '<';
    else if (ent == "gt") out += '>';
    else if (ent == "quot") out += '"';
    else if (ent == "apos") out += '\'';
    else if (ent.size() >= 2 && ent[0] == '#') {
      bool hex = ent[1] == 'x' || ent[1] == 'X';
      std::string digits(ent.substr(hex ? 2 : 1));
      if (digits.empty() || digits.size() > 8) {
        throw Error(ErrorCode::kDataLoss, "S3 response: malformed XML character reference");
      }
      char* end = nullptr;
      unsigned long cp = std::strtoul(digits.c_str(), &end, hex ? 16 : 10);
      if (*end != '\0' || cp == 0 || cp > 0x10FFFF) {
        throw Error(ErrorCode::kDataLoss, "S3 response: malformed XML character reference");
      }
      // UTF-8 encode.
      if (cp < 0x80) {
        out += static_cast<char>(cp);
      } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      }
    } else {
      throw Error(ErrorCode::kDataLoss, "S3 response: unknown XML entity");
    }
    i = semi;
  }
  return out;
}

std::string Escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

std::vector<std::string_view> FindAll(std::string_view xml, std::string_view tag) {
  std::vector<std::string_view> out;
  const std::string open = "<" + std::string(tag) + ">";
  const std::string self_closing = "<" + std::string(tag) + "/>";
  const std::string close = "</" + std::string(tag) + ">";
  size_t pos = 0;
  // The next "<Tag/>" is looked up again only once passed: searching the rest of the
  // document for every element made a 1000-key LIST page quadratic (~100 ms).
  size_t sc = xml.find(self_closing);
  for (;;) {
    size_t a = xml.find(open, pos);
    if (sc != std::string_view::npos && sc < pos) sc = xml.find(self_closing, pos);
    if (sc != std::string_view::npos && (a == std::string_view::npos || sc < a)) {
      out.emplace_back();  // <Tag/>: empty text
      pos = sc + self_closing.size();
      continue;
    }
    if (a == std::string_view::npos) break;
    a += open.size();
    size_t b = xml.find(close, a);
    if (b == std::string_view::npos) break;
    out.push_back(xml.substr(a, b - a));
    pos = b + close.size();
  }
  return out;
}

std::optional<std::string> Find(std::string_view xml, std::string_view tag) {
  auto all = FindAll(xml, tag);
  if (all.empty()) return std::nullopt;
  return Unescape(all[0]);
}

}  // namespace s3xml

namespace {

using Params = std::vector<std::pair<std::string, std::string>>;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------- credentials

std::string Trim(std::string_view s) {
  size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string_view::npos) return "";
  size_t b = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(a, b - a + 1));
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// ---------------------------------------------------------------- HTTP

struct Request {
  std::string method;
  std::string key;  // full object key; empty for bucket-level requests
  Params query;
  Params headers;  // signed and sent
  const uint8_t* body = nullptr;
  size_t body_len = 0;
  std::string payload_hash;  // empty: computed from body
  size_t max_response = 1 << 20;
  // Cap on a 2xx response's body (0: max_response): an object read never receives more
  // than it asked for, even from a server that ignores Range.
  size_t max_ok_body = 0;
};

struct Response {
  long status = 0;
  bool overflow = false;  // the body went over its cap; the transfer was stopped
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string Header(const std::string& n) const {
    auto it = headers.find(n);
    return it == headers.end() ? "" : it->second;
  }
};

// "127.0.0.1:9000", "[::1]:9000", "localhost:9000", "10.0.0.5" → true.
bool HostIsIpOrLocalhost(const std::string& authority) {
  if (!authority.empty() && authority[0] == '[') return true;  // IPv6 literal
  std::string host = authority.substr(0, authority.rfind(':') == std::string::npos ? authority.size()
                                                                                     : authority.rfind(':'));
  if (host == "localhost") return true;
  in_addr a{};
  return inet_pton(AF_INET, host.c_str(), &a) == 1;
}

// S3's rule for names usable as a host label: 3-63 of [a-z0-9.-], starting and ending
// with a letter or digit, no "..", not an IP address. Dots break TLS wildcard names, so
// (as botocore) only dot-free names go virtual.
bool DnsCompatibleBucket(const std::string& b) {
  if (b.size() < 3 || b.size() > 63) return false;
  for (char c : b) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return b.front() != '-' && b.back() != '-';
}

// Transport failures worth another attempt: the connection broke or timed out. A TLS
// handshake that fails is retried (as a reset would be); a certificate that does not
// verify, or certificates that cannot be loaded, never will.
bool Retryable(httplib::Error e) {
  switch (e) {
    case httplib::Error::Connection:
    case httplib::Error::Read:
    case httplib::Error::Write:
    case httplib::Error::ConnectionTimeout:
    case httplib::Error::SSLConnection:
    case httplib::Error::Unknown:
      return true;
    default:
      return false;
  }
}

// An HTTP date (RFC 9110 IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT"), as S3 sends in
// Last-Modified; 0 when it is not one.
int64_t ParseHttpDate(const std::string& s) {
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char mon[4] = {0};
  std::tm tm{};
  int n = 0;
  if (sscanf(s.c_str(), "%*3s, %2d %3s %4d %2d:%2d:%2d GMT%n", &tm.tm_mday, mon, &tm.tm_year, &tm.tm_hour,
             &tm.tm_min, &tm.tm_sec, &n) != 6 ||
      n != static_cast<int>(s.size())) {
    return 0;
  }
  tm.tm_mon = -1;
  for (int i = 0; i < 12; i++) {
    if (std::string_view(mon) == kMonths[i]) tm.tm_mon = i;
  }
  if (tm.tm_mon < 0 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
    return 0;
  }
  tm.tm_year -= 1900;
  return static_cast<int64_t>(timegm(&tm));
}

// The host of an authority ("h:1", "[::1]:1", "h").
std::string HostOf(const std::string& authority) {
  if (!authority.empty() && authority[0] == '[') return authority.substr(1, authority.find(']') - 1);
  return authority.substr(0, authority.rfind(':'));
}

// Whether `host` has an address; names under "localhost" do (RFC 6761, as curl answers
// them without asking DNS).
bool Resolves(const std::string& host) {
  if (host == "localhost" || host.ends_with(".localhost")) return true;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (res != nullptr) freeaddrinfo(res);
  return rc == 0;
}

int64_t ParseIso8601(const std::string& s) {
  std::tm tm{};
  if (sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
             &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6) {
    return 0;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm));
}

uint64_t ParseU64(const std::string& s, const std::string& what) {
  if (s.empty() || s.size() > 20 || s.find_first_not_of("0123456789") != std::string::npos) {
    throw Error(ErrorCode::kDataLoss, what + ": bad number \"" + s + "\" in S3 response");
  }
  return std::stoull(s);
}

class S3Store;

// ---------------------------------------------------------------- the store

class S3Store : public Store {
 public:
  S3Store(std::string bucket, std::string prefix, StoreOptions options,
          SigV4Credentials creds)
      : bucket_(std::move(bucket)),
        prefix_(std::move(prefix)),
        opt_(std::move(options)),
        creds_(std::move(creds)) {
    std::string ep = opt_.s3_endpoint;
    if (ep.empty()) ep = "https://s3." + opt_.region + ".amazonaws.com";
    size_t sep = ep.find("://");
    if (sep == std::string::npos || (ep.substr(0, sep) != "http" && ep.substr(0, sep) != "https")) {
      throw Error(ErrorCode::kInvalidArgument,
                  "S3 endpoint \"" + ep + "\": want http://host[:port] or https://host[:port]");
    }
    scheme_ = ep.substr(0, sep);
    authority_ = ep.substr(sep + 3);
    while (!authority_.empty() && authority_.back() == '/') authority_.pop_back();
    if (authority_.empty() || authority_.find_first_of("/?#@ ") != std::string::npos) {
      throw Error(ErrorCode::kInvalidArgument,
                  "S3 endpoint \"" + ep + "\": want http(s)://host[:port] without a path");
    }
    // As the AWS CLI does: a bucket cannot be a host name label of an IP address or of
    // "localhost", nor when its name is not a DNS label; path style then.
    path_style_ = opt_.path_style || HostIsIpOrLocalhost(authority_) || !DnsCompatibleBucket(bucket_);
    if (!path_style_) authority_ = bucket_ + "." + authority_;
    if (opt_.part_size < (5u << 20) || opt_.part_size > (5ull << 30)) {
      throw Error(ErrorCode::kInvalidArgument, "S3 part size must be between 5 MiB and 5 GiB");
    }
    if (opt_.parallel_parts < 1 || opt_.parallel_parts > 64) {
      throw Error(ErrorCode::kInvalidArgument, "S3 parallel parts must be between 1 and 64");
    }
    if (opt_.read_chunk == 0) opt_.read_chunk = 8 << 20;
    if (opt_.max_retries < 0) opt_.max_retries = 0;
  }

  ~S3Store() override = default;

  std::string Describe() const override {
    return "s3://" + bucket_ + (prefix_.empty() ? "" : "/" + prefix_);
  }

  std::unique_ptr<Sink> Create(const std::string& name) override;
  std::unique_ptr<Source> Open(const std::string& name) override;

  std::optional<ObjectInfo> Stat(const std::string& name) override {
    ValidateName(Describe(), name, /*allow_temp=*/true);
    Request r;
    r.method = "HEAD";
    r.key = Key(name);
    Response resp = Do(r, Url(name));
    if (resp.status == 404) return std::nullopt;
    if (resp.status != 200) Fail(resp, Url(name), "HEAD");
    ObjectInfo info;
    info.name = name;
    info.size = ParseU64(resp.Header("content-length"), Url(name));
    std::string lm = resp.Header("last-modified");
    if (!lm.empty()) {
      int64_t t = ParseHttpDate(lm);
      if (t > 0) info.mtime_unix = t;
    }
    return info;
  }

  std::vector<ObjectInfo> List(const std::string& prefix) override {
    return ListPages(prefix, /*delimited=*/false, /*include_temp=*/false);
  }

  std::vector<ObjectInfo> ListDir(const std::string& dir, bool include_temp) override {
    ValidateDir(Describe(), dir);
    return ListPages(dir, /*delimited=*/true, include_temp);
  }

  std::string Get(const std::string& name, size_t limit) override;

  std::vector<std::string> AbortStaleUploads(int64_t older_than_unix,
                                             const std::function<bool(const std::string&)>& is_ours) override {
    const std::string root = prefix_.empty() ? "" : prefix_ + "/";
    const std::string what = Describe();
    const size_t max_entries = opt_.max_list_entries == 0 ? kMaxListEntries : opt_.max_list_entries;
    struct Upload {
      std::string name, id, initiated;
    };
    std::vector<Upload> stale;
    std::string key_marker, id_marker;
    size_t entries = 0;
    for (;;) {
      Request r;
      r.method = "GET";
      r.query = {{"uploads", ""}, {"prefix", root}, {"delimiter", "/"}};
      if (!key_marker.empty()) r.query.emplace_back("key-marker", key_marker);
      if (!id_marker.empty()) r.query.emplace_back("upload-id-marker", id_marker);
      r.max_response = 16 << 20;
      Response resp = Do(r, what);
      if (resp.status == 501 || resp.status == 405 ||
          (resp.status / 100 == 4 && resp.body.find("NotImplemented") != std::string::npos) ||
          (resp.status == 200 && resp.body.find("<ListMultipartUploadsResult") == std::string::npos)) {
        throw Error(ErrorCode::kUnsupported, what + ": the server does not list multipart uploads (HTTP " +
                                                 std::to_string(resp.status) + ")");
      }
      if (resp.status != 200) Fail(resp, what, "LIST UPLOADS");
      for (std::string_view u : s3xml::FindAll(resp.body, "Upload")) {
        if (++entries > max_entries) {
          throw Error(ErrorCode::kDataLoss, what + ": LIST UPLOADS: more than " + std::to_string(max_entries) + " entries");
        }
        std::string key = s3xml::Find(u, "Key").value_or("");
        std::string id = s3xml::Find(u, "UploadId").value_or("");
        std::string initiated = s3xml::Find(u, "Initiated").value_or("");
        if (!key.starts_with(root) || id.empty()) continue;
        std::string name = key.substr(root.size());
        if (name.find('/') != std::string::npos || !IsValidName(name)) continue;
        int64_t t = ParseIso8601(initiated);
        if (t == 0 || t >= older_than_unix || !is_ours(name)) continue;
        stale.push_back({std::move(name), std::move(id), std::move(initiated)});
      }
      if (s3xml::Find(resp.body, "IsTruncated").value_or("false") != "true") break;
      std::string next_key = s3xml::Find(resp.body, "NextKeyMarker").value_or("");
      std::string next_id = s3xml::Find(resp.body, "NextUploadIdMarker").value_or("");
      if ((next_key.empty() && next_id.empty()) || (next_key == key_marker && next_id == id_marker)) {
        throw Error(ErrorCode::kDataLoss, what + ": LIST UPLOADS: a truncated page made no progress");
      }
      key_marker = std::move(next_key);
      id_marker = std::move(next_id);
    }
    std::vector<std::string> aborted;
    for (const auto& u : stale) {
      Request abort;
      abort.method = "DELETE";
      abort.key = Key(u.name);
      abort.query = {{"uploadId", u.id}};
      Response resp = Do(abort, Url(u.name));
      if (resp.status != 204 && resp.status != 200 && resp.status != 404) Fail(resp, Url(u.name), "ABORT UPLOAD");
      aborted.push_back(u.name + " (upload " + u.id + ", initiated " + u.initiated + ")");
    }
    return aborted;
  }

  void Remove(const std::string& name) override {
    ValidateName(Describe(), name, /*allow_temp=*/true);
    Request r;
    r.method = "DELETE";
    r.key = Key(name);
    Response resp = Do(r, Url(name));
    if (resp.status == 200 || resp.status == 204) return;
    if (resp.status == 404 && resp.body.find("NoSuchBucket") == std::string::npos) return;
    Fail(resp, Url(name), "DELETE");
  }

  // --- used by the Sink and Source

  std::string Key(const std::string& name) const {
    return prefix_.empty() ? name : prefix_ + "/" + name;
  }
  std::string Url(const std::string& name) const { return Describe() + "/" + name; }
  const StoreOptions& options() const { return opt_; }

  // Sends `r` with retries. Returns any final HTTP response (callers map statuses);
  // throws kUnavailable when retries are exhausted on 5xx/429/transport errors.
  Response Do(Request& r, const std::string& what) {
    std::string last;
    for (int attempt = 0;; ++attempt) {
      Response resp;
      httplib::Error rc = Once(r, &resp, &last);
      bool retry = false;
      if (rc != httplib::Error::Success) {
        if (resp.overflow) throw Error(ErrorCode::kDataLoss, what + ": " + r.method + ": " + last);
        if (rc == httplib::Error::Connection && !Resolves(HostOf(authority_))) {
          // Not worth retrying; with virtual-hosted addressing the bucket is part of the name.
          throw Error(ErrorCode::kUnavailable,
                      what + ": " + r.method + ": could not resolve host " + HostOf(authority_) +
                          (path_style_ ? "" : " (the bucket is part of the host name in virtual-hosted addressing: "
                                              "for S3-compatible servers try --s3-path-style)"));
        }
        if (!Retryable(rc)) {
          throw Error(ErrorCode::kUnavailable, what + ": " + r.method + ": " + last);
        }
        retry = true;
      } else if ((resp.status >= 500 && resp.status != 501) || resp.status == 429) {  // 501: never will
        last = "HTTP " + std::to_string(resp.status) + S3Detail(resp);
        retry = true;
      } else {
        return resp;
      }
      if (!retry || attempt >= opt_.max_retries) {
        throw Error(ErrorCode::kUnavailable, what + ": " + r.method + ": " + last + " (after " +
                                                 std::to_string(attempt + 1) + " attempts)");
      }
      Backoff(attempt);
    }
  }

  [[noreturn]] void Fail(const Response& resp, const std::string& what,
                         const std::string& op) const {
    std::string code = s3xml::Find(resp.body, "Code").value_or("");
    std::string msg = what + ": " + op + ": HTTP " + std::to_string(resp.status) + S3Detail(resp);
    if (code == "NoSuchBucket") {
      throw Error(ErrorCode::kNotFound, "bucket " + bucket_ + " does not exist (" + msg + ")");
    }
    switch (resp.status) {
      case 403: throw Error(ErrorCode::kPermissionDenied, msg);
      case 401: throw Error(ErrorCode::kUnauthenticated, msg);
      case 404: throw Error(ErrorCode::kNotFound, what + ": not found");
      case 400: throw Error(ErrorCode::kInvalidArgument, msg);
      default: throw Error(ErrorCode::kUnavailable, msg);
    }
  }

 private:
  // ListObjectsV2 under root + `prefix`, every page, bounded: more than max_list_entries
  // entries seen (Contents and CommonPrefixes, valid or not), a truncated page without a
  // new continuation token (missing or seen before), or a truncated page that does not
  // move past the previous one (S3 lists in ascending key order) is kDataLoss. With
  // `delimited`, one level only (delimiter "/"; CommonPrefixes are ignored). Keys that
  // are not valid object names are skipped; temp names unless include_temp.
  std::vector<ObjectInfo> ListPages(const std::string& prefix, bool delimited,
                                    bool include_temp) {
    const std::string root = prefix_.empty() ? "" : prefix_ + "/";
    const size_t max_entries = opt_.max_list_entries == 0 ? kMaxListEntries
                                                          : opt_.max_list_entries;
    const std::string what = Describe() + (delimited && !prefix.empty() ? "/" + prefix : "");
    auto fail = [&](const std::string& why) {
      throw Error(ErrorCode::kDataLoss, what + ": LIST: " + why);
    };
    std::vector<ObjectInfo> out;
    std::unordered_set<size_t> tokens_seen;  // hashes: memory stays small per page
    std::string token;
    std::optional<std::string> last_key;  // the greatest key of the previous page
    size_t entries = 0;
    for (;;) {
      Request r;
      r.method = "GET";
      r.query = {{"list-type", "2"}, {"prefix", root + prefix}};
      if (delimited) r.query.emplace_back("delimiter", "/");
      if (!token.empty()) r.query.emplace_back("continuation-token", token);
      r.max_response = 16 << 20;
      Response resp = Do(r, what);
      if (resp.status != 200) Fail(resp, what, "LIST");
      if (resp.body.find("<ListBucketResult") == std::string::npos) {
        fail("response is not a ListBucketResult");
      }
      std::optional<std::string> page_max;
      auto saw = [&](const std::string& key) {
        if (++entries > max_entries) {
          fail("more than " + std::to_string(max_entries) +
               " entries; refusing an unbounded listing of the repository");
        }
        if (!page_max || key > *page_max) page_max = key;
      };
      for (std::string_view c : s3xml::FindAll(resp.body, "Contents")) {
        std::string key = s3xml::Find(c, "Key").value_or("");
        saw(key);
        if (!key.starts_with(root)) continue;
        std::string name = key.substr(root.size());
        if (!name.starts_with(prefix)) continue;
        if (delimited && name.find('/', prefix.size()) != std::string::npos) continue;
        if (!IsValidName(name, /*allow_temp=*/true)) continue;
        if (!include_temp && IsTempName(name)) continue;
        ObjectInfo info;
        info.name = std::move(name);
        info.size = ParseU64(s3xml::Find(c, "Size").value_or(""), what);
        info.mtime_unix = ParseIso8601(s3xml::Find(c, "LastModified").value_or(""));
        out.push_back(std::move(info));
      }
      for (std::string_view c : s3xml::FindAll(resp.body, "CommonPrefixes")) {
        saw(s3xml::Find(c, "Prefix").value_or(""));  // counted, never listed
      }
      if (s3xml::Find(resp.body, "IsTruncated").value_or("false") != "true") break;
      if (!page_max || (last_key && *page_max <= *last_key)) {
        fail("a truncated page made no progress (the server's listing does not end)");
      }
      last_key = std::move(page_max);
      std::string next = s3xml::Find(resp.body, "NextContinuationToken").value_or("");
      if (next.empty()) fail("truncated listing without a continuation token");
      if (!tokens_seen.insert(std::hash<std::string>{}(next)).second) {
        fail("continuation token repeated (the server's listing does not end)");
      }
      token = std::move(next);
    }
    std::sort(out.begin(), out.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.name < b.name; });
    for (size_t i = 1; i < out.size(); ++i) {
      if (out[i].name == out[i - 1].name) fail("\"" + out[i].name + "\" listed twice");
    }
    return out;
  }

  static std::string S3Detail(const Response& resp) {
    std::string code = s3xml::Find(resp.body, "Code").value_or("");
    std::string m = s3xml::Find(resp.body, "Message").value_or("");
    std::string out;
    if (!code.empty()) out += " " + code;
    if (!m.empty()) out += ": " + m;
    for (char& c : out) {
      if (c == '\n' || c == '\r') c = ' ';  // one-line errors
    }
    return out.substr(0, 300);
  }

  void Backoff(int attempt) const {
    thread_local std::mt19937 rng{std::random_device{}()};
    double d = opt_.retry_base_ms * double(1ull << std::min(attempt, 20));
    d = std::min(d, 10000.0);
    d *= std::uniform_real_distribution<double>(0.5, 1.0)(rng);
    std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<int64_t>(d)));
  }

  // Connections: one httplib client (one kept-alive connection) per request in flight,
  // pooled; a client whose request failed is dropped with its connection.
  std::unique_ptr<httplib::Client> Acquire() {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
    }
    auto c = std::make_unique<httplib::Client>(scheme_ + "://" + authority_);
    if (!c->is_valid()) throw Error(ErrorCode::kInvalidArgument, "S3 endpoint " + scheme_ + "://" + authority_ + ": not usable");
    c->set_keep_alive(true);
    c->set_url_encode(false);  // the path and query are encoded (and signed) as sent
    c->set_decompress(false);  // objects are bytes, whatever Content-Encoding says
    c->set_follow_location(false);
    c->set_tcp_nodelay(true);
    c->set_connection_timeout(10, 0);
    c->set_read_timeout(60, 0);  // stalled for a minute: give up (and retry)
    c->set_write_timeout(60, 0);
    c->set_socket_options([](socket_t sock) {
      int on = 1;
      setsockopt(sock, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    });
    const std::string host = HostOf(authority_);
    if (host.ends_with(".localhost")) c->set_hostname_addr_map({{host, "127.0.0.1"}});  // RFC 6761, as curl
    if (!opt_.ca_file.empty()) c->set_ca_cert_path(opt_.ca_file);
    if (opt_.insecure_skip_tls_verify) c->enable_server_certificate_verification(false);
    return c;
  }
  void Release(std::unique_ptr<httplib::Client> c) {
    std::lock_guard<std::mutex> l(mu_);
    idle_.push_back(std::move(c));
  }

  httplib::Error Once(const Request& r, Response* resp, std::string* err) {
    std::string path = path_style_ ? "/" + bucket_ : "";
    if (!r.key.empty()) path += "/" + UriEncode(r.key, true);
    if (path.empty()) path = "/";
    SigV4Request sr;
    sr.method = r.method;
    sr.path = path;
    sr.query = r.query;
    sr.payload_hash = !r.payload_hash.empty() ? r.payload_hash
                      : r.body_len == 0         ? std::string(kEmptySha256)
                                                : HexSha256(r.body, r.body_len);
    const std::string amz_date = AmzDateNow();
    sr.headers = r.headers;
    sr.headers.emplace_back("host", authority_);
    sr.headers.emplace_back("x-amz-date", amz_date);
    sr.headers.emplace_back("x-amz-content-sha256", sr.payload_hash);
    if (!creds_.session_token.empty()) {
      sr.headers.emplace_back("x-amz-security-token", creds_.session_token);
    }
    std::string auth = Authorization(sr, creds_, amz_date, opt_.region, "s3");

    httplib::Request req;
    req.method = r.method;
    std::string query = CanonicalQuery(r.query);
    req.path = path + (query.empty() ? "" : "?" + query);
    for (const auto& [k, v] : sr.headers) req.headers.emplace(k == "host" ? "Host" : k, v);
    req.headers.emplace("Authorization", auth);
    req.headers.emplace("User-Agent", "etcdsafe");
    if (r.body != nullptr || r.method == "PUT" || r.method == "POST") {
      req.headers.emplace("Content-Type", "application/octet-stream");
      // The body goes out from the caller's buffer, not a copy (parts are part_size each).
      // (httplib sends Content-Length: 0 for a PUT or POST without one.)
      if (r.body_len != 0) {
        const char* body = reinterpret_cast<const char*>(r.body);
        req.content_length_ = r.body_len;
        req.content_provider_ = [body](size_t offset, size_t length, httplib::DataSink& sink) {
          return sink.write(body + offset, length);
        };
      }
    }
    // Status and headers first, then the body under its cap (a 2xx may have a smaller one).
    size_t cap = r.max_response;
    req.response_handler = [&](const httplib::Response& h) {
      if (h.status >= 200 && h.status < 300 && r.max_ok_body != 0) cap = r.max_ok_body;
      return true;
    };
    req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      if (resp->body.size() + n > cap) {
        resp->overflow = true;
        return false;
      }
      resp->body.append(data, n);
      return true;
    };

    std::unique_ptr<httplib::Client> c = Acquire();
    httplib::Response res;
    httplib::Error rc = httplib::Error::Success;
    const bool ok = c->send(req, res, rc);
    if (ok && rc == httplib::Error::Success) {
      resp->status = res.status;
      for (const auto& [k, v] : res.headers) {
        std::string name = k;
        for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        resp->headers[name] = v;
      }
      Release(std::move(c));
      return rc;
    }
    if (rc == httplib::Error::Success) rc = httplib::Error::Unknown;
    // A broken connection must not be reused: the client goes with it.
    if (resp->overflow) {
      *err = "response larger than " + std::to_string(cap) + " bytes";
    } else {
      *err = HttpErrorText(rc) + " (" + scheme_ + "://" + authority_ + ")";
    }
    return rc;
  }

  std::string bucket_, prefix_;
  bool path_style_ = false;
  StoreOptions opt_;
  SigV4Credentials creds_;
  std::string scheme_, authority_;
  std::mutex mu_;
  std::vector<std::unique_ptr<httplib::Client>> idle_;
};

// ---------------------------------------------------------------- writing

class S3Sink : public Sink {
 public:
  S3Sink(S3Store* store, std::string name)
      : store_(store), name_(std::move(name)), key_(store->Key(name_)), url_(store->Url(name_)) {
    part_size_ = store_->options().part_size;
    buf_.reserve(std::min<size_t>(part_size_, 1 << 20));
  }

  ~S3Sink() override {
    if (!closed_) Abandon();
  }

  void Write(const uint8_t* data, size_t n) override {
    if (closed_) throw Error(ErrorCode::kInternal, url_ + ": write after Close");
    while (n > 0) {
      size_t k = std::min(n, part_size_ - buf_.size());
      buf_.append(reinterpret_cast<const char*>(data), k);
      data += k;
      n -= k;
      if (buf_.size() == part_size_) HandOffPart();
    }
  }

  void Close() override {
    if (closed_) return;
    try {
      if (upload_id_.empty()) {
        Request r;
        r.method = "PUT";
        r.key = key_;
        r.body = reinterpret_cast<const uint8_t*>(buf_.data());
        r.body_len = buf_.size();
        Response resp = store_->Do(r, url_);
        if (resp.status != 200) store_->Fail(resp, url_, "PUT");
      } else {
        if (!buf_.empty()) HandOffPart();
        WaitAll();
        Complete();
      }
      closed_ = true;
      std::string().swap(buf_);
    } catch (...) {
      Abandon();
      closed_ = true;  // nothing left to clean up
      throw;
    }
  }

 private:
  void HandOffPart() {
    if (upload_id_.empty()) Start();
    std::unique_lock<std::mutex> l(mu_);
    if (error_) std::rethrow_exception(error_);
    const int part = static_cast<int>(etags_.size()) + 1;
    if (part > 10000) {
      throw Error(ErrorCode::kInvalidArgument,
                  url_ + ": object needs more than 10000 parts; raise the part size");
    }
    etags_.emplace_back();
    ++in_flight_;
    threads_.emplace_back([this, part, data = std::move(buf_)]() { UploadPart(part, data); });
    // Bounded memory: the new buffer plus the parts in flight stay <= parallel_parts.
    cv_.wait(l, [&] { return in_flight_ < store_->options().parallel_parts || error_; });
    if (error_) std::rethrow_exception(error_);
    buf_ = std::string();
    buf_.reserve(part_size_);
  }

  void UploadPart(int part, const std::string& data) {
    std::string etag;
    std::exception_ptr err;
    try {
      if (!cancel_) {
        Request r;
        r.method = "PUT";
        r.key = key_;
        r.query = {{"partNumber", std::to_string(part)}, {"uploadId", upload_id_}};
        r.body = reinterpret_cast<const uint8_t*>(data.data());
        r.body_len = data.size();
        Response resp = store_->Do(r, url_ + " part " + std::to_string(part));
        if (resp.status != 200) store_->Fail(resp, url_ + " part " + std::to_string(part), "PUT");
        etag = resp.Header("etag");
        if (etag.empty()) {
          throw Error(ErrorCode::kDataLoss,
                      url_ + " part " + std::to_string(part) + ": no ETag in the response");
        }
      }
    } catch (...) {
      err = std::current_exception();
    }
    std::lock_guard<std::mutex> l(mu_);
    etags_[static_cast<size_t>(part - 1)] = etag;
    if (err && !error_) error_ = err;
    --in_flight_;
    cv_.notify_all();
  }

  void Start() {
    Request r;
    r.method = "POST";
    r.key = key_;
    r.query = {{"uploads", ""}};
    Response resp = store_->Do(r, url_);
    if (resp.status != 200) store_->Fail(resp, url_, "CreateMultipartUpload");
    auto id = s3xml::Find(resp.body, "UploadId");
    if (!id || id->empty()) {
      throw Error(ErrorCode::kDataLoss, url_ + ": CreateMultipartUpload: no UploadId in response");
    }
    upload_id_ = *id;
    // A signal skips Abandon: the interrupt handler aborts the upload instead, so its
    // parts do not linger (billed) until a lifecycle rule removes them. One request, not
    // waiting for parts in flight.
    on_interrupt_.emplace([store = store_, key = key_, url = url_, id = upload_id_] {
      try {
        Request abort;
        abort.method = "DELETE";
        abort.key = key;
        abort.query = {{"uploadId", id}};
        store->Do(abort, url);
      } catch (...) {
      }
    });
  }

  void WaitAll() {
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return in_flight_ == 0; });
    }
    for (auto& t : threads_) t.join();
    threads_.clear();
    if (error_) std::rethrow_exception(error_);
  }

  void Complete() {
    std::string xml = "<CompleteMultipartUpload>";
    for (size_t i = 0; i < etags_.size(); ++i) {
      xml += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" +
             s3xml::Escape(etags_[i]) + "</ETag></Part>";
    }
    xml += "</CompleteMultipartUpload>";
    Request r;
    r.method = "POST";
    r.key = key_;
    r.query = {{"uploadId", upload_id_}};
    r.body = reinterpret_cast<const uint8_t*>(xml.data());
    r.body_len = xml.size();
    Response resp = store_->Do(r, url_);
    on_interrupt_.reset();  // completed (or failed: Abandon aborts)
    // S3 may answer 200 and still report an error in the body.
    if (resp.status != 200 || resp.body.find("<Error>") != std::string::npos) {
      if (resp.status == 200) resp.status = 500;
      store_->Fail(resp, url_, "CompleteMultipartUpload");
    }
  }

  // Stops uploading and aborts the multipart upload; never throws.
  void Abandon() {
    cancel_ = true;
    try {
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return in_flight_ == 0; });
      }
      for (auto& t : threads_) t.join();
      threads_.clear();
      if (!upload_id_.empty()) {
        Request r;
        r.method = "DELETE";
        r.key = key_;
        r.query = {{"uploadId", upload_id_}};
        on_interrupt_.reset();
        store_->Do(r, url_);
        upload_id_.clear();
      }
    } catch (...) {
      // Best effort: a bucket lifecycle rule should clean up uploads we could not abort.
    }
  }

  S3Store* store_;
  std::string name_, key_, url_;
  size_t part_size_ = 0;
  std::string buf_;
  std::string upload_id_;
  bool closed_ = false;
  std::atomic<bool> cancel_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  int in_flight_ = 0;
  std::vector<std::string> etags_;
  std::exception_ptr error_;
  std::vector<std::thread> threads_;
  std::optional<InterruptCleanup> on_interrupt_;  // while a multipart upload is open
};

// ---------------------------------------------------------------- reading

class S3Source : public Source {
 public:
  S3Source(S3Store* store, std::string name)
      : store_(store), key_(store->Key(name)), url_(store->Url(name)) {
    // HEAD first: a missing object fails in Open(), the size and ETag are known before
    // the first byte, and empty objects need no (Range-less) GET.
    Request r;
    r.method = "HEAD";
    r.key = key_;
    Response resp = store_->Do(r, url_);
    if (resp.status != 200) store_->Fail(resp, url_, "HEAD");
    size_ = ParseU64(resp.Header("content-length"), url_);
    etag_ = resp.Header("etag");
  }

  // From the HEAD's Content-Length; every GET is held to it.
  uint64_t size() const { return size_; }

  size_t Read(uint8_t* out, size_t n) override {
    if (pos_ == buf_.size()) {
      if (offset_ >= size_) return 0;
      Fetch();
      if (buf_.empty()) return 0;
    }
    size_t k = std::min(n, buf_.size() - pos_);
    std::memcpy(out, buf_.data() + pos_, k);
    pos_ += k;
    return k;
  }

 private:
  void Fetch() {
    // Never past the size the HEAD gave: a server cannot make us receive more.
    const size_t chunk =
        static_cast<size_t>(std::min<uint64_t>(store_->options().read_chunk, size_ - offset_));
    Request r;
    r.method = "GET";
    r.key = key_;
    r.headers.emplace_back("range", "bytes=" + std::to_string(offset_) + "-" +
                                        std::to_string(offset_ + chunk - 1));
    if (!etag_.empty()) r.headers.emplace_back("if-match", etag_);
    r.max_response = 64 << 10;  // error bodies
    r.max_ok_body = chunk;
    Response resp = store_->Do(r, url_);
    buf_.clear();
    pos_ = 0;
    if (resp.status == 412) {
      throw Error(ErrorCode::kDataLoss, url_ + ": object changed while it was being read");
    }
    if (resp.status == 206) {
      // "bytes a-b/total"
      std::string cr = resp.Header("content-range");
      size_t dash = cr.find('-'), slash = cr.find('/');
      if (!cr.starts_with("bytes ") || dash == std::string::npos || slash == std::string::npos ||
          dash > slash) {
        throw Error(ErrorCode::kDataLoss, url_ + ": GET: bad Content-Range \"" + cr + "\"");
      }
      uint64_t a = ParseU64(cr.substr(6, dash - 6), url_);
      uint64_t b = ParseU64(cr.substr(dash + 1, slash - dash - 1), url_);
      uint64_t total = ParseU64(cr.substr(slash + 1), url_);
      if (a != offset_ || b < a || b >= total || resp.body.size() != b - a + 1 ||
          total != size_) {
        throw Error(ErrorCode::kDataLoss, url_ + ": GET: short or mismatched range (" + cr +
                                              ", " + std::to_string(resp.body.size()) + " bytes)");
      }
    } else if (resp.status == 200 && offset_ == 0 && resp.body.size() == size_) {
      // The server ignored Range but the whole object fit in one chunk.
    } else if (resp.status == 200) {
      throw Error(ErrorCode::kDataLoss, url_ + ": GET: server ignored the Range header");
    } else {
      store_->Fail(resp, url_, "GET");
    }
    buf_ = std::move(resp.body);
    offset_ += buf_.size();
  }

  S3Store* store_;
  std::string key_, url_;
  std::string etag_;
  uint64_t offset_ = 0;
  uint64_t size_ = 0;
  std::string buf_;
  size_t pos_ = 0;
};

std::unique_ptr<Sink> S3Store::Create(const std::string& name) {
  ValidateName(Describe(), name);
  return std::make_unique<S3Sink>(this, name);
}

std::unique_ptr<Source> S3Store::Open(const std::string& name) {
  ValidateName(Describe(), name);
  return std::make_unique<S3Source>(this, name);
}

// Content-Length over the limit fails after the HEAD, before any GET; the GETs then
// receive at most the HEAD's size (S3Source caps every 2xx body at its range).
std::string S3Store::Get(const std::string& name, size_t limit) {
  ValidateName(Describe(), name);
  S3Source src(this, name);
  if (src.size() > limit) {
    throw Error(ErrorCode::kDataLoss, Url(name) + ": larger than " + std::to_string(limit) +
                                          " bytes (" + std::to_string(src.size()) + ")");
  }
  // Grows with what arrives (a caller's large limit is no reason to trust the HEAD).
  std::string out;
  out.reserve(static_cast<size_t>(std::min<uint64_t>(src.size(), 16 << 20)));
  uint8_t buf[64 << 10];
  while (size_t n = src.Read(buf, sizeof buf)) out.append(reinterpret_cast<char*>(buf), n);
  if (out.size() != src.size()) {
    throw Error(ErrorCode::kDataLoss, Url(name) + ": short read (" + std::to_string(out.size()) +
                                          " of " + std::to_string(src.size()) + " bytes)");
  }
  return out;
}

}  // namespace

SigV4Credentials ResolveCredentials(const StoreOptions& options) {
  if (!options.access_key.empty()) {
    return {options.access_key, options.secret_key, options.session_token};
  }
  std::string id = Env("AWS_ACCESS_KEY_ID"), secret = Env("AWS_SECRET_ACCESS_KEY");
  if (!id.empty() && !secret.empty()) return {id, secret, Env("AWS_SESSION_TOKEN")};
  std::string file = !options.credentials_file.empty() ? options.credentials_file : Env("AWS_SHARED_CREDENTIALS_FILE");
  if (file.empty() && !Env("HOME").empty()) file = Env("HOME") + "/.aws/credentials";
  std::string profile = !options.profile.empty() ? options.profile : Env("AWS_PROFILE");
  if (profile.empty()) profile = "default";
  SigV4Credentials c;
  std::ifstream in(file);
  std::string line, section;
  while (in && std::getline(in, line)) {
    std::string t = Trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[' && t.back() == ']') {
      section = Trim(t.substr(1, t.size() - 2));
      continue;
    }
    if (section != profile) continue;
    size_t eq = t.find('=');
    if (eq == std::string::npos) continue;
    std::string k = Trim(t.substr(0, eq)), v = Trim(t.substr(eq + 1));
    if (k == "aws_access_key_id") c.access_key = v;
    if (k == "aws_secret_access_key") c.secret_key = v;
    if (k == "aws_session_token") c.session_token = v;
  }
  if (c.access_key.empty() || c.secret_key.empty()) {
    throw Error(ErrorCode::kUnauthenticated,
                "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add "
                "profile \"" + profile + "\" to " + (file.empty() ? "~/.aws/credentials" : file));
  }
  return c;
}

std::unique_ptr<Store> NewS3Store(const std::string& url, const StoreOptions& options) {
  std::string rest = url.substr(5);  // after "s3://"
  size_t slash = rest.find('/');
  std::string bucket = rest.substr(0, slash);
  std::string prefix = slash == std::string::npos ? "" : rest.substr(slash + 1);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  bool ok = bucket.size() >= 3 && bucket.size() <= 63 &&
            bucket.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") == std::string::npos &&
            bucket.front() != '-' && bucket.front() != '.';
  if (!ok) {
    throw Error(ErrorCode::kInvalidArgument,
                "repository " + url + ": bad S3 bucket name \"" + bucket + "\"");
  }
  if (!prefix.empty()) ValidateName(url, prefix);
  return std::make_unique<S3Store>(bucket, prefix, options, ResolveCredentials(options));
}

}  // namespace etcdsafe::store
