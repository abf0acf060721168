// Envelopes and ObjectMeta decoding over values encoded here field by field with the
// numbers of runtime/generated.proto and meta/v1/generated.proto.
#include <gtest/gtest.h>

#include "k8s/envelope.h"
#include "k8s/wire.h"

namespace etcdsafe::k8s {
namespace {

std::string Time(int64_t s, int32_t n) {
  std::string t;
  AppendVarintField(&t, 1, uint64_t(s));
  if (n) AppendVarintField(&t, 2, uint64_t(n));
  return t;
}

std::string Entry(const std::string& k, const std::string& v) {
  std::string e;
  AppendBytesField(&e, 1, k);
  AppendBytesField(&e, 2, v);
  return e;
}

std::string Meta() {
  std::string m;
  AppendBytesField(&m, 1, "nginx");
  AppendBytesField(&m, 2, "nginx-");
  AppendBytesField(&m, 3, "default");
  AppendBytesField(&m, 5, "0b6a-uid");
  AppendBytesField(&m, 6, "12345");
  AppendVarintField(&m, 7, 3);
  AppendBytesField(&m, 8, Time(1700000000, 0));
  AppendBytesField(&m, 11, Entry("app", "web"));
  AppendBytesField(&m, 11, Entry("tier", "front"));
  AppendBytesField(&m, 12, Entry("note", "x"));
  std::string owner;
  AppendBytesField(&owner, 1, "ReplicaSet");
  AppendBytesField(&owner, 3, "nginx-rs");
  AppendBytesField(&owner, 4, "rs-uid");
  AppendBytesField(&owner, 5, "apps/v1");
  AppendVarintField(&owner, 6, 1);
  AppendBytesField(&m, 13, owner);
  AppendBytesField(&m, 14, "example.com/finalizer");
  AppendBytesField(&m, 17, "whatever");
  return m;
}

std::string ProtoValue(const std::string& api_version, const std::string& kind, const std::string& object) {
  std::string tm;
  AppendBytesField(&tm, 1, api_version);
  AppendBytesField(&tm, 2, kind);
  std::string u(kProtobufMagic);
  AppendBytesField(&u, 1, tm);
  AppendBytesField(&u, 2, object);
  AppendBytesField(&u, 3, "");
  AppendBytesField(&u, 4, "");
  return u;
}

TEST(Envelope, ProtobufWithMetadata) {
  std::string object;
  AppendBytesField(&object, 1, Meta());
  AppendBytesField(&object, 2, "spec-bytes");
  const std::string v = ProtoValue("v1", "Pod", object);
  Envelope e = ParseEnvelope(AsBytes(v));
  ASSERT_EQ(e.encoding, Encoding::kProtobuf) << e.error;
  EXPECT_EQ(e.api_version, "v1");
  EXPECT_EQ(e.kind, "Pod");
  EXPECT_EQ(AsString(e.raw), object);
  ObjectMeta m;
  ASSERT_EQ(DecodeObjectMetaOfObject(e.raw, &m), std::nullopt);
  EXPECT_EQ(m.name, "nginx");
  EXPECT_EQ(m.ns, "default");
  EXPECT_EQ(m.uid, "0b6a-uid");
  EXPECT_EQ(m.generation, 3);
  ASSERT_EQ(m.labels.size(), 2u);
  EXPECT_EQ(m.owner_references.at(0).kind, "ReplicaSet");
  EXPECT_EQ(m.managed_fields, 1);
  nlohmann::json j = ObjectMetaToJson(m);
  EXPECT_EQ(j["creationTimestamp"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(j["labels"]["tier"], "front");
  EXPECT_EQ(j["annotations"]["note"], "x");
  EXPECT_EQ(j["ownerReferences"][0]["apiVersion"], "apps/v1");
  EXPECT_EQ(j["ownerReferences"][0]["controller"], true);
  EXPECT_FALSE(j["ownerReferences"][0].contains("blockOwnerDeletion"));
  EXPECT_EQ(j["finalizers"][0], "example.com/finalizer");
  EXPECT_EQ(j["generateName"], "nginx-");
  EXPECT_FALSE(j.contains("selfLink"));
  nlohmann::json d = DescribeValue(AsBytes(v));
  EXPECT_EQ(d["envelope"]["encoding"], "protobuf");
  EXPECT_EQ(d["metadata"]["name"], "nginx");
  EXPECT_EQ(d["raw"], Base64(AsBytes(object)));
}

TEST(Envelope, Encrypted) {
  struct Case {
    std::string value, type, name;
  } cases[] = {
      {"k8s:enc:aescbc:v1:key1:\x01\x02", "aescbc", "key1"},
      {"k8s:enc:aesgcm:v1:k2:xx", "aesgcm", "k2"},
      {"k8s:enc:secretbox:v1:sb:xx", "secretbox", "sb"},
      {"k8s:enc:kms:v1:vault:xx", "kms:v1", "vault"},
      {"k8s:enc:kms:v2:awskms:xx", "kms:v2", "awskms"},
      {"k8s:enc:aescbc:v1:", "unrecognized", ""},
      {"k8s:enc:rot13:v1:x:yy", "unrecognized", ""},
  };
  for (const Case& c : cases) {
    Envelope e = ParseEnvelope(AsBytes(c.value));
    EXPECT_EQ(e.encoding, Encoding::kEncrypted) << c.value;
    EXPECT_EQ(e.encryption, c.type) << c.value;
    EXPECT_EQ(e.key_name, c.name) << c.value;
  }
  EXPECT_EQ(ParseEnvelope(AsBytes(std::string("k8s:enc:kms:v2:awskms:xx"))).Provider(), "kms:v2:awskms");
}

TEST(Envelope, JsonAndOther) {
  const std::string cr = R"({"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w1","namespace":"team-a",)"
                         R"("uid":"u1","generation":2,"labels":{"a":"b"}},"spec":{"size":3}})";
  Envelope e = ParseEnvelope(AsBytes(cr));
  EXPECT_EQ(e.encoding, Encoding::kJson);
  EXPECT_EQ(e.kind, "Widget");
  ObjectMeta m;
  ASSERT_EQ(DecodeObjectMetaJson(cr, &m), std::nullopt);
  EXPECT_EQ(m.name, "w1");
  EXPECT_EQ(m.generation, 2);
  nlohmann::json d = DescribeValue(AsBytes(cr));
  EXPECT_EQ(d["object"]["spec"]["size"], 3);
  EXPECT_EQ(ParseEnvelope(AsBytes(std::string("{not json"))).encoding, Encoding::kMalformed);
  EXPECT_EQ(ParseEnvelope(AsBytes(std::string("plain bytes"))).encoding, Encoding::kOther);
  EXPECT_EQ(ParseEnvelope(AsBytes(std::string(""))).encoding, Encoding::kOther);
}

TEST(Envelope, MalformedProtobuf) {
  std::string v(kProtobufMagic);
  v += "\x0a\x7f";  // field 1, length 127, past the end
  Envelope e = ParseEnvelope(AsBytes(v));
  EXPECT_EQ(e.encoding, Encoding::kMalformed);
  EXPECT_NE(e.error.find("past the end"), std::string::npos) << e.error;
  ObjectMeta m;
  EXPECT_NE(DecodeObjectMetaOfObject(AsBytes(std::string("\x12\x01x", 3)), &m), std::nullopt);  // no field 1
  EXPECT_NE(DecodeObjectMetaOfObject(AsBytes(std::string("\x08\x01", 2)), &m), std::nullopt);   // field 1 varint
  EXPECT_NE(DecodeObjectMeta(AsBytes(std::string("\x42\x02\x08", 3)), &m), std::nullopt);       // truncated Time
}

TEST(Base64, Rfc4648Vectors) {
  EXPECT_EQ(Base64(AsBytes(std::string(""))), "");
  EXPECT_EQ(Base64(AsBytes(std::string("f"))), "Zg==");
  EXPECT_EQ(Base64(AsBytes(std::string("fo"))), "Zm8=");
  EXPECT_EQ(Base64(AsBytes(std::string("foo"))), "Zm9v");
  EXPECT_EQ(Base64(AsBytes(std::string("foobar"))), "Zm9vYmFy");
}

}  // namespace
}  // namespace etcdsafe::k8s
