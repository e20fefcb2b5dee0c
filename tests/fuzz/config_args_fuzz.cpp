// A kind's `args` (config::args) parsed from arbitrary bytes and read through every typed
// getter: wrong types and values become diagnostics, never a crash.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <grove/config/args.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto a = grove::config::args::parse(text, "fuzz.yaml");
  for (const char* key : {"size", "rate", "name", "after", "child", "on", "list", "worker"}) {
    (void)a.has(key);
    (void)a.get<std::int64_t>(key, 0);
    (void)a.get<double>(key, 0.0);
    (void)a.get<std::string>(key, "");
    (void)a.get<bool>(key, false);
    (void)a.get<int>(key, 0);
    (void)a.get<std::chrono::nanoseconds>(key, std::chrono::nanoseconds::zero());
    (void)a.get<std::vector<std::int64_t>>(key, {});
    (void)a.get<std::vector<std::string>>(key, {});
    if (a.has(key)) {
      (void)a.at(key).keys();
      for (auto& item : a.list(key)) (void)item.get<std::string>("kind", "");
    }
  }
  a.only({"size", "rate", "name"});
  (void)a.sink()->to_string();
  return 0;
}
