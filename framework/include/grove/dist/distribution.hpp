// distribution: this node as a node of an Erlang cluster (docs/concepts/distribution.md). It
// registers its name with epmd, listens, and speaks the Erlang distribution protocol (the
// version-6 handshake, 4-byte framed control messages, ticks) over its own non-blocking
// sockets on one I/O thread. Erlang nodes (and other Grove nodes) reach the node's processes:
//
//   grove::dist::distribution d(n, {.name = "grove", .cookie = "secret"});
//   % then, in erl -sname x -setcookie secret:
//   net_adm:ping('grove@HOST').                 % pong
//   gen_server:call({echo, 'grove@HOST'}, hi).  % a Grove gen_server handling dist::term
//
// What arrives for a local process: {'$gen_call', From, Req} becomes a Grove call of Req as a
// dist::term (the reply goes back to the caller), {'$gen_cast', Req} a cast of the term, any
// other message a dist::term sent to the process. Monitors from remote processes (by pid or by
// registered name) are kept, and end with the exact exit reason (or noproc at once). One
// connection per peer; a connection that receives nothing for `tick_time` is closed.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <grove/dist/term.hpp>
#include <grove/runtime/exit_reason.hpp>
#include <grove/runtime/pid.hpp>

namespace grove {
class node;
}

namespace grove::dist {

struct dist_options {
  // The node's name: "NAME" (completed with this host's short name, as `erl -sname`; with
  // `longnames`, its fully qualified name, as `erl -name`) or "NAME@HOST".
  std::string name;
  bool longnames = false;
  std::string cookie;   // never logged
  bool hidden = false;  // a hidden node is in nodes(hidden) of its peers, not in nodes()
  // A peer that sends nothing (not even a tick) for this long is disconnected; ticks go out
  // every quarter of it (Erlang's net_ticktime, 60 s by default).
  std::chrono::milliseconds tick_time = std::chrono::seconds(60);
  // The listening port: any free one (0, 0), or the first free one in [min, max].
  int port_min = 0, port_max = 0;
  int epmd_port = 4369;
  // As erl does: when epmd is not running, start it (`epmd -daemon`) and register again.
  bool start_epmd = true;
  // Bytes queued to one peer before the connection is given up (as a lost connection).
  std::size_t max_queue = 64 << 20;
  // The largest frame accepted from a peer; a larger one closes the connection.
  std::size_t max_frame = 64 << 20;
  std::chrono::milliseconds handshake_timeout = std::chrono::seconds(7);
};

struct dist_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A connected peer.
struct peer_info {
  std::string name;
  bool hidden = false;
  std::uint32_t creation = 0;
  std::uint64_t flags = 0;
  bool initiated = false;  // this node connected to it (rather than it to us)
};

// What a node monitor receives, as Erlang's {nodedown, Node} and {nodeup, Node}.
struct nodedown {
  std::string node;
};
struct nodeup {
  std::string node;
};

class distribution {
 public:
  // Registers with epmd and starts listening; throws dist_error when it cannot (no epmd, the
  // name is taken, no free port, no cookie, the node already has a distribution). The node's
  // scheduler threads then read its connections: n must outlive it, and it is made and
  // destroyed outside n's processes.
  distribution(node& n, dist_options opts);
  ~distribution();  // closes every connection and leaves epmd
  distribution(const distribution&) = delete;
  distribution& operator=(const distribution&) = delete;

  const std::string& name() const noexcept;  // NAME@HOST
  std::uint32_t creation() const noexcept;
  int port() const noexcept;

  // Connects to `peer` (NAME@HOST) as net_kernel:connect_node does: true once connected (or if
  // already), false when it cannot (with the reason in `error` if given). From a process or any
  // thread; a process waits without holding its scheduler.
  bool connect(const std::string& peer, std::string* error = nullptr);
  // Closes the connection to `peer` (erlang:disconnect_node): returns once it is closed and its
  // noconnection signals and nodedown messages are sent.
  void disconnect(const std::string& peer);
  // Connected peers (visible and hidden).
  std::vector<peer_info> peers() const;

  // How a pid looks to other nodes, and back. Other nodes' processes are grove::pids too: send,
  // call, cast, link, monitor and exit reach them (messages as dist::term). nullopt for a pid of
  // an earlier instance of this node (a stale creation).
  erl_pid to_erl(const pid& p) const;
  std::optional<pid> from_erl(const erl_pid& p) const;
  // {Name, Node} as a pid-like address (what server_ref(name, node) resolves to): connects if
  // need be; for this node's own name, the local holder of the name.
  std::optional<pid> address(const std::string& name, const std::string& node);

  // erlang:monitor_node(Node, Flag) for process `watcher`: with true, one nodedown{peer} when
  // the connection to `peer` is lost, or at once when there is none and connecting fails; each
  // call is one monitor (two calls, two messages). With false, one of them is taken away.
  // Monitoring this node itself does nothing.
  void monitor_node(const pid& watcher, const std::string& peer, bool flag);
  // net_kernel:monitor_nodes(Flag): `watcher` gets nodeup{} and nodedown{} for every peer that
  // connects or disconnects from now on (hidden ones too with `hidden`, as {node_type, all}),
  // until it asks again with false or ends.
  void monitor_nodes(const pid& watcher, bool flag, bool hidden = false);

  struct impl;

 private:
  std::shared_ptr<impl> impl_;
};

// What is wrong with a node name given as NAME or NAME@HOST ("" when nothing): NAME is 1 to 255
// letters, digits, _ or -; HOST, when given, is not empty.
std::string node_name_problem(const std::string& name);

// The distribution `n` is part of (the one made with it that still lives), or nullptr.
distribution* find_distribution(const node& n);

// The same for the calling process (from a process), through its node's distribution; on a node
// without one, monitor_node(node, true) delivers nodedown at once (there is no connection to
// make), as erl does on a node that is not alive.
void monitor_node(const std::string& node, bool flag = true);
void monitor_nodes(bool flag, bool hidden = false);

// An exit reason as Erlang writes it: normal, shutdown, {shutdown,Detail}, killed, noproc,
// noconnection, timeout, {error,<<"type: what">>} for a crash, or the atom of a named reason.
term reason_term(const exit_reason& r);
// And back: an exit reason from another node (its term is kept: reason_term gives it again).
exit_reason reason_from_term(const term& t);

}  // namespace grove::dist
