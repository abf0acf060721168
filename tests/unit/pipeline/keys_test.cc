#include "pipeline/keys.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "base/error.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::pipeline {
namespace {

const std::string kHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const std::string kB64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

MasterKey Expected() {
  MasterKey k;
  for (size_t i = 0; i < 32; i++) k[i] = static_cast<uint8_t>(i);
  return k;
}

std::string Write(const testutil::TempDir& d, const std::string& name, const std::string& data, mode_t mode = 0600) {
  std::string p = d.Sub(name);
  testutil::WriteFile(p, data);
  chmod(p.c_str(), mode);
  return p;
}

Error LoadError(const std::string& path) {
  try {
    LoadKeyFile(path);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error for " << path;
  return Error(ErrorCode::kInternal, "");
}

TEST(Keys, Formats) {
  testutil::TempDir d;
  std::string raw(reinterpret_cast<const char*>(Expected().data()), 32);
  for (const std::string& text : {raw, kHex, kHex + "\n", kHex + "\r\n", kB64, kB64 + "\n",
                                  kB64.substr(0, 43), std::string(kHex.size(), 'x').replace(0, 64, kHex)}) {
    KeySpec k = LoadKeyFile(Write(d, "k", text));
    EXPECT_EQ(k.kind, KeySpec::Kind::kRawKey);
    EXPECT_EQ(k.raw, Expected()) << text;
    EXPECT_EQ(k.warning, "");
  }
  std::string upper = kHex;
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  EXPECT_EQ(LoadKeyFile(Write(d, "k", upper)).raw, Expected());
  // 32 raw bytes that happen to end in a newline are still 32 raw bytes.
  std::string nl = raw;
  nl[31] = '\n';
  EXPECT_EQ(LoadKeyFile(Write(d, "k", nl)).raw[31], '\n');
}

TEST(Keys, FileErrorsNameTheFile) {
  testutil::TempDir d;
  Error e = LoadError(d.Sub("missing.key"));
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(e.what()).find("missing.key"), std::string::npos) << e.what();

  e = LoadError(Write(d, "short.key", "abc\n"));
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(e.what()).find("short.key"), std::string::npos);
  EXPECT_NE(std::string(e.what()).find("got 4 bytes"), std::string::npos) << e.what();

  std::string badhex = kHex;
  badhex[10] = 'g';
  e = LoadError(Write(d, "bad.key", badhex));
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(e.what()).find("bad hex"), std::string::npos) << e.what();
  EXPECT_EQ(std::string(e.what()).find(badhex), std::string::npos) << "must not echo key material";

  std::string badb64 = kB64;
  badb64[5] = '*';
  e = LoadError(Write(d, "bad64.key", badb64));
  EXPECT_NE(std::string(e.what()).find("bad base64"), std::string::npos) << e.what();
  // base64 of 33 bytes (44 chars, no padding) is not a key either
  e = LoadError(Write(d, "long64.key", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g"));
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  e = LoadError(Write(d, "empty.key", ""));
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
}

// A 31-character passphrase plus a newline is 32 bytes: it used to become the AES key
// itself, with no KDF. Text is refused with a hint; binary key material still works.
TEST(Keys, ThirtyTwoBytesOfTextAreNotAKey) {
  testutil::TempDir d;
  const std::string pass31 = "correct horse battery staple!!!";
  ASSERT_EQ(pass31.size(), 31u);
  for (const std::string& text : {pass31 + "\n", std::string(32, 'a'), pass31 + " ", std::string(16, ' ') + "\t\r\n\v\f" + "01234567890",
                                  std::string("0123456789abcdef0123456789abcdef")}) {
    ASSERT_EQ(text.size(), 32u);
    Error e = LoadError(Write(d, "pass.key", text));
    std::string msg = e.what();
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(msg.find("key file " + d.Sub("pass.key")), std::string::npos) << msg;
    EXPECT_NE(msg.find("not key material"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--passphrase-file"), std::string::npos) << msg;
    EXPECT_NE(msg.find("head -c 32 /dev/urandom > key"), std::string::npos) << msg;
    EXPECT_NE(msg.find("openssl rand -hex 32 > key"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line";
    EXPECT_EQ(msg.find(text.substr(0, 20)), std::string::npos) << "must not echo key material";
    EXPECT_THROW(ParseKey(text, "x"), Error);
  }
  // One byte outside printable ASCII/whitespace makes it key material.
  std::string bin(32, 'a');
  bin[7] = '\x80';
  EXPECT_EQ(LoadKeyFile(Write(d, "bin.key", bin)).raw[7], 0x80);
  bin[7] = '\0';
  EXPECT_EQ(LoadKeyFile(Write(d, "bin.key", bin)).raw[7], 0);
  // Every error carries the hint, including a wrong length.
  std::string msg = LoadError(Write(d, "short.key", "hunter2\n")).what();
  EXPECT_NE(msg.find("--passphrase-file"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("hunter2"), std::string::npos) << msg;
}

// `--encryption-key-file <(cat key)`: a pipe has st_size 0, which read as "got 0 bytes".
TEST(Keys, ReadFromPipe) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  ASSERT_EQ(write(fds[1], kHex.data(), kHex.size()), static_cast<ssize_t>(kHex.size()));
  ASSERT_EQ(write(fds[1], "\n", 1), 1);
  close(fds[1]);
  KeySpec k = LoadKeyFile("/dev/fd/" + std::to_string(fds[0]));
  close(fds[0]);
  EXPECT_EQ(k.kind, KeySpec::Kind::kRawKey);
  EXPECT_EQ(k.raw, Expected());
  EXPECT_EQ(k.warning, "");

  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  ASSERT_EQ(write(fds[1], "pipe pass\n", 10), 10);
  close(fds[1]);
  EXPECT_EQ(LoadPassphraseFile("/dev/fd/" + std::to_string(fds[0])).passphrase, "pipe pass");
  close(fds[0]);
}

// A FIFO whose writer delivers in pieces, larger than a pipe's buffer would allow in one
// write; and one that sends more than 64 KiB is refused (so does /dev/zero).
TEST(Keys, ReadFromFifoBoundedAt64KiB) {
  testutil::TempDir d;
  std::string fifo = d.Sub("key.fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  auto writer = [&](std::string data) {
    return std::thread([&fifo, data] {
      int fd = open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) return;
      for (size_t off = 0; off < data.size();) {
        size_t n = std::min<size_t>(7, data.size() - off);
        ssize_t w = write(fd, data.data() + off, n);
        if (w <= 0) break;
        off += static_cast<size_t>(w);
      }
      close(fd);
    });
  };
  std::thread t = writer(kB64 + "\n");
  EXPECT_EQ(LoadKeyFile(fifo).raw, Expected());
  t.join();

  std::string big(64 << 10, 'p');
  t = writer(big);
  EXPECT_EQ(LoadPassphraseFile(fifo).passphrase.size(), big.size());  // exactly at the bound
  t.join();

  t = writer(big + "x");
  Error e = LoadError(fifo);
  t.join();
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(std::string(e.what()).find("more than 65536 bytes"), std::string::npos) << e.what();

  e = LoadError("/dev/zero");
  EXPECT_NE(std::string(e.what()).find("more than 65536 bytes"), std::string::npos) << e.what();
  e = LoadError(d.path());
  EXPECT_NE(std::string(e.what()).find("is a directory"), std::string::npos) << e.what();
}

TEST(Keys, GroupReadableFileWarns) {
  testutil::TempDir d;
  KeySpec k = LoadKeyFile(Write(d, "k", kHex, 0644));
  EXPECT_EQ(k.raw, Expected());
  EXPECT_NE(k.warning.find("mode 0644"), std::string::npos) << k.warning;
  EXPECT_EQ(LoadKeyFile(Write(d, "k2", kHex, 0400)).warning, "");
}

TEST(Keys, FromEnv) {
  setenv("ETCDSAFE_TEST_KEY", kHex.c_str(), 1);
  EXPECT_EQ(KeyFromEnv("ETCDSAFE_TEST_KEY").raw, Expected());
  setenv("ETCDSAFE_TEST_KEY", kB64.c_str(), 1);
  EXPECT_EQ(KeyFromEnv("ETCDSAFE_TEST_KEY").raw, Expected());
  setenv("ETCDSAFE_TEST_KEY", "0123456789abcdef0123456789abcdef", 1);  // 32 chars: not raw bytes here
  try {
    KeyFromEnv("ETCDSAFE_TEST_KEY");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("environment variable ETCDSAFE_TEST_KEY"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("--passphrase-file"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("openssl rand -hex 32"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("0123456789abcdef"), std::string::npos) << e.what();
  }
  unsetenv("ETCDSAFE_TEST_KEY");
  EXPECT_THROW(KeyFromEnv("ETCDSAFE_TEST_KEY"), Error);
}

TEST(Keys, PassphraseFile) {
  testutil::TempDir d;
  EXPECT_EQ(LoadPassphraseFile(Write(d, "p", "hunter2\n")).passphrase, "hunter2");
  EXPECT_EQ(LoadPassphraseFile(Write(d, "p", "hunter2\r\n")).passphrase, "hunter2");
  EXPECT_EQ(LoadPassphraseFile(Write(d, "p", " spaces kept \n\n")).passphrase, " spaces kept \n");
  EXPECT_EQ(LoadPassphraseFile(Write(d, "p", "x")).kind, KeySpec::Kind::kPassphrase);
  EXPECT_THROW(LoadPassphraseFile(Write(d, "p", "\n")), Error);
  EXPECT_THROW(LoadPassphraseFile(d.Sub("none")), Error);
}

TEST(Keys, KeyIdIsStableAndPublic) {
  KeySpec k;
  k.kind = KeySpec::Kind::kRawKey;
  k.raw = Expected();
  std::string id = KeyId(k);
  EXPECT_EQ(id.size(), 16u);
  EXPECT_EQ(id, KeyIdOf(Expected()));
  EXPECT_EQ(kHex.find(id), std::string::npos);
  k.raw[0] ^= 1;
  EXPECT_NE(KeyId(k), id);
  EXPECT_THROW(KeyId(KeySpec{}), Error);
}

TEST(Keys, MacHex) {
  const std::string data = R"({"id":"etcd-snapshot-20240101T000000Z"})";
  // Known vector, computed independently (Python hmac/hashlib: RFC 5869 HKDF with an
  // all-zero salt, then HMAC-SHA256): the MAC must never change for existing manifests.
  std::string mac = MacHex(Expected(), "manifest", data);
  EXPECT_EQ(mac, "96410d16ae23d58b4e17ede512b1a9273d91c994cdf487258d815fe9cee36a82");
  EXPECT_EQ(MacHex(Expected(), "manifest", data), mac);
  EXPECT_NE(MacHex(Expected(), "lock", data), mac);
  EXPECT_NE(MacHex(Expected(), "manifest", data + " "), mac);
  MasterKey other = Expected();
  other[31] ^= 0x80;
  EXPECT_NE(MacHex(other, "manifest", data), mac);
  // The MAC is not the plain HMAC under the master key (the key is purpose-derived).
  EXPECT_NE(MacHex(Expected(), "", data), mac);
  EXPECT_EQ(MacHex(Expected(), "", "").size(), 64u);
  EXPECT_TRUE(MacEqual(mac, MacHex(Expected(), "manifest", data)));
  EXPECT_FALSE(MacEqual(mac, MacHex(other, "manifest", data)));
  EXPECT_FALSE(MacEqual(mac, mac.substr(0, 63)));
}

}  // namespace
}  // namespace etcdsafe::pipeline
