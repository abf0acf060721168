// s3:// against a hostile or broken S3 endpoint (a scripted loopback server, see
// fake_http_server.h): LIST pages that never end (the same continuation token, ever-new
// tokens over the same keys, ever-new keys, empty pages, endless CommonPrefixes), keys
// that are not valid object names, and objects longer than the server said. Every case
// must end in seconds with kDataLoss naming the repository, within a bounded number of
// requests; the server's request budget turns a regression into a failure, not a hang.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>

#include "base/error.h"
#include "fake_http_server.h"
#include "store/store.h"

namespace etcdsafe::store {
namespace {

using testing::FakeHttpServer;
using testing::HttpRequest;
using testing::HttpResponse;
using Clock = std::chrono::steady_clock;

ErrorCode CodeOf(const std::function<void()>& f, std::string* msg = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (msg) *msg = e.what();
    return e.code();
  }
  return ErrorCode::kInternal;
}

std::vector<std::string> Names(const std::vector<ObjectInfo>& v) {
  std::vector<std::string> out;
  for (const auto& o : v) out.push_back(o.name);
  return out;
}

StoreOptions FakeOptions(const FakeHttpServer& server, size_t max_list_entries) {
  StoreOptions o;
  o.s3_endpoint = server.endpoint();
  o.path_style = true;
  o.access_key = "AK";
  o.secret_key = "SK";
  o.max_retries = 1;
  o.retry_base_ms = 1;
  o.max_list_entries = max_list_entries;
  return o;
}

// A ListBucketResult page. Keys are inserted as given (already XML-escaped).
struct Page {
  std::vector<std::string> keys;
  std::vector<std::string> prefixes;  // CommonPrefixes
  bool truncated = false;
  std::optional<std::string> next_token;

  HttpResponse Response() const {
    std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                    "<Name>fake</Name><Prefix>p/</Prefix><MaxKeys>1000</MaxKeys>";
    x += "<KeyCount>" + std::to_string(keys.size() + prefixes.size()) + "</KeyCount>";
    x += std::string("<IsTruncated>") + (truncated ? "true" : "false") + "</IsTruncated>";
    if (next_token) x += "<NextContinuationToken>" + *next_token + "</NextContinuationToken>";
    for (const auto& k : keys) {
      x += "<Contents><Key>" + k +
           "</Key><LastModified>2024-05-06T07:08:09.000Z</LastModified><ETag>&quot;e&quot;"
           "</ETag><Size>3</Size><StorageClass>STANDARD</StorageClass></Contents>";
    }
    for (const auto& p : prefixes) x += "<CommonPrefixes><Prefix>" + p + "</Prefix></CommonPrefixes>";
    x += "</ListBucketResult>";
    HttpResponse r;
    r.headers = {{"Content-Type", "application/xml"}};
    r.body = std::move(x);
    return r;
  }
};

std::vector<std::string> KeysOfPage(int page, int n = 1000) {
  std::vector<std::string> keys;
  char buf[64];
  for (int i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "p/k%06d-%04d", page, i);
    keys.emplace_back(buf);
  }
  return keys;
}

// Runs List("") and ListDir("") against a server built by `page_for(n)` (n: the
// 0-based request number within that listing); expects kDataLoss containing `want`.
void ExpectListingFails(const std::function<Page(int)>& page_for, size_t limit,
                        const std::string& want, int max_requests_per_listing) {
  for (bool dir : {false, true}) {
    SCOPED_TRACE(dir ? "ListDir" : "List");
    std::atomic<int> n{0};
    FakeHttpServer server([&](const HttpRequest&) { return page_for(n++).Response(); });
    auto store = OpenStore("s3://fake/p", FakeOptions(server, limit));
    std::string msg;
    auto start = Clock::now();
    ErrorCode code =
        CodeOf([&] { dir ? store->ListDir("") : store->List(""); }, &msg);
    EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
    EXPECT_EQ(code, ErrorCode::kDataLoss) << msg;
    EXPECT_EQ(msg.rfind("s3://fake/p: LIST: ", 0), 0u) << msg;
    EXPECT_NE(msg.find(want), std::string::npos) << msg;
    EXPECT_LE(server.requests(), max_requests_per_listing);
  }
}

// Same token on every page while the keys move on: a loop on the server's side.
TEST(S3Hostile, RepeatedContinuationTokenIsDataLoss) {
  ExpectListingFails(
      [](int n) { return Page{KeysOfPage(n), {}, true, "SAME"}; }, kMaxListEntries,
      "continuation token repeated", 2);
  // A cycle of two tokens is caught too.
  ExpectListingFails(
      [](int n) { return Page{KeysOfPage(n), {}, true, n % 2 ? "A" : "B"}; }, kMaxListEntries,
      "continuation token repeated", 3);
}

// Ever-new tokens over the same keys (old: looped up to a million pages, growing memory).
TEST(S3Hostile, PagesThatDoNotProgressAreDataLoss) {
  ExpectListingFails(
      [](int n) { return Page{KeysOfPage(0), {}, true, "t" + std::to_string(n)}; },
      kMaxListEntries, "a truncated page made no progress", 2);
  // Empty truncated pages.
  ExpectListingFails([](int n) { return Page{{}, {}, true, "t" + std::to_string(n)}; },
                     kMaxListEntries, "a truncated page made no progress", 1);
  // A page going backwards.
  ExpectListingFails(
      [](int n) { return Page{KeysOfPage(n == 0 ? 5 : 1), {}, true, "t" + std::to_string(n)}; },
      kMaxListEntries, "a truncated page made no progress", 2);
}

TEST(S3Hostile, TruncatedWithoutTokenIsDataLoss) {
  ExpectListingFails([](int n) { return Page{KeysOfPage(n), {}, true, std::nullopt}; },
                     kMaxListEntries, "truncated listing without a continuation token", 1);
  ExpectListingFails([](int n) { return Page{KeysOfPage(n), {}, true, ""}; }, kMaxListEntries,
                     "truncated listing without a continuation token", 1);
}

// Ever-new tokens and ever-new keys: only the entry bound stops it.
TEST(S3Hostile, EndlessListingStopsAtTheEntryBound) {
  ExpectListingFails(
      [](int n) { return Page{KeysOfPage(n), {}, true, "t" + std::to_string(n)}; }, 5000,
      "more than 5000 entries; refusing an unbounded listing of the repository", 6);
  // Endless CommonPrefixes (never listed, still counted).
  ExpectListingFails(
      [](int n) {
        Page p;
        for (int i = 0; i < 1000; ++i) p.prefixes.push_back("p/d" + std::to_string(n * 1000 + i + 1000000) + "/");
        p.truncated = true;
        p.next_token = "t" + std::to_string(n);
        return p;
      },
      5000, "more than 5000 entries", 6);
}

// The process's peak resident set (VmHWM), in KiB.
long PeakRssKiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmHWM:")) return std::stol(line.substr(6));
  }
  return -1;
}

// The same with the real default limit (kMaxListEntries = 1,000,000): bounded in time
// and memory, a thousand pages.
TEST(S3Hostile, EndlessListingAtTheDefaultLimit) {
  std::atomic<int> n{0};
  FakeHttpServer server(
      [&](const HttpRequest&) {
        int i = n++;
        return Page{KeysOfPage(i), {}, true, "t" + std::to_string(i)}.Response();
      },
      2000);
  StoreOptions o = FakeOptions(server, 0);  // 0: kMaxListEntries
  auto store = OpenStore("s3://fake/p", o);
  std::string msg;
  auto start = Clock::now();
  EXPECT_EQ(CodeOf([&] { store->List(""); }, &msg), ErrorCode::kDataLoss);
  auto took = std::chrono::duration<double>(Clock::now() - start).count();
  EXPECT_NE(msg.find("more than 1000000 entries"), std::string::npos) << msg;
  EXPECT_EQ(server.requests(), 1001);
  const long peak_kib = PeakRssKiB();
  std::printf("endless LIST at the default limit: %d pages, %.1f s, peak RSS %ld MiB\n",
              server.requests(), took, peak_kib / 1024);
  EXPECT_LT(took, 60);
  EXPECT_LT(peak_kib, 256 * 1024);  // a million entries held, nothing more
}

// Keys a listing must never return: outside the root, invalid names (empty segments,
// "..", control characters, which would reach the terminal), and temp names unless
// asked for. A one-level listing also drops deeper keys a server sent anyway.
TEST(S3Hostile, InvalidKeysAreSkipped) {
  std::vector<std::string> seen_queries;
  std::mutex mu;
  FakeHttpServer server([&](const HttpRequest& r) {
    {
      std::lock_guard<std::mutex> l(mu);
      seen_queries.push_back(r.Query("prefix") + "|" + r.Query("delimiter"));
    }
    return Page{{"other/x", "p", "p/", "p/good.db", "p/a//b", "p/../up", "p/./dot",
                 "p/esc&#27;[31mred", "p/nl&#10;forged", "p/tab&#9;x", "p/del&#127;x",
                 "p/x.db.tmp-0123456789abcdef", "p/dir/deep.db", "p/z.json"},
                {"p/dir/"},
                false,
                std::nullopt}
        .Response();
  });
  auto store = OpenStore("s3://fake/p", FakeOptions(server, kMaxListEntries));
  EXPECT_EQ(Names(store->List("")),
            (std::vector<std::string>{"dir/deep.db", "good.db", "z.json"}));
  EXPECT_EQ(Names(store->ListDir("")), (std::vector<std::string>{"good.db", "z.json"}));
  EXPECT_EQ(Names(store->ListDir("", true)),
            (std::vector<std::string>{"good.db", "x.db.tmp-0123456789abcdef", "z.json"}));
  auto infos = store->ListDir("");
  EXPECT_EQ(infos[0].size, 3u);
  EXPECT_EQ(infos[0].mtime_unix, 1714979289);
  EXPECT_TRUE(store->ListDir("locks/").empty());  // none of the keys is under p/locks/
  std::lock_guard<std::mutex> l(mu);
  EXPECT_EQ(seen_queries, (std::vector<std::string>{"p/|", "p/|/", "p/|/", "p/|/", "p/locks/|/"}));
}

// An object whose HEAD says it is larger than Get's limit: kDataLoss without a GET.
TEST(S3Hostile, GetOverTheLimitSendsNoGet) {
  FakeHttpServer server([&](const HttpRequest&) {
    HttpResponse r;
    r.headers = {{"ETag", "\"e\""}};
    r.content_length = 5u << 20;
    return r;  // HEAD: no body
  });
  auto store = OpenStore("s3://fake/p", FakeOptions(server, kMaxListEntries));
  std::string msg;
  EXPECT_EQ(CodeOf([&] { store->Get("m.json", 1000); }, &msg), ErrorCode::kDataLoss);
  EXPECT_EQ(msg, "s3://fake/p/m.json: larger than 1000 bytes (5242880)");
  EXPECT_EQ(server.lines(), std::vector<std::string>{"HEAD /fake/p/m.json"});
}

// A server that sends more than the object's size (HEAD: 10 bytes; the GET's body:
// 10 MiB): the read stops at the 10 bytes asked for, kDataLoss (old: buffered up to a
// whole read chunk, then reported the server unavailable).
TEST(S3Hostile, BodyLongerThanAskedForIsCutOff) {
  FakeHttpServer server([&](const HttpRequest& r) {
    HttpResponse resp;
    resp.headers = {{"ETag", "\"e\""}};
    if (r.method == "HEAD") {
      resp.content_length = 10;
    } else {
      resp.status = 206;
      resp.headers.emplace_back("Content-Range", "bytes 0-9/10");
      resp.body = std::string(10u << 20, 'z');
    }
    return resp;
  });
  auto store = OpenStore("s3://fake/p", FakeOptions(server, kMaxListEntries));
  std::string msg;
  EXPECT_EQ(CodeOf([&] { store->Get("m.json", 1000); }, &msg), ErrorCode::kDataLoss);
  EXPECT_NE(msg.find("response larger than 10 bytes"), std::string::npos) << msg;
  EXPECT_EQ(CodeOf([&] {
              auto src = store->Open("m.json");
              uint8_t buf[4096];
              while (src->Read(buf, sizeof buf) > 0) {
              }
            }, &msg),
            ErrorCode::kDataLoss);
  EXPECT_NE(msg.find("response larger than 10 bytes"), std::string::npos) << msg;
}

}  // namespace
}  // namespace etcdsafe::store
