// Internal: the type-erased carrier of one message or signal in a mailbox.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <new>
#include <ostream>
#include <typeinfo>
#include <utility>

#include <grove/runtime/exit_reason.hpp>
#include <grove/runtime/pid.hpp>

namespace grove::detail {

enum class envelope_kind : std::uint8_t {
  message,      // a user message (message_envelope<T>)
  exit_link,    // exit signal because a linked process died
  exit_direct,  // exit signal sent with grove::exit(pid, reason)
  exit_forced,  // untrappable termination with the given reason (node stop)
  down,         // a monitored process died
  timeout,      // a receive timeout fired (token = the receive it belongs to)
  reply,        // a reply to a call: a message addressed to an alias (see gen_server)
};

// Where a call's reply goes: the caller and the alias the reply is addressed to (gen_server's
// `from`, seen from the runtime layer).
struct reply_address {
  pid caller;
  std::uint64_t alias = 0;
};

struct envelope {
  envelope* next = nullptr;
  const std::type_info* type = nullptr;  // of the payload; null for signals
  envelope_kind kind = envelope_kind::message;
  std::uint32_t gen = 0;    // the generation of the pid it was sent to (mailbox.hpp)
  std::uint64_t alias = 0;  // reply: the alias it is addressed to

  // Envelopes come from per-thread caches (envelope_pool.cpp): no malloc per message once warm.
  static void* operator new(std::size_t n);
  static void operator delete(void* p, std::size_t n) noexcept;
  // Over-aligned payloads bypass the caches.
  static void* operator new(std::size_t n, std::align_val_t a) { return ::operator new(n, a); }
  static void operator delete(void* p, std::size_t n, std::align_val_t a) noexcept { ::operator delete(p, n, a); }

  envelope() = default;
  envelope(const envelope&) = delete;
  envelope& operator=(const envelope&) = delete;
  virtual ~envelope() = default;
  bool is_message() const noexcept { return kind == envelope_kind::message; }
  // Kept in the mailbox's queue (messages and replies); the rest are signals, acted on.
  bool is_mail() const noexcept { return kind == envelope_kind::message || kind == envelope_kind::reply; }
  // For a call request, who waits for the reply; else null. Lets a server answer a request whose
  // type it does not know (gen_server's bad_call) without a list of every request type.
  virtual const reply_address* reply_to() const noexcept { return nullptr; }
  // Writes the payload for people (traces) when it can be printed (operator<<); false if not.
  virtual bool print(std::ostream&) const { return false; }
  // What the sender sent, for the test kit's log: the request inside a call or cast, else the
  // payload's type.
  virtual const std::type_info* request_type() const noexcept { return type; }
};

// A value a trace can show: one with an operator<< for std::ostream.
template <class T>
concept printable = requires(std::ostream& os, const T& v) {
  os << v;
};

template <class T>
concept carries_reply_address = requires(const T& v) {
  { v.reply_to() } -> std::same_as<const reply_address&>;
};

template <class T>
struct message_envelope final : envelope {
  template <class... A>
  explicit message_envelope(A&&... a) : value(std::forward<A>(a)...) {
    type = &typeid(T);
  }
  // A payload that carries a reply address says so with reply_to() (gen_server's call_msg).
  const reply_address* reply_to() const noexcept override {
    if constexpr (carries_reply_address<T>) {
      return &value.reply_to();
    } else {
      return nullptr;
    }
  }
  const std::type_info* request_type() const noexcept override {
    if constexpr (requires { typename T::request_type; }) {
      return &typeid(typename T::request_type);
    } else {
      return type;
    }
  }
  bool print(std::ostream& os) const override {
    if constexpr (printable<T>) {
      os << value;
      return true;
    } else {
      return false;
    }
  }
  T value;
};

struct signal_envelope final : envelope {
  signal_envelope(envelope_kind k, pid f, exit_reason r, std::uint64_t t = 0)
      : from(f), reason(std::move(r)), token(t) {
    kind = k;
  }
  pid from;
  exit_reason reason;
  std::uint64_t token;  // monitor ref for down, receive token for timeout
};

inline bool same_type(const std::type_info* a, const std::type_info& b) noexcept { return a == &b || *a == b; }

}  // namespace grove::detail
