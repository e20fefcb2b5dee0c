#include <grove/config/args.hpp>
#include <grove/config/limits.hpp>

#include <limits>

#include "tree.hpp"
#include "values.hpp"

namespace grove::config {

using detail::args_view;
using detail::tree_node;

namespace {

const tree_node* lookup(const args_view& v, std::string_view key) {
  if (!v.node || !v.node->is_map()) return nullptr;
  const detail::map_entry* e = v.node->find(key);
  if (!e || !e->value || e->value->is_null()) return nullptr;  // null is no value
  return e->value.get();
}

// Finds `key`; when it is missing, a required read records the error.
template <class F>
bool read_value(const args_view& v, diagnostics& sink, std::string_view key, bool required, const char* expected,
                F&& convert) {
  std::string path = detail::join_path(v.path, key);
  const tree_node* n = lookup(v, key);
  if (!n) {
    if (required) sink.add(v.pos, path, "missing required key", expected);
    return false;
  }
  return convert(*n, path);
}

template <class T, class F>
bool read_list(const tree_node& n, const std::string& path, diagnostics& sink, const char* expected,
               std::vector<T>& out, F&& convert_item) {
  if (!n.is_sequence()) {
    detail::report_got(n, path, sink, expected);
    return false;
  }
  std::vector<T> items(n.items.size());
  bool ok = true;
  for (std::size_t i = 0; i < n.items.size(); ++i)
    ok = convert_item(*n.items[i], detail::index_path(path, i), items[i]) && ok;
  if (ok) out = std::move(items);
  return ok;
}

const char* const duration_expected = "a duration, like 500ms or 5s";

}  // namespace

args::args() : view_(std::make_shared<args_view>()), sink_(std::make_shared<diagnostics>()) {}

args::args(std::shared_ptr<const args_view> view, std::shared_ptr<diagnostics> sink)
    : view_(std::move(view)), sink_(sink ? std::move(sink) : std::make_shared<diagnostics>()) {}

args detail::args_access::make(std::shared_ptr<const tree_node> node, std::string path, source_pos pos,
                               std::shared_ptr<diagnostics> sink) {
  if (node && !node->is_map()) node = nullptr;
  return args(std::make_shared<args_view>(args_view{std::move(node), std::move(path), std::move(pos)}),
              std::move(sink));
}

args args::parse(std::string_view yaml, const std::string& file_name, std::shared_ptr<diagnostics> sink) {
  if (!sink) sink = std::make_shared<diagnostics>();
  std::size_t budget = limits::max_total_bytes;
  detail::node_ptr root = detail::parse_yaml(yaml, file_name, *sink, budget);
  if (!root) return detail::args_access::make(nullptr, "", {file_name, 1, 1}, sink);
  detail::expand_env_tree(*root, "", nullptr, *sink, budget);
  if (!root->is_map() && !root->is_null()) detail::report_got(*root, "", *sink, "a map");
  source_pos pos = root->pos;
  return detail::args_access::make(std::move(root), "", std::move(pos), std::move(sink));
}

args args::with_sink(std::shared_ptr<diagnostics> sink) const { return args(view_, std::move(sink)); }

args args::merged(const args& over) const {
  if (!over.view_->node || over.view_->node->entries.empty()) return *this;
  if (!view_->node) return args(over.view_, sink_);
  auto base = std::const_pointer_cast<tree_node>(view_->node);  // merge copies, it changes neither
  auto top = std::const_pointer_cast<tree_node>(over.view_->node);
  return detail::args_access::make(detail::merge(base, top), view_->path, view_->pos, sink_);
}

bool args::has(std::string_view key) const { return lookup(*view_, key) != nullptr; }

bool args::empty() const { return !view_->node || view_->node->entries.empty(); }

std::vector<std::string> args::keys() const {
  std::vector<std::string> out;
  if (view_->node)
    for (const auto& e : view_->node->entries) out.push_back(e.key);
  return out;
}

args args::at(std::string_view key) const {
  std::string path = detail::join_path(view_->path, key);
  const tree_node* n = lookup(*view_, key);
  if (!n) return detail::args_access::make(nullptr, std::move(path), view_->pos, sink_);
  if (!n->is_map()) {
    detail::report_got(*n, path, *sink_, "a map");
    return detail::args_access::make(nullptr, std::move(path), n->pos, sink_);
  }
  const detail::map_entry* e = view_->node->find(key);
  return detail::args_access::make(e->value, std::move(path), n->pos, sink_);
}

std::vector<args> args::list(std::string_view key) const {
  std::vector<args> out;
  std::string path = detail::join_path(view_->path, key);
  const tree_node* n = lookup(*view_, key);
  if (!n) return out;
  if (!n->is_sequence()) {
    detail::report_got(*n, path, *sink_, "a list of maps");
    return out;
  }
  for (std::size_t i = 0; i < n->items.size(); ++i) {
    const detail::node_ptr& item = n->items[i];
    std::string item_path = detail::index_path(path, i);
    if (!item->is_map() && !item->is_null()) detail::report_got(*item, item_path, *sink_, "a map");
    out.push_back(detail::args_access::make(item, std::move(item_path), item->pos, sink_));
  }
  return out;
}

void args::only(std::initializer_list<std::string_view> keys) const {
  if (!view_->node) return;
  std::vector<std::string> allowed(keys.begin(), keys.end());
  for (const auto& e : view_->node->entries) {
    bool known = false;
    for (auto k : keys) known = known || k == e.key;
    if (!known)
      sink_->add(e.key_pos, detail::join_path(view_->path, e.key), "unknown key", detail::one_of(allowed),
                 detail::did_you_mean(e.key, allowed));
  }
}

source_pos args::pos() const { return view_->pos; }

void args::error(std::string_view key, std::string message, std::string expected, std::string hint) const {
  const tree_node* n = lookup(*view_, key);
  sink_->add(n ? n->pos : view_->pos, detail::join_path(view_->path, key), std::move(message), std::move(expected),
             std::move(hint));
}

std::string args::path() const { return view_->path; }

bool args::read(std::string_view key, bool& out, bool required) const {
  return read_value(*view_, *sink_, key, required, "true or false", [&](const tree_node& n, const std::string& path) {
    return detail::read_bool(n, path, *sink_, out);
  });
}

bool args::read(std::string_view key, int& out, bool required) const {
  return read_value(*view_, *sink_, key, required, "an integer", [&](const tree_node& n, const std::string& path) {
    std::int64_t v = 0;
    if (!detail::read_int(n, path, *sink_, v, std::numeric_limits<int>::min(), std::numeric_limits<int>::max(),
                          "a 32-bit integer"))
      return false;
    out = static_cast<int>(v);
    return true;
  });
}

bool args::read(std::string_view key, std::int64_t& out, bool required) const {
  return read_value(*view_, *sink_, key, required, "an integer", [&](const tree_node& n, const std::string& path) {
    return detail::read_int(n, path, *sink_, out, std::numeric_limits<std::int64_t>::min(),
                            std::numeric_limits<std::int64_t>::max(), "an integer");
  });
}

bool args::read(std::string_view key, double& out, bool required) const {
  return read_value(*view_, *sink_, key, required, "a number", [&](const tree_node& n, const std::string& path) {
    return detail::read_double(n, path, *sink_, out, -std::numeric_limits<double>::infinity(),
                               std::numeric_limits<double>::infinity(), "a number");
  });
}

bool args::read(std::string_view key, std::string& out, bool required) const {
  return read_value(*view_, *sink_, key, required, "a string", [&](const tree_node& n, const std::string& path) {
    return detail::read_string(n, path, *sink_, out, false);
  });
}

bool args::read(std::string_view key, std::chrono::nanoseconds& out, bool required) const {
  return read_value(*view_, *sink_, key, required, duration_expected, [&](const tree_node& n, const std::string& path) {
    return detail::read_duration(n, path, *sink_, out, duration::zero(), duration_expected);
  });
}

bool args::read(std::string_view key, std::vector<std::string>& out, bool required) const {
  return read_value(*view_, *sink_, key, required, "a list of strings",
                    [&](const tree_node& n, const std::string& path) {
                      return read_list(n, path, *sink_, "a list of strings", out,
                                       [&](const tree_node& item, const std::string& p, std::string& v) {
                                         return detail::read_string(item, p, *sink_, v, false);
                                       });
                    });
}

bool args::read(std::string_view key, std::vector<std::int64_t>& out, bool required) const {
  return read_value(
      *view_, *sink_, key, required, "a list of integers", [&](const tree_node& n, const std::string& path) {
        return read_list(n, path, *sink_, "a list of integers", out,
                         [&](const tree_node& item, const std::string& p, std::int64_t& v) {
                           return detail::read_int(item, p, *sink_, v, std::numeric_limits<std::int64_t>::min(),
                                                   std::numeric_limits<std::int64_t>::max(), "an integer");
                         });
      });
}

}  // namespace grove::config
