// grove::client: a plain thread calls, casts, sends and receives through a process of its own;
// failures are OTP's (noproc, timeout), and a stopped node fails its operations instead of
// hanging them.
#include <atomic>
#include <future>
#include <string>
#include <thread>

#include <catch2/catch.hpp>
#include <grove/grove.hpp>

using namespace std::chrono_literals;

namespace {

struct get {};
struct put {
  int v;
};
struct hold {};  // the server takes it and never answers
struct ping {
  grove::pid to;
};
struct pong {
  int n;
};

class cell final : public grove::gen_server<cell> {
 public:
  using handles = grove::types<get, put, hold, ping>;
  int handle_call(const get&, const grove::from&) { return v_; }
  grove::deferred_t handle_call(const hold&, const grove::from&) { return grove::deferred; }
  void handle_cast(const put& p) { v_ = p.v; }
  void handle_info(const ping& p) { grove::send(p.to, pong{v_}); }

 private:
  int v_ = 0;
};

grove::pid start_cell(grove::node& n) {
  return n.run([] { return grove::start(std::make_unique<cell>(), {.name = "cell"}).value(); });
}

}  // namespace

TEST_CASE("client: a plain thread calls, casts and receives replies sent to its own pid", "[client]") {
  grove::node n({.schedulers = 2});
  const grove::pid server = start_cell(n);
  grove::client c(n);
  CHECK(c.call<int>("cell", get{}) == 0);
  c.cast("cell", put{7});
  CHECK(c.call<int>(server, get{}) == 7);  // casts and calls from one client stay in order
  grove::send(server, ping{c.self()});
  auto p = c.receive<pong>(5s);
  REQUIRE(p);
  CHECK(p->n == 7);
  CHECK_FALSE(c.receive<pong>(10ms));  // nothing more came
  // Several steps in the client's process at once.
  CHECK(c.run([&] { return grove::call<int>("cell", get{}) + grove::call<int>(server, get{}); }) == 14);
}

TEST_CASE("client: OTP's failures reach the thread — noproc for a dead name, timeout", "[client]") {
  grove::node n({.schedulers = 2});
  start_cell(n);
  grove::client c(n);
  try {
    c.call<int>("nobody", get{});
    FAIL("a call to a dead name returned");
  } catch (const grove::call_error& e) {
    CHECK(e.reason() == grove::exit_reason::noproc());
  }
  auto r = c.try_call<int>("cell", hold{}, 20ms);
  CHECK_FALSE(r);
  CHECK(r.error == grove::exit_reason::timeout());
  CHECK(c.call<int>("cell", get{}) == 0);  // the client goes on
}

TEST_CASE("client: threads each with a client call one server at once", "[client]") {
  grove::node n({.schedulers = 2});
  start_cell(n);
  std::vector<std::thread> threads;
  std::atomic<int> answered{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      grove::client c(n);
      for (int i = 0; i < 200; ++i) {
        if (c.call<int>("cell", get{}) == 0) ++answered;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(answered == 800);
}

TEST_CASE("client: when the node stops, a waiting call fails instead of hanging, later ones throw node_stopping",
          "[client]") {
  auto n = std::make_unique<grove::node>(grove::node_options{.schedulers = 2});
  start_cell(*n);
  grove::client c(*n);
  std::promise<std::string> outcome;
  std::thread caller([&] {
    try {
      c.call<int>("cell", hold{}, grove::duration::max());  // never answered
      outcome.set_value("returned");
    } catch (const grove::node_stopping&) {
      outcome.set_value("node_stopping");
    } catch (const grove::call_error& e) {
      outcome.set_value("call_error " + e.reason().str());
    } catch (const std::exception& e) {
      outcome.set_value(e.what());
    }
  });
  // The call is under way once the server holds it.
  REQUIRE(n->run([] {
    for (int i = 0; i < 100000; ++i) {
      if (grove::sys::statistics("cell").calls == 1) return true;
      grove::yield();
    }
    return false;
  }));
  n->stop();
  auto f = outcome.get_future();
  REQUIRE(f.wait_for(10s) == std::future_status::ready);
  // Whichever the stop ends first: the client's process (node_stopping) or the server, whose
  // end fails the call as in OTP.
  const std::string how = f.get();
  CHECK((how == "node_stopping" || how == "call_error shutdown" || how == "call_error killed"));
  caller.join();
  CHECK_THROWS_AS(c.call<int>("cell", get{}), grove::node_stopping);
}

TEST_CASE("client: inside a process it refuses to block the scheduler thread", "[client]") {
  grove::node n({.schedulers = 1});
  grove::client outside(n);
  const std::string what = n.run([&] {
    try {
      outside.call<int>("cell", get{});
    } catch (const std::logic_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  });
  CHECK(what.find("blocks its thread") != std::string::npos);
}
