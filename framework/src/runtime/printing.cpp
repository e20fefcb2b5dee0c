#include <cxxabi.h>

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include <grove/detail/envelope.hpp>
#include <grove/runtime/exit_reason.hpp>
#include <grove/runtime/message.hpp>
#include <grove/runtime/pid.hpp>
#include <grove/runtime/process.hpp>

namespace grove {

const char* to_string(overflow_policy p) noexcept {
  switch (p) {
    case overflow_policy::drop_newest:
      return "drop_newest";
    case overflow_policy::drop_oldest:
      return "drop_oldest";
    case overflow_policy::fail:
      return "fail";
  }
  return "?";
}

std::string pid::str() const {
  return "<" + std::to_string(node_) + "." + std::to_string(slot_) + "." + std::to_string(generation_) + ">";
}
std::ostream& operator<<(std::ostream& os, const pid& p) { return os << p.str(); }

std::optional<pid> parse_pid(std::string_view t) {
  if (t.size() < 7 || t.front() != '<' || t.back() != '>') return std::nullopt;
  t = t.substr(1, t.size() - 2);
  std::uint32_t parts[3];
  for (int i = 0; i < 3; ++i) {
    const auto dot = i < 2 ? t.find('.') : t.size();
    if (dot == std::string_view::npos || dot == 0 || dot > 10) return std::nullopt;
    std::uint64_t v = 0;
    for (char c : t.substr(0, dot)) {
      if (c < '0' || c > '9') return std::nullopt;
      v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (v > 0xffffffffu) return std::nullopt;
    parts[i] = static_cast<std::uint32_t>(v);
    t = i < 2 ? t.substr(dot + 1) : std::string_view();
  }
  if (parts[2] == 0) return std::nullopt;
  return pid(parts[0], parts[1], parts[2]);
}
std::ostream& operator<<(std::ostream& os, const ref& r) { return os << "#Ref<" << r.id << ">"; }

std::string exit_reason::str() const {
  switch (kind_) {
    case kind::normal:
      return "normal";
    case kind::shutdown:
      return detail_.empty() ? "shutdown" : "{shutdown," + detail_ + "}";
    case kind::killed:
      return "killed";
    case kind::kill:
      return "kill";
    case kind::noproc:
      return "noproc";
    case kind::noconnection:
      return "noconnection";
    case kind::timeout:
      return "timeout";
    case kind::error:
      return "{error," + detail_ + "}";
    case kind::other:
      return detail_;
  }
  return "?";
}
std::ostream& operator<<(std::ostream& os, const exit_reason& r) { return os << r.str(); }

std::string message::type_name() const { return env_ ? detail::demangle(env_->type->name()) : "none"; }

const char* to_string(process_status s) noexcept {
  switch (s) {
    case process_status::runnable:
      return "runnable";
    case process_status::running:
      return "running";
    case process_status::waiting:
      return "waiting";
    case process_status::exiting:
      return "exiting";
  }
  return "?";
}

namespace detail {

std::string demangle(const char* name) {
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string out = (status == 0 && d) ? d : name;
  std::free(d);
  return out;
}

}  // namespace detail

}  // namespace grove
