// diagnostics: what the configuration loader (and a kind reading its `args`) found wrong, each
// error with the file, line and column it comes from, the key path inside the document, what
// was expected and, where one exists, a hint (the nearest valid key, kind or value). Errors are
// collected, not thrown, so that one run reports all of them. A diagnostics list is a plain
// value: not synchronized, fill it from one thread at a time.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace grove::config {

// Where a value sits in a YAML file; line and column are 1-based, 0 when unknown (a file that
// could not be read at all).
struct source_pos {
  std::string file;
  int line = 0;
  int column = 0;
  friend bool operator==(const source_pos&, const source_pos&) = default;
};

// "file:line:column", or "file" alone when the line is unknown.
std::string to_string(const source_pos& pos);

struct diagnostic {
  source_pos pos;
  std::string path;      // key path, e.g. applications[0].supervisor.children[1].shutdown
  std::string message;   // what is wrong, e.g. "unknown key" or "got 'ten'"
  std::string expected;  // e.g. "one of: id, kind, name" or "a duration"; may be empty
  std::string hint;      // e.g. "did you mean 'shutdown'?"; may be empty
};

// One error as a compiler prints it:
//   bank.yaml:12:15: error: applications[0].supervisor.children[1].shutdwn: unknown key (expected one of: ...)
//     hint: did you mean 'shutdown'?
// (no trailing newline; no path part when the path is empty, no hint line when there is none).
std::string format(const diagnostic& d);

class diagnostics {
 public:
  using const_iterator = std::vector<diagnostic>::const_iterator;

  void add(diagnostic d) { list_.push_back(std::move(d)); }
  void add(source_pos pos, std::string path, std::string message, std::string expected = {}, std::string hint = {});
  void append(const diagnostics& other);

  bool empty() const noexcept { return list_.empty(); }
  std::size_t size() const noexcept { return list_.size(); }
  const diagnostic& operator[](std::size_t i) const { return list_[i]; }
  const_iterator begin() const noexcept { return list_.begin(); }
  const_iterator end() const noexcept { return list_.end(); }
  void clear() noexcept { list_.clear(); }

  // Every error formatted, each followed by a newline.
  std::string to_string() const;

 private:
  std::vector<diagnostic> list_;
};

}  // namespace grove::config
