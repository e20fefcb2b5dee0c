#include "plan.hpp"

#include <exception>
#include <memory>

namespace grove::detail {

namespace {

backoff_spec to_runtime(const config::backoff_config& b) {
  return backoff_spec{b.min, b.max, b.multiplier, b.jitter, b.reset_after};
}

shutdown_spec to_runtime(const config::shutdown_config& s) {
  switch (s.what) {
    case config::shutdown_config::kind::brutal_kill:
      return shutdown_spec::brutal_kill();
    case config::shutdown_config::kind::infinity:
      return shutdown_spec::infinity();
    case config::shutdown_config::kind::timeout:
      return shutdown_spec::after(s.timeout);
  }
  return shutdown_spec{};
}

// The loader checked it: a whole number of seconds, at least 1s.
std::chrono::seconds whole_seconds(config::duration d) {
  return std::max(std::chrono::duration_cast<std::chrono::seconds>(d), std::chrono::seconds(1));
}

start_options registered_as(const std::optional<std::string>& name) {
  start_options o;
  if (name) o.name = *name;
  return o;
}

struct builder {
  const kind_registry& kinds;
  config::args env;
  config::diagnostics& errors;
  std::map<std::string, template_fn>* templates = nullptr;  // where dynamic supervisors' templates go

  // `path`: the key path in the file; `tree`: the supervisor's path in the tree (app/sup).
  std::vector<child_spec> children(const config::supervisor_config& sup, const std::string& path,
                                   const std::string& tree) {
    std::vector<child_spec> out;
    for (std::size_t i = 0; i < sup.children.size(); ++i) {
      const auto& c = sup.children[i];
      out.push_back(child(c, path + ".children[" + std::to_string(i) + "]", tree + "/" + c.id));
    }
    return out;
  }

  supervisor_flags flags(const config::supervisor_config& s) {
    supervisor_flags f;
    f.strategy = s.strategy;
    f.intensity = s.intensity;
    f.period = whole_seconds(s.period);
    f.auto_shutdown = s.auto_shutdown;
    if (s.backoff) f.backoff = to_runtime(*s.backoff);
    return f;
  }

  child_spec child(const config::child_config& c, const std::string& path, const std::string& tree) {
    child_spec spec;
    switch (c.type) {
      case config::child_type::supervisor:
        spec = supervisor_child(c.id, flags(*c.supervisor), children(*c.supervisor, path + ".supervisor", tree),
                                registered_as(c.name));
        break;
      case config::child_type::dynamic_supervisor: {
        const auto& d = *c.dynamic_supervisor;
        dynamic_supervisor_flags f;
        f.intensity = d.intensity;
        f.period = whole_seconds(d.period);
        if (d.max_children) f.max_children = *d.max_children;
        spec = dynamic_supervisor_child(c.id, f, registered_as(c.name));
        if (d.child_template) add_template(d.child_template, path + ".dynamic_supervisor.template", tree);
        break;
      }
      case config::child_type::worker:
        spec = worker(c, path);
        break;
    }
    spec.id = c.id;
    spec.restart = c.restart;
    if (c.shutdown) spec.shutdown = to_runtime(*c.shutdown);
    spec.significant = c.significant;
    if (c.backoff) spec.backoff = to_runtime(*c.backoff);
    if (c.stack_size) spec.stack_size = *c.stack_size;
    if (c.mailbox_capacity) {
      spec.mailbox_capacity = *c.mailbox_capacity;
      spec.overflow = c.overflow;
    }
    return spec;
  }

  // Checks the template now (its kind and its own args, as for any child), and keeps a maker
  // of specs from it for run time.
  void add_template(std::shared_ptr<const config::child_config> t, const std::string& path, const std::string& tree) {
    const std::size_t before = errors.size();
    child(*t, path, tree);
    if (errors.size() != before || !templates) return;
    (*templates)[tree] = [t, path, tree, kinds = &kinds, env = env](
                             const config::args& extra, config::diagnostics& errs) -> std::optional<child_spec> {
      config::child_config c = *t;
      c.args = c.args.merged(extra);
      builder b{*kinds, env, errs};
      const std::size_t n = errs.size();
      child_spec spec = b.child(c, path, tree);
      if (errs.size() != n || !spec.start) return std::nullopt;
      return spec;
    };
  }

  child_spec worker(const config::child_config& c, const std::string& path) {
    child_spec spec;
    const kind_factory* factory = kinds.find(c.kind);
    if (!factory) {  // the loader checks kinds when it is given them; this is the last line
      errors.add(c.pos, path + ".kind", "unknown kind '" + c.kind + "'");
      return spec;
    }
    auto sink = std::make_shared<config::diagnostics>();
    try {
      spec.start = (*factory)(kind_context(c.args.with_sink(sink), c.id, c.name, env.with_sink(sink), &kinds));
    } catch (const std::exception& e) {
      errors.add(c.pos, path, "kind '" + c.kind + "' failed: " + e.what());
    }
    errors.append(*sink);
    if (!spec.start && sink->empty()) errors.add(c.pos, path, "kind '" + c.kind + "' gave no start function");
    return spec;
  }
};

}  // namespace

std::vector<app_plan> build_plan(const config::node_config& cfg, const kind_registry& kinds,
                                 config::diagnostics& errors) {
  std::vector<app_plan> out;
  for (const std::string& name : cfg.start_order) {
    for (std::size_t i = 0; i < cfg.applications.size(); ++i) {
      const auto& a = cfg.applications[i];
      if (a.name != name) continue;
      const std::string path = "applications[" + std::to_string(i) + "].supervisor";
      app_plan p;
      builder b{kinds, a.env, errors, &p.templates};
      p.name = a.name;
      p.type = a.start;
      p.flags = b.flags(a.supervisor);
      p.children = b.children(a.supervisor, path, a.name);
      out.push_back(std::move(p));
    }
  }
  return out;
}

}  // namespace grove::detail
