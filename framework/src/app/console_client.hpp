// console_client: `grove console [ADDR]`, a client for a node's debug console (docs/console.md).
// On a terminal it edits lines with libedit (history in ~/.grove_console_history) and prints
// what the node streams above the line being edited; from a pipe it sends one line at a time
// and waits for each answer, so `printf 'tree\n' | grove console` is scriptable.
#pragma once

#include <string>

namespace grove::detail {

// The default address: the demo's console.
inline constexpr const char* default_console_address = "127.0.0.1:7070";

// Runs a session with the console at `address` (host:port, [v6]:port). Exit code: 0 when the
// session ended (quit, end of input, or the node closed it), 1 when the node cannot be reached
// or does not answer, 2 for a malformed address.
int run_console_client(const std::string& address);

}  // namespace grove::detail
