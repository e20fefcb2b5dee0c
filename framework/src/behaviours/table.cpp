#include <grove/behaviours/table.hpp>

#include <ostream>
#include <thread>

namespace grove {

const char* to_string(table_type t) noexcept {
  switch (t) {
    case table_type::set:
      return "set";
    case table_type::ordered_set:
      return "ordered_set";
    case table_type::bag:
      return "bag";
    case table_type::duplicate_bag:
      return "duplicate_bag";
  }
  return "?";
}

const char* to_string(table_access a) noexcept {
  switch (a) {
    case table_access::private_:
      return "private";
    case table_access::protected_:
      return "protected";
    case table_access::public_:
      return "public";
  }
  return "?";
}

const char* to_string(table_concurrency c) noexcept {
  switch (c) {
    case table_concurrency::standard:
      return "standard";
    case table_concurrency::read_heavy:
      return "read_heavy";
    case table_concurrency::write_heavy:
      return "write_heavy";
    case table_concurrency::read_write_heavy:
      return "read_write_heavy";
  }
  return "?";
}

std::ostream& operator<<(std::ostream& os, table_type t) { return os << to_string(t); }
std::ostream& operator<<(std::ostream& os, table_access a) { return os << to_string(a); }
std::ostream& operator<<(std::ostream& os, table_concurrency c) { return os << to_string(c); }

namespace detail {

namespace {

// Spins briefly, then gives the thread away: the holder runs on another thread and never
// suspends while holding the lock, so the wait is short unless that thread was preempted.
class backoff {
 public:
  void pause() noexcept {
    if (spins_ < 64) {
      ++spins_;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    } else {
      std::this_thread::yield();
    }
  }

 private:
  unsigned spins_ = 0;
};

std::uint64_t pack(const pid& p) noexcept { return (std::uint64_t{p.slot()} << 32) | p.generation(); }

std::atomic<std::uint64_t> next_table_id{1};

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

}  // namespace

void reader_biased_lock::lock() {
  writers_.lock();
  writer_.store(true, std::memory_order_seq_cst);
  for (auto& s : slots_) {
    backoff b;
    while (s.readers.load(std::memory_order_acquire) != 0) b.pause();
  }
}

void reader_biased_lock::unlock() noexcept {
  writer_.store(false, std::memory_order_release);
  writers_.unlock();
}

void reader_biased_lock::wait_no_writer() const noexcept {
  backoff b;
  while (writer_.load(std::memory_order_acquire)) b.pause();
}

// The live tables of a node, by owner and by name. Its exit hook hands a dead owner's tables to
// their heirs or deletes them, in the dying process, before its exit and down signals go out.
class table_registry {
 public:
  explicit table_registry(node& n) : node_id_(n.id()) { n.add_exit_hook(&table_registry::on_exit, this); }
  table_registry(const table_registry&) = delete;
  table_registry& operator=(const table_registry&) = delete;
  ~table_registry() {
    // The node has ended every process, so every table is gone already; this is a backstop.
    for (auto& [owner, tables] : by_owner_) {
      for (auto& t : tables) {
        t->deleted_.store(true, std::memory_order_release);
        t->drop_contents();
      }
    }
  }

  void add(const std::shared_ptr<table_base>& t, const pid& owner) {
    if (t->heir_ && t->heir_.node() != node_id_) {
      throw table_error(table_error::kind::bad_target, t->label() + ": the heir " + t->heir_.str() + " is not local");
    }
    if (!detail::mark_owner(owner)) {
      throw table_error(table_error::kind::bad_target, t->label() + ": the creating process is not alive");
    }
    std::lock_guard lk(mutex_);
    if (!t->name_.empty()) {
      if (auto it = by_name_.find(t->name_); it != by_name_.end()) {
        throw table_error(table_error::kind::name_taken, "a table named '" + t->name_ + "' already exists (" +
                                                             it->second->label() + ", owned by " +
                                                             it->second->owner().str() + ")");
      }
      by_name_.emplace(t->name_, t);
    }
    t->registry_ = this;
    t->node_id_ = node_id_;
    t->set_owner(owner);
    by_owner_[owner].push_back(t);
  }

  std::shared_ptr<table_base> find(std::string_view name) const {
    std::lock_guard lk(mutex_);
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
  }

  pid heir(const table_base& t) const {
    std::lock_guard lk(mutex_);
    return t.heir_;
  }

  void set_heir(table_base& t, const pid& heir, std::any data) {
    std::lock_guard lk(mutex_);
    if (t.deleted()) t.throw_deleted();
    t.heir_ = heir;
    t.heir_data_ = std::move(data);
  }

  void destroy(table_base& t) {
    std::shared_ptr<table_base> keep;
    {
      std::lock_guard lk(mutex_);
      if (t.deleted()) t.throw_deleted();
      keep = unlink_locked(t);
    }
    keep->drop_contents();
  }

  void give_away(table_base& t, const pid& from, const pid& to, std::any data) {
    std::shared_ptr<table_base> keep;
    {
      std::lock_guard lk(mutex_);
      if (t.deleted()) t.throw_deleted();
      if (!to || to == from || to.node() != node_id_ || !detail::mark_owner(to)) {
        throw table_error(table_error::kind::bad_target,
                          t.label() + ": cannot give it to " + (to ? to.str() : std::string("no process")) +
                              (to == from ? " (it owns the table)" : " (not a live local process)"));
      }
      keep = take_locked(t, from);
      if (!keep) t.throw_deleted();
      t.set_owner(to);
      by_owner_[to].push_back(keep);
    }
    send(to, table_transfer{keep->id(), keep->name(), from, std::move(data), keep});
    if (!alive(to)) owner_died(to);  // it died after mark_owner, perhaps with its hook already run
  }

 private:
  static void on_exit(void* self, const pid& who) { static_cast<table_registry*>(self)->owner_died(who); }

  void owner_died(const pid& who) {
    struct handover {
      std::shared_ptr<table_base> table;
      pid to;
      std::any data;
    };
    std::vector<std::shared_ptr<table_base>> doomed;
    std::vector<handover> handed;
    {
      std::lock_guard lk(mutex_);
      auto it = by_owner_.find(who);
      if (it == by_owner_.end()) return;
      std::vector<std::shared_ptr<table_base>> owned = std::move(it->second);
      by_owner_.erase(it);
      for (auto& t : owned) {
        const pid h = t->heir_;
        if (h && h != who && h.node() == node_id_ && detail::mark_owner(h)) {
          t->set_owner(h);
          by_owner_[h].push_back(t);
          handed.push_back({t, h, std::exchange(t->heir_data_, std::any{})});
          t->heir_ = pid{};  // the heir is the owner now
        } else {
          if (!t->name_.empty()) by_name_.erase(t->name_);
          t->deleted_.store(true, std::memory_order_release);
          doomed.push_back(t);
        }
      }
    }
    for (auto& t : doomed) t->drop_contents();
    for (auto& h : handed) {
      send(h.to, table_transfer{h.table->id(), h.table->name(), who, std::move(h.data), h.table});
      if (!alive(h.to)) owner_died(h.to);
    }
  }

  // Removes t from its owner's list; returns the registry's reference to it.
  std::shared_ptr<table_base> take_locked(table_base& t, const pid& owner) {
    std::shared_ptr<table_base> keep;
    auto it = by_owner_.find(owner);
    if (it == by_owner_.end()) return keep;
    auto& v = it->second;
    for (auto i = v.begin(); i != v.end(); ++i) {
      if (i->get() == &t) {
        keep = std::move(*i);
        v.erase(i);
        break;
      }
    }
    if (v.empty()) by_owner_.erase(it);
    return keep;
  }

  std::shared_ptr<table_base> unlink_locked(table_base& t) {
    auto keep = take_locked(t, t.owner());
    if (!t.name_.empty()) by_name_.erase(t.name_);
    t.deleted_.store(true, std::memory_order_release);
    return keep;
  }

  const std::uint32_t node_id_;
  mutable std::mutex mutex_;
  std::unordered_map<pid, std::vector<std::shared_ptr<table_base>>> by_owner_;
  std::unordered_map<std::string, std::shared_ptr<table_base>, string_hash, std::equal_to<>> by_name_;
};

table_base::table_base(table_options&& opts, const std::type_info& key, const std::type_info& value)
    : id_(next_table_id.fetch_add(1, std::memory_order_relaxed)),
      name_(std::move(opts.name)),
      type_(opts.type),
      access_(opts.access),
      concurrency_(opts.concurrency),
      key_(key),
      value_(value),
      heir_(opts.heir),
      heir_data_(std::move(opts.heir_data)) {}

table_base::~table_base() = default;

pid table_base::owner() const noexcept {
  const std::uint64_t o = owner_.load(std::memory_order_acquire);
  if (o == 0) return pid{};
  return pid(node_id_, static_cast<std::uint32_t>(o >> 32), static_cast<std::uint32_t>(o));
}

void table_base::set_owner(const pid& p) noexcept { owner_.store(pack(p), std::memory_order_release); }

pid table_base::heir() const {
  if (deleted() || !registry_) return pid{};
  return registry_->heir(*this);
}

std::string table_base::label() const {
  std::string id = "#" + std::to_string(id_);
  return name_.empty() ? "table " + id : "table '" + name_ + "' (" + id + ")";
}

void table_base::check_owner(const char* what) const {
  if (in_process()) {
    const pid me = self();
    if (me.node() == node_id_ && pack(me) == owner_.load(std::memory_order_acquire)) return;
    throw table_error(table_error::kind::access_denied, label() + ": " + me.str() + " may not " + what + " a " +
                                                            to_string(access_) + " table owned by " + owner().str());
  }
  throw table_error(table_error::kind::access_denied,
                    label() + ": code outside any process may not " + what + " a " + to_string(access_) + " table");
}

void table_base::throw_deleted() const { throw table_error(table_error::kind::no_table, label() + " was deleted"); }

void table_base::throw_unsupported(const char* op, const char* hint) const {
  throw table_error(table_error::kind::unsupported,
                    label() + ": " + op + " does not apply to a " + to_string(type_) + " table (" + hint + ")");
}

void table_base::throw_no_key(const char* op) const {
  throw table_error(table_error::kind::no_key, label() + ": " + op + " of a key that is not in the table");
}

void table_base::throw_overflow() const {
  throw table_error(table_error::kind::overflow, label() + ": update_counter would overflow the counter");
}

void table_base::throw_wrong_type(const std::type_info& key, const std::type_info& value) const {
  throw table_error(table_error::kind::wrong_type, label() + " holds " + demangle(key_.name()) + " -> " +
                                                       demangle(value_.name()) + ", not " + demangle(key.name()) +
                                                       " -> " + demangle(value.name()));
}

void table_base::destroy() {
  if (deleted() || !registry_) throw_deleted();
  check_write();
  registry_->destroy(*this);
}

void table_base::give_away(const pid& to, std::any data) {
  if (deleted() || !registry_) throw_deleted();
  const pid me = in_process() ? self() : pid{};
  if (!me || me.node() != node_id_ || pack(me) != owner_.load(std::memory_order_acquire)) {
    throw table_error(table_error::kind::not_owner,
                      label() + ": only its owner " + owner().str() + " may give it away");
  }
  registry_->give_away(*this, me, to, std::move(data));
}

void table_base::set_heir(const pid& heir, std::any data) {
  if (deleted() || !registry_) throw_deleted();
  const pid me = in_process() ? self() : pid{};
  if (!me || me.node() != node_id_ || pack(me) != owner_.load(std::memory_order_acquire)) {
    throw table_error(table_error::kind::not_owner,
                      label() + ": only its owner " + owner().str() + " may set its heir");
  }
  if (heir && heir.node() != node_id_) {
    throw table_error(table_error::kind::bad_target, label() + ": the heir " + heir.str() + " is not local");
  }
  registry_->set_heir(*this, heir, std::move(data));
}

void table_base::attach(const std::shared_ptr<table_base>& t) {
  const pid me = self();  // throws not_in_process outside a process
  this_node().service<table_registry>().add(t, me);
}

std::shared_ptr<table_base> table_base::find(node& n, std::string_view name) {
  return n.service<table_registry>().find(name);
}

}  // namespace detail
}  // namespace grove
