// keyed_registry's implementation (templates), included at the end of
// grove/behaviours/keyed_registry.hpp, whose declarations it defines. Not a public API.
#pragma once

#include <grove/behaviours/keyed_registry.hpp>

namespace grove {

template <class K, class V, class H, class E>
keyed_registry<K, V, H, E>::keyed_registry(node& n, keyed_registry_options opts)
    : core_(n, opts),
      parts_(std::make_unique<partition[]>(core_.partitions())),
      shards_(std::make_unique<pid_shard[]>(core_.partitions())) {
  core_.watch_exits(&on_exit, this);
}

template <class K, class V, class H, class E>
keyed_registry<K, V, H, E>::~keyed_registry() {
  core_.unwatch_exits();
}

template <class K, class V, class H, class E>
void keyed_registry<K, V, H, E>::add_entry(key_slot& s, const pid& p, V&& v) {
  if (!unique()) s.where.emplace(p, static_cast<std::uint32_t>(s.entries.size()));
  s.entries.push_back(entry{p, std::move(v)});
}

template <class K, class V, class H, class E>
template <class Pred>
std::size_t keyed_registry<K, V, H, E>::remove_entries(key_slot& s, const pid& p, Pred&& pred) {
  if (unique()) {
    auto it = std::find_if(s.entries.begin(), s.entries.end(),
                           [&](const entry& e) { return e.who == p && pred(std::as_const(e.value)); });
    if (it == s.entries.end()) return 0;
    s.entries.erase(it);
    return 1;
  }
  std::vector<std::uint32_t> gone;
  auto [first, last] = s.where.equal_range(p);
  for (auto it = first; it != last;) {
    if (pred(std::as_const(s.entries[it->second].value))) {
      gone.push_back(it->second);
      it = s.where.erase(it);
    } else {
      ++it;
    }
  }
  // Highest index first: every index still to remove stays valid as the last entry moves down.
  std::sort(gone.begin(), gone.end(), std::greater<>());
  for (std::uint32_t i : gone) {
    const auto back = static_cast<std::uint32_t>(s.entries.size() - 1);
    if (i != back) {
      auto [mf, ml] = s.where.equal_range(s.entries[back].who);
      for (auto m = mf; m != ml; ++m) {
        if (m->second == back) {
          m->second = i;
          break;
        }
      }
      s.entries[i] = std::move(s.entries[back]);
    }
    s.entries.pop_back();
  }
  return gone.size();
}

template <class K, class V, class H, class E>
void keyed_registry<K, V, H, E>::drop_keys(const pid& p, const K& k, std::size_t n) {
  if (n == 0) return;
  pid_shard& sh = shard_of(p);
  std::unique_lock lk(sh.mutex);
  auto it = sh.keys.find(p);
  if (it == sh.keys.end()) return;  // its exit hook took them already
  auto& ks = it->second;
  E eq;
  for (std::size_t i = 0; i < ks.size() && n > 0;) {
    if (eq(ks[i], k)) {
      ks[i] = std::move(ks.back());
      ks.pop_back();
      --n;
    } else {
      ++i;
    }
  }
  if (ks.empty()) sh.keys.erase(it);
}

template <class K, class V, class H, class E>
register_result keyed_registry<K, V, H, E>::register_self(K key, V value) {
  return register_process(self(), std::move(key), std::move(value));
}

template <class K, class V, class H, class E>
register_result keyed_registry<K, V, H, E>::register_process(const pid& p, K key, V value) {
  core_.check_local(p);
  // From here on, p's death runs the exit hooks, ours included.
  if (!detail::mark_owner(p)) return {register_status::noproc, {}};
  partition& part = partition_of(key);
  {
    std::unique_lock lk(part.mutex);
    key_slot& s = part.slots[key];
    if (unique() && !s.entries.empty()) {
      const pid holder = s.entries.front().who;
      if (grove::alive(holder)) return {register_status::already_registered, holder};
      // The holder has begun to end and its hook has not reached this key yet: take its place.
      s.entries.clear();
      part.size.fetch_sub(1, std::memory_order_relaxed);
      drop_keys(holder, key, 1);
    }
    add_entry(s, p, std::move(value));
    part.size.fetch_add(1, std::memory_order_relaxed);
    pid_shard& sh = shard_of(p);
    std::unique_lock sl(sh.mutex);
    sh.keys[p].push_back(key);
  }
  // p may have died since mark_owner, its hook running before our insert and missing it. Its
  // state turned dead before that hook ran, so this check sees it; the cleanup is idempotent
  // with a hook that did see the entry.
  if (!grove::alive(p)) {
    remove_own(p, key, [](const V&) { return true; });
    return {register_status::noproc, {}};
  }
  return {};
}

template <class K, class V, class H, class E>
template <class Pred>
std::size_t keyed_registry<K, V, H, E>::remove_own(const pid& p, const K& key, Pred&& pred) {
  partition& part = partition_of(key);
  std::unique_lock lk(part.mutex);
  auto it = part.slots.find(key);
  if (it == part.slots.end()) return 0;
  const std::size_t n = remove_entries(it->second, p, pred);
  part.size.fetch_sub(n, std::memory_order_relaxed);
  drop_keys(p, key, n);
  if (it->second.entries.empty()) part.slots.erase(it);
  return n;
}

template <class K, class V, class H, class E>
std::size_t keyed_registry<K, V, H, E>::unregister_self(const K& key) {
  return remove_own(self(), key, [](const V&) { return true; });
}

template <class K, class V, class H, class E>
template <class Pred>
std::size_t keyed_registry<K, V, H, E>::unregister_match(const K& key, Pred pred) {
  return remove_own(self(), key, pred);
}

template <class K, class V, class H, class E>
template <class F>
bool keyed_registry<K, V, H, E>::update_value(const K& key, F&& fn) {
  core_.require_unique("keyed_registry::update_value");
  const pid me = self();
  partition& part = partition_of(key);
  std::unique_lock lk(part.mutex);
  auto it = part.slots.find(key);
  if (it == part.slots.end() || it->second.entries.empty() || it->second.entries.front().who != me) return false;
  fn(it->second.entries.front().value);
  return true;
}

template <class K, class V, class H, class E>
void keyed_registry<K, V, H, E>::forget(const pid& who) {
  std::vector<K> ks;
  {
    pid_shard& sh = shard_of(who);
    std::unique_lock lk(sh.mutex);
    auto it = sh.keys.find(who);
    if (it == sh.keys.end()) return;
    ks = std::move(it->second);
    sh.keys.erase(it);
  }
  for (const K& k : ks) {
    partition& part = partition_of(k);
    std::unique_lock lk(part.mutex);
    auto it = part.slots.find(k);
    if (it == part.slots.end()) continue;
    const std::size_t n = remove_entries(it->second, who, [](const V&) { return true; });
    part.size.fetch_sub(n, std::memory_order_relaxed);
    if (it->second.entries.empty()) part.slots.erase(it);
  }
}

template <class K, class V, class H, class E>
template <class Pred>
auto keyed_registry<K, V, H, E>::copy_live(const K& key, Pred&& pred) const -> std::vector<entry> {
  std::vector<entry> out;
  {
    partition& part = partition_of(key);
    std::shared_lock lk(part.mutex);
    auto it = part.slots.find(key);
    if (it == part.slots.end()) return out;
    out.reserve(it->second.entries.size());
    for (const entry& e : it->second.entries) {
      if (pred(std::as_const(e.value))) out.push_back(e);
    }
  }
  // Outside the lock: a process that began to end after the copy is filtered out too.
  std::erase_if(out, [](const entry& e) { return !grove::alive(e.who); });
  return out;
}

template <class K, class V, class H, class E>
auto keyed_registry<K, V, H, E>::lookup(const K& key) const -> std::vector<entry> {
  return copy_live(key, [](const V&) { return true; });
}

template <class K, class V, class H, class E>
template <class Pred>
auto keyed_registry<K, V, H, E>::match(const K& key, Pred pred) const -> std::vector<entry> {
  return copy_live(key, pred);
}

template <class K, class V, class H, class E>
auto keyed_registry<K, V, H, E>::find(const K& key) const -> std::optional<entry> {
  core_.require_unique("keyed_registry::find");
  std::optional<entry> out;
  {
    partition& part = partition_of(key);
    std::shared_lock lk(part.mutex);
    auto it = part.slots.find(key);
    if (it == part.slots.end() || it->second.entries.empty()) return out;
    out.emplace(it->second.entries.front());
  }
  if (!grove::alive(out->who)) out.reset();
  return out;
}

template <class K, class V, class H, class E>
std::size_t keyed_registry<K, V, H, E>::count() const noexcept {
  std::size_t n = 0;
  for (std::size_t i = 0; i < core_.partitions(); ++i) n += parts_[i].size.load(std::memory_order_relaxed);
  return n;
}

template <class K, class V, class H, class E>
template <class Pred>
std::size_t keyed_registry<K, V, H, E>::count_match(const K& key, Pred pred) const {
  partition& part = partition_of(key);
  std::shared_lock lk(part.mutex);
  auto it = part.slots.find(key);
  if (it == part.slots.end()) return 0;
  std::size_t n = 0;
  for (const entry& e : it->second.entries) {
    if (pred(std::as_const(e.value)) && grove::alive(e.who)) ++n;
  }
  return n;
}

template <class K, class V, class H, class E>
std::size_t keyed_registry<K, V, H, E>::count(const K& key) const {
  return count_match(key, [](const V&) { return true; });
}

template <class K, class V, class H, class E>
std::vector<K> keyed_registry<K, V, H, E>::keys(const pid& p) const {
  std::vector<K> out;
  {
    pid_shard& sh = shard_of(p);
    std::shared_lock lk(sh.mutex);
    auto it = sh.keys.find(p);
    if (it != sh.keys.end()) out = it->second;
  }
  if (!out.empty() && !grove::alive(p)) out.clear();
  return out;
}

template <class K, class V, class H, class E>
std::vector<V> keyed_registry<K, V, H, E>::values(const K& key, const pid& p) const {
  std::vector<V> out;
  {
    partition& part = partition_of(key);
    std::shared_lock lk(part.mutex);
    auto it = part.slots.find(key);
    if (it == part.slots.end()) return out;
    for (const entry& e : it->second.entries) {
      if (e.who == p) out.push_back(e.value);
    }
  }
  if (!out.empty() && !grove::alive(p)) out.clear();
  return out;
}

template <class K, class V, class H, class E>
template <class F>
std::size_t keyed_registry<K, V, H, E>::dispatch(const K& key, F&& fn) const {
  const std::vector<entry> es = lookup(key);
  if (es.empty()) return 0;
  fn(std::span<const entry>(es));
  return es.size();
}

template <class K, class V, class H, class E>
template <class T>
std::size_t keyed_registry<K, V, H, E>::publish(const K& key, const T& msg) const {
  std::vector<pid> to;
  {
    partition& part = partition_of(key);
    std::shared_lock lk(part.mutex);
    auto it = part.slots.find(key);
    if (it == part.slots.end()) return 0;
    to.reserve(it->second.entries.size());
    for (const entry& e : it->second.entries) to.push_back(e.who);
  }
  // Sending to a process that has died since is a no-op, as the runtime promises.
  std::size_t delivered = 0;
  for (const pid& p : to) {
    try {
      if (grove::send(p, msg) == send_result::ok) ++delivered;
    } catch (const mailbox_full&) {
    }
  }
  return delivered;
}

}  // namespace grove
