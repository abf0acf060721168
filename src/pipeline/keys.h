// Encryption keys for backups: where they come from and their public ids.
//
// A key is either 32 raw bytes (from a key file or an environment variable) or a
// passphrase (from a file) that the archive format stretches with scrypt. Keys never
// come from argv (visible in `ps`). Loaders throw Error(kInvalidArgument) naming the file
// or variable, never echoing key material. Key files readable by group/others are
// accepted (Kubernetes mounts secrets 0644 by default) but KeySpec::warning says so and
// the CLI should print it (regular files only: a pipe's contents are not at rest). Thread-compatible values; key bytes are wiped on destruction.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace etcdsafe::pipeline {

using MasterKey = std::array<uint8_t, 32>;

struct KeySpec {
  enum class Kind { kNone, kRawKey, kPassphrase };
  Kind kind = Kind::kNone;
  MasterKey raw{};         // kRawKey
  std::string passphrase;  // kPassphrase
  std::string warning;     // non-empty: a non-fatal problem to show the user

  KeySpec() = default;
  KeySpec(const KeySpec&) = default;
  KeySpec& operator=(const KeySpec&) = default;
  ~KeySpec();  // OPENSSL_cleanse of raw and passphrase
};

// Parses key text: exactly 32 raw bytes of key material, or (after trailing whitespace is
// stripped) 64 hex characters or standard base64 of 32 bytes. 32 bytes that are all
// printable ASCII or whitespace are text (a 31-character passphrase and a newline), not
// key material, and are refused: 32 random bytes look like that with probability
// (100/256)^32 ≈ 9e-14. `what` names the origin in errors; every error is one line,
// never echoes key material, and says to use --passphrase-file for a passphrase or
// `head -c 32 /dev/urandom > key` / `openssl rand -hex 32 > key` to make a key.
KeySpec ParseKey(std::string_view text, const std::string& what);
// A key file in any ParseKey format. Read until EOF (at most 64 KiB), so pipes, FIFOs
// and /dev/fd/N (`--encryption-key-file <(cat key)`) work. Missing/unreadable file,
// over 64 KiB, wrong length, text, bad hex or base64: kInvalidArgument
// "key file <path>: ...".
KeySpec LoadKeyFile(const std::string& path);
// The value of environment variable `var` (hex or base64; unset/empty is an error).
KeySpec KeyFromEnv(const std::string& var);
// A passphrase file (read like a key file): its contents minus one trailing "\n" or
// "\r\n"; empty is an error.
KeySpec LoadPassphraseFile(const std::string& path);

// Public id of a master key, safe to store in manifests and print: lowercase hex of the
// first 8 bytes of HMAC-SHA256(key, "etcdsafe key id v1").
std::string KeyIdOf(const MasterKey& key);
// The same 8 bytes, as stored in archive headers.
std::array<uint8_t, 8> KeyIdBytes(const MasterKey& key);
// KeyIdOf(spec.raw) for a raw key. A passphrase's key is salted per backup, so its id
// exists only per archive (EncryptSink::key_id()); kPassphrase/kNone: kInvalidArgument.
std::string KeyId(const KeySpec& spec);

// A MAC of `data` under a master key, for authenticating repository metadata
// (manifests): lowercase hex (64 chars) of HMAC-SHA256(K, data), where
// K = HKDF-SHA256(ikm = master, no salt, info = "etcdsafe mac v1 " + purpose).
// `purpose` separates uses ("manifest", ...), so a MAC for one never verifies as another.
// Deterministic; compare with MacEqual (constant time).
std::string MacHex(const MasterKey& master, std::string_view purpose, std::string_view data);
// Constant-time comparison of two MAC hex strings (false if the lengths differ).
bool MacEqual(std::string_view a, std::string_view b);

}  // namespace etcdsafe::pipeline
