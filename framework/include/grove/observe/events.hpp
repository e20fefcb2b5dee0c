// Events for people and for machines: the level a logger gives an event, one line of text, one
// JSON object, and the time format both use. The events themselves and their bus are the
// runtime's (grove/runtime/events.hpp, included here); the fields are in docs/events.md.
#pragma once

#include <chrono>
#include <string>

#include <grove/runtime/events.hpp>

namespace grove {

// "error", "warning", "info" or "debug": the level a logger gives this event.
const char* level_of(const event& e) noexcept;
// One line for people: `child_terminated supervisor=bank child=ledger old_pid=<1.7.2> reason=...`.
std::string to_text(const event& e);
// One JSON object on one line, with the fields of docs/events.md.
std::string to_json(const event& e);
// UTC with milliseconds: 2026-11-25T11:40:00.123Z
std::string iso_time(std::chrono::system_clock::time_point t);

}  // namespace grove
