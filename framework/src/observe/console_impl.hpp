// Internal to the console: what the I/O thread and a session's process share.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <grove/observe/console.hpp>

namespace grove::detail {

struct console_line {
  std::string text;
};
struct console_closed {};  // the client went away

// A session's output, written by its process and sent by the I/O thread. Answers to commands
// are kept; streamed events are dropped, and counted, while the client lags more than `limit`
// bytes behind; the count is reported before the next line that fits.
class console_output {
 public:
  console_output(std::size_t limit, std::function<void()> wake) : limit_(limit), wake_(std::move(wake)) {}

  void answer(const std::string& text);
  // False when dropped.
  bool stream(const std::string& line);
  // Closes the session once what is queued is sent.
  void close();
  void set_json(bool on) {
    std::lock_guard lk(mu_);
    json_ = on;
  }
  bool json() const {
    std::lock_guard lk(mu_);
    return json_;
  }

  // ---- I/O thread ----
  bool has_data() const {
    std::lock_guard lk(mu_);
    return !buf_.empty();
  }
  bool closing() const {
    std::lock_guard lk(mu_);
    return closing_;
  }
  // Up to `max` bytes to send; consume(n) once n of them are sent.
  std::string peek(std::size_t max) const {
    std::lock_guard lk(mu_);
    return buf_.substr(0, max);
  }
  void consume(std::size_t n) {
    std::lock_guard lk(mu_);
    buf_.erase(0, n);
  }
  void discard() {
    std::lock_guard lk(mu_);
    buf_.clear();
  }
  std::uint64_t dropped_total() const {
    std::lock_guard lk(mu_);
    return dropped_total_;
  }

 private:
  void flush_marker();  // under mu_
  mutable std::mutex mu_;
  std::string buf_;
  const std::size_t limit_;
  std::function<void()> wake_;
  std::uint64_t dropped_ = 0;
  std::uint64_t dropped_total_ = 0;
  bool closing_ = false;
  bool json_ = false;
};

struct console_session_config {
  console_options opts;
  bool authed = false;  // no token needed
  bool color = false;   // the session is a terminal
};

// The body of a session's process: reads console_line messages, answers on `out`.
void run_console_session(std::shared_ptr<console_output> out, std::shared_ptr<const console_session_config> cfg);

}  // namespace grove::detail
