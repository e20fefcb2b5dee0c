// command: a GenServer that owns an OS process (os_process.hpp), so that a program Grove did not
// write is a child like any other: the supervisor's strategies, restart types, intensity and
// shutdown apply unchanged. The server's life is the program's:
//  - start: the program runs, and, with a ready condition, the start completes only once a
//    stdout/stderr line matches `ready_line` and/or `ready_port` accepts TCP connections; a
//    program that exits first, or a start_timeout that passes, fails the start (start_error);
//  - the program's exit ends the server: status 0 is `normal`, status N `{exit_status,N}`, a
//    signal `{signal,SIGNAME}`;
//  - shutdown: the server traps exits; its terminate sends stop_signal and waits for the exit.
//    A program that ignores it is killed with the server when the supervisor's shutdown time
//    runs out, reported as OTP reports any such child: shutdown_error with `killed`.
// With `lines`, stdin and stdout carry a line protocol: cast command_input writes a line; call
// command_request writes a line and replies with the next stdout line (calls answered in
// order); a stdout line no call waits for goes to `deliver_to` as command_output, or to the log.
//
//   grove::command_options o;
//   o.command.argv = {"sh", "-c", "exec my-worker --port 9000"};
//   o.ready_port = 9000;
//   auto started = grove::start_command_link(o, {.name = "worker"});
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <grove/behaviours/gen_server.hpp>
#include <grove/runtime/os_process.hpp>

namespace grove {

struct command_options {
  os_command command;
  bool lines = false;      // the line protocol on stdin/stdout (sets command.input and stdout_to_owner)
  std::string deliver_to;  // with lines: the registered name unrequested stdout lines go to
  std::optional<std::uint16_t> ready_port;
  std::string ready_host = "127.0.0.1";
  duration start_timeout = std::chrono::seconds(30);  // for the ready condition
};

// Cast: one line to the program's stdin (dropped if 1 MiB is already waiting, counted).
struct command_input {
  std::string line;
};
// Call: one line to stdin; the reply (a std::string) is the next stdout line.
struct command_request {
  std::string line;
};
// What `deliver_to` receives: a stdout line no call was waiting for.
struct command_output {
  std::string child;  // the command's child id (its log key's last segment)
  std::string line;
  pid from;
};

start_result start_command(command_options o, const start_options& so = {});
start_result start_command_link(command_options o, const start_options& so = {});

// The signal a name stands for: "TERM", "SIGTERM", "15"; 0 if none.
int signal_by_name(const std::string& name);

}  // namespace grove
