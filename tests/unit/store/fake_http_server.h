// A scripted HTTP/1.1 server on 127.0.0.1 for the S3 tests that need a server which
// misbehaves in ways s3rver never does (endless LIST pages, bodies longer than they
// claim). One request per connection ("Connection: close"), served in order by one
// thread; `handler` builds each response. After `max_requests` requests it answers
// 599 to everything: a client that would loop forever fails instead of hanging the test.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace etcdsafe::store::testing {

struct HttpRequest {
  std::string method;
  std::string target;  // path and query, as sent
  std::string head;    // the whole request head
  // The decoded value of query parameter `name` ("" when absent).
  std::string Query(const std::string& name) const {
    size_t q = target.find('?');
    if (q == std::string::npos) return "";
    std::string rest = target.substr(q + 1);
    size_t pos = 0;
    while (pos <= rest.size()) {
      size_t amp = rest.find('&', pos);
      std::string kv = rest.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
      size_t eq = kv.find('=');
      if (kv.substr(0, eq) == name) return eq == std::string::npos ? "" : Decode(kv.substr(eq + 1));
      if (amp == std::string::npos) break;
      pos = amp + 1;
    }
    return "";
  }
  static std::string Decode(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '%' && i + 2 < s.size()) {
        out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
        i += 2;
      } else {
        out += s[i];
      }
    }
    return out;
  }
};

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Sent as Content-Length when set (a lying server), else body.size().
  std::optional<size_t> content_length;
};

class FakeHttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  explicit FakeHttpServer(Handler handler, int max_requests = 500)
      : handler_(std::move(handler)), max_requests_(max_requests) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_, 64) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("fake server: bind failed");
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeHttpServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  FakeHttpServer(const FakeHttpServer&) = delete;
  FakeHttpServer& operator=(const FakeHttpServer&) = delete;

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_; }
  // "METHOD target" of every request so far.
  std::vector<std::string> lines() {
    std::lock_guard<std::mutex> l(mu_);
    return lines_;
  }

 private:
  static bool SendAll(int fd, const std::string& s) {
    size_t off = 0;
    while (off < s.size()) {
      ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }

  void Serve() {
    for (;;) {
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (stop_) return;
        continue;
      }
      ServeOne(c);
      ::close(c);
    }
  }

  void ServeOne(int c) {
    std::string req;
    char buf[65536];
    size_t head_end;
    while ((head_end = req.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) return;
      req.append(buf, static_cast<size_t>(n));
    }
    HttpRequest r;
    r.head = req.substr(0, head_end + 4);
    std::string first = r.head.substr(0, r.head.find("\r\n"));
    size_t sp1 = first.find(' '), sp2 = first.rfind(' ');
    r.method = first.substr(0, sp1);
    r.target = first.substr(sp1 + 1, sp2 - sp1 - 1);
    {
      std::lock_guard<std::mutex> l(mu_);
      lines_.push_back(r.method + " " + r.target);
    }
    HttpResponse resp;
    if (++requests_ > max_requests_) {
      resp.status = 599;
      resp.body = "<Error><Code>TooManyRequests</Code><Message>fake server: request budget "
                  "exhausted</Message></Error>";
    } else {
      resp = handler_(r);
    }
    std::string out = "HTTP/1.1 " + std::to_string(resp.status) + " X\r\n";
    for (const auto& [k, v] : resp.headers) out += k + ": " + v + "\r\n";
    out += "Content-Length: " + std::to_string(resp.content_length.value_or(resp.body.size())) +
           "\r\nConnection: close\r\n\r\n";
    if (r.method != "HEAD") out += resp.body;
    SendAll(c, out);
  }

  Handler handler_;
  int max_requests_;
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> lines_;
};

}  // namespace etcdsafe::store::testing
