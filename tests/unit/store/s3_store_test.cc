// s3:// specifics on a local s3rver: interoperability with /usr/bin/aws, missing bucket,
// a server killed mid-upload, and a fault-injecting loopback proxy for retries, 403s
// and multipart aborts.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <thread>

#include "base/error.h"
#include "base/file.h"
#include "store_test_util.h"
#include "testutil/temp_dir.h"
#include "testutil/tls_certs.h"

namespace etcdsafe::store {
namespace {

using testing::RandomData;
using testing::ReadAllOdd;

// A one-request-per-connection HTTP proxy on 127.0.0.1 in front of s3rver. `rule` sees
// the request head and the request's sequence number and picks what happens.
class FaultProxy {
 public:
  enum Action { kForward, kFail500, kDrop, kDeny403 };
  using Rule = std::function<Action(const std::string& head, int n)>;

  FaultProxy(int upstream_port, Rule rule) : upstream_(upstream_port), rule_(std::move(rule)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 64) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("proxy bind failed");
    }
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { Accept(); });
  }
  ~FaultProxy() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    acceptor_.join();
    for (auto& t : conns_) t.join();
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::string> heads() {
    std::lock_guard<std::mutex> l(mu_);
    return heads_;
  }

 private:
  void Accept() {
    for (;;) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (stop_) return;
        continue;
      }
      std::lock_guard<std::mutex> l(mu_);
      conns_.emplace_back([this, c] { Serve(c); });
    }
  }
  static bool SendAll(int fd, const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  void Serve(int c) {
    std::string req;
    char buf[65536];
    size_t head_end;
    while ((head_end = req.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) {
        ::close(c);
        return;
      }
      req.append(buf, static_cast<size_t>(n));
    }
    std::string head = req.substr(0, head_end + 4);
    size_t body_len = 0;
    std::string lower = head;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    size_t cl = lower.find("\r\ncontent-length:");
    if (cl != std::string::npos) body_len = std::stoul(head.substr(cl + 17));
    while (req.size() < head.size() + body_len) {
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      req.append(buf, static_cast<size_t>(n));
    }
    int seq;
    {
      std::lock_guard<std::mutex> l(mu_);
      seq = static_cast<int>(heads_.size());
      heads_.push_back(head.substr(0, head.find("\r\n")));
    }
    Action a = rule_(head, seq);
    if (a == kFail500 || a == kDeny403) {
      std::string body = a == kFail500
          ? "<Error><Code>InternalError</Code><Message>injected</Message></Error>"
          : "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
      SendAll(c, std::string(a == kFail500 ? "HTTP/1.1 500 Internal Server Error"
                                           : "HTTP/1.1 403 Forbidden") +
                     "\r\nContent-Type: application/xml\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
    } else if (a == kForward) {
      int u = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in ua{};
      ua.sin_family = AF_INET;
      ua.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ua.sin_port = htons(static_cast<uint16_t>(upstream_));
      if (::connect(u, reinterpret_cast<sockaddr*>(&ua), sizeof ua) == 0) {
        // One request per connection: ask upstream to close when done.
        std::string fwd = req;
        fwd.insert(head_end + 2, "Connection: close\r\n");
        if (SendAll(u, fwd)) {
          ssize_t n;
          while ((n = ::recv(u, buf, sizeof buf, 0)) > 0) {
            if (!SendAll(c, std::string(buf, static_cast<size_t>(n)))) break;
          }
        }
      }
      ::close(u);
    }
    // kDrop: close without a response.
    ::close(c);
  }

  int upstream_;
  Rule rule_;
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> conns_;
  std::vector<std::string> heads_;
};

ErrorCode CodeOf(const std::function<void()>& f, std::string* msg = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (msg) *msg = e.what();
    return e.code();
  }
  return ErrorCode::kInternal;
}

TEST(S3Store, InteroperatesWithAwsCli) {
  auto& s3 = testing::SharedS3();
  const std::string bucket = testing::NewBucket(s3);
  auto store = OpenStore("s3://" + bucket + "/p", testing::S3Options(s3.endpoint()));
  testutil::TempDir tmp;
  // Ours (multipart, 3 parts) → aws s3 cp.
  std::string data = RandomData((12u << 20) + 77, 1);
  store->Put("ours.bin", data);
  std::string out;
  ASSERT_EQ(s3.Aws("s3 cp s3://" + bucket + "/p/ours.bin " + tmp.Sub("dl"), &out), 0) << out;
  EXPECT_TRUE(testutil::ReadFile(tmp.Sub("dl")) == data);
  // aws s3 cp (its own multipart above 8 MiB) → ours.
  std::string theirs = RandomData((20u << 20) + 5, 2);
  testutil::WriteFile(tmp.Sub("up"), theirs);
  ASSERT_EQ(s3.Aws("s3 cp " + tmp.Sub("up") + " s3://" + bucket + "/p/theirs.bin", &out), 0) << out;
  auto src = store->Open("theirs.bin");
  EXPECT_TRUE(ReadAllOdd(*src) == theirs);
  auto names = store->List("");
  ASSERT_EQ(names.size(), 2u);
  EXPECT_EQ(names[0].name, "ours.bin");
  EXPECT_EQ(names[1].name, "theirs.bin");
}

// https endpoints: the CA given with ca_file is trusted (multipart upload, ranged reads,
// listing, and /usr/bin/aws reads what we wrote); without it, or with an unrelated CA,
// the request fails at once (no retries: a bad certificate does not fix itself) with
// curl's certificate error; insecure_skip_tls_verify accepts the server.
TEST(S3Store, HttpsEndpointTrustsOnlyTheGivenCa) {
  testutil::TempDir dir;
  testutil::TlsFiles tls = testutil::MakeTestCerts(dir.Sub("pki"));
  testutil::S3Server s3(dir.Sub("data"), tls);
  ASSERT_EQ(s3.endpoint().rfind("https://", 0), 0u);
  s3.CreateBucket("tls");
  auto o = testing::S3Options(s3.endpoint());
  o.ca_file = tls.ca;
  auto store = OpenStore("s3://tls/p", o);
  std::string data = RandomData((11u << 20) + 3, 9);
  store->Put("obj", data);
  EXPECT_TRUE(ReadAllOdd(*store->Open("obj")) == data);
  ASSERT_EQ(store->List("").size(), 1u);
  std::string out;
  ASSERT_EQ(s3.Aws("s3 cp s3://tls/p/obj " + dir.Sub("dl"), &out), 0) << out;
  EXPECT_TRUE(testutil::ReadFile(dir.Sub("dl")) == data);

  for (const std::string& ca : {std::string(), tls.other_ca}) {
    auto bad = testing::S3Options(s3.endpoint());
    bad.ca_file = ca;
    bad.max_retries = 3;
    auto untrusted = OpenStore("s3://tls/p", bad);
    std::string msg;
    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(CodeOf([&] { untrusted->Put("x", "y"); }, &msg), ErrorCode::kUnavailable) << ca;
    EXPECT_NE(msg.find("certificate"), std::string::npos) << msg;
    EXPECT_EQ(msg.find("attempts"), std::string::npos) << msg;  // not retried
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
    EXPECT_EQ(CodeOf([&] { untrusted->List(""); }, &msg), ErrorCode::kUnavailable);
  }
  auto insecure = testing::S3Options(s3.endpoint());
  insecure.insecure_skip_tls_verify = true;
  EXPECT_TRUE(ReadAllOdd(*OpenStore("s3://tls/p", insecure)->Open("obj")) == data);
}

// Virtual-hosted addressing (path_style off): requests go to <bucket>.s3.localhost, which
// curl resolves to loopback itself, through a recording proxy to s3rver, which maps the
// host back to the bucket. Every request names the bucket in Host, none in the path; what
// we write lands in the bucket as /usr/bin/aws sees it path-style, and reads back.
TEST(S3Store, VirtualHostedStyleAddressing) {
  auto s3 = testutil::S3Server::WithServiceEndpoint("localhost");
  s3->CreateBucket("vhost");
  std::mutex mu;
  std::vector<std::string> heads;
  FaultProxy proxy(s3->port(), [&](const std::string& head, int) {
    std::lock_guard lock(mu);
    heads.push_back(head);
    return FaultProxy::kForward;
  });
  const std::string port = proxy.endpoint().substr(proxy.endpoint().rfind(':') + 1);
  auto o = testing::S3Options("http://s3.localhost:" + port);
  o.path_style = false;
  auto store = OpenStore("s3://vhost/p", o);
  std::string data = RandomData((11u << 20) + 5, 4);  // multipart
  store->Put("obj", data);
  store->Put("small", "tiny");
  EXPECT_TRUE(ReadAllOdd(*store->Open("obj")) == data);
  auto names = store->List("");
  ASSERT_EQ(names.size(), 2u);
  EXPECT_EQ(names[0].name, "obj");
  std::string out;
  ASSERT_EQ(s3->Aws("s3 ls s3://vhost/p/", &out), 0) << out;
  EXPECT_NE(out.find(std::to_string(data.size()) + " obj"), std::string::npos) << out;
  EXPECT_NE(out.find("4 small"), std::string::npos) << out;
  std::lock_guard lock(mu);
  ASSERT_GE(heads.size(), 5u);
  for (const std::string& h : heads) {
    EXPECT_NE(h.find("\r\nHost: vhost.s3.localhost:" + port + "\r\n"), std::string::npos) << h;
    EXPECT_EQ(h.find(" /vhost/"), std::string::npos) << h;
  }
}

TEST(S3Store, MissingBucketIsNotFound) {
  auto& s3 = testing::SharedS3();
  auto store = OpenStore("s3://no-such-bucket/x", testing::S3Options(s3.endpoint()));
  std::string msg;
  EXPECT_EQ(CodeOf([&] { store->Put("a", "b"); }, &msg), ErrorCode::kNotFound);
  EXPECT_NE(msg.find("bucket no-such-bucket does not exist"), std::string::npos) << msg;
  EXPECT_EQ(CodeOf([&] { store->List(""); }, &msg), ErrorCode::kNotFound);
  EXPECT_NE(msg.find("bucket no-such-bucket does not exist"), std::string::npos) << msg;
  EXPECT_EQ(CodeOf([&] { store->Open("a"); }), ErrorCode::kNotFound);
}

TEST(S3Store, ConnectionRefusedIsUnavailable) {
  auto o = testing::S3Options("http://127.0.0.1:1");
  o.max_retries = 2;
  auto store = OpenStore("s3://bucket/x", o);
  std::string msg;
  EXPECT_EQ(CodeOf([&] { store->Put("a", "b"); }, &msg), ErrorCode::kUnavailable);
  EXPECT_NE(msg.find("after 3 attempts"), std::string::npos) << msg;
}

TEST(S3Store, ServerKilledMidUpload) {
  testutil::TempDir dir;
  testutil::S3Server s3(dir.Sub("data"));
  s3.CreateBucket("crash");
  auto o = testing::S3Options(s3.endpoint());
  o.max_retries = 2;
  auto store = OpenStore("s3://crash/r", o);
  std::string data = RandomData(11u << 20, 3);
  auto sink = store->Create("obj");
  sink->Write(AsBytes(std::string_view(data).substr(0, 6u << 20)));  // part 1 in flight
  s3.Kill();
  std::string msg;
  EXPECT_EQ(CodeOf([&] {
              sink->Write(AsBytes(std::string_view(data).substr(6u << 20)));
              sink->Close();
            }, &msg),
            ErrorCode::kUnavailable);
  EXPECT_NE(msg.find("s3://crash/r/obj"), std::string::npos) << msg;
  sink.reset();
  s3.Restart();
  EXPECT_FALSE(store->Stat("obj").has_value());
  EXPECT_TRUE(store->List("").empty());
}

TEST(S3Store, RetriesServerErrorsAndDroppedConnections) {
  auto& s3 = testing::SharedS3();
  const std::string bucket = testing::NewBucket(s3);
  // Every third request fails: 500, then a dropped connection, alternately.
  FaultProxy proxy(s3.port(), [](const std::string&, int n) {
    if (n % 3 != 0) return FaultProxy::kForward;
    return (n / 3) % 2 ? FaultProxy::kDrop : FaultProxy::kFail500;
  });
  auto store = OpenStore("s3://" + bucket + "/r", testing::S3Options(proxy.endpoint()));
  std::string data = RandomData((16u << 20) + 3, 4);
  store->Put("obj", data);  // multipart: create, 4 parts, complete
  auto src = store->Open("obj");
  EXPECT_TRUE(ReadAllOdd(*src) == data);
  EXPECT_EQ(store->List("").size(), 1u);
  store->Remove("obj");
  EXPECT_FALSE(store->Stat("obj").has_value());
  EXPECT_GT(proxy.heads().size(), 12u);
}

TEST(S3Store, PersistentServerErrorIsUnavailableAndAbortsUpload) {
  auto& s3 = testing::SharedS3();
  const std::string bucket = testing::NewBucket(s3);
  // Part 2 always fails.
  FaultProxy proxy(s3.port(), [](const std::string& head, int) {
    return head.find("partNumber=2&") != std::string::npos ? FaultProxy::kFail500
                                                           : FaultProxy::kForward;
  });
  auto o = testing::S3Options(proxy.endpoint());
  o.max_retries = 3;
  auto store = OpenStore("s3://" + bucket + "/r", o);
  std::string msg;
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(CodeOf([&] { store->Put("obj", RandomData(12u << 20, 5)); }, &msg),
            ErrorCode::kUnavailable);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_NE(msg.find("part 2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("HTTP 500 InternalError: injected (after 4 attempts)"), std::string::npos)
      << msg;
  // Backoff: 20+40+80 ms, each jittered to >= half.
  EXPECT_GE(took, std::chrono::milliseconds(70));
  int part2 = 0;
  bool aborted = false;
  for (const auto& h : proxy.heads()) {
    if (h.find("partNumber=2&") != std::string::npos) ++part2;
    if (h.starts_with("DELETE ") && h.find("uploadId=") != std::string::npos) aborted = true;
  }
  EXPECT_EQ(part2, 4);
  EXPECT_TRUE(aborted) << "no AbortMultipartUpload sent";
  EXPECT_TRUE(store->List("").empty());
}

TEST(S3Store, AbandonedSinkAbortsUpload) {
  auto& s3 = testing::SharedS3();
  const std::string bucket = testing::NewBucket(s3);
  FaultProxy proxy(s3.port(), [](const std::string&, int) { return FaultProxy::kForward; });
  auto store = OpenStore("s3://" + bucket + "/r", testing::S3Options(proxy.endpoint()));
  {
    auto sink = store->Create("obj");
    sink->Write(AsBytes(RandomData(11u << 20, 6)));
  }
  bool aborted = false;
  for (const auto& h : proxy.heads()) {
    if (h.starts_with("DELETE ") && h.find("uploadId=") != std::string::npos) aborted = true;
  }
  EXPECT_TRUE(aborted);
  EXPECT_TRUE(store->List("").empty());
}

// An interrupt (the CLI's signal thread runs RemovePendingCleanups) aborts a multipart
// upload that is still open, before and without the sink's own cleanup.
TEST(S3Store, InterruptAbortsAnOpenUpload) {
  auto& s3 = testing::SharedS3();
  const std::string bucket = testing::NewBucket(s3);
  FaultProxy proxy(s3.port(), [](const std::string&, int) { return FaultProxy::kForward; });
  auto store = OpenStore("s3://" + bucket + "/r", testing::S3Options(proxy.endpoint()));
  auto aborts = [&] {
    int n = 0;
    for (const auto& h : proxy.heads()) {
      if (h.starts_with("DELETE ") && h.find("uploadId=") != std::string::npos) n++;
    }
    return n;
  };
  auto sink = store->Create("obj");
  sink->Write(AsBytes(RandomData(11u << 20, 7)));  // multipart started, parts sent
  EXPECT_EQ(aborts(), 0);
  RemovePendingCleanups();
  EXPECT_EQ(aborts(), 1);
  sink.reset();
  // A completed upload leaves nothing for an interrupt to do.
  auto done = store->Create("done");
  done->Write(AsBytes(RandomData(11u << 20, 8)));
  done->Close();
  const int before = aborts();
  RemovePendingCleanups();
  EXPECT_EQ(aborts(), before);
  EXPECT_EQ(store->List("").size(), 1u);
}

TEST(S3Store, ForbiddenIsPermissionDenied) {
  auto& s3 = testing::SharedS3();
  FaultProxy proxy(s3.port(), [](const std::string&, int) { return FaultProxy::kDeny403; });
  auto store = OpenStore("s3://bucket/r", testing::S3Options(proxy.endpoint()));
  std::string msg;
  EXPECT_EQ(CodeOf([&] { store->Put("obj", "x"); }, &msg), ErrorCode::kPermissionDenied);
  EXPECT_EQ(msg, "s3://bucket/r/obj: PUT: HTTP 403 AccessDenied: Access Denied");
  EXPECT_EQ(CodeOf([&] { store->List(""); }, &msg), ErrorCode::kPermissionDenied);
  EXPECT_EQ(CodeOf([&] { store->Stat("obj"); }), ErrorCode::kPermissionDenied);
  EXPECT_EQ(proxy.heads().size(), 3u);  // 403 is not retried
}

// ListDir on s3rver: ListObjectsV2 with delimiter "/" under the repository's prefix;
// objects under sub-prefixes (a nested repository) are never returned, temp objects only
// when asked for, keys with control characters never (written here by /usr/bin/aws).
TEST(S3Store, ListDirUsesDelimiterAndSkipsWhatIsNotOurs) {
  auto& s3 = testing::SharedS3();
  const std::string bucket = testing::NewBucket(s3);
  FaultProxy proxy(s3.port(), [](const std::string&, int) { return FaultProxy::kForward; });
  auto store = OpenStore("s3://" + bucket + "/r", testing::S3Options(proxy.endpoint()));
  store->Put("etcd-1.db.zst", "data");
  store->Put("etcd-1.manifest.json", "{}");
  store->Put("cluster-b/etcd-2.db.zst", "nested repository");
  store->Put("cluster-b/locks/l.json", "{}");
  store->Put("locks/a.json", "{}");
  store->Put("locks/deeper/b.json", "{}");
  testutil::TempDir tmp;
  testutil::WriteFile(tmp.Sub("f"), "x");
  std::string out;
  ASSERT_EQ(s3.Aws("s3 cp " + tmp.Sub("f") + " s3://" + bucket +
                       "/r/etcd-3.db.zst.tmp-0123456789abcdef", &out), 0) << out;
  // The key holds an ESC byte (the shell's printf makes it; aws passes it on).
  const std::string esc_key = "\"r/$(printf 'esc\\033[31mred.db')\"";
  ASSERT_EQ(s3.Aws("s3 cp " + tmp.Sub("f") + " s3://" + bucket + "/" + esc_key, &out), 0) << out;
  ASSERT_EQ(s3.Aws("s3 cp " + tmp.Sub("f") + " s3://" + bucket + "/rx", &out), 0) << out;
  ASSERT_EQ(s3.Aws("s3api head-object --bucket " + bucket + " --key " + esc_key, &out), 0)
      << out;
  auto names = [](const std::vector<ObjectInfo>& v) {
    std::vector<std::string> n;
    for (const auto& o : v) n.push_back(o.name);
    return n;
  };
  EXPECT_EQ(names(store->ListDir("")),
            (std::vector<std::string>{"etcd-1.db.zst", "etcd-1.manifest.json"}));
  EXPECT_EQ(names(store->ListDir("", true)),
            (std::vector<std::string>{"etcd-1.db.zst", "etcd-1.manifest.json",
                                      "etcd-3.db.zst.tmp-0123456789abcdef"}));
  EXPECT_EQ(names(store->ListDir("locks/")), std::vector<std::string>{"locks/a.json"});
  EXPECT_EQ(names(store->ListDir("cluster-b/")),
            std::vector<std::string>{"cluster-b/etcd-2.db.zst"});
  for (const auto& n : names(store->List(""))) {
    EXPECT_EQ(n.find('\x1b'), std::string::npos) << n;
    EXPECT_FALSE(IsTempName(n)) << n;
  }
  // A listed temp can be removed (prune's sweep of what a killed run left).
  store->Remove("etcd-3.db.zst.tmp-0123456789abcdef");
  EXPECT_EQ(store->ListDir("", true).size(), 2u);
  int delimited = 0;
  for (const auto& h : proxy.heads()) {
    if (h.find("list-type=2") == std::string::npos) continue;
    if (h.find("delimiter=%2F") != std::string::npos) {
      ++delimited;
      EXPECT_TRUE(h.find("prefix=r%2F&") != std::string::npos ||
                  h.find("prefix=r%2Flocks%2F&") != std::string::npos ||
                  h.find("prefix=r%2Fcluster-b%2F&") != std::string::npos ||
                  h.find("prefix=r%2F ") != std::string::npos ||
                  h.find("prefix=r%2Flocks%2F ") != std::string::npos ||
                  h.find("prefix=r%2Fcluster-b%2F ") != std::string::npos)
          << h;
    }
  }
  EXPECT_EQ(delimited, 5);
}

// Get over its limit on s3rver: the HEAD's Content-Length decides, no GET is sent.
TEST(S3Store, GetOverTheLimitReadsNothing) {
  auto& s3 = testing::SharedS3();
  const std::string bucket = testing::NewBucket(s3);
  FaultProxy proxy(s3.port(), [](const std::string&, int) { return FaultProxy::kForward; });
  auto store = OpenStore("s3://" + bucket + "/r", testing::S3Options(proxy.endpoint()));
  store->Put("big.json", std::string(100000, 'x'));
  std::string msg;
  EXPECT_EQ(CodeOf([&] { store->Get("big.json", 99999); }, &msg), ErrorCode::kDataLoss);
  EXPECT_EQ(msg, "s3://" + bucket + "/r/big.json: larger than 99999 bytes (100000)");
  for (const auto& h : proxy.heads()) EXPECT_FALSE(h.starts_with("GET /" + bucket + "/r/big")) << h;
  EXPECT_EQ(store->Get("big.json", 100000).size(), 100000u);
}

// Manual: ./store_s3_test --gtest_also_run_disabled_tests --gtest_filter='*Throughput*'
TEST(S3Store, DISABLED_ThroughputVsAwsCli) {
  auto& s3 = testing::SharedS3();
  const std::string bucket = testing::NewBucket(s3);
  testutil::TempDir tmp;
  const size_t size = size_t{1} << 30;
  {
    std::string chunk = RandomData(16u << 20, 9);
    std::string all;
    FILE* f = std::fopen(tmp.Sub("big").c_str(), "wb");
    for (size_t i = 0; i < size / chunk.size(); ++i) std::fwrite(chunk.data(), 1, chunk.size(), f);
    std::fclose(f);
  }
  auto o = testing::S3Options(s3.endpoint());
  o.part_size = 16 << 20;
  auto store = OpenStore("s3://" + bucket, o);
  auto t0 = std::chrono::steady_clock::now();
  {
    FILE* f = std::fopen(tmp.Sub("big").c_str(), "rb");
    auto sink = store->Create("ours");
    std::string buf(1 << 20, '\0');
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) {
      sink->Write(reinterpret_cast<uint8_t*>(buf.data()), n);
    }
    std::fclose(f);
    sink->Close();
  }
  double ours = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  t0 = std::chrono::steady_clock::now();
  std::string out;
  ASSERT_EQ(s3.Aws("s3 cp " + tmp.Sub("big") + " s3://" + bucket + "/theirs", &out), 0) << out;
  double theirs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("1 GiB upload to s3rver: etcdsafe %.1f s (%.0f MiB/s), aws s3 cp %.1f s (%.0f MiB/s)\n",
              ours, 1024 / ours, theirs, 1024 / theirs);
  EXPECT_EQ(store->Stat("ours")->size, size);
  // Download: etcdsafe's ranged GETs (what restore --repo reads) vs aws s3 cp to a file.
  t0 = std::chrono::steady_clock::now();
  size_t got = 0;
  {
    auto src = store->Open("ours");
    std::string buf(1 << 20, '\0');
    while (size_t n = src->Read(reinterpret_cast<uint8_t*>(buf.data()), buf.size())) got += n;
  }
  ours = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(s3.Aws("s3 cp s3://" + bucket + "/theirs " + tmp.Sub("back"), &out), 0) << out;
  theirs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("1 GiB download from s3rver: etcdsafe %.1f s (%.0f MiB/s), aws s3 cp %.1f s (%.0f MiB/s)\n",
              ours, 1024 / ours, theirs, 1024 / theirs);
  EXPECT_EQ(got, size);
}

}  // namespace
}  // namespace etcdsafe::store
