// The example files that scripts/check-schema also validates against the JSON Schema: the
// loader accepts every valid/ file and rejects every invalid/ one, so schema and loader agree.
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <grove/config/config.hpp>

namespace cfg = grove::config;
namespace fs = std::filesystem;

namespace {

const fs::path examples = fs::path(__FILE__).parent_path() / "examples";

std::vector<fs::path> yaml_files(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".yaml") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// The examples see an empty environment, so their ${NAME:-default}s take the defaults.
cfg::load_options options() {
  cfg::load_options o;
  o.getenv = [](const char*) -> const char* { return nullptr; };
  return o;
}

}  // namespace

TEST_CASE("every valid example loads", "[config]") {
  auto files = yaml_files(examples / "valid");
  REQUIRE(files.size() >= 5);
  for (const auto& f : files) {
    auto r = cfg::load_file(f.string(), options());
    INFO(f.filename().string() << "\n" << r.errors.to_string());
    CHECK(r.config.has_value());
  }
}

TEST_CASE("every invalid example is rejected", "[config]") {
  auto files = yaml_files(examples / "invalid");
  REQUIRE(files.size() >= 10);
  for (const auto& f : files) {
    auto r = cfg::load_file(f.string(), options());
    INFO(f.filename().string());
    CHECK_FALSE(r.config.has_value());
    CHECK_FALSE(r.errors.empty());
    // Every error points into a file, at a line (a syntax error too).
    for (const auto& d : r.errors) CHECK(d.pos.line > 0);
  }
}

TEST_CASE("the override example merges over its base", "[config]") {
  auto r = cfg::load_file((examples / "valid" / "override.yaml").string(), options());
  REQUIRE(r.config);
  CHECK(r.config->name == "production");
  CHECK(r.config->schedulers == 1);
  CHECK(r.config->logging.level == cfg::log_level::info);
  CHECK(r.config->logging.format == cfg::log_format::json);
  REQUIRE(r.config->applications.size() == 1);
  CHECK(fs::path(r.config->applications[0].pos.file).filename() == "base.yaml");
}

TEST_CASE("the environment example takes its defaults", "[config]") {
  auto r = cfg::load_file((examples / "valid" / "environment.yaml").string(), options());
  REQUIRE(r.config);
  CHECK(r.config->name == "env-demo");
  CHECK(r.config->console.port == 7070);
  CHECK(r.config->applications[0].supervisor.children[0].mailbox_capacity == 100u);
  CHECK(r.config->applications[0].env.get<std::string>("price") == "$5");
}
