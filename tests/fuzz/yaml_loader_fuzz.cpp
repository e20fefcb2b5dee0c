// The YAML loader on arbitrary bytes: every input gives a configuration or errors, within the
// limits (config/limits.hpp), and never crashes, hangs or leaks. Includes are served from a
// small in-memory set (one includes another, one includes itself) so include handling is
// exercised without touching the file system; the environment is fixed.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <grove/config/config.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  grove::config::load_options o;
  o.getenv = [](const char* name) -> const char* {
    if (std::string_view(name) == "HOME") return "/home/grove";
    if (std::string_view(name) == "BIG") return "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    return nullptr;
  };
  o.read_file = [text](const std::string& path) -> std::optional<std::string> {
    if (path == "a.yaml") return std::string("include: b.yaml\nnode: { name: a }\n");
    if (path == "b.yaml") return std::string("node: { schedulers: 2 }\n");
    if (path == "self.yaml") return std::string("include: self.yaml\n");
    if (path == "input.yaml") return std::string(text);
    return std::nullopt;
  };
  auto r = grove::config::load_string(text, "fuzz.yaml", o);
  // Errors and a configuration are exclusive; every error renders.
  if (r.config.has_value() == !r.errors.empty()) __builtin_trap();
  (void)r.errors.to_string();
  return 0;
}
