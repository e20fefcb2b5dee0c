#include <grove/runtime/events.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <utility>

#include <grove/runtime/errors.hpp>
#include <grove/runtime/message.hpp>

namespace grove {

const char* to_string(event_kind k) noexcept {
  switch (k) {
    case event_kind::progress:
      return "progress";
    case event_kind::child_terminated:
      return "child_terminated";
    case event_kind::start_error:
      return "start_error";
    case event_kind::shutdown_error:
      return "shutdown_error";
    case event_kind::intensity_reached:
      return "intensity_reached";
    case event_kind::crash:
      return "crash";
    case event_kind::application:
      return "application";
    case event_kind::trace:
      return "trace";
    case event_kind::long_schedule:
      return "long_schedule";
    case event_kind::exit:
      return "exit";
    case event_kind::output:
      return "output";
    case event_kind::nodeup:
      return "nodeup";
    case event_kind::nodedown:
      return "nodedown";
    case event_kind::connection_failed:
      return "connection_failed";
    case event_kind::dropped:
      return "dropped";
  }
  return "?";
}

// ---- subscription ---------------------------------------------------------------------------

struct subscription::state {
  state(event_bus::impl* b, std::size_t cap, pid n) : bus(b), capacity(cap), notify(n) {}
  // Under mu: queues e or counts it as dropped. True if notify should be told.
  bool offer(const event& e);

  event_bus::impl* bus;  // null once closed or once the bus is gone
  const std::size_t capacity;
  const pid notify;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<event> queue;
  std::uint64_t dropped = 0;
  bool notified = false;
  bool closed = false;
};

struct event_bus::impl {
  explicit impl(node& n) : owner(n) {}
  void publish(event e);
  void unsubscribe(subscription::state* s) {
    std::unique_lock lk(mu);
    subscribers.erase(std::remove(subscribers.begin(), subscribers.end(), s), subscribers.end());
  }

  node& owner;
  mutable std::mutex mu;
  std::uint64_t seq = 0;
  std::deque<event> history;
  std::uint64_t counts[16] = {};
  std::deque<std::pair<event_kind, std::chrono::system_clock::time_point>> times;  // the last 4,096
  std::vector<subscription::state*> subscribers;
  std::atomic<std::uint64_t> drops{0};  // events lost by any subscriber
};

bool subscription::state::offer(const event& e) {
  if (closed) return false;
  if (queue.size() >= capacity) {
    ++dropped;
    if (bus) bus->drops.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  queue.push_back(e);
  cv.notify_one();
  if (notified || !notify) return false;
  notified = true;
  return true;
}

std::size_t subscription::capacity() const noexcept { return s_->capacity; }

std::vector<event> subscription::take(std::size_t max) {
  std::vector<event> out;
  std::unique_lock lk(s_->mu);
  auto& q = s_->queue;
  while (!q.empty() && out.size() < max) {
    out.push_back(std::move(q.front()));
    q.pop_front();
  }
  if (q.empty() && s_->dropped > 0 && out.size() < max) {
    event d;
    d.kind = event_kind::dropped;
    d.dropped = std::exchange(s_->dropped, 0);
    d.time = std::chrono::system_clock::now();
    out.push_back(std::move(d));
  }
  if (q.empty()) s_->notified = false;
  return out;
}

bool subscription::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lk(s_->mu);
  return s_->cv.wait_for(lk, timeout, [&] { return s_->closed || !s_->queue.empty() || s_->dropped > 0; }) &&
         !s_->closed;
}

void subscription::close() {
  event_bus::impl* bus = nullptr;
  {
    std::unique_lock lk(s_->mu);
    if (s_->closed) return;
    s_->closed = true;
    bus = std::exchange(s_->bus, nullptr);
    s_->cv.notify_all();
  }
  if (bus) bus->unsubscribe(s_.get());
}

subscription::~subscription() { close(); }

// ---- bus ------------------------------------------------------------------------------------

namespace {
// An event about a process, named by its registered name (the node's namer), else its label.
event about(node& n, event_kind kind, const pid& who, const std::string& label) {
  event e;
  e.kind = kind;
  e.old_pid = who;
  auto name = n.registered_name(who);
  e.label = name ? *name : label;
  return e;
}

void on_crash(void* ctx, const pid& who, const std::string& label, const exit_reason& reason) {
  auto* bus = static_cast<event_bus::impl*>(ctx);
  event e = about(bus->owner, event_kind::crash, who, label);
  e.reason = reason;
  bus->publish(std::move(e));
}

void on_long_schedule(void* ctx, const pid& who, const std::string& label, std::chrono::nanoseconds ran) {
  auto* bus = static_cast<event_bus::impl*>(ctx);
  event e = about(bus->owner, event_kind::long_schedule, who, label);
  e.ran = std::chrono::duration_cast<std::chrono::milliseconds>(ran);
  bus->publish(std::move(e));
}
}  // namespace

event_bus::event_bus(node& n) : impl_(std::make_unique<impl>(n)) {
  n.add_crash_hook(&on_crash, impl_.get());
  n.add_long_schedule_hook(&on_long_schedule, impl_.get());
}

event_bus::~event_bus() {
  impl_->owner.remove_crash_hook(&on_crash, impl_.get());
  impl_->owner.remove_long_schedule_hook(&on_long_schedule, impl_.get());
  std::unique_lock lk(impl_->mu);
  for (subscription::state* s : impl_->subscribers) {
    std::unique_lock sl(s->mu);
    s->bus = nullptr;
    s->closed = true;
    s->cv.notify_all();
  }
}

void event_bus::publish(event e) { impl_->publish(std::move(e)); }

void event_bus::impl::publish(event e) {
  e.time = std::chrono::system_clock::now();
  e.node = owner.name();
  std::vector<pid> tell;
  {
    std::unique_lock lk(mu);
    e.seq = ++seq;
    for (subscription::state* s : subscribers) {
      std::unique_lock sl(s->mu);
      if (s->offer(e)) tell.push_back(s->notify);
    }
    if (e.kind != event_kind::output) {  // output goes to subscribers only (see events.hpp)
      ++counts[static_cast<std::size_t>(e.kind) & 15];
      if (times.size() == 4096) times.pop_front();
      times.emplace_back(e.kind, e.time);
      if (history.size() == history_size) history.pop_front();
      history.push_back(std::move(e));
    }
  }
  for (const pid& p : tell) {
    try {
      send(p, subscription::ready{});
    } catch (const mailbox_full&) {  // a subscriber whose full mailbox fails sends: it will take later
    }
  }
}

std::shared_ptr<subscription> event_bus::subscribe(std::size_t capacity, pid notify) {
  auto st = std::make_shared<subscription::state>(impl_.get(), std::max<std::size_t>(capacity, 1), notify);
  std::shared_ptr<subscription> s(new subscription(st));
  std::unique_lock lk(impl_->mu);
  impl_->subscribers.push_back(st.get());
  return s;
}

std::vector<event> event_bus::recent(std::size_t n) const {
  std::unique_lock lk(impl_->mu);
  n = std::min(n, impl_->history.size());
  return std::vector<event>(impl_->history.end() - static_cast<std::ptrdiff_t>(n), impl_->history.end());
}

std::uint64_t event_bus::last_seq() const {
  std::unique_lock lk(impl_->mu);
  return impl_->seq;
}

std::uint64_t event_bus::count(event_kind k) const {
  std::unique_lock lk(impl_->mu);
  return impl_->counts[static_cast<std::size_t>(k) & 15];
}

std::uint64_t event_bus::dropped() const { return impl_->drops.load(std::memory_order_relaxed); }

std::size_t event_bus::count_within(event_kind k, std::chrono::seconds window) const {
  const auto since = std::chrono::system_clock::now() - window;
  std::unique_lock lk(impl_->mu);
  std::size_t n = 0;
  for (auto it = impl_->times.rbegin(); it != impl_->times.rend() && it->second >= since; ++it) n += it->first == k;
  return n;
}

event_bus& events(node& n) { return n.service<event_bus>(); }
event_bus& events() { return events(this_node()); }

}  // namespace grove
