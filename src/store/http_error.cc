#include "store/http_error.h"

namespace etcdsafe::store {

std::string HttpErrorText(httplib::Error e) {
  switch (e) {
    case httplib::Error::Connection: return "could not connect";
    case httplib::Error::Read: return "no response, or the connection broke while reading it (timed out or reset)";
    case httplib::Error::Write: return "connection broken while sending the request";
    case httplib::Error::ConnectionTimeout: return "connection timed out";
    case httplib::Error::SSLConnection: return "TLS handshake failed";
    case httplib::Error::SSLLoadingCerts: return "could not load the CA certificates";
    case httplib::Error::SSLServerVerification:
      return "TLS: the server certificate does not verify (not signed by the trusted CA, or not for this host)";
    default: return httplib::to_string(e);
  }
}

}  // namespace etcdsafe::store
