#include <sstream>
#include <unordered_set>

#include <catch2/catch.hpp>
#include <grove/grove.hpp>

TEST_CASE("a pid is a small ordered, hashable value printed as <node.slot.generation>", "[runtime][pid]") {
  grove::pid a(1, 42, 3), b(1, 42, 4), c(1, 43, 1);
  CHECK(a.str() == "<1.42.3>");
  std::ostringstream os;
  os << c;
  CHECK(os.str() == "<1.43.1>");
  CHECK(a < b);
  CHECK(b < c);
  CHECK(a == grove::pid(1, 42, 3));
  CHECK(a != b);
  std::unordered_set<grove::pid> set{a, b, c, a};
  CHECK(set.size() == 3);
  CHECK_FALSE(grove::pid{});
  CHECK(a);
  static_assert(sizeof(grove::pid) <= 16);
}

TEST_CASE("exit reasons print as OTP terms and classify like OTP", "[runtime][exit_reason]") {
  using grove::exit_reason;
  CHECK(exit_reason::normal().str() == "normal");
  CHECK(exit_reason::shutdown().str() == "shutdown");
  CHECK(exit_reason::shutdown("reload").str() == "{shutdown,reload}");
  CHECK(exit_reason::killed().str() == "killed");
  CHECK(exit_reason::kill().str() == "kill");
  CHECK(exit_reason::noproc().str() == "noproc");
  CHECK(exit_reason::error("std::runtime_error: boom").str() == "{error,std::runtime_error: boom}");
  CHECK(exit_reason::other("bad_config").str() == "bad_config");
  CHECK(exit_reason::normal().is_normal());
  CHECK(exit_reason::shutdown("x").is_shutdown());
  CHECK_FALSE(exit_reason::shutdown().is_crash());
  CHECK(exit_reason::killed().is_crash());
  CHECK(exit_reason::error("x").is_crash());
  CHECK(exit_reason{} == exit_reason::normal());
  CHECK_FALSE(exit_reason::shutdown("a") == exit_reason::shutdown("b"));
}

TEST_CASE("the process-only API outside a process throws not_in_process", "[runtime]") {
  CHECK_THROWS_AS(grove::self(), grove::not_in_process);
  CHECK_THROWS_AS(grove::receive([](int) {}), grove::not_in_process);
  CHECK_THROWS_AS(grove::spawn([] {}), grove::not_in_process);
  CHECK_THROWS_AS(grove::link(grove::pid(1, 1, 1)), grove::not_in_process);
}
