#include <grove/behaviours/partition_supervisor.hpp>

#include <map>
#include <mutex>

namespace grove {

namespace {
// The partition counts of a node, by name.
class partitions {
 public:
  explicit partitions(node&) {}
  void set(const std::string& name, std::size_t n) {
    std::lock_guard lk(mu_);
    counts_[name] = n;
  }
  std::size_t get(std::string_view name) const {
    std::lock_guard lk(mu_);
    auto it = counts_.find(name);
    return it == counts_.end() ? 0 : it->second;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::size_t, std::less<>> counts_;
};

std::vector<child_spec> partition_children(const std::string& name, std::size_t n, const partition_factory& make) {
  std::vector<child_spec> out;
  for (std::size_t i = 0; i < n; ++i) {
    child_spec s = make(i, name + "." + std::to_string(i));
    s.id = std::to_string(i);
    out.push_back(std::move(s));
  }
  return out;
}
}  // namespace

std::size_t partition_count(std::string_view name) { return this_node().service<partitions>().get(name); }

std::string partition_name(std::string_view name, std::size_t hash) {
  const std::size_t n = partition_count(name);
  return std::string(name) + "." + std::to_string(n ? hash % n : 0);
}

child_spec partition_supervisor_child(std::string id, std::string name, std::size_t n, partition_factory make,
                                      supervisor_flags flags) {
  child_spec s = supervisor_child(std::move(id), flags, partition_children(name, n, make));
  auto start = s.start;
  s.start = [start, name, n] {
    this_node().service<partitions>().set(name, n);
    return start();
  };
  return s;
}

start_result start_partition_supervisor(std::string name, std::size_t n, partition_factory make, supervisor_flags flags,
                                        const start_options& opts) {
  this_node().service<partitions>().set(name, n);
  return start_supervisor(flags, partition_children(name, n, make), opts);
}

start_result start_partition_supervisor_link(std::string name, std::size_t n, partition_factory make,
                                             supervisor_flags flags, const start_options& opts) {
  this_node().service<partitions>().set(name, n);
  return start_supervisor_link(flags, partition_children(name, n, make), opts);
}

}  // namespace grove
