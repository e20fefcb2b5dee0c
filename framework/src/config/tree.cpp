#include "tree.hpp"

#include <grove/config/limits.hpp>

#include <cstdlib>
#include <exception>
#include <map>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include <yaml-cpp/anchor.h>
#include <yaml-cpp/emitterstyle.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

namespace grove::config::detail {

namespace {

// Aliases to aliases can expand a small document to billions of nodes, or a large scalar to
// gigabytes: nodes and bytes are counted as the tree is built (limits.hpp).
std::size_t cost_of(const tree_node& n) {
  std::size_t bytes = sizeof(tree_node) + n.text.size() + n.pos.file.size();
  for (const auto& e : n.entries) bytes += sizeof(map_entry) + e.key.size();
  return bytes;
}

// Builds the tree from yaml-cpp's parse events (yaml-cpp's own nodes are not used: its LoadAll
// loops forever on a stray ',' at the top level, and its marks carry no file name).
class tree_builder final : public YAML::EventHandler {
 public:
  tree_builder(const std::string& file, diagnostics& errors, std::size_t& budget)
      : file_(file), errors_(errors), budget_(budget) {}

  node_ptr root;
  YAML::Mark document_start;

  source_pos pos_of(const YAML::Mark& m) const {
    if (m.is_null()) return {file_, 0, 0};
    return {file_, m.line + 1, m.column + 1};
  }

  void OnDocumentStart(const YAML::Mark& mark) override {
    root = nullptr;
    stack_.clear();
    anchors_.clear();
    document_start = mark;
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    node_ptr n = make(mark, tree_node::type::null);
    remember(anchor, n);
    finish(n);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    finish(it == anchors_.end() ? make(mark, tree_node::type::null) : copy(*it->second, mark));
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    node_ptr n = make(mark, tree_node::type::scalar);
    if (charge(mark, value.size())) n->text = value;
    n->quoted = tag == "!" || tag == "tag:yaml.org,2002:str";
    remember(anchor, n);
    finish(n);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(mark, tree_node::type::sequence, anchor);
  }
  void OnSequenceEnd() override { close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(mark, tree_node::type::map, anchor);
  }
  void OnMapEnd() override { close(); }

 private:
  struct frame {
    node_ptr node;
    std::string path;
    bool have_key = false;  // a map between a key and its value
    bool key_ok = false;
    std::string key;
    source_pos key_pos;
  };

  node_ptr make(const YAML::Mark& mark, tree_node::type t) {
    charge(mark, sizeof(tree_node) + file_.size());  // parsed nodes are bounded by the text too
    auto n = std::make_shared<tree_node>();
    n->t = t;
    n->pos = pos_of(mark);
    return n;
  }

  void remember(YAML::anchor_t anchor, const node_ptr& n) {
    if (anchor != YAML::NullAnchor) anchors_[anchor] = n;
  }

  // An alias is a copy of what its anchor names (a copy, so that expanding environment
  // variables in place never sees a node twice).
  node_ptr copy(const tree_node& from, const YAML::Mark& mark) {
    if (!charge(mark, cost_of(from))) return make(mark, tree_node::type::null);
    auto n = std::make_shared<tree_node>(from);
    for (auto& item : n->items) item = copy(*item, mark);
    for (auto& e : n->entries) e.value = copy(*e.value, mark);
    return n;
  }

  // Takes `bytes` and a node from what the document may still use; false (reported once) when
  // either runs out.
  bool charge(const YAML::Mark& mark, std::size_t bytes) {
    if (too_large_) return false;
    if (nodes_ >= limits::max_nodes || bytes > budget_) {
      errors_.add(pos_of(mark), "",
                  "document too large: more than " + std::to_string(limits::max_nodes) + " nodes or " +
                      std::to_string(limits::max_total_bytes >> 20) + " MiB after aliases are expanded");
      too_large_ = true;
      return false;
    }
    ++nodes_;
    budget_ -= bytes;
    return true;
  }

  std::string child_path() const {
    if (stack_.empty()) return "";
    const frame& f = stack_.back();
    if (f.node->is_sequence()) return index_path(f.path, f.node->items.size());
    return f.have_key && f.key_ok ? join_path(f.path, f.key) : f.path;
  }

  void open(const YAML::Mark& mark, tree_node::type t, YAML::anchor_t anchor) {
    node_ptr n = make(mark, t);
    remember(anchor, n);
    std::string path = child_path();
    stack_.push_back({std::move(n), std::move(path)});
  }

  void close() {
    node_ptr n = std::move(stack_.back().node);
    stack_.pop_back();
    finish(std::move(n));
  }

  // Places a complete node: the root, an item, a key, or a key's value.
  void finish(node_ptr n) {
    if (stack_.empty()) {
      root = std::move(n);
      return;
    }
    frame& f = stack_.back();
    if (f.node->is_sequence()) {
      f.node->items.push_back(std::move(n));
      return;
    }
    if (!f.have_key) {
      f.have_key = true;
      f.key_pos = n->pos;
      f.key_ok = n->is_scalar();
      if (f.key_ok)
        f.key = n->text;
      else
        errors_.add(n->pos, f.path, "a key must be a string", "a string",
                    n->is_null() ? std::string{} : "keys cannot be lists or maps");
      return;
    }
    f.have_key = false;
    if (!f.key_ok) return;
    // yaml-cpp marks an empty value at the token after it; the key is a better place.
    if (n->is_null() && (n->pos.line == 0 || n->pos.line > f.key_pos.line)) n->pos = f.key_pos;
    if (const map_entry* first = f.node->find(f.key)) {
      errors_.add(f.key_pos, join_path(f.path, f.key), "duplicate key", {},
                  "first at line " + std::to_string(first->key_pos.line));
      return;
    }
    f.node->entries.push_back({f.key, f.key_pos, std::move(n)});
  }

  const std::string& file_;
  diagnostics& errors_;
  std::size_t& budget_;
  std::vector<frame> stack_;
  std::map<YAML::anchor_t, node_ptr> anchors_;
  std::size_t nodes_ = 0;
  bool too_large_ = false;
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

namespace {
// Where an unclosed flow collection ('{' or '[') opens: the innermost one still open at the end
// of the text, skipping quoted strings and comments. Line and column from 1; {0, 0} if none.
std::pair<std::size_t, std::size_t> unclosed_flow(std::string_view text, char& which) {
  struct open_at {
    char c;
    std::size_t line, column;
  };
  std::vector<open_at> open;
  std::size_t line = 1, column = 0;
  char quote = 0;
  bool comment = false;
  char prev = '\n';
  for (char c : text) {
    ++column;
    if (c == '\n') {
      ++line;
      column = 0;
      comment = false;
      if (quote == 0) prev = c;
      continue;
    }
    if (comment) continue;
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '#' && (prev == ' ' || prev == '\t' || prev == '\n')) {
      comment = true;
    } else if ((c == '\'' || c == '"') &&
               (prev == ' ' || prev == '\n' || prev == '{' || prev == '[' || prev == ',' || prev == ':')) {
      quote = c;
    } else if (c == '{' || c == '[') {
      open.push_back({c, line, column});
    } else if ((c == '}' || c == ']') && !open.empty()) {
      open.pop_back();
    }
    prev = c;
  }
  if (open.empty()) return {0, 0};
  which = open.back().c;
  return {open.back().line, open.back().column};
}

// Whether line `line` (from 1) of text is indented with a tab.
bool tab_indented(std::string_view text, std::size_t line) {
  std::size_t at = 0;
  for (std::size_t l = 1; l < line && at != std::string_view::npos; ++l) {
    at = text.find('\n', at);
    if (at != std::string_view::npos) ++at;
  }
  if (at == std::string_view::npos) return false;
  for (; at < text.size() && (text[at] == ' ' || text[at] == '\t'); ++at) {
    if (text[at] == '\t') return true;
  }
  return false;
}
}  // namespace

node_ptr parse_yaml(std::string_view text, const std::string& file_name, diagnostics& errors, std::size_t& budget) {
  std::istringstream in{std::string(text)};
  tree_builder builder(file_name, errors, budget);
  node_ptr first;
  std::vector<YAML::Mark> starts;  // of each document
  try {
    YAML::Parser parser(in);
    // Three documents at most: the first, and enough to tell a second one from yaml-cpp
    // stuck on a token it cannot parse (it then returns empty documents, all at that token).
    while (starts.size() < 3 && parser.HandleNextDocument(builder)) {
      starts.push_back(builder.document_start);
      if (starts.size() == 1) first = builder.root;
      if (starts.size() >= 2 && starts.back().pos == starts[starts.size() - 2].pos) {
        const YAML::Mark& at = starts[starts.size() - 2];
        std::size_t pos = static_cast<std::size_t>(at.pos);
        std::string what = pos < text.size() ? std::string("'") + text[pos] + "'" : "end of input";
        errors.add(builder.pos_of(at), "", "invalid YAML: unexpected " + what);
        return nullptr;
      }
    }
  } catch (const YAML::Exception& e) {
    source_pos pos{file_name, 0, 0};
    if (!e.mark.is_null()) pos = builder.pos_of(e.mark);
    // yaml-cpp finds an unclosed '{' or '[' at the end of the file: point at the bracket.
    char which = 0;
    if (e.msg.find("flow not found") != std::string::npos) {
      if (auto [l, c] = unclosed_flow(text, which); l != 0) {
        errors.add({file_name, static_cast<int>(l), static_cast<int>(c)}, "",
                   std::string("invalid YAML: this '") + which + "' is never closed", {},
                   std::string("close it with '") + (which == '{' ? '}' : ']') + "' (yaml-cpp: " + e.msg + ")");
        return nullptr;
      }
    }
    // A tab in the indentation: yaml-cpp says "illegal block entry" or similar.
    if (pos.line > 0 && tab_indented(text, static_cast<std::size_t>(pos.line))) {
      errors.add(pos, "", "invalid YAML: a tab in the indentation", {},
                 "YAML indents with spaces only (yaml-cpp: " + e.msg + ")");
      return nullptr;
    }
    errors.add(pos, "", "invalid YAML: " + e.msg);
    return nullptr;
  } catch (const std::exception& e) {
    errors.add({file_name, 0, 0}, "", std::string("invalid YAML: ") + e.what());
    return nullptr;
  }
  if (starts.empty() || !first) {
    auto n = std::make_shared<tree_node>();
    n->pos = {file_name, 1, 1};
    return n;
  }
  if (starts.size() > 1)
    errors.add(builder.pos_of(starts[1]), "", "a second YAML document", "one document per file",
               "remove the '---' separator, or put the second document in a file of its own");
  return first;
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

void expand_env_tree(tree_node& n, const std::string& path, const getenv_fn& getenv, diagnostics& errors,
                     std::size_t& budget) {
  switch (n.t) {
    case tree_node::type::scalar:
      if (n.text.find('$') != std::string::npos) {
        std::string out;
        bool substituted = false;
        expand_env(n.text, out, substituted, getenv, n.pos, path, errors);
        if (out.size() > n.text.size() && out.size() - n.text.size() > budget) {
          errors.add(n.pos, path,
                     "environment variables expand the configuration past " +
                         std::to_string(limits::max_total_bytes >> 20) + " MiB");
          budget = 0;
          break;
        }
        if (out.size() > n.text.size()) budget -= out.size() - n.text.size();
        n.text = std::move(out);
        n.expanded = n.expanded || substituted;
      }
      break;
    case tree_node::type::sequence:
      for (std::size_t i = 0; i < n.items.size(); ++i)
        expand_env_tree(*n.items[i], index_path(path, i), getenv, errors, budget);
      break;
    case tree_node::type::map:
      for (auto& e : n.entries) expand_env_tree(*e.value, join_path(path, e.key), getenv, errors, budget);
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
