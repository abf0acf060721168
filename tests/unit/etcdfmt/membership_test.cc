#include "etcdfmt/membership.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "etcdfmt/goformat.h"
#include "etcdfmt/urls.h"

namespace etcdsafe::etcdfmt {
namespace {

RestoreCluster Default() {
  return BuildRestoreCluster("default", "default=http://localhost:2380", "etcd-cluster",
                             "http://localhost:2380");
}

TEST(MembershipTest, DefaultIdsMatchGolden) {
  RestoreCluster c = Default();
  ASSERT_EQ(c.members.size(), 1u);
  EXPECT_EQ(c.members[0].id, 0x8e9e05c52164694dULL);
  EXPECT_EQ(c.members[0].id, 10276657743932975437ULL);
  EXPECT_EQ(c.cluster_id, 0xcdf818194e3a8c32ULL);
  EXPECT_EQ(c.local_id, 0x8e9e05c52164694dULL);
  EXPECT_EQ(c.local_name, "default");
  EXPECT_EQ(MemberJson(c.members[0]),
            R"({"id":10276657743932975437,"peerURLs":["http://localhost:2380"],"name":"default"})");
  EXPECT_EQ(MemberId({"http://localhost:2380"}, "etcd-cluster"), 0x8e9e05c52164694dULL);
  EXPECT_EQ(ClusterId({0x8e9e05c52164694dULL}), 0xcdf818194e3a8c32ULL);
}

TEST(MembershipTest, ThreeMembersMatchGolden) {
  RestoreCluster c = BuildRestoreCluster(
      "b", "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380,b=https://10.0.0.2:2381,c=http://10.0.0.3:2380",
      "tok3", "https://10.0.0.2:2381,http://10.0.0.2:2380");
  ASSERT_EQ(c.members.size(), 3u);
  EXPECT_EQ(c.members[0].id, 0x2c0b7e8b59ef1eabULL);
  EXPECT_EQ(c.members[0].name, "b");
  EXPECT_EQ(c.members[1].id, 0x64a12af469d3c35eULL);
  EXPECT_EQ(c.members[1].name, "c");
  EXPECT_EQ(c.members[2].id, 0xba3d8e585d4e3172ULL);
  EXPECT_EQ(c.members[2].name, "a");
  EXPECT_EQ(c.cluster_id, 0x228b779f4a403376ULL);
  EXPECT_EQ(c.local_id, 0x2c0b7e8b59ef1eabULL);
  EXPECT_EQ(MemberJson(c.members[0]),
            R"({"id":3173769499387043499,"peerURLs":["http://10.0.0.2:2380","https://10.0.0.2:2381"],"name":"b"})");
  // Order of the input URLs does not matter for the ID.
  EXPECT_EQ(MemberId({"http://10.0.0.2:2380", "https://10.0.0.2:2381"}, "tok3"), c.members[0].id);
}

TEST(GoJsonQuoteTest, EscapesLikeGo) {
  EXPECT_EQ(GoJsonQuote("plain"), "\"plain\"");
  EXPECT_EQ(GoJsonQuote("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(GoJsonQuote("\n\r\t"), R"("\n\r\t")");
  EXPECT_EQ(GoJsonQuote(std::string("\b\f\x01\x1f", 4)), R"("\u0008\u000c\u0001\u001f")");
  EXPECT_EQ(GoJsonQuote("<a&b>"), R"("\u003ca\u0026b\u003e")");
  EXPECT_EQ(GoJsonQuote("\x7f"), "\"\x7f\"");
  EXPECT_EQ(GoJsonQuote("h\xc3\xa9"), "\"h\xc3\xa9\"");              // é raw
  EXPECT_EQ(GoJsonQuote("\xe2\x80\xa8\xe2\x80\xa9"), R"("\u2028\u2029")");
  EXPECT_EQ(GoJsonQuote("a\xff" "b"), R"("a\ufffdb")");             // invalid byte
  EXPECT_EQ(GoJsonQuote("\xc3"), R"("\ufffd")");                    // truncated sequence
  EXPECT_EQ(GoJsonQuote("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");  // surrogate
  EXPECT_EQ(GoJsonQuote("\xc0\xaf"), R"("\ufffd\ufffd")");          // overlong
  EXPECT_EQ(GoJsonQuote("\xf0\x9f\x98\x80"), "\"\xf0\x9f\x98\x80\"");  // emoji raw
}

TEST(UrlTest, ReserializesLikeGo) {
  EXPECT_EQ(ParseGoUrl("HTTP://Host:2380").String(), "http://Host:2380");
  EXPECT_EQ(ParseGoUrl("http://h\xc3\xa9:1").String(), "http://h%C3%A9:1");
  EXPECT_EQ(ParseGoUrl("http://h%c3%a9:1").String(), "http://h%C3%A9:1");
  EXPECT_EQ(ParseGoUrl("http://[::1]:2380").String(), "http://[::1]:2380");
  EXPECT_EQ(ParseGoUrl("http://u:p@h:1?x=y#f").String(), "http://u:p@h:1?x=y#f");
  EXPECT_EQ(ParseGoUrl("http://h:1?").String(), "http://h:1?");
  EXPECT_EQ(NewPeerUrls({" http://b:1 ", "http://a:1"}),
            (std::vector<std::string>{"http://a:1", "http://b:1"}));
}

std::string ErrorOf(const std::string& name, const std::string& cluster, const std::string& token,
                    const std::string& adv) {
  try {
    BuildRestoreCluster(name, cluster, token, adv);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    return e.what();
  }
  return "<no error>";
}

// Texts captured from etcdctl 3.4.23 (also checked live in restore_diff_test.cc).
TEST(MembershipTest, ValidationErrorsMatchEtcdctl) {
  const std::string adv = "http://localhost:2380";
  EXPECT_EQ(ErrorOf("default", "default=ftp://localhost:2380", "t", adv),
            "URL scheme must be http, https, unix, or unixs: ftp://localhost:2380");
  EXPECT_EQ(ErrorOf("default", "default=http://localhost", "t", adv),
            "URL address does not have the form \"host:port\": http://localhost");
  EXPECT_EQ(ErrorOf("default", "default=http://localhost:2380/", "t", adv),
            "URL must not contain a path: http://localhost:2380/");
  EXPECT_EQ(ErrorOf("x", "default=http://localhost:2380", "t", adv),
            "couldn't find local name \"x\" in the initial cluster configuration");
  EXPECT_EQ(ErrorOf("default", "default=http://localhost:2380", "t", "http://127.0.0.1:2380"),
            "--initial-cluster has default=http://localhost:2380 but missing from "
            "--initial-advertise-peer-urls=http://127.0.0.1:2380 (resolved urls: "
            "\"http://127.0.0.1:2380\" != \"http://localhost:2380\")");
  EXPECT_EQ(ErrorOf("default", "default=http://localhost:2380", "t",
                    "http://127.0.0.1:2380,http://localhost:2380"),
            "--initial-advertise-peer-urls has http://127.0.0.1:2380 but missing from "
            "--initial-cluster=default=http://127.0.0.1:2380,default=http://localhost:2380");
  EXPECT_EQ(ErrorOf("default", "default=http://localhost:2380,b=http://localhost:2380", "t", adv),
            "initial cluster b=http://localhost:2380,default=http://localhost:2380 has duplicate url");
  EXPECT_EQ(ErrorOf("default", "default=http://localhost:2380,default=http://localhost:2381", "t", adv),
            "--initial-cluster has default=http://localhost:2381 but missing from "
            "--initial-advertise-peer-urls=http://localhost:2380 (len([\"http://localhost:2380\"]) "
            "!= len([\"http://localhost:2380\" \"http://localhost:2381\"]))");
  EXPECT_EQ(ErrorOf("default", "default=http://local%20host:2380", "t", adv),
            "parse \"http://local%20host:2380\": invalid URL escape \"%20\"");
  EXPECT_EQ(ErrorOf("default", "default=http://[::1:2380", "t", adv),
            "parse \"http://[::1:2380\": missing ']' in host");
  EXPECT_EQ(ErrorOf("default", "default=http://h:x", "t", adv),
            "parse \"http://h:x\": invalid port \":x\" after host");
  EXPECT_EQ(ErrorOf("default", "default=http://localhost:2380", "t", "http://localhost:2380,,"),
            "URL scheme must be http, https, unix, or unixs: ");
  // Upper-case scheme is accepted and normalized.
  EXPECT_EQ(ErrorOf("default", "default=HTTP://localhost:2380", "t", adv), "<no error>");
}

}  // namespace
}  // namespace etcdsafe::etcdfmt
