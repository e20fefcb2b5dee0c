// The untyped part of keyed_registry: options, the exit hook's installation, checks and the
// registry-level metadata. The typed tables live in the header.
#include <grove/behaviours/keyed_registry.hpp>

#include <ostream>
#include <stdexcept>

namespace grove {

const char* to_string(register_status s) noexcept {
  switch (s) {
    case register_status::ok:
      return "ok";
    case register_status::already_registered:
      return "already_registered";
    case register_status::noproc:
      return "noproc";
  }
  return "?";
}

std::ostream& operator<<(std::ostream& os, register_status s) { return os << to_string(s); }

std::string register_result::str() const {
  if (status == register_status::already_registered) return "{already_registered, " + holder.str() + "}";
  return to_string(status);
}

std::ostream& operator<<(std::ostream& os, const register_result& r) { return os << r.str(); }

namespace detail {

keyed_registry_core::keyed_registry_core(node& n, const keyed_registry_options& opts)
    : node_(&n), kind_(opts.keys), partitions_(opts.partitions ? opts.partitions : std::max(1u, n.schedulers())) {}

keyed_registry_core::~keyed_registry_core() { unwatch_exits(); }

void keyed_registry_core::watch_exits(node::exit_hook fn, void* ctx) {
  unwatch_exits();
  node_->add_exit_hook(fn, ctx);
  hook_ = fn;
  hook_ctx_ = ctx;
}

void keyed_registry_core::unwatch_exits() noexcept {
  if (!hook_) return;
  // Takes the node's hook lock exclusively: a hook run in progress finishes first.
  node_->remove_exit_hook(hook_, hook_ctx_);
  hook_ = nullptr;
  hook_ctx_ = nullptr;
}

void keyed_registry_core::check_local(const pid& p) const {
  // A process of another node runs that node's exit hooks, not ours: its entries would outlive it.
  if (p && p.node() != node_->id())
    throw std::invalid_argument("keyed_registry: " + p.str() + " is not a process of node " +
                                std::to_string(node_->id()));
}

void keyed_registry_core::require_unique(const char* operation) const {
  if (kind_ != grove::keys::unique)
    throw std::logic_error(std::string(operation) + ": only for a registry with unique keys");
}

void keyed_registry_core::put_meta(std::string key, std::any value) {
  std::unique_lock lk(meta_mutex_);
  meta_.insert_or_assign(std::move(key), std::move(value));
}

std::optional<std::any> keyed_registry_core::meta(std::string_view key) const {
  std::shared_lock lk(meta_mutex_);
  auto it = meta_.find(key);
  if (it == meta_.end()) return std::nullopt;
  return it->second;
}

bool keyed_registry_core::delete_meta(std::string_view key) {
  std::unique_lock lk(meta_mutex_);
  auto it = meta_.find(key);
  if (it == meta_.end()) return false;
  meta_.erase(it);
  return true;
}

}  // namespace detail
}  // namespace grove
