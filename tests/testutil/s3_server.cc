#include "testutil/s3_server.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <vector>

#include "testutil/etcd_server.h"  // FreePort
#include "testutil/process.h"

extern char** environ;

namespace etcdsafe::testutil {
namespace {

size_t Discard(char*, size_t size, size_t n, void*) { return size * n; }

}  // namespace

std::string S3rverPath() { return ETCDSAFE_S3RVER; }

S3Server::S3Server(std::string data_dir) : data_dir_(std::move(data_dir)) { Start(); }

S3Server::S3Server(std::string data_dir, const TlsFiles& tls) : data_dir_(std::move(data_dir)), tls_(tls) {
  Start();
}

std::unique_ptr<S3Server> S3Server::WithServiceEndpoint(const std::string& service_endpoint) {
  std::unique_ptr<S3Server> s(new S3Server(NoStart{}));
  s->service_endpoint_ = service_endpoint;
  s->Start();
  return s;
}

// One request to the local server (trusting the test CA for https); the status or -1.
long S3Server::Request(const std::string& method, const std::string& url) const {
  CURL* c = curl_easy_init();
  if (c == nullptr) return -1;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, Discard);
  if (tls_) curl_easy_setopt(c, CURLOPT_CAINFO, tls_->ca.c_str());
  long status = -1;
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  return status;
}

void S3Server::Start() {
  if (::access(S3rverPath().c_str(), X_OK) != 0) {
    throw std::runtime_error(S3rverPath() + " not found: run `make deps` (npm ci --prefix tools/node)");
  }
  temp_ = std::make_unique<TempDir>();
  if (data_dir_.empty()) data_dir_ = temp_->Sub("data");
  ::mkdir(data_dir_.c_str(), 0700);
  log_path_ = temp_->Sub("s3rver.log");
  port_ = FreePort();
  Spawn();
  WaitReady();
}

S3Server::~S3Server() { Kill(); }

void S3Server::Spawn() {
  std::vector<std::string> args = {S3rverPath(), "--directory", data_dir_, "--port",
                                   std::to_string(port_), "--address", "127.0.0.1", "--silent"};
  if (tls_) {
    args.insert(args.end(), {"--cert", tls_->server_cert, "--key", tls_->server_key});
  }
  if (!service_endpoint_.empty()) args.insert(args.end(), {"--service-endpoint", service_endpoint_});
  // s3rver 3.7 encrypts ListObjectsV2 continuation tokens with DES, which Node 17+ on
  // OpenSSL 3 refuses unless the legacy provider is enabled.
  std::vector<std::string> env = {"NODE_OPTIONS=--openssl-legacy-provider"};
  for (char** e = environ; *e != nullptr; ++e) {
    if (!std::string_view(*e).starts_with("NODE_OPTIONS=")) env.emplace_back(*e);
  }
  pid_ = SpawnLogged(args, env, log_path_);
}

void S3Server::WaitReady() {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (;;) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("s3rver exited early; log:\n" + ReadFile(log_path_));
    }
    if (Request("GET", endpoint() + "/") == 200) return;
    if (std::chrono::steady_clock::now() > deadline) {
      Kill();
      throw std::runtime_error("s3rver not ready after 20 s; log:\n" + ReadFile(log_path_));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void S3Server::CreateBucket(const std::string& name) {
  long s = Request("PUT", endpoint() + "/" + name);
  if (s != 200 && s != 409) {
    throw std::runtime_error("create bucket " + name + ": HTTP " + std::to_string(s));
  }
}

void S3Server::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

void S3Server::Restart() {
  Kill();
  Spawn();
  WaitReady();
}

int S3Server::Aws(const std::string& args, std::string* out) const {
  std::string cmd =
      "env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u AWS_PROFILE "
      "AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_DEFAULT_REGION=us-east-1 "
      "AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null "
      "/usr/bin/aws --endpoint-url " + endpoint() + (tls_ ? " --ca-bundle " + tls_->ca : std::string()) + " " + args;
  return RunCommand(cmd, out);
}

}  // namespace etcdsafe::testutil
