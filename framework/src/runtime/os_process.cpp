// The OS-process reactor: one thread per node that starts, reads, writes and reaps programs.
//
// Why one thread and not the schedulers: a read, a clone or a waitpid must never stall a
// scheduler; and PR_SET_PDEATHSIG fires when the *thread* that created the child ends, so that
// thread must live as long as the node. Everything a child needs (argv, envp, the resolved
// program path, uid/gid/groups, limits) is prepared before the clone: between clone and exec
// the child makes raw system calls only (see run_child).
#include <grove/runtime/os_process.hpp>

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <regex>
#include <set>
#include <thread>
#include <utility>

#include <grove/runtime/errors.hpp>
#include <grove/runtime/events.hpp>
#include <grove/runtime/node.hpp>
#include <grove/runtime/process.hpp>

#include "process_impl.hpp"

extern char** environ;  // NOLINT: POSIX

namespace grove {

const char* to_string(os_stream s) noexcept { return s == os_stream::out ? "stdout" : "stderr"; }

exit_reason os_exit_reason(int wait_status) {
  if (WIFEXITED(wait_status)) {
    const int code = WEXITSTATUS(wait_status);
    return code == 0 ? exit_reason::normal() : exit_reason::other("{exit_status," + std::to_string(code) + "}");
  }
  if (WIFSIGNALED(wait_status)) {
    const int sig = WTERMSIG(wait_status);
    const char* abbrev = sigabbrev_np(sig);
    return exit_reason::other("{signal," + (abbrev ? "SIG" + std::string(abbrev) : std::to_string(sig)) + "}");
  }
  return exit_reason::other("{wait_status," + std::to_string(wait_status) + "}");
}

namespace {

// The reactor's messages to an owner: never thrown on (a full `fail` mailbox would end the
// reactor's thread, and the node with it). A bounded mailbox that is full drops them, as it
// drops timer messages: an owner of programs wants an unbounded mailbox (the default).
template <class T>
void tell(const pid& owner, T&& msg) {
  detail::deliver_quiet(owner,
                        std::make_unique<detail::message_envelope<std::remove_cvref_t<T>>>(std::forward<T>(msg)));
}

constexpr std::size_t input_capacity = 1 << 20;  // bytes queued for a program's stdin
constexpr std::int64_t owner_window = 1000;      // os_line messages not yet taken before stdout pauses
constexpr std::size_t read_chunk = 64 * 1024;
constexpr std::size_t drain_limit = 1 << 20;  // read after exit, per stream (grandchildren may write on)
constexpr int tick_ms = 10;
constexpr std::size_t kept_logs = 256;  // logs whose owners are gone, kept for `logs`

// The log of one key (a child's path), shared by the OS processes started under it.
struct output_log {
  std::mutex mu;
  std::deque<os_log_line> lines;
  std::uint64_t seq = 0;
  std::size_t capacity = 1000;
  int users = 0;  // OS processes running under this key
  std::uint64_t last_used = 0;

  void add(os_stream stream, std::string text, bool marker) {
    std::lock_guard lk(mu);
    os_log_line l;
    l.seq = ++seq;
    l.time = std::chrono::system_clock::now();
    l.stream = stream;
    l.text = std::move(text);
    l.marker = marker;
    lines.push_back(std::move(l));
    while (lines.size() > std::max<std::size_t>(capacity, 1)) lines.pop_front();
  }
};

// The logs by key: a node service with no thread, so that asking for a log never starts one.
class os_log_registry {
 public:
  explicit os_log_registry(node&) {}

  std::shared_ptr<output_log> acquire(const std::string& key, std::size_t capacity) {
    std::lock_guard lk(mu_);
    auto& slot = logs_[key];
    if (!slot) slot = std::make_shared<output_log>();
    {
      std::lock_guard ll(slot->mu);
      slot->capacity = capacity;
    }
    ++slot->users;
    slot->last_used = ++clock_;
    evict();
    return slot;
  }
  void release(const std::shared_ptr<output_log>& log) {
    std::lock_guard lk(mu_);
    --log->users;
    log->last_used = ++clock_;
    evict();
  }
  std::shared_ptr<output_log> find(const std::string& key) {
    std::lock_guard lk(mu_);
    auto it = logs_.find(key);
    return it == logs_.end() ? nullptr : it->second;
  }

 private:
  // Forgets the least recently used logs of keys with nothing running once there are too many
  // (a dynamic supervisor's children each have a key of their own).
  void evict() {
    std::size_t idle = 0;
    for (auto& [k, l] : logs_) idle += l->users == 0 ? 1 : 0;
    while (idle > kept_logs) {
      auto oldest = logs_.end();
      for (auto it = logs_.begin(); it != logs_.end(); ++it) {
        if (it->second->users == 0 && (oldest == logs_.end() || it->second->last_used < oldest->second->last_used)) {
          oldest = it;
        }
      }
      logs_.erase(oldest);
      --idle;
    }
  }

  std::mutex mu_;
  std::map<std::string, std::shared_ptr<output_log>> logs_;
  std::uint64_t clock_ = 0;
};

enum class watch_kind : unsigned char { command, out, err, in, exit };
struct watch {
  os_process::state* s = nullptr;
  watch_kind what = watch_kind::command;
};

}  // namespace

struct os_process::state {
  os_command cmd;
  pid owner;
  void* reactor = nullptr;  // the node's os_reactor
  std::string key, supervisor, child;
  std::shared_ptr<output_log> log;
  std::optional<std::regex> ready;

  std::mutex spawn_mu;  // the start's outcome, also kept here in case its message was dropped
  bool spawned = false;
  int outcome_pid = 0;
  exit_reason outcome_error;

  std::atomic<int> pid_{0};
  std::atomic<bool> reaped{false};
  std::atomic<std::int64_t> owed{0};  // os_line messages sent, not taken

  std::mutex in_mu;  // stdin's queue, filled by the owner, emptied by the reactor
  std::deque<std::string> in_queue;
  std::size_t in_bytes = 0;
  bool in_closed = false;

  // Reactor thread only.
  int pidfd = -1, out_fd = -1, err_fd = -1, in_fd = -1;
  bool poll_exit = false;  // no pidfd (old kernel): waitid every tick
  bool out_paused = false;
  bool in_armed = false;  // EPOLLOUT on in_fd
  bool ready_seen = false;
  std::string partial[2];
  bool discarding[2] = {false, false};
  double tokens = 0;
  std::chrono::steady_clock::time_point refilled;
  std::uint64_t dropped = 0;                       // lines over the rate, not yet reported
  std::chrono::steady_clock::time_point reported;  // the last drop report
  watch watches[4];                                // out, err, in, exit
};

namespace {

using state = os_process::state;

int sys_pidfd_open(pid_t p) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, p, 0));
#else
  (void)p;
  errno = ENOSYS;
  return -1;
#endif
}

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// What the child reports through its error pipe when it cannot exec.
struct child_failure {
  int stage;
  int err;
};
enum stage : int { stage_setup = 1, stage_rlimit, stage_groups, stage_gid, stage_uid, stage_chdir, stage_exec };

const char* stage_name(int s) {
  switch (s) {
    case stage_rlimit:
      return "setrlimit";
    case stage_groups:
      return "setgroups";
    case stage_gid:
      return "setgid";
    case stage_uid:
      return "setuid";
    case stage_chdir:
      return "chdir";
    case stage_exec:
      return "exec";
    default:
      return "setup";
  }
}

std::string errno_atom(int err) {
  const char* name = strerrorname_np(err);
  std::string s = name ? name : std::to_string(err);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Everything a child needs, resolved before fork.
struct prepared {
  std::string program;  // the path execve gets
  std::vector<std::string> argv_s, env_s;
  std::vector<char*> argv, envp;
  bool set_ids = false;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  std::vector<std::pair<decltype(RLIMIT_AS), rlimit>> limits;
};

bool executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

// Throws process_error with the reason the start fails with.
prepared prepare(const os_command& c) {
  auto fail = [](const std::string& what) { throw process_error(exit_reason::other(what), "os_process"); };
  if (c.argv.empty() || c.argv[0].empty()) fail("{bad_command,empty_argv}");
  prepared p;
  // The environment: the node's (unless not inherited), with c.env added or replacing.
  std::map<std::string, std::string> env;
  if (c.inherit_env) {
    for (char** e = environ; e && *e; ++e) {
      std::string_view kv(*e);
      auto eq = kv.find('=');
      if (eq != std::string_view::npos) env.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
    }
  }
  for (auto& [k, v] : c.env) env[k] = v;
  for (auto& [k, v] : env) p.env_s.push_back(k + "=" + v);
  p.argv_s = c.argv;
  // The program: as given when it names a path, else the first executable in PATH (the
  // program's PATH when env sets one), as execvp looks.
  std::string checked;  // where the program is, seen from the node (a relative one is in cwd)
  if (c.argv[0].find('/') != std::string::npos) {
    p.program = c.argv[0];  // the child has changed to cwd when it execs
    checked = !c.cwd.empty() && p.program[0] != '/' ? c.cwd + "/" + p.program : p.program;
  } else {
    auto it = env.find("PATH");
    std::string path = it != env.end() ? it->second : "/usr/local/bin:/usr/bin:/bin";
    std::size_t start = 0;
    while (start <= path.size()) {
      auto end = path.find(':', start);
      if (end == std::string::npos) end = path.size();
      std::string dir = path.substr(start, end - start);
      if (dir.empty()) dir = ".";
      std::string candidate = dir + "/" + c.argv[0];
      if (executable(candidate)) {
        p.program = candidate;
        checked = candidate;
        if (candidate[0] != '/' && !c.cwd.empty()) {  // a relative PATH entry: the node's cwd, not the child's
          char here[4096];
          if (::getcwd(here, sizeof here)) p.program = std::string(here) + "/" + candidate;
        }
        break;
      }
      start = end + 1;
    }
    if (p.program.empty()) fail("{enoent," + c.argv[0] + "}");
  }
  if (!executable(checked)) fail("{" + errno_atom(errno) + "," + c.argv[0] + "}");
  // User and group: only root may change them.
  if (!c.user.empty() || !c.group.empty()) {
    if (::geteuid() != 0) fail("{not_root,user_or_group_needs_root}");
    p.set_ids = true;
    p.uid = ::getuid();
    p.gid = ::getgid();
    std::vector<char> buf(16384);
    if (!c.user.empty()) {
      passwd pw{};
      passwd* found = nullptr;
      if (::getpwnam_r(c.user.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found) {
        fail("{no_such_user," + c.user + "}");
      }
      p.uid = pw.pw_uid;
      p.gid = pw.pw_gid;
      int n = 64;
      p.groups.resize(static_cast<std::size_t>(n));
      if (::getgrouplist(c.user.c_str(), p.gid, p.groups.data(), &n) < 0) {
        p.groups.resize(static_cast<std::size_t>(n));
        ::getgrouplist(c.user.c_str(), p.gid, p.groups.data(), &n);
      }
      p.groups.resize(static_cast<std::size_t>(std::max(n, 0)));
    }
    if (!c.group.empty()) {
      group gr{};
      group* found = nullptr;
      if (::getgrnam_r(c.group.c_str(), &gr, buf.data(), buf.size(), &found) != 0 || !found) {
        fail("{no_such_group," + c.group + "}");
      }
      p.gid = gr.gr_gid;
      if (c.user.empty()) p.groups.clear();
      p.groups.insert(p.groups.begin(), p.gid);
    }
  }
  auto limit = [&](decltype(RLIMIT_AS) resource, std::optional<std::uint64_t> v, std::uint64_t extra_hard) {
    if (!v) return;
    rlimit r{};
    r.rlim_cur = static_cast<rlim_t>(*v);
    r.rlim_max = static_cast<rlim_t>(*v + extra_hard);
    p.limits.emplace_back(resource, r);
  };
  limit(RLIMIT_AS, c.limits.address_space, 0);
  limit(RLIMIT_NOFILE, c.limits.open_files, 0);
  limit(RLIMIT_CPU, c.limits.cpu_seconds, 1);  // SIGXCPU at the limit, SIGKILL a second later
  for (auto& a : p.argv_s) p.argv.push_back(a.data());
  p.argv.push_back(nullptr);
  for (auto& e : p.env_s) p.envp.push_back(e.data());
  p.envp.push_back(nullptr);
  return p;
}

// What the child needs, as plain data with pointers into a `prepared` that outlives it.
struct child_plan {
  const char* program = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* cwd = nullptr;  // null: the node's
  int fds[3] = {-1, -1, -1};  // to become 0, 1, 2
  int report_fd = -1;
  pid_t parent = 0;
  bool set_ids = false;
  uid_t uid = 0;
  gid_t gid = 0;
  const gid_t* groups = nullptr;
  std::size_t ngroups = 0;
  const std::pair<decltype(RLIMIT_AS), rlimit>* limits = nullptr;
  std::size_t nlimits = 0;
};

// The kernel's struct sigaction for rt_sigaction (not libc's).
struct kernel_sigaction {
  void (*handler)(int);
  unsigned long flags;
  void (*restorer)();
  unsigned long mask;
};

// The child, between clone and exec. It shares the node's memory (CLONE_VM) while the forking
// thread waits (CLONE_VFORK), so it writes nothing but its own stack and makes raw system
// calls only: no libc function that could take a lock another thread of the node holds, no
// sanitizer interceptor, and set*id for this one thread (glibc's would signal the node's).
#if defined(__SANITIZE_THREAD__)
#define GROVE_TSAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GROVE_TSAN_BUILD 1
#endif
#endif
#ifndef GROVE_TSAN_BUILD
#define GROVE_TSAN_BUILD 0
#endif
#if defined(__clang__)
#define GROVE_CHILD_ATTRS __attribute__((no_sanitize("address", "thread", "undefined")))
#else
#define GROVE_CHILD_ATTRS __attribute__((no_sanitize_address, no_sanitize_thread, no_sanitize_undefined))
#endif
// A raw call's result, -errno on failure. (syscall() sets errno, a thread-local the child
// shares with the waiting thread: harmless, that thread reads nothing before the child is done.)
GROVE_CHILD_ATTRS long sys(long r) { return r == -1 ? -static_cast<long>(errno) : r; }

GROVE_CHILD_ATTRS int child_dies(const child_plan& p, int stage, long err) {
  child_failure f{stage, static_cast<int>(-err)};
  ::syscall(SYS_write, p.report_fd, &f, sizeof f);
  ::syscall(SYS_exit, 127);
  return 0;
}

GROVE_CHILD_ATTRS int run_child(void* arg) {
  const child_plan& p = *static_cast<const child_plan*>(arg);
#define die(stage, r) child_dies(p, stage, r)
  // Every disposition back to the default (a handler of the node must never run here), then
  // the signals the forking thread blocked around clone unblocked.
  kernel_sigaction dfl{};
  dfl.handler = SIG_DFL;
  for (int sig = 1; sig < 65; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::syscall(SYS_rt_sigaction, sig, &dfl, nullptr, sizeof dfl.mask);
  }
  unsigned long none = 0;
  ::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, nullptr, sizeof none);
  ::syscall(SYS_setpgid, 0, 0);  // its own group: a Ctrl-C at the node's terminal is the node's alone
  for (std::size_t i = 0; i < p.nlimits; ++i) {
    if (long r = sys(::syscall(SYS_prlimit64, 0, p.limits[i].first, &p.limits[i].second, nullptr)); r < 0) {
      return die(stage_rlimit, r);
    }
  }
  if (p.set_ids) {
    if (long r = sys(::syscall(SYS_setgroups, p.ngroups, p.groups)); r < 0) return die(stage_groups, r);
    if (long r = sys(::syscall(SYS_setresgid, p.gid, p.gid, p.gid)); r < 0) return die(stage_gid, r);
    if (long r = sys(::syscall(SYS_setresuid, p.uid, p.uid, p.uid)); r < 0) return die(stage_uid, r);
  }
  // After the ids: a change of euid or egid clears the parent-death signal.
  if (long r = sys(::syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)); r < 0) return die(stage_setup, r);
  if (::syscall(SYS_getppid) != p.parent) ::syscall(SYS_exit, 127);  // the node died before the line above
  if (p.cwd) {
    if (long r = sys(::syscall(SYS_chdir, p.cwd)); r < 0) return die(stage_chdir, r);
  }
  for (int target = 0; target < 3; ++target) {
    if (p.fds[target] == target) {
      ::syscall(SYS_fcntl, target, F_SETFD, 0);  // already in place: only clear its close-on-exec
    } else if (long r = sys(::syscall(SYS_dup3, p.fds[target], target, 0)); r < 0) {
      return die(stage_setup, r);
    }
  }
  // Every other descriptor closes at exec (the report pipe too, which tells the parent exec
  // succeeded). close_range marks them all in one call; the loop is for kernels before 5.11.
  if (sys(::syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */)) < 0) {
    for (int fd = 3; fd < 65536; ++fd) {
      if (fd != p.report_fd) ::syscall(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC);
    }
  }
  const long r = sys(::syscall(SYS_execve, p.program, p.argv, p.envp));
  return die(stage_exec, r);
#undef die
}

// Starts the child with clone(CLONE_VM | CLONE_VFORK): unlike fork, it copies no page table,
// so its cost does not grow with the node (fork took 4.4 ms with 10,000 processes on the node,
// against 1.2 ms with none: bench/os_process). Returns when the child has exec'd or failed.
pid_t clone_child(child_plan& plan) {
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);  // no handler of the node may run in the child
  // A plain fork (the same child code, in memory of its own) where sharing the node's memory
  // would be wrong: under ThreadSanitizer, whose hooks run even at run_child's entry and exit;
  // and to change ids, which makes the memory of the process that does it non-dumpable — the
  // node's, with CLONE_VM. The group is then set on both sides (the child's may come late).
  pid_t child;
  if (GROVE_TSAN_BUILD || plan.set_ids) {
    child = ::fork();
    if (child == 0) run_child(&plan);
    if (child > 0) ::setpgid(child, child);
  } else {
    static constexpr std::size_t stack_size = 64 * 1024;
    // One stack serves every child: the thread that clones waits while a child uses it.
    static thread_local std::unique_ptr<char[]> stack(new char[stack_size]);
    child = ::clone(&run_child, stack.get() + stack_size, CLONE_VM | CLONE_VFORK | SIGCHLD, &plan);
  }
  const int err = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = err;
  return child;
}

class os_reactor {
 public:
  explicit os_reactor(node& n) : bus_(events(n)), logs_(n.service<os_log_registry>()) {
    ep_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ep_ < 0 || wake_ < 0) throw std::system_error(errno, std::generic_category(), "grove: os_process reactor");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = &wake_watch_;
    ::epoll_ctl(ep_, EPOLL_CTL_ADD, wake_, &ev);
    thread_ = std::thread([this] { run(); });
  }
  ~os_reactor() {
    submit([this] {
      stopping_ = true;
      for (auto& s : live_) kill_it(*s, SIGKILL);
    });
    thread_.join();
    ::close(wake_);
    ::close(ep_);
  }
  os_reactor(const os_reactor&) = delete;
  os_reactor& operator=(const os_reactor&) = delete;

  os_log_registry& logs() { return logs_; }

  // Runs fn on the reactor's thread.
  void submit(std::function<void()> fn) {
    {
      std::lock_guard lk(mu_);
      queue_.push_back(std::move(fn));
    }
    const std::uint64_t one = 1;
    (void)!::write(wake_, &one, sizeof one);
  }

  // On the reactor's thread: forks and execs s's program; the outcome goes to s->owner as a
  // spawn_outcome with `token`.
  struct spawn_outcome {
    std::uint64_t token;
    int os_pid;
    exit_reason error;
  };
  void spawn(const std::shared_ptr<state>& s, std::uint64_t token) {
    spawn_outcome out{token, 0, {}};
    try {
      out.os_pid = fork_exec(*s);
      if (out.os_pid > 0) {
        s->log = logs_.acquire(s->key, s->cmd.log_lines);
        s->pid_.store(out.os_pid, std::memory_order_release);
        live_.insert(s);
        std::string line = "-- started os pid " + std::to_string(out.os_pid) + ":";
        for (auto& a : s->cmd.argv) line += " " + a;
        publish(*s, os_stream::out, std::move(line), true, "debug");
      }
    } catch (const process_error& e) {
      out.error = e.reason();
    }
    {
      std::lock_guard lk(s->spawn_mu);
      s->outcome_pid = out.os_pid;
      s->outcome_error = out.error;
      s->spawned = true;
    }
    tell(s->owner, std::move(out));
  }

  // On the reactor's thread.
  void kill_it(state& s, int sig) {
    if (s.reaped.load(std::memory_order_relaxed) || s.pid_.load(std::memory_order_relaxed) <= 0) return;
    const int p = s.pid_.load(std::memory_order_relaxed);
    // The leader is not reaped yet, so its pid and group id cannot have been reused.
    if (s.cmd.kill_group) {
      ::kill(-p, sig);
    } else {
      ::kill(p, sig);
    }
  }
  void log_for_owner(state& s, os_stream stream, std::string text, bool cut) {
    if (s.log) log_line(s, stream, std::move(text), cut);
  }
  void want_write(const std::shared_ptr<state>& s) {
    if (s->in_fd >= 0) write_input(*s);
  }

 private:
  int fork_exec(state& s) {
    prepared p = prepare(s.cmd);
    int in_pipe[2] = {-1, -1}, out_pipe[2], err_pipe[2], report[2];
    auto close_all = [&] {
      for (int* pp : {in_pipe, out_pipe, err_pipe, report}) {
        for (int i = 0; i < 2; ++i) {
          if (pp[i] >= 0) ::close(pp[i]);
          pp[i] = -1;
        }
      }
    };
    out_pipe[0] = out_pipe[1] = err_pipe[0] = err_pipe[1] = report[0] = report[1] = -1;
    bool ok = ::pipe2(out_pipe, O_CLOEXEC) == 0 && ::pipe2(err_pipe, O_CLOEXEC) == 0 && ::pipe2(report, O_CLOEXEC) == 0;
    if (ok && s.cmd.input) {
      ok = ::pipe2(in_pipe, O_CLOEXEC) == 0;
    } else if (ok) {
      in_pipe[0] = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      ok = in_pipe[0] >= 0;
    }
    if (!ok) {
      const int err = errno;
      close_all();
      throw process_error(exit_reason::other("{" + errno_atom(err) + ",pipe}"), "os_process");
    }
    child_plan plan;
    plan.program = p.program.c_str();
    plan.argv = p.argv.data();
    plan.envp = p.envp.data();
    plan.cwd = s.cmd.cwd.empty() ? nullptr : s.cmd.cwd.c_str();
    plan.fds[0] = in_pipe[0];
    plan.fds[1] = out_pipe[1];
    plan.fds[2] = err_pipe[1];
    plan.report_fd = report[1];
    plan.parent = ::getpid();
    plan.set_ids = p.set_ids;
    plan.uid = p.uid;
    plan.gid = p.gid;
    plan.groups = p.groups.data();
    plan.ngroups = p.groups.size();
    plan.limits = p.limits.data();
    plan.nlimits = p.limits.size();
    const pid_t child = clone_child(plan);
    if (child < 0) {
      const int err = errno;
      close_all();
      throw process_error(exit_reason::other("{" + errno_atom(err) + ",clone}"), "os_process");
    }
    // The child has exec'd or failed by now (CLONE_VFORK): its group is set.
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    ::close(report[1]);
    ::close(in_pipe[0]);
    out_pipe[1] = err_pipe[1] = report[1] = in_pipe[0] = -1;
    child_failure f{};
    ssize_t got;
    do {
      got = ::read(report[0], &f, sizeof f);  // EOF at once when exec succeeded (close-on-exec)
    } while (got < 0 && errno == EINTR);
    ::close(report[0]);
    report[0] = -1;
    if (got == static_cast<ssize_t>(sizeof f)) {  // it could not exec: reap it and say why
      int status = 0;
      while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
      }
      close_all();
      std::string what = f.stage == stage_exec ? s.cmd.argv[0] : stage_name(f.stage);
      throw process_error(exit_reason::other("{" + errno_atom(f.err) + "," + what + "}"), "os_process");
    }
    s.out_fd = out_pipe[0];
    s.err_fd = err_pipe[0];
    s.in_fd = in_pipe[1];
    set_nonblocking(s.out_fd);
    set_nonblocking(s.err_fd);
    s.watches[0] = {&s, watch_kind::out};
    s.watches[1] = {&s, watch_kind::err};
    s.watches[2] = {&s, watch_kind::in};
    s.watches[3] = {&s, watch_kind::exit};
    add(s.out_fd, EPOLLIN, &s.watches[0]);
    add(s.err_fd, EPOLLIN, &s.watches[1]);
    if (s.in_fd >= 0) {
      set_nonblocking(s.in_fd);
      add(s.in_fd, 0, &s.watches[2]);  // errors only until there is input: EPOLLERR says the program closed it
    }
    s.pidfd = sys_pidfd_open(child);
    if (s.pidfd >= 0 && !add(s.pidfd, EPOLLIN, &s.watches[3])) close_fd(s.pidfd);
    s.poll_exit = s.pidfd < 0;  // no pidfd (a kernel before 5.3): waitid every tick
    s.tokens = s.cmd.lines_per_second;
    s.refilled = std::chrono::steady_clock::now();
    return child;
  }

  bool add(int fd, std::uint32_t events, watch* w, int op = EPOLL_CTL_ADD) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = w;
    return ::epoll_ctl(ep_, op, fd, &ev) == 0;
  }
  void close_fd(int& fd) {
    if (fd < 0) return;
    ::epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    fd = -1;
  }

  void run() {
    // A write to a program that closed its stdin must fail with EPIPE, not kill the node:
    // SIGPIPE from a write is directed at the writing thread, so blocking it here is enough.
    sigset_t pipe_only;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    ::pthread_sigmask(SIG_BLOCK, &pipe_only, nullptr);
    epoll_event evs[64];
    for (;;) {
      bool ticking = false;
      for (auto& s : live_) ticking |= s->poll_exit || s->out_paused || s->dropped > 0;
      const int n = ::epoll_wait(ep_, evs, 64, ticking ? tick_ms : -1);
      for (int i = 0; i < n; ++i) try {
          auto* w = static_cast<watch*>(evs[i].data.ptr);
          if (w == &wake_watch_) {
            run_commands();
            continue;
          }
          state& s = *w->s;
          if (s.reaped.load(std::memory_order_relaxed)) continue;  // ended earlier in this batch
          switch (w->what) {
            case watch_kind::out:
              read_stream(s, os_stream::out, read_chunk);
              break;
            case watch_kind::err:
              read_stream(s, os_stream::err, read_chunk);
              break;
            case watch_kind::in:
              if (evs[i].events & (EPOLLERR | EPOLLHUP)) {
                input_closed(s);
              } else {
                write_input(s);
              }
              break;
            case watch_kind::exit:
              finish(s);
              break;
            case watch_kind::command:
              break;
          }
        } catch (const std::exception& e) {  // an allocation failed, say: this program's turn is lost, not the node
          std::fprintf(stderr, "grove: os_process reactor: %s\n", e.what());
        }
      tick();
      ended_.clear();
      if (stopping_ && live_.empty()) return;
    }
  }

  void run_commands() {
    std::uint64_t v;
    (void)!::read(wake_, &v, sizeof v);
    std::vector<std::function<void()>> q;
    {
      std::lock_guard lk(mu_);
      q.swap(queue_);
    }
    for (auto& fn : q) {
      try {
        fn();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "grove: os_process reactor: %s\n", e.what());
      }
    }
  }

  void tick() {
    std::vector<state*> ended;
    for (auto& sp : live_) {
      state& s = *sp;
      if (s.out_paused && s.owed.load(std::memory_order_acquire) < owner_window / 2) {
        s.out_paused = false;
        add(s.out_fd, EPOLLIN, &s.watches[0]);
      }
      if (s.dropped > 0 && std::chrono::steady_clock::now() - s.reported >= std::chrono::seconds(1)) report_drops(s);
      if (s.poll_exit) {
        siginfo_t info{};
        if (::waitid(P_PID, static_cast<id_t>(s.pid_.load()), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            info.si_pid != 0) {
          ended.push_back(&s);
        }
      }
    }
    for (state* s : ended) finish(*s);
  }

  // Reads one chunk (or, when `limit` is larger, until EAGAIN or the limit); splits lines.
  // False at end of file.
  bool read_stream(state& s, os_stream stream, std::size_t limit) {
    int& fd = stream == os_stream::out ? s.out_fd : s.err_fd;
    if (fd < 0) return false;
    char buf[read_chunk];
    std::size_t total = 0;
    while (total < limit) {
      if (stream == os_stream::out && s.cmd.stdout_to_owner && !s.reaped &&
          s.owed.load(std::memory_order_acquire) >= owner_window && limit == read_chunk) {
        // The owner is behind: stop reading, the program blocks on a full pipe.
        ::epoll_ctl(ep_, EPOLL_CTL_DEL, fd, nullptr);
        s.out_paused = true;
        return true;
      }
      const ssize_t got = ::read(fd, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0 && errno == EAGAIN) return true;
      if (got <= 0) {
        flush_partial(s, stream);
        close_fd(fd);
        if (stream == os_stream::out) s.out_paused = false;
        return false;
      }
      total += static_cast<std::size_t>(got);
      split(s, stream, std::string_view(buf, static_cast<std::size_t>(got)));
      if (limit == read_chunk) return true;  // one chunk per wake-up: fair to the other programs
    }
    return true;
  }

  void split(state& s, os_stream stream, std::string_view data) {
    const int i = stream == os_stream::out ? 0 : 1;
    std::string& part = s.partial[i];
    const std::size_t max = std::max<std::size_t>(s.cmd.max_line, 1);
    while (!data.empty()) {
      const auto nl = data.find('\n');
      const std::string_view piece = data.substr(0, nl);
      if (!s.discarding[i]) {
        const std::size_t room = max - part.size();
        part.append(piece.substr(0, room));
        if (piece.size() > room) {  // too long: the first max bytes go out, the rest until '\n' is dropped
          emit(s, stream, std::move(part), true);
          part.clear();
          s.discarding[i] = true;
        }
      }
      if (nl == std::string_view::npos) break;
      if (!s.discarding[i]) {
        if (!part.empty() && part.back() == '\r') part.pop_back();
        emit(s, stream, std::move(part), false);
      }
      part.clear();
      s.discarding[i] = false;
      data.remove_prefix(nl + 1);
    }
  }
  void flush_partial(state& s, os_stream stream) {
    const int i = stream == os_stream::out ? 0 : 1;
    if (!s.partial[i].empty()) emit(s, stream, std::move(s.partial[i]), false);
    s.partial[i].clear();
    s.discarding[i] = false;
  }

  // Whether a line matches the ready pattern: on its first 4 KiB, and a pattern that fails
  // (libstdc++'s regex gives up on some inputs) matches nothing.
  static bool ready_match(const std::regex& re, const std::string& text) {
    try {
      const auto end = text.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(text.size(), 4096));
      return std::regex_search(text.begin(), end, re);
    } catch (const std::exception&) {
      return false;
    }
  }

  void emit(state& s, os_stream stream, std::string text, bool cut) {
    if (s.ready && !s.ready_seen && ready_match(*s.ready, text)) {
      s.ready_seen = true;
      // Logged whatever the rate (not delivered), before the owner hears: a start that
      // completed finds it there.
      publish(s, stream, text, false);
      tell(s.owner, os_ready{std::move(text)});
      return;
    }
    if (stream == os_stream::out && s.cmd.stdout_to_owner) {
      s.owed.fetch_add(1, std::memory_order_acq_rel);
      tell(s.owner, os_line{std::move(text), cut});
      return;
    }
    log_line(s, stream, std::move(text), cut);
  }

  // Logs and publishes a line within the rate (a token bucket: lines_per_second a second, as
  // many in a burst); counts it as dropped beyond. The count is reported by tick(), at most
  // once a second, outside the rate: under a flood the log still gets its share of lines.
  void log_line(state& s, os_stream stream, std::string text, bool cut) {
    const auto now = std::chrono::steady_clock::now();
    const double rate = std::max<double>(s.cmd.lines_per_second, 1);
    s.tokens = std::min(rate, s.tokens + rate * std::chrono::duration<double>(now - s.refilled).count());
    s.refilled = now;
    if (s.tokens < 1) {
      ++s.dropped;
      return;
    }
    s.tokens -= 1;
    if (cut) text += " [cut at " + std::to_string(s.cmd.max_line) + " bytes]";
    publish(s, stream, std::move(text), false);
  }
  void report_drops(state& s) {
    publish(s, os_stream::err,
            "-- dropped " + std::to_string(s.dropped) + " lines (more than " + std::to_string(s.cmd.lines_per_second) +
                " a second)",
            true);
    s.dropped = 0;
    s.reported = std::chrono::steady_clock::now();
  }

  // Logs and publishes (markers at `marker_level`: a start or exit is news to `logs --follow`,
  // not to the node's log).
  void publish(state& s, os_stream stream, std::string text, bool marker, const char* marker_level = "warning") {
    event e;
    e.kind = event_kind::output;
    e.supervisor = s.supervisor;
    e.child = s.child;
    e.old_pid = s.owner;
    e.label = to_string(stream);
    e.level = marker ? marker_level : stream == os_stream::out ? s.cmd.stdout_level : s.cmd.stderr_level;
    e.text = text;
    s.log->add(stream, std::move(text), marker);
    if (!stopping_) bus_.publish(std::move(e));
  }

  void write_input(state& s) {
    std::unique_lock lk(s.in_mu);
    while (!s.in_queue.empty() && s.in_fd >= 0) {
      std::string& front = s.in_queue.front();
      const ssize_t put = ::write(s.in_fd, front.data(), front.size());
      if (put < 0 && errno == EINTR) continue;
      if (put < 0 && errno == EAGAIN) break;
      if (put < 0) {  // EPIPE: the program closed its stdin
        lk.unlock();
        input_closed(s);
        return;
      }
      s.in_bytes -= static_cast<std::size_t>(put);
      if (static_cast<std::size_t>(put) == front.size()) {
        s.in_queue.pop_front();
      } else {
        front.erase(0, static_cast<std::size_t>(put));
      }
    }
    const bool want = !s.in_queue.empty() && s.in_fd >= 0;
    if (want != s.in_armed) {
      add(s.in_fd, want ? std::uint32_t{EPOLLOUT} : std::uint32_t{0}, &s.watches[2], EPOLL_CTL_MOD);
      s.in_armed = want;
    }
  }

  // The program closed its stdin: what waits for it is dropped, and the owner told.
  void input_closed(state& s) {
    {
      std::lock_guard lk(s.in_mu);
      if (s.in_closed) return;
      s.in_closed = true;
      s.in_queue.clear();
      s.in_bytes = 0;
    }
    close_fd(s.in_fd);
    s.in_armed = false;
    tell(s.owner, os_input_closed{});
  }

  // The program ended: what it wrote first, then its group, then the reaping, then the owner.
  void finish(state& s) {
    for (os_stream st : {os_stream::out, os_stream::err}) read_stream(s, st, drain_limit);
    for (os_stream st : {os_stream::out, os_stream::err}) flush_partial(s, st);
    const int p = s.pid_.load();
    // The leader is a zombie until reaped, which keeps its group id: what is left of the
    // group can still be reached without risk of hitting another process.
    if (s.cmd.kill_group) ::kill(-p, SIGKILL);
    int status = 0;
    pid_t got;
    while ((got = ::waitpid(p, &status, 0)) < 0 && errno == EINTR) {
    }
    const bool known = got == p;  // not when another part of the application reaped it (SIGCHLD ignored, waitpid(-1))
    s.reaped.store(true, std::memory_order_release);
    close_fd(s.out_fd);
    close_fd(s.err_fd);
    close_fd(s.pidfd);
    {
      std::lock_guard lk(s.in_mu);
      s.in_closed = true;
      s.in_queue.clear();
      s.in_bytes = 0;
    }
    close_fd(s.in_fd);
    os_exited x;
    x.reason = known ? os_exit_reason(status) : exit_reason::other("{exit_status,unknown}");
    x.status = known && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    x.signal = known && WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    x.os_pid = p;
    if (s.dropped > 0) report_drops(s);  // the last report is due whatever the time
    publish(s, os_stream::out, "-- os pid " + std::to_string(p) + " exited: " + x.reason.str(), true, "debug");
    logs_.release(s.log);
    tell(s.owner, std::move(x));
    // Kept until the end of this loop turn: events of this batch may still point at s.
    for (auto it = live_.begin(); it != live_.end(); ++it) {
      if (it->get() == &s) {
        ended_.push_back(*it);
        live_.erase(it);
        break;
      }
    }
  }

  event_bus& bus_;
  os_log_registry& logs_;
  int ep_ = -1, wake_ = -1;
  watch wake_watch_{};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::function<void()>> queue_;
  std::set<std::shared_ptr<state>> live_;
  std::vector<std::shared_ptr<state>> ended_;  // reaped during this loop turn
  bool stopping_ = false;
};

std::atomic<std::uint64_t> next_token{1};

}  // namespace

os_process os_process::start(const os_command& c) {
  if (!in_process()) throw not_in_process("os_process::start");
  node& n = this_node();
  auto& reactor = n.service<os_reactor>();
  auto s = std::make_shared<state>();
  s->cmd = c;
  s->owner = self();
  s->reactor = &reactor;
  if (!c.ready_line.empty()) {
    try {
      s->ready.emplace(c.ready_line, std::regex::ECMAScript);
    } catch (const std::regex_error&) {
      throw process_error(exit_reason::other("{bad_ready_pattern," + c.ready_line + "}"), "os_process");
    }
  }
  s->key = c.log_key;
  if (s->key.empty()) {
    auto i = info(self());
    s->key = i && !i->label.empty() ? i->label : self().str();
  }
  const auto slash = s->key.rfind('/');
  s->supervisor = slash == std::string::npos ? std::string() : s->key.substr(0, slash);
  s->child = slash == std::string::npos ? s->key : s->key.substr(slash + 1);
  const std::uint64_t token = next_token.fetch_add(1, std::memory_order_relaxed);
  reactor.submit([&reactor, s, token] { reactor.spawn(s, token); });
  // An owner ended while it waits (an exit signal) must not leave the program behind: the
  // kill is queued after the spawn, so it finds the program if there is one.
  struct abandon_guard {
    os_reactor& r;
    std::shared_ptr<state>& s;
    bool armed = true;
    ~abandon_guard() {
      if (armed) r.submit([&rr = r, st = s] { rr.kill_it(*st, SIGKILL); });
    }
  } guard{reactor, s};
  // The outcome comes as a message; a bounded mailbox that was full may have dropped it, so
  // the state is looked at when none came for a while.
  std::optional<std::pair<int, exit_reason>> outcome;
  while (!outcome) {
    const bool got = receive_for(std::chrono::milliseconds(100),
                                 when<os_reactor::spawn_outcome>(
                                     [token](const os_reactor::spawn_outcome& o) { return o.token == token; },
                                     [&](const os_reactor::spawn_outcome& o) { outcome.emplace(o.os_pid, o.error); }));
    if (!got) {
      std::lock_guard lk(s->spawn_mu);
      if (s->spawned) outcome.emplace(s->outcome_pid, s->outcome_error);
    }
  }
  guard.armed = false;
  if (outcome->first <= 0) throw process_error(outcome->second, "os_process");
  return os_process(std::move(s));
}

os_process& os_process::operator=(os_process&& o) noexcept {
  if (this != &o) {
    os_process old(std::move(*this));  // ends (and kills) what this held
    s_ = std::move(o.s_);
  }
  return *this;
}

os_process::~os_process() {
  if (!s_ || s_->reaped.load(std::memory_order_acquire)) return;
  auto* r = static_cast<os_reactor*>(s_->reactor);
  r->submit([r, st = s_] { r->kill_it(*st, SIGKILL); });
}

int os_process::os_pid() const noexcept { return s_ ? s_->pid_.load(std::memory_order_acquire) : 0; }

bool os_process::running() const noexcept { return s_ && !s_->reaped.load(std::memory_order_acquire); }

void os_process::signal(int sig) const {
  if (!running()) return;
  auto* r = static_cast<os_reactor*>(s_->reactor);
  r->submit([r, st = s_, sig] { r->kill_it(*st, sig); });
}

void os_process::stop() const {
  if (s_) signal(s_->cmd.stop_signal);
}

void os_process::kill() const { signal(SIGKILL); }

bool os_process::write_line(std::string_view text) const {
  if (!s_ || !s_->cmd.input) return false;
  bool was_empty;
  {
    std::lock_guard lk(s_->in_mu);
    if (s_->in_closed || s_->in_bytes + text.size() + 1 > input_capacity) return false;
    was_empty = s_->in_queue.empty();
    std::string line(text);
    line += '\n';
    s_->in_bytes += line.size();
    s_->in_queue.push_back(std::move(line));
  }
  if (was_empty) {
    auto* r = static_cast<os_reactor*>(s_->reactor);
    r->submit([r, st = s_] { r->want_write(st); });
  }
  return true;
}

void os_process::took_lines(std::size_t n) const {
  if (s_) s_->owed.fetch_sub(static_cast<std::int64_t>(n), std::memory_order_acq_rel);
}

void os_process::log(os_stream stream, std::string text, bool cut) const {
  if (!s_) return;
  auto* r = static_cast<os_reactor*>(s_->reactor);
  r->submit(
      [r, st = s_, stream, t = std::move(text), cut]() mutable { r->log_for_owner(*st, stream, std::move(t), cut); });
}

const std::string& os_process::log_key() const noexcept {
  static const std::string none;
  return s_ ? s_->key : none;
}

std::optional<std::vector<os_log_line>> os_log(node& n, const std::string& key, std::size_t last) {
  auto log = n.service<os_log_registry>().find(key);
  if (!log) return std::nullopt;
  std::lock_guard lk(log->mu);
  std::vector<os_log_line> out;
  const std::size_t take = std::min(last, log->lines.size());
  const std::uint64_t first = log->lines.empty() ? log->seq + 1 : log->lines.front().seq;
  const std::size_t skip = log->lines.size() - take;
  if (first > 1 && take > 0) {  // lines the log no longer holds
    os_log_line m;
    m.seq = 0;
    m.time = log->lines[skip].time;
    m.text = "-- " + std::to_string(first - 1) +
             " earlier lines no longer kept (log_lines: " + std::to_string(log->capacity) + ")";
    m.marker = true;
    out.push_back(std::move(m));
  }
  for (std::size_t i = skip; i < log->lines.size(); ++i) out.push_back(log->lines[i]);
  return out;
}

}  // namespace grove
