// Exceptions of the runtime.
//
// `process_exit` unwinds a process that must terminate (an exit signal took effect, or the
// process called grove::exit). It does not derive from std::exception, so `catch (const
// std::exception&)` lets it pass and destructors run; code that catches `...` must rethrow.
#pragma once

#include <stdexcept>
#include <string>

#include <grove/runtime/exit_reason.hpp>

namespace grove {

class process_exit {
 public:
  explicit process_exit(exit_reason r) : reason_(std::move(r)) {}
  const exit_reason& reason() const noexcept { return reason_; }

 private:
  exit_reason reason_;
};

// An operation failed with an OTP-style reason (noproc, timeout, calling_self, ...). Escaping
// a process, it ends the process with that reason rather than as a generic crash.
class process_error : public std::runtime_error {
 public:
  explicit process_error(exit_reason r) : std::runtime_error(r.str()), reason_(std::move(r)) {}
  process_error(exit_reason r, const std::string& context)
      : std::runtime_error(context + ": " + r.str()), reason_(std::move(r)) {}
  const exit_reason& reason() const noexcept { return reason_; }

 private:
  exit_reason reason_;
};

// A process-only operation (self, receive, link, ...) was used outside any process.
class not_in_process : public std::logic_error {
 public:
  explicit not_in_process(const char* what) : std::logic_error(std::string(what) + ": not called from a process") {}
};

// send() to a mailbox that is full and whose overflow policy is `fail`.
class mailbox_full : public std::runtime_error {
 public:
  mailbox_full() : std::runtime_error("mailbox full") {}
};

// spawn() on a node that is stopping or stopped.
class node_stopping : public std::runtime_error {
 public:
  node_stopping() : std::runtime_error("node is stopping") {}
};

}  // namespace grove
