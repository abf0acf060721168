// etcdsafe member list | add | remove | update | promote: etcdctl 3.4's commands
// (src/ops/member.h).
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "ops/member.h"
#include "print_output.h"

namespace etcdsafe::cli {
namespace {

struct MemberFlags {
  std::vector<std::string> args;
  std::string peer_urls;
  bool learner = false;
};

}  // namespace

void AddMemberCommands(CLI::App& app, GlobalFlags& g) {
  CLI::App* member = app.add_subcommand("member", "Membership related commands (list, add, remove, update, promote)");
  member->require_subcommand(1);
  member->fallthrough();

  CLI::App* list = member->add_subcommand("list", "Lists all members in the cluster");
  list->fallthrough();
  list->callback([&g] { PrintCommandOutput(ops::MemberList(ToClientConfig(g), g.write_out)); });

  auto add_f = std::make_shared<MemberFlags>();
  CLI::App* add = member->add_subcommand("add", "Adds a member into the cluster: member add <memberName> --peer-urls=URLs");
  add->add_option("name", add_f->args, "the new member's name");
  add->add_option("--peer-urls", add_f->peer_urls, "comma separated peer URLs for the new member");
  add->add_flag("--learner", add_f->learner, "indicates if the new member is raft learner");
  add->fallthrough();
  add->callback([&g, add_f] {
    PrintCommandOutput(ops::MemberAdd(ToClientConfig(g), add_f->args, add_f->peer_urls, add_f->learner, g.write_out));
  });

  auto rm_f = std::make_shared<MemberFlags>();
  CLI::App* rm = member->add_subcommand("remove", "Removes a member from the cluster: member remove <memberID (hex)>");
  rm->add_option("id", rm_f->args, "the member's ID in hex");
  rm->fallthrough();
  rm->callback([&g, rm_f] { PrintCommandOutput(ops::MemberRemove(ToClientConfig(g), rm_f->args, g.write_out)); });

  auto up_f = std::make_shared<MemberFlags>();
  CLI::App* up = member->add_subcommand("update", "Updates a member's peer URLs: member update <memberID> --peer-urls=URLs");
  up->add_option("id", up_f->args, "the member's ID in hex");
  up->add_option("--peer-urls", up_f->peer_urls, "comma separated peer URLs for the updated member");
  up->fallthrough();
  up->callback([&g, up_f] {
    PrintCommandOutput(ops::MemberUpdate(ToClientConfig(g), up_f->args, up_f->peer_urls, g.write_out));
  });

  auto pr_f = std::make_shared<MemberFlags>();
  CLI::App* pr = member->add_subcommand("promote", "Promotes a non-voting (learner) member: member promote <memberID>");
  pr->add_option("id", pr_f->args, "the learner's ID in hex");
  pr->fallthrough();
  pr->callback([&g, pr_f] { PrintCommandOutput(ops::MemberPromote(ToClientConfig(g), pr_f->args, g.write_out)); });
}

}  // namespace etcdsafe::cli
