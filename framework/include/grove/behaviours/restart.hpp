// The words of supervision, shared by supervisors and the YAML config: how a child is
// restarted, how a supervisor restarts its children, when significant children stop it. Each
// is defined here once, with its name (to_string): OTP's, which the YAML format uses too.
#pragma once

namespace grove {

enum class restart_type : unsigned char { permanent, transient, temporary };
enum class child_type : unsigned char { worker, supervisor };
enum class strategy : unsigned char { one_for_one, one_for_all, rest_for_one };
enum class auto_shutdown : unsigned char {
  never,            // significant children are not allowed
  any_significant,  // the supervisor stops when any significant child ends for good
  all_significant   // ... when the last running significant child does
};

const char* to_string(restart_type v) noexcept;
const char* to_string(child_type v) noexcept;
const char* to_string(strategy v) noexcept;
const char* to_string(auto_shutdown v) noexcept;

}  // namespace grove
