#include <grove/observe/events.hpp>

#include <cstdio>
#include <ctime>
#include <string>

#include <nlohmann/json.hpp>

namespace grove {

const char* level_of(const event& e) noexcept {
  switch (e.kind) {
    case event_kind::progress:
    case event_kind::nodeup:
      return "info";
    case event_kind::nodedown:
    case event_kind::connection_failed:
      return "warning";
    case event_kind::application:
      return e.reason.is_crash() ? "error" : "info";
    case event_kind::dropped:
    case event_kind::long_schedule:
      return "warning";
    case event_kind::trace:
    case event_kind::exit:
      return "debug";
    case event_kind::output:
      return e.level.empty() ? "info" : e.level.c_str();
    default:
      return "error";
  }
}

std::string iso_time(std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms % 1000));
  return buf;
}

namespace {

bool has_window(const event& e) {
  return e.kind == event_kind::child_terminated || e.kind == event_kind::intensity_reached;
}

}  // namespace

std::string to_text(const event& e) {
  std::string s = to_string(e.kind);
  auto field = [&](const char* k, const std::string& v) {
    if (v.empty()) return;
    s += ' ';
    s += k;
    s += '=';
    s += v;
  };
  if (e.kind == event_kind::dropped) {
    field("count", std::to_string(e.dropped));
    return s;
  }
  if (e.kind == event_kind::trace) {  // trace <1.4.1> ledger call bank::deposit
    if (e.old_pid) field("pid", e.old_pid.str());
    field("server", e.child);
    s += ' ' + e.label;
    return s;
  }
  if (e.kind == event_kind::output) {  // output demo/sidecar <1.9.0> stderr: listening on 9000
    s += ' ' + (e.supervisor.empty() ? e.child : e.supervisor + "/" + e.child);
    if (e.old_pid) s += ' ' + e.old_pid.str();
    s += ' ' + e.label + ": " + e.text;
    return s;
  }
  if (e.kind == event_kind::nodeup || e.kind == event_kind::nodedown || e.kind == event_kind::connection_failed) {
    s += ' ' + e.label;  // nodedown erl@host: net_tick_timeout ...
    if (!e.text.empty()) s += (e.kind == event_kind::nodeup ? " " : ": ") + e.text;
    return s;
  }
  if (e.kind == event_kind::application) {  // application store started new_pid=<1.1.1>
    s += ' ' + e.child + ' ' + e.label;
    if (e.old_pid) field("old_pid", e.old_pid.str());
    if (e.new_pid) field("new_pid", e.new_pid.str());
    if (e.label != "started") field("reason", e.reason.str());
    return s;
  }
  field("supervisor", e.supervisor);
  field("child", e.child);
  field("label", e.label);
  if (e.old_pid) field("old_pid", e.old_pid.str());
  if (e.new_pid) field("new_pid", e.new_pid.str());
  if (e.kind == event_kind::long_schedule) {
    field("ran", std::to_string(e.ran.count()) + "ms");
    return s;
  }
  if (e.kind != event_kind::progress) field("reason", e.reason.str());
  if (has_window(e)) {
    field("restarts",
          std::to_string(e.restarts) + "/" + std::to_string(e.intensity) + " in " + std::to_string(e.period_s) + "s");
  }
  return s;
}

std::string to_json(const event& e) {
  nlohmann::ordered_json j;
  j["time"] = iso_time(e.time);
  j["seq"] = e.seq;
  j["kind"] = to_string(e.kind);
  j["level"] = level_of(e);
  j["node"] = e.node;
  auto opt_pid = [](const pid& p) { return p ? nlohmann::ordered_json(p.str()) : nlohmann::ordered_json(nullptr); };
  if (e.kind == event_kind::dropped) {
    j["dropped"] = e.dropped;
    return j.dump();
  }
  j["supervisor"] = e.supervisor;
  j["supervisor_pid"] = opt_pid(e.supervisor_pid);
  j["child"] = e.child;
  j["old_pid"] = opt_pid(e.old_pid);
  j["new_pid"] = opt_pid(e.new_pid);
  // Events that are not about a process ending carry no reason.
  const bool no_reason = e.kind == event_kind::progress || e.kind == event_kind::output ||
                         e.kind == event_kind::nodeup || e.kind == event_kind::nodedown ||
                         e.kind == event_kind::connection_failed;
  j["reason"] = no_reason ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(e.reason.str());
  j["label"] = e.label;
  j["restarts"] = e.restarts;
  j["intensity"] = e.intensity;
  j["period_s"] = e.period_s;
  if (e.kind == event_kind::long_schedule) j["ran_ms"] = e.ran.count();
  if (e.kind == event_kind::output || e.kind == event_kind::nodeup || e.kind == event_kind::nodedown ||
      e.kind == event_kind::connection_failed)
    j["text"] = e.text;
  // Invalid UTF-8 in a reason (an exception's what()) is replaced, never thrown on.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace grove
