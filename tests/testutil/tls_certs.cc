#include "testutil/tls_certs.h"

#include <random>
#include <stdexcept>

#include "base/file.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::testutil {
namespace {

void Run(const std::string& cmd) {
  std::string out;
  if (RunCommand(cmd, &out) != 0) {
    throw std::runtime_error("MakeTestCerts: `" + cmd + "` failed: " + out);
  }
}

std::string Serial() {
  std::random_device rd;
  return std::to_string((uint64_t{rd()} << 20) ^ rd());
}

void MakeCa(const std::string& dir, const std::string& name, const std::string& cn) {
  Run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650"
      " -keyout '" + dir + "/" + name + ".key' -out '" + dir + "/" + name + ".pem'"
      " -subj '/CN=" + cn + "'"
      " -addext 'basicConstraints=critical,CA:TRUE'"
      " -addext 'keyUsage=critical,keyCertSign,cRLSign'");
}

// Issues <dir>/<name>.pem/.key signed by the CA at ca_pem/ca_key.
void Issue(const std::string& dir, const std::string& name, const std::string& cn,
           const std::string& ext, const std::string& ca_pem, const std::string& ca_key) {
  const std::string base = dir + "/" + name;
  WriteFile(base + ".ext", ext);
  Run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
      " -keyout '" + base + ".key' -out '" + base + ".csr' -subj '/CN=" + cn + "'");
  Run("openssl x509 -req -days 3650 -in '" + base + ".csr' -CA '" + ca_pem + "' -CAkey '" +
      ca_key + "' -set_serial " + Serial() + " -out '" + base + ".pem' -extfile '" + base +
      ".ext'");
}

}  // namespace

TlsFiles MakeTestCerts(const std::string& dir) {
  MakeDirs(dir, 0700);
  MakeCa(dir, "ca", "etcdsafe test CA");
  MakeCa(dir, "other-ca", "unrelated test CA");
  Issue(dir, "server", "localhost",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth,clientAuth\n",
        dir + "/ca.pem", dir + "/ca.key");
  TlsFiles f;
  f.ca = dir + "/ca.pem";
  f.other_ca = dir + "/other-ca.pem";
  f.server_cert = dir + "/server.pem";
  f.server_key = dir + "/server.key";
  MakeClientCert(f, dir, "root", &f.client_cert, &f.client_key);
  return f;
}

void MakeClientCert(const TlsFiles& files, const std::string& dir, const std::string& common_name,
                    std::string* cert, std::string* key) {
  const std::string ca_key = files.ca.substr(0, files.ca.size() - 4) + ".key";
  Issue(dir, "client-" + common_name, common_name,
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=clientAuth\n",
        files.ca, ca_key);
  *cert = dir + "/client-" + common_name + ".pem";
  *key = dir + "/client-" + common_name + ".key";
}

}  // namespace etcdsafe::testutil
