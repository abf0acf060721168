#include "etcdfmt/urls.h"

#include <algorithm>

#include "base/error.h"
#include "etcdfmt/goformat.h"

namespace etcdsafe::etcdfmt {
namespace {

enum class Mode { kPath, kHost, kZone, kUserPassword, kFragment };

[[noreturn]] void Fail(const std::string& msg) { throw Error(ErrorCode::kInvalidArgument, msg); }

// Internal parse failure; the caller wraps it as `parse "<url>": <reason>`.
struct ParseFailure {
  std::string reason;
};

bool IsHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
int Unhex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}
bool IsAlnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool ShouldEscape(unsigned char c, Mode mode) {
  if (IsAlnum(c)) return false;
  if (mode == Mode::kHost || mode == Mode::kZone) {
    switch (c) {
      case '!': case '$': case '&': case '\'': case '(': case ')': case '*': case '+':
      case ',': case ';': case '=': case ':': case '[': case ']': case '<': case '>':
      case '"':
        return false;
      default:
        break;
    }
  }
  switch (c) {
    case '-': case '_': case '.': case '~':
      return false;
    case '$': case '&': case '+': case ',': case '/': case ':': case ';': case '=':
    case '?': case '@':
      switch (mode) {
        case Mode::kPath: return c == '?';
        case Mode::kUserPassword: return c == '@' || c == '/' || c == '?' || c == ':';
        case Mode::kFragment: return false;
        default: break;
      }
      break;
    default:
      break;
  }
  if (mode == Mode::kFragment && (c == '!' || c == '(' || c == ')' || c == '*')) return false;
  return true;
}

std::string Unescape(std::string_view s, Mode mode) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '%') {
      if (i + 2 >= s.size() || !IsHex(s[i + 1]) || !IsHex(s[i + 2])) {
        throw ParseFailure{"invalid URL escape " + GoQuote(s.substr(i, 3))};
      }
      std::string_view esc = s.substr(i, 3);
      int v = Unhex(s[i + 1]) << 4 | Unhex(s[i + 2]);
      // Hosts may only %-encode non-ASCII bytes, except %25 for IPv6 zones.
      if (mode == Mode::kHost && Unhex(s[i + 1]) < 8 && esc != "%25") {
        throw ParseFailure{"invalid URL escape " + GoQuote(esc)};
      }
      if (mode == Mode::kZone && esc != "%25" && v != ' ' &&
          ShouldEscape(static_cast<unsigned char>(v), Mode::kHost)) {
        throw ParseFailure{"invalid URL escape " + GoQuote(esc)};
      }
      out.push_back(static_cast<char>(v));
      i += 3;
      continue;
    }
    if ((mode == Mode::kHost || mode == Mode::kZone) && c < 0x80 && ShouldEscape(c, mode)) {
      throw ParseFailure{"invalid character " + GoQuote(s.substr(i, 1)) + " in host name"};
    }
    out.push_back(static_cast<char>(c));
    i++;
  }
  return out;
}

std::string Escape(std::string_view s, Mode mode) {
  static const char kUpper[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (ShouldEscape(c, mode)) {
      out.push_back('%');
      out.push_back(kUpper[c >> 4]);
      out.push_back(kUpper[c & 0xf]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

bool ValidOptionalPort(std::string_view port) {
  if (port.empty()) return true;
  if (port[0] != ':') return false;
  for (char c : port.substr(1)) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

std::string ParseHost(std::string_view host) {
  if (!host.empty() && host[0] == '[') {
    size_t i = host.rfind(']');
    if (i == std::string_view::npos) throw ParseFailure{"missing ']' in host"};
    std::string_view colon_port = host.substr(i + 1);
    if (!ValidOptionalPort(colon_port)) {
      throw ParseFailure{"invalid port " + GoQuote(colon_port) + " after host"};
    }
    size_t zone = host.substr(0, i).find("%25");
    if (zone != std::string_view::npos) {
      return Unescape(host.substr(0, zone), Mode::kHost) +
             Unescape(host.substr(zone, i - zone), Mode::kZone) +
             Unescape(host.substr(i), Mode::kHost);
    }
  } else if (size_t i = host.rfind(':'); i != std::string_view::npos) {
    std::string_view colon_port = host.substr(i);
    if (!ValidOptionalPort(colon_port)) {
      throw ParseFailure{"invalid port " + GoQuote(colon_port) + " after host"};
    }
  }
  return Unescape(host, Mode::kHost);
}

bool ValidUserinfo(std::string_view s) {
  for (unsigned char c : s) {
    if (IsAlnum(c)) continue;
    switch (c) {
      case '-': case '.': case '_': case ':': case '~': case '!': case '$': case '&':
      case '\'': case '(': case ')': case '*': case '+': case ',': case ';': case '=':
      case '%': case '@':
        continue;
      default:
        return false;
    }
  }
  return true;
}

bool ValidEncodedFragment(std::string_view s) {
  for (unsigned char c : s) {
    switch (c) {
      case '!': case '$': case '&': case '\'': case '(': case ')': case '*': case '+':
      case ',': case ';': case '=': case ':': case '@': case '[': case ']': case '%':
        continue;
      default:
        if (ShouldEscape(c, Mode::kFragment)) return false;
    }
  }
  return true;
}

void ParseNoFragment(std::string_view raw, GoUrl* u) {
  for (unsigned char c : raw) {
    if (c < 0x20 || c == 0x7f) throw ParseFailure{"net/url: invalid control character in URL"};
  }
  if (raw == "*") {
    u->path = "*";
    return;
  }
  // Scheme: letters, then letters/digits/+-. up to the first ':'.
  std::string_view rest = raw;
  for (size_t i = 0; i < raw.size(); i++) {
    unsigned char c = static_cast<unsigned char>(raw[i]);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) continue;
    if ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.') {
      if (i == 0) break;
      continue;
    }
    if (c == ':') {
      if (i == 0) throw ParseFailure{"missing protocol scheme"};
      u->scheme = std::string(raw.substr(0, i));
      rest = raw.substr(i + 1);
    }
    break;
  }
  for (char& c : u->scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));

  if (!rest.empty() && rest.back() == '?' && std::count(rest.begin(), rest.end(), '?') == 1) {
    u->force_query = true;
    rest.remove_suffix(1);
  } else if (size_t q = rest.find('?'); q != std::string_view::npos) {
    u->raw_query = std::string(rest.substr(q + 1));
    rest = rest.substr(0, q);
  }

  if (rest.empty() || rest[0] != '/') {
    if (!u->scheme.empty()) {
      u->opaque = std::string(rest);
      return;
    }
    std::string_view segment = rest.substr(0, rest.find('/'));
    if (segment.find(':') != std::string_view::npos) {
      throw ParseFailure{"first path segment in URL cannot contain colon"};
    }
  }

  if ((!u->scheme.empty() || rest.substr(0, 3) != "///") && rest.substr(0, 2) == "//") {
    std::string_view authority = rest.substr(2);
    rest = {};
    if (size_t i = authority.find('/'); i != std::string_view::npos) {
      rest = authority.substr(i);
      authority = authority.substr(0, i);
    }
    size_t at = authority.rfind('@');
    if (at == std::string_view::npos) {
      u->host = ParseHost(authority);
    } else {
      u->host = ParseHost(authority.substr(at + 1));
      std::string_view userinfo = authority.substr(0, at);
      if (!ValidUserinfo(userinfo)) throw ParseFailure{"net/url: invalid userinfo"};
      u->has_user = true;
      size_t colon = userinfo.find(':');
      if (colon == std::string_view::npos) {
        u->username = Unescape(userinfo, Mode::kUserPassword);
      } else {
        u->username = Unescape(userinfo.substr(0, colon), Mode::kUserPassword);
        u->password = Unescape(userinfo.substr(colon + 1), Mode::kUserPassword);
        u->has_password = true;
      }
    }
  }
  u->path = Unescape(rest, Mode::kPath);
}

// net.SplitHostPort's validity rules (we only need ok / not ok).
bool SplitHostPortOk(std::string_view hp) {
  size_t i = hp.rfind(':');
  if (i == std::string_view::npos) return false;
  size_t j = 0, k = 0;
  if (hp[0] == '[') {
    size_t end = hp.find(']');
    if (end == std::string_view::npos) return false;
    if (end + 1 == hp.size()) return false;
    if (end + 1 != i) return false;
    j = 1;
    k = end + 1;
  } else if (hp.substr(0, i).find(':') != std::string_view::npos) {
    return false;
  }
  if (hp.substr(j).find('[') != std::string_view::npos) return false;
  if (hp.substr(k).find(']') != std::string_view::npos) return false;
  return true;
}

std::string_view TrimSpace(std::string_view s) {
  auto space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
  };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string GoUrl::String() const {
  std::string out;
  if (!scheme.empty()) out += scheme + ":";
  if (!opaque.empty()) {
    out += opaque;
  } else {
    if (!scheme.empty() || !host.empty() || has_user) {
      if (!host.empty() || !path.empty() || has_user) out += "//";
      if (has_user) {
        out += Escape(username, Mode::kUserPassword);
        if (has_password) out += ":" + Escape(password, Mode::kUserPassword);
        out += "@";
      }
      if (!host.empty()) out += Escape(host, Mode::kHost);
    }
    // A non-empty path is rejected for peer URLs, so path escaping is not reproduced.
    if (!path.empty() && path[0] != '/' && !host.empty()) out += "/";
    out += path;
  }
  if (force_query || !raw_query.empty()) out += "?" + raw_query;
  if (!fragment.empty()) {
    out += "#";
    out += ValidEncodedFragment(raw_fragment) ? raw_fragment : Escape(fragment, Mode::kFragment);
  }
  return out;
}

GoUrl ParseGoUrl(std::string_view raw) {
  GoUrl u;
  size_t hash = raw.find('#');
  std::string_view before = raw.substr(0, hash);
  try {
    ParseNoFragment(before, &u);
  } catch (const ParseFailure& f) {
    Fail("parse " + GoQuote(before) + ": " + f.reason);
  }
  if (hash != std::string_view::npos) {
    std::string_view frag = raw.substr(hash + 1);
    try {
      u.fragment = Unescape(frag, Mode::kFragment);
      u.raw_fragment = std::string(frag);
    } catch (const ParseFailure& f) {
      Fail("parse " + GoQuote(raw) + ": " + f.reason);
    }
  }
  return u;
}

std::vector<std::string> NewPeerUrls(const std::vector<std::string>& raw) {
  if (raw.empty()) Fail("no valid URLs given");
  std::vector<std::string> out;
  for (const std::string& s : raw) {
    std::string in(TrimSpace(s));
    GoUrl u = ParseGoUrl(in);
    if (u.scheme != "http" && u.scheme != "https" && u.scheme != "unix" && u.scheme != "unixs") {
      Fail("URL scheme must be http, https, unix, or unixs: " + in);
    }
    if (!SplitHostPortOk(u.host)) Fail("URL address does not have the form \"host:port\": " + in);
    if (!u.path.empty()) Fail("URL must not contain a path: " + in);
    out.push_back(u.String());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> SplitComma(std::string_view s) {
  std::vector<std::string> out;
  while (true) {
    size_t i = s.find(',');
    out.emplace_back(s.substr(0, i));
    if (i == std::string_view::npos) break;
    s = s.substr(i + 1);
  }
  return out;
}

std::map<std::string, std::vector<std::string>> NewUrlsMap(std::string_view s) {
  std::map<std::string, std::vector<std::string>> raw;
  for (const std::string& item : SplitComma(s)) {
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string::npos) {
      raw[item].push_back("");
    } else {
      raw[item.substr(0, eq)].push_back(item.substr(eq + 1));
    }
  }
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& [name, urls] : raw) out[name] = NewPeerUrls(urls);
  return out;
}

}  // namespace etcdsafe::etcdfmt
