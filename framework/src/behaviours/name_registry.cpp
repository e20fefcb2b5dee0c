#include <grove/behaviours/name_registry.hpp>

#include <algorithm>
#include <cstring>
#include <functional>
#include <mutex>

#include "hazard_pointer.hpp"

namespace grove {

namespace {
std::string describe(registry_error::kind k, const std::string& name, const pid& holder) {
  switch (k) {
    case registry_error::kind::name_taken:
      return "name '" + name + "' is already registered to " + holder.str();
    case registry_error::kind::already_named:
      return holder.str() + " is already registered as '" + name + "'";
    case registry_error::kind::dead_process:
      return "cannot register '" + name + "': the process is not alive";
    case registry_error::kind::not_registered:
      return "name '" + name + "' is not registered";
  }
  return "registry error";
}
}  // namespace

registry_error::registry_error(kind k, std::string name, pid holder)
    : std::runtime_error(describe(k, name, holder)), kind_(k), holder_(holder) {}

namespace detail {

namespace {
std::atomic<std::size_t> live_views{0};
std::atomic<std::size_t> live_entries{0};

__extension__ using u128 = unsigned __int128;
constexpr std::uint64_t hash_seed = 0x9E3779B97F4A7C15ull;
constexpr std::uint64_t hash_key = 0xE7037ED1A0B428DBull;

std::uint64_t mix(std::uint64_t a, std::uint64_t b) noexcept {
  u128 r = static_cast<u128>(a) * b;
  return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64);
}
std::uint64_t load8(const char* p) noexcept {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
std::uint64_t load4(const char* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// A wyhash-style hash, inline: std::hash<std::string_view> is an out-of-line call that cost a
// tenth of a whereis. Names are short: one or two multiplications for up to 16 bytes.
[[gnu::always_inline]] inline std::size_t hash_name(std::string_view name) noexcept {
  const char* p = name.data();
  std::size_t n = name.size();
  std::uint64_t h = hash_seed ^ n;
  for (; n > 16; p += 16, n -= 16) h = mix(load8(p) ^ hash_key, load8(p + 8) ^ h);
  std::uint64_t a = 0, b = 0;
  if (n >= 8) {
    a = load8(p);
    b = load8(p + n - 8);
  } else if (n >= 4) {
    a = load4(p);
    b = load4(p + n - 4);
  } else if (n > 0) {
    a = (std::uint64_t{static_cast<unsigned char>(p[0])} << 16) |
        (std::uint64_t{static_cast<unsigned char>(p[n / 2])} << 8) | static_cast<unsigned char>(p[n - 1]);
  }
  return mix(a ^ hash_key, b ^ h);
}
std::size_t hash_pid(const pid& p) noexcept { return std::hash<pid>{}(p); }

// a == b for names: short ones (most) without a call to memcmp, by two overlapping loads a side.
[[gnu::always_inline]] inline bool same_name(std::string_view a, std::string_view b) noexcept {
  const std::size_t n = a.size();
  if (n != b.size()) return false;
  if (n >= 8 && n <= 16)
    return load8(a.data()) == load8(b.data()) && load8(a.data() + n - 8) == load8(b.data() + n - 8);
  if (n >= 4 && n < 8) return load4(a.data()) == load4(b.data()) && load4(a.data() + n - 4) == load4(b.data() + n - 4);
  return a == b;
}
}  // namespace

std::size_t live_name_views() noexcept { return live_views.load(std::memory_order_relaxed); }
std::size_t live_name_entries() noexcept { return live_entries.load(std::memory_order_relaxed); }

struct name_entry {
  name_entry(std::string n, const pid& p)
      : name(std::move(n)), who(p), found(p), name_hash(hash_name(name)), pid_hash(hash_pid(p)) {
    live_entries.fetch_add(1, std::memory_order_relaxed);
  }
  ~name_entry() { live_entries.fetch_sub(1, std::memory_order_relaxed); }
  name_entry(const name_entry&) = delete;
  name_entry& operator=(const name_entry&) = delete;
  const std::string name;
  const pid who;
  // whereis's answer, ready made: copied in two loads rather than assembled on the stack.
  const std::optional<pid> found;
  const std::size_t name_hash;
  const std::size_t pid_hash;
};

namespace {
// A released slot: probes go on past it, inserts may take it. Compared, never read through.
alignas(name_entry) const char tombstone_mark = 0;
const name_entry* tombstone() noexcept { return reinterpret_cast<const name_entry*>(&tombstone_mark); }
}  // namespace

// The names: two open-addressing indexes (by name, by pid) of atomic entry pointers, linear
// probing, at most half used (entries and tombstones). Writers (serialized) change slots in
// place; lookups read them without a lock. An insert is one release store; a release leaves a
// tombstone. Growing or sweeping tombstones builds a new index, published with a new view.
class name_index {
 public:
  explicit name_index(std::size_t live) {
    unsigned bits = 3;
    while ((std::size_t{1} << bits) < 4 * (live + 1)) ++bits;  // a quarter used after a rebuild
    shift_ = 64 - bits;
    mask_ = (std::size_t{1} << bits) - 1;
    by_name_ = std::make_unique<slot[]>(mask_ + 1);
    by_pid_ = std::make_unique<slot[]>(mask_ + 1);
  }
  name_index(const name_index&) = delete;
  name_index& operator=(const name_index&) = delete;

  // Whether one more entry fits without passing half of the slots in either index.
  bool has_room() const noexcept { return 2 * (std::max(used_by_name_, used_by_pid_) + 1) <= mask_ + 1; }
  std::size_t live() const noexcept { return live_; }

  void insert(const name_entry* e) noexcept {
    used_by_name_ += put(by_name_.get(), e->name_hash, e);
    used_by_pid_ += put(by_pid_.get(), e->pid_hash, e);
    ++live_;
  }
  void erase(const name_entry* e) noexcept {
    take(by_name_.get(), e->name_hash, e);
    take(by_pid_.get(), e->pid_hash, e);
    --live_;
  }
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i <= mask_; ++i) {
      const name_entry* e = by_name_[i].load(std::memory_order_acquire);
      if (e && e != tombstone()) f(e);
    }
  }

  using slot = std::atomic<const name_entry*>;
  slot* by_name() const noexcept { return by_name_.get(); }
  slot* by_pid() const noexcept { return by_pid_.get(); }
  unsigned shift() const noexcept { return shift_; }
  std::size_t mask() const noexcept { return mask_; }

 private:
  // Fibonacci hashing: the top bits of hash * 2^64/phi, so pids' hashes (nearly the raw
  // fields) spread too.
  std::size_t index(std::size_t hash) const noexcept { return (hash * 0x9E3779B97F4A7C15ull) >> shift_; }
  // Into the first free or released slot of the probe sequence; 1 if a free one was used.
  std::size_t put(slot* slots, std::size_t hash, const name_entry* e) noexcept {
    for (std::size_t i = index(hash);; i = (i + 1) & mask_) {
      const name_entry* now = slots[i].load(std::memory_order_relaxed);
      if (!now || now == tombstone()) {
        slots[i].store(e, std::memory_order_release);
        return now ? 0 : 1;
      }
    }
  }
  void take(slot* slots, std::size_t hash, const name_entry* e) noexcept {
    for (std::size_t i = index(hash);; i = (i + 1) & mask_) {
      if (slots[i].load(std::memory_order_relaxed) == e) {
        slots[i].store(tombstone(), std::memory_order_relaxed);
        return;
      }
    }
  }

  unsigned shift_;
  std::size_t mask_;
  std::unique_ptr<slot[]> by_name_;
  std::unique_ptr<slot[]> by_pid_;
  std::size_t used_by_name_ = 0;
  std::size_t used_by_pid_ = 0;
  std::size_t live_ = 0;
};

// What a lookup announces and reads: an index's slots, under a version. Writers publish a new
// view after each release (so an entry released at version v is reachable only through views
// up to v) and after each rebuild; inserts go into the current view's slots directly.
class name_view {
 public:
  name_view(const name_index& index, std::uint64_t version)
      : by_name_(index.by_name()),
        by_pid_(index.by_pid()),
        mask_(index.mask()),
        shift_(index.shift()),
        version_(version) {
    live_views.fetch_add(1, std::memory_order_relaxed);
  }
  ~name_view() { live_views.fetch_sub(1, std::memory_order_relaxed); }
  name_view(const name_view&) = delete;
  name_view& operator=(const name_view&) = delete;

  const name_entry* find(std::string_view name, std::size_t hash) const noexcept {
    for (std::size_t i = index(hash);; i = (i + 1) & mask_) {
      const name_entry* e = by_name_[i].load(std::memory_order_acquire);
      if (!e) return nullptr;
      if (e != tombstone() && e->name_hash == hash && same_name(e->name, name)) return e;
    }
  }
  const name_entry* find(const pid& p) const noexcept {
    std::size_t hash = hash_pid(p);
    for (std::size_t i = index(hash);; i = (i + 1) & mask_) {
      const name_entry* e = by_pid_[i].load(std::memory_order_acquire);
      if (!e) return nullptr;
      if (e != tombstone() && e->pid_hash == hash && e->who == p) return e;
    }
  }
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i <= mask_; ++i) {
      const name_entry* e = by_name_[i].load(std::memory_order_acquire);
      if (e && e != tombstone()) f(e);
    }
  }
  std::uint64_t version() const noexcept { return version_; }

 private:
  std::size_t index(std::size_t hash) const noexcept { return (hash * 0x9E3779B97F4A7C15ull) >> shift_; }
  const name_index::slot* const by_name_;
  const name_index::slot* const by_pid_;
  const std::size_t mask_;
  const unsigned shift_;
  const std::uint64_t version_;
};

}  // namespace detail

using detail::name_entry;
using detail::name_index;
using detail::name_view;

name_registry::name_registry(node& n)
    : node_(n), index_(std::make_unique<name_index>(0)), current_(new name_view(*index_, 0)) {
  node_.add_exit_hook(&name_registry::on_exit, this);
  node_.set_namer([](void* self, const pid& who) { return static_cast<name_registry*>(self)->name_of(who); }, this);
}

name_registry::dropped::dropped(std::uint64_t v) : version(v) {}
name_registry::dropped::~dropped() = default;
name_registry::dropped::dropped(dropped&&) noexcept = default;
name_registry::dropped& name_registry::dropped::operator=(dropped&&) noexcept = default;

// The node is stopping: no process is left to die, and no lookup is left running.
name_registry::~name_registry() {
  node_.set_namer(nullptr, nullptr);
  index_->for_each([](const name_entry* e) { delete e; });
  delete current_.load(std::memory_order_relaxed);
  for (const name_view* v : retired_) delete v;
}

void name_registry::add(const std::string& name, const pid& p) {
  if (!detail::mark_owner(p)) throw registry_error(registry_error::kind::dead_process, name, p);
  {
    std::lock_guard lk(write_mutex_);
    const name_view& now = *current_.load(std::memory_order_relaxed);  // only writers replace it
    if (auto* e = now.find(name, detail::hash_name(name))) {
      throw registry_error(registry_error::kind::name_taken, name, e->who);
    }
    if (auto* e = now.find(p)) throw registry_error(registry_error::kind::already_named, e->name, p);
    auto entry = std::make_unique<const name_entry>(name, p);
    if (!index_->has_room()) rebuild();
    index_->insert(entry.release());  // visible to lookups from this store on
  }
  // It may have died between mark_owner and the insert, with its exit hook already run.
  if (!alive(p)) {
    on_exit(this, p);
    throw registry_error(registry_error::kind::dead_process, name, p);
  }
}

bool name_registry::remove(std::string_view name) {
  std::lock_guard lk(write_mutex_);
  const name_entry* e = current_.load(std::memory_order_relaxed)->find(name, detail::hash_name(name));
  if (!e) return false;
  release(e);
  return true;
}

std::optional<pid> name_registry::whereis(std::string_view name) const {
  std::size_t hash = detail::hash_name(name);  // before the guard: keeps the read window short
  detail::hazard_guard<name_view> now(current_);
  const name_entry* e = now->find(name, hash);
  return e ? e->found : std::nullopt;
}

std::optional<std::string> name_registry::name_of(const pid& p) const {
  detail::hazard_guard<name_view> now(current_);
  if (const name_entry* e = now->find(p)) return e->name;
  return std::nullopt;
}

std::vector<std::string> name_registry::registered() const {
  std::vector<std::string> out;
  detail::hazard_guard<name_view> now(current_);
  now->for_each([&](const name_entry* e) { out.push_back(e->name); });
  return out;
}

void name_registry::on_exit(void* self, const pid& who) {
  auto* r = static_cast<name_registry*>(self);
  {
    // Most dying owners hold keyed-registry keys, not names: skip the writers' lock for them.
    // A registration of `who` racing with this hook is cleaned up by add itself.
    detail::hazard_guard<name_view> now(r->current_);
    if (!now->find(who)) return;
  }
  std::lock_guard lk(r->write_mutex_);
  if (const name_entry* e = r->current_.load(std::memory_order_relaxed)->find(who)) r->release(e);
}

// Under write_mutex_. What may throw comes first: if it does, the names are unchanged.
void name_registry::release(const name_entry* e) {
  const std::uint64_t version = current_.load(std::memory_order_relaxed)->version();
  auto next = std::make_unique<const name_view>(*index_, version + 1);
  dropped_.emplace_back(version);
  retired_.reserve(retired_.size() + 1);
  index_->erase(e);  // lookups through views from `next` on cannot reach e
  dropped_.back().entry.reset(e);
  publish(std::move(next));
}

// Under write_mutex_: a new index with the live entries, a quarter used, no tombstones.
void name_registry::rebuild() {
  auto bigger = std::make_unique<name_index>(index_->live());
  index_->for_each([&](const name_entry* e) { bigger->insert(e); });
  const std::uint64_t version = current_.load(std::memory_order_relaxed)->version();
  auto next = std::make_unique<const name_view>(*bigger, version + 1);
  dropped_.emplace_back(version);
  retired_.reserve(retired_.size() + 1);
  dropped_.back().index = std::move(index_);
  index_ = std::move(bigger);
  publish(std::move(next));
}

void name_registry::publish(std::unique_ptr<const name_view> next) {
  // Lookups that start from here on find `next`; reclaim's scan (after its fence) sees every
  // lookup still reading an older one (see hazard_pointer.hpp).
  retired_.push_back(current_.exchange(next.release(), std::memory_order_seq_cst));
  if (retired_.size() >= detail::name_reclaim_batch) reclaim();
}

// A replaced view is freed once no lookup announces it; lookups that start later find a newer
// one. A released entry (or a replaced index) is reachable only through views up to the
// version it was dropped at: once every view that old is freed, so is it. The scan costs a
// fence over all threads (membarrier), hence batches of name_reclaim_batch views.
void name_registry::reclaim() {
  auto hazards = detail::announced_hazards();
  std::uint64_t oldest = current_.load(std::memory_order_relaxed)->version();
  std::erase_if(retired_, [&](const name_view* v) {
    if (detail::is_announced(hazards, v)) {
      oldest = std::min(oldest, v->version());
      return false;
    }
    delete v;
    return true;
  });
  while (!dropped_.empty() && dropped_.front().version < oldest) dropped_.pop_front();
}

name_registry& names() { return this_node().service<name_registry>(); }

void register_name(const std::string& name, const pid& p) { names().add(name, p); }
bool unregister_name(std::string_view name) { return names().remove(name); }
std::optional<pid> whereis(std::string_view name) { return names().whereis(name); }
std::vector<std::string> registered() { return names().registered(); }

}  // namespace grove
