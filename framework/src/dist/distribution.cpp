// The distribution layer's connections (docs/concepts/distribution.md): one I/O thread runs
// Boost.Asio for the listener, the handshakes (coroutines), the tickers and the closing of
// connections. An established connection's socket leaves Asio for an epoll set of the layer's
// own, which the node's scheduler threads wait on when idle and look at between processes
// (grove/detail/remote.hpp's io_poller): the thread that reads a frame decodes it and acts on it
// at once (delivers the message, records the link or monitor, answers net_kernel), and runs the
// process it woke, with no hand-over between threads. The I/O thread reads when no scheduler
// thread has looked for a while (all busy with long turns). Other nodes' processes are pids of
// remote node ids, whose carrier (grove/detail/remote.hpp) encodes what the runtime sends them; a
// process's frames are held on its scheduler thread and written together when the thread moves
// on; what the socket does not take at once is sent when the epoll set says it can take more.
#include <utility>  // before Asio: its awaitable.hpp uses std::exchange without including it

// Boost 1.74's Asio sees C++20 coroutines in GCC only (with clang it looks for the Coroutines
// TS): clang 14 with libstdc++ has them too.
#if defined(__clang__) && defined(__cpp_impl_coroutine) && !defined(BOOST_ASIO_HAS_CO_AWAIT)
#if __has_include(<coroutine>)
#define BOOST_ASIO_HAS_CO_AWAIT 1
#endif
#endif

#include <grove/dist/distribution.hpp>

#include <fcntl.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <netdb.h>
#include <cstring>
#include <exception>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include <grove/behaviours/gen_server.hpp>
#include <grove/behaviours/name_registry.hpp>
#include <grove/detail/remote.hpp>
#include <grove/dist/epmd.hpp>
#include <grove/runtime/blocking.hpp>
#include <grove/runtime/events.hpp>
#include <grove/runtime/node.hpp>
#include <grove/runtime/process.hpp>

extern char** environ;

namespace grove::dist {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using asio::use_awaitable;
using steady = std::chrono::steady_clock;

namespace {

// ---- protocol constants (erts/emulator/beam/dist.h, OTP 25) ------------------------------------

constexpr std::uint64_t flag_published = 0x1;
constexpr std::uint64_t flag_extended_references = 0x4;
constexpr std::uint64_t flag_dist_monitor = 0x8;
constexpr std::uint64_t flag_fun_tags = 0x10;
constexpr std::uint64_t flag_dist_monitor_name = 0x20;
constexpr std::uint64_t flag_new_fun_tags = 0x80;
constexpr std::uint64_t flag_extended_pids_ports = 0x100;
constexpr std::uint64_t flag_export_ptr_tag = 0x200;
constexpr std::uint64_t flag_bit_binaries = 0x400;
constexpr std::uint64_t flag_new_floats = 0x800;
constexpr std::uint64_t flag_utf8_atoms = 0x10000;
constexpr std::uint64_t flag_map_tag = 0x20000;
constexpr std::uint64_t flag_big_creation = 0x40000;
constexpr std::uint64_t flag_send_sender = 0x80000;
constexpr std::uint64_t flag_handshake_23 = 0x1000000;
constexpr std::uint64_t flag_unlink_id = 0x2000000;
constexpr std::uint64_t flag_mandatory_25_digest = 0x4000000;
constexpr std::uint64_t flag_v4_nc = 1ULL << 34;
constexpr std::uint64_t flag_alias = 1ULL << 35;

constexpr std::uint64_t mandatory_25 = flag_extended_references | flag_fun_tags | flag_extended_pids_ports |
                                       flag_utf8_atoms | flag_new_fun_tags | flag_big_creation | flag_new_floats |
                                       flag_map_tag | flag_export_ptr_tag | flag_bit_binaries | flag_handshake_23;
// What a peer must have: OTP 25's mandatory set, and 32-bit pid numbers (OTP 24 on).
constexpr std::uint64_t required_flags = mandatory_25 | flag_v4_nc;
// Never DIST_HDR_ATOM_CACHE (frames are then 'p' | control | message) nor fragments.
constexpr std::uint64_t our_flags = mandatory_25 | flag_v4_nc | flag_unlink_id | flag_dist_monitor |
                                    flag_dist_monitor_name | flag_alias | flag_send_sender;

enum control_tag : std::int64_t {
  ctl_link = 1,
  ctl_send = 2,
  ctl_exit = 3,
  ctl_reg_send = 6,
  ctl_exit2 = 8,
  ctl_send_tt = 12,
  ctl_exit_tt = 13,
  ctl_reg_send_tt = 16,
  ctl_exit2_tt = 18,
  ctl_monitor = 19,
  ctl_demonitor = 20,
  ctl_monitor_exit = 21,
  ctl_send_sender = 22,
  ctl_send_sender_tt = 23,
  ctl_alias_send = 33,
  ctl_alias_send_tt = 34,
  ctl_unlink_id = 35,
  ctl_unlink_id_ack = 36,
};

constexpr char pass_through = 'p';

// ---- bytes ------------------------------------------------------------------------------------

void put16(std::string& s, std::uint64_t v) {
  for (int shift : {8, 0}) s += static_cast<char>((v >> shift) & 0xff);
}
void put32(std::string& s, std::uint64_t v) {
  for (int shift : {24, 16, 8, 0}) s += static_cast<char>((v >> shift) & 0xff);
}
void put64(std::string& s, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) s += static_cast<char>((v >> shift) & 0xff);
}
std::uint64_t get(const std::string& s, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + static_cast<std::size_t>(i)]);
  return v;
}

std::string framed16(const std::string& body) {
  std::string s;
  put16(s, body.size());
  return s + body;
}

std::string frame_bytes(const term& control, const term* message) {
  std::string body(1, 'p');
  body += encode(control);
  if (message) body += encode(*message);
  std::string frame;
  put32(frame, body.size());
  return frame + body;
}

std::string short_host() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  std::string h(buf);
  return h.substr(0, h.find('.'));
}

std::string long_host() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  addrinfo hints{};
  hints.ai_flags = AI_CANONNAME;
  addrinfo* res = nullptr;
  std::string h(buf);
  if (getaddrinfo(buf, nullptr, &hints, &res) == 0) {
    if (res && res->ai_canonname) h = res->ai_canonname;
    freeaddrinfo(res);
  }
  return h;
}

term atom_t(std::string s) { return term::make_atom(std::move(s)); }
term tuple_t(std::vector<term> e) { return term::make_tuple(std::move(e)); }

bool is_atom(const term& t, std::string_view name) {
  auto* a = t.get_if<atom>();
  return a && a->name == name;
}

// The flag names a refused peer lacks, for the event.
std::string missing_flags(std::uint64_t flags) {
  const std::uint64_t missing = required_flags & ~flags;
  std::ostringstream os;
  os << "the peer lacks required distribution flags 0x" << std::hex << missing
     << (missing & flag_v4_nc ? " (V4_NC: OTP 24 or later is needed)" : "");
  return os.str();
}

std::uint64_t effective_flags(std::uint64_t f) { return f & flag_mandatory_25_digest ? f | mandatory_25 : f; }

struct handshake_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One frame from a peer.
struct inbound {
  term control;
  std::optional<term> message;
};

}  // namespace

// ---- one connection -----------------------------------------------------------------------------

struct connection : std::enable_shared_from_this<connection> {
  connection(distribution::impl& d, tcp::socket s);

  distribution::impl& d;
  tcp::socket sock;
  asio::steady_timer ticker;
  peer_info peer;
  bool up = false, closed = false;         // I/O thread
  bool superseded = false;                 // our attempt gave way to the peer's (simultaneous connect)
  std::atomic<std::int64_t> last_read{0};  // steady ns of the last bytes read
  // Reading (established): by whoever holds d.rmx, a scheduler thread or the I/O thread.
  std::unique_ptr<char[]> rbuf;  // bytes read (rlen of them), not yet a whole frame; not zeroed
  std::size_t rcap = 0, rlen = 0;
  bool reading = false;  // in d's epoll set
  // Writing, from any thread: a frame goes straight to the socket (non-blocking) when nothing
  // waits before it; what does not fit waits in `pending`, sent when the socket can take more
  // (the epoll set reports it: `writing`).
  std::mutex wm;  // guards what follows, and the descriptor against its closing (taken after d.rmx)
  std::string pending;
  bool writing = false, wclosed = false;
  bool held = false;               // a scheduler thread will write `pending` when it moves on
  int fd = -1;                     // the established connection's socket, out of Asio (also read under d.rmx)
  std::atomic<bool> wrote{false};  // since the last tick

  void write(std::string bytes);
  // Sends `pending` now (wm held): what the socket takes; the rest when it can take more.
  void send_pending(std::unique_lock<std::mutex>& lk);
  void send_more();                    // the socket can take more (d.rmx held)
  void watch(bool out) noexcept;       // what the epoll set reports for it (wm held)
  void close(const std::string& why);  // I/O thread
};

struct distribution::impl : std::enable_shared_from_this<distribution::impl> {
  impl(node& nd, dist_options opts) : n(nd), o(std::move(opts)), acceptor(io) {}

  node& n;
  dist_options o;
  std::string full_name, short_name;
  std::uint32_t creation = 0;
  int port = 0;
  asio::io_context io;
  tcp::acceptor acceptor;
  std::optional<epmd_registration> registration;
  std::thread thread;
  std::mt19937 rng{std::random_device{}()};  // I/O thread only

  // ---- reading established connections -------------------------------------------------------------
  // Their sockets, in an epoll set that the node's scheduler threads wait on (input_poller); the
  // I/O thread reads when none has looked for a while (fallback).
  const int epfd = ::epoll_create1(EPOLL_CLOEXEC);
  std::mutex rmx;  // one reader at a time; guards the two below and every connection's read state
  std::map<connection*, std::shared_ptr<connection>> readers;  // what the epoll set refers to
  // What peek() found, for the next read_ready (rmx; a connection that closes clears it).
  epoll_event found[32];
  int found_n = 0;
  struct input_poller final : detail::io_poller {
    explicit input_poller(impl& i) : d(i) {}
    impl& d;
    int fd() const noexcept override { return d.epfd; }
    bool peek() noexcept override { return d.peek(); }
    void ready() noexcept override { d.read_ready(); }
  } poller{*this};
  asio::steady_timer fallback{io};
  std::chrono::milliseconds fallback_every{1};
  ~impl() {
    if (epfd >= 0) ::close(epfd);
  }
  static std::int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch()).count();
  }

  // Looks at the epoll set; what it reports waits for read_ready (rmx taken: another thread
  // reads, this one need not).
  bool peek() noexcept {
    std::unique_lock lk(rmx, std::try_to_lock);
    if (!lk) return false;
    if (found_n == 0) found_n = std::max(0, ::epoll_wait(epfd, found, 32, 0));
    return found_n > 0;
  }

  // Reads what peek() found, or else what the epoll set reports (rmx free; else another thread
  // reads: nothing to do).
  void read_ready() noexcept {
    std::unique_lock lk(rmx, std::try_to_lock);
    if (!lk) return;
    epoll_event ev[32];
    int k = std::exchange(found_n, 0);
    if (k > 0)
      std::copy_n(found, k, ev);
    else
      k = ::epoll_wait(epfd, ev, 32, 0);
    for (int i = 0; i < k; ++i) {
      auto* c = static_cast<connection*>(ev[i].data.ptr);
      if (!c->reading) continue;  // stopped earlier in this round
      try {
        if (ev[i].events & EPOLLOUT) c->send_more();
        if (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) read_from(*c);
      } catch (const std::exception& e) {  // out of memory, say: this connection ends
        if (c->reading) stop_reading(*c, e.what());
      }
    }
  }

  // Reads what has arrived (up to 256 KiB, in 64 KiB reads) and takes every whole frame in it.
  void read_from(connection& c) {
    constexpr std::size_t chunk = 65536;
    for (int round = 0; round < 4; ++round) {
      if (c.rcap - c.rlen < chunk) {  // room for one more read; a long frame's bytes are kept
        const std::size_t cap = std::max(c.rcap * 2, c.rlen + chunk);
        auto bigger = std::make_unique_for_overwrite<char[]>(cap);
        if (c.rlen) std::memcpy(bigger.get(), c.rbuf.get(), c.rlen);
        c.rbuf = std::move(bigger);
        c.rcap = cap;
      }
      const ssize_t got = ::recv(c.fd, c.rbuf.get() + c.rlen, chunk, MSG_DONTWAIT);
      if (got <= 0) {
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        stop_reading(c, got == 0 ? "the peer closed the connection" : std::string(std::strerror(errno)));
        return;
      }
      c.rlen += static_cast<std::size_t>(got);
      c.last_read.store(steady_ns(), std::memory_order_relaxed);
      std::string why;
      std::size_t at = 0;
      const std::string_view bytes(c.rbuf.get(), c.rlen);
      while (why.empty() && bytes.size() - at >= 4) {
        const auto* h = reinterpret_cast<const unsigned char*>(bytes.data() + at);
        const std::size_t len = (std::size_t{h[0]} << 24) | (std::size_t{h[1]} << 16) | (std::size_t{h[2]} << 8) | h[3];
        if (len == 0) {  // a tick
          at += 4;
          continue;
        }
        if (len > o.max_frame) {
          why = "a frame of " + std::to_string(len) + " bytes (more than max_frame)";
          break;
        }
        if (bytes.size() - at - 4 < len) break;
        why = take_frame(c, bytes.substr(at + 4, len));
        at += 4 + len;
      }
      if (!why.empty()) {
        stop_reading(c, why);
        return;
      }
      if (at > 0 && at < c.rlen) std::memmove(c.rbuf.get(), c.rbuf.get() + at, c.rlen - at);
      c.rlen -= at;
      if (static_cast<std::size_t>(got) < chunk) return;
    }
  }

  // Reading ends (rmx held); the I/O thread closes the connection.
  void stop_reading(connection& c, std::string why) {
    c.reading = false;
    ::epoll_ctl(epfd, EPOLL_CTL_DEL, c.fd, nullptr);
    asio::post(io, [self = c.shared_from_this(), why = std::move(why)] { self->close(why); });
  }

  // The I/O thread reads when no scheduler thread has looked for a while: every scheduler is
  // busy with a long turn. Looks again soon after reading, else less and less often.
  void watch_fallback() {
    fallback.expires_after(fallback_every);
    fallback.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      if (detail::io_polled(n, fallback_every)) {
        fallback_every = std::min(fallback_every * 2, std::chrono::milliseconds(20));
      } else {
        fallback_every = std::chrono::milliseconds(1);
        read_ready();
      }
      watch_fallback();
    });
  }

  mutable std::mutex m;                                           // guards the four below
  std::map<std::string, std::shared_ptr<connection>> up;          // by peer name
  std::map<std::string, std::shared_ptr<connection>> connecting;  // our own attempts, by peer name
  std::map<std::string, std::shared_ptr<connection>> accepted;    // acked, not yet established
  std::map<std::string, std::vector<std::shared_ptr<std::promise<std::string>>>> waiters;

  // ---- node monitors (monitor_node, monitor_nodes) -------------------------------------------------
  std::mutex nm;                                  // guards the two below; taken before m when both are
  std::multimap<std::string, pid> node_monitors;  // by peer: one entry per monitor_node(peer, true)
  std::map<pid, bool> node_watchers;              // monitor_nodes(true): hidden peers too?

  // A peer came up or went down: its messages to the watchers (and, when down, to its monitors,
  // which end). On the I/O thread, in the order the connections changed.
  void nodes_changed(const std::string& peer, bool hidden, bool now_up) {
    std::vector<pid> to;
    {
      std::lock_guard lk(nm);
      if (!now_up) {
        auto [lo, hi] = node_monitors.equal_range(peer);
        for (auto it = lo; it != hi; ++it) to.push_back(it->second);
        node_monitors.erase(lo, hi);
      }
      for (auto it = node_watchers.begin(); it != node_watchers.end();) {
        if (!alive(it->first)) {
          it = node_watchers.erase(it);
          continue;
        }
        if (!hidden || it->second) to.push_back(it->first);
        ++it;
      }
    }
    for (const pid& p : to) {
      if (now_up)
        grove::send(p, nodeup{peer});
      else
        grove::send(p, nodedown{peer});
    }
  }

  // ---- other nodes' pids (grove/detail/remote.hpp) ------------------------------------------------
  // A process of another node is pid(remote id, number, serial + 1), with one remote id per node
  // instance (name and creation). Creation 0 stands for "the node of that name, whichever
  // instance": its pids pid(id, name_bit | index, 1) are the addresses {Name, Node}.
  static constexpr std::uint32_t name_bit = 0x80000000u;
  struct out_monitor {
    pid local, remote;
  };
  mutable std::mutex rm;  // guards what follows
  std::map<std::pair<std::string, std::uint32_t>, std::uint32_t> remote_ids;
  std::unordered_map<std::uint32_t, std::pair<std::string, std::uint32_t>> remotes_by_id;
  std::vector<std::string> reg_names;
  std::map<std::string, std::uint32_t> reg_index;
  std::set<std::pair<pid, pid>> links;                          // (local, remote), both ways
  std::unordered_map<std::uint64_t, out_monitor> out_monitors;  // by ref (a call's alias too)
  // Monitors other nodes' processes hold on ours, by the ref kept in the local monitored_by.
  struct in_monitor {
    pid local, remote;
    term remote_ref, target;  // the target as the remote named it (a pid or a name)
    std::string peer;
  };
  std::unordered_map<std::uint64_t, in_monitor> in_monitors;
  std::map<std::string, std::uint64_t> in_by_ref;  // the encoded remote ref → ours
  // Calls from other nodes waiting for a local server's reply, by the tag the server replies to.
  struct pending_reply {
    term caller, tag;
    std::string peer, ref_key;  // ref_key: the encoded alias ref, "" without one
  };
  std::unordered_map<std::uint64_t, pending_reply> pending_replies;
  std::multimap<std::string, std::uint64_t> replies_by_ref;
  void drop_reply(std::uint64_t id) {
    std::lock_guard lk(rm);
    auto it = pending_replies.find(id);
    if (it == pending_replies.end()) return;
    auto [lo, hi] = replies_by_ref.equal_range(it->second.ref_key);
    for (auto r = lo; r != hi; ++r) {
      if (r->second == id) {
        replies_by_ref.erase(r);
        break;
      }
    }
    pending_replies.erase(it);
  }
  std::uint64_t next_unlink_id = 1;

  std::uint32_t remote_id(const std::string& node, std::uint32_t node_creation);
  std::optional<std::pair<std::string, std::uint32_t>> remote_of(std::uint32_t id) const {
    std::lock_guard lk(rm);
    auto it = remotes_by_id.find(id);
    if (it == remotes_by_id.end()) return std::nullopt;
    return it->second;
  }
  // A pid of a term: this node's (nullopt for a stale creation) or another's.
  std::optional<pid> pid_of(const erl_pid& p) {
    if (p.node == full_name) {
      if (p.creation != creation) return std::nullopt;
      return pid(n.id(), p.id, p.serial);
    }
    if (p.serial == ~std::uint32_t{0} || p.node.find('@') == std::string::npos) return std::nullopt;
    return pid(remote_id(p.node, p.creation), p.id, p.serial + 1);
  }
  // How a pid looks to other nodes: a pid term, or an atom for an address {Name, Node}.
  std::optional<term> term_of(const pid& p) const {
    if (p.node() == n.id()) return term(erl_pid{full_name, p.slot(), p.generation(), creation});
    auto r = remote_of(p.node());
    if (!r) return std::nullopt;
    if (p.slot() & name_bit) {
      std::lock_guard lk(rm);
      const std::uint32_t i = p.slot() & ~name_bit;
      if (i >= reg_names.size()) return std::nullopt;
      return atom_t(reg_names[i]);
    }
    if (r->second == 0) return std::nullopt;
    return term(erl_pid{r->first, p.slot(), p.generation() - 1, r->second});
  }
  // This node's refs for monitors and call aliases: Grove's 64-bit ref in three words.
  erl_ref ref_of(std::uint64_t id) const {
    return erl_ref{full_name,
                   creation,
                   {static_cast<std::uint32_t>(id & 0x3ffff), static_cast<std::uint32_t>(id >> 18),
                    static_cast<std::uint32_t>(id >> 50)}};
  }
  std::optional<std::uint64_t> id_of(const term& t) const {
    const auto* r = t.get_if<erl_ref>();
    if (!r || r->node != full_name || r->creation != creation || r->ids.size() != 3) return std::nullopt;
    return (std::uint64_t{r->ids[0]} & 0x3ffff) | (std::uint64_t{r->ids[1]} << 18) | (std::uint64_t{r->ids[2]} << 50);
  }
  // The address {Name, Node}; `node` this node's name: the local holder of the name, if any.
  std::optional<pid> address_of(const std::string& name, const std::string& node);
  // One frame to the node of remote id `to`: false if it is not connected (or is another
  // instance than the pid's). With `auto_connect` (what a process starts: a send, a link, a
  // monitor, an exit signal), a node not connected is connected to first, as Erlang does; the
  // caller waits for it (a process without holding its scheduler thread).
  bool frame_to(std::uint32_t to, const term& control, const term* message = nullptr, bool auto_connect = false) {
    auto r = remote_of(to);
    if (!r) return false;
    std::string bytes = frame_bytes(control, message);
    std::weak_ptr<connection> wc;
    for (bool tried = false;; tried = true) {
      {
        std::lock_guard lk(m);
        auto it = up.find(r->first);
        if (it != up.end()) {
          if (r->second != 0 && !same_creation(*it->second, r->second)) return false;
          wc = it->second;
          break;
        }
      }
      // Not from the I/O thread (it makes the connection), nor in a catch block (a process must
      // not suspend there): then the frame is dropped as for a node not connected.
      if (tried || !auto_connect || std::this_thread::get_id() == thread.get_id() || std::current_exception())
        return false;
      distribution* self = find_distribution(n);
      if (!self || !self->connect(r->first)) return false;
    }
    post_write(wc, std::move(bytes));
    return true;
  }
  static bool same_creation(const connection& c, std::uint32_t cr);
  // What the runtime hands the carrier (grove/detail/remote.hpp), from any thread.
  bool push(const pid& to, std::unique_ptr<detail::envelope> e);
  void link(const pid& from, const pid& to);
  void unlink(const pid& from, const pid& to);
  void monitor(const pid& from, const pid& to, std::uint64_t ref);
  void demonitor(const pid& from, const pid& to, std::uint64_t ref);
  // The connection to `peer` is gone: noconnection to every local process linked to or
  // monitoring one of its processes.
  void connection_lost(const std::string& peer, std::uint32_t peer_creation);

  void publish(event_kind k, const std::string& peer, const std::string& text) {
    event e;
    e.kind = k;
    e.label = peer;
    e.text = text;
    events(n).publish(std::move(e));
  }

  void resolve_waiters(const std::string& peer, const std::string& result) {
    std::vector<std::shared_ptr<std::promise<std::string>>> w;
    {
      std::lock_guard lk(m);
      if (auto it = waiters.find(peer); it != waiters.end()) {
        w = std::move(it->second);
        waiters.erase(it);
      }
    }
    for (auto& p : w) p->set_value(result);
  }

  // From any thread: frames to a connection (dropped if it has gone).
  void post_write(const std::weak_ptr<connection>& wc, std::string bytes) {
    if (auto c = wc.lock()) c->write(std::move(bytes));
  }

  // ---- handshake ------------------------------------------------------------------------------

  asio::awaitable<std::string> read16(tcp::socket& s) {
    unsigned char h[2];
    co_await asio::async_read(s, asio::buffer(h), use_awaitable);
    std::string body((std::size_t{h[0]} << 8) | h[1], '\0');
    co_await asio::async_read(s, asio::buffer(body), use_awaitable);
    co_return body;
  }
  asio::awaitable<void> write16(tcp::socket& s, const std::string& body) {
    const std::string bytes = framed16(body);
    co_await asio::async_write(s, asio::buffer(bytes), use_awaitable);
  }
  std::string name_packet() const {
    std::string p(1, 'N');
    put64(p, our_flags | (o.hidden ? 0 : flag_published));
    put32(p, creation);
    put16(p, full_name.size());
    return p + full_name;
  }
  std::string challenge_packet(std::uint32_t challenge) const {
    std::string p(1, 'N');
    put64(p, our_flags | (o.hidden ? 0 : flag_published));
    put32(p, challenge);
    put32(p, creation);
    put16(p, full_name.size());
    return p + full_name;
  }

  // Closes the socket if the handshake is not done in time.
  std::shared_ptr<asio::steady_timer> guard(const std::shared_ptr<connection>& c) {
    auto t = std::make_shared<asio::steady_timer>(io, o.handshake_timeout);
    t->async_wait([c](const boost::system::error_code& ec) {
      if (!ec) {
        boost::system::error_code ignore;
        c->sock.close(ignore);
      }
    });
    return t;
  }

  asio::awaitable<void> accept_loop() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket s = co_await acceptor.async_accept(asio::redirect_error(use_awaitable, ec));
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      if (ec) {  // out of descriptors, for instance: wait a little rather than spin
        asio::steady_timer t(io, std::chrono::milliseconds(100));
        co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
        continue;
      }
      auto c = std::make_shared<connection>(*this, std::move(s));
      asio::co_spawn(io, accept_handshake(c), asio::detached);
    }
  }

  asio::awaitable<void> accept_handshake(std::shared_ptr<connection> c) {
    auto timer = guard(c);
    std::string peer = "(unknown)";
    try {
      c->sock.set_option(tcp::no_delay(true));
      std::string p = co_await read16(c->sock);
      if (p.empty() || p[0] != 'N') {
        throw handshake_failure(p.size() && p[0] == 'n' ? "the peer offered the version-5 handshake (only 6 is spoken)"
                                                        : "not a distribution handshake");
      }
      if (p.size() < 15) throw handshake_failure("short name message");
      const std::uint64_t flags = effective_flags(get(p, 1, 8));
      const auto peer_creation = static_cast<std::uint32_t>(get(p, 9, 4));
      const std::size_t len = get(p, 13, 2);
      if (15 + len != p.size()) throw handshake_failure("malformed name message");
      peer = p.substr(15);
      if (peer.find('@') == std::string::npos) throw handshake_failure("the peer's name has no @host");
      if ((flags & required_flags) != required_flags) {
        co_await write16(c->sock, "snot_allowed");
        throw handshake_failure(missing_flags(flags));
      }
      std::string status = "ok";
      std::shared_ptr<connection> old;
      {
        std::lock_guard lk(m);
        if (auto it = up.find(peer); it != up.end()) {
          status = "alive";
          old = it->second;
        } else if (auto own = connecting.find(peer); own != connecting.end()) {
          // Both sides are connecting: the attempt of the node with the greater name wins.
          status = peer > full_name ? "ok_simultaneous" : "nok";
          if (status == "ok_simultaneous") {
            // Ours gives way, wherever its handshake is: its waiters are answered when this
            // connection is up.
            own->second->superseded = true;
            boost::system::error_code ignore;
            own->second->sock.close(ignore);
            connecting.erase(own);
          }
        }
      }
      co_await write16(c->sock, "s" + status);
      if (status == "nok") {
        c->close("");  // ours goes on
        co_return;
      }
      if (status == "alive") {
        const std::string answer = co_await read16(c->sock);
        if (answer != "strue") {
          c->close("");
          co_return;
        }
        old->close("replaced by a new connection from the same node (it restarted)");
      }
      const auto challenge = static_cast<std::uint32_t>(rng());
      co_await write16(c->sock, challenge_packet(challenge));
      const std::string reply = co_await read16(c->sock);
      if (reply.size() != 21 || reply[0] != 'r') throw handshake_failure("malformed challenge reply");
      if (reply.substr(5) != handshake_digest(challenge, o.cookie)) {
        throw handshake_failure("refused: the peer does not have this node's cookie");
      }
      // Between the ack and established() (the ack's write completing), the peer already counts
      // the connection up: a disconnect meanwhile closes it too (accepted).
      {
        std::lock_guard lk(m);
        accepted[peer] = c;
      }
      co_await write16(c->sock, "a" + handshake_digest(static_cast<std::uint32_t>(get(reply, 1, 4)), o.cookie));
      timer->cancel();
      {
        std::lock_guard lk(m);
        if (auto it = accepted.find(peer); it != accepted.end() && it->second == c) accepted.erase(it);
      }
      if (c->closed) co_return;  // disconnected meanwhile
      established(c, peer_info{peer, (flags & flag_published) == 0, peer_creation, flags, false});
    } catch (const std::exception& e) {
      timer->cancel();
      {
        std::lock_guard lk(m);
        if (auto it = accepted.find(peer); it != accepted.end() && it->second == c) accepted.erase(it);
      }
      publish(event_kind::connection_failed, peer, std::string("handshake from ") + peer + ": " + describe(e));
      c->close("");
    }
  }

  static std::string describe(const std::exception& e) {
    if (auto* se = dynamic_cast<const boost::system::system_error*>(&e)) {
      if (se->code() == asio::error::operation_aborted || se->code() == asio::error::bad_descriptor) return "timed out";
      if (se->code() == asio::error::eof) return "the peer closed the connection";
      return se->code().message();
    }
    return e.what();
  }

  asio::awaitable<void> connect_handshake(std::shared_ptr<connection> c, std::string peer, std::string host,
                                          int peer_port) {
    auto timer = guard(c);
    std::string failure;
    try {
      tcp::resolver resolver(io);
      auto endpoints = co_await resolver.async_resolve(host, std::to_string(peer_port), use_awaitable);
      co_await asio::async_connect(c->sock, endpoints, use_awaitable);
      c->sock.set_option(tcp::no_delay(true));
      co_await write16(c->sock, name_packet());
      const std::string status = co_await read16(c->sock);
      if (status == "salive") {
        // The peer has a connection to us: a stale one (continue, it drops it) unless it is up
        // here too (then that one stays and this attempt ends).
        bool have = false;
        {
          std::lock_guard lk(m);
          have = up.count(peer) > 0;
        }
        co_await write16(c->sock, have ? "sfalse" : "strue");
        if (have) {
          timer->cancel();
          forget_attempt(peer, c);
          c->close("");
          resolve_waiters(peer, "");
          co_return;
        }
      } else if (status == "snok") {
        // The peer is connecting to us at the same time and its attempt wins: the waiters are
        // answered when that connection is up (or time out).
        timer->cancel();
        forget_attempt(peer, c);
        c->close("");
        co_return;
      } else if (status != "sok" && status != "sok_simultaneous") {
        throw handshake_failure(status == "snot_allowed" ? "the peer does not allow this node"
                                                         : "the peer refused (" + status + ")");
      }
      const std::string p = co_await read16(c->sock);
      if (p.size() < 19 || p[0] != 'N') throw handshake_failure("malformed challenge");
      const std::uint64_t flags = effective_flags(get(p, 1, 8));
      const auto challenge = static_cast<std::uint32_t>(get(p, 9, 4));
      const auto peer_creation = static_cast<std::uint32_t>(get(p, 13, 4));
      if (19 + get(p, 17, 2) != p.size()) throw handshake_failure("malformed challenge");
      if (p.substr(19) != peer) throw handshake_failure("the node answering is " + p.substr(19));
      if ((flags & required_flags) != required_flags) throw handshake_failure(missing_flags(flags));
      const auto ours = static_cast<std::uint32_t>(rng());
      std::string reply(1, 'r');
      put32(reply, ours);
      co_await write16(c->sock, reply + handshake_digest(challenge, o.cookie));
      const std::string ack = co_await read16(c->sock);
      if (ack.size() != 17 || ack[0] != 'a' || ack.substr(1) != handshake_digest(ours, o.cookie)) {
        throw handshake_failure("refused: the cookies differ");
      }
      timer->cancel();
      forget_attempt(peer, c);
      established(c, peer_info{peer, (flags & flag_published) == 0, peer_creation, flags, true});
      co_return;
    } catch (const handshake_failure& e) {
      failure = e.what();
    } catch (const std::exception& e) {
      failure = describe(e);
    }
    timer->cancel();
    forget_attempt(peer, c);
    c->close("");
    if (c->superseded) co_return;  // the peer's own attempt won: no failure
    // A peer that refused because the cookies differ closes before its status: say so.
    if (failure == "the peer closed the connection") failure += " during the handshake (a different cookie?)";
    publish(event_kind::connection_failed, peer, "connecting to " + peer + ": " + failure);
    resolve_waiters(peer, failure);
  }

  void forget_attempt(const std::string& peer, const std::shared_ptr<connection>& c) {
    std::lock_guard lk(m);
    if (auto it = connecting.find(peer); it != connecting.end() && it->second == c) connecting.erase(it);
  }

  // ---- an established connection ----------------------------------------------------------------

  void established(const std::shared_ptr<connection>& c, peer_info info) {
    {
      std::lock_guard lk(m);
      if (up.count(info.name)) {  // lost a race with the other direction
        c->close("");
        return;
      }
      c->peer = info;
      c->up = true;
      up[info.name] = c;
    }
    // The socket leaves Asio for the epoll set: no Asio wake-up for each frame that arrives.
    boost::system::error_code ec;
    const int fd = c->sock.release(ec);
    if (ec || fd < 0) {
      c->close("cannot take the socket from Asio: " + ec.message());
      return;
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    c->last_read.store(steady_ns(), std::memory_order_relaxed);
    {
      std::lock_guard lk(c->wm);
      c->fd = fd;
    }
    tick(c);
    nodes_changed(info.name, info.hidden, true);
    publish(event_kind::nodeup, info.name, info.hidden ? "hidden" : "visible");
    {  // read from now on: nothing the peer sends is delivered before its nodeup
      std::lock_guard rl(rmx);
      c->reading = true;
      readers[c.get()] = c;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = c.get();
      ::epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    }
    resolve_waiters(info.name, "");
  }

  void tick(const std::shared_ptr<connection>& c) {
    const auto quarter = o.tick_time / 4;
    c->ticker.expires_after(quarter);
    c->ticker.async_wait([this, c](const boost::system::error_code& ec) {
      if (ec || c->closed) return;
      const auto since = std::chrono::nanoseconds(steady_ns() - c->last_read.load(std::memory_order_relaxed));
      if (since >= o.tick_time) {
        c->close("net_tick_timeout: nothing from the peer for " + std::to_string(o.tick_time.count()) + " ms");
        return;
      }
      if (!c->wrote.exchange(false)) c->write(std::string(4, '\0'));
      tick(c);
    });
  }

  // One frame's body: "" when taken, else why the connection must close.
  std::string take_frame(connection& c, std::string_view body) {
    if (body[0] != pass_through)
      return "a frame of unknown type " + std::to_string(static_cast<unsigned char>(body[0]));
    try {
      const std::string_view rest = body.substr(1);
      std::size_t used = 0;
      inbound in{decode_prefix(rest, used), std::nullopt};
      if (used < rest.size()) in.message = decode(rest.substr(used));
      try {
        handle(c, in);
      } catch (const std::exception&) {  // a full mailbox that refuses: the message is dropped
      }
    } catch (const decode_error& e) {
      return std::string("a malformed frame: ") + e.what();
    }
    return "";
  }

  // ---- what peers send (by the thread that read it: a scheduler thread, or the I/O thread) ---------------

  void handle(connection& c, const inbound& in);
  void deliver(connection& c, const pid& target, const term& msg);
  void reply(connection& c, const term& caller, const term& tag, const term& value, const term& sender);
  void out(connection& c, const term& control, const term* message = nullptr) {
    c.write(frame_bytes(control, message));
  }
};

connection::connection(distribution::impl& dist, tcp::socket s) : d(dist), sock(std::move(s)), ticker(dist.io) {}

namespace {
// The connections a process of this thread wrote to in its turn (flush_later).
thread_local std::vector<std::weak_ptr<connection>> held_back;
constexpr std::size_t hold_limit = 64 * 1024;  // more than this goes at once

void write_held_back() {
  auto all = std::move(held_back);
  held_back.clear();
  for (auto& w : all) {
    if (auto c = w.lock()) {
      std::unique_lock lk(c->wm);
      c->held = false;
      if (!c->writing && !c->wclosed && !c->pending.empty()) c->send_pending(lk);
    }
  }
}
}  // namespace

void connection::write(std::string bytes) {
  std::unique_lock lk(wm);
  if (wclosed || fd < 0) return;
  wrote.store(true, std::memory_order_relaxed);
  if (pending.size() + bytes.size() > d.o.max_queue) {
    wclosed = true;  // nothing more is queued; the I/O thread closes it
    lk.unlock();
    asio::post(d.io, [self = shared_from_this()] { self->close("more than max_queue bytes waiting to be sent"); });
    return;
  }
  pending += bytes;
  if (writing) return;  // sent after what waits, when the socket can take more
  // In a process: held until the thread moves on, so that what a process sends in its turn
  // (a call's monitor and request, a burst of messages) goes in one write.
  if (pending.size() < hold_limit && (held || detail::flush_later(&write_held_back))) {
    if (!held) {
      held = true;
      held_back.push_back(weak_from_this());
    }
    return;
  }
  send_pending(lk);
}

void connection::send_pending(std::unique_lock<std::mutex>& lk) {
  const ssize_t n = ::send(fd, pending.data(), pending.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n == static_cast<ssize_t>(pending.size())) {
    pending.clear();
    return;
  }
  if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
    const std::string why = std::string("write failed: ") + std::strerror(errno);
    wclosed = true;
    lk.unlock();
    asio::post(d.io, [self = shared_from_this(), why] { self->close(why); });
    return;
  }
  if (n > 0) pending.erase(0, static_cast<std::size_t>(n));
  writing = true;
  watch(true);
}

void connection::watch(bool out) noexcept {
  epoll_event ev{};
  ev.events = EPOLLIN | (out ? EPOLLOUT : 0u);
  ev.data.ptr = this;
  ::epoll_ctl(d.epfd, EPOLL_CTL_MOD, fd, &ev);  // fails (ENOENT) once reading has ended: closing
}

void connection::send_more() {
  std::unique_lock lk(wm);
  if (fd < 0) return;
  if (wclosed || !writing) {  // closing: nothing more goes
    watch(false);
    return;
  }
  writing = false;
  if (pending.empty()) {
    watch(false);
    return;
  }
  send_pending(lk);                              // all of it, or the rest when it can take more
  if (lk.owns_lock() && !writing) watch(false);  // (not owned: failed, closing)
}

// On the I/O thread. `why` empty: a handshake that did not complete (nothing to report).
void connection::close(const std::string& why) {
  if (closed) return;
  closed = true;
  boost::system::error_code ignore;
  ticker.cancel();
  auto keep = shared_from_this();  // readers may hold the last reference but one
  {
    std::lock_guard rl(d.rmx);  // no read is under way on the descriptor, and none starts
    std::lock_guard lk(wm);     // nor a write
    if (reading) ::epoll_ctl(d.epfd, EPOLL_CTL_DEL, fd, nullptr);
    reading = false;
    d.readers.erase(this);
    d.found_n = 0;  // may name this connection (the others are reported again)
    wclosed = true;
    if (fd >= 0) ::close(fd);
    fd = -1;
    sock.close(ignore);
  }
  if (!up) return;
  {
    std::lock_guard lk(d.m);
    if (auto it = d.up.find(peer.name); it != d.up.end() && it->second.get() == this) d.up.erase(it);
  }
  d.connection_lost(peer.name, peer.creation);
  d.nodes_changed(peer.name, peer.hidden, false);
  d.publish(event_kind::nodedown, peer.name, why);  // after every message it stands for
}

bool distribution::impl::same_creation(const connection& c, std::uint32_t cr) { return c.peer.creation == cr; }

// ---- other nodes' processes ----------------------------------------------------------------------

namespace {
// The runtime's way to other nodes' pids (one per remote id; the impl may go first).
struct carrier final : detail::remote_carrier {
  explicit carrier(std::weak_ptr<distribution::impl> i) : d(std::move(i)) {}
  std::weak_ptr<distribution::impl> d;
  bool push(const pid& to, std::unique_ptr<detail::envelope> e) override {
    auto s = d.lock();
    return s && s->push(to, std::move(e));
  }
  void link(const pid& from, const pid& to) override {
    if (auto s = d.lock()) return s->link(from, to);
    detail::signal_from_remote(from, detail::envelope_kind::exit_link, to, exit_reason::noconnection());
  }
  void unlink(const pid& from, const pid& to) override {
    if (auto s = d.lock()) s->unlink(from, to);
  }
  void monitor(const pid& from, const pid& to, std::uint64_t ref) override {
    if (auto s = d.lock()) return s->monitor(from, to, ref);
    detail::signal_from_remote(from, detail::envelope_kind::down, to, exit_reason::noconnection(), ref);
  }
  void demonitor(const pid& from, const pid& to, std::uint64_t ref) override {
    if (auto s = d.lock()) s->demonitor(from, to, ref);
  }
};
}  // namespace

std::uint32_t distribution::impl::remote_id(const std::string& node, std::uint32_t node_creation) {
  std::lock_guard lk(rm);
  auto key = std::make_pair(node, node_creation);
  if (auto it = remote_ids.find(key); it != remote_ids.end()) return it->second;
  const std::uint32_t id = detail::add_remote_node(std::make_shared<carrier>(weak_from_this()));
  remote_ids[key] = id;
  remotes_by_id[id] = key;
  return id;
}

std::optional<pid> distribution::impl::address_of(const std::string& name, const std::string& node) {
  if (node == full_name) return whereis(name);
  std::string ignored;
  bool connected = false;
  {
    std::lock_guard lk(m);
    connected = up.count(node) > 0;
  }
  if (!connected) {
    // As Erlang does on a first send: connect; a failure shows as noconnection on use.
    distribution* self = find_distribution(n);
    if (self) self->connect(node, &ignored);
  }
  const std::uint32_t id = remote_id(node, 0);
  std::lock_guard lk(rm);
  auto [it, fresh] = reg_index.try_emplace(name, static_cast<std::uint32_t>(reg_names.size()));
  if (fresh) reg_names.push_back(name);
  return pid(id, name_bit | it->second, 1);
}

bool distribution::impl::push(const pid& to, std::unique_ptr<detail::envelope> e) {
  using k = detail::envelope_kind;
  auto target = term_of(to);
  if (!target) return false;
  const bool by_name = target->is<atom>();
  if (e->kind == k::exit_link || e->kind == k::exit_direct) {
    auto& sig = static_cast<detail::signal_envelope&>(*e);
    auto from = term_of(sig.from);
    if (by_name || !from) return false;
    if (e->kind == k::exit_link) {
      std::lock_guard lk(rm);
      links.erase({sig.from, to});
    }
    const bool direct = e->kind == k::exit_direct;
    return frame_to(to.node(), tuple_t({term(direct ? ctl_exit2 : ctl_exit), *from, *target, reason_term(sig.reason)}),
                    nullptr, direct);
  }
  if (e->kind == k::down) {  // a local process that a remote one monitors ended
    auto& sig = static_cast<detail::signal_envelope&>(*e);
    in_monitor mon;
    {
      std::lock_guard lk(rm);
      auto it = in_monitors.find(sig.token);
      if (it == in_monitors.end()) return false;
      mon = std::move(it->second);
      in_monitors.erase(it);
      in_by_ref.erase(encode(mon.remote_ref));
    }
    return frame_to(to.node(),
                    tuple_t({term(ctl_monitor_exit), mon.target, *target, mon.remote_ref, reason_term(sig.reason)}));
  }
  if (e->kind == k::reply) {  // a local server's reply to a remote caller
    pending_reply p;
    {
      std::lock_guard lk(rm);
      auto it = pending_replies.find(e->alias);
      if (it == pending_replies.end()) return false;  // the caller gave up
      p = std::move(it->second);
    }
    drop_reply(e->alias);
    term value;
    if (detail::same_type(e->type, typeid(term))) {
      value = std::move(static_cast<detail::message_envelope<term>&>(*e).value);
    } else if (detail::same_type(e->type, typeid(ok_t))) {
      value = atom_t("ok");
    } else {
      return false;  // not a term: nothing Erlang could read (the caller's call times out)
    }
    std::shared_ptr<connection> c;
    {
      std::lock_guard lk(m);
      if (auto it = up.find(p.peer); it != up.end()) c = it->second;
    }
    if (!c) return false;
    std::optional<term> from;
    if (in_process()) from = term_of(self());
    reply(*c, p.caller, p.tag, value, from ? *from : term(erl_pid{full_name, 0, 0, creation}));
    return true;
  }
  if (e->kind != k::message) return false;
  term msg;
  if (detail::same_type(e->type, typeid(term))) {
    msg = std::move(static_cast<detail::message_envelope<term>&>(*e).value);
  } else if (detail::same_type(e->type, typeid(detail::call_msg<term>))) {
    auto& c = static_cast<detail::message_envelope<detail::call_msg<term>>&>(*e).value;
    auto caller = term_of(c.f.caller());
    if (!caller) return false;
    msg = tuple_t({atom_t("$gen_call"),
                   tuple_t({*caller, term::make_improper_list({atom_t("alias")}, term(ref_of(c.f.tag())))}),
                   std::move(c.request)});
  } else if (detail::same_type(e->type, typeid(detail::cast_msg<term>))) {
    msg = tuple_t(
        {atom_t("$gen_cast"), std::move(static_cast<detail::message_envelope<detail::cast_msg<term>>&>(*e).value.msg)});
  } else {
    return false;  // only terms cross nodes (docs/concepts/distribution.md)
  }
  // The sender, as Erlang's SEND_SENDER and REG_SEND name it (outside a process: none of ours).
  std::optional<term> from;
  if (in_process()) from = term_of(self());
  const term sender = from ? *from : term(erl_pid{full_name, 0, 0, creation});
  if (by_name) return frame_to(to.node(), tuple_t({term(ctl_reg_send), sender, atom_t(""), *target}), &msg, true);
  return frame_to(to.node(), tuple_t({term(ctl_send_sender), sender, *target}), &msg, true);
}

void distribution::impl::link(const pid& from, const pid& to) {
  auto f = term_of(from), t = term_of(to);
  if (!f || !t || t->is<atom>()) {
    detail::signal_from_remote(from, detail::envelope_kind::exit_link, to, exit_reason::noproc());
    return;
  }
  {
    std::lock_guard lk(rm);
    links.insert({from, to});
  }
  if (!frame_to(to.node(), tuple_t({term(ctl_link), *f, *t}), nullptr, true)) {
    {
      std::lock_guard lk(rm);
      links.erase({from, to});
    }
    detail::signal_from_remote(from, detail::envelope_kind::exit_link, to, exit_reason::noconnection());
  }
}

void distribution::impl::unlink(const pid& from, const pid& to) {
  auto f = term_of(from), t = term_of(to);
  std::uint64_t id = 0;
  {
    std::lock_guard lk(rm);
    if (!links.erase({from, to})) return;
    id = next_unlink_id++;
  }
  if (f && t && t->is<erl_pid>())
    frame_to(to.node(), tuple_t({term(ctl_unlink_id), term(static_cast<std::int64_t>(id)), *f, *t}));
}

void distribution::impl::monitor(const pid& from, const pid& to, std::uint64_t ref) {
  auto f = term_of(from), t = term_of(to);
  if (f && t) {
    {
      std::lock_guard lk(rm);
      out_monitors[ref] = out_monitor{from, to};
    }
    if (frame_to(to.node(), tuple_t({term(ctl_monitor), *f, *t, term(ref_of(ref))}), nullptr, true)) return;
    std::lock_guard lk(rm);
    out_monitors.erase(ref);
  }
  detail::signal_from_remote(from, detail::envelope_kind::down, to, exit_reason::noconnection(), ref);
}

void distribution::impl::demonitor(const pid& from, const pid& to, std::uint64_t ref) {
  {
    std::lock_guard lk(rm);
    if (!out_monitors.erase(ref)) return;
  }
  auto f = term_of(from), t = term_of(to);
  if (f && t) frame_to(to.node(), tuple_t({term(ctl_demonitor), *f, *t, term(ref_of(ref))}));
}

void distribution::impl::connection_lost(const std::string& peer, std::uint32_t peer_creation) {
  std::vector<std::pair<pid, pid>> broken;
  std::vector<std::pair<std::uint64_t, out_monitor>> downs;
  {
    std::lock_guard lk(rm);
    std::set<std::uint32_t> ids;
    for (auto& [key, id] : remote_ids)
      if (key.first == peer && (key.second == 0 || key.second == peer_creation)) ids.insert(id);
    for (auto it = links.begin(); it != links.end();) {
      if (ids.count(it->second.node())) {
        broken.push_back(*it);
        it = links.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = out_monitors.begin(); it != out_monitors.end();) {
      if (ids.count(it->second.remote.node())) {
        downs.emplace_back(it->first, it->second);
        it = out_monitors.erase(it);
      } else {
        ++it;
      }
    }
  }
  std::vector<std::pair<pid, std::uint64_t>> watched;  // local processes the peer monitored
  {
    std::lock_guard lk(rm);
    for (auto it = in_monitors.begin(); it != in_monitors.end();) {
      if (it->second.peer == peer) {
        watched.emplace_back(it->second.local, it->first);
        in_by_ref.erase(encode(it->second.remote_ref));
        it = in_monitors.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = pending_replies.begin(); it != pending_replies.end();) {
      if (it->second.peer == peer) {
        auto [lo, hi] = replies_by_ref.equal_range(it->second.ref_key);
        for (auto r = lo; r != hi; ++r) {
          if (r->second == it->first) {
            replies_by_ref.erase(r);
            break;
          }
        }
        it = pending_replies.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& [local, id] : watched) detail::remove_remote_monitor(local, id);
  for (auto& [local, remote] : broken)
    detail::signal_from_remote(local, detail::envelope_kind::exit_link, remote, exit_reason::noconnection());
  for (auto& [ref, mon] : downs)
    detail::signal_from_remote(mon.local, detail::envelope_kind::down, mon.remote, exit_reason::noconnection(), ref);
}

// ---- what peers send ------------------------------------------------------------------------------

namespace {
// {'$gen_call', {Caller, Tag}, Req}: the parts, or false.
bool gen_call(const term& msg, term& caller, term& tag, term& req) {
  const auto* t = msg.get_if<tuple>();
  if (!t || t->elements.size() != 3 || !is_atom(t->elements[0], "$gen_call")) return false;
  const auto* from = t->elements[1].get_if<tuple>();
  if (!from || from->elements.size() != 2 || !from->elements[0].is<erl_pid>()) return false;
  caller = from->elements[0];
  tag = from->elements[1];
  req = t->elements[2];
  return true;
}
// The ref of a tag [alias|Ref] (OTP 24 on), or null.
const term* alias_of(const term& tag) {
  const auto* l = tag.get_if<list>();
  if (l && l->elements.size() == 1 && is_atom(l->elements[0], "alias") && l->tail && l->tail->is<erl_ref>())
    return l->tail.get();
  return nullptr;
}
}  // namespace

void distribution::impl::reply(connection& c, const term& caller, const term& tag, const term& value,
                               const term& sender) {
  const term msg = tuple_t({tag, value});
  if (const term* alias = alias_of(tag); alias && (c.peer.flags & flag_alias)) {
    out(c, tuple_t({term(ctl_alias_send), sender, *alias}), &msg);
  } else if (c.peer.flags & flag_send_sender) {
    out(c, tuple_t({term(ctl_send_sender), sender, caller}), &msg);
  } else {
    out(c, tuple_t({term(ctl_send), atom_t(""), caller}), &msg);
  }
}

void distribution::impl::deliver(connection& c, const pid& target, const term& msg) {
  term caller, tag, req;
  if (gen_call(msg, caller, tag, req)) {
    // A call: to the server as a Grove call whose caller is the remote process; its reply comes
    // back through the carrier (push, kind reply). A failed call sends nothing: the caller's
    // monitor reports the reason.
    auto remote = pid_of(caller.as<erl_pid>());
    if (!remote) return;
    const std::uint64_t id = detail::make_ref();
    const term* alias = alias_of(tag);
    const std::string key = alias ? encode(*alias) : std::string();
    {
      std::lock_guard lk(rm);
      pending_replies[id] = pending_reply{caller, tag, c.peer.name, key};
      if (!key.empty()) replies_by_ref.emplace(key, id);
    }
    const auto sent = detail::deliver(target, std::make_unique<detail::message_envelope<detail::call_msg<term>>>(
                                                  detail::call_msg<term>{std::move(req), from(*remote, id)}));
    if (sent == send_result::dead) drop_reply(id);
    return;
  }
  if (const auto* t = msg.get_if<tuple>(); t && t->elements.size() == 2 && is_atom(t->elements[0], "$gen_cast")) {
    grove::send(target, detail::cast_msg<term>{t->elements[1]});
    return;
  }
  grove::send(target, msg);
}

void distribution::impl::handle(connection& c, const inbound& in) {
  const auto* ctl = in.control.get_if<tuple>();
  if (!ctl || ctl->elements.empty() || !ctl->elements[0].is<std::int64_t>()) return;
  const auto& e = ctl->elements;
  const std::int64_t tag = e[0].as<std::int64_t>();
  auto to_local_pid = [&](const term& t) -> std::optional<pid> {
    const auto* p = t.get_if<erl_pid>();
    if (!p || p->node != full_name || p->creation != creation) return std::nullopt;  // stale: dropped
    return pid(n.id(), p->id, p->serial);
  };
  auto remote_pid = [&](const term& t) -> std::optional<pid> {
    const auto* p = t.get_if<erl_pid>();
    return p ? pid_of(*p) : std::nullopt;
  };
  auto monitor_exit = [&](const term& target, const term& watcher, const term& ref, const term& reason) {
    out(c, tuple_t({term(ctl_monitor_exit), target, watcher, ref, reason}));
  };
  switch (tag) {
    case ctl_reg_send:
    case ctl_reg_send_tt: {  // {6, From, Unused, ToName}
      if (e.size() < 4 || !in.message || !e[3].is<atom>()) return;
      const std::string& name = e[3].as<atom>().name;
      if (name == "net_kernel") {
        term caller, t, req;
        if (!gen_call(*in.message, caller, t, req)) return;
        const auto* r = req.get_if<tuple>();
        if (r && r->elements.size() == 2 && is_atom(r->elements[0], "is_auth"))
          reply(c, caller, t, atom_t("yes"), term(erl_pid{full_name, 0, 0, creation}));
        return;
      }
      if (auto p = n.service<name_registry>().whereis(name)) deliver(c, *p, *in.message);
      return;  // an unregistered name: dropped, as Erlang does
    }
    case ctl_send:
    case ctl_send_tt:         // {2, Unused, To}
    case ctl_send_sender:     // {22, From, To}
    case ctl_send_sender_tt:  // {23, From, To, Token}
      if (e.size() < 3 || !in.message) return;
      if (auto p = to_local_pid(e[2])) deliver(c, *p, *in.message);
      return;
    case ctl_monitor: {  // {19, From, ToProc, Ref}: a remote process monitors one of ours
      if (e.size() < 4) return;
      const term& target = e[2];
      if (is_atom(target, "net_kernel")) return;  // always there; never goes down while connected
      auto remote = remote_pid(e[1]);
      if (!remote) return;
      std::optional<pid> p =
          target.is<atom>() ? n.service<name_registry>().whereis(target.as<atom>().name) : to_local_pid(target);
      const std::uint64_t id = detail::make_ref();
      {
        std::lock_guard lk(rm);
        in_monitors[id] = in_monitor{p ? *p : pid(), *remote, e[3], target, c.peer.name};
        in_by_ref[encode(e[3])] = id;
      }
      if (!p || !detail::add_remote_monitor(*p, *remote, id)) {
        {
          std::lock_guard lk(rm);
          in_monitors.erase(id);
          in_by_ref.erase(encode(e[3]));
        }
        monitor_exit(target, e[1], e[3], atom_t("noproc"));
      }
      return;
    }
    case ctl_demonitor: {  // {20, From, ToProc, Ref}
      if (e.size() < 4) return;
      const std::string key = encode(e[3]);
      pid local;
      std::uint64_t id = 0;
      {
        std::lock_guard lk(rm);
        if (auto it = in_by_ref.find(key); it != in_by_ref.end()) {
          id = it->second;
          local = in_monitors[id].local;
          in_monitors.erase(id);
          in_by_ref.erase(it);
        }
        // A call that gave up: its reply, if it ever comes, is not sent.
        auto [lo, hi] = replies_by_ref.equal_range(key);
        for (auto it = lo; it != hi; ++it) pending_replies.erase(it->second);
        replies_by_ref.erase(lo, hi);
      }
      if (id) detail::remove_remote_monitor(local, id);
      return;
    }
    case ctl_link: {  // {1, From, To}
      if (e.size() < 3) return;
      auto local = to_local_pid(e[2]);
      auto remote = remote_pid(e[1]);
      if (!remote) return;
      if (!local || !detail::add_remote_link(*local, *remote)) {
        out(c, tuple_t({term(ctl_exit), e[2], e[1], atom_t("noproc")}));
        return;
      }
      std::lock_guard lk(rm);
      links.insert({*local, *remote});
      return;
    }
    case ctl_exit:                                                    // {3, From, To, Reason}: a linked process ended
    case ctl_exit_tt:                                                 // {13, From, To, Token, Reason}
    case ctl_exit2:                                                   // {8, From, To, Reason}: exit(Pid, Reason)
    case ctl_exit2_tt: {                                              // {18, From, To, Token, Reason}
      const bool traced = tag == ctl_exit_tt || tag == ctl_exit2_tt;  // the token is not kept
      const bool linked = tag == ctl_exit || tag == ctl_exit_tt;
      if (e.size() < (traced ? 5u : 4u)) return;
      auto local = to_local_pid(e[2]);
      auto remote = remote_pid(e[1]);
      if (!local || !remote) return;
      if (linked) {
        std::lock_guard lk(rm);
        links.erase({*local, *remote});
      }
      detail::signal_from_remote(*local, linked ? detail::envelope_kind::exit_link : detail::envelope_kind::exit_direct,
                                 *remote, reason_from_term(e[traced ? 4 : 3]));
      return;
    }
    case ctl_unlink_id: {  // {35, Id, From, To}: acknowledged with {36, Id, To, From}
      if (e.size() < 4) return;
      auto local = to_local_pid(e[3]);
      auto remote = remote_pid(e[2]);
      if (local && remote) {
        detail::remove_remote_link(*local, *remote);
        std::lock_guard lk(rm);
        links.erase({*local, *remote});
      }
      out(c, tuple_t({term(ctl_unlink_id_ack), e[1], e[3], e[2]}));
      return;
    }
    case ctl_monitor_exit: {  // {21, FromProc, To, Ref, Reason}: a monitor of ours fired
      if (e.size() < 5) return;
      auto id = id_of(e[3]);
      if (!id) return;
      out_monitor mon;
      {
        std::lock_guard lk(rm);
        auto it = out_monitors.find(*id);
        if (it == out_monitors.end()) return;
        mon = it->second;
        out_monitors.erase(it);
      }
      detail::signal_from_remote(mon.local, detail::envelope_kind::down, mon.remote, reason_from_term(e[4]), *id);
      return;
    }
    case ctl_alias_send:
    case ctl_alias_send_tt: {  // {33, From, Alias}: a reply to a call of ours
      if (e.size() < 3 || !in.message) return;
      auto id = id_of(e[2]);
      if (!id) return;
      pid caller;
      {
        std::lock_guard lk(rm);
        auto it = out_monitors.find(*id);
        if (it == out_monitors.end()) return;  // the call gave up: the late reply is dropped
        caller = it->second.local;
      }
      // gen_server replies {[alias|Ref], Reply}.
      const auto* t = in.message->get_if<tuple>();
      term value = t && t->elements.size() == 2 ? t->elements[1] : *in.message;
      detail::deliver_reply(caller, *id, std::make_unique<detail::message_envelope<term>>(std::move(value)));
      return;
    }
    default:
      return;  // UNLINK_ID_ACK, trace tokens, spawn requests: nothing to do
  }
}

// ---- distribution ---------------------------------------------------------------------------------

namespace {
std::mutex by_node_mutex;
std::map<const node*, distribution*>& by_node() {
  static std::map<const node*, distribution*> m;
  return m;
}

// `epmd -daemon`, waited for (it forks; the daemon may not listen yet when it returns).
bool start_epmd_daemon() {
  pid_t child = -1;
  const char* argv[] = {"epmd", "-daemon", nullptr};
  if (posix_spawnp(&child, "epmd", nullptr, nullptr, const_cast<char* const*>(argv), environ) != 0) return false;
  int status = 0;
  return waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// server_ref(name, node): through the distribution of the calling process's node.
std::optional<pid> resolve_address(const std::string& name, const std::string& node) {
  if (!in_process()) return std::nullopt;
  distribution* d = find_distribution(this_node());
  return d ? d->address(name, node) : std::nullopt;
}
}  // namespace

std::string node_name_problem(const std::string& name) {
  const auto at = name.find('@');
  const std::string alive = name.substr(0, at);
  if (alive.empty() || alive.size() > 255) return "a node name needs 1 to 255 characters before any @";
  for (char c : alive) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-')
      return "'" + alive + "' is not a node name: letters, digits, _ and - only (as erl's)";
  }
  if (at != std::string::npos) {
    const std::string host = name.substr(at + 1);
    if (host.empty() || host.find_first_of(" @\t") != std::string::npos)
      return "'" + name + "' has no valid host after @";
  }
  return "";
}

distribution* find_distribution(const node& n) {
  std::lock_guard lk(by_node_mutex);
  auto it = by_node().find(&n);
  return it == by_node().end() ? nullptr : it->second;
}

distribution::distribution(node& n, dist_options opts) : impl_(std::make_shared<impl>(n, std::move(opts))) {
  impl& d = *impl_;
  if (const distribution* other = find_distribution(n))  // as net_kernel:start's already_started
    throw dist_error("this node is already part of a distribution, as " + other->name());
  if (d.o.cookie.empty()) throw dist_error("distribution needs a cookie");
  if (std::string problem = node_name_problem(d.o.name); !problem.empty()) throw dist_error(problem);
  if (auto at = d.o.name.find('@'); at != std::string::npos) {
    d.short_name = d.o.name.substr(0, at);
    d.full_name = d.o.name;
    if (at + 1 == d.o.name.size()) throw dist_error("node name '" + d.o.name + "' has no host after @");
  } else {
    d.short_name = d.o.name;
    d.full_name = d.o.name + "@" + (d.o.longnames ? long_host() : short_host());
  }
  if (d.o.tick_time < std::chrono::milliseconds(400)) throw dist_error("tick_time must be at least 400 ms");
  // Listen on the first free port of the range (any port when none is given).
  boost::system::error_code ec;
  const int lo = d.o.port_min, hi = d.o.port_max ? d.o.port_max : d.o.port_min;
  for (int p = lo; p <= hi; ++p) {
    d.acceptor = tcp::acceptor(d.io);
    d.acceptor.open(tcp::v4(), ec);
    if (!ec) d.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) d.acceptor.bind(tcp::endpoint(tcp::v4(), static_cast<unsigned short>(p)), ec);
    if (!ec) d.acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (!ec) break;
  }
  if (ec) {
    throw dist_error("cannot listen for distribution on port " +
                     (lo == hi ? std::to_string(lo) : std::to_string(lo) + "-" + std::to_string(hi)) + ": " +
                     ec.message());
  }
  d.port = d.acceptor.local_endpoint().port();
  std::string error;
  d.registration = epmd_register(d.short_name, d.port, d.o.hidden, error, d.o.epmd_port);
  if (!d.registration && d.o.start_epmd && d.o.epmd_port == epmd_default_port &&
      error.find("cannot reach epmd") != std::string::npos && start_epmd_daemon()) {
    // The daemon may still be opening its socket when `epmd -daemon` returns: a few seconds.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!(d.registration = epmd_register(d.short_name, d.port, d.o.hidden, error, d.o.epmd_port)) &&
           error.find("cannot reach epmd") != std::string::npos && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  if (!d.registration) throw dist_error(error);
  d.creation = d.registration->creation();
  if (d.epfd < 0) throw dist_error(std::string("cannot make an epoll set: ") + std::strerror(errno));
  asio::co_spawn(d.io, d.accept_loop(), asio::detached);
  d.watch_fallback();
  d.thread = std::thread([self = impl_] {
    auto work = asio::make_work_guard(self->io);
    self->io.run();
  });
  {
    std::lock_guard lk(by_node_mutex);
    by_node()[&n] = this;
  }
  detail::set_remote_name_resolver(&resolve_address);
  detail::set_io_poller(n, &d.poller);  // last: nothing after it throws
}

distribution::~distribution() {
  impl& d = *impl_;
  detail::set_io_poller(d.n, nullptr);  // the I/O thread reads what is left
  {
    std::lock_guard lk(by_node_mutex);
    if (auto it = by_node().find(&d.n); it != by_node().end() && it->second == this) by_node().erase(it);
  }
  std::promise<void> closed;
  asio::post(d.io, [&] {
    boost::system::error_code ignore;
    d.acceptor.close(ignore);
    std::vector<std::shared_ptr<connection>> all;
    {
      std::lock_guard lk(d.m);
      for (auto& [name, c] : d.up) all.push_back(c);
      for (auto& [name, c] : d.connecting) all.push_back(c);
    }
    for (auto& c : all) c->close("the node left the distribution");
    d.fallback.cancel();
    closed.set_value();
  });
  closed.get_future().wait();
  d.io.stop();
  d.thread.join();
  d.registration.reset();
  std::lock_guard lk(d.rm);
  for (auto& [key, id] : d.remote_ids) detail::remove_remote_node(id);
}

void distribution::monitor_node(const pid& watcher, const std::string& peer, bool flag) {
  impl& d = *impl_;
  if (!flag) {
    std::lock_guard lk(d.nm);
    auto [lo, hi] = d.node_monitors.equal_range(peer);
    for (auto it = lo; it != hi; ++it) {
      if (it->second == watcher) {
        d.node_monitors.erase(it);
        break;
      }
    }
    return;
  }
  if (peer == d.full_name) return;
  // Registered while the peer is up (checked under nm: a connection that closes after the check
  // finds the monitor when it takes nm); else one attempt to connect, as erl makes.
  for (bool tried = false;; tried = true) {
    {
      std::lock_guard lk(d.nm);
      bool connected = false;
      {
        std::lock_guard lk2(d.m);
        connected = d.up.count(peer) > 0;
      }
      if (connected) {
        auto [lo, hi] = d.node_monitors.equal_range(peer);
        for (auto it = lo; it != hi;) it = alive(it->second) ? std::next(it) : d.node_monitors.erase(it);
        d.node_monitors.emplace(peer, watcher);
        return;
      }
    }
    if (tried || !connect(peer)) break;
  }
  grove::send(watcher, nodedown{peer});
}

void distribution::monitor_nodes(const pid& watcher, bool flag, bool hidden) {
  impl& d = *impl_;
  std::lock_guard lk(d.nm);
  if (flag)
    d.node_watchers[watcher] = hidden;
  else
    d.node_watchers.erase(watcher);
}

void monitor_node(const std::string& node, bool flag) {
  const pid me = self();
  if (distribution* d = find_distribution(this_node())) return d->monitor_node(me, node, flag);
  if (flag) grove::send(me, nodedown{node});
}

void monitor_nodes(bool flag, bool hidden) {
  const pid me = self();
  if (distribution* d = find_distribution(this_node())) d->monitor_nodes(me, flag, hidden);
}

const std::string& distribution::name() const noexcept { return impl_->full_name; }
std::uint32_t distribution::creation() const noexcept { return impl_->creation; }
int distribution::port() const noexcept { return impl_->port; }

bool distribution::connect(const std::string& peer, std::string* error) {
  impl& d = *impl_;
  auto fail = [&](std::string why) {
    if (error) *error = std::move(why);
    return false;
  };
  const auto at = peer.find('@');
  if (at == std::string::npos || at == 0 || at + 1 == peer.size()) {
    return fail("'" + peer + "' is not a node name (NAME@HOST)");
  }
  if (peer == d.full_name) return true;
  auto work = [&d, peer, at]() -> std::string {
    auto result = std::make_shared<std::promise<std::string>>();
    auto answer = result->get_future();
    auto wait = [&]() -> std::string {
      if (answer.wait_for(d.o.handshake_timeout * 2) != std::future_status::ready) return "timed out";
      return answer.get();
    };
    bool on_its_way = false;
    {
      std::lock_guard lk(d.m);
      if (d.up.count(peer)) return "";
      d.waiters[peer].push_back(result);
      on_its_way = d.connecting.count(peer) > 0;
    }
    if (on_its_way) return wait();  // an attempt is under way: its outcome is ours
    std::string err;
    const std::string host = peer.substr(at + 1);
    auto entry = epmd_lookup(host, peer.substr(0, at), err, d.o.epmd_port, d.o.handshake_timeout);
    if (!entry) {
      d.publish(event_kind::connection_failed, peer, "connecting to " + peer + ": " + err);
      d.resolve_waiters(peer, err);
      return wait();
    }
    asio::post(d.io, [&d, peer, host, port = entry->port] {
      auto c = std::make_shared<connection>(d, tcp::socket(d.io));
      bool already = false;
      {
        std::lock_guard lk(d.m);
        already = d.up.count(peer) > 0;
        if (!already) d.connecting[peer] = c;
      }
      if (already) {
        d.resolve_waiters(peer, "");
        return;
      }
      asio::co_spawn(d.io, d.connect_handshake(c, peer, host, port), asio::detached);
    });
    return wait();
  };
  const std::string r = in_process() ? blocking(work) : work();
  if (!r.empty()) return fail(r);
  return true;
}

void distribution::disconnect(const std::string& peer) {
  impl& d = *impl_;
  auto done = std::make_shared<std::promise<void>>();
  std::shared_future<void> closed = done->get_future().share();
  asio::post(d.io, [&d, peer, done] {
    std::shared_ptr<connection> c;
    {
      std::lock_guard lk(d.m);
      if (auto it = d.up.find(peer); it != d.up.end()) c = it->second;
      if (auto it = d.accepted.find(peer); !c && it != d.accepted.end()) c = it->second;
    }
    if (c) c->close("disconnected by this node");
    done->set_value();
  });
  if (std::this_thread::get_id() == d.thread.get_id()) return;  // from the I/O thread: under way
  auto wait = [closed] { closed.wait(); };
  if (in_process())
    blocking(wait);
  else
    wait();
}

std::vector<peer_info> distribution::peers() const {
  std::lock_guard lk(impl_->m);
  std::vector<peer_info> out;
  for (auto& [name, c] : impl_->up) out.push_back(c->peer);
  return out;
}

erl_pid distribution::to_erl(const pid& p) const {
  if (auto t = impl_->term_of(p); t && t->is<erl_pid>()) return t->as<erl_pid>();
  return erl_pid{impl_->full_name, p.slot(), p.generation(), impl_->creation};
}

std::optional<pid> distribution::from_erl(const erl_pid& p) const { return impl_->pid_of(p); }

std::optional<pid> distribution::address(const std::string& name, const std::string& node) {
  return impl_->address_of(name, node);
}

exit_reason reason_from_term(const term& t) {
  if (const auto* a = t.get_if<atom>()) {
    const std::string& s = a->name;
    if (s == "normal") return exit_reason::normal();
    if (s == "shutdown") return exit_reason::shutdown();
    if (s == "killed") return exit_reason::killed();
    if (s == "kill") return exit_reason::kill();
    if (s == "noproc") return exit_reason::noproc();
    if (s == "noconnection") return exit_reason::noconnection();
    if (s == "timeout") return exit_reason::timeout();
    return exit_reason::other(s);
  }
  exit_reason r = exit_reason::other(t.str());
  if (const auto* tu = t.get_if<tuple>(); tu && tu->elements.size() == 2) {
    const auto* b = tu->elements[1].get_if<binary>();
    if (is_atom(tu->elements[0], "shutdown")) r = exit_reason::shutdown(b ? b->bytes : tu->elements[1].str());
    if (is_atom(tu->elements[0], "error") && b) r = exit_reason::error(b->bytes);
  }
  return exit_reason::with_term(std::move(r), encode(t));
}

term reason_term(const exit_reason& r) {
  using k = exit_reason::kind;
  if (const std::string* came_as = r.remote_term()) {
    try {
      return decode(*came_as);
    } catch (const decode_error&) {  // it was decoded once: cannot happen; fall back to the text
    }
  }
  switch (r.what()) {
    case k::normal:
      return atom_t("normal");
    case k::shutdown:
      return r.detail().empty() ? atom_t("shutdown") : tuple_t({atom_t("shutdown"), term::make_binary(r.detail())});
    case k::killed:
      return atom_t("killed");
    case k::kill:
      return atom_t("kill");
    case k::noproc:
      return atom_t("noproc");
    case k::noconnection:
      return atom_t("noconnection");
    case k::timeout:
      return atom_t("timeout");
    case k::error:
      return tuple_t({atom_t("error"), term::make_binary(r.detail())});
    case k::other:
      return atom_t(r.detail());
  }
  return atom_t("normal");
}

}  // namespace grove::dist
