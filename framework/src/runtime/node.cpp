#include "node_impl.hpp"

#include <algorithm>
#include <iostream>
#include <shared_mutex>
#include <stdexcept>
#include <unordered_map>

#include <grove/detail/remote.hpp>

namespace grove::detail {

// ---- process_table --------------------------------------------------------------------------

process_table::~process_table() {
  for (auto& c : chunks_) {
    process** chunk = c.load(std::memory_order_acquire);
    if (!chunk) continue;
    for (std::uint32_t i = 0; i < chunk_size; ++i) {
      if (process* p = chunk[i]) {
        envelope_list in = p->mail.close();
        in.clear();
        p->mail.queue.clear();
        delete p;
      }
    }
    delete[] chunk;
  }
}

process* process_table::acquire() {
  std::uint32_t slot;
  {
    spinlock_lock lk(free_lock_);
    // Reuse a slot only once many are free, so a pid's slot is seldom reused soon after.
    if (free_.size() > 1024) {
      slot = free_.front();
      free_.pop_front();
      lk.unlock();
      process* p = lookup(slot);
      spinlock_lock plk(p->lock);
      if (++p->generation == 0) p->generation = 1;
      return p;
    }
    slot = next_slot_.load(std::memory_order_relaxed);
    if ((slot >> chunk_bits) >= max_chunks) {
      if (free_.empty()) throw std::runtime_error("process table full");
      slot = free_.front();
      free_.pop_front();
      lk.unlock();
      process* p = lookup(slot);
      spinlock_lock plk(p->lock);
      if (++p->generation == 0) p->generation = 1;
      return p;
    }
    auto& c = chunks_[slot >> chunk_bits];
    if (!c.load(std::memory_order_relaxed)) c.store(new process*[chunk_size](), std::memory_order_release);
    process* p = new process(node_, slot);
    p->generation = 1;
    __atomic_store_n(&c.load(std::memory_order_relaxed)[slot & (chunk_size - 1)], p, __ATOMIC_RELEASE);
    next_slot_.store(slot + 1, std::memory_order_release);
    return p;
  }
}

void process_table::release(process* p) noexcept {
  spinlock_lock lk(free_lock_);
  try {
    free_.push_back(p->slot);
  } catch (...) {
    // Out of memory: the slot is lost, not reused.
  }
}

// ---- blocking_pool --------------------------------------------------------------------------

blocking_pool::blocking_pool(unsigned threads) {
  if (threads == 0) threads = 1;
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { run(); });
}

blocking_pool::~blocking_pool() { stop(); }

void blocking_pool::submit(unique_function job) {
  {
    std::lock_guard lk(mutex_);
    if (stopping_) return;
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void blocking_pool::stop() {
  {
    std::lock_guard lk(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  jobs_.clear();
}

void blocking_pool::run() {
  std::unique_lock lk(mutex_);
  for (;;) {
    cv_.wait(lk, [this] { return stopping_ || !jobs_.empty(); });
    if (stopping_) return;
    unique_function job = std::move(jobs_.front());
    jobs_.pop_front();
    lk.unlock();
    job();
    lk.lock();
  }
}

// ---- node registry ------------------------------------------------------------------------

namespace {
constexpr std::uint32_t registry_size = 1024;
std::atomic<node_impl*> registry[registry_size];
std::atomic<std::uint32_t> next_node_id{1};
std::mutex registry_mutex;
}  // namespace

// ---- remote nodes (grove/detail/remote.hpp): ids from the same counter, never in `registry` --

namespace {
std::shared_mutex remote_mutex;
std::unordered_map<std::uint32_t, std::shared_ptr<remote_carrier>>& remotes() {
  static std::unordered_map<std::uint32_t, std::shared_ptr<remote_carrier>> m;
  return m;
}
}  // namespace

std::uint32_t add_remote_node(std::shared_ptr<remote_carrier> c) {
  std::uint32_t id = 0;
  while (id == 0) id = next_node_id.fetch_add(1);
  std::unique_lock lk(remote_mutex);
  remotes()[id] = std::move(c);
  return id;
}

void remove_remote_node(std::uint32_t id) {
  std::shared_ptr<remote_carrier> gone;  // destroyed outside the lock
  std::unique_lock lk(remote_mutex);
  if (auto it = remotes().find(id); it != remotes().end()) {
    gone = std::move(it->second);
    remotes().erase(it);
  }
}

std::shared_ptr<remote_carrier> remote_node(std::uint32_t id) {
  std::shared_lock lk(remote_mutex);
  auto it = remotes().find(id);
  return it == remotes().end() ? nullptr : it->second;
}

namespace {
std::atomic<remote_name_resolver> name_resolver{nullptr};
}  // namespace

void set_remote_name_resolver(remote_name_resolver r) { name_resolver.store(r, std::memory_order_release); }

std::optional<pid> resolve_remote_name(const std::string& name, const std::string& node) {
  auto r = name_resolver.load(std::memory_order_acquire);
  return r ? r(name, node) : std::nullopt;
}

node_impl* node_impl::find(std::uint32_t id) noexcept {
  node_impl* n = registry[id % registry_size].load(std::memory_order_acquire);
  return n && n->id == id ? n : nullptr;
}

// ---- node_impl ------------------------------------------------------------------------------

namespace {
node_options normalized(node_options o) {
  if (o.schedulers == 0) o.schedulers = std::max(1u, std::thread::hardware_concurrency());
  return o;
}
}  // namespace

node_impl::node_impl(node* o, node_options opts)
    : owner(o), options(normalized(opts)), timers(options.manual_clock), blocking(options.blocking_threads) {
  if (options.record_messages) recording_nodes.fetch_add(1, std::memory_order_relaxed);
  {
    std::lock_guard lk(registry_mutex);
    for (;;) {
      std::uint32_t candidate = next_node_id.fetch_add(1);
      if (candidate == 0) continue;
      if (!registry[candidate % registry_size].load()) {
        id = candidate;
        registry[candidate % registry_size].store(this, std::memory_order_release);
        break;
      }
    }
  }
  for (unsigned i = 0; i < options.schedulers; ++i) schedulers.push_back(std::make_unique<scheduler>(this, i));
  for (auto& s : schedulers) s->start();
  if (options.long_schedule.count() > 0 && !options.manual_clock) {
    watcher = std::make_unique<watchdog>(*this, options.long_schedule);
  }
}

node_impl::~node_impl() {
  stop();
  if (options.record_messages) recording_nodes.fetch_sub(1, std::memory_order_relaxed);
  services.clear();  // after every process ended, before the table and stacks go
  std::lock_guard lk(registry_mutex);
  registry[id % registry_size].store(nullptr, std::memory_order_release);
}

scheduler& node_impl::round_robin() noexcept {
  if (schedulers.size() == 1) return *schedulers[0];
  return *schedulers[next_placement.fetch_add(1, std::memory_order_relaxed) % schedulers.size()];
}

scheduler& node_impl::free_scheduler(scheduler* busy) noexcept {
  scheduler* pick = nullptr;
  for (auto& s : schedulers) {
    if (s.get() == busy) continue;
    if (s->fibers().parked()) return *s;
    if (!pick && !s->hogged()) pick = s.get();
  }
  return pick ? *pick : *busy;
}

scheduler& node_impl::place() noexcept {
  scheduler* here = scheduler::on_this_thread();
  if (here && here->node() == this) return *here;
  return round_robin();
}

// ---- input the scheduler threads wait on (grove/detail/remote.hpp) -------------------------------

void set_io_poller(node& n, io_poller* p) {
  node_impl& impl = node_access::of(n);
  impl.poller.store(p, std::memory_order_release);
  // Takes the turn once: no thread waits on the poller before, or runs its ready(), after that.
  // A thread waiting for input is woken to give it back.
  while (impl.poll_turn.exchange(true, std::memory_order_acquire)) {
    if (impl.poll_waiter.load(std::memory_order_seq_cst)) {
      for (auto& s : impl.schedulers) s->fibers().notify();
    }
    std::this_thread::yield();
  }
  impl.give_back_poll_turn();
}

void node_impl::give_back_poll_turn() noexcept {
  poll_turn.store(false, std::memory_order_seq_cst);
  if (input_parked.load(std::memory_order_seq_cst) == 0 || input_watcher.load(std::memory_order_seq_cst)) return;
  for (auto& s : schedulers) {
    if (s->fibers().parked()) {
      s->fibers().notify();
      return;
    }
  }
}

bool io_polled(node& n, std::chrono::nanoseconds within) noexcept {
  node_impl& impl = node_access::of(n);
  if (impl.poll_waiter.load(std::memory_order_seq_cst)) return true;
  const std::int64_t at = impl.polled_at.load(std::memory_order_relaxed);
  return at != 0 && timestamp_to_ns(timestamp() - at) < within.count();
}

void node_impl::work_available(scheduler* from) noexcept {
  if (schedulers.size() < 2 || spinning.load(std::memory_order_seq_cst) > 0) return;
  for (auto& s : schedulers) {
    if (s.get() != from && s->fibers().parked()) {
      s->fibers().notify();
      return;
    }
  }
}

void node_impl::process_ended() noexcept {
  if ((live.fetch_sub(1, std::memory_order_acq_rel) == 1 && stopping.load(std::memory_order_acquire)) ||
      end_waiters.load(std::memory_order_acquire) > 0) {
    std::lock_guard lk(stop_mutex);
    stop_cv.notify_all();
  }
}

void node_impl::stop() {
  if (current() && current()->node == this)
    throw std::logic_error("a node cannot be stopped from one of its own processes");
  {
    std::unique_lock lk(stop_mutex);
    if (stopping.exchange(true)) {
      stop_cv.wait(lk, [this] { return stopped; });
      return;
    }
  }
  auto started = std::chrono::steady_clock::now();
  auto last_report = started;
  for (;;) {
    // Signal every live process; repeated rounds catch any spawned while the first ran.
    std::uint32_t high = table.high_water();
    for (std::uint32_t s = 0; s < high; ++s) {
      process* p = table.lookup(s);
      if (!p) continue;
      std::uint32_t gen = 0;
      {
        spinlock_lock lk(p->lock);
        if (p->state != life::alive) continue;
        gen = p->generation;
      }
      deliver_quiet(pid(id, s, gen),
                    std::make_unique<signal_envelope>(envelope_kind::exit_forced, pid{}, exit_reason::shutdown()));
    }
    std::unique_lock lk(stop_mutex);
    if (stop_cv.wait_for(lk, std::chrono::seconds(1), [this] { return live.load() == 0; })) break;
    lk.unlock();
    auto now = std::chrono::steady_clock::now();
    if (now - last_report >= std::chrono::seconds(5)) {
      last_report = now;
      std::cerr << "grove: node " << id << " stopping, still waiting for " << live.load()
                << " process(es) that have not suspended:\n";
      for (std::uint32_t s = 0; s < table.high_water(); ++s) {
        process* p = table.lookup(s);
        if (!p) continue;
        spinlock_lock plk(p->lock);
        if (p->state == life::alive || p->state == life::exiting) {
          std::cerr << "  " << p->self() << " " << (p->label.empty() ? "(no label)" : p->label) << "\n";
        }
      }
    }
  }
  timers.stop();
  blocking.stop();
  watcher.reset();  // it reads the schedulers
  for (auto& s : schedulers) s->stop();
  std::lock_guard lk(stop_mutex);
  stopped = true;
  stop_cv.notify_all();
}

}  // namespace grove::detail

namespace grove {

node::node(node_options opts) : impl_(std::make_unique<detail::node_impl>(this, opts)) {}
node::~node() = default;

void node::stop() { impl_->stop(); }

pid node::spawn_handler(std::unique_ptr<process_handler> h, const spawn_options& opts) {
  return detail::spawn_handler(this, std::move(h), opts, detail::spawn_link_mode::none).who;
}

void node::assert_outside_process(const char* what) const {
  if (detail::current())
    throw std::logic_error(std::string(what) + " blocks its thread: call it from outside any process");
}

void* node::service_slot(const std::type_info& t, std::shared_ptr<void> (*make)(node&)) {
  auto& list = impl_->services;
  if (void* p = list.find(t, list.count.load(std::memory_order_acquire))) return p;
  std::lock_guard lk(impl_->services_mutex);
  // Another thread may have made it meanwhile: creators append only under the mutex.
  if (void* p = list.find(t, list.count.load(std::memory_order_relaxed))) return p;
  auto made = make(*this);  // may append services of its own
  std::size_t i = list.count.load(std::memory_order_relaxed);
  if (i == list.entries.size()) throw std::length_error("grove: too many service types on one node");
  list.entries[i] = {&t, std::move(made)};
  list.count.store(i + 1, std::memory_order_release);
  return list.entries[i].second.get();
}

namespace {
template <class Fn>
void add_hook(std::shared_mutex& m, std::vector<std::pair<Fn, void*>>& v, Fn fn, void* ctx) {
  std::unique_lock lk(m);
  v.emplace_back(fn, ctx);
}
template <class Fn>
void remove_hook(std::shared_mutex& m, std::vector<std::pair<Fn, void*>>& v, Fn fn, void* ctx) {
  std::unique_lock lk(m);
  v.erase(std::remove(v.begin(), v.end(), std::make_pair(fn, ctx)), v.end());
}
}  // namespace

void node::add_exit_hook(exit_hook fn, void* ctx) { add_hook(impl_->hooks_mutex, impl_->exit_hooks, fn, ctx); }
void node::remove_exit_hook(exit_hook fn, void* ctx) { remove_hook(impl_->hooks_mutex, impl_->exit_hooks, fn, ctx); }
void node::add_crash_hook(crash_hook fn, void* ctx) { add_hook(impl_->hooks_mutex, impl_->crash_hooks, fn, ctx); }
void node::add_long_schedule_hook(long_schedule_hook fn, void* ctx) {
  add_hook(impl_->hooks_mutex, impl_->long_schedule_hooks, fn, ctx);
}
void node::remove_long_schedule_hook(long_schedule_hook fn, void* ctx) {
  remove_hook(impl_->hooks_mutex, impl_->long_schedule_hooks, fn, ctx);
}
void node::remove_crash_hook(crash_hook fn, void* ctx) { remove_hook(impl_->hooks_mutex, impl_->crash_hooks, fn, ctx); }

void node::set_namer(namer fn, void* ctx) {
  std::unique_lock lk(impl_->hooks_mutex);
  impl_->namer = {fn, ctx};
}

std::optional<std::string> node::registered_name(const pid& who) const {
  std::shared_lock lk(impl_->hooks_mutex);
  if (!impl_->namer.first) return std::nullopt;
  return impl_->namer.first(impl_->namer.second, who);
}

void node::wait_ended(const pid& p) {
  impl_->end_waiters.fetch_add(1);
  {
    std::unique_lock lk(impl_->stop_mutex);
    // The notify in process_ended can race the check; the short timed wait is the backstop.
    while (!impl_->stop_cv.wait_for(lk, std::chrono::milliseconds(10), [&] { return detail::ended(p); })) {
    }
  }
  impl_->end_waiters.fetch_sub(1);
}

std::uint32_t node::id() const noexcept { return impl_->id; }
const std::string& node::name() const noexcept { return impl_->options.name; }
unsigned node::schedulers() const noexcept { return static_cast<unsigned>(impl_->schedulers.size()); }
std::size_t node::process_count() const noexcept { return impl_->live.load(std::memory_order_relaxed); }

node::stack_memory node::stack_memory_stats() const {
  return {impl_->stacks.mapped_bytes(), impl_->stacks.warm_bytes(), impl_->stacks.released_bytes()};
}

node_totals node::totals() const {
  node_totals t;
  t.ended = impl_->ended.load(std::memory_order_relaxed);
  t.ended_messages_in = impl_->ended_in.load(std::memory_order_relaxed);
  t.ended_messages_out = impl_->ended_out.load(std::memory_order_relaxed);
  t.spawned = impl_->spawned.load(std::memory_order_relaxed);
  t.uptime = std::chrono::steady_clock::now() - impl_->started_at;
  for (auto& s : impl_->schedulers) {
    t.scheduler_idle.emplace_back(s->fibers().idle_ns());
    const detail::call_counters& c = s->calls();
    t.calls += c.calls.load(std::memory_order_relaxed);
    t.sampled_call_time += std::chrono::nanoseconds(c.sampled_ns.load(std::memory_order_relaxed));
    for (std::size_t b = 0; b < t.call_latency.size(); ++b) {
      const std::uint64_t v = c.buckets[b].load(std::memory_order_relaxed);
      t.call_latency[b] += v;
      t.sampled_calls += v;
    }
  }
  return t;
}

std::vector<pid> node::processes() const {
  std::vector<pid> out;
  for (std::uint32_t s = 0; s < impl_->table.high_water(); ++s) {
    detail::process* p = impl_->table.lookup(s);
    if (!p) continue;
    detail::spinlock_lock lk(p->lock);
    if (p->state == detail::life::alive) out.push_back(p->self());
  }
  return out;
}

std::vector<std::size_t> node::run_queue_lengths() const {
  std::vector<std::size_t> out;
  for (auto& s : impl_->schedulers) out.push_back(s->run_queue_length());
  return out;
}

std::chrono::steady_clock::time_point node::now() const { return impl_->timers.now(); }

void node::advance(duration d) { impl_->timers.advance(d); }

}  // namespace grove
