// ops/get: etcdctl's argument checks and range resolution, and its simple/json output
// (the byte-for-byte comparison with the real etcdctl is in integration/get_test.cc).
#include "ops/get.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "etcdfmt/membership.h"

namespace etcdsafe::ops {
namespace {

GetRequest Parse(std::vector<std::string> args, bool prefix = false, bool from_key = false,
                 std::string write_out = "simple", bool value_only = false) {
  GetFlags f;
  f.args = std::move(args);
  f.prefix = prefix;
  f.from_key = from_key;
  f.write_out = std::move(write_out);
  f.print_value_only = value_only;
  return ParseGet(f);
}

std::string ErrorOf(std::vector<std::string> args, bool prefix, bool from_key, std::string write_out,
                    bool value_only, ErrorCode* code) {
  try {
    Parse(std::move(args), prefix, from_key, std::move(write_out), value_only);
  } catch (const Error& e) {
    *code = e.code();
    return e.what();
  }
  return "";
}

TEST(GetTest, Base64IsGoStdEncoding) {
  EXPECT_EQ(Base64(""), "");
  EXPECT_EQ(Base64("f"), "Zg==");
  EXPECT_EQ(Base64("fo"), "Zm8=");
  EXPECT_EQ(Base64("foo"), "Zm9v");
  EXPECT_EQ(Base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64(std::string("\xff\xfe\x00\x01", 4)), "//4AAQ==");
}

TEST(GetTest, RangeResolutionFollowsClientv3) {
  GetRequest r = Parse({"a"});
  EXPECT_EQ(r.key, "a");
  EXPECT_EQ(r.range_end, "");
  r = Parse({"a", "c", "ignored"});  // etcdctl ignores a third argument
  EXPECT_EQ(r.range_end, "c");
  r = Parse({"/registry/"}, true);
  EXPECT_EQ(r.range_end, "/registry0");
  r = Parse({std::string("a\xff\xff")}, true);
  EXPECT_EQ(r.range_end, "b");
  r = Parse({std::string("\xff")}, true);
  EXPECT_EQ(r.range_end, std::string(1, '\0'));
  r = Parse({""}, true);
  EXPECT_EQ(r.key, std::string(1, '\0'));
  EXPECT_EQ(r.range_end, std::string(1, '\0'));
  r = Parse({"m"}, false, true);
  EXPECT_EQ(r.key, "m");
  EXPECT_EQ(r.range_end, std::string(1, '\0'));
  r = Parse({""}, false, true);
  EXPECT_EQ(r.key, std::string(1, '\0'));
}

TEST(GetTest, BadArgumentsUseEtcdctlsMessages) {
  ErrorCode code{};
  EXPECT_EQ(ErrorOf({}, false, false, "simple", false, &code),
            "get command needs one argument as key and an optional argument as range_end");
  EXPECT_EQ(code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(ErrorOf({"a"}, true, true, "simple", false, &code),
            "`--prefix` and `--from-key` cannot be set at the same time, choose one");
  EXPECT_EQ(ErrorOf({"a", "b"}, true, false, "simple", false, &code),
            "too many arguments, only accept one argument when `--prefix` or `--from-key` is set");
  EXPECT_EQ(ErrorOf({"a"}, false, false, "json", true, &code), "print-value-only is only for `--write-out=simple`");
  EXPECT_EQ(code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(ErrorOf({"a"}, false, false, "table", false, &code), "table not supported as output format");
  EXPECT_EQ(code, ErrorCode::kUnsupported);
  EXPECT_EQ(ErrorOf({"a"}, false, false, "yaml", false, &code), "unsupported output format");
  EXPECT_EQ(code, ErrorCode::kUnsupported);
}

TEST(GetTest, SimpleOutput) {
  GetResponse resp;
  resp.kvs.push_back(KeyValue{"k1", "v1", 2, 3, 2, 0});
  resp.kvs.push_back(KeyValue{std::string("k\0\xff", 3), "", 4, 4, 1, 0});
  GetRequest req;
  EXPECT_EQ(FormatGet(resp, req), std::string("k1\nv1\nk\0\xff\n\n", 11));
  req.print_value_only = true;
  EXPECT_EQ(FormatGet(resp, req), "v1\n\n");
  EXPECT_EQ(FormatGet(GetResponse{}, req), "");
}

TEST(GetTest, JsonOutputOmitsEmptyFields) {
  GetResponse resp;
  resp.header = Header{6001611773266757492ULL, 13049071153751544597ULL, 6, 2};
  resp.kvs.push_back(KeyValue{"a", "3", 2, 4, 2, 0});
  resp.kvs.push_back(KeyValue{"c", "", 5, 5, 1, 7587869398442071558});
  resp.count = 3;
  resp.more = true;
  GetRequest req;
  req.write_out = "json";
  EXPECT_EQ(FormatGet(resp, req),
            "{\"header\":{\"cluster_id\":6001611773266757492,\"member_id\":13049071153751544597,\"revision\":6,"
            "\"raft_term\":2},\"kvs\":[{\"key\":\"YQ==\",\"create_revision\":2,\"mod_revision\":4,\"version\":2,"
            "\"value\":\"Mw==\"},{\"key\":\"Yw==\",\"create_revision\":5,\"mod_revision\":5,\"version\":1,"
            "\"lease\":7587869398442071558}],\"more\":true,\"count\":3}\n");
  GetResponse empty;
  empty.header.revision = 9;
  EXPECT_EQ(FormatGet(empty, req), "{\"header\":{\"revision\":9}}\n");
}

TEST(GetTest, RestoredHeaderUsesRestoreIds) {
  RestoreIdentity id;  // etcdctl snapshot restore's defaults
  Header h = RestoredHeader(id, 42);
  etcdfmt::RestoreCluster c = etcdfmt::BuildRestoreCluster("default", "default=http://localhost:2380",
                                                           "etcd-cluster", "http://localhost:2380");
  EXPECT_EQ(h.cluster_id, c.cluster_id);
  EXPECT_EQ(h.member_id, c.local_id);
  EXPECT_EQ(h.revision, 42);
  EXPECT_EQ(h.raft_term, 2u);
  id.initial_cluster = "other=http://localhost:2380";
  EXPECT_THROW(RestoredHeader(id, 1), Error);
}

TEST(GetTest, RejectedIsEtcdServerText) {
  EXPECT_TRUE(IsRejected(Error(ErrorCode::kInvalidArgument, "etcdserver: mvcc: required revision has been compacted")));
  EXPECT_FALSE(IsRejected(Error(ErrorCode::kInvalidArgument, "bad flag")));
  EXPECT_FALSE(IsRejected(Error(ErrorCode::kDataLoss, "etcdserver: x")));
}

}  // namespace
}  // namespace etcdsafe::ops
