// AWS Signature Version 4 for S3 requests (header-based auth, AWS4-HMAC-SHA256).
//
// Hand-written because Debian packages no AWS/S3 SDK, and SigV4 is small: a canonical
// request, a string to sign and a 4-step HMAC-SHA256 key derivation (OpenSSL). It is
// checked against AWS's published examples and, differentially, against botocore.
//
// Contract: the caller builds the request it will send (method, already URI-encoded
// path, raw query parameters, every header it wants signed — including host,
// x-amz-date and x-amz-content-sha256) and gets back the Authorization header value.
// S3 flavour: the path is used as given (encoded once), never normalised or re-encoded.
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace etcdsafe::store {

struct SigV4Credentials {
  std::string access_key;
  std::string secret_key;
  std::string session_token;  // sent as x-amz-security-token when set
};

struct SigV4Request {
  std::string method;  // "GET", "PUT", ...
  std::string path;    // URI-encoded (UriEncode(..., keep_slash=true)), e.g. "/bucket/a%20b"
  std::vector<std::pair<std::string, std::string>> query;    // raw, not yet encoded
  std::vector<std::pair<std::string, std::string>> headers;  // every header to sign
  std::string payload_hash;  // hex sha256 of the body, or "UNSIGNED-PAYLOAD"
};

inline constexpr char kUnsignedPayload[] = "UNSIGNED-PAYLOAD";
inline constexpr char kEmptySha256[] =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// RFC 3986 percent-encoding as SigV4 wants it: everything but A-Za-z0-9-_.~ (and '/'
// when keep_slash) becomes %XX with upper-case hex, byte by byte (UTF-8 stays UTF-8).
std::string UriEncode(std::string_view s, bool keep_slash);
// "k1=v1&k2=v2" sorted by encoded key then value; also usable as the URL query.
std::string CanonicalQuery(const std::vector<std::pair<std::string, std::string>>& query);
std::string CanonicalRequest(const SigV4Request& req);
// amz_date: "20150830T123600Z".
std::string StringToSign(const std::string& canonical_request, const std::string& amz_date,
                         const std::string& region, const std::string& service);
std::string SigningKey(const std::string& secret, const std::string& date8,
                       const std::string& region, const std::string& service);
// "AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/s3/aws4_request,
//  SignedHeaders=host;x-amz-date, Signature=<hex>" (one line, ", " separators).
std::string Authorization(const SigV4Request& req, const SigV4Credentials& creds,
                          const std::string& amz_date, const std::string& region,
                          const std::string& service);

std::string HexSha256(std::string_view data);
std::string HexSha256(const uint8_t* data, size_t n);
// Current UTC time as "YYYYMMDDTHHMMSSZ".
std::string AmzDateNow();

}  // namespace etcdsafe::store
