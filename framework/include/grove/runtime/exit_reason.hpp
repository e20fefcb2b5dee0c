// exit_reason: why a process ended, as OTP's exit reasons are values. `normal`, `shutdown`,
// `{shutdown, detail}`, `killed` (after an untrappable kill), `kill` (the signal itself),
// `noproc`, `noconnection`, `timeout`, a crash (`{error, "type: what"}`) and any named reason
// (an atom in OTP terms).
#pragma once

#include <iosfwd>
#include <memory>
#include <string>
#include <utility>

namespace grove {

class exit_reason {
 public:
  enum class kind : unsigned char { normal, shutdown, killed, kill, noproc, noconnection, timeout, error, other };

  exit_reason() noexcept = default;  // normal

  static exit_reason normal() { return {}; }
  static exit_reason shutdown() { return exit_reason(kind::shutdown); }
  static exit_reason shutdown(std::string detail) { return exit_reason(kind::shutdown, std::move(detail)); }
  static exit_reason killed() { return exit_reason(kind::killed); }
  static exit_reason kill() { return exit_reason(kind::kill); }
  static exit_reason noproc() { return exit_reason(kind::noproc); }
  static exit_reason noconnection() { return exit_reason(kind::noconnection); }
  static exit_reason timeout() { return exit_reason(kind::timeout); }
  // A crash: `text` is "type: what()" for an exception.
  static exit_reason error(std::string text) { return exit_reason(kind::error, std::move(text)); }
  // Any other reason, named like an atom (e.g. "bad_config").
  static exit_reason other(std::string name) { return exit_reason(kind::other, std::move(name)); }

  // The same reason, remembering the term it came as from another node (its external format,
  // for the dist layer): sent on to a node, it goes as that term again, unchanged.
  static exit_reason with_term(exit_reason r, std::string encoded) {
    r.term_ = std::make_shared<const std::string>(std::move(encoded));
    return r;
  }

  kind what() const noexcept { return kind_; }
  const std::string& detail() const noexcept { return detail_; }
  // The term it came as from another node (external format), or null.
  const std::string* remote_term() const noexcept { return term_.get(); }

  bool is_normal() const noexcept { return kind_ == kind::normal; }
  // shutdown or {shutdown, detail}: expected by supervisors and loggers, abnormal for links.
  bool is_shutdown() const noexcept { return kind_ == kind::shutdown; }
  // Neither normal nor shutdown: what a crash report is written for.
  bool is_crash() const noexcept { return !is_normal() && !is_shutdown(); }

  std::string str() const;

  friend bool operator==(const exit_reason& a, const exit_reason& b) noexcept {
    return a.kind_ == b.kind_ && a.detail_ == b.detail_;
  }

 private:
  explicit exit_reason(kind k, std::string d = {}) : kind_(k), detail_(std::move(d)) {}
  kind kind_ = kind::normal;
  std::string detail_;
  std::shared_ptr<const std::string> term_;
};

std::ostream& operator<<(std::ostream& os, const exit_reason& r);

}  // namespace grove
