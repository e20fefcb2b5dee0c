#include "tree.hpp"

#include <cstdlib>
#include <exception>
#include <optional>

#include <yaml-cpp/yaml.h>

namespace grove::config::detail {

namespace {

// A document made of aliases to aliases can expand to billions of nodes; no config needs more
// than this.
constexpr std::size_t max_nodes = 1'000'000;

struct converter {
  const std::string& file;
  diagnostics& errors;
  std::size_t nodes = 0;
  bool too_large = false;

  source_pos pos_of(const YAML::Mark& m) const {
    if (m.is_null()) return {file, 0, 0};
    return {file, m.line + 1, m.column + 1};
  }

  node_ptr convert(const YAML::Node& y, const source_pos* fallback, const std::string& path) {
    auto n = std::make_shared<tree_node>();
    if (++nodes > max_nodes) {
      if (!too_large) errors.add(pos_of(y.Mark()), "", "document too large (more than 1,000,000 nodes)");
      too_large = true;
      return n;
    }
    n->pos = pos_of(y.Mark());
    switch (y.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        n->t = tree_node::type::null;
        // yaml-cpp marks an empty value at the token after it; the key is a better place.
        if (fallback && (n->pos.line == 0 || n->pos.line > fallback->line)) n->pos = *fallback;
        break;
      case YAML::NodeType::Scalar:
        n->t = tree_node::type::scalar;
        n->text = y.Scalar();
        n->quoted = y.Tag() == "!" || y.Tag() == "tag:yaml.org,2002:str";
        break;
      case YAML::NodeType::Sequence:
        n->t = tree_node::type::sequence;
        for (const auto& item : y) {
          n->items.push_back(convert(item, &n->pos, index_path(path, n->items.size())));
          if (too_large) break;
        }
        break;
      case YAML::NodeType::Map:
        n->t = tree_node::type::map;
        for (auto it = y.begin(); it != y.end() && !too_large; ++it) {
          source_pos key_pos = pos_of(it->first.Mark());
          if (!it->first.IsScalar()) {
            errors.add(key_pos, path, "a key must be a string", "a string",
                       it->first.IsNull() ? std::string{} : "keys cannot be lists or maps");
            continue;
          }
          std::string key = it->first.Scalar();
          if (const map_entry* first = n->find(key)) {
            errors.add(key_pos, join_path(path, key), "duplicate key", {},
                       "first at line " + std::to_string(first->key_pos.line));
            continue;
          }
          n->entries.push_back({key, key_pos, convert(it->second, &key_pos, join_path(path, key))});
        }
        break;
    }
    return n;
  }
};

bool valid_env_name(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

}  // namespace

const map_entry* tree_node::find(std::string_view key) const noexcept {
  for (const auto& e : entries)
    if (e.key == key) return &e;
  return nullptr;
}

node_ptr parse_yaml(std::string_view text, const std::string& file_name, diagnostics& errors) {
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    source_pos pos{file_name, 0, 0};
    if (!e.mark.is_null()) pos = {file_name, e.mark.line + 1, e.mark.column + 1};
    errors.add(pos, "", "invalid YAML: " + e.msg);
    return nullptr;
  } catch (const std::exception& e) {
    errors.add({file_name, 0, 0}, "", std::string("invalid YAML: ") + e.what());
    return nullptr;
  }
  converter c{file_name, errors};
  if (docs.empty()) {
    auto n = std::make_shared<tree_node>();
    n->pos = {file_name, 1, 1};
    return n;
  }
  if (docs.size() > 1) {
    errors.add(c.pos_of(docs[1].Mark()), "", "a second YAML document", "one document per file",
               "remove the '---' separator, or put the second document in a file of its own");
  }
  source_pos start{file_name, 1, 1};
  return c.convert(docs[0], &start, "");
}

node_ptr merge(const node_ptr& base, const node_ptr& over) {
  if (!base) return over;
  if (!over) return base;
  if (!base->is_map() || !over->is_map()) return over;
  auto out = std::make_shared<tree_node>();
  out->t = tree_node::type::map;
  out->pos = over->pos;
  out->entries = base->entries;
  for (const auto& e : over->entries) {
    map_entry* found = nullptr;
    for (auto& o : out->entries)
      if (o.key == e.key) found = &o;
    if (found) {
      found->value = merge(found->value, e.value);
      found->key_pos = e.key_pos;
    } else {
      out->entries.push_back(e);
    }
  }
  return out;
}

bool expand_env(std::string_view in, std::string& out, bool& substituted, const getenv_fn& getenv,
                const source_pos& pos, const std::string& path, diagnostics& errors) {
  out.clear();
  bool ok = true;
  for (std::size_t i = 0; i < in.size();) {
    if (in[i] != '$' || i + 1 == in.size()) {
      out += in[i++];
      continue;
    }
    if (in[i + 1] == '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (in[i + 1] != '{') {
      out += in[i++];
      continue;
    }
    std::size_t close = in.find('}', i + 2);
    if (close == std::string_view::npos) {
      errors.add(pos, path, "unterminated '${'", "${NAME} or ${NAME:-default}", "write $$ for a literal '$'");
      out += in.substr(i);
      return false;
    }
    std::string_view inner = in.substr(i + 2, close - i - 2);
    std::string_view name = inner;
    std::optional<std::string_view> fallback;
    if (auto sep = inner.find(":-"); sep != std::string_view::npos) {
      name = inner.substr(0, sep);
      fallback = inner.substr(sep + 2);
    }
    substituted = true;
    if (!valid_env_name(name)) {
      errors.add(pos, path, "invalid environment variable name '" + std::string(name) + "'",
                 "${NAME} or ${NAME:-default}, NAME made of letters, digits and _");
      ok = false;
    } else {
      const char* value = getenv ? getenv(std::string(name).c_str()) : std::getenv(std::string(name).c_str());
      if (value && (*value || !fallback)) {
        out += value;
      } else if (fallback) {
        out += *fallback;
      } else {
        errors.add(pos, path, "environment variable " + std::string(name) + " is not set", {},
                   "set it, or give a default: ${" + std::string(name) + ":-value}");
        ok = false;
      }
    }
    i = close + 1;
  }
  return ok;
}

void expand_env_tree(tree_node& n, const std::string& path, const getenv_fn& getenv, diagnostics& errors) {
  switch (n.t) {
    case tree_node::type::scalar:
      if (n.text.find('$') != std::string::npos) {
        std::string out;
        bool substituted = false;
        expand_env(n.text, out, substituted, getenv, n.pos, path, errors);
        n.text = std::move(out);
        n.expanded = n.expanded || substituted;
      }
      break;
    case tree_node::type::sequence:
      for (std::size_t i = 0; i < n.items.size(); ++i)
        expand_env_tree(*n.items[i], index_path(path, i), getenv, errors);
      break;
    case tree_node::type::map:
      for (auto& e : n.entries) expand_env_tree(*e.value, join_path(path, e.key), getenv, errors);
      break;
    case tree_node::type::null:
      break;
  }
}

std::string join_path(const std::string& parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  std::string out = parent;
  out += '.';
  out += key;
  return out;
}

std::string index_path(const std::string& parent, std::size_t i) { return parent + "[" + std::to_string(i) + "]"; }

}  // namespace grove::config::detail
