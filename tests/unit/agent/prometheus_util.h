// Test helpers (header-only) for the agent's HTTP endpoint and a real Prometheus server:
//   * HttpRequest: one HTTP request with libcurl (status, body, Content-Type, headers).
//   * FreeLocalPort: a free TCP port on 127.0.0.1 (bind port 0, read it, close).
//   * PrometheusServer: starts Debian's /usr/bin/prometheus in a fresh temp dir, scraping one
//     target every `scrape_interval` with the given rule files evaluated every
//     `eval_interval`, listening on a free 127.0.0.1 port; queries it through its HTTP API
//     (/api/v1/query, /api/v1/alerts); SIGTERM (then SIGKILL) and removes the dir on
//     destruction. Throws std::runtime_error (with the end of Prometheus' log) if it does
//     not become ready within 30 s. The scrape job is named "etcdsafe" by default (the
//     shipped EtcdsafeAgentDown alert matches jobs containing "etcdsafe").
// Only 127.0.0.1 is contacted. Nothing here skips: a missing prometheus binary throws.
#pragma once

#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace etcdsafe::agent::testing {

struct HttpResult {
  long status = 0;           // 0: no response (error says why)
  std::string body;
  std::string content_type;  // "" if none
  std::map<std::string, std::string> headers;  // lower-case names, last value wins
  std::string error;         // libcurl's error, empty on a response
};

// method "GET", "HEAD", "POST", ...; `body` is sent for methods other than GET/HEAD.
inline HttpResult HttpRequest(const std::string& url, const std::string& method = "GET", const std::string& body = "",
                              long timeout_ms = 10000) {
  HttpResult r;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) throw std::runtime_error("curl_easy_init failed");
  char errbuf[CURL_ERROR_SIZE] = {0};
  auto write_cb = +[](char* p, size_t size, size_t n, void* ud) -> size_t {
    static_cast<std::string*>(ud)->append(p, size * n);
    return size * n;
  };
  auto header_cb = +[](char* p, size_t size, size_t n, void* ud) -> size_t {
    std::string line(p, size * n);
    const size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = line.substr(0, colon), value = line.substr(colon + 1);
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      value.erase(0, value.find_first_not_of(" \t"));
      while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) value.pop_back();
      (*static_cast<std::map<std::string, std::string>*>(ud))[name] = value;
    }
    return size * n;
  };
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r.headers);
  if (method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  const CURLcode rc = curl_easy_perform(curl);
  if (rc != CURLE_OK) {
    r.error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  } else {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    char* ct = nullptr;
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ct);
    if (ct != nullptr) r.content_type = ct;
  }
  curl_easy_cleanup(curl);
  return r;
}

inline int FreeLocalPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("bind 127.0.0.1:0 failed");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

// Polls `cond` every 200 ms until it returns true or `timeout` passes; returns its last value.
inline bool WaitFor(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

struct PrometheusOptions {
  std::string job_name = "etcdsafe";
  std::chrono::seconds scrape_interval{1};
  std::string binary = "/usr/bin/prometheus";
  std::chrono::seconds start_timeout{30};
};

class PrometheusServer {
 public:
  using Options = PrometheusOptions;

  // scrape_target: "127.0.0.1:PORT". rule_files: absolute paths (may be empty).
  PrometheusServer(std::string scrape_target, std::vector<std::string> rule_files = {},
                   std::chrono::seconds eval_interval = std::chrono::seconds(1), Options options = Options())
      : options_(std::move(options)) {
    if (::access(options_.binary.c_str(), X_OK) != 0) {
      throw std::runtime_error(options_.binary + " is missing (make deps installs the prometheus package)");
    }
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/etcdsafe-prometheus-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    std::ostringstream cfg;
    cfg << "global:\n"
        << "  scrape_interval: " << options_.scrape_interval.count() << "s\n"
        << "  scrape_timeout: " << options_.scrape_interval.count() << "s\n"
        << "  evaluation_interval: " << eval_interval.count() << "s\n";
    if (!rule_files.empty()) {
      cfg << "rule_files:\n";
      for (const auto& f : rule_files) cfg << "  - " << nlohmann::json(f).dump() << "\n";
    }
    cfg << "scrape_configs:\n"
        << "  - job_name: " << nlohmann::json(options_.job_name).dump() << "\n"
        << "    static_configs:\n"
        << "      - targets: [" << nlohmann::json(scrape_target).dump() << "]\n";
    std::ofstream(dir_ + "/prometheus.yml") << cfg.str();
    // A free port can be taken between our probe and Prometheus' bind: retry a few times.
    std::string last_error;
    for (int attempt = 0; attempt < 3; ++attempt) {
      port_ = FreeLocalPort();
      Start();
      if (WaitReady(&last_error)) return;
      Kill();
    }
    const std::string log = Log();
    std::filesystem::remove_all(dir_);
    throw std::runtime_error("prometheus did not become ready: " + last_error + "\n" +
                             log.substr(log.size() > 4000 ? log.size() - 4000 : 0));
  }

  ~PrometheusServer() {
    Kill();
    const char* keep = std::getenv("ETCDSAFE_KEEP_TMP");
    if (keep == nullptr || std::string(keep) != "1") {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_; }
  std::string Log() const {
    std::ifstream in(dir_ + "/prometheus.log");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  // Instant query, as (labels without __name__, value) pairs; a scalar gives one pair with
  // no labels. Throws std::runtime_error if the API does not answer with success.
  std::vector<std::pair<std::map<std::string, std::string>, double>> QueryVector(const std::string& promql) {
    const nlohmann::json data = Api("/api/v1/query?query=" + Escape(promql));
    std::vector<std::pair<std::map<std::string, std::string>, double>> out;
    const std::string type = data.at("resultType");
    if (type == "scalar") {
      out.emplace_back(std::map<std::string, std::string>{}, ParseValue(data.at("result").at(1)));
    } else if (type == "vector") {
      for (const auto& s : data.at("result")) {
        std::map<std::string, std::string> labels;
        for (auto& [k, v] : s.at("metric").items()) {
          if (k != "__name__") labels[k] = v.get<std::string>();
        }
        out.emplace_back(std::move(labels), ParseValue(s.at("value").at(1)));
      }
    } else {
      throw std::runtime_error("query " + promql + ": unexpected result type " + type);
    }
    return out;
  }

  // The value of a query that yields exactly one sample (or a scalar); NaN otherwise
  // (no data yet, or several series).
  double Query(const std::string& promql) {
    auto v = QueryVector(promql);
    return v.size() == 1 ? v[0].second : std::nan("");
  }

  // Alert name -> "firing" or "pending" ("firing" if any instance of it fires).
  std::map<std::string, std::string> AlertStates() {
    const nlohmann::json data = Api("/api/v1/alerts");
    std::map<std::string, std::string> out;
    for (const auto& a : data.at("alerts")) {
      const std::string name = a.at("labels").at("alertname");
      const std::string state = a.at("state");
      if (out[name] != "firing") out[name] = state;
    }
    return out;
  }

  // Names of the alerts that are firing now, sorted, without duplicates.
  std::vector<std::string> FiringAlerts() {
    std::vector<std::string> out;
    for (const auto& [name, state] : AlertStates()) {
      if (state == "firing") out.push_back(name);
    }
    return out;
  }

  // The full /api/v1/alerts "alerts" array (labels, annotations, state, value, activeAt).
  nlohmann::json Alerts() { return Api("/api/v1/alerts").at("alerts"); }

 private:
  void Start() {
    std::vector<std::string> args = {options_.binary,
                                     "--config.file=" + dir_ + "/prometheus.yml",
                                     "--storage.tsdb.path=" + dir_ + "/data",
                                     "--web.listen-address=127.0.0.1:" + std::to_string(port_),
                                     "--log.level=info"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string log = dir_ + "/prometheus.log";
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      const int in = ::open("/dev/null", O_RDONLY);
      const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (in < 0 || out < 0) ::_exit(127);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(out, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }

  bool WaitReady(std::string* error) {
    const auto deadline = std::chrono::steady_clock::now() + options_.start_timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        *error = "prometheus exited with status " + std::to_string(status);
        return false;
      }
      HttpResult r = HttpRequest(url() + "/-/ready", "GET", "", 2000);
      if (r.status == 200) return true;
      *error = r.error.empty() ? "status " + std::to_string(r.status) : r.error;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    *error = "timeout: " + *error;
    return false;
  }

  void Kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100; ++i) {  // 10 s
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  nlohmann::json Api(const std::string& path) {
    HttpResult r = HttpRequest(url() + path);
    if (r.status != 200) {
      throw std::runtime_error("prometheus " + path + ": " + (r.error.empty() ? std::to_string(r.status) : r.error) +
                               " " + r.body);
    }
    nlohmann::json j = nlohmann::json::parse(r.body);
    if (j.value("status", "") != "success") throw std::runtime_error("prometheus " + path + ": " + r.body);
    return j.at("data");
  }

  static std::string Escape(const std::string& s) {
    std::string out;
    const char* hex = "0123456789ABCDEF";
    for (unsigned char c : s) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
        out += static_cast<char>(c);
      } else {
        out += '%';
        out += hex[c >> 4];
        out += hex[c & 15];
      }
    }
    return out;
  }

  static double ParseValue(const nlohmann::json& v) {
    const std::string s = v.get<std::string>();  // "1", "NaN", "+Inf", "-Inf"
    if (s == "+Inf") return HUGE_VAL;
    if (s == "-Inf") return -HUGE_VAL;
    return std::strtod(s.c_str(), nullptr);  // also "NaN"
  }

  Options options_;
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace etcdsafe::agent::testing
