// S3 behaviour that s3rver cannot show (it has no ListMultipartUploads/Abort and takes any
// addressing), proven against a scripted loopback server that records every request:
// stale multipart uploads of etcdsafe's names are aborted and nothing else is; the
// addressing style follows the AWS CLI (path style for an IP or localhost endpoint and for
// bucket names that cannot be a host label). And against the real s3rver: a server that
// does not list uploads is kUnsupported, not an error that stops prune.
#include <gtest/gtest.h>

#include <mutex>
#include <string>
#include <vector>

#include "base/error.h"
#include "fake_http_server.h"
#include "store/store.h"
#include "testutil/s3_server.h"

namespace etcdsafe::store {
namespace {

using testing::FakeHttpServer;
using testing::HttpRequest;
using testing::HttpResponse;

StoreOptions Options(const std::string& endpoint, bool path_style) {
  StoreOptions o;
  o.s3_endpoint = endpoint;
  o.path_style = path_style;
  o.access_key = "AK";
  o.secret_key = "SK";
  o.max_retries = 0;
  return o;
}

std::string Upload(const std::string& key, const std::string& id, const std::string& initiated) {
  return "<Upload><Key>" + key + "</Key><UploadId>" + id + "</UploadId><Initiated>" + initiated +
         "</Initiated></Upload>";
}

TEST(S3Uploads, OnlyStaleUploadsOfOurTopLevelNamesAreAborted) {
  std::mutex mu;
  std::vector<HttpRequest> seen;
  FakeHttpServer server([&](const HttpRequest& r) {
    std::lock_guard l(mu);
    seen.push_back(r);
    HttpResponse resp;
    if (r.method == "GET") {
      resp.body = "<?xml version=\"1.0\"?><ListMultipartUploadsResult><Bucket>bkt</Bucket>" +
                  Upload("p/etcd-snapshot-20261101-020000.db.zst", "old-ours", "2026-11-01T02:00:00.000Z") +
                  Upload("p/etcd-snapshot-20261130-020000.db.zst", "new-ours", "2026-11-30T02:00:00.000Z") +
                  Upload("p/users.db", "old-foreign", "2026-11-01T02:00:00.000Z") +
                  Upload("p/cluster-b/etcd-snapshot-20261101-020000.db.zst", "old-nested", "2026-11-01T02:00:00.000Z") +
                  "<IsTruncated>false</IsTruncated></ListMultipartUploadsResult>";
    } else {
      resp.status = 204;
    }
    return resp;
  });
  auto store = OpenStore("s3://bkt/p", Options(server.endpoint(), true));
  const int64_t nov29 = 1796004000;  // 2026-11-29T...: older than the 30th's upload
  std::vector<std::string> aborted = store->AbortStaleUploads(nov29, [](const std::string& name) {
    return name.rfind("etcd-snapshot-", 0) == 0;
  });
  ASSERT_EQ(aborted.size(), 1u);
  EXPECT_NE(aborted[0].find("etcd-snapshot-20261101-020000.db.zst (upload old-ours"), std::string::npos) << aborted[0];
  std::lock_guard l(mu);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_NE(seen[0].target.find("uploads"), std::string::npos) << seen[0].target;
  EXPECT_EQ(seen[0].Query("prefix"), "p/");
  EXPECT_EQ(seen[0].Query("delimiter"), "/");
  EXPECT_EQ(seen[1].method, "DELETE");
  EXPECT_EQ(seen[1].Query("uploadId"), "old-ours");
  EXPECT_EQ(seen[1].target.substr(0, seen[1].target.find('?')), "/bkt/p/etcd-snapshot-20261101-020000.db.zst");
}

TEST(S3Uploads, ListingThatDoesNotProgressIsDataLoss) {
  FakeHttpServer server([&](const HttpRequest&) {
    HttpResponse resp;
    resp.body = "<ListMultipartUploadsResult>" + Upload("p/etcd-snapshot-20261101-020000.db", "u", "2020-01-01T00:00:00Z") +
                "<IsTruncated>true</IsTruncated><NextKeyMarker>k</NextKeyMarker><NextUploadIdMarker>u</NextUploadIdMarker>"
                "</ListMultipartUploadsResult>";
    return resp;
  });
  auto store = OpenStore("s3://bkt/p", Options(server.endpoint(), true));
  try {
    store->AbortStaleUploads(2000000000, [](const std::string&) { return true; });
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDataLoss) << e.what();
  }
}

TEST(S3Uploads, S3rverDoesNotListUploadsAndSaysSo) {
  testutil::S3Server s3;
  s3.CreateBucket("bkt");
  StoreOptions o = Options(s3.endpoint(), true);
  o.access_key = o.secret_key = "S3RVER";
  auto store = OpenStore("s3://bkt/p", o);
  try {
    store->AbortStaleUploads(2000000000, [](const std::string&) { return true; });
    FAIL() << "s3rver listed uploads: this test's premise changed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported) << e.what();
  }
}

// The AWS CLI's choice: an IP-address or localhost endpoint, or a bucket that is not a DNS
// label, gets path-style requests even without --s3-path-style; a DNS name keeps
// virtual-hosted addressing (checked through the Host header).
TEST(S3Uploads, AddressingStyleFollowsTheAwsCli) {
  std::mutex mu;
  std::vector<HttpRequest> seen;
  FakeHttpServer server([&](const HttpRequest& r) {
    std::lock_guard l(mu);
    seen.push_back(r);
    HttpResponse resp;
    resp.status = 404;
    resp.body = "<Error><Code>NoSuchKey</Code></Error>";
    return resp;
  });
  const std::string port = server.endpoint().substr(server.endpoint().rfind(':') + 1);
  struct Case {
    std::string endpoint, bucket, want_path_prefix, want_host_prefix;
  };
  std::vector<Case> cases = {
      {"http://127.0.0.1:" + port, "bkt", "/bkt/x", "127.0.0.1"},
      {"http://localhost:" + port, "bkt", "/bkt/x", "localhost"},
      {"http://s3.localhost:" + port, "my.bucket", "/my.bucket/x", "s3.localhost"},
      {"http://s3.localhost:" + port, "bkt", "/x", "bkt.s3.localhost"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.endpoint + " " + c.bucket);
    auto store = OpenStore("s3://" + c.bucket, Options(c.endpoint, false));
    EXPECT_FALSE(store->Stat("x").has_value());
    std::lock_guard l(mu);
    ASSERT_FALSE(seen.empty());
    const HttpRequest& r = seen.back();
    EXPECT_EQ(r.target.substr(0, r.target.find('?')), c.want_path_prefix);
    std::string head = r.head;
    for (char& ch : head) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    std::string want_host = "host: " + c.want_host_prefix;
    for (char& ch : want_host) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    EXPECT_NE(head.find(want_host), std::string::npos) << r.head;
  }
}

}  // namespace
}  // namespace etcdsafe::store
