// Internal to the console: what the I/O thread and a session's process share.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <grove/observe/console.hpp>

namespace grove::detail {

// Whether `guess` is the token `secret` (non-empty), in time that does not depend on where
// they differ: the console's `auth` and the HTTP endpoint's Bearer check.
inline bool same_secret(std::string_view guess, std::string_view secret) {
  unsigned diff = guess.size() == secret.size() ? 0 : 1;
  for (std::size_t i = 0; i < guess.size(); ++i) {
    diff |= static_cast<unsigned char>(guess[i]) ^ static_cast<unsigned char>(secret[i % secret.size()]);
  }
  return diff == 0;
}

struct console_line {
  std::string text;
  bool too_long = false;  // over max_line: text is empty, the session answers the error
};
struct console_eof {};     // the client sends no more; what it sent before is still answered
struct console_closed {};  // the connection is gone (closed, reset, timed out): run nothing more
struct console_acked {};   // after EOF: the client acknowledged every answer so far

// A session's output, written by its process and sent by the I/O thread. Answers to commands
// are kept up to 4 * `limit`; streamed events are dropped while the client lags more than
// `limit` bytes behind. What was dropped is counted and reported before the next line that fits.
class console_output {
 public:
  console_output(std::size_t limit, std::function<void()> wake) : limit_(limit), wake_(std::move(wake)) {}

  void answer(const std::string& text);
  // False when dropped.
  bool stream(const std::string& line);
  // Closes the session once what is queued is sent.
  void close();
  // Replaces what is queued by `text` and closes: the session is being ended for the client.
  void last_words(const std::string& text);
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
    return head_ < buf_.size();
  }
  std::size_t buffered() const {
    std::lock_guard lk(mu_);
    return buf_.size() - head_;
  }
  bool closing() const {
    std::lock_guard lk(mu_);
    return closing_;
  }
  // Hands up to `max` queued bytes to write(data, n), which returns how many it sent (<= 0:
  // none); those are taken off the queue. Under the lock, so nothing is copied: write must
  // not block.
  template <class F>
  long send_some(std::size_t max, F&& write) {
    std::lock_guard lk(mu_);
    const std::size_t n = std::min(max, buf_.size() - head_);
    if (n == 0) return 0;
    const long w = write(buf_.data() + head_, n);
    if (w > 0) {
      head_ += static_cast<std::size_t>(w);
      if (head_ == buf_.size()) {
        buf_.clear();
        head_ = 0;
      } else if (head_ > 64 * 1024 && head_ > buf_.size() / 2) {
        buf_.erase(0, head_);
        head_ = 0;
      }
    }
    return w;
  }
  void discard() {
    std::lock_guard lk(mu_);
    buf_.clear();
    head_ = 0;
  }

 private:
  void flush_markers();  // under mu_
  mutable std::mutex mu_;
  std::string buf_;
  std::size_t head_ = 0;  // buf_[0, head_) is sent
  const std::size_t limit_;
  std::function<void()> wake_;
  std::uint64_t dropped_ = 0;          // events, not yet reported
  std::uint64_t dropped_answers_ = 0;  // answers, not yet reported
  bool closing_ = false;
  bool json_ = false;
};

// What a session's process and the I/O thread share about its connection, besides the output.
class console_link {
 public:
  console_link(std::size_t input_limit, bool authed, std::function<void()> wake)
      : limit_(input_limit), wake_(std::move(wake)), authed_(authed) {}

  // ---- input flow: the I/O thread counts each line it sends, the process each line it ran ----
  // A line's weight: 64 bytes more than its length, so that empty lines count too.
  static std::size_t cost(const std::string& line) { return line.size() + 64; }
  void queued(std::size_t cost) { pending_.fetch_add(cost); }
  // Wakes the I/O thread when the backlog falls to half the limit: it reads again from there.
  void ran(std::size_t cost) {
    const std::size_t before = pending_.fetch_sub(cost);
    if (before > limit_ / 2 && before - cost <= limit_ / 2) wake_();
  }
  std::size_t pending() const { return pending_.load(); }
  std::size_t limit() const { return limit_; }

  // ---- the connection ----
  void set_gone() { gone_.store(true); }
  bool gone() const { return gone_.load(); }
  void set_input_ended() { input_ended_.store(true); }
  bool input_ended() const { return input_ended_.load(); }
  void set_authed() { authed_.store(true); }
  bool authed() const { return authed_.load(); }
  // Following events or traces: with nothing queued for the client, the session is waiting for
  // the node, not idle (a vanished client is found by TCP keepalive instead).
  void set_streaming(bool on) { streaming_.store(on); }
  bool streaming() const { return streaming_.load(); }
  // The process is over (however it ended): the connection may be closed and forgotten.
  void set_ended() {
    ended_.store(true);
    wake_();
  }
  bool ended() const { return ended_.load(); }
  // After EOF the process asks, before each line, whether the client is still there: a client
  // that closed its socket (rather than only its sending half) resets the connection when an
  // answer reaches it, and then the lines it left must not run. The I/O thread answers with
  // console_acked once everything sent was acknowledged, or ends the session.
  void ask_confirm() {
    confirm_.store(true);
    wake_();
  }
  bool confirm_asked() const { return confirm_.load(); }
  void confirm_done() { confirm_.store(false); }

 private:
  const std::size_t limit_;
  std::function<void()> wake_;
  std::atomic<std::size_t> pending_{0};
  std::atomic<bool> gone_{false}, input_ended_{false}, authed_, ended_{false}, confirm_{false}, streaming_{false};
};

struct console_session_config {
  console_options opts;
  bool color = false;  // the session is a terminal
};

// The body of a process that answers one command line in JSON on `out` (the HTTP endpoint's
// requests); a command that streams goes on until console_closed.
void run_console_request(std::shared_ptr<console_output> out, std::shared_ptr<console_link> link,
                         std::shared_ptr<const console_session_config> cfg, const std::string& line);
// The body of a session's process: reads console_line messages, answers on `out`.
void run_console_session(std::shared_ptr<console_output> out, std::shared_ptr<console_link> link,
                         std::shared_ptr<const console_session_config> cfg);

}  // namespace grove::detail
