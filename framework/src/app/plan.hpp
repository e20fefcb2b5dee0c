// plan: a loaded configuration turned into runtime specs — supervisor flags and child specs
// whose start functions come from the kinds' factories. Building it runs every factory, so the
// kinds' `args` errors are found before anything starts.
#pragma once

#include <string>
#include <vector>

#include <grove/app/kinds.hpp>
#include <grove/behaviours/dynamic_supervisor.hpp>
#include <grove/behaviours/supervisor.hpp>
#include <grove/config/config.hpp>

namespace grove::detail {

struct app_plan {
  std::string name;
  config::start_type type = config::start_type::temporary;
  supervisor_flags flags;
  std::vector<child_spec> children;
};

// The applications in start order; errors go to `errors` (file:line:column of the child).
std::vector<app_plan> build_plan(const config::node_config& cfg, const kind_registry& kinds,
                                 config::diagnostics& errors);

}  // namespace grove::detail
