// plan: a loaded configuration turned into runtime specs — supervisor flags and child specs
// whose start functions come from the kinds' factories. Building it runs every factory, so the
// kinds' `args` errors are found before anything starts.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <grove/app/kinds.hpp>
#include <grove/behaviours/dynamic_supervisor.hpp>
#include <grove/behaviours/supervisor.hpp>
#include <grove/config/config.hpp>

namespace grove::detail {

// A dynamic supervisor's template made into child specs at run time: the template's args
// with `extra` merged onto them; null (errors in `errors`) when the kind refuses them.
using template_fn = std::function<std::optional<child_spec>(const config::args& extra, config::diagnostics& errors)>;

struct app_plan {
  std::string name;
  config::start_type type = config::start_type::temporary;
  supervisor_flags flags;
  std::vector<child_spec> children;
  // The templates of its dynamic supervisors, by tree path ("app/sup/jobs", as the console
  // names them).
  std::map<std::string, template_fn> templates;
};

// The applications in start order; errors go to `errors` (file:line:column of the child).
std::vector<app_plan> build_plan(const config::node_config& cfg, const kind_registry& kinds,
                                 config::diagnostics& errors);

}  // namespace grove::detail
