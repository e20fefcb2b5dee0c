// partition_supervisor: N copies of one child under one supervisor, each registered as
// "<name>.<i>", and routing by a key's hash — Elixir's PartitionSupervisor. Use it when one
// process per key space is a bottleneck but the work splits by key (a counter per account, a
// cache per user): calls for one key always reach the same partition.
//
//   auto spec = grove::partition_supervisor_child("counters", "counter", 4,
//       [](std::size_t, const std::string& name) { return counter_spec(name); });
//   grove::call<std::int64_t>(*grove::partition_whereis("counter", account), add{1});
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <grove/behaviours/name_registry.hpp>
#include <grove/behaviours/supervisor.hpp>

namespace grove {

// make(i, child_name) returns the spec of partition i; its start must register the child as
// child_name ("<name>.<i>").
using partition_factory = std::function<child_spec(std::size_t index, const std::string& child_name)>;

// A child spec for a supervisor (one_for_one unless flags say otherwise) of `partitions`
// children made by `make`. The partition count is known by `name` from its start on.
child_spec partition_supervisor_child(std::string id, std::string name, std::size_t partitions, partition_factory make,
                                      supervisor_flags flags = {});
start_result start_partition_supervisor(std::string name, std::size_t partitions, partition_factory make,
                                        supervisor_flags flags = {}, const start_options& opts = {});
start_result start_partition_supervisor_link(std::string name, std::size_t partitions, partition_factory make,
                                             supervisor_flags flags = {}, const start_options& opts = {});

// The number of partitions of `name` (0 if there is no such partition supervisor).
std::size_t partition_count(std::string_view name);
// The registered name of the partition for a key hash.
std::string partition_name(std::string_view name, std::size_t hash);

// The partition process for `key` (nullopt while it is not running).
template <class K>
std::optional<pid> partition_whereis(std::string_view name, const K& key) {
  if (partition_count(name) == 0) return std::nullopt;
  return whereis(partition_name(name, std::hash<K>{}(key)));
}

}  // namespace grove
