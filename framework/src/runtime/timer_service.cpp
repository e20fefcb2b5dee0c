#include "timer_service.hpp"

#include "scheduler.hpp"

#include <stdexcept>
#include <vector>

#include "process_impl.hpp"

namespace grove::detail {

timer_service::timer_service(bool manual) : manual_(manual) {
  // A manual clock starts at a fixed, recognisable point so runs repeat exactly.
  manual_now_ = clock::time_point(std::chrono::hours(1));
  if (!manual_) thread_ = std::thread([this] { run(); });
}

timer_service::~timer_service() { stop(); }

void timer_service::stop() {
  std::map<key, entry> dropped;
  {
    std::lock_guard lk(mutex_);
    stopping_ = true;
    dropped.swap(by_time_);
    by_id_.clear();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

timer_service::clock::time_point timer_service::now() const {
  if (!manual_) return clock::now();
  std::lock_guard lk(mutex_);
  return manual_now_;
}

std::uint64_t timer_service::add(std::int64_t delay_ns, const pid& to, std::unique_ptr<envelope> env) {
  std::unique_lock lk(mutex_);
  auto base = manual_ ? manual_now_ : clock::now();
  auto at = base + std::chrono::nanoseconds(delay_ns);
  std::uint64_t id = next_id_++;
  if (stopping_) return id;
  by_time_.emplace(key{at, id}, entry{to, std::move(env)});
  by_id_.emplace(id, at);
  bool notify = !manual_ && at < thread_wakes_at_;
  if (notify) thread_wakes_at_ = at;
  lk.unlock();
  if (notify) cv_.notify_one();
  return id;
}

timer_service::timeout_key timer_service::add_timeout(std::int64_t delay_ns, const pid& to, std::uint64_t token) {
  std::unique_lock lk(mutex_);
  auto base = manual_ ? manual_now_ : clock::now();
  timeout_key k{base + std::chrono::nanoseconds(delay_ns), next_id_++};
  if (stopping_) return k;
  by_time_.emplace(key{k.at, k.id}, entry{to, nullptr, token});
  bool notify = !manual_ && k.at < thread_wakes_at_;
  if (notify) thread_wakes_at_ = k.at;
  lk.unlock();
  if (notify) cv_.notify_one();
  return k;
}

void timer_service::cancel_timeout(const timeout_key& k) {
  std::lock_guard lk(mutex_);
  by_time_.erase(key{k.at, k.id});
}

void timer_service::fire(entry& e) {
  if (!e.env) e.env = std::make_unique<signal_envelope>(envelope_kind::timeout, pid{}, exit_reason{}, e.token);
  deliver_quiet(e.to, std::move(e.env));
}

std::optional<std::chrono::nanoseconds> timer_service::cancel(std::uint64_t id) {
  std::unique_ptr<envelope> dropped;
  std::lock_guard lk(mutex_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return std::nullopt;
  auto at = it->second;
  by_id_.erase(it);
  auto node = by_time_.extract(key{at, id});
  if (!node.empty()) dropped = std::move(node.mapped().env);
  auto base = manual_ ? manual_now_ : clock::now();
  return at > base ? std::chrono::duration_cast<std::chrono::nanoseconds>(at - base) : std::chrono::nanoseconds(0);
}

bool timer_service::cancel_quiet(std::uint64_t id) {
  std::unique_ptr<envelope> dropped;
  std::lock_guard lk(mutex_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return false;
  auto node = by_time_.extract(key{it->second, id});
  by_id_.erase(it);
  if (!node.empty()) dropped = std::move(node.mapped().env);
  return true;
}

std::size_t timer_service::pending() const {
  std::lock_guard lk(mutex_);
  return by_time_.size();
}

void timer_service::advance(std::chrono::nanoseconds d) {
  if (!manual_) throw std::logic_error("advance() needs a node with a manual clock");
  if (d.count() < 0) throw std::invalid_argument("advance() takes a non-negative duration");
  std::unique_lock lk(mutex_);
  const auto target = manual_now_ + d;
  // One timer at a time, time stepping to each deadline, so a timer set by a process woken
  // here with a deadline inside the window still fires in this advance, in order.
  for (;;) {
    if (by_time_.empty() || by_time_.begin()->first.first > target) break;
    auto node = by_time_.extract(by_time_.begin());
    if (node.mapped().env) by_id_.erase(node.key().second);
    manual_now_ = node.key().first;
    lk.unlock();
    ready_queue::wake_in_order fifo;  // processes woken by timers due together run in order
    fire(node.mapped());
    lk.lock();
  }
  if (manual_now_ < target) manual_now_ = target;
}

void timer_service::run() {
  std::unique_lock lk(mutex_);
  while (!stopping_) {
    if (by_time_.empty()) {
      thread_wakes_at_ = clock::time_point::max();
      cv_.wait(lk);
      continue;
    }
    auto at = by_time_.begin()->first.first;
    if (clock::now() < at) {
      thread_wakes_at_ = at;
      cv_.wait_until(lk, at);
      continue;
    }
    thread_wakes_at_ = clock::time_point::min();  // awake: an earlier timer needs no notify
    std::vector<entry> due;
    auto now = clock::now();
    while (!by_time_.empty() && by_time_.begin()->first.first <= now) {
      auto node = by_time_.extract(by_time_.begin());
      if (node.mapped().env) by_id_.erase(node.key().second);
      due.push_back(std::move(node.mapped()));
    }
    lk.unlock();
    for (auto& e : due) fire(e);
    lk.lock();
  }
}

}  // namespace grove::detail
