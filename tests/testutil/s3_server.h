// A local S3 server (s3rver 3.7, npm, installed by `make deps` into tools/node) for the
// s3:// store tests.
//
// Each S3Server runs one s3rver process on a free 127.0.0.1 port with its data in a
// directory (a fresh temp dir, or a given one so a restarted server keeps its objects).
// The constructor waits until the port answers HTTP (timeout 20 s); the destructor kills
// the process. s3rver accepts any credentials and does not verify signatures; tests use
// AWS_ACCESS_KEY_ID=S3RVER / AWS_SECRET_ACCESS_KEY=S3RVER. A missing s3rver is an
// error, never a skip. With TLS files it serves https with tls.server_cert (SAN
// 127.0.0.1), and the harness's own requests and Aws() trust tls.ca. Throws
// std::runtime_error. Thread-compatible.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>

#include "testutil/temp_dir.h"
#include "testutil/tls_certs.h"

namespace etcdsafe::testutil {

// <repo>/tools/node/node_modules/.bin/s3rver (compile-time path).
std::string S3rverPath();

class S3Server {
 public:
  // data_dir empty: a fresh temp dir owned by the server.
  explicit S3Server(std::string data_dir = "");
  // https on the same terms.
  S3Server(std::string data_dir, const TlsFiles& tls);
  // Answers virtual-hosted requests for <bucket>.s3.<service_endpoint> (e.g. "localhost":
  // curl resolves *.localhost to the loopback addresses itself).
  static std::unique_ptr<S3Server> WithServiceEndpoint(const std::string& service_endpoint);
  ~S3Server();
  S3Server(const S3Server&) = delete;
  S3Server& operator=(const S3Server&) = delete;

  std::string endpoint() const {
    return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
  }
  int port() const { return port_; }
  const std::string& data_dir() const { return data_dir_; }
  bool running() const { return pid_ > 0; }

  // PUT /<name> (s3rver takes unsigned requests); an existing bucket is fine.
  void CreateBucket(const std::string& name);
  // SIGKILL now (crash simulation). Idempotent.
  void Kill();
  // Starts again on the same port and directory and waits until it answers.
  void Restart();

  // Runs `/usr/bin/aws --endpoint-url <endpoint> <args>` (args are shell words, the
  // caller quotes) with the dummy credentials and no proxy; returns the exit status,
  // stdout+stderr in *out (so download to a file, not to "-").
  int Aws(const std::string& args, std::string* out = nullptr) const;

 private:
  struct NoStart {};
  explicit S3Server(NoStart) {}
  void Start();
  void Spawn();
  void WaitReady();
  long Request(const std::string& method, const std::string& url) const;

  std::unique_ptr<TempDir> temp_;
  std::string data_dir_;
  std::string log_path_;
  int port_ = 0;
  pid_t pid_ = -1;
  std::optional<TlsFiles> tls_;
  std::string service_endpoint_;
};

}  // namespace etcdsafe::testutil
