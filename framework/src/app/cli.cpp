// The `grove` command line (docs/cli.md).
#include <grove/app/service.hpp>
#include <grove/config/limits.hpp>
#include <grove/dist/distribution.hpp>

#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include <boost/program_options.hpp>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "config/values.hpp"
#include "console_client.hpp"

namespace grove {

namespace po = boost::program_options;

namespace {

// The usage, under the name the program was started as (a service linking cli_main is not
// `grove`).
std::string usage_text(const std::string& prog) {
  const std::string pad(prog.size(), ' ');
  return "usage: " + prog +
         " run FILE.yaml [--schedulers N] [--console ADDR] [--http ADDR] [--log-format text|json]\n" + "       " + pad +
         "     [--sname NAME | --name NAME@HOST] [--cookie-file PATH]\n" + "       " + prog + " check FILE.yaml\n" +
         "       " + prog + " console [ADDR]\n" + "       " + prog + " --help | --version\n";
}

const char* help_text =
    "Runs a Grove node declared in YAML: its applications and their supervision trees.\n"
    "\n"
    "commands:\n"
    "  run FILE     start the node and its applications; SIGINT or SIGTERM stops them in\n"
    "               reverse order. Events (starts, crashes, restarts) are logged to stderr.\n"
    "  check FILE   validate the file (YAML, tree, kinds and their args), print the tree;\n"
    "               every error is listed with file:line:column\n"
    "  console ADDR connect to a running node's debug console (host[:port], default\n"
    "               127.0.0.1:7070), with line editing and history on a terminal; from a\n"
    "               pipe, sends each line and prints its answer. Exits 1 when it cannot\n"
    "               reach the node (docs/console.md)\n"
    "\n"
    "exit codes: 0 stopped cleanly, 1 invalid configuration, 2 bad command line,\n"
    "            3 a permanent (or abnormally ended transient) application, or the\n"
    "              application controller, died and stopped the node,\n"
    "            4 an application failed to start, 5 stopping exceeded the deadline\n"
    "\n";

// Digits only (no sign, no suffix), at most `max`.
std::optional<std::int64_t> whole_number(const std::string& text, std::int64_t max) {
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || text[0] == '-' || text[0] == '+' || ec != std::errc{} || end != text.data() + text.size() ||
      v > max)
    return std::nullopt;
  return v;
}

std::string program_name(int argc, const char* const* argv) {
  if (argc < 1 || !argv[0] || !*argv[0]) return "grove";
  const std::string name = std::filesystem::path(argv[0]).filename().string();
  return name.empty() ? "grove" : name;
}

// A console address without a port gets the default one: `grove console 10.0.0.5`.
std::string with_default_port(const std::string& addr) {
  const std::string def = detail::default_console_address;
  const std::string port = def.substr(def.rfind(':') + 1);
  if (addr.starts_with('[')) return addr.ends_with(']') ? addr + ":" + port : addr;
  return addr.find(':') == std::string::npos ? addr + ":" + port : addr;
}

}  // namespace

namespace {
// One glibc malloc arena for the whole process, unless its environment chooses: with an arena
// per thread, a process allocating on whichever scheduler thread runs it leaves free pages
// among live objects in one arena while another grows, and RSS climbs for minutes under
// restarts while the live heap stays flat (docs/reliability.md, item 4 of the soak's findings).
// Set before the node's threads first allocate.
void one_malloc_arena() {
#if defined(__GLIBC__)
  if (!std::getenv("MALLOC_ARENA_MAX") && !std::getenv("GLIBC_TUNABLES")) mallopt(M_ARENA_MAX, 1);
#endif
}
}  // namespace

int cli_main(int argc, const char* const* argv, kind_registry kinds, service_hooks hooks) {
  one_malloc_arena();
  const std::string prog = program_name(argc, argv);
  auto usage_error = [&](const std::string& what) {
    std::cerr << prog << ": " << what << "\n" << usage_text(prog);
    return static_cast<int>(exit_code::usage);
  };
  po::options_description opts("options");
  opts.add_options()("help,h", "show this help")("version", "show the version")(
      "schedulers", po::value<std::string>(), "scheduler threads (run; default: node.schedulers, else one per core)")(
      "console", po::value<std::string>(), "console address: host:port, stdio or off (run; over node.console)")(
      "http", po::value<std::string>(),
      "dashboard, API and /metrics address: host:port or off (run; over node.http.listen)")(
      "sname", po::value<std::string>(),
      "join an Erlang cluster as NAME@thishost, as erl -sname (run; over node.distribution)")(
      "name", po::value<std::string>(),
      "join an Erlang cluster as NAME@fully.qualified.host (or NAME@HOST), as erl -name (run)")(
      "cookie-file", po::value<std::string>(),
      "the cluster's cookie, read from PATH (run; else GROVE_COOKIE, else ~/.erlang.cookie)")(
      "log-format", po::value<std::string>(), "text or json (run; over node.logging.format)")(
      "shutdown-timeout", po::value<std::string>(),
      "seconds to stop the applications before giving up (run; default 30)");
  po::options_description hidden;
  hidden.add_options()("command", po::value<std::string>())("file", po::value<std::vector<std::string>>());
  po::options_description all;
  all.add(opts).add(hidden);
  po::positional_options_description pos;
  pos.add("command", 1).add("file", -1);

  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return usage_error(e.what());
  }
  if (vm.count("help")) {
    std::cout << usage_text(prog) << "\n" << help_text << opts;
    return 0;
  }
  if (vm.count("version")) {
    std::cout << "grove " << version() << "\n";
    return 0;
  }
  if (!vm.count("command")) return usage_error("no command given");
  const std::string command = vm["command"].as<std::string>();
  if (command == "console") {
    std::vector<std::string> addr;
    if (vm.count("file")) addr = vm["file"].as<std::vector<std::string>>();
    if (addr.size() > 1) return usage_error("console takes at most one ADDR (host:port)");
    return detail::run_console_client(addr.empty() ? detail::default_console_address : with_default_port(addr[0]));
  }
  if (command != "run" && command != "check") {
    const std::string hint = config::detail::did_you_mean(command, {"run", "check", "console"});
    return usage_error("unknown command '" + command + "'" + (hint.empty() ? "" : " (" + hint + ")"));
  }
  std::vector<std::string> files;
  if (vm.count("file")) files = vm["file"].as<std::vector<std::string>>();
  if (files.size() != 1) return usage_error(command + " takes one FILE.yaml");
  if (std::error_code ec; !std::filesystem::is_regular_file(files[0], ec)) {
    return usage_error(std::filesystem::exists(files[0], ec) ? files[0] + " is not a file"
                                                             : "no such file: " + files[0]);
  }

  service_options so;
  so.hooks = std::move(hooks);
  // The same bounds as the YAML (config/limits.hpp); the console address is checked by load,
  // with the configuration's token, so `check` refuses what `run` would.
  if (vm.count("schedulers")) {
    auto n = whole_number(vm["schedulers"].as<std::string>(), config::limits::max_schedulers);
    if (!n || *n < 1) {
      return usage_error("--schedulers takes an integer between 1 and " +
                         std::to_string(config::limits::max_schedulers) + ", not '" +
                         vm["schedulers"].as<std::string>() + "'");
    }
    so.schedulers = static_cast<unsigned>(*n);
  }
  if (vm.count("console")) so.console = vm["console"].as<std::string>();
  if (vm.count("http")) so.http = vm["http"].as<std::string>();
  if (vm.count("sname") && vm.count("name")) return usage_error("give --sname or --name, not both");
  for (const char* flag : {"sname", "name"}) {
    if (!vm.count(flag)) continue;
    const std::string v = vm[flag].as<std::string>();
    if (std::string problem = dist::node_name_problem(v); !problem.empty())
      return usage_error("--" + std::string(flag) + ": " + problem);
    (std::string_view(flag) == "sname" ? so.sname : so.name) = v;
  }
  if (vm.count("cookie-file")) so.cookie_file = vm["cookie-file"].as<std::string>();
  if (vm.count("log-format")) {
    const std::string f = vm["log-format"].as<std::string>();
    if (f == "text") {
      so.log_format = config::log_format::text;
    } else if (f == "json") {
      so.log_format = config::log_format::json;
    } else {
      return usage_error("--log-format must be text or json, not '" + f + "'");
    }
  }
  if (vm.count("shutdown-timeout")) {
    auto s = whole_number(vm["shutdown-timeout"].as<std::string>(), config::limits::max_shutdown_timeout_s);
    if (!s) {
      return usage_error("--shutdown-timeout takes seconds between 0 and " +
                         std::to_string(config::limits::max_shutdown_timeout_s) + ", not '" +
                         vm["shutdown-timeout"].as<std::string>() + "'");
    }
    so.shutdown_timeout = std::chrono::seconds(*s);
  }

  so.program = argv[0];
  service svc(std::move(kinds), so);
  if (!svc.load_file(files[0])) {
    std::cerr << svc.errors().to_string() << "grove: " << files[0] << ": " << svc.errors().size()
              << (svc.errors().size() == 1 ? " error" : " errors") << "\n";
    return static_cast<int>(exit_code::config_error);
  }
  if (command == "check") {
    std::cout << svc.describe() << files[0] << ": ok\n";
    return 0;
  }
  std::cerr << "grove: node " << (svc.config().name.empty() ? "grove" : svc.config().name) << " starting "
            << svc.applications().size() << " application(s) from " << files[0] << "; Ctrl-C stops it\n";
  return svc.run();
}

}  // namespace grove
