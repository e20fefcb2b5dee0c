// The event bus: supervisor reports (progress, child_terminated, start_error, shutdown_error,
// intensity_reached), crash reports, bounded subscribers with a dropped marker, and the logger
// in text and JSON lines.
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <grove/grove.hpp>
#include <grove/runtime/test_kit.hpp>
#include <nlohmann/json.hpp>

#include "../runtime/support.hpp"

using namespace grove_test;
using grove::event;
using grove::event_kind;
using grove::exit_reason;

namespace {

struct crash_now {};
struct up {
  grove::pid who;
};

class worker final : public grove::gen_server<worker> {
 public:
  using handles = grove::types<crash_now>;
  explicit worker(grove::pid observer = {}) : observer_(observer) {}
  grove::init_result init() {
    if (observer_) grove::send(observer_, up{grove::self()});
    return grove::init_result::ok();
  }
  void handle_cast(const crash_now&) { throw std::runtime_error("boom"); }

 private:
  grove::pid observer_;
};

grove::child_spec worker_child(const std::string& id, grove::pid observer = {}) {
  grove::child_spec s;
  s.id = id;
  s.start = [observer] { return grove::start_link(std::make_unique<worker>(observer)); };
  return s;
}

// A subscription read from a process: the test kit's event reader.
using reader = grove::testing::event_reader;

auto kind_is(event_kind k) {
  return [k](const event& e) { return e.kind == k; };
}

}  // namespace

TEST_CASE("a supervisor reports each child start as progress, with its path and pid", "[events]") {
  grove::node n({.schedulers = 1});
  n.run([] {
    reader sub;
    std::vector<grove::child_spec> inner{worker_child("leaf")};
    auto top =
        grove::start_supervisor({}, {worker_child("a"), grove::supervisor_child("sub", {}, inner)}, {.name = "top"});
    REQUIRE(top);
    auto a = sub.next(kind_is(event_kind::progress));
    CHECK(a.supervisor == "top");
    CHECK(a.supervisor_pid == top.pid());
    CHECK(a.child == "a");
    CHECK(a.new_pid);
    CHECK(a.node == "grove");
    auto leaf = sub.next(kind_is(event_kind::progress));
    CHECK(leaf.supervisor == "top/sub");
    CHECK(leaf.child == "leaf");
    auto sub_started = sub.next(kind_is(event_kind::progress));
    CHECK(sub_started.supervisor == "top");
    CHECK(sub_started.child == "sub");
    CHECK(a.seq < leaf.seq);
    CHECK(leaf.seq < sub_started.seq);
    grove::stop(top.pid());
  });
}

TEST_CASE("a nested supervisor keeps its path when its start suspends while another supervisor starts a child",
          "[events][supervisor]") {
  // Issue 11 item 6: the path went through a thread_local, so a start function that suspended
  // let another supervisor on the thread overwrite it. It is now the starting process's state.
  grove::node n({.schedulers = 1});
  n.run([] {
    reader sub;
    const grove::pid me = grove::self();
    grove::child_spec slow = grove::supervisor_child("nested", {}, {worker_child("leaf")});
    auto start_nested = slow.start;
    slow.start = [me, start_nested] {
      grove::send(me, ready{grove::self()});
      grove::receive([](go) {});  // suspended while "other" starts its child
      return start_nested();
    };
    auto first = grove::spawn([slow] { grove::start_supervisor({}, {slow}, {.name = "first"}).value(); });
    const grove::pid waiting = grove::receive([](ready r) { return r.who; });
    auto other = grove::start_supervisor({}, {worker_child("x")}, {.name = "other"});
    REQUIRE(other);
    grove::send(waiting, go{});
    auto leaf = sub.next([](const event& e) { return e.kind == event_kind::progress && e.child == "leaf"; });
    CHECK(leaf.supervisor == "first/nested");
    grove::stop(other.pid());
    (void)first;
  });
}

TEST_CASE("a crashed child is reported with its reason and the restart window, then its restart", "[events]") {
  grove::node n({.schedulers = 1});
  n.run([] {
    reader sub;
    auto top = grove::start_supervisor({.intensity = 3, .period = std::chrono::seconds(7)}, {worker_child("w")},
                                       {.name = "top"});
    REQUIRE(top);
    auto first = sub.next(kind_is(event_kind::progress));
    grove::cast(first.new_pid, crash_now{});
    auto t = sub.next(kind_is(event_kind::child_terminated));
    CHECK(t.child == "w");
    CHECK(t.old_pid == first.new_pid);
    CHECK(t.reason.what() == exit_reason::kind::error);
    CHECK(t.reason.detail().find("boom") != std::string::npos);
    CHECK(t.restarts == 1);
    CHECK(t.intensity == 3);
    CHECK(t.period_s == 7);
    auto again = sub.next(kind_is(event_kind::progress));
    CHECK(again.child == "w");
    CHECK(again.new_pid != first.new_pid);
    grove::stop(top.pid());
  });
}

TEST_CASE("every crash of any process is reported; ends by signal, normal or shutdown are not", "[events]") {
  grove::node n({.schedulers = 1});
  n.run([] {
    reader sub;
    grove::trap_exit(true);
    auto quiet1 = grove::spawn_link([] {});                                         // normal
    auto quiet2 = grove::spawn_link([] { grove::exit(exit_reason::shutdown()); });  // shutdown
    auto victim = grove::spawn_link([] { grove::receive([](go) {}); });
    grove::exit(victim, exit_reason::other("from_outside"));  // ended by a signal: not its crash
    for (auto p : {quiet1, quiet2, victim}) {
      grove::receive(grove::when<grove::exit_signal>([p](const grove::exit_signal& e) { return e.from == p; },
                                                     [](const grove::exit_signal&) {}));
    }
    auto crasher = grove::spawn_link([] { throw std::logic_error("bad state"); }, {.label = "crasher"});
    auto c = sub.next([](const event& e) { return e.kind == event_kind::crash; });
    CHECK(c.old_pid == crasher);  // the first crash reported is this one: the others were not crashes
    CHECK(c.label == "crasher");
    CHECK(c.reason.detail().find("bad state") != std::string::npos);
  });
}

TEST_CASE("a failed start is reported as start_error", "[events]") {
  grove::node n({.schedulers = 1});
  n.run([] {
    reader sub;
    grove::child_spec bad;
    bad.id = "bad";
    bad.start = [] { return grove::start_result::failed(exit_reason::other("no_config")); };
    auto top = grove::start_supervisor({}, {bad}, {.name = "top"});
    CHECK_FALSE(top);
    auto e = sub.next(kind_is(event_kind::start_error));
    CHECK(e.supervisor == "top");
    CHECK(e.child == "bad");
    CHECK(e.reason == exit_reason::other("no_config"));
  });
}

TEST_CASE("a child that ignores shutdown is killed and reported as shutdown_error", "[events]") {
  grove::testing::deterministic_node dn;
  dn.run([&] {
    reader sub;
    const grove::pid test = grove::self();
    grove::child_spec stubborn;
    stubborn.id = "stubborn";
    stubborn.shutdown = grove::shutdown_spec::after(std::chrono::seconds(2));
    stubborn.start = [test] {
      return grove::start_result::started(grove::spawn_link([test] {
        grove::trap_exit(true);
        grove::send(test, up{grove::self()});
        for (;;) {  // ignores the shutdown, but says it got it
          grove::receive([test](const grove::exit_signal& s) { grove::send(test, s); });
        }
      }));
    };
    auto top = grove::start_supervisor({}, {stubborn}, {.name = "top"});
    REQUIRE(top);
    auto child = grove::receive_for(10s, [](up u) { return u.who; });
    REQUIRE(child);
    auto stopper = grove::spawn([top] { grove::terminate_child(top.pid(), "stubborn"); });
    auto m = grove::monitor(stopper);
    // One scheduler: the child sees the shutdown only once the supervisor waits on its timer.
    auto seen = grove::receive_for(10s, [](const grove::exit_signal& s) { return s.reason; });
    REQUIRE(seen);
    CHECK(*seen == exit_reason::shutdown());
    dn.advance(std::chrono::seconds(3));
    await_down(m);
    auto e = sub.next(kind_is(event_kind::shutdown_error));
    CHECK(e.child == "stubborn");
    CHECK(e.old_pid == *child);
    CHECK(e.reason.what() == exit_reason::kind::killed);
    grove::stop(top.pid());
  });
}

TEST_CASE("reaching the intensity is reported with the offender and the count", "[events]") {
  grove::testing::deterministic_node dn;
  dn.run([] {
    reader sub;
    grove::trap_exit(true);
    auto top = grove::start_supervisor_link({.intensity = 1}, {worker_child("w", grove::self())}, {.name = "top"});
    REQUIRE(top);
    for (int i = 0; i < 2; ++i) {
      auto w = grove::receive_for(10s, [](up u) { return u.who; });
      REQUIRE(w);
      grove::cast(*w, crash_now{});
    }
    auto e = sub.next(kind_is(event_kind::intensity_reached));
    CHECK(e.supervisor == "top");
    CHECK(e.child == "w");
    CHECK(e.restarts == 2);
    CHECK(e.intensity == 1);
    CHECK(e.reason.detail().find("boom") != std::string::npos);
    auto x = grove::receive_for(10s, [](const grove::exit_signal& s) { return s.reason; });
    REQUIRE(x);
    CHECK(*x == exit_reason::shutdown());
  });
}

TEST_CASE("a full subscriber loses events, never the publisher's time, and is told how many", "[events]") {
  grove::node n({.schedulers = 1});
  auto& bus = grove::events(n);
  auto slow = bus.subscribe(2);
  auto fast = bus.subscribe(100);
  for (int i = 0; i < 5; ++i) {
    event e;
    e.kind = event_kind::progress;
    e.child = "c" + std::to_string(i);
    bus.publish(e);
  }
  auto got = slow->take();
  REQUIRE(got.size() == 3);
  CHECK(got[0].child == "c0");
  CHECK(got[1].child == "c1");
  CHECK(got[2].kind == event_kind::dropped);
  CHECK(got[2].dropped == 3);
  CHECK(to_text(got[2]) == "dropped count=3");
  CHECK(fast->take().size() == 5);
  // After the marker the flow resumes.
  bus.publish(event{});
  auto after = slow->take();
  REQUIRE(after.size() == 1);
  CHECK(after[0].kind == event_kind::progress);
  CHECK(bus.recent(3).size() == 3);
  CHECK(bus.recent(3).back().seq == bus.last_seq());
}

TEST_CASE("a process subscriber is told once that events wait, until it takes them", "[events]") {
  grove::node n({.schedulers = 1});
  n.run([] {
    auto sub = grove::events().subscribe(16, grove::self());
    grove::events().publish(event{});
    grove::events().publish(event{});
    CHECK(grove::receive_for(10s, [](grove::subscription::ready) { return true; }));
    CHECK_FALSE(grove::receive_for(0s, [](grove::subscription::ready) { return true; }));
    CHECK(sub->take().size() == 2);
    grove::events().publish(event{});
    CHECK(grove::receive_for(10s, [](grove::subscription::ready) { return true; }));
  });
}

TEST_CASE("events as JSON lines carry the documented fields", "[events]") {
  event e;
  e.kind = event_kind::child_terminated;
  e.seq = 7;
  e.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1764070800123));
  e.node = "demo";
  e.supervisor = "bank/accounts";
  e.child = "ledger";
  e.reason = exit_reason::error("std::runtime_error: \"quoted\" \xff");
  e.restarts = 2;
  e.intensity = 3;
  e.period_s = 5;
  auto j = nlohmann::json::parse(to_json(e));
  CHECK(j["time"] == "2025-11-25T11:40:00.123Z");
  CHECK(j["seq"] == 7);
  CHECK(j["kind"] == "child_terminated");
  CHECK(j["level"] == "error");
  CHECK(j["node"] == "demo");
  CHECK(j["supervisor"] == "bank/accounts");
  CHECK(j["supervisor_pid"].is_null());
  CHECK(j["child"] == "ledger");
  CHECK(j["old_pid"].is_null());
  CHECK(j["new_pid"].is_null());
  CHECK(j["reason"].get<std::string>().find("quoted") != std::string::npos);
  CHECK(j["restarts"] == 2);
  CHECK(j["intensity"] == 3);
  CHECK(j["period_s"] == 5);
  CHECK(to_json(e).find('\n') == std::string::npos);
  CHECK(to_text(e).rfind("child_terminated supervisor=bank/accounts child=ledger reason=", 0) == 0);
  // An event that is not about a process ending has no reason: a node going down.
  event down;
  down.kind = event_kind::nodedown;
  down.label = "erl@host";
  down.text = "the peer closed the connection";
  auto dj = nlohmann::json::parse(to_json(down));
  CHECK(dj["reason"].is_null());
  CHECK(dj["text"] == "the peer closed the connection");
  CHECK(to_text(down).find("nodedown erl@host: the peer closed the connection") != std::string::npos);
}

TEST_CASE("the logger writes each event as text or JSON lines, at or above its level", "[events]") {
  grove::node n({.schedulers = 1, .name = "logtest"});
  std::ostringstream text, json, errors_only;
  grove::event_logger t(n, {.stream = &text});
  grove::event_logger j(n, {.format = grove::log_format::json, .stream = &json});
  grove::event_logger e(n, {.level = "error", .stream = &errors_only});
  n.run([] {
    reader sub;
    auto top = grove::start_supervisor({}, {worker_child("w")}, {.name = "top"});
    REQUIRE(top);
    auto first = sub.next(kind_is(event_kind::progress));
    grove::cast(first.new_pid, crash_now{});
    sub.next(kind_is(event_kind::child_terminated));
    sub.next(kind_is(event_kind::progress));
    grove::stop(top.pid());
  });
  REQUIRE(t.flush());
  REQUIRE(j.flush());
  REQUIRE(e.flush());
  CHECK(text.str().find(" info logtest progress supervisor=top child=w new_pid=") != std::string::npos);
  CHECK(text.str().find(" error logtest child_terminated supervisor=top child=w old_pid=") != std::string::npos);
  CHECK(text.str().find(" error logtest crash ") != std::string::npos);
  CHECK(errors_only.str().find("progress") == std::string::npos);
  CHECK(errors_only.str().find("child_terminated") != std::string::npos);
  std::istringstream lines(json.str());
  std::string line;
  int n_lines = 0;
  while (std::getline(lines, line)) {
    auto obj = nlohmann::json::parse(line);
    CHECK(obj["node"] == "logtest");
    ++n_lines;
  }
  CHECK(n_lines >= 4);  // progress, crash, child_terminated, progress
}

TEST_CASE("a child spec's stack size, mailbox capacity and id reach the child's process", "[events]") {
  grove::node n({.schedulers = 1});
  n.run([] {
    grove::child_spec s;
    s.id = "tuned";
    s.stack_size = 128 * 1024;
    s.mailbox_capacity = 7;
    s.start = [] { return grove::start_result::started(grove::spawn_link([] { grove::receive([](go) {}); })); };
    auto top = grove::start_supervisor({}, {s});
    REQUIRE(top);
    auto who = grove::which_children(top.pid()).at(0).who;
    auto i = grove::info(who);
    REQUIRE(i);
    CHECK(i->label == "tuned");
    CHECK(i->stack_size >= 128 * 1024);
    for (int k = 0; k < 10; ++k) grove::send(who, ping{});
    CHECK(grove::info(who)->mailbox_length == 7);
    grove::stop(top.pid());
  });
}

TEST_CASE("a process that runs past long_schedule without suspending is reported once, by label",
          "[events][watchdog]") {
  // Issue 16 item 4: nothing reported a process that kept its thread.
  grove::node n({.schedulers = 2, .long_schedule = std::chrono::milliseconds(50)});
  std::atomic<bool> release{false};
  n.run([&] {
    reader sub;
    auto spinner = grove::spawn(
        [&] {
          while (!release.load()) {
          }  // a busy loop: never suspends until released
        },
        {.label = "spinner"});
    event e = sub.next(kind_is(event_kind::long_schedule));
    release = true;
    CHECK(e.old_pid == spinner);
    CHECK(e.label == "spinner");
    CHECK(e.ran >= std::chrono::milliseconds(50));
    CHECK(grove::to_text(e).find("long_schedule label=spinner") != std::string::npos);
    CHECK(nlohmann::json::parse(grove::to_json(e))["ran_ms"].get<long>() >= 50);
    CHECK(std::string(grove::level_of(e)) == "warning");
    await_down(grove::monitor(spinner));
    // Reported once for that activation, however long it ran.
    std::size_t reports = 0;
    for (auto& r : grove::events().recent())
      if (r.kind == event_kind::long_schedule && r.old_pid == spinner) ++reports;
    CHECK(reports == 1);
  });
}

TEST_CASE("a supervisor keeps its shutdown deadline with a child that does not suspend", "[events][watchdog]") {
  // Issue 16 item 4: a busy loop in the child kept its supervisor waiting as long as it ran.
  grove::node n({.schedulers = 2});
  std::atomic<bool> release{false};
  std::atomic<bool> spinning{false};
  n.run([&] {
    reader sub;
    grove::child_spec stuck;
    stuck.id = "stuck";
    stuck.shutdown = grove::shutdown_spec::after(std::chrono::milliseconds(200));
    stuck.start = [&] {
      return grove::start_result::started(grove::spawn_link([&] {
        grove::trap_exit(true);  // ignores the shutdown; only a kill could end it
        spinning = true;
        while (!release.load()) {
        }
      }));
    };
    auto sup = grove::start_supervisor({}, {stuck}).value();
    auto child = sub.next(kind_is(event_kind::progress)).new_pid;
    while (!spinning.load()) grove::yield();
    CHECK(grove::terminate_child(sup, "stuck"));
    // It returned while the child still spins: counted killed, not waited on.
    CHECK(grove::alive(child));
    event e = sub.next(kind_is(event_kind::shutdown_error));
    CHECK(e.old_pid == child);
    CHECK(e.reason.what() == exit_reason::kind::killed);
    auto r = grove::monitor(child);
    release = true;
    await_down(r);  // the queued kill ends it at its next suspension
    CHECK(grove::which_children(sup).size() == 1);
    grove::stop(sup);
  });
}
