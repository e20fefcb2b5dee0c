// logger: writes the node's events with spdlog, one line each — text for people (the
// default) or JSON lines for machines. It reads the event bus on a thread of its own, so a
// slow disk or terminal never slows a process; if it falls behind by more than `capacity`
// events it logs how many it dropped.
#pragma once

#include <chrono>
#include <cstddef>
#include <iosfwd>
#include <memory>
#include <string>

#include <grove/observe/events.hpp>

namespace grove {

enum class log_format : unsigned char { text, json };
const char* to_string(log_format f) noexcept;  // "text", "json"

struct logger_options {
  log_format format = log_format::text;
  // The lowest level written: "debug" (everything, with traces), "info" (all but traces),
  // "warning" or "error"; "off" writes nothing.
  std::string level = "info";
  std::ostream* stream = nullptr;  // where to write; nullptr = stderr
  std::size_t capacity = 4096;     // events the logger may fall behind by
};

class event_logger {
 public:
  event_logger(node& n, logger_options opts = {});
  ~event_logger();  // writes what is queued, then stops
  event_logger(const event_logger&) = delete;
  event_logger& operator=(const event_logger&) = delete;

  // Waits until every event published before this call is written (or `timeout` passes).
  bool flush(std::chrono::milliseconds timeout = std::chrono::seconds(5));

  // The line the logger writes for e (without the newline).
  static std::string format(const event& e, log_format f);

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace grove
