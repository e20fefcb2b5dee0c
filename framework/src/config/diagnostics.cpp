#include <grove/config/diagnostics.hpp>

namespace grove::config {

std::string to_string(const source_pos& pos) {
  if (pos.line <= 0) return pos.file;
  return pos.file + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column);
}

std::string format(const diagnostic& d) {
  std::string out = to_string(d.pos);
  out += ": error: ";
  if (!d.path.empty()) {
    out += d.path;
    out += ": ";
  }
  out += d.message;
  if (!d.expected.empty()) {
    out += " (expected ";
    out += d.expected;
    out += ')';
  }
  if (!d.hint.empty()) {
    out += "\n  hint: ";
    out += d.hint;
  }
  return out;
}

void diagnostics::add(source_pos pos, std::string path, std::string message, std::string expected, std::string hint) {
  list_.push_back({std::move(pos), std::move(path), std::move(message), std::move(expected), std::move(hint)});
}

void diagnostics::append(const diagnostics& other) {
  std::vector<diagnostic> copy = other.list_;  // other may be *this
  list_.insert(list_.end(), copy.begin(), copy.end());
}

std::string diagnostics::to_string() const {
  std::string out;
  for (const auto& d : list_) {
    out += format(d);
    out += '\n';
  }
  return out;
}

}  // namespace grove::config
