// etcdsafe endpoint health | status | hashkv: etcdctl 3.4's commands (src/ops/endpoint.h).
#include <memory>

#include "commands.h"
#include "ops/endpoint.h"
#include "print_output.h"

namespace etcdsafe::cli {

void AddEndpointCommands(CLI::App& app, GlobalFlags& g) {
  CLI::App* ep = app.add_subcommand("endpoint", "Endpoint related commands (health, status, hashkv)");
  ep->require_subcommand(1);
  ep->fallthrough();
  auto cluster = std::make_shared<bool>(false);
  ep->add_flag("--cluster", *cluster, "use all endpoints from the cluster member list");

  CLI::App* health = ep->add_subcommand("health", "Checks the healthiness of endpoints specified in `--endpoints` flag");
  health->fallthrough();
  health->callback([&g, cluster] { PrintCommandOutput(ops::EndpointHealth(ToClientConfig(g), *cluster, g.write_out)); });

  CLI::App* status = ep->add_subcommand("status", "Prints out the status of endpoints specified in `--endpoints` flag");
  status->fallthrough();
  status->callback([&g, cluster] { PrintCommandOutput(ops::EndpointStatus(ToClientConfig(g), *cluster, g.write_out)); });

  auto rev = std::make_shared<int64_t>(0);
  CLI::App* hashkv = ep->add_subcommand("hashkv", "Prints the KV history hash for each endpoint in --endpoints");
  hashkv->add_option("--rev", *rev, "maximum revision to hash (default: all revisions)");
  hashkv->fallthrough();
  hashkv->callback([&g, cluster, rev] {
    PrintCommandOutput(ops::EndpointHashKV(ToClientConfig(g), *cluster, g.write_out, *rev));
  });
}

}  // namespace etcdsafe::cli
