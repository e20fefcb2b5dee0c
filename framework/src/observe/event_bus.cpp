#include <grove/observe/events.hpp>

#include <algorithm>
#include <ctime>
#include <utility>

#include <nlohmann/json.hpp>

#include <grove/behaviours/name_registry.hpp>

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
    case event_kind::dropped:
      return "dropped";
  }
  return "?";
}

const char* level_of(const event& e) noexcept {
  switch (e.kind) {
    case event_kind::progress:
      return "info";
    case event_kind::application:
      return e.reason.is_crash() ? "error" : "info";
    case event_kind::dropped:
    case event_kind::long_schedule:
      return "warning";
    case event_kind::trace:
      return "debug";
    default:
      return "error";
  }
}

std::string iso_time(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms % 1000));
  return buf;
}

namespace {

bool has_window(const event& e) {
  return e.kind == event_kind::child_terminated || e.kind == event_kind::intensity_reached;
}

}  // namespace

std::string to_text(const event& e) {
  std::string s = to_string(e.kind);
  auto field = [&](const char* k, const std::string& v) {
    if (v.empty()) return;
    s += ' ';
    s += k;
    s += '=';
    s += v;
  };
  if (e.kind == event_kind::dropped) {
    field("count", std::to_string(e.dropped));
    return s;
  }
  if (e.kind == event_kind::trace) {  // trace <1.4.1> ledger call bank::deposit
    if (e.old_pid) field("pid", e.old_pid.str());
    field("server", e.child);
    s += ' ' + e.label;
    return s;
  }
  if (e.kind == event_kind::application) {  // application store started new_pid=<1.1.1>
    s += ' ' + e.child + ' ' + e.label;
    if (e.old_pid) field("old_pid", e.old_pid.str());
    if (e.new_pid) field("new_pid", e.new_pid.str());
    if (e.label != "started") field("reason", e.reason.str());
    return s;
  }
  field("supervisor", e.supervisor);
  field("child", e.child);
  field("label", e.label);
  if (e.old_pid) field("old_pid", e.old_pid.str());
  if (e.new_pid) field("new_pid", e.new_pid.str());
  if (e.kind == event_kind::long_schedule) {
    field("ran", std::to_string(e.ran.count()) + "ms");
    return s;
  }
  if (e.kind != event_kind::progress) field("reason", e.reason.str());
  if (has_window(e)) {
    field("restarts",
          std::to_string(e.restarts) + "/" + std::to_string(e.intensity) + " in " + std::to_string(e.period_s) + "s");
  }
  return s;
}

std::string to_json(const event& e) {
  nlohmann::ordered_json j;
  j["time"] = iso_time(e.time);
  j["seq"] = e.seq;
  j["kind"] = to_string(e.kind);
  j["level"] = level_of(e);
  j["node"] = e.node;
  auto opt_pid = [](const pid& p) { return p ? nlohmann::ordered_json(p.str()) : nlohmann::ordered_json(nullptr); };
  if (e.kind == event_kind::dropped) {
    j["dropped"] = e.dropped;
    return j.dump();
  }
  j["supervisor"] = e.supervisor;
  j["supervisor_pid"] = opt_pid(e.supervisor_pid);
  j["child"] = e.child;
  j["old_pid"] = opt_pid(e.old_pid);
  j["new_pid"] = opt_pid(e.new_pid);
  j["reason"] =
      e.kind == event_kind::progress ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(e.reason.str());
  j["label"] = e.label;
  j["restarts"] = e.restarts;
  j["intensity"] = e.intensity;
  j["period_s"] = e.period_s;
  if (e.kind == event_kind::long_schedule) j["ran_ms"] = e.ran.count();
  // Invalid UTF-8 in a reason (an exception's what()) is replaced, never thrown on.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

// ---- subscription ---------------------------------------------------------------------------

bool subscription::offer(const event& e) {
  if (closed_) return false;
  if (queue_.size() >= capacity_) {
    ++dropped_;
    return false;
  }
  queue_.push_back(e);
  cv_.notify_one();
  if (notified_ || !notify_) return false;
  notified_ = true;
  return true;
}

std::vector<event> subscription::take(std::size_t max) {
  std::vector<event> out;
  std::unique_lock lk(mu_);
  while (!queue_.empty() && out.size() < max) {
    out.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  if (queue_.empty() && dropped_ > 0 && out.size() < max) {
    event d;
    d.kind = event_kind::dropped;
    d.dropped = std::exchange(dropped_, 0);
    d.time = std::chrono::system_clock::now();
    out.push_back(std::move(d));
  }
  if (queue_.empty()) notified_ = false;
  return out;
}

bool subscription::wait(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [&] { return closed_ || !queue_.empty() || dropped_ > 0; }) && !closed_;
}

void subscription::close() {
  event_bus* bus = nullptr;
  {
    std::unique_lock lk(mu_);
    if (closed_) return;
    closed_ = true;
    bus = std::exchange(bus_, nullptr);
    cv_.notify_all();
  }
  if (bus) bus->unsubscribe(this);
}

subscription::~subscription() { close(); }

// ---- bus ------------------------------------------------------------------------------------

namespace {
// An event about a process, named by its registered name, else its label.
event about(const event_bus& bus, event_kind kind, const pid& who, const std::string& label) {
  event e;
  e.kind = kind;
  e.old_pid = who;
  auto name = bus.registry().name_of(who);
  e.label = name ? *name : label;
  return e;
}

void on_crash(void* ctx, const pid& who, const std::string& label, const exit_reason& reason) {
  auto* bus = static_cast<event_bus*>(ctx);
  event e = about(*bus, event_kind::crash, who, label);
  e.reason = reason;
  bus->publish(std::move(e));
}

void on_long_schedule(void* ctx, const pid& who, const std::string& label, std::chrono::nanoseconds ran) {
  auto* bus = static_cast<event_bus*>(ctx);
  event e = about(*bus, event_kind::long_schedule, who, label);
  e.ran = std::chrono::duration_cast<std::chrono::milliseconds>(ran);
  bus->publish(std::move(e));
}
}  // namespace

event_bus::event_bus(node& n) : node_(n), names_(&n.service<name_registry>()) {
  node_.add_crash_hook(&on_crash, this);
  node_.add_long_schedule_hook(&on_long_schedule, this);
}

event_bus::~event_bus() {
  node_.remove_crash_hook(&on_crash, this);
  node_.remove_long_schedule_hook(&on_long_schedule, this);
  std::unique_lock lk(mu_);
  for (subscription* s : subscribers_) {
    std::unique_lock sl(s->mu_);
    s->bus_ = nullptr;
    s->closed_ = true;
    s->cv_.notify_all();
  }
}

void event_bus::publish(event e) {
  e.time = std::chrono::system_clock::now();
  e.node = node_.name();
  std::vector<pid> tell;
  {
    std::unique_lock lk(mu_);
    e.seq = ++seq_;
    for (subscription* s : subscribers_) {
      std::unique_lock sl(s->mu_);
      if (s->offer(e)) tell.push_back(s->notify_);
    }
    ++counts_[static_cast<std::size_t>(e.kind) & 15];
    if (times_.size() == 4096) times_.pop_front();
    times_.emplace_back(e.kind, e.time);
    if (history_.size() == history_size) history_.pop_front();
    history_.push_back(std::move(e));
  }
  for (const pid& p : tell) {
    try {
      send(p, subscription::ready{});
    } catch (const mailbox_full&) {  // a subscriber whose full mailbox fails sends: it will take later
    }
  }
}

std::shared_ptr<subscription> event_bus::subscribe(std::size_t capacity, pid notify) {
  std::shared_ptr<subscription> s(new subscription(this, std::max<std::size_t>(capacity, 1), notify));
  std::unique_lock lk(mu_);
  subscribers_.push_back(s.get());
  return s;
}

void event_bus::unsubscribe(subscription* s) {
  std::unique_lock lk(mu_);
  subscribers_.erase(std::remove(subscribers_.begin(), subscribers_.end(), s), subscribers_.end());
}

std::vector<event> event_bus::recent(std::size_t n) const {
  std::unique_lock lk(mu_);
  n = std::min(n, history_.size());
  return std::vector<event>(history_.end() - static_cast<std::ptrdiff_t>(n), history_.end());
}

std::uint64_t event_bus::last_seq() const {
  std::unique_lock lk(mu_);
  return seq_;
}

std::uint64_t event_bus::count(event_kind k) const {
  std::unique_lock lk(mu_);
  return counts_[static_cast<std::size_t>(k) & 15];
}

std::size_t event_bus::count_within(event_kind k, std::chrono::seconds window) const {
  const auto since = std::chrono::system_clock::now() - window;
  std::unique_lock lk(mu_);
  std::size_t n = 0;
  for (auto it = times_.rbegin(); it != times_.rend() && it->second >= since; ++it) n += it->first == k;
  return n;
}

event_bus& events(node& n) { return n.service<event_bus>(); }
event_bus& events() { return events(this_node()); }

}  // namespace grove
