#include <grove/behaviours/name_registry.hpp>

#include <mutex>

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

name_registry::name_registry(node& n) : node_(n) { node_.add_exit_hook(&name_registry::on_exit, this); }

name_registry::~name_registry() = default;  // the node is stopping: no process is left to die

void name_registry::add(const std::string& name, const pid& p) {
  if (!detail::mark_owner(p)) throw registry_error(registry_error::kind::dead_process, name, p);
  {
    std::unique_lock lk(mutex_);
    if (auto it = by_name_.find(name); it != by_name_.end()) {
      throw registry_error(registry_error::kind::name_taken, name, it->second);
    }
    if (auto it = by_pid_.find(p); it != by_pid_.end()) {
      throw registry_error(registry_error::kind::already_named, it->second, p);
    }
    by_name_.emplace(name, p);
    by_pid_.emplace(p, name);
  }
  // It may have died between mark_owner and the insert, with its exit hook already run.
  if (!alive(p)) {
    on_exit(this, p);
    throw registry_error(registry_error::kind::dead_process, name, p);
  }
}

bool name_registry::remove(std::string_view name) {
  std::unique_lock lk(mutex_);
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return false;
  by_pid_.erase(it->second);
  by_name_.erase(it);
  return true;
}

std::optional<pid> name_registry::whereis(std::string_view name) const {
  std::shared_lock lk(mutex_);
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::string> name_registry::name_of(const pid& p) const {
  std::shared_lock lk(mutex_);
  auto it = by_pid_.find(p);
  if (it == by_pid_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> name_registry::registered() const {
  std::shared_lock lk(mutex_);
  std::vector<std::string> out;
  out.reserve(by_name_.size());
  for (auto& [name, p] : by_name_) out.push_back(name);
  return out;
}

void name_registry::on_exit(void* self, const pid& who) {
  auto* r = static_cast<name_registry*>(self);
  std::unique_lock lk(r->mutex_);
  auto it = r->by_pid_.find(who);
  if (it == r->by_pid_.end()) return;
  r->by_name_.erase(it->second);
  r->by_pid_.erase(it);
}

name_registry& names() { return this_node().service<name_registry>(); }

void register_name(const std::string& name, const pid& p) { names().add(name, p); }
bool unregister_name(std::string_view name) { return names().remove(name); }
std::optional<pid> whereis(std::string_view name) { return names().whereis(name); }
std::vector<std::string> registered() { return names().registered(); }

}  // namespace grove
