#include <grove/observe/logger.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace grove {

namespace {
spdlog::level::level_enum spd_level(const char* level) {
  const std::string_view l = level;
  if (l == "error") return spdlog::level::err;
  if (l == "warning") return spdlog::level::warn;
  if (l == "debug") return spdlog::level::debug;
  return spdlog::level::info;
}

spdlog::level::level_enum threshold(const std::string& level) {
  if (level == "debug") return spdlog::level::debug;
  if (level == "info") return spdlog::level::info;
  if (level == "warning") return spdlog::level::warn;
  if (level == "error") return spdlog::level::err;
  if (level == "off") return spdlog::level::off;
  throw std::invalid_argument("log level must be debug, info, warning, error or off, not '" + level + "'");
}
}  // namespace

struct event_logger::impl {
  event_bus& bus;
  log_format format;
  std::shared_ptr<spdlog::logger> log;
  std::shared_ptr<subscription> sub;
  std::mutex mu;
  std::condition_variable cv;
  std::uint64_t written = 0;  // every event up to this seq is written or was dropped
  std::atomic<bool> stopping{false};
  std::thread thread;

  impl(node& n, const logger_options& o) : bus(events(n)), format(o.format) {
    spdlog::sink_ptr sink;
    if (o.stream) {
      sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*o.stream, true);
    } else {
      sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    }
    log = std::make_shared<spdlog::logger>("grove.events", sink);
    log->set_pattern("%v");  // each line carries the event's own time
    log->set_level(threshold(o.level));
    log->flush_on(spdlog::level::trace);
    sub = bus.subscribe(o.capacity);
    thread = std::thread([this] { run(); });
  }

  void drain() {
    const std::uint64_t upto = bus.last_seq();
    for (const event& e : sub->take()) log->log(spd_level(level_of(e)), "{}", event_logger::format(e, format));
    std::unique_lock lk(mu);
    written = std::max(written, upto);
    cv.notify_all();
  }

  void run() {
    while (!stopping.load(std::memory_order_acquire)) {
      sub->wait(std::chrono::milliseconds(100));
      drain();
    }
    drain();
  }
};

event_logger::event_logger(node& n, logger_options opts) : impl_(std::make_unique<impl>(n, opts)) {}

event_logger::~event_logger() {
  impl_->stopping.store(true, std::memory_order_release);
  impl_->sub->close();
  impl_->thread.join();
}

bool event_logger::flush(std::chrono::milliseconds timeout) {
  const std::uint64_t target = impl_->bus.last_seq();
  std::unique_lock lk(impl_->mu);
  return impl_->cv.wait_for(lk, timeout, [&] { return impl_->written >= target; });
}

const char* to_string(log_format f) noexcept { return f == log_format::json ? "json" : "text"; }

std::string event_logger::format(const event& e, log_format f) {
  if (f == log_format::json) return to_json(e);
  return iso_time(e.time) + ' ' + level_of(e) + ' ' + e.node + ' ' + to_text(e);
}

}  // namespace grove
