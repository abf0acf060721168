// fake_kubelet: the test supervisor that stands in for the kubelet (and, with --unit, for
// systemd) in the guarded-restore tests.
//
//   fake_kubelet --manifests DIR --root ROOT [--unit NAME --unit-dir DIR]
//
// Every 100 ms it reads DIR/*.yaml; for each static pod with an etcd container (parsed by
// controlplane::ParseEtcdManifest, as the restore reads it) it runs that container's command
// list, with /usr/bin/etcd for "etcd" and every absolute path in a --flag=value mapped
// through the pod's hostPath volumes and prefixed with ROOT, output appended to
// ROOT/var/log/<file>.log. A file that goes away (or changes) gets its etcd stopped: SIGTERM,
// SIGKILL after 10 s. An etcd that exits is restarted after 1 s, as the kubelet restarts a
// crashed container. Other manifests (kube-apiserver.yaml) are ignored.
//
// With --unit NAME: also a fake systemd unit. UNIT-DIR/NAME.cmd holds the command (one
// argument per line); UNIT-DIR/NAME.want says "active" or "inactive" (written by the fake
// systemctl script); the supervisor runs or stops the command accordingly and then writes
// the same word to UNIT-DIR/NAME.state. SIGTERM/SIGINT stop every child, then exit 0.
#include <dirent.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "controlplane/static_pod.h"

namespace {

volatile sig_atomic_t g_stop = 0;
void OnSignal(int) { g_stop = 1; }

std::string Read(const std::string& path, bool* ok) {
  std::ifstream in(path, std::ios::binary);
  *ok = static_cast<bool>(in);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Child {
  pid_t pid = -1;
  std::string content;
  std::chrono::steady_clock::time_point restart_at{};
};

pid_t Spawn(const std::vector<std::string>& argv, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    setpgid(0, 0);
    FILE* f = fopen(log.c_str(), "a");
    if (f) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execv(a[0], a.data());
    _exit(127);
  }
  return pid;
}

void StopChild(Child& c) {
  if (c.pid <= 0) return;
  kill(c.pid, SIGTERM);
  for (int i = 0; i < 100; i++) {
    if (waitpid(c.pid, nullptr, WNOHANG) == c.pid) {
      c.pid = -1;
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  kill(c.pid, SIGKILL);
  waitpid(c.pid, nullptr, 0);
  c.pid = -1;
}

bool Reaped(Child& c) {
  if (c.pid > 0 && waitpid(c.pid, nullptr, WNOHANG) == c.pid) {
    c.pid = -1;
    return true;
  }
  return false;
}

std::vector<std::string> PodArgv(const etcdsafe::controlplane::EtcdManifest& m, const std::string& root) {
  std::vector<std::string> argv;
  for (size_t i = 0; i < m.container.command.size(); i++) {
    std::string a = m.container.command[i];
    if (i == 0) {
      argv.push_back(a == "etcd" ? "/usr/bin/etcd" : a);
      continue;
    }
    auto eq = a.find('=');
    if (a.rfind("--", 0) == 0 && eq != std::string::npos && eq + 1 < a.size() && a[eq + 1] == '/') {
      a = a.substr(0, eq + 1) + root + m.Host(a.substr(eq + 1));
    }
    argv.push_back(a);
  }
  return argv;
}

}  // namespace

int main(int argc, char** argv) {
  std::string manifests, root, unit, unit_dir;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string f = argv[i];
    if (f == "--manifests") manifests = argv[i + 1];
    if (f == "--root") root = argv[i + 1];
    if (f == "--unit") unit = argv[i + 1];
    if (f == "--unit-dir") unit_dir = argv[i + 1];
  }
  if (root.empty() || (manifests.empty() && unit.empty())) {
    std::fprintf(stderr, "usage: fake_kubelet --manifests DIR --root ROOT [--unit NAME --unit-dir DIR]\n");
    return 2;
  }
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  std::string logs = root + "/var/log";
  mkdir((root + "/var").c_str(), 0755);
  mkdir(logs.c_str(), 0755);
  std::map<std::string, Child> pods;
  Child unit_child;
  while (!g_stop) {
    auto now = std::chrono::steady_clock::now();
    std::map<std::string, std::string> want;  // file -> content
    if (!manifests.empty()) {
      if (DIR* d = opendir(manifests.c_str())) {
        while (dirent* e = readdir(d)) {
          std::string n = e->d_name;
          if (n.size() < 6 || n.substr(n.size() - 5) != ".yaml") continue;
          bool ok = false;
          std::string text = Read(manifests + "/" + n, &ok);
          if (ok) want[n] = text;
        }
        closedir(d);
      }
    }
    for (auto it = pods.begin(); it != pods.end();) {
      auto w = want.find(it->first);
      if (w == want.end() || w->second != it->second.content) {
        std::fprintf(stderr, "fake_kubelet: %s gone or changed: stopping pid %d\n", it->first.c_str(), it->second.pid);
        StopChild(it->second);
        it = pods.erase(it);
      } else {
        ++it;
      }
    }
    for (const auto& [file, text] : want) {
      Child& c = pods[file];
      if (c.pid > 0) {
        if (Reaped(c)) c.restart_at = now + std::chrono::seconds(1);
        continue;
      }
      if (!c.content.empty() && now < c.restart_at) continue;
      c.content = text;
      try {
        auto m = etcdsafe::controlplane::ParseEtcdManifestText(text, file);
        c.pid = Spawn(PodArgv(m, root), logs + "/" + file + ".log");
        std::fprintf(stderr, "fake_kubelet: started %s as pid %d\n", file.c_str(), c.pid);
      } catch (const std::exception& e) {
        c.restart_at = now + std::chrono::hours(24);  // not an etcd pod: ignored until it changes
      }
    }
    if (!unit.empty()) {
      bool ok = false;
      std::string state = Read(unit_dir + "/" + unit + ".want", &ok);
      while (!state.empty() && (state.back() == '\n' || state.back() == ' ')) state.pop_back();
      if (state == "active") {
        if (unit_child.pid > 0 && Reaped(unit_child)) unit_child.restart_at = now + std::chrono::seconds(1);
        if (unit_child.pid <= 0 && now >= unit_child.restart_at) {
          std::string cmd = Read(unit_dir + "/" + unit + ".cmd", &ok);
          std::vector<std::string> args;
          std::stringstream ss(cmd);
          for (std::string line; std::getline(ss, line);) {
            if (!line.empty()) args.push_back(line);
          }
          if (!args.empty()) unit_child.pid = Spawn(args, logs + "/" + unit + ".log");
        }
      } else if (state == "inactive") {
        StopChild(unit_child);
      }
      if (!state.empty()) {
        std::ofstream(unit_dir + "/" + unit + ".state.tmp") << state << "\n";
        rename((unit_dir + "/" + unit + ".state.tmp").c_str(), (unit_dir + "/" + unit + ".state").c_str());
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  for (auto& [file, c] : pods) StopChild(c);
  StopChild(unit_child);
  return 0;
}
