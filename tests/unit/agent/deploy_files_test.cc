// The deployment files use what etcdsafe really has: every Kubernetes document parses and has
// the expected kind and apiVersion, the ConfigMap's agent.yaml is a valid agent config
// (ParseConfig), every `etcdsafe <cmd> --flag` in the CronJob, the Deployment and the systemd
// units is in that command's --help, files named in args and in the agent config lie under
// a volumeMount, the systemd units pass `systemd-analyze verify` and carry the hardening the
// issue asks for, and the Dockerfile's runtime stage installs every library the binary links.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "agent/config.h"
#include "testutil/cli.h"
#include "testutil/temp_dir.h"

namespace etcdsafe::agent {
namespace {

namespace fs = std::filesystem;
using testutil::TempDir;

const std::string kSource = ETCDSAFE_SOURCE_DIR;
const std::string kBinary = ETCDSAFE_BINARY;

struct Doc {
  std::string file;
  YAML::Node node;
  std::string kind() const { return node["kind"].as<std::string>(""); }
  std::string name() const { return node["metadata"]["name"].as<std::string>(""); }
};

std::vector<Doc> KubernetesDocs() {
  std::vector<Doc> docs;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(kSource + "/deploy/kubernetes")) {
    if (e.path().extension() == ".yaml" || e.path().extension() == ".yml") files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    for (const YAML::Node& n : YAML::LoadAllFromFile(f.string())) {
      if (n.IsNull()) continue;  // comments before the first "---"
      docs.push_back({f.filename().string(), n});
    }
  }
  return docs;
}

std::vector<Doc> OfKind(const std::vector<Doc>& docs, const std::string& kind) {
  std::vector<Doc> r;
  for (const auto& d : docs) {
    if (d.kind() == kind) r.push_back(d);
  }
  return r;
}

// The pod template of a workload (DaemonSet/Deployment: spec.template; CronJob: one level deeper).
YAML::Node PodSpec(const Doc& d) {
  if (d.kind() == "CronJob") return d.node["spec"]["jobTemplate"]["spec"]["template"]["spec"];
  return d.node["spec"]["template"]["spec"];
}

std::vector<YAML::Node> Containers(const YAML::Node& pod) {
  std::vector<YAML::Node> r;
  for (const char* k : {"initContainers", "containers"}) {
    if (pod[k]) {
      for (const auto& c : pod[k]) r.push_back(c);
    }
  }
  return r;
}

std::vector<std::string> Strings(const YAML::Node& n) {
  std::vector<std::string> r;
  if (n) {
    for (const auto& x : n) r.push_back(x.as<std::string>());
  }
  return r;
}

bool Under(const std::string& path, const std::string& dir) {
  return path == dir || path.starts_with(dir.ends_with("/") ? dir : dir + "/");
}

// --- flags against --help ---------------------------------------------------------------

const std::string& HelpOf(const std::string& cmd) {
  static std::map<std::string, std::string> cache;
  auto it = cache.find(cmd);
  if (it != cache.end()) return it->second;
  std::vector<std::string> args;
  std::istringstream in(cmd);
  for (std::string w; in >> w;) args.push_back(w);
  args.push_back("--help");
  testutil::CmdResult r = testutil::Exec(kBinary, args);
  EXPECT_EQ(r.code, 0) << kBinary << " " << cmd << " --help: " << r.err;
  return cache[cmd] = r.out + r.err;
}

bool HelpHasFlag(const std::string& help, const std::string& flag) {
  const std::regex re("(^|[ ,])" + std::regex_replace(flag, std::regex("-"), "\\-") + "([ =,]|$)",
                      std::regex::multiline);
  return std::regex_search(help, re);
}

struct Invocation {
  std::string where;                // file and container/directive, for messages
  std::string command;              // "backup", "backups verify", ...
  std::vector<std::pair<std::string, std::string>> flags;  // --flag, value ("" if none)
};

// args after the binary: leading words are the (sub)command, then --flag[=value] [value].
Invocation ParseArgs(const std::string& where, const std::vector<std::string>& args) {
  Invocation inv{where, "", {}};
  size_t i = 0;
  for (; i < args.size() && !args[i].starts_with("-"); i++) inv.command += (inv.command.empty() ? "" : " ") + args[i];
  for (; i < args.size(); i++) {
    const std::string& a = args[i];
    EXPECT_TRUE(a.starts_with("--")) << where << ": unexpected word " << a;
    size_t eq = a.find('=');
    if (eq != std::string::npos) {
      inv.flags.push_back({a.substr(0, eq), a.substr(eq + 1)});
    } else if (i + 1 < args.size() && !args[i + 1].starts_with("-")) {
      inv.flags.push_back({a, args[i + 1]});
      i++;
    } else {
      inv.flags.push_back({a, ""});
    }
  }
  return inv;
}

void ExpectFlagsExist(const Invocation& inv) {
  ASSERT_FALSE(inv.command.empty()) << inv.where << ": no etcdsafe command";
  const std::string& sub = HelpOf(inv.command);
  const std::string& global = HelpOf("");
  EXPECT_NE(sub.find("Usage:"), std::string::npos) << inv.where << ": `etcdsafe " << inv.command << "` unknown";
  for (const auto& [flag, value] : inv.flags) {
    // Global flags (--endpoints, --cacert, ...) are listed by `etcdsafe --help` and accepted
    // after the subcommand.
    EXPECT_TRUE(HelpHasFlag(sub, flag) || HelpHasFlag(global, flag))
        << inv.where << ": etcdsafe " << inv.command << " has no flag " << flag;
  }
}

// Absolute paths in flag values (and file:// repository URLs).
std::vector<std::string> PathsIn(const Invocation& inv) {
  std::vector<std::string> r;
  for (const auto& [flag, value] : inv.flags) {
    if (value.starts_with("/")) r.push_back(value);
    if (value.starts_with("file://")) r.push_back(value.substr(7));
  }
  return r;
}

// --- Kubernetes -------------------------------------------------------------------------

TEST(DeployKubernetesTest, EveryDocumentHasAKnownKindAndApiVersion) {
  const std::map<std::string, std::string> api = {
      {"Namespace", "v1"},           {"Secret", "v1"},
      {"ConfigMap", "v1"},           {"Service", "v1"},
      {"DaemonSet", "apps/v1"},      {"Deployment", "apps/v1"},
      {"CronJob", "batch/v1"},       {"ServiceMonitor", "monitoring.coreos.com/v1"},
      {"PrometheusRule", "monitoring.coreos.com/v1"}};
  auto docs = KubernetesDocs();
  std::set<std::string> files;
  for (const auto& d : docs) {
    files.insert(d.file);
    ASSERT_TRUE(d.node.IsMap()) << d.file;
    auto it = api.find(d.kind());
    ASSERT_NE(it, api.end()) << d.file << ": unexpected kind " << d.kind();
    EXPECT_EQ(d.node["apiVersion"].as<std::string>(""), it->second) << d.file << " " << d.kind();
    EXPECT_FALSE(d.name().empty()) << d.file << " " << d.kind();
    if (d.kind() != "Namespace") {
      EXPECT_EQ(d.node["metadata"]["namespace"].as<std::string>(""), "etcdsafe") << d.file << " " << d.kind();
    }
  }
  EXPECT_TRUE(files.count("agent.yaml"));
  EXPECT_TRUE(files.count("cronjob.yaml"));
  for (const char* kind : {"Namespace", "Secret", "ConfigMap", "Deployment", "Service", "ServiceMonitor", "CronJob"}) {
    EXPECT_FALSE(OfKind(docs, kind).empty()) << "no " << kind;
  }
}

TEST(DeployKubernetesTest, ConfigMapHoldsAValidAgentConfig) {
  auto docs = KubernetesDocs();
  auto cms = OfKind(docs, "ConfigMap");
  ASSERT_EQ(cms.size(), 1u);
  ASSERT_TRUE(cms[0].node["data"]["agent.yaml"]) << "ConfigMap without data.agent.yaml";
  const std::string text = cms[0].node["data"]["agent.yaml"].as<std::string>();
  AgentConfig c;
  ASSERT_NO_THROW(c = ParseConfig(text, "/etc/etcdsafe/agent.yaml", LoadOptions{.check_files = false})) << text;
  EXPECT_EQ(c.etcd.endpoints, std::vector<std::string>{"https://127.0.0.1:2379"});
  EXPECT_EQ(c.http_listen, "0.0.0.0:9464") << "hostNetwork: Prometheus scrapes the node address";
  ASSERT_FALSE(c.repositories.empty());
  EXPECT_TRUE(c.repositories[0].url.starts_with("s3://"));
  EXPECT_TRUE(c.backup.enabled);
  EXPECT_FALSE(c.backup.retention.Empty());
  EXPECT_TRUE(c.drill.enabled);
  EXPECT_FALSE(c.encryption.key_file.empty());
  ASSERT_EQ(c.webhooks.size(), 1u);
  EXPECT_EQ(c.webhooks[0].format, WebhookConfig::Format::kAlertmanager);
  EXPECT_TRUE(c.webhooks[0].url.ends_with("/api/v2/alerts"));

  // Every file the config names is mounted into the agent container.
  auto ds = OfKind(docs, "Deployment");
  ASSERT_EQ(ds.size(), 1u);
  auto containers = Containers(PodSpec(ds[0]));
  ASSERT_EQ(containers.size(), 1u);
  std::vector<std::string> mounts;
  for (const auto& m : containers[0]["volumeMounts"]) mounts.push_back(m["mountPath"].as<std::string>());
  for (const std::string& p : {c.etcd.cacert, c.etcd.cert, c.etcd.key, c.encryption.key_file, c.state_dir}) {
    ASSERT_FALSE(p.empty());
    EXPECT_TRUE(std::any_of(mounts.begin(), mounts.end(), [&](const std::string& m) { return Under(p, m); }))
        << p << " is not under any volumeMount of the agent";
  }
}

// Checks shared by the agent's Deployment and the CronJob's pods.
void CheckPod(const Doc& d, const std::vector<Doc>& docs) {
  SCOPED_TRACE(d.file + " " + d.kind());
  YAML::Node pod = PodSpec(d);
  ASSERT_TRUE(pod.IsMap());
  EXPECT_EQ(pod["nodeSelector"]["node-role.kubernetes.io/control-plane"].as<std::string>("missing"), "");
  bool tolerates = false;
  for (const auto& t : pod["tolerations"]) {
    tolerates |= t["key"].as<std::string>("") == "node-role.kubernetes.io/control-plane" &&
                 t["operator"].as<std::string>("") == "Exists" && t["effect"].as<std::string>("") == "NoSchedule";
  }
  EXPECT_TRUE(tolerates) << "no control-plane toleration";
  EXPECT_TRUE(pod["hostNetwork"].as<bool>(false));
  EXPECT_EQ(pod["dnsPolicy"].as<std::string>(""), "ClusterFirstWithHostNet");
  EXPECT_FALSE(pod["automountServiceAccountToken"].as<bool>(true));
  EXPECT_EQ(pod["securityContext"]["seccompProfile"]["type"].as<std::string>(""), "RuntimeDefault");

  std::map<std::string, YAML::Node> volumes;
  for (const auto& v : pod["volumes"]) volumes.emplace(v["name"].as<std::string>(), static_cast<const YAML::Node&>(v));
  ASSERT_TRUE(volumes.count("etcd-pki"));
  EXPECT_EQ(volumes["etcd-pki"]["hostPath"]["path"].as<std::string>(""), "/etc/kubernetes/pki/etcd");
  std::set<std::string> secrets, configmaps;
  for (const auto& s : OfKind(docs, "Secret")) secrets.insert(s.name());
  for (const auto& s : OfKind(docs, "ConfigMap")) configmaps.insert(s.name());
  for (auto& [name, v] : volumes) {
    if (v["secret"]) {
      EXPECT_TRUE(secrets.count(v["secret"]["secretName"].as<std::string>())) << name;
    }
    if (v["configMap"]) {
      EXPECT_TRUE(configmaps.count(v["configMap"]["name"].as<std::string>())) << name;
    }
  }

  for (const auto& c : Containers(pod)) {
    const std::string cname = c["name"].as<std::string>();
    SCOPED_TRACE("container " + cname);
    // The image's ENTRYPOINT is the binary: args start with the command.
    if (c["command"]) {
      EXPECT_EQ(Strings(c["command"]), std::vector<std::string>{"/usr/local/bin/etcdsafe"});
    }
    YAML::Node sc = c["securityContext"];
    EXPECT_FALSE(sc["allowPrivilegeEscalation"].as<bool>(true));
    EXPECT_TRUE(sc["readOnlyRootFilesystem"].as<bool>(false));
    EXPECT_EQ(Strings(sc["capabilities"]["drop"]), std::vector<std::string>{"ALL"});
    EXPECT_TRUE(c["resources"]["requests"]["memory"]) << "no memory request";
    EXPECT_TRUE(c["resources"]["limits"]["memory"]) << "no memory limit";
    for (const auto& e : c["envFrom"]) {
      if (e["secretRef"]) {
        EXPECT_TRUE(secrets.count(e["secretRef"]["name"].as<std::string>()));
      }
    }

    std::vector<std::string> mounts;
    for (const auto& m : c["volumeMounts"]) {
      const std::string vol = m["name"].as<std::string>();
      EXPECT_TRUE(volumes.count(vol)) << "mount of undeclared volume " << vol;
      mounts.push_back(m["mountPath"].as<std::string>());
      if (vol == "etcd-pki" || vol == "config" || vol == "encryption-key") {
        EXPECT_TRUE(m["readOnly"].as<bool>(false)) << vol << " must be mounted read-only";
      }
    }
    Invocation inv = ParseArgs(d.file + " " + cname, Strings(c["args"]));
    ExpectFlagsExist(inv);
    for (const std::string& p : PathsIn(inv)) {
      EXPECT_TRUE(std::any_of(mounts.begin(), mounts.end(), [&](const std::string& m) { return Under(p, m); }))
          << p << " (in args) is not under any volumeMount";
    }
  }
}

TEST(DeployKubernetesTest, AgentDeploymentServiceAndServiceMonitorFitTogether) {
  auto docs = KubernetesDocs();
  auto ds = OfKind(docs, "Deployment");
  ASSERT_EQ(ds.size(), 1u);
  CheckPod(ds[0], docs);
  YAML::Node pod = PodSpec(ds[0]);
  YAML::Node c = pod["containers"][0];
  EXPECT_EQ(Strings(c["args"]), (std::vector<std::string>{"agent", "--config", "/etc/etcdsafe/agent.yaml"}));
  EXPECT_EQ(c["ports"][0]["name"].as<std::string>(), "metrics");
  EXPECT_EQ(c["ports"][0]["containerPort"].as<int>(), 9464);
  EXPECT_EQ(c["livenessProbe"]["httpGet"]["path"].as<std::string>(""), "/healthz");
  EXPECT_EQ(c["resources"]["limits"]["memory"].as<std::string>(), "256Mi");
  EXPECT_EQ(c["resources"]["requests"]["memory"].as<std::string>(), "64Mi");
  EXPECT_GT(pod["terminationGracePeriodSeconds"].as<int>(0), 30) << "longer than the agent's shutdown grace";

  // Selector == template labels; the Service selects the pods; the ServiceMonitor the Service.
  YAML::Node pod_labels = ds[0].node["spec"]["template"]["metadata"]["labels"];
  for (const auto& kv : ds[0].node["spec"]["selector"]["matchLabels"]) {
    EXPECT_EQ(pod_labels[kv.first.as<std::string>()].as<std::string>(""), kv.second.as<std::string>());
  }
  auto svcs = OfKind(docs, "Service");
  ASSERT_EQ(svcs.size(), 1u);
  for (const auto& kv : svcs[0].node["spec"]["selector"]) {
    EXPECT_EQ(pod_labels[kv.first.as<std::string>()].as<std::string>(""), kv.second.as<std::string>());
  }
  EXPECT_EQ(svcs[0].node["spec"]["ports"][0]["name"].as<std::string>(), "metrics");
  EXPECT_EQ(svcs[0].node["spec"]["ports"][0]["port"].as<int>(), 9464);
  auto sms = OfKind(docs, "ServiceMonitor");
  ASSERT_EQ(sms.size(), 1u);
  YAML::Node svc_labels = svcs[0].node["metadata"]["labels"];
  for (const auto& kv : sms[0].node["spec"]["selector"]["matchLabels"]) {
    EXPECT_EQ(svc_labels[kv.first.as<std::string>()].as<std::string>(""), kv.second.as<std::string>());
  }
  EXPECT_EQ(sms[0].node["spec"]["endpoints"][0]["port"].as<std::string>(), "metrics");
  EXPECT_EQ(sms[0].node["spec"]["endpoints"][0]["path"].as<std::string>(), "/metrics");

  // The S3 Secret carries exactly the variables the S3 client reads.
  bool s3_secret = false;
  for (const auto& s : OfKind(docs, "Secret")) {
    if (s.node["stringData"]["AWS_ACCESS_KEY_ID"] && s.node["stringData"]["AWS_SECRET_ACCESS_KEY"]) s3_secret = true;
  }
  EXPECT_TRUE(s3_secret);
}

TEST(DeployKubernetesTest, CronJobRunsRealCommandsWithRealFlags) {
  auto docs = KubernetesDocs();
  auto cj = OfKind(docs, "CronJob");
  ASSERT_EQ(cj.size(), 1u);
  EXPECT_EQ(cj[0].node["spec"]["concurrencyPolicy"].as<std::string>(""), "Forbid");
  EXPECT_FALSE(cj[0].node["spec"]["schedule"].as<std::string>("").empty());
  CheckPod(cj[0], docs);
  std::vector<std::string> commands;
  for (const auto& c : Containers(PodSpec(cj[0]))) commands.push_back(Strings(c["args"]).at(0));
  EXPECT_EQ(commands, (std::vector<std::string>{"backup", "prune"})) << "backup first, retention after it succeeded";
}

TEST(DeployKubernetesTest, FlagCheckCatchesAnUnknownFlag) {
  // The check above must be able to fail.
  EXPECT_FALSE(HelpHasFlag(HelpOf("backup"), "--no-such-flag"));
  EXPECT_FALSE(HelpHasFlag(HelpOf("backup"), "--encryption-key"));  // only --encryption-key-file/-env
  EXPECT_TRUE(HelpHasFlag(HelpOf("backup"), "--encryption-key-file"));
  EXPECT_TRUE(HelpHasFlag(HelpOf(""), "--cacert"));
}

// --- systemd ------------------------------------------------------------------------------

// key → values of a unit file, continuation lines joined, comments dropped.
std::multimap<std::string, std::string> UnitEntries(const std::string& path) {
  std::multimap<std::string, std::string> r;
  std::istringstream in(testutil::ReadFile(path));
  std::string line, logical;
  while (std::getline(in, line)) {
    if (logical.empty() && (line.starts_with("#") || line.starts_with(";") || line.starts_with("["))) continue;
    if (line.ends_with("\\")) {
      logical += line.substr(0, line.size() - 1) + " ";
      continue;
    }
    logical += line;
    size_t eq = logical.find('=');
    if (eq != std::string::npos) r.emplace(logical.substr(0, eq), logical.substr(eq + 1));
    logical.clear();
  }
  return r;
}

std::string One(const std::multimap<std::string, std::string>& u, const std::string& key) {
  auto [a, b] = u.equal_range(key);
  if (a == b) return "";
  EXPECT_EQ(std::distance(a, b), 1) << key << " given more than once";
  return a->second;
}

std::vector<std::string> All(const std::multimap<std::string, std::string>& u, const std::string& key) {
  std::vector<std::string> r;
  auto [a, b] = u.equal_range(key);
  for (auto it = a; it != b; ++it) {
    std::istringstream in(it->second);
    for (std::string w; in >> w;) r.push_back(w);
  }
  return r;
}

const std::string kUnits = kSource + "/deploy/systemd/";

void ExpectHardened(const std::string& unit) {
  SCOPED_TRACE(unit);
  auto u = UnitEntries(kUnits + unit);
  EXPECT_EQ(One(u, "User"), "etcdsafe");
  EXPECT_EQ(One(u, "ProtectSystem"), "strict");
  EXPECT_EQ(One(u, "ProtectHome"), "yes");
  EXPECT_EQ(One(u, "PrivateTmp"), "yes");
  EXPECT_EQ(One(u, "PrivateDevices"), "yes");
  EXPECT_EQ(One(u, "NoNewPrivileges"), "yes");
  EXPECT_EQ(One(u, "ProtectKernelTunables"), "yes");
  EXPECT_EQ(One(u, "ProtectKernelModules"), "yes");
  EXPECT_EQ(One(u, "ProtectKernelLogs"), "yes");
  EXPECT_EQ(One(u, "ProtectControlGroups"), "yes");
  EXPECT_EQ(One(u, "CapabilityBoundingSet"), "");
  EXPECT_EQ(All(u, "RestrictAddressFamilies"), (std::vector<std::string>{"AF_INET", "AF_INET6", "AF_UNIX"}));
  EXPECT_EQ(One(u, "StateDirectory"), "etcdsafe");
  std::vector<std::string> ro = All(u, "ReadOnlyPaths");
  EXPECT_TRUE(std::find(ro.begin(), ro.end(), "-/etc/kubernetes/pki/etcd") != ro.end());
  // Writable: the state dir (StateDirectory) and the local repository only.
  EXPECT_EQ(All(u, "ReadWritePaths"), std::vector<std::string>{"-/var/backups/etcd"});
}

TEST(DeploySystemdTest, UnitsAreHardened) {
  ExpectHardened("etcdsafe-agent.service");
  ExpectHardened("etcdsafe-backup.service");
  auto agent = UnitEntries(kUnits + "etcdsafe-agent.service");
  EXPECT_EQ(One(agent, "ExecStart"), "/usr/local/bin/etcdsafe agent --config /etc/etcdsafe/agent.yaml");
  EXPECT_EQ(One(agent, "ExecReload"), "/bin/kill -HUP $MAINPID");
  EXPECT_EQ(One(agent, "Restart"), "on-failure");
  EXPECT_EQ(One(agent, "KillSignal"), "SIGTERM");
  std::string stop = One(agent, "TimeoutStopSec");
  ASSERT_TRUE(stop.ends_with("s")) << stop;
  EXPECT_GT(std::stoi(stop), 30) << "longer than the agent's 30 s shutdown grace";
  auto backup = UnitEntries(kUnits + "etcdsafe-backup.service");
  EXPECT_EQ(One(backup, "Type"), "oneshot");
  auto timer = UnitEntries(kUnits + "etcdsafe-backup.timer");
  EXPECT_FALSE(One(timer, "OnCalendar").empty());
  EXPECT_EQ(One(timer, "Persistent"), "true");
  EXPECT_FALSE(One(timer, "RandomizedDelaySec").empty());
  EXPECT_EQ(One(timer, "Unit"), "etcdsafe-backup.service");
}

TEST(DeploySystemdTest, ExecLinesUseRealCommandsAndFlags) {
  size_t checked = 0;
  for (const char* unit : {"etcdsafe-agent.service", "etcdsafe-backup.service"}) {
    auto u = UnitEntries(kUnits + unit);
    std::vector<std::string> rw = All(u, "ReadWritePaths");
    for (const char* key : {"ExecStart", "ExecStartPost", "ExecStartPre"}) {
      auto [a, b] = u.equal_range(key);
      for (auto it = a; it != b; ++it) {
        std::vector<std::string> words;
        std::istringstream in(it->second);
        for (std::string w; in >> w;) words.push_back(w);
        ASSERT_FALSE(words.empty());
        ASSERT_EQ(words[0], "/usr/local/bin/etcdsafe") << unit << " " << key;
        Invocation inv = ParseArgs(std::string(unit) + " " + key, {words.begin() + 1, words.end()});
        ExpectFlagsExist(inv);
        for (const auto& [flag, value] : inv.flags) {
          if (flag == "--repo" && value.starts_with("file://")) {
            EXPECT_TRUE(std::any_of(rw.begin(), rw.end(),
                                    [&](const std::string& w) { return Under(value.substr(7), w.substr(w[0] == '-')); }))
                << unit << ": the local repository " << value << " is not in ReadWritePaths";
          }
        }
        checked++;
      }
    }
  }
  EXPECT_EQ(checked, 3u);  // agent ExecStart, backup ExecStart + ExecStartPost (prune)
}

// Copies the units into `dir` with ExecStart pointing at the built binary (verify checks
// that the executable exists); User= and everything else stay as shipped.
std::vector<std::string> CopyUnits(const TempDir& dir) {
  std::vector<std::string> paths;
  for (const char* unit : {"etcdsafe-agent.service", "etcdsafe-backup.service", "etcdsafe-backup.timer"}) {
    std::string text = testutil::ReadFile(kUnits + unit);
    for (size_t p; (p = text.find("/usr/local/bin/etcdsafe")) != std::string::npos;) {
      text.replace(p, std::string("/usr/local/bin/etcdsafe").size(), kBinary);
    }
    testutil::WriteFile(dir.Sub(unit), text);
    paths.push_back(dir.Sub(unit));
  }
  return paths;
}

testutil::CmdResult Verify(const std::vector<std::string>& paths) {
  // systemd-analyze verify works offline (no running systemd needed): it loads the files,
  // checks every directive, and that the executables exist.
  return testutil::Exec("systemd-analyze", testutil::Concat({"verify"}, paths), "SYSTEMD_LOG_COLOR=0");
}

TEST(DeploySystemdTest, SystemdAnalyzeVerifyPasses) {
  ASSERT_EQ(testutil::Shell("command -v systemd-analyze").code, 0) << "systemd-analyze missing: apt-get install systemd";
  TempDir dir;
  testutil::CmdResult r = Verify(CopyUnits(dir));
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  // Any message about our units is a finding (verify warns without failing, e.g. on unknown keys).
  std::istringstream in(r.out + r.err);
  for (std::string line; std::getline(in, line);) {
    EXPECT_EQ(line.find("etcdsafe"), std::string::npos) << line;
  }
}

TEST(DeploySystemdTest, VerifyWouldReportAMistake) {
  TempDir dir;
  auto paths = CopyUnits(dir);
  std::string text = testutil::ReadFile(paths[0]);
  text.replace(text.find("ProtectHome=yes"), 15, "ProtectHom=yes");
  testutil::WriteFile(paths[0], text);
  testutil::CmdResult r = Verify(paths);
  EXPECT_NE((r.out + r.err).find("Unknown key"), std::string::npos) << r.out << r.err;
}

// --- Dockerfile ---------------------------------------------------------------------------

TEST(DeployDockerfileTest, RuntimeStageInstallsEveryLibraryTheBinaryLinks) {
  const std::string df = testutil::ReadFile(kSource + "/Dockerfile");
  size_t runtime = df.rfind("\nFROM ");
  ASSERT_NE(runtime, std::string::npos);
  ASSERT_NE(df.find("FROM debian:12 AS build"), std::string::npos);
  const std::string stage = df.substr(runtime);
  EXPECT_NE(stage.find("FROM debian:12"), std::string::npos);
  EXPECT_NE(stage.find("ENTRYPOINT [\"/usr/local/bin/etcdsafe\"]"), std::string::npos);
  EXPECT_NE(stage.find("\nUSER "), std::string::npos);
  // The Debian package of each DT_NEEDED library (libc6, libstdc++6, libgcc-s1 are in the base image).
  testutil::CmdResult r = testutil::Shell(
      "for lib in $(readelf -d " + testutil::ShellQuote(kBinary) +
      " | sed -n 's/.*Shared library: \\[\\(.*\\)\\]/\\1/p'); do "
      "path=$(ldd " + testutil::ShellQuote(kBinary) + " | awk -v l=\"$lib\" '$1==l {print $3}'); "
      "dpkg -S \"$(realpath \"$path\")\" | cut -d: -f1; done | sort -u");
  ASSERT_EQ(r.code, 0) << r.err;
  std::istringstream in(r.out);
  size_t n = 0;
  for (std::string pkg; std::getline(in, pkg);) {
    if (pkg.empty() || pkg == "libc6" || pkg == "libstdc++6" || pkg == "libgcc-s1") continue;
    n++;
    EXPECT_TRUE(std::regex_search(stage, std::regex("[ \n]" + std::regex_replace(pkg, std::regex("[.+]"), "\\$&") +
                                                    "[ \n\\\\]")))
        << "runtime stage does not install " << pkg;
  }
  // At least OpenSSL, zstd and cpp-httplib (gRPC, protobuf, abseil, yaml-cpp are static).
  EXPECT_GE(n, 3u) << r.out;
}

}  // namespace
}  // namespace etcdsafe::agent
