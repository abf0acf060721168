#include "client/tls_probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "base/file.h"

namespace etcdsafe::client {
namespace {

using Clock = std::chrono::steady_clock;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

BioPtr MemBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

std::vector<X509Ptr> ParseCerts(const std::string& pem) {
  std::vector<X509Ptr> out;
  BioPtr bio = MemBio(pem);
  while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) out.emplace_back(x);
  ERR_clear_error();  // the loop ends on a "no start line" error
  return out;
}

PkeyPtr ParseKey(const std::string& pem) {
  BioPtr bio = MemBio(pem);
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  return key;
}

std::string ReadPem(const std::string& role, const std::string& path) {
  try {
    return ReadSmallFile(path);
  } catch (const Error& e) {
    throw Error(ErrorCode::kInvalidArgument, role + " file: " + e.what());
  }
}

// The most specific OpenSSL reason on the error queue, e.g. "tlsv13 alert certificate
// required".
std::string OpenSslReason() {
  unsigned long err = ERR_peek_last_error();
  ERR_clear_error();
  if (err == 0) return "";
  const char* r = ERR_reason_error_string(err);
  return r ? r : "error " + std::to_string(err);
}

int RemainingMs(Clock::time_point deadline) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return ms.count() < 0 ? 0 : static_cast<int>(ms.count());
}

void SetIoTimeout(int fd, int ms) {
  if (ms < 1) ms = 1;
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// Connects with a deadline; returns the fd (blocking mode) or -1 with *reason set.
int TcpConnect(const Endpoint& ep, Clock::time_point deadline, std::string* reason) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(ep.port);
  if (int rc = ::getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    *reason = "cannot resolve host \"" + ep.host + "\": " + ::gai_strerror(rc);
    return -1;
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, &::freeaddrinfo);
  *reason = "no address";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    Fd s;
    s.fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
    if (s.fd < 0) continue;
    int rc = ::connect(s.fd, ai->ai_addr, ai->ai_addrlen);
    int err = rc == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      pollfd p{s.fd, POLLOUT, 0};
      int n = ::poll(&p, 1, RemainingMs(deadline));
      if (n == 0) {
        *reason = "dial timeout";
        continue;
      }
      socklen_t len = sizeof err;
      ::getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    }
    if (err == 0) {
      ::fcntl(s.fd, F_SETFL, ::fcntl(s.fd, F_GETFL) & ~O_NONBLOCK);
      int fd = s.fd;
      s.fd = -1;
      return fd;
    }
    *reason = err == ECONNREFUSED ? "connection refused" : std::string(std::strerror(err));
  }
  return -1;
}

bool IsIpLiteral(const std::string& host) {
  in6_addr a6;
  in_addr a4;
  return ::inet_pton(AF_INET, host.c_str(), &a4) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

// A TLS alert from the server during/after the handshake is about our client
// certificate: the server is the only peer that can send one.
std::optional<Error> ClassifyAlert(const std::string& reason, bool have_cert) {
  if (reason.find("alert") == std::string::npos) return std::nullopt;
  const bool cert_alert = reason.find("certificate") != std::string::npos ||
                          reason.find("unknown ca") != std::string::npos ||
                          reason.find("handshake failure") != std::string::npos;
  if (!cert_alert) return std::nullopt;
  return Error(ErrorCode::kUnauthenticated,
               std::string("TLS handshake failed: ") +
                   (have_cert ? "server rejected the client certificate ("
                              : "server requires a client certificate (") +
                   reason + ")");
}

constexpr char kHttp2Preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
// An empty SETTINGS frame: length 0, type 4, flags 0, stream 0.
constexpr unsigned char kEmptySettings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};

std::string ClientHello() {
  return std::string(kHttp2Preface) +
         std::string(reinterpret_cast<const char*>(kEmptySettings), sizeof kEmptySettings);
}

std::optional<Error> ProbeTls(int fd, const Endpoint& ep, const TlsMaterial& tls,
                              Clock::time_point deadline) {
  std::unique_ptr<SSL_CTX, CtxFree> ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return std::nullopt;
  if (tls.skip_verify) {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  } else {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    if (tls.ca_pem.empty()) {
      SSL_CTX_set_default_verify_paths(ctx.get());
    } else {
      X509_STORE* store = SSL_CTX_get_cert_store(ctx.get());
      for (auto& c : ParseCerts(tls.ca_pem)) X509_STORE_add_cert(store, c.get());
    }
  }
  if (!tls.cert_pem.empty()) {
    auto chain = ParseCerts(tls.cert_pem);
    PkeyPtr key = ParseKey(tls.key_pem);
    if (!chain.empty() && key) {
      SSL_CTX_use_certificate(ctx.get(), chain[0].get());
      for (size_t i = 1; i < chain.size(); ++i) {
        SSL_CTX_add_extra_chain_cert(ctx.get(), chain[i].release());
      }
      SSL_CTX_use_PrivateKey(ctx.get(), key.get());
    }
  }
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx.get(), kAlpn, sizeof kAlpn);

  std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
  SSL_set_fd(ssl.get(), fd);
  if (IsIpLiteral(ep.host)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), ep.host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl.get(), ep.host.c_str());
    SSL_set1_host(ssl.get(), ep.host.c_str());
  }
  SetIoTimeout(fd, RemainingMs(deadline));
  ERR_clear_error();
  const bool have_cert = !tls.cert_pem.empty();
  if (int rc = SSL_connect(ssl.get()); rc != 1) {
    int saved_errno = errno;
    int ssl_err = SSL_get_error(ssl.get(), rc);
    long vr = SSL_get_verify_result(ssl.get());
    if (!tls.skip_verify && vr != X509_V_OK) {
      ERR_clear_error();
      return Error(ErrorCode::kUnavailable,
                   std::string("TLS handshake failed: certificate verify failed (") +
                       X509_verify_cert_error_string(vr) + ")");
    }
    std::string reason = OpenSslReason();
    if (reason.empty()) {
      // SO_RCVTIMEO expiry surfaces as WANT_READ (OpenSSL treats EAGAIN as retryable).
      if (ssl_err == SSL_ERROR_WANT_READ || ssl_err == SSL_ERROR_WANT_WRITE ||
          (ssl_err == SSL_ERROR_SYSCALL &&
           (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK))) {
        return Error(ErrorCode::kUnavailable, "TLS handshake timeout");
      }
      return Error(ErrorCode::kUnavailable,
                   "TLS handshake failed: connection closed by server");
    }
    if (auto e = ClassifyAlert(reason, have_cert)) return e;
    if (reason == "wrong version number" || reason == "packet length too long" ||
        reason == "unexpected eof while reading") {
      reason += " (is it a plain http:// endpoint?)";
    }
    return Error(ErrorCode::kUnavailable, "TLS handshake failed: " + reason);
  }
  // With TLS 1.3 the server checks our certificate after the client considers the
  // handshake done; its verdict arrives with the first read.
  const std::string hello = ClientHello();
  SSL_write(ssl.get(), hello.data(), static_cast<int>(hello.size()));
  int read_ms = RemainingMs(deadline);
  SetIoTimeout(fd, read_ms < 1500 ? read_ms : 1500);
  char buf[64];
  ERR_clear_error();
  int n = SSL_read(ssl.get(), buf, sizeof buf);
  if (n <= 0 && SSL_get_error(ssl.get(), n) == SSL_ERROR_SSL) {
    std::string reason = OpenSslReason();
    if (auto e = ClassifyAlert(reason, have_cert)) return e;
    return Error(ErrorCode::kUnavailable, "TLS error after handshake: " + reason);
  }
  ERR_clear_error();
  const unsigned char* alpn = nullptr;
  unsigned alpn_len = 0;
  SSL_get0_alpn_selected(ssl.get(), &alpn, &alpn_len);
  if (alpn_len == 0) {
    return Error(ErrorCode::kUnavailable,
                 "TLS handshake succeeded but the server did not negotiate HTTP/2 (ALPN h2)");
  }
  return std::nullopt;
}

// Plaintext: a TLS-only server answers an HTTP/2 preface with an HTTP 400 or a TLS alert.
std::optional<Error> ProbePlain(int fd, Clock::time_point deadline) {
  const std::string hello = ClientHello();
  int ms = RemainingMs(deadline);
  SetIoTimeout(fd, ms < 1500 ? ms : 1500);
  if (::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL) < 0) return std::nullopt;
  char buf[128];
  ssize_t n = ::recv(fd, buf, sizeof buf, 0);
  if (n <= 0) {
    if (n == 0) {
      return Error(ErrorCode::kUnavailable,
                   "server closed the connection (is it a TLS endpoint? use https://)");
    }
    return std::nullopt;
  }
  std::string got(buf, static_cast<size_t>(n));
  if (got[0] == 0x15 || got.find("HTTPS") != std::string::npos ||
      got.rfind("HTTP/1", 0) == 0) {
    return Error(ErrorCode::kUnavailable,
                 "server did not speak plaintext HTTP/2 (is it a TLS endpoint? use https://)");
  }
  return std::nullopt;
}

// Blocks SIGPIPE on this thread while the probe writes to a socket the server may have
// reset (OpenSSL's socket BIO uses write(2), not send(MSG_NOSIGNAL)); a SIGPIPE raised
// meanwhile is consumed so it is never delivered to the process.
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~ScopedSigpipeBlock() {
    sigset_t pending;
    sigpending(&pending);
    if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) {
      timespec zero{0, 0};
      sigtimedwait(&pipe_, nullptr, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;

 private:
  sigset_t pipe_, old_;
  bool was_pending_ = false;
};

}  // namespace

TlsMaterial LoadTlsMaterial(const std::string& cacert, const std::string& cert,
                            const std::string& key, bool skip_verify) {
  TlsMaterial m;
  m.skip_verify = skip_verify;
  auto bad = [](const std::string& what) { return Error(ErrorCode::kInvalidArgument, what); };
  if (cert.empty() != key.empty()) {
    throw bad(cert.empty() ? "client key file " + key + " given without a client certificate"
                           : "client certificate file " + cert + " given without a key");
  }
  if (!cacert.empty()) {
    m.ca_pem = ReadPem("CA certificate", cacert);
    if (ParseCerts(m.ca_pem).empty()) {
      throw bad("CA certificate file " + cacert + ": no PEM certificate found");
    }
  }
  if (!cert.empty()) {
    m.cert_pem = ReadPem("client certificate", cert);
    m.key_pem = ReadPem("client key", key);
    auto chain = ParseCerts(m.cert_pem);
    if (chain.empty()) throw bad("client certificate file " + cert + ": no PEM certificate found");
    PkeyPtr pkey = ParseKey(m.key_pem);
    if (!pkey) throw bad("client key file " + key + ": no PEM private key found");
    if (X509_check_private_key(chain[0].get(), pkey.get()) != 1) {
      ERR_clear_error();
      throw bad("client key file " + key + " does not match client certificate file " + cert);
    }
  }
  return m;
}

std::optional<Error> DiagnoseConnect(const Endpoint& ep, const TlsMaterial* tls,
                                     std::chrono::milliseconds budget) {
  const auto deadline = Clock::now() + budget;
  std::string reason;
  Fd s;
  s.fd = TcpConnect(ep, deadline, &reason);
  if (s.fd < 0) return Error(ErrorCode::kUnavailable, reason);
  ScopedSigpipeBlock no_sigpipe;
  if (tls != nullptr) return ProbeTls(s.fd, ep, *tls, deadline);
  return ProbePlain(s.fd, deadline);
}

}  // namespace etcdsafe::client
