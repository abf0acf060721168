#include "snapshot/status_format.h"

#include <gtest/gtest.h>

#include "base/error.h"

namespace etcdsafe::snapshot {
namespace {

// The example of spec §2.2, verified against etcdctl 3.4.23.
const StatusNumbers kExample{0xc9494115u, 5, 9, 20480};

TEST(StatusFormat, SimpleTableJsonFields) {
  EXPECT_EQ(FormatStatus(kExample, "simple"), "c9494115, 5, 9, 20 kB\n");
  EXPECT_EQ(FormatStatus(kExample, "table"),
            "+----------+----------+------------+------------+\n"
            "|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |\n"
            "+----------+----------+------------+------------+\n"
            "| c9494115 |        5 |          9 |      20 kB |\n"
            "+----------+----------+------------+------------+\n");
  EXPECT_EQ(FormatStatus(kExample, "json"),
            "{\"hash\":3377021205,\"revision\":5,\"totalKey\":9,\"totalSize\":20480}\n");
  EXPECT_EQ(FormatStatus(kExample, "fields"),
            "\"Hash\" : 3377021205\n\"Revision\" : 5\n\"Keys\" : 9\n\"Size\" : 20480\n");
}

TEST(StatusFormat, HashIsUnpaddedHex) {
  StatusNumbers s = kExample;
  s.hash = 0x00abcdef;
  EXPECT_EQ(FormatStatus(s, "simple"), "abcdef, 5, 9, 20 kB\n");
}

TEST(StatusFormat, UnsupportedFormatsUseEtcdctlWords) {
  try {
    FormatStatus(kExample, "protobuf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_STREQ(e.what(), "protobuf not supported as output format");
  }
  try {
    FormatStatus(kExample, "yaml");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "unsupported output format");
  }
}

TEST(Humanize, GoHumanizeBytes) {
  EXPECT_EQ(HumanizeBytes(0), "0 B");
  EXPECT_EQ(HumanizeBytes(9), "9 B");
  EXPECT_EQ(HumanizeBytes(10), "10 B");
  EXPECT_EQ(HumanizeBytes(999), "999 B");
  EXPECT_EQ(HumanizeBytes(1000), "1.0 kB");
  EXPECT_EQ(HumanizeBytes(20480), "20 kB");     // 20.5 rounds half to even
  EXPECT_EQ(HumanizeBytes(1478656), "1.5 MB");
  EXPECT_EQ(HumanizeBytes(1073741824), "1.1 GB");
  EXPECT_EQ(HumanizeBytes(4096), "4.1 kB");
  EXPECT_EQ(HumanizeBytes(12288), "12 kB");
}

}  // namespace
}  // namespace etcdsafe::snapshot
