// SigV4 signer: AWS's published examples (SigV4 test suite "get-vanilla" family and the
// S3 SigV4 documentation examples), plus a differential test against botocore.
#include "store/sigv4.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "testutil/temp_dir.h"

namespace etcdsafe::store {
namespace {

const SigV4Credentials kSuiteCreds{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", ""};
constexpr char kSuiteDate[] = "20150830T123600Z";

std::string SuiteAuth(const std::string& method, const std::string& path,
                      std::vector<std::pair<std::string, std::string>> query) {
  SigV4Request r;
  r.method = method;
  r.path = path;
  r.query = std::move(query);
  r.headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", kSuiteDate}};
  r.payload_hash = kEmptySha256;
  return Authorization(r, kSuiteCreds, kSuiteDate, "us-east-1", "service");
}

std::string SuiteExpected(const std::string& sig) {
  return "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
         "SignedHeaders=host;x-amz-date, Signature=" + sig;
}

TEST(SigV4, GetVanilla) {
  SigV4Request r;
  r.method = "GET";
  r.path = "/";
  r.headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", kSuiteDate}};
  r.payload_hash = kEmptySha256;
  EXPECT_EQ(CanonicalRequest(r),
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
            "host;x-amz-date\n" + std::string(kEmptySha256));
  EXPECT_EQ(StringToSign(CanonicalRequest(r), kSuiteDate, "us-east-1", "service"),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  EXPECT_EQ(SuiteAuth("GET", "/", {}),
            SuiteExpected("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
}

TEST(SigV4, GetVanillaQueryOrderKeyCase) {
  EXPECT_EQ(SuiteAuth("GET", "/", {{"Param2", "value2"}, {"Param1", "value1"}}),
            SuiteExpected("b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"));
}

TEST(SigV4, GetVanillaEmptyQueryKey) {
  EXPECT_EQ(SuiteAuth("GET", "/", {{"Param1", "value1"}}),
            SuiteExpected("a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"));
}

TEST(SigV4, GetVanillaQueryUnreserved) {
  const std::string u = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  EXPECT_EQ(SuiteAuth("GET", "/", {{u, u}}),
            SuiteExpected("9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"));
}

TEST(SigV4, GetVanillaUtf8Query) {
  EXPECT_EQ(SuiteAuth("GET", "/", {{"\xe1\x88\xb4", "bar"}}),
            SuiteExpected("2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"));
}

TEST(SigV4, PostVanilla) {
  EXPECT_EQ(SuiteAuth("POST", "/", {}),
            SuiteExpected("5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"));
}

TEST(SigV4, SigningKeyFromDocs) {
  // "Deriving the signing key" example in the AWS General Reference (IAM, 20120215).
  std::string k = SigningKey("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1",
                             "iam");
  std::string hex;
  for (unsigned char c : k) {
    hex += "0123456789abcdef"[c >> 4];
    hex += "0123456789abcdef"[c & 15];
  }
  EXPECT_EQ(hex, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

// S3 documentation, "Signature calculation: transfer payload in a single chunk".
const SigV4Credentials kS3Creds{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                                ""};
constexpr char kS3Date[] = "20130524T000000Z";

TEST(SigV4, S3GetObjectWithRange) {
  SigV4Request r;
  r.method = "GET";
  r.path = "/" + UriEncode("test.txt", true);
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
               {"Range", "bytes=0-9"},
               {"x-amz-content-sha256", kEmptySha256},
               {"x-amz-date", kS3Date}};
  r.payload_hash = kEmptySha256;
  EXPECT_EQ(CanonicalRequest(r),
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
            "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Authorization(r, kS3Creds, kS3Date, "us-east-1", "s3"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(SigV4, S3PutObject) {
  const std::string body = "Welcome to Amazon S3.";
  EXPECT_EQ(HexSha256(body), "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  SigV4Request r;
  r.method = "PUT";
  r.path = "/" + UriEncode("test$file.text", true);
  EXPECT_EQ(r.path, "/test%24file.text");
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
               {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
               {"x-amz-date", kS3Date},
               {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
               {"x-amz-content-sha256", HexSha256(body)}};
  r.payload_hash = HexSha256(body);
  EXPECT_EQ(Authorization(r, kS3Creds, kS3Date, "us-east-1", "s3"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, "
            "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

SigV4Request S3BucketGet(std::vector<std::pair<std::string, std::string>> query) {
  SigV4Request r;
  r.method = "GET";
  r.path = "/";
  r.query = std::move(query);
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
               {"x-amz-content-sha256", kEmptySha256},
               {"x-amz-date", kS3Date}};
  r.payload_hash = kEmptySha256;
  return r;
}

TEST(SigV4, S3GetBucketLifecycle) {
  EXPECT_EQ(Authorization(S3BucketGet({{"lifecycle", ""}}), kS3Creds, kS3Date, "us-east-1", "s3"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
            "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST(SigV4, S3ListObjects) {
  EXPECT_EQ(Authorization(S3BucketGet({{"max-keys", "2"}, {"prefix", "J"}}), kS3Creds, kS3Date,
                          "us-east-1", "s3"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
            "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(SigV4, UriEncodeAndHeaderTrimming) {
  EXPECT_EQ(UriEncode("a b/c+d%e~f_g.h-i*\xc3\xa9", true), "a%20b/c%2Bd%25e~f_g.h-i%2A%C3%A9");
  EXPECT_EQ(UriEncode("a/b", false), "a%2Fb");
  EXPECT_EQ(CanonicalQuery({{"b", "2"}, {"a", "x y"}, {"a", "1"}}), "a=1&a=x%20y&b=2");
  SigV4Request r;
  r.method = "GET";
  r.path = "/";
  r.headers = {{"My-Header1", "  value1  with   spaces "}, {"my-header1", "second"}};
  r.payload_hash = kEmptySha256;
  EXPECT_EQ(CanonicalRequest(r), "GET\n/\n\nmy-header1:value1 with spaces,second\n\nmy-header1\n" +
                                     std::string(kEmptySha256));
}

// Differential: random S3 requests signed by us and by Debian's botocore (S3SigV4Auth,
// the signer inside /usr/bin/aws) must give byte-identical Authorization headers.
TEST(SigV4, MatchesBotocore) {
  testutil::TempDir tmp;
  std::mt19937 rng(20240601);
  auto pick = [&](const std::vector<std::string>& v) { return v[rng() % v.size()]; };
  const std::vector<std::string> atoms = {
      "a", "Z", "0", " ", "+", "%", "!", "*", "'", "(", ")", "$", "&", "=", "@", ":", ",", "?",
      "#", "[", "]", ";", "~", "_", "-", ".", "\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac",
      "\xf0\x9f\x98\x80", "snap", "2024-06-01T00:00:00Z", "\"", "<", ">", "^", "|", "\\"};
  auto rand_text = [&](int max_atoms) {
    std::string s;
    int n = 1 + static_cast<int>(rng() % max_atoms);
    for (int i = 0; i < n; ++i) s += pick(atoms);
    return s;
  };
  const std::vector<std::string> methods = {"GET", "PUT", "POST", "DELETE", "HEAD"};
  const std::vector<std::string> header_names = {"Range", "If-Match", "Content-Type",
                                                 "x-amz-meta-Backup", "X-Amz-Storage-Class",
                                                 "x-amz-meta-etcd-rev", "Content-MD5"};
  struct Case {
    SigV4Request req;
    SigV4Credentials creds;
    std::string region, date, host, bucket, key;
    std::string ours;
  };
  std::vector<Case> cases;
  std::string lines;
  for (int i = 0; i < 300; ++i) {
    Case c;
    c.creds = {"AKID" + std::to_string(rng()), "secret/" + std::to_string(rng()) + "+x",
               (rng() % 3 == 0) ? "token" + std::to_string(rng()) : ""};
    c.region = pick({"us-east-1", "eu-west-3", "ap-southeast-2"});
    c.date = "2024" + std::string(rng() % 2 ? "0101" : "1231") + "T" +
             std::to_string(100000 + rng() % 100000).substr(0, 6) + "Z";
    c.host = "127.0.0.1:" + std::to_string(1024 + rng() % 60000);
    c.bucket = pick({"bucket", "my.bucket-1", "etcd-backups"});
    int segs = 1 + static_cast<int>(rng() % 3);
    for (int s = 0; s < segs; ++s) c.key += (s ? "/" : "") + rand_text(6);
    SigV4Request& r = c.req;
    r.method = pick(methods);
    r.path = "/" + c.bucket + "/" + UriEncode(c.key, true);
    int nq = static_cast<int>(rng() % 4);
    for (int q = 0; q < nq; ++q) r.query.emplace_back(rand_text(3), rng() % 4 ? rand_text(4) : "");
    r.payload_hash = rng() % 2 ? std::string(kEmptySha256) : HexSha256(rand_text(5));
    r.headers = {{"host", c.host}, {"x-amz-date", c.date}, {"x-amz-content-sha256", r.payload_hash}};
    if (!c.creds.session_token.empty()) r.headers.emplace_back("x-amz-security-token", c.creds.session_token);
    int nh = static_cast<int>(rng() % 3);
    std::vector<std::string> used;
    for (int h = 0; h < nh; ++h) {
      std::string name = pick(header_names);
      if (std::find(used.begin(), used.end(), name) != used.end()) continue;
      used.push_back(name);
      std::string value = std::string(rng() % 2 ? "  " : "") + "v  a\tl " + std::to_string(rng()) + (rng() % 2 ? " " : "");
      r.headers.emplace_back(name, value);
    }
    c.ours = Authorization(r, c.creds, c.date, c.region, "s3");
    nlohmann::json j;
    j["method"] = r.method;
    j["host"] = c.host;
    j["bucket"] = c.bucket;
    j["key"] = c.key;
    j["query"] = nlohmann::json::array();
    for (auto& [k, v] : r.query) j["query"].push_back({k, v});
    j["headers"] = nlohmann::json::object();
    for (size_t h = 3; h < r.headers.size(); ++h) {
      if (r.headers[h].first == "x-amz-security-token") continue;
      j["headers"][r.headers[h].first] = r.headers[h].second;
    }
    j["date"] = c.date;
    j["payload"] = r.payload_hash;
    j["ak"] = c.creds.access_key;
    j["sk"] = c.creds.secret_key;
    j["token"] = c.creds.session_token;
    j["region"] = c.region;
    j["path"] = r.path;
    lines += j.dump() + "\n";
    cases.push_back(std::move(c));
  }
  testutil::WriteFile(tmp.Sub("cases.jsonl"), lines);
  testutil::WriteFile(tmp.Sub("sign.py"), R"PY(
import json, sys
from urllib.parse import quote
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
for line in open(sys.argv[1], encoding='utf-8'):
    c = json.loads(line)
    path = '/' + c['bucket'] + '/' + quote(c['key'].encode('utf-8'), safe='/~')
    assert path == c['path'], (path, c['path'])
    req = AWSRequest(method=c['method'], url='http://' + c['host'] + path,
                     headers=dict(c['headers']), params=[tuple(p) for p in c['query']])
    auth = S3SigV4Auth(Credentials(c['ak'], c['sk'], c['token'] or None), 's3', c['region'])
    req.context['timestamp'] = c['date']
    req.headers['X-Amz-Date'] = c['date']
    req.headers['X-Amz-Content-SHA256'] = c['payload']
    if c['token']:
        req.headers['X-Amz-Security-Token'] = c['token']
    cr = auth.canonical_request(req)
    sig = auth.signature(auth.string_to_sign(req, cr), req)
    auth._inject_signature_to_request(req, sig)
    print(req.headers['Authorization'])
)PY");
  std::string out;
  // Debian's python3 and botocore (python3-botocore), not a pyenv python first on PATH.
  int rc = testutil::RunCommand("/usr/bin/python3 " + tmp.Sub("sign.py") + " " +
                                    tmp.Sub("cases.jsonl"), &out);
  ASSERT_EQ(rc, 0) << out;
  std::vector<std::string> theirs;
  size_t pos = 0;
  while (pos < out.size()) {
    size_t nl = out.find('\n', pos);
    theirs.push_back(out.substr(pos, nl - pos));
    pos = nl == std::string::npos ? out.size() : nl + 1;
  }
  ASSERT_EQ(theirs.size(), cases.size()) << out.substr(0, 2000);
  int mismatches = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    if (cases[i].ours != theirs[i] && ++mismatches <= 5) {
      ADD_FAILURE() << "case " << i << " key=" << cases[i].key << "\n  canonical:\n"
                    << CanonicalRequest(cases[i].req) << "\n  ours:   " << cases[i].ours
                    << "\n  botocore: " << theirs[i];
    }
  }
  EXPECT_EQ(mismatches, 0);
}

}  // namespace
}  // namespace etcdsafe::store
