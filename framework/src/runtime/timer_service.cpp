#include "timer_service.hpp"

#include "scheduler.hpp"

#include <time.h>

#include <stdexcept>
#include <vector>

#include "process_impl.hpp"

namespace grove::detail {

namespace {
// A deadline a second or more away is taken from the coarse clock (a read of the kernel's
// tick, not of the TSC through the hypervisor's clock), plus its resolution: a call's 5 s
// default timeout reads no precise clock. On a loaded VM the coarse clock can lag by more than
// its resolution (the vCPU that keeps time is descheduled), so such a timeout also notes the
// TSC when armed, and the timer thread checks the time really passed before it fires it
// (run(): `on_time`).
timer_service::clock::time_point coarse_now() noexcept {
  static const std::int64_t tick = [] {
    timespec r{};
    return clock_getres(CLOCK_MONOTONIC_COARSE, &r) == 0 ? r.tv_sec * 1'000'000'000LL + r.tv_nsec : -1;
  }();
  timespec t{};
  if (tick < 0 || tick > 10'000'000 || clock_gettime(CLOCK_MONOTONIC_COARSE, &t) != 0) {
    return timer_service::clock::now();
  }
  return timer_service::clock::time_point(std::chrono::nanoseconds(t.tv_sec * 1'000'000'000LL + t.tv_nsec + tick));
}
constexpr std::int64_t coarse_from_ns = 1'000'000'000;

// The shard (1 .. shards-1) of this thread's receive timeouts.
std::size_t thread_shard(std::size_t shards) noexcept {
  static std::atomic<std::size_t> next{0};
  thread_local std::size_t mine = 1 + next.fetch_add(1, std::memory_order_relaxed) % (shards - 1);
  return mine;
}
}  // namespace

timer_service::timer_service(bool manual) : manual_(manual) {
  // A manual clock starts at a fixed, recognisable point so runs repeat exactly.
  manual_now_ = clock::time_point(std::chrono::hours(1));
  if (!manual_) thread_ = std::thread([this] { run(); });
}

timer_service::~timer_service() { stop(); }

void timer_service::stop() {
  std::vector<timer_map> dropped(shards);
  {
    std::lock_guard lk(mutex_);
    stopping_.store(true);
  }
  for (std::size_t i = 0; i < shards; ++i) {
    std::lock_guard lk(shards_[i].mutex);
    dropped[i].swap(shards_[i].by_time);
    if (i == 0) by_id_.clear();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

timer_service::clock::time_point timer_service::now() const {
  if (!manual_) return clock::now();
  std::lock_guard lk(mutex_);
  return manual_now_;
}

void timer_service::after_adding(clock::time_point at) {
  if (manual_ || at.time_since_epoch().count() >= thread_wakes_at_.load()) return;
  {
    std::lock_guard lk(mutex_);
    dirty_ = true;
  }
  cv_.notify_one();
}

namespace {
// base + delay, saturating: a delay past the clock's range (receive_for(duration::max()), a
// 2,562,047 h timeout) means never, not a wrapped deadline in the past.
timer_service::clock::time_point after(timer_service::clock::time_point base, std::int64_t delay_ns) noexcept {
  using clock = timer_service::clock;
  const clock::rep room = clock::time_point::max().time_since_epoch().count() - base.time_since_epoch().count();
  if (delay_ns >= room) return clock::time_point::max();
  return base + std::chrono::nanoseconds(delay_ns);
}
}  // namespace

std::uint64_t timer_service::add(std::int64_t delay_ns, const pid& to, std::unique_ptr<envelope> env) {
  std::unique_lock<std::mutex> clk;  // the manual clock reads and inserts in one step
  if (manual_) clk = std::unique_lock(mutex_);
  shard& s = shards_[0];
  std::unique_lock lk(s.mutex);
  auto at = after(manual_ ? manual_now_ : clock::now(), delay_ns);
  std::uint64_t id = s.next_id++ << shard_bits;
  if (stopping_.load(std::memory_order_relaxed)) return id;
  s.by_time.emplace(key{at, id}, entry{to, std::move(env)});
  by_id_.emplace(id, at);
  lk.unlock();
  if (clk) clk.unlock();
  after_adding(at);
  return id;
}

timer_service::timeout_key timer_service::add_timeout(std::int64_t delay_ns, const pid& to, std::uint64_t token) {
  std::unique_lock<std::mutex> clk;
  if (manual_) clk = std::unique_lock(mutex_);
  const std::size_t i = manual_ ? 0 : thread_shard(shards);
  shard& s = shards_[i];
  std::unique_lock lk(s.mutex);
  const bool coarse = !manual_ && delay_ns >= coarse_from_ns;
  const clock::time_point base = manual_ ? manual_now_ : coarse ? coarse_now() : clock::now();
  timeout_key k{after(base, delay_ns), (s.next_id++ << shard_bits) | i};
  if (stopping_.load(std::memory_order_relaxed)) return k;
  s.by_time.emplace(key{k.at, k.id}, entry{to, nullptr, token, coarse ? timestamp() : 0, delay_ns});
  lk.unlock();
  if (clk) clk.unlock();
  after_adding(k.at);
  return k;
}

void timer_service::cancel_timeout(const timeout_key& k) {
  shard& s = shards_[k.id & (shards - 1)];
  std::lock_guard lk(s.mutex);
  s.by_time.erase(key{k.at, k.id});
}

void timer_service::fire(entry& e) {
  if (!e.env) e.env = std::make_unique<signal_envelope>(envelope_kind::timeout, pid{}, exit_reason{}, e.token);
  deliver_quiet(e.to, std::move(e.env));
}

std::optional<std::chrono::nanoseconds> timer_service::cancel(std::uint64_t id) {
  std::unique_ptr<envelope> dropped;
  std::unique_lock<std::mutex> clk;
  if (manual_) clk = std::unique_lock(mutex_);
  std::lock_guard lk(shards_[0].mutex);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return std::nullopt;
  auto at = it->second;
  by_id_.erase(it);
  auto node = shards_[0].by_time.extract(key{at, id});
  if (!node.empty()) dropped = std::move(node.mapped().env);
  auto base = manual_ ? manual_now_ : clock::now();
  return at > base ? std::chrono::duration_cast<std::chrono::nanoseconds>(at - base) : std::chrono::nanoseconds(0);
}

bool timer_service::cancel_quiet(std::uint64_t id) {
  std::unique_ptr<envelope> dropped;
  std::lock_guard lk(shards_[0].mutex);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return false;
  auto node = shards_[0].by_time.extract(key{it->second, id});
  by_id_.erase(it);
  if (!node.empty()) dropped = std::move(node.mapped().env);
  return true;
}

std::size_t timer_service::pending() const {
  std::size_t n = 0;
  for (auto& s : shards_) {
    std::lock_guard lk(s.mutex);
    n += s.by_time.size();
  }
  return n;
}

void timer_service::advance(std::chrono::nanoseconds d) {
  if (!manual_) throw std::logic_error("advance() needs a node with a manual clock");
  if (d.count() < 0) throw std::invalid_argument("advance() takes a non-negative duration");
  std::unique_lock lk(mutex_);
  const auto target = after(manual_now_, d.count());
  // One timer at a time, time stepping to each deadline, so a timer set by a process woken
  // here with a deadline inside the window still fires in this advance, in order.
  shard& s = shards_[0];  // with the manual clock every timer is there
  for (;;) {
    std::unique_lock slk(s.mutex);
    if (s.by_time.empty() || s.by_time.begin()->first.first > target) break;
    auto node = s.by_time.extract(s.by_time.begin());
    if (node.mapped().env) by_id_.erase(node.key().second);
    slk.unlock();
    manual_now_ = node.key().first;
    lk.unlock();
    ready_queue::wake_in_order fifo;  // processes woken by timers due together run in order
    fire(node.mapped());
    lk.lock();
  }
  if (manual_now_ < target) manual_now_ = target;
}

timer_service::clock::time_point timer_service::take_due(std::size_t i, clock::time_point now,
                                                         std::vector<entry>& due) {
  shard& s = shards_[i];
  std::lock_guard lk(s.mutex);
  while (!s.by_time.empty() && s.by_time.begin()->first.first <= now) {
    auto node = s.by_time.extract(s.by_time.begin());
    if (i == 0 && node.mapped().env) by_id_.erase(node.key().second);
    due.push_back(std::move(node.mapped()));
  }
  return s.by_time.empty() ? clock::time_point::max() : s.by_time.begin()->first.first;
}

// A timeout armed from the coarse clock fires only once its delay has really passed by the TSC
// (with a margin for the TSC's rate, measured since the program started); otherwise it is due
// again when it has. The receive it belongs to cancels the first key only: a re-armed timeout
// it outlived arrives with a stale token and is ignored.
// The clock is read here, with the TSC, not taken from before the shards were scanned: a timer
// thread held up in between (a busy machine) would put the new deadline that much too early.
bool timer_service::on_time(entry& e) {
  if (e.armed_ticks == 0) return true;
  const std::int64_t passed = timestamp_to_ns(timestamp() - e.armed_ticks);
  const std::int64_t wanted = e.delay_ns + 50'000 + e.delay_ns / 10'000;
  if (passed >= wanted) return true;
  const auto at = clock::now() + std::chrono::nanoseconds(wanted - passed);
  const std::size_t i = 1;  // a receive timeout's shard: any of 1 .. shards-1
  shard& s = shards_[i];
  std::lock_guard lk(s.mutex);
  s.by_time.emplace(key{at, (s.next_id++ << shard_bits) | i}, entry{e.to, nullptr, e.token, 0, 0});
  return false;
}

void timer_service::run() {
  constexpr clock::rep awake = clock::time_point::max().time_since_epoch().count();
  std::vector<entry> due;
  std::unique_lock lk(mutex_);
  while (!stopping_.load(std::memory_order_relaxed)) {
    // Awake: every timer added from here on marks dirty_ (after_adding), so none is missed
    // between this scan and the sleep below.
    thread_wakes_at_.store(awake);
    dirty_ = false;
    lk.unlock();
    const auto now = clock::now();
    auto next = clock::time_point::max();
    for (std::size_t i = 0; i < shards; ++i) next = std::min(next, take_due(i, now, due));
    for (auto& e : due) {
      if (on_time(e)) fire(e);
    }
    const bool fired = !due.empty();  // then look again: a timeout put back changed the next deadline
    due.clear();
    lk.lock();
    if (fired || dirty_) continue;
    thread_wakes_at_.store(next.time_since_epoch().count());
    auto woken = [this] { return dirty_ || stopping_.load(std::memory_order_relaxed); };
    if (next == clock::time_point::max()) {
      cv_.wait(lk, woken);
    } else {
      cv_.wait_until(lk, next, woken);
    }
  }
}

}  // namespace grove::detail
