// A grove::service run on a thread of its own, for tests.
#pragma once

#include <sstream>
#include <string>
#include <thread>
#include <utility>

#include <catch2/catch.hpp>
#include <grove/app/service.hpp>

inline grove::kind_registry builtins() {
  grove::kind_registry k;
  grove::add_builtin_kinds(k);
  return k;
}

// A service that runs on a thread of its own; events are logged to `log` as JSON lines.
struct running_service {
  std::ostringstream log, messages;
  grove::service svc;
  std::thread runner;
  int code = -1;

  explicit running_service(grove::kind_registry kinds = builtins(), grove::service_hooks hooks = {},
                           std::string console = {})
      : svc(std::move(kinds), options(std::move(hooks), std::move(console))) {}
  grove::service_options options(grove::service_hooks hooks, std::string console) {
    grove::service_options o;
    o.hooks = std::move(hooks);
    if (!console.empty()) o.console = console;
    o.log_stream = &log;
    o.messages = &messages;
    o.handle_signals = false;
    o.log_format = grove::config::log_format::json;
    return o;
  }
  bool load(const std::string& yaml) {
    bool ok = svc.load_string(yaml, "test.yaml");
    if (!ok) FAIL(svc.errors().to_string());
    return ok;
  }
  void start() {
    runner = std::thread([this] { code = svc.run(); });
  }
  int join() {
    runner.join();
    return code;
  }
  ~running_service() {
    if (runner.joinable()) {
      svc.stop();
      runner.join();
    }
  }
};
