// file:// specifics and OpenStore URL/name handling. The shared behaviour is in
// conformance_test.cc.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "base/error.h"
#include "base/file.h"
#include "store/s3_store.h"
#include "store/store.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::store {
namespace {

ErrorCode CodeOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::kInternal;
}

TEST(OpenStore, Urls) {
  EXPECT_EQ(OpenStore("file:///tmp/x/")->Describe(), "file:///tmp/x");
  try {
    OpenStore("gs://bucket");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("unknown repository scheme \"gs\""), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(CodeOf([] { OpenStore("/plain/path"); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf([] { OpenStore("file://relative"); }), ErrorCode::kInvalidArgument);
  StoreOptions o;
  o.access_key = "a";
  o.secret_key = "b";
  EXPECT_EQ(OpenStore("s3://my-bucket/some/prefix/", o)->Describe(), "s3://my-bucket/some/prefix");
  EXPECT_EQ(OpenStore("s3://my-bucket", o)->Describe(), "s3://my-bucket");
  EXPECT_EQ(CodeOf([&] { OpenStore("s3://Bad_Bucket/x", o); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf([&] { OpenStore("s3://b", o); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CodeOf([&] { OpenStore("s3://bucket/a/../b", o); }), ErrorCode::kInvalidArgument);
  o.s3_endpoint = "ftp://host";
  EXPECT_EQ(CodeOf([&] { OpenStore("s3://bucket", o); }), ErrorCode::kInvalidArgument);
  o.s3_endpoint = "http://127.0.0.1:9000";
  o.part_size = 1 << 20;
  EXPECT_EQ(CodeOf([&] { OpenStore("s3://bucket", o); }), ErrorCode::kInvalidArgument);
}

TEST(OpenStore, CredentialsFromFileAndEnv) {
  testutil::TempDir tmp;
  testutil::WriteFile(tmp.Sub("creds"),
                      "[default]\naws_access_key_id = DEF\naws_secret_access_key=DEFSECRET\n"
                      "# comment\n[backup]\n aws_access_key_id=BK \naws_secret_access_key = BKS\n"
                      "aws_session_token = TOK\n");
  ::unsetenv("AWS_ACCESS_KEY_ID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  ::unsetenv("AWS_SESSION_TOKEN");
  ::setenv("AWS_SHARED_CREDENTIALS_FILE", tmp.Sub("creds").c_str(), 1);
  ::unsetenv("AWS_PROFILE");
  auto c = ResolveCredentials({});
  EXPECT_EQ(c.access_key, "DEF");
  EXPECT_EQ(c.secret_key, "DEFSECRET");
  ::setenv("AWS_PROFILE", "backup", 1);
  c = ResolveCredentials({});
  EXPECT_EQ(c.access_key, "BK");
  EXPECT_EQ(c.secret_key, "BKS");
  EXPECT_EQ(c.session_token, "TOK");
  ::setenv("AWS_PROFILE", "nope", 1);
  EXPECT_EQ(CodeOf([] { ResolveCredentials({}); }), ErrorCode::kUnauthenticated);
  ::setenv("AWS_ACCESS_KEY_ID", "ENVK", 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", "ENVS", 1);
  c = ResolveCredentials({});
  EXPECT_EQ(c.access_key, "ENVK");
  ::unsetenv("AWS_ACCESS_KEY_ID");
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  ::unsetenv("AWS_PROFILE");
  ::unsetenv("AWS_SHARED_CREDENTIALS_FILE");
}

TEST(Names, Validation) {
  for (std::string bad : std::vector<std::string>{"", "/abs", "a//b", "a/", "./a", "a/../b", "..", std::string("a\0b", 3),
                          "x.tmp-0123456789abcdef"}) {
    EXPECT_EQ(CodeOf([&] { ValidateName("file:///r", bad); }), ErrorCode::kInvalidArgument) << bad;
  }
  for (std::string ok : std::vector<std::string>{"a", "backups/2024/snap.db", "a b+c", "x.tmp-short", "\xc3\xa9"}) {
    EXPECT_NO_THROW(ValidateName("file:///r", ok)) << ok;
  }
  EXPECT_TRUE(IsTempName(TempName("a/b")));
}

TEST(Xml, ParsesAndRejects) {
  std::string x = "<R><Key>a&amp;b&lt;&#233;&#x1F600;</Key><Key/><Key>c</Key><Code>X</Code></R>";
  EXPECT_EQ(s3xml::Find(x, "Key").value(), "a&b<\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(s3xml::FindAll(x, "Key").size(), 3u);
  EXPECT_FALSE(s3xml::Find(x, "Missing").has_value());
  EXPECT_EQ(CodeOf([] { s3xml::Unescape("&bogus;"); }), ErrorCode::kDataLoss);
  EXPECT_EQ(CodeOf([] { s3xml::Unescape("&#0;"); }), ErrorCode::kDataLoss);
  EXPECT_EQ(CodeOf([] { s3xml::Unescape("&#x110000;"); }), ErrorCode::kDataLoss);
  EXPECT_EQ(CodeOf([] { s3xml::Unescape("& no semicolon"); }), ErrorCode::kDataLoss);
  EXPECT_FALSE(s3xml::Find("<Key>unterminated", "Key").has_value());
  EXPECT_EQ(s3xml::Escape("\"a\"&<>"), "&quot;a&quot;&amp;&lt;&gt;");
}

TEST(FileStore, TempFilesAndModes) {
  testutil::TempDir tmp;
  auto s = OpenStore("file://" + tmp.Sub("repo"));
  {
    auto sink = s->Create("dir/obj");
    sink->Write(AsBytes("hello"));
    // While writing, only a temp file exists, mode 0600, in a 0700 directory.
    auto names = s->List("");
    EXPECT_TRUE(names.empty());
    struct stat st {};
    ASSERT_EQ(::stat(tmp.Sub("repo/dir").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    sink->Close();
  }
  struct stat st {};
  ASSERT_EQ(::stat(tmp.Sub("repo/dir/obj").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string out;
  testutil::RunCommand("ls -A " + tmp.Sub("repo/dir"), &out);
  EXPECT_EQ(out, "obj\n");
  // A stray temp file (crash) is not listed.
  testutil::WriteFile(tmp.Sub("repo/dir/obj2.tmp-0123456789abcdef"), "x");
  ASSERT_EQ(s->List("").size(), 1u);
  EXPECT_EQ(s->Get("dir/obj"), "hello");
}

TEST(FileStore, DiskFullIsIo) {
  // /dev/full: every write fails with ENOSPC. Use it as the "temp file" by making the
  // repo root a directory where the temp name is a symlink is racy; instead write
  // through a File on /dev/full to check the mapping the sink relies on.
  EXPECT_EQ(CodeOf([] {
              File f = File::OpenReadWrite("/dev/full");
              uint8_t b[4096] = {};
              f.WriteAll(b, sizeof b);
              f.Sync();
            }),
            ErrorCode::kIo);
}

}  // namespace
}  // namespace etcdsafe::store
