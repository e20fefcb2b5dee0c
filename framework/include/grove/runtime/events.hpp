// events: the node-wide bus of structured reports — what OTP's logger receives as progress,
// supervisor and crash reports. Supervisors publish each child start, termination, start error,
// shutdown error, the intensity being reached and (at debug level) every end of a child; the
// runtime publishes every crash of any
// process; the OS-process reactor publishes what OS processes write (`output`, kept out of
// the history and the counts so that a chatty program does not push the rest out).
// Subscribers each get a bounded queue: publishing never waits for a subscriber, and one that
// falls behind gets a `dropped` event saying how many it missed.
// The fields are stable; docs/events.md describes each one. Text and JSON renderings of an
// event are observe's (grove/observe/events.hpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <grove/runtime/exit_reason.hpp>
#include <grove/runtime/node.hpp>
#include <grove/runtime/pid.hpp>

namespace grove {

enum class event_kind : unsigned char {
  progress,           // a supervisor started a child (new_pid)
  child_terminated,   // a child ended in a way its supervisor reports (old_pid, reason)
  start_error,        // a child failed to start or restart (reason)
  shutdown_error,     // a child stopped by its supervisor ended with another reason than asked
  intensity_reached,  // too many restarts: the supervisor gives up (child = the offender)
  crash,              // any process ended by itself with an abnormal reason (label, reason)
  application,        // an application started or stopped (child = application, reason)
  trace,              // a traced GenServer handled a message (old_pid = it, label = what)
  long_schedule,      // a process ran past node_options::long_schedule without suspending (old_pid, label, ran)
  exit,               // a child of a supervisor ended, however and whyever (old_pid, reason): debug level
  output,             // a line an OS process wrote (old_pid = its owner, label = stdout|stderr, text, level)
  nodeup,             // a distribution connection came up (label = the peer node, text = visible|hidden)
  nodedown,           // a distribution connection ended (label = the peer node, text = why)
  connection_failed,  // a distribution connection could not be made or was refused (label = peer, text = why)
  dropped             // only in a subscriber's stream: `dropped` events were lost before it
};
const char* to_string(event_kind k) noexcept;

struct event {
  event_kind kind = event_kind::progress;
  std::uint64_t seq = 0;                       // per node, from 1, in publish order
  std::chrono::system_clock::time_point time;  // when it was published
  std::string node;                            // node name
  std::string supervisor;                      // path of the reporting supervisor, e.g. "bank/accounts"
  pid supervisor_pid;
  std::string child;  // child id (application name for `application` events)
  pid old_pid;        // the child that ended
  pid new_pid;        // the child that started
  exit_reason reason;
  std::string label;                 // crash: the process's registered name, else its label
  int restarts = 0;                  // restarts in the supervisor's current window, this one included
  int intensity = 0;                 // the limit, and
  std::int64_t period_s = 0;         // the window, in seconds
  std::uint64_t dropped = 0;         // dropped: how many events were lost
  std::chrono::milliseconds ran{0};  // long_schedule: how long it had run when seen
  std::string text;                  // output: the line; nodeup/nodedown/connection_failed: the detail
  std::string level;                 // output: the level its stream is configured to (else empty)
};

class event_bus;

// A subscriber's bounded queue. Taken events come in publish order; when some were lost
// because the queue was full, a `dropped` event follows the events published before them.
class subscription {
 public:
  // Takes up to `max` queued events without waiting.
  std::vector<event> take(std::size_t max = SIZE_MAX);
  // For OS threads (not processes): waits up to `timeout` for an event (true) or a drop.
  bool wait(std::chrono::milliseconds timeout);
  std::size_t capacity() const noexcept;
  // Stops the flow; wakes a waiting wait(). Also done by the destructor.
  void close();
  ~subscription();
  subscription(const subscription&) = delete;
  subscription& operator=(const subscription&) = delete;

  // A process subscriber is sent one of these when its empty queue gets an event; it is sent
  // again only after a take.
  struct ready {};

  struct state;  // event_bus.cpp

 private:
  friend class event_bus;
  explicit subscription(std::shared_ptr<state> s) : s_(std::move(s)) {}
  std::shared_ptr<state> s_;
};

class event_bus {
 public:
  explicit event_bus(node& n);
  ~event_bus();
  event_bus(const event_bus&) = delete;
  event_bus& operator=(const event_bus&) = delete;

  // Completes e (seq, time, node) and offers it to every subscriber and to the history.
  // Never waits for a subscriber. Callable from a process or any thread.
  void publish(event e);
  // A new subscriber with room for `capacity` events. If `notify` is a process it is sent
  // subscription::ready when events arrive (once until it takes them).
  std::shared_ptr<subscription> subscribe(std::size_t capacity = 1024, pid notify = {});
  // The last `n` events published (the bus keeps the last 256, `output` apart), oldest first.
  std::vector<event> recent(std::size_t n = 256) const;
  // The seq of the last event published (0: none yet).
  std::uint64_t last_seq() const;
  // Events of kind k published so far, and within the last `window`.
  std::uint64_t count(event_kind k) const;
  std::size_t count_within(event_kind k, std::chrono::seconds window) const;
  // Events subscribers lost because their queue was full, in all.
  std::uint64_t dropped() const;

  static constexpr std::size_t history_size = 256;

  struct impl;  // event_bus.cpp

 private:
  std::unique_ptr<impl> impl_;
};

// The node's bus (a node service; created on first use, crash reports start flowing then).
event_bus& events(node& n);
// The bus of the calling process's node.
event_bus& events();

}  // namespace grove
