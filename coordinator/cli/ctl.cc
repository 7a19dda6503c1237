#include "coordinator/cli/ctl.h"

#include <stdlib.h>

#include <CLI/CLI.hpp>

#include "absl/status/status.h"
#include "common/tls/credentials.h"
#include "common/validation/validation.h"
#include "coordinator/cli/ctl_commands.h"

namespace jailover::cli {
namespace {

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* value = getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

// Builds the command tree; `action` is set to the command that was parsed.
class CommandTree {
 public:
  CommandTree(CLI::App& app, GlobalOptions& options, CommandArgs& args)
      : app_(app), options_(options), args_(args) {}

  void Build() {
    CLI::App& app = app_;
    GlobalOptions& options = options_;
    CommandArgs& a = args_;
    app.require_subcommand(1);
    app.fallthrough();
    app.add_option("--coordinator", options.coordinator,
                   "Coordinator address HOST:PORT, or several comma-separated (a standby passes "
                   "the call on to the next; env JAILOVER_COORDINATOR)")
        ->capture_default_str();
    app.add_option("--tls_cert", options.tls.cert_file,
                   "PEM client certificate (env JAILOVER_TLS_CERT)");
    app.add_option("--tls_key", options.tls.key_file,
                   "PEM key of --tls_cert (env JAILOVER_TLS_KEY)");
    app.add_option("--tls_ca", options.tls.ca_file,
                   "PEM CA of the coordinator (env JAILOVER_TLS_CA)");
    app.add_flag("--insecure", options.tls.insecure,
                 "No TLS, for development and the lab (env JAILOVER_INSECURE=1)");
    app.add_option("--timeout", options.timeout_seconds, "Seconds to wait for the coordinator")
        ->check(CLI::Range(0.1, 3600.0))
        ->capture_default_str();
    app.add_option("-o,--output", options.output, "Output format: table or json")
        ->check(CLI::IsMember({"table", "json"}))
        ->capture_default_str();

    // Cluster.
    Leaf(&app, "version", "Print the client's and the coordinator's version", RunVersion)
        ->add_flag("--client", a.client_only, "Only the client's version; no connection");
    Leaf(&app, "status", "Cluster overview: coordinator, store, hosts, jails", RunStatus);

    // Hosts.
    CLI::App* host = Group("host", "Hosts: list, inspect, drain, maintenance, fencing");
    Leaf(host, "list", "List hosts with their state", RunHostList)
        ->add_option("--state", a.states, "Only hosts in these states (READY, FENCED, ...)")
        ->delimiter(',');
    Name(Leaf(host, "get", "One host in detail", RunHostGet), "HOST");
    Wait(Reason(Name(Leaf(host, "drain", "Move every jail off a host by migration", RunHostDrain),
                     "HOST")));
    Name(Leaf(host, "undrain", "Let a drained host take jails again", RunHostUndrain), "HOST");
    CLI::App* maintenance = Wait(Reason(
        Name(Leaf(host, "maintenance", "Put a host in maintenance (--on) or take it out (--off)",
                  RunHostMaintenance),
             "HOST")));
    CLI::Option* on = maintenance->add_flag("--on", a.maintenance_on, "Enter maintenance");
    CLI::Option* off = maintenance->add_flag("--off", a.maintenance_off, "Leave maintenance");
    on->excludes(off);
    maintenance->add_option("--duration", a.duration,
                            "With --on: maintenance ends by itself after this long (2h)");
    Name(Leaf(host, "mark-fenced", "Declare a host FENCED on your word (audited)",
              RunHostMarkFenced),
         "HOST")
        ->add_option("--reason", a.reason, "Required: why the host cannot write")
        ->required();
    Reason(Name(Leaf(host, "readmit", "Readmit a FENCED host that runs nothing", RunHostReadmit),
                "HOST"));
    Name(Leaf(host, "remove", "Forget a host that holds no jails and no images", RunHostRemove),
         "HOST");

    // Images.
    CLI::App* image = Group("image", "Images: the network disks that hold jail roots");
    File(Leaf(image, "apply", "Create or update images from a spec file", RunImageApply));
    Leaf(image, "list", "List images with their grants", RunImageList);
    Name(Leaf(image, "get", "One image in detail", RunImageGet), "IMAGE");
    Name(Leaf(image, "delete", "Delete an image definition no jail uses", RunImageDelete), "IMAGE")
        ->add_flag("--delete-file", a.delete_file, "Also remove the backing file");

    // VIPs.
    CLI::App* vip = Group("vip", "VIPs: CARP-shared service addresses");
    PasswordFiles(File(Leaf(vip, "apply", "Create or update VIPs from a spec file", RunVipApply)));
    Leaf(vip, "list", "List VIPs", RunVipList);
    Name(Leaf(vip, "delete", "Delete a VIP definition no jail uses", RunVipDelete), "VIP");

    // Jails.
    CLI::App* jail = Group("jail", "Jails: apply, inspect, restart, delete");
    CLI::App* jail_apply =
        Wait(File(Leaf(jail, "apply", "Create or update jails from a spec file", RunJailApply)));
    jail_apply->add_flag("--dry-run", a.dry_run, "Validate and plan only; change nothing");
    CLI::App* jail_list = Leaf(jail, "list", "List jails with their phase and host", RunJailList);
    jail_list->add_option("--host", a.host, "Only jails on this host");
    jail_list->add_option("--phase", a.states, "Only jails in these phases (RUNNING, ERROR, ...)")
        ->delimiter(',');
    Name(Leaf(jail, "get", "One jail in detail", RunJailGet), "JAIL");
    Wait(Name(Leaf(jail, "delete", "Stop a jail, release its image and forget it", RunJailDelete),
              "JAIL"));
    Wait(Reason(
        Name(Leaf(jail, "restart", "Stop and start a jail in place", RunJailRestart), "JAIL")));

    // Everything in one file.
    PasswordFiles(Wait(
        File(Leaf(&app, "apply", "Apply a multi-document spec file: Images, then Vips, then Jails",
                  RunApply))));

    // Moves.
    CLI::App* migrate = Wait(Reason(
        Name(Leaf(&app, "migrate", "Planned migration of a running jail", RunMigrate), "JAIL")));
    migrate->add_option("--to", a.to_host, "Target host; default: chosen like a failover");
    CLI::App* failover = Wait(
        Name(Leaf(&app, "failover",
                  "Fence the jail's host from its image and start it on a standby", RunFailover),
             "JAIL"));
    failover->add_option("--to", a.to_host, "Target host; default: the first READY standby");
    failover->add_option("--reason", a.reason, "Required: recorded in the event log")->required();

    // Dry run.
    CLI::App* plan = Group("plan", "Dry run: what would happen; changes nothing");
    Name(Leaf(plan, "fail-host", "What if this host failed now?", RunPlanFailHost), "HOST")
        ->add_flag("--fail-on-error", a.fail_on_error, "Exit 3 if the plan has an ERROR problem");
    CLI::App* plan_migrate =
        Name(Leaf(plan, "migrate", "What if I migrated this jail?", RunPlanMigrate), "JAIL");
    plan_migrate->add_option("--to", a.to_host, "Target host; default: let the coordinator choose");
    plan_migrate->add_flag("--fail-on-error", a.fail_on_error,
                           "Exit 3 if the plan has an ERROR problem");

    // Operations and events.
    CLI::App* op = Group("op", "Operations: what the coordinator did and does");
    CLI::App* op_list = Leaf(op, "list", "List operations, newest first", RunOpList);
    op_list->add_option("--jail", a.jail, "Only operations on this jail");
    op_list->add_option("--host", a.host, "Only operations on this host");
    op_list->add_option("--state", a.states, "Only operations in these states")->delimiter(',');
    op_list->add_option("--limit", a.limit, "At most this many (coordinator default 50)");
    Name(Leaf(op, "get", "One operation with its steps", RunOpGet), "ID");

    CLI::App* events = Leaf(&app, "events", "The event log, optionally followed", RunEvents);
    events->add_option("--from", a.from_sequence, "First sequence number (0 = oldest retained)");
    events->add_flag("--follow,-f", a.follow, "Keep streaming new events until Ctrl-C");
    events->add_option("--jail", a.jail, "Only events of this jail");
    events->add_option("--host", a.host, "Only events of this host");
    events->add_option("--type", a.types, "Only events of these types (host.state, ...)")
        ->delimiter(',');

    // Certificates.
    CLI::App* pki =
        Group("pki", "Certificates: the cluster CA and every identity (no coordinator)");
    CLI::App* pki_init =
        Leaf(pki, "init", "Make the cluster CA: DIR/ca.pem and DIR/ca.key", RunPkiInit);
    pki_init->add_option("--dir", a.dir, "Directory of the CA")->required();
    pki_init->add_option("--name", a.name, "Name in the CA's subject")->capture_default_str();
    pki_init->add_option("--days", a.days, "Validity in days")
        ->check(CLI::Range(1, 36500))
        ->default_val(3650);
    pki_init->add_flag("--force", a.force, "Replace an existing CA");
    CLI::App* pki_issue =
        Leaf(pki, "issue", "Issue a certificate: DIR/ROLE-NAME.pem and .key, signed by DIR/ca.*",
             RunPkiIssue);
    pki_issue->add_option("--dir", a.dir, "Directory of the CA")->required();
    pki_issue->add_option("--role", a.role, "coordinator, agent, operator or viewer")
        ->required()
        ->check(CLI::IsMember({"coordinator", "agent", "operator", "viewer"}));
    pki_issue
        ->add_option("--name", a.name,
                     "Coordinator name, agent host name, or operator/viewer user name")
        ->required();
    pki_issue->add_option("--dns", a.dns, "Extra DNS names a client dials this server by")
        ->delimiter(',');
    pki_issue->add_option("--ip", a.ips, "IP addresses a client dials this server at")
        ->delimiter(',');
    pki_issue->add_option("--days", a.days, "Validity in days")
        ->check(CLI::Range(1, 3650))
        ->default_val(365);
    pki_issue->add_flag("--force", a.force, "Replace existing files (renewal)");
    Name(Leaf(pki, "show", "What a certificate says: identity, names, validity", RunPkiShow),
         "FILE");
  }

  Command action() const { return action_; }

 private:
  CLI::App* Group(const std::string& name, const std::string& description) {
    CLI::App* group = app_.add_subcommand(name, description);
    group->require_subcommand(1);
    return group;
  }

  CLI::App* Leaf(CLI::App* parent, const std::string& name, const std::string& description,
                 Command command) {
    CLI::App* leaf = parent->add_subcommand(name, description);
    leaf->callback([this, command] { action_ = command; });
    return leaf;
  }

  CLI::App* Name(CLI::App* leaf, const std::string& what) {
    leaf->add_option(what, args_.name, what)->required();
    return leaf;
  }

  CLI::App* Reason(CLI::App* leaf) {
    leaf->add_option("--reason", args_.reason, "Why, for the event log");
    return leaf;
  }

  CLI::App* Wait(CLI::App* leaf) {
    leaf->add_flag("--wait", args_.wait, "Follow the operation until it ends; exit 3 if it fails");
    return leaf;
  }

  CLI::App* File(CLI::App* leaf) {
    leaf->add_option("-f,--file", args_.file, "YAML spec file (docs/specs.md)")->required();
    return leaf;
  }

  // Off by default: a spec file from elsewhere must not make us read and send
  // any file the operator can read (docs/specs.md, password_file).
  CLI::App* PasswordFiles(CLI::App* leaf) {
    leaf->add_flag("--allow-absolute-password-files", args_.allow_absolute_password_files,
                   "Also read a Vip's password_file given as an absolute path (by default only "
                   "files inside the spec file's directory are read)");
    return leaf;
  }

  CLI::App& app_;
  GlobalOptions& options_;
  CommandArgs& args_;
  Command action_ = nullptr;
};

}  // namespace

int RunCtl(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  GlobalOptions options;
  options.coordinator = EnvOr("JAILOVER_COORDINATOR", options.coordinator);
  options.tls.cert_file = EnvOr("JAILOVER_TLS_CERT", "");
  options.tls.key_file = EnvOr("JAILOVER_TLS_KEY", "");
  options.tls.ca_file = EnvOr("JAILOVER_TLS_CA", "");
  options.tls.insecure = EnvOr("JAILOVER_INSECURE", "") == "1";
  CommandArgs args;

  CLI::App app{"jailoverctl: operate a jailover cluster", "jailoverctl"};
  CommandTree tree(app, options, args);
  tree.Build();
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    out << app.help();
    return kExitOk;
  } catch (const CLI::CallForAllHelp&) {
    out << app.help("", CLI::AppFormatMode::All);
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    err << "jailoverctl: " << e.what() << "\n"
        << "Run with --help for usage.\n";
    return kExitUsage;
  }
  const Command action = tree.action();
  if (action == nullptr) {
    err << "jailoverctl: no command\n";
    return kExitUsage;
  }

  // Address and TLS need checking only when a command dials the coordinator.
  const bool dials = !(action == &RunVersion && args.client_only) && action != &RunPkiInit &&
                     action != &RunPkiIssue && action != &RunPkiShow;
  if (dials) {
    absl::Status valid = common::ValidateTlsOptions(options.tls);
    const std::vector<std::string> endpoints = CoordinatorEndpoints(options.coordinator);
    if (endpoints.empty()) valid = absl::InvalidArgumentError("--coordinator is empty");
    for (const std::string& endpoint : endpoints) {
      if (valid.ok()) valid = common::ValidateHostPort("--coordinator", endpoint);
    }
    if (!valid.ok()) {
      err << "jailoverctl: " << valid.message() << "\n";
      return kExitUsage;
    }
  }
  const CommandContext ctx{options, out, err};
  return action(ctx, args);
}

}  // namespace jailover::cli
