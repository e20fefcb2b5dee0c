// Applications from YAML: kinds and their args errors, start order and reverse stop, start
// types deciding what an application's end does to the node, and the built-in kinds.
#include <atomic>
#include <deque>
#include <filesystem>
#include <future>
#include <sstream>
#include <string>
#include <thread>

#include <catch2/catch.hpp>
#include <grove/app/builtin_kinds.hpp>
#include <grove/app/service.hpp>
#include <grove/behaviours/partition_supervisor.hpp>
#include <grove/behaviours/pool.hpp>
#include <grove/grove.hpp>
#include <grove/runtime/test_kit.hpp>
#include <nlohmann/json.hpp>

#include "../observe/console_support.hpp"
#include "../runtime/support.hpp"
#include "service_support.hpp"
#ifdef GROVE_HAVE_BANK
#include <bank.hpp>
#endif

using namespace std::chrono_literals;
using grove::event;
using grove::event_kind;

namespace {

// The application events of a JSON-lines log, as "started store", "stopped web", ...
std::vector<std::string> app_events(const std::string& log) {
  std::vector<std::string> out;
  std::istringstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    if (j["kind"] == "application") out.push_back(j["label"].get<std::string>() + " " + j["child"].get<std::string>());
  }
  return out;
}

const char* two_apps = R"(
node: { name: t, schedulers: 1 }
applications:
  - name: web
    start: permanent
    depends_on: [store]
    supervisor:
      children:
        - { id: greeter, kind: echo, name: greeter, args: { prefix: "hi " } }
  - name: store
    start: permanent
    supervisor:
      children:
        - { id: counter, kind: counter, name: counter, args: { start: 40 } }
)";

}  // namespace

TEST_CASE("a kind's own check is reported once, at the value it is about", "[app]") {
  grove::service svc(builtins(), {.handle_signals = false});
  CHECK_FALSE(svc.load_string(R"(applications:
  - name: a
    supervisor:
      children:
        - { id: t, kind: ticker, args: { interval: 0s } }
        - { id: u, kind: ticker, args: { target: t } }
)",
                              "tick.yaml"));
  INFO(svc.errors().to_string());
  CHECK(svc.errors().size() == 1);  // u has no interval: the default, not a zero
  CHECK(svc.errors().to_string().find("tick.yaml:5:52: error: applications[0].supervisor.children[0].args.interval: "
                                      "must be more than 0") != std::string::npos);
}

TEST_CASE("a kind's bad args are configuration errors with their position, found before anything starts", "[app]") {
  grove::service svc(builtins(), {.handle_signals = false});
  CHECK_FALSE(svc.load_string(R"(applications:
  - name: a
    supervisor:
      children:
        - id: c
          kind: counter
          args: { start: many, stat: 1 }
        - id: t
          kind: ticker
          args: { interval: -1s }
)",
                              "bad.yaml"));
  const std::string all = svc.errors().to_string();
  INFO(all);
  CHECK(svc.errors().size() == 3);
  CHECK(all.find("bad.yaml:7:26: error: applications[0].supervisor.children[0].args.start") != std::string::npos);
  CHECK(all.find("bad.yaml:7:32: error: applications[0].supervisor.children[0].args.stat: unknown key") !=
        std::string::npos);
  CHECK(all.find("did you mean 'start'?") != std::string::npos);
  CHECK(all.find("applications[0].supervisor.children[1].args.interval") != std::string::npos);
}

TEST_CASE("a period that is not whole seconds is refused: OTP counts restarts in seconds", "[app]") {
  grove::service svc(builtins(), {.handle_signals = false});
  CHECK_FALSE(svc.load_string(R"(applications:
  - name: a
    supervisor: { period: 1500ms, children: [ { id: c, kind: counter } ] }
)",
                              "p.yaml"));
  // At the period's own line and column (the loader's rule, issue 12 item 4).
  CHECK(svc.errors().to_string().find("p.yaml:3:27: error: applications[0].supervisor.period: got 1500ms") !=
        std::string::npos);
}

TEST_CASE("applications start in dependency order, answer by name, and stop in reverse", "[app]") {
  running_service s;
  REQUIRE(s.load(two_apps));
  CHECK(s.svc.applications() == std::vector<std::string>{"store", "web"});
  s.start();
  REQUIRE(s.svc.wait_started(10s));
  REQUIRE(s.svc.application("store"));
  REQUIRE(s.svc.application("web"));
  s.svc.running_node()->run([] {
    CHECK(grove::call<std::string>(grove::server_ref("greeter"), std::string("you")) == "hi you");
    CHECK(grove::call<std::int64_t>(grove::server_ref("counter"), grove::builtin::add{2}) == 42);
    CHECK(grove::call<std::int64_t>(grove::server_ref("counter"), grove::builtin::get{}) == 42);
  });
  s.svc.stop();
  CHECK(s.join() == 0);
  CHECK(app_events(s.log.str()) ==
        std::vector<std::string>{"started store", "started web", "stopped web", "stopped store"});
}

TEST_CASE("a permanent application that dies stops the node with exit code 3", "[app]") {
  running_service s;
  REQUIRE(s.load(R"(
applications:
  - name: fine
    start: permanent
    supervisor: { children: [ { id: c, kind: counter, name: c } ] }
  - name: fragile
    start: permanent
    supervisor:
      intensity: 0
      children: [ { id: boom, kind: crasher, args: { after: 1ms } } ]
)"));
  s.start();
  CHECK(s.join() == static_cast<int>(grove::exit_code::application_failed));
  CHECK(s.messages.str().find("application fragile (permanent) exited with reason shutdown; the node stops") !=
        std::string::npos);
  // The other application was stopped too.
  CHECK(app_events(s.log.str()) ==
        std::vector<std::string>{"started fine", "started fragile", "stopped fragile", "stopped fine"});
}

TEST_CASE("the application controller's death stops the node with exit code 3, the applications in reverse", "[app]") {
  running_service s;
  REQUIRE(s.load(two_apps));
  std::promise<int> code;
  auto run = code.get_future();
  std::thread runner([&] { code.set_value(s.svc.run()); });
  REQUIRE(s.svc.wait_started(10s));
  s.svc.running_node()->run([] {
    for (auto& p : grove::this_node().processes()) {
      if (auto i = grove::info(p); i && i->label == "application_controller")
        grove::exit(p, grove::exit_reason::kill());
    }
  });
  const bool stopped = run.wait_for(10s) == std::future_status::ready;
  if (!stopped) s.svc.stop();  // else the run would only end at the shutdown deadline
  runner.join();
  CHECK(stopped);
  CHECK(run.get() == static_cast<int>(grove::exit_code::application_failed));
  CHECK(s.messages.str().find("the application controller died with reason killed; the node stops") !=
        std::string::npos);
  CHECK(app_events(s.log.str()) ==
        std::vector<std::string>{"started store", "started web", "stopped web", "stopped store"});
}

TEST_CASE("a temporary application's death is only reported; a transient one's abnormal death stops the node",
          "[app]") {
  SECTION("temporary") {
    running_service s;
    REQUIRE(s.load(R"(
applications:
  - name: keep
    start: permanent
    supervisor: { children: [ { id: c, kind: counter, name: c } ] }
  - name: drill
    start: temporary
    supervisor: { intensity: 0, children: [ { id: boom, kind: crasher, args: { after: 1ms } } ] }
)"));
    s.start();
    REQUIRE(s.svc.wait_started(10s));
    // Wait for the drill's end to be handled: the controller forgets the application.
    CHECK(grove_test::spin_until([&] { return !s.svc.application("drill"); }));
    CHECK(s.svc.application("keep"));
    s.svc.stop();
    CHECK(s.join() == 0);
    CHECK(s.messages.str().find("application drill (temporary) exited with reason shutdown") != std::string::npos);
  }
  SECTION("transient") {
    running_service s;
    REQUIRE(s.load(R"(
applications:
  - name: drill
    start: transient
    supervisor: { intensity: 0, children: [ { id: boom, kind: crasher, args: { after: 1ms } } ] }
)"));
    s.start();
    CHECK(s.join() == static_cast<int>(grove::exit_code::application_failed));
  }
}

TEST_CASE("an application that fails to start stops the ones started before it; exit code 4", "[app]") {
  auto kinds = builtins();
  kinds.add("broken", "fails to start", [](const grove::kind_context&) -> grove::child_start {
    return [] { return grove::start_result::failed(grove::exit_reason::other("no_database")); };
  });
  running_service s(std::move(kinds));
  REQUIRE(s.load(R"(
applications:
  - name: first
    start: permanent
    supervisor: { children: [ { id: c, kind: counter } ] }
  - name: second
    start: permanent
    supervisor: { children: [ { id: db, kind: broken } ] }
)"));
  s.start();
  CHECK(s.join() == static_cast<int>(grove::exit_code::start_failed));
  CHECK(
      s.messages.str().find("application second failed to start: {shutdown,{failed_to_start_child,db,no_database}}") !=
      std::string::npos);
  CHECK(app_events(s.log.str()) == std::vector<std::string>{"started first", "failed second", "stopped first"});
}

TEST_CASE("the built-in kinds: ticker feeds a counter, crasher crashes on command and is restarted", "[app]") {
  running_service s;
  REQUIRE(s.load(R"(
applications:
  - name: a
    supervisor:
      intensity: 5
      children:
        - { id: counter, kind: counter, name: counter }
        - { id: tick, kind: ticker, name: tick, args: { interval: 1ms, target: counter } }
        - { id: crash, kind: crasher, name: crash }
)"));
  s.start();
  REQUIRE(s.svc.wait_started(10s));
  s.svc.running_node()->run([] {
    // Ticks arrive every millisecond: wait (within a real-time budget) until three are counted.
    grove::testing::eventually(
        [] { return grove::call<std::int64_t>(grove::server_ref("counter"), grove::builtin::get{}) >= 3; },
        "the counter counted three ticks");
    CHECK(grove::call<std::uint64_t>(grove::server_ref("tick"), grove::builtin::ticks{}) >= 3);
    auto before = *grove::whereis("crash");
    grove::monitor(before);
    grove::cast(grove::server_ref("crash"), grove::builtin::crash_now{"drill"});
    auto d = grove::receive_for(10s, [](const grove::down& d) { return d.reason; });
    REQUIRE(d);
    CHECK(d->str().find("induced_crash: drill") != std::string::npos);
    // Restarted under the same name (the name is released before the down went out).
    grove::testing::eventually(
        [&] {
          auto now = grove::whereis("crash");
          return now && *now != before;
        },
        "crash restarted under its name");
  });
  s.svc.stop();
  CHECK(s.join() == 0);
}

TEST_CASE("crasher stages OTP scenarios; every end of a child is an exit event", "[app]") {
  running_service s;
  REQUIRE(s.load(R"(
applications:
  - name: a
    supervisor:
      intensity: 5
      children:
        - { id: done, kind: crasher, name: done, restart: transient, args: { stop: normal } }
        - { id: quits, kind: crasher, name: quits, restart: permanent, args: { stop: shutdown } }
        - id: slow
          kind: crasher
          name: slow
          shutdown: 100ms
          args: { trap_exit: true, terminate_sleep: 30s }
)"));
  s.start();
  REQUIRE(s.svc.wait_started(10s));
  s.svc.running_node()->run([] {
    auto sub = grove::events().subscribe(4096, grove::self());
    std::deque<event> seen;
    // The next event of kind k for child id (the others stay).
    auto next = [&](event_kind k, const std::string& id) -> std::optional<event> {
      const auto deadline = std::chrono::steady_clock::now() + 10s;
      for (;;) {
        for (auto it = seen.begin(); it != seen.end(); ++it) {
          if (it->kind == k && it->child == id) {
            event e = *it;
            seen.erase(it);
            return e;
          }
        }
        if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
        for (auto& e : sub->take()) seen.push_back(std::move(e));
        grove::receive_for(50ms, [](grove::subscription::ready) {});
      }
    };
    // A transient child ending normally: an exit event, no child_terminated, not restarted.
    grove::cast(grove::server_ref("done"), grove::builtin::crash_now{"finished"});
    auto e = next(event_kind::exit, "done");
    REQUIRE(e);
    CHECK(e->reason == grove::exit_reason::normal());
    CHECK(std::string(grove::level_of(*e)) == "debug");
    // A permanent child stopping with shutdown: reported and restarted.
    grove::cast(grove::server_ref("quits"), grove::builtin::crash_now{"bye"});
    e = next(event_kind::exit, "quits");
    REQUIRE(e);
    CHECK(e->reason == grove::exit_reason::shutdown());
    CHECK(next(event_kind::child_terminated, "quits"));
    CHECK(next(event_kind::progress, "quits"));
    // Trapping exits and slow to terminate: killed after its shutdown time, as OTP reports it.
    auto top = *grove::whereis("a");
    grove::terminate_child(top, "slow");
    e = next(event_kind::exit, "slow");
    REQUIRE(e);
    CHECK(e->reason == grove::exit_reason::killed());
    auto err = next(event_kind::shutdown_error, "slow");
    REQUIRE(err);
    CHECK(err->reason == grove::exit_reason::killed());
    for (auto& left : seen) CHECK_FALSE((left.kind == event_kind::child_terminated && left.child == "done"));
  });
  s.svc.stop();
  CHECK(s.join() == 0);
}

TEST_CASE("every shipped config in config/ loads with the built-in kinds and describes its whole tree", "[app]") {
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(GROVE_SOURCE_DIR) + "/config")) {
    if (entry.path().extension() != ".yaml") continue;
    auto kinds = builtins();
#ifdef GROVE_HAVE_BANK
    bank::add_kinds(kinds);
#else
    if (entry.path().filename().string().rfind("bank", 0) == 0) continue;  // needs the bank's kinds
#endif
    ++files;
    grove::service svc(std::move(kinds), {.handle_signals = false});
    INFO(entry.path().string());
    REQUIRE(svc.load_file(entry.path().string()));
    const std::string tree = svc.describe();
    // Every application and every child id of the file appears in the description.
    for (const auto& app : svc.config().applications) {
      CHECK(tree.find("application " + app.name + " (") != std::string::npos);
      std::vector<const grove::config::child_config*> todo;
      for (const auto& c : app.supervisor.children) todo.push_back(&c);
      while (!todo.empty()) {
        const auto* c = todo.back();
        todo.pop_back();
        CHECK(tree.find("  " + c->id + "  ") != std::string::npos);
        if (c->supervisor) {
          for (const auto& k : c->supervisor->children) todo.push_back(&k);
        }
      }
    }
  }
  CHECK(files >= 1);
}

TEST_CASE("pools and partition supervisors are declared in YAML as kinds made of other kinds", "[app]") {
  running_service s;
  REQUIRE(s.load(R"(
applications:
  - name: a
    supervisor:
      children:
        - id: echoes
          kind: pool
          name: echoes
          args: { size: 2, max_overflow: 1, strategy: fifo, worker: { kind: echo, args: { prefix: "> " } } }
        - id: counters
          kind: partition_supervisor
          name: counters
          shutdown: infinity
          args: { partitions: 3, child: { kind: counter, args: { start: 10 } } }
)"));
  s.start();
  REQUIRE(s.svc.wait_started(10s));
  s.svc.running_node()->run([] {
    CHECK(grove::pool_status_of("echoes").idle == 2);
    CHECK(grove::transaction("echoes", [](grove::pid w) { return grove::call<std::string>(w, std::string("x")); }) ==
          "> x");
    CHECK(grove::partition_count("counters") == 3);
    auto p = grove::partition_whereis("counters", std::string("account-7"));
    REQUIRE(p);
    CHECK(grove::call<std::int64_t>(*p, grove::builtin::add{5}) == 15);
    CHECK(grove::whereis("counters.0"));
    CHECK(grove::whereis("counters.2"));
  });
  s.svc.stop();
  CHECK(s.join() == 0);

  grove::service bad(builtins(), {.handle_signals = false});
  CHECK_FALSE(bad.load_string(R"(applications:
  - name: a
    supervisor:
      children:
        - { id: p, kind: pool, args: { worker: { kind: ehco } } }
        - { id: q, kind: partition_supervisor, args: { child: { kind: counter } } }
)",
                              "b.yaml"));
  const std::string all = bad.errors().to_string();
  INFO(all);
  CHECK(all.find("b.yaml:5:48: error: applications[0].supervisor.children[0].args.worker.kind: unknown kind 'ehco'") !=
        std::string::npos);
  CHECK(all.find("applications[0].supervisor.children[1].args: a partition_supervisor needs a name") !=
        std::string::npos);
}

// ---- names, templates, the service's own threads ----------------------------------------------

namespace {
const char* named_tree = R"(
node: { name: t, schedulers: 2 }
applications:
  - name: shop
    start: permanent
    supervisor:
      children:
        - id: back
          name: back_office
          supervisor:
            children:
              - { id: counter, kind: counter, name: tills, args: { start: 1 } }
        - id: jobs
          name: jobs
          dynamic_supervisor:
            max_children: 10
            template: { kind: counter, restart: temporary, args: { start: 5 } }
)";

// The console's port, from the line the service prints when it opens it.
int console_port(const std::string& messages) {
  const std::string mark = "connect with: ";
  const auto at = messages.find(mark);
  if (at == std::string::npos) return 0;
  const auto colon = messages.find(':', at + mark.size());
  return colon == std::string::npos ? 0 : std::atoi(messages.c_str() + colon + 1);
}
}  // namespace

TEST_CASE("supervisors, dynamic supervisors and applications are registered under their YAML names", "[app]") {
  running_service s;
  REQUIRE(s.load(named_tree));
  s.start();
  REQUIRE(s.svc.wait_started(10s));
  const auto top = s.svc.application("shop");
  REQUIRE(top);
  CHECK(s.svc.describe().find("jobs  dynamic_supervisor, intensity 1 in 5s, max_children 10, template kind counter "
                              "(temporary), name jobs") != std::string::npos);
  s.svc.running_node()->run([&] {
    CHECK(grove::whereis("shop") == top);  // an application's top supervisor: its name
    const auto back = grove::whereis("back_office");
    REQUIRE(back);
    CHECK(grove::which_children("back_office").at(0).id == "counter");
    // Code reaches the declared dynamic supervisor by name and starts jobs under it.
    grove::child_spec job;
    job.id = "job";
    job.restart = grove::restart_type::temporary;
    job.start = [] { return grove::start_result::started(grove::spawn_link([] { grove::receive([](int) {}); })); };
    auto r = grove::start_dynamic_child("jobs", job);
    REQUIRE(r);
    CHECK(grove::count_dynamic_children("jobs").active == 1);
  });
}

TEST_CASE("a name used by a child and an application is refused: the application registers its supervisor", "[app]") {
  grove::service svc(builtins(), {.handle_signals = false});
  CHECK_FALSE(svc.load_string(R"(applications:
  - name: shop
    supervisor:
      children:
        - { id: c, kind: counter, name: shop }
)",
                              "dup.yaml"));
  CHECK(svc.errors().to_string().find("dup.yaml:5:41: error: applications[0].supervisor.children[0].name: duplicate "
                                      "registered name 'shop'") != std::string::npos);
  CHECK(svc.errors().to_string().find("an application registers its top supervisor under its name") !=
        std::string::npos);
}

TEST_CASE("a dynamic supervisor's template: checked at load, started from the console with args merged", "[app]") {
  {
    auto errors_of = [](const std::string& templ) {
      grove::service bad(builtins(), {.handle_signals = false});
      CHECK_FALSE(
          bad.load_string("applications:\n  - name: a\n    supervisor:\n      children:\n"
                          "        - id: jobs\n          dynamic_supervisor:\n            template: " +
                              templ + "\n",
                          "t.yaml"));
      return bad.errors().to_string();
    };
    CHECK(errors_of("{ kind: counter, name: x }")
              .find("t.yaml:7:40: error: applications[0].supervisor.children[0]."
                    "dynamic_supervisor.template.name: not allowed on a template") != std::string::npos);
    CHECK(errors_of("{ supervisor: {} }").find("template.supervisor: a template is a worker") != std::string::npos);
    CHECK(errors_of("{ kind: counter, backoff: { min: 1s } }").find("template.backoff: not allowed on a template") !=
          std::string::npos);
    // The kind checks the template's own args at load time, as any child's.
    CHECK(errors_of("{ kind: counter, args: { start: nope } }").find("template.args.start") != std::string::npos);
  }
  running_service s(builtins(), {}, "127.0.0.1:0");
  REQUIRE(s.load(named_tree));
  s.start();
  REQUIRE(s.svc.wait_started(10s));
  const int port = console_port(s.messages.str());
  REQUIRE(port > 0);
  client c(port);
  c.until("grove> ");
  const std::string started = c.ask("start shop/jobs {start: 40}");
  INFO(started);
  REQUIRE(started.rfind("started shop/jobs/<", 0) == 0);
  const auto pid_text = started.substr(std::string("started shop/jobs/").size(),
                                       started.find('>') + 1 - std::string("started shop/jobs/").size());
  const auto job = grove::parse_pid(pid_text);
  REQUIRE(job);
  s.svc.running_node()->run([&] {
    CHECK(grove::call<std::int64_t>(*job, grove::builtin::add{2}) == 42);  // the console's start, not 5
  });
  const std::string plain = c.ask("start shop/jobs");
  CHECK(plain.rfind("started shop/jobs/<", 0) == 0);  // the template's args alone
  CHECK(c.ask("start shop/jobs {start: many}").find("error: start shop/jobs: the template refused the args") !=
        std::string::npos);
  CHECK(c.ask("start shop/jobs {start: [}").find("error: start shop/jobs:") != std::string::npos);
  CHECK(c.ask("start shop/back").find("error: shop/back is not a dynamic supervisor") != std::string::npos);
  CHECK(c.ask("start shop/nothing").find("error: no child 'nothing' under shop") != std::string::npos);
  CHECK(c.ask("tree shop/jobs").find(pid_text) != std::string::npos);
}

TEST_CASE("service hooks: started once the tree is up, stopping before the applications stop", "[app]") {
  std::promise<bool> found_at_start, found_at_stop;
  grove::service_hooks hooks;
  hooks.started = [&](grove::node& n) {
    found_at_start.set_value(n.run([] { return grove::whereis("tills").has_value(); }));
  };
  hooks.stopping = [&](grove::node& n) {
    found_at_stop.set_value(n.run([] { return grove::whereis("tills").has_value(); }));
  };
  running_service s(builtins(), hooks);
  REQUIRE(s.load(named_tree));
  s.start();
  auto at_start = found_at_start.get_future();
  REQUIRE(at_start.wait_for(10s) == std::future_status::ready);
  CHECK(at_start.get());
  s.svc.stop();
  CHECK(s.join() == 0);
  auto at_stop = found_at_stop.get_future();
  REQUIRE(at_stop.wait_for(0s) == std::future_status::ready);
  CHECK(at_stop.get());  // the applications were still up
}

TEST_CASE("a thread of the service calls in with a client; once the node stops it gets node_stopping", "[app]") {
  std::thread worker;
  std::promise<std::int64_t> answered;
  std::atomic<bool> quit{false};
  std::promise<std::string> ended_with;
  grove::service_hooks hooks;
  hooks.started = [&](grove::node& n) {
    worker = std::thread([&n, &answered, &quit, &ended_with] {
      grove::client c(n);
      answered.set_value(c.call<std::int64_t>("tills", grove::builtin::add{41}));
      while (!quit.load()) {
        try {
          c.call<std::int64_t>("tills", grove::builtin::get{});
        } catch (const std::exception& e) {
          ended_with.set_value(e.what());
          return;
        }
      }
      ended_with.set_value("quit");
    });
  };
  hooks.stopping = [&](grove::node&) {
    quit = true;
    worker.join();
  };
  running_service s(builtins(), hooks);
  REQUIRE(s.load(named_tree));
  s.start();
  auto a = answered.get_future();
  REQUIRE(a.wait_for(10s) == std::future_status::ready);
  CHECK(a.get() == 42);
  s.svc.stop();
  CHECK(s.join() == 0);
  CHECK(ended_with.get_future().get() == "quit");  // stopped by its hook, before the applications
}
