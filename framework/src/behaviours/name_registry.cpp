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
std::atomic<std::size_t> live_tables{0};
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

std::size_t live_name_tables() noexcept { return live_tables.load(std::memory_order_relaxed); }
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

// One immutable snapshot of the names: two open-addressing indexes (by name, by pid), at most
// half full, linear probing. Built whole by a writer (O(names)); read by any number of lookups.
class name_table {
 public:
  name_table(std::vector<const name_entry*> entries, std::uint64_t version)
      : entries_(std::move(entries)), version_(version) {
    unsigned bits = 3;
    while ((std::size_t{1} << bits) < 2 * entries_.size()) ++bits;
    shift_ = 64 - bits;
    mask_ = (std::size_t{1} << bits) - 1;
    by_name_.resize(mask_ + 1);
    by_pid_.resize(mask_ + 1);
    for (const name_entry* e : entries_) {
      insert(by_name_, e->name_hash, e);
      insert(by_pid_, e->pid_hash, e);
    }
    live_tables.fetch_add(1, std::memory_order_relaxed);
  }
  ~name_table() { live_tables.fetch_sub(1, std::memory_order_relaxed); }
  name_table(const name_table&) = delete;
  name_table& operator=(const name_table&) = delete;

  // A copy with `added` and without `removed` (either may be null), one version later.
  std::unique_ptr<const name_table> with(const name_entry* added, const name_entry* removed) const {
    std::vector<const name_entry*> next;
    next.reserve(entries_.size() + 1);
    for (const name_entry* e : entries_)
      if (e != removed) next.push_back(e);
    if (added) next.push_back(added);
    return std::make_unique<const name_table>(std::move(next), version_ + 1);
  }

  const name_entry* find(std::string_view name, std::size_t hash) const noexcept {
    for (std::size_t i = index(hash);; i = (i + 1) & mask_) {
      const slot& s = by_name_[i];
      if (!s.entry || (s.hash == hash && same_name(s.entry->name, name))) return s.entry;
    }
  }
  const name_entry* find(const pid& p) const noexcept {
    std::size_t hash = hash_pid(p);
    for (std::size_t i = index(hash);; i = (i + 1) & mask_) {
      const slot& s = by_pid_[i];
      if (!s.entry || (s.hash == hash && s.entry->who == p)) return s.entry;
    }
  }
  const std::vector<const name_entry*>& entries() const noexcept { return entries_; }
  std::uint64_t version() const noexcept { return version_; }

 private:
  struct slot {
    std::size_t hash = 0;
    const name_entry* entry = nullptr;
  };
  // Fibonacci hashing: the top bits of hash * 2^64/phi, so pids' hashes (nearly the raw
  // fields) spread too.
  std::size_t index(std::size_t hash) const noexcept { return (hash * 0x9E3779B97F4A7C15ull) >> shift_; }
  void insert(std::vector<slot>& index_of, std::size_t hash, const name_entry* e) noexcept {
    std::size_t i = index(hash);
    while (index_of[i].entry) i = (i + 1) & mask_;
    index_of[i] = {hash, e};
  }

  std::vector<const name_entry*> entries_;
  std::uint64_t version_;
  unsigned shift_;
  std::size_t mask_;
  std::vector<slot> by_name_;
  std::vector<slot> by_pid_;
};

}  // namespace detail

using detail::name_entry;
using detail::name_table;

name_registry::name_registry(node& n) : node_(n), current_(new name_table({}, 0)) {
  node_.add_exit_hook(&name_registry::on_exit, this);
}

// The node is stopping: no process is left to die, and no lookup is left running.
name_registry::~name_registry() {
  const name_table* now = current_.load(std::memory_order_relaxed);
  for (const name_entry* e : now->entries()) delete e;
  delete now;
  for (const name_table* t : retired_) delete t;
}

void name_registry::add(const std::string& name, const pid& p) {
  if (!detail::mark_owner(p)) throw registry_error(registry_error::kind::dead_process, name, p);
  {
    std::lock_guard lk(write_mutex_);
    const name_table& now = *current_.load(std::memory_order_relaxed);  // only writers replace it
    if (auto* e = now.find(name, detail::hash_name(name))) {
      throw registry_error(registry_error::kind::name_taken, name, e->who);
    }
    if (auto* e = now.find(p)) throw registry_error(registry_error::kind::already_named, e->name, p);
    auto entry = std::make_unique<const name_entry>(name, p);
    auto next = now.with(entry.get(), nullptr);
    publish(std::move(next), std::move(entry), nullptr);
  }
  // It may have died between mark_owner and the insert, with its exit hook already run.
  if (!alive(p)) {
    on_exit(this, p);
    throw registry_error(registry_error::kind::dead_process, name, p);
  }
}

bool name_registry::remove(std::string_view name) {
  std::lock_guard lk(write_mutex_);
  const name_table& now = *current_.load(std::memory_order_relaxed);
  const name_entry* e = now.find(name, detail::hash_name(name));
  if (!e) return false;
  publish(now.with(nullptr, e), nullptr, e);
  return true;
}

std::optional<pid> name_registry::whereis(std::string_view name) const {
  std::size_t hash = detail::hash_name(name);  // before the guard: keeps the read window short
  detail::hazard_guard<name_table> now(current_);
  const name_entry* e = now->find(name, hash);
  return e ? e->found : std::nullopt;
}

std::optional<std::string> name_registry::name_of(const pid& p) const {
  detail::hazard_guard<name_table> now(current_);
  if (const name_entry* e = now->find(p)) return e->name;
  return std::nullopt;
}

std::vector<std::string> name_registry::registered() const {
  detail::hazard_guard<name_table> now(current_);
  std::vector<std::string> out;
  out.reserve(now->entries().size());
  for (const name_entry* e : now->entries()) out.push_back(e->name);
  return out;
}

void name_registry::on_exit(void* self, const pid& who) {
  auto* r = static_cast<name_registry*>(self);
  {
    // Most dying owners hold keyed-registry keys, not names: skip the writers' lock for them.
    // A registration of `who` racing with this hook is cleaned up by add itself.
    detail::hazard_guard<name_table> now(r->current_);
    if (!now->find(who)) return;
  }
  std::lock_guard lk(r->write_mutex_);
  const name_table& now = *r->current_.load(std::memory_order_relaxed);
  const name_entry* e = now.find(who);
  if (!e) return;
  r->publish(now.with(nullptr, e), nullptr, e);
}

void name_registry::publish(std::unique_ptr<const name_table> next, std::unique_ptr<const name_entry> added,
                            const name_entry* removed) {
  // What may throw comes first: if it does, the names are unchanged and `added` is freed.
  retired_.reserve(retired_.size() + 1);
  if (removed) dropped_.emplace_back(current_.load(std::memory_order_relaxed)->version(), nullptr);
  // Lookups that start from here on find `next`; reclaim's scan (after its fence) sees every
  // lookup still reading the old one (see hazard_pointer.hpp).
  retired_.push_back(current_.exchange(next.release(), std::memory_order_seq_cst));
  added.release();  // owned by the names from now on: freed once dropped and unreachable
  if (removed) dropped_.back().second.reset(removed);
  reclaim();
}

// A replaced snapshot is freed once no lookup announces it; lookups that start later find the
// new one. An entry is read through snapshots only, and only those up to the version it was
// dropped at hold it: once every snapshot that old is freed, so is the entry. Snapshots held
// back by a lookup are at most one per thread and are freed by the next write after it ends.
void name_registry::reclaim() {
  auto hazards = detail::announced_hazards();
  std::uint64_t oldest = current_.load(std::memory_order_relaxed)->version();
  std::erase_if(retired_, [&](const name_table* t) {
    if (detail::is_announced(hazards, t)) {
      oldest = std::min(oldest, t->version());
      return false;
    }
    delete t;
    return true;
  });
  while (!dropped_.empty() && dropped_.front().first < oldest) dropped_.pop_front();
}

name_registry& names() { return this_node().service<name_registry>(); }

void register_name(const std::string& name, const pid& p) { names().add(name, p); }
bool unregister_name(std::string_view name) { return names().remove(name); }
std::optional<pid> whereis(std::string_view name) { return names().whereis(name); }
std::vector<std::string> registered() { return names().registered(); }

}  // namespace grove
