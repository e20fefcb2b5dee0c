#include <string>

#include <catch2/catch.hpp>
#include <grove/behaviours/gen_server.hpp>
#include <grove/behaviours/keyed_registry.hpp>
#include <grove/grove.hpp>
#include <grove/runtime/test_kit.hpp>

#include "../runtime/support.hpp"

using namespace grove_test;

namespace {
struct whoami {};
class named final : public grove::gen_server<named> {
 public:
  using handles = grove::types<whoami, std::string>;
  explicit named(std::string tag) : tag_(std::move(tag)) {}
  std::string handle_call(const whoami&, const grove::from&) { return tag_; }
  void handle_cast(const std::string& s) { tag_ = s; }

 private:
  std::string tag_;
};
}  // namespace

TEST_CASE("a server started via a keyed registry key is called and cast through that key", "[gen_server][via]") {
  grove::testing::deterministic_node n;
  grove::keyed_registry<std::string> reg(n, {.keys = grove::keys::unique});
  n.run([&] {
    auto r = grove::start(std::make_unique<named>("first"), {.via = grove::via(reg, std::string("room/1"))});
    REQUIRE(r);
    auto ref = grove::via(reg, std::string("room/1"));
    CHECK(grove::call<std::string>(ref, whoami{}) == "first");
    grove::cast(ref, std::string("renamed"));
    CHECK(grove::call<std::string>(ref, whoami{}) == "renamed");
    auto again = grove::start(std::make_unique<named>("second"), {.via = grove::via(reg, std::string("room/1"))});
    CHECK(again.what() == grove::start_result::kind::already_started);
    CHECK(again.pid() == r.pid());
    grove::stop(ref);
    CHECK_FALSE(reg.find("room/1"));  // released with the process
    CHECK(grove::try_call<std::string>(ref, whoami{}).error == grove::exit_reason::noproc());
  });
}
