// k8s/json_facts: ScanJsonObject, FactsOfValue and EncodingUnchecked agree with what ParseEnvelope and
// DecodeObjectMetaJson (nlohmann's DOM parse) say, on hand-picked edge cases of nlohmann's
// grammar (NUL as end of input, surrogates, UTF-8 ranges, number overflow, duplicate
// members, escaped member names) and on tens of thousands of random mutations of
// Kubernetes-shaped JSON.
#include "k8s/json_facts.h"

#include <gtest/gtest.h>

#include <random>

#include "k8s/envelope.h"
#include "k8s/wire.h"

namespace etcdsafe::k8s {
namespace {

// The reference: ParseEnvelope + DecodeObjectMetaJson, as diff's Side() used them.
ValueFacts Reference(std::string_view v) {
  ValueFacts out;
  const Envelope env = ParseEnvelope(AsBytes(v));
  out.encoding = env.encoding;
  ObjectMeta m;
  bool ok = false;
  if (env.encoding == Encoding::kProtobuf) ok = !DecodeObjectMetaOfObject(env.raw, &m).has_value();
  if (env.encoding == Encoding::kJson) ok = !DecodeObjectMetaJson(v, &m).has_value();
  if (ok) {
    out.uid = m.uid;
    out.generation = m.generation;
  }
  return out;
}

void ExpectSame(std::string_view v) {
  const ValueFacts want = Reference(v);
  const ValueFacts got = FactsOfValue(AsBytes(v), true);
  EXPECT_EQ(EncodingName(got.encoding), EncodingName(want.encoding)) << testing::PrintToString(std::string(v));
  EXPECT_EQ(got.uid, want.uid) << testing::PrintToString(std::string(v));
  EXPECT_EQ(got.generation, want.generation) << testing::PrintToString(std::string(v));
  EXPECT_EQ(FactsOfValue(AsBytes(v), false).encoding, want.encoding);
  // Unchecked: the same, except that what starts with '{' is "json" unread.
  const size_t first = v.find_first_not_of(" \t\n\r");
  const bool brace = first != std::string_view::npos && v[first] == '{';
  EXPECT_EQ(EncodingName(EncodingUnchecked(AsBytes(v))), EncodingName(brace ? Encoding::kJson : want.encoding))
      << testing::PrintToString(std::string(v));
}

TEST(JsonFactsTest, UncheckedEncodingReadsNoJson) {
  EXPECT_EQ(EncodingUnchecked(AsBytes(std::string_view("{\"kind\":"))), Encoding::kJson);
  EXPECT_EQ(FactsOfValue(AsBytes(std::string_view("{\"kind\":")), false).encoding, Encoding::kMalformed);
  EXPECT_EQ(EncodingUnchecked(AsBytes(std::string_view(" \n{}"))), Encoding::kJson);
  EXPECT_EQ(EncodingUnchecked(AsBytes(std::string_view("k8s:enc:aescbc:v1:key1:xyz"))), Encoding::kEncrypted);
  EXPECT_EQ(EncodingUnchecked(AsBytes(std::string_view("plain text"))), Encoding::kOther);
  EXPECT_EQ(EncodingUnchecked(AsBytes(std::string_view("k8s\0\x0a", 5))), ParseEnvelope(AsBytes(std::string_view("k8s\0\x0a", 5))).encoding);
}

TEST(JsonFactsTest, EdgeCasesAgreeWithNlohmann) {
  const std::vector<std::string> cases = {
      "{}", " \t\r\n{} \n", "{", "{}}", "{} x", "{},", std::string("{}\0garbage", 10),
      std::string("{} \0", 4), std::string("{\0}", 3), "[]", " [1]", "{\"a\":1}", "{\"a\":1,}", "{\"a\" 1}",
      "{\"a\":}", "{a:1}", "{'a':1}", "{\"a\":[1,2,[3,{}],{\"b\":null}]}", "{\"a\":[1,]}", "{\"a\":[,1]}",
      "{\"a\":tru}", "{\"a\":true}", "{\"a\":false}", "{\"a\":nul}", "{\"a\":nullx}", "{\"a\":truefalse}",
      "{\"a\":01}", "{\"a\":-0}", "{\"a\":-}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e}", "{\"a\":1e+}",
      "{\"a\":1.5e-3}", "{\"a\":+1}", "{\"a\":1e400}", "{\"a\":-1e400}", "{\"a\":1e-400}",
      "{\"a\":" + std::string(400, '9') + "}", "{\"a\":18446744073709551615}", "{\"a\":18446744073709551616}",
      "{\"a\":-9223372036854775808}", "{\"a\":-9223372036854775809}", "{\"a\":\"\\u00e9\\ud83d\\ude00\"}",
      "{\"a\":\"\\ud83d\"}", "{\"a\":\"\\ud83d\\u0041\"}", "{\"a\":\"\\ude00\"}", "{\"a\":\"\\u12\"}",
      "{\"a\":\"\\uZZZZ\"}", "{\"a\":\"\\x\"}", "{\"a\":\"\\/\\b\\f\\n\\r\\t\\\"\\\\\"}", "{\"a\":\"tab\there\"}",
      std::string("{\"a\":\"nul\0\"}", 12), "{\"a\":\"\x7f\"}", "{\"a\":\"\xc3\xa9\"}", "{\"a\":\"\xc0\x80\"}",
      "{\"a\":\"\xc2\"}", "{\"a\":\"\xe0\x9f\x80\"}", "{\"a\":\"\xe0\xa0\x80\"}", "{\"a\":\"\xed\xa0\x80\"}",
      "{\"a\":\"\xed\x9f\xbf\"}", "{\"a\":\"\xf0\x8f\xbf\xbf\"}", "{\"a\":\"\xf0\x90\x80\x80\"}",
      "{\"a\":\"\xf4\x8f\xbf\xbf\"}", "{\"a\":\"\xf4\x90\x80\x80\"}", "{\"a\":\"\xf5\x80\x80\x80\"}", "{\"a\":\"\xff\"}",
      "{\"a\":\"unterminated}", "{\"\xff\":1}",
      // metadata: uid, generation, duplicates (last wins), types, escaped names, depth.
      "{\"metadata\":{\"uid\":\"u1\",\"generation\":3}}", "{\"metadata\":{}}", "{\"metadata\":[]}",
      "{\"metadata\":\"x\"}", "{\"metadata\":null}", "{\"metadata\":{\"uid\":5}}",
      "{\"metadata\":{\"uid\":\"a\",\"uid\":\"b\"}}", "{\"metadata\":{\"uid\":\"a\",\"uid\":{}}}",
      "{\"metadata\":{\"uid\":\"a\"},\"metadata\":{\"generation\":2}}", "{\"metadata\":{\"uid\":\"a\"},\"metadata\":1}",
      "{\"meta\\u0064ata\":{\"\\u0075id\":\"esc\\n\\u00e9\"}}", "{\"metadata\":{\"generation\":1.0}}",
      "{\"metadata\":{\"generation\":-7}}", "{\"metadata\":{\"generation\":18446744073709551615}}",
      "{\"metadata\":{\"generation\":1e3}}", "{\"metadata\":{\"generation\":\"3\"}}",
      "{\"metadata\":{\"labels\":{\"uid\":\"no\",\"generation\":9}},\"spec\":{\"metadata\":{\"uid\":\"no\"}}}",
      "{\"spec\":{\"uid\":\"no\"},\"metadata\":{\"name\":\"n\",\"uid\":\"yes\"}}", "{\"items\":[{\"metadata\":{\"uid\":\"no\"}}]}",
      "{\"metadata\":{\"uid\":\"u\"}", "{\"metadata\":{\"uid\":\"u\"}} x",
      // Not JSON: encrypted, protobuf, other.
      "k8s:enc:aescbc:v1:key1:{\"a\":1}", std::string("k8s\0\x0a\x02v1", 8), "plain", "", " ", "x{}"};
  for (const std::string& c : cases) ExpectSame(c);
  std::string deep;
  for (int i = 0; i < 100000; i++) deep += "[";
  ExpectSame("{\"a\":" + deep + "}");
  std::string closed = "{\"a\":" + deep;
  for (int i = 0; i < 100000; i++) closed += "]";
  ExpectSame(closed + "}");
}

TEST(JsonFactsTest, ProtobufMetadataAsDecodeObjectMeta) {
  std::string meta;
  AppendBytesField(&meta, 1, "n");
  AppendBytesField(&meta, 5, "the-uid");
  AppendVarintField(&meta, 7, 4);
  std::string obj;
  AppendBytesField(&obj, 1, meta);
  std::string tm;
  AppendBytesField(&tm, 1, "v1");
  AppendBytesField(&tm, 2, "Pod");
  std::string v(kProtobufMagic);
  AppendBytesField(&v, 1, tm);
  AppendBytesField(&v, 2, obj);
  const ValueFacts f = FactsOfValue(AsBytes(v), true);
  EXPECT_EQ(f.encoding, Encoding::kProtobuf);
  EXPECT_EQ(f.uid, "the-uid");
  EXPECT_EQ(f.generation, 4);
  ExpectSame(v);
  ExpectSame(v.substr(0, v.size() - 3));
}

// A Kubernetes-shaped object, then random single- and multi-byte mutations of it.
TEST(JsonFactsTest, RandomMutationsAgreeWithNlohmann) {
  const std::string base =
      "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"web-0\",\"namespace\":\"default\","
      "\"uid\":\"0b1c2d3e-aaaa-bbbb-cccc-111122223333\",\"generation\":12,\"labels\":{\"app\":\"web\"},"
      "\"annotations\":{\"note\":\"caf\\u00e9 \\ud83d\\ude00 \xc3\xa9\"},\"ownerReferences\":[{\"kind\":\"RS\","
      "\"controller\":true}]},\"spec\":{\"replicas\":3,\"ratio\":0.25,\"big\":1.5e10,\"neg\":-4,\"list\":[1,2,3],"
      "\"empty\":{},\"none\":null,\"flag\":false},\"status\":{\"phase\":\"Running\"}}";
  ExpectSame(base);
  ExpectSame("  " + base + "\n");
  std::mt19937_64 rng(20261201);
  static const char kAlphabet[] = "{}[]\":,\\u0123456789abcdefABCDEF-+.eEtrufalsn \t\n\x00\x7f\x80\xbf\xc3\xed\xf0\xff";
  const std::string alphabet(kAlphabet, sizeof kAlphabet - 1);
  for (int i = 0; i < 40000; i++) {
    std::string v = base;
    const int edits = 1 + int(rng() % 3);
    for (int e = 0; e < edits; e++) {
      const size_t pos = rng() % (v.size() + 1);
      const char c = alphabet[rng() % alphabet.size()];
      switch (rng() % 4) {
        case 0: if (pos < v.size()) v[pos] = c; break;
        case 1: v.insert(v.begin() + long(pos), c); break;
        case 2: if (pos < v.size()) v.erase(pos, 1 + rng() % 3); break;
        case 3: v = v.substr(0, pos); break;
      }
    }
    ExpectSame(v);
    if (HasFailure()) break;
  }
}

}  // namespace
}  // namespace etcdsafe::k8s
