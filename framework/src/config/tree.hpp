// The loader's own copy of a YAML document: yaml-cpp's nodes carry neither a file name nor a
// way to merge documents from several files without losing positions, so a parsed file is
// converted at once into this small tree, which every later step (include merge, environment
// expansion, validation, the args view) works on. yaml-cpp stays inside tree.cpp.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <grove/config/args.hpp>
#include <grove/config/diagnostics.hpp>

namespace grove::config::detail {

struct tree_node;
using node_ptr = std::shared_ptr<tree_node>;

struct map_entry {
  std::string key;
  source_pos key_pos;
  node_ptr value;
};

struct tree_node {
  enum class type : unsigned char { null, scalar, sequence, map };
  type t = type::null;
  std::string text;                // scalar
  bool quoted = false;             // a quoted (or !!str) scalar: always a string
  bool expanded = false;           // text came from ${...}: typed by its content, whatever the quoting
  std::vector<node_ptr> items;     // sequence
  std::vector<map_entry> entries;  // map, in file order
  source_pos pos;

  bool is_null() const noexcept { return t == type::null; }
  bool is_scalar() const noexcept { return t == type::scalar; }
  bool is_sequence() const noexcept { return t == type::sequence; }
  bool is_map() const noexcept { return t == type::map; }
  const map_entry* find(std::string_view key) const noexcept;
};

// Parses one YAML document. Syntax errors, more than one document, non-scalar or duplicate
// keys are recorded; the result is null when the text could not be parsed at all, a null node
// for an empty document.
// `budget` is the bytes the tree may still take (each node, its text and keys, and every copy
// an alias makes, counted); a document past it, or past limits::max_nodes, is an error.
node_ptr parse_yaml(std::string_view text, const std::string& file_name, diagnostics& errors, std::size_t& budget);

// `over` deep-merged onto `base`: maps merge key by key (later wins), anything else is replaced.
node_ptr merge(const node_ptr& base, const node_ptr& over);

using getenv_fn = std::function<const char*(const char*)>;
// Expands ${NAME}, ${NAME:-default} and $$ in one string; records errors at `pos`/`path`.
// Returns false on error (then `out` holds what could be expanded).
bool expand_env(std::string_view in, std::string& out, bool& substituted, const getenv_fn& getenv,
                const source_pos& pos, const std::string& path, diagnostics& errors);
// Expands every scalar value (not keys) of a tree in place. What expansion adds is taken from
// `budget` (bytes); past it, the scalar is left unexpanded and an error recorded.
void expand_env_tree(tree_node& n, const std::string& path, const getenv_fn& getenv, diagnostics& errors,
                     std::size_t& budget);

std::string join_path(const std::string& parent, std::string_view key);
std::string index_path(const std::string& parent, std::size_t i);

// The shared state behind an args view.
struct args_view {
  std::shared_ptr<const tree_node> node;  // null: an empty map
  std::string path;
  source_pos pos;
};

struct args_access {
  static args make(std::shared_ptr<const tree_node> node, std::string path, source_pos pos,
                   std::shared_ptr<diagnostics> sink);
};

}  // namespace grove::config::detail
