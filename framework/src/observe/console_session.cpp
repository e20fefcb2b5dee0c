// A console session: the process that reads a client's lines and answers them.
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include <grove/behaviours/dynamic_supervisor.hpp>
#include <grove/behaviours/gen_server.hpp>
#include <grove/behaviours/name_registry.hpp>
#include <grove/behaviours/supervisor.hpp>
#include <grove/dist/distribution.hpp>
#include <grove/observe/events.hpp>
#include <grove/runtime/os_process.hpp>

#include "console_impl.hpp"

namespace grove::detail {

namespace {

// A count given to a command: digits only ("5abc", "-1" and "+3" are refused, not read as 5,
// 2^64-1 or 3); values past what any list holds are capped.
std::optional<std::size_t> count_arg(const std::string& text) {
  if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  return static_cast<std::size_t>(std::stoull(text));
}

using json = nlohmann::ordered_json;

struct answer {
  bool ok = true;
  std::string text;  // for people: lines, each ending with '\n'
  json data;         // for scripts
  static answer error(std::string what) {
    answer a;
    a.ok = false;
    a.text = std::move(what);
    return a;
  }
};

class session;
using command_args = std::vector<std::string>;

// A console command: its name, usage and summary (help), and what runs it. The table is
// command_table(), defined after the session class whose members it names.
struct command_info {
  const char* name;
  const char* usage;
  const char* summary;
  answer (session::*run)(const std::string& cmd, const command_args& args, bool& quit);
};
const std::vector<command_info>& command_table();

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

// The candidate within two edits of w (the closest), or "": a likely typo.
std::string nearest_word(const std::string& w, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = 3;
  for (const std::string& n : candidates) {
    std::vector<std::size_t> prev(n.size() + 1), cur(n.size() + 1);
    for (std::size_t j = 0; j <= n.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= w.size(); ++i) {
      cur[0] = i;
      for (std::size_t j = 1; j <= n.size(); ++j) {
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (w[i - 1] == n[j - 1] ? 0 : 1)});
      }
      std::swap(prev, cur);
    }
    if (prev[n.size()] < best_d) {
      best_d = prev[n.size()];
      best = n;
    }
  }
  return best;
}

std::string nearest_command(const std::string& w) {
  std::vector<std::string> names;
  for (auto& c : command_table()) names.emplace_back(c.name);
  return nearest_word(w, names);
}

// Whether a guess is the token, in a time that depends on the guess's length only: no early
// exit at the first differing byte to time.

std::string pid_text(const pid& p) { return p ? p.str() : "-"; }
json pid_json(const pid& p) { return p ? json(p.str()) : json(nullptr); }

exit_reason parse_reason(const std::string& r) {
  if (r == "normal") return exit_reason::normal();
  if (r == "shutdown") return exit_reason::shutdown();
  if (r == "kill") return exit_reason::kill();
  if (r.rfind("{shutdown,", 0) == 0 && r.back() == '}') return exit_reason::shutdown(r.substr(10, r.size() - 11));
  return exit_reason::other(r);
}

std::string human_duration(duration d) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  if (us < 1000) return std::to_string(us) + "us";
  if (us < 10'000'000) return std::to_string(us / 1000) + "ms";
  return std::to_string(us / 1'000'000) + "s";
}

// Aligned columns for text answers.
// The width of s on a terminal: colour escapes take no room.
std::size_t visible(const std::string& s) {
  std::size_t n = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\x1b') {
      while (i < s.size() && s[i] != 'm') ++i;
      continue;
    }
    ++n;
  }
  return n;
}

std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> w;
  for (auto& r : rows) {
    if (w.size() < r.size()) w.resize(r.size());
    for (std::size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], visible(r[i]));
  }
  std::string out;
  for (auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(w[i] - visible(r[i]) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

struct path_target {
  pid parent;  // the supervisor holding the last segment (empty for an application)
  bool parent_dynamic = false;
  std::string id;
  pid who;
  std::string key;  // the child's path as its reports and its OS-process log name it (parent's path/id)
};

class session {
 public:
  session(std::shared_ptr<console_output> out, std::shared_ptr<console_link> link,
          std::shared_ptr<const console_session_config> cfg)
      : out_(std::move(out)),
        link_(std::move(link)),
        cfg_(std::move(cfg)),
        authed_(link_->authed()),
        color_(cfg_->color) {}

  void run() {
    out_->answer(std::string("grove console on node ") + this_node().name() + " — `help` lists the commands\n" +
                 prompt());
    serve();
  }

  // One command answered in JSON, without greeting; a command that streams (events --follow)
  // goes on until the connection is closed.
  void run_one(const std::string& line) {
    json_ = true;
    if (on_line(line) && (follow_ || !logs_followed_.empty())) serve();
  }

 private:
  void serve() {
    for (;;) {
      bool more = true;
      // One line per receive: the runtime's turn budget lets others on this thread run
      // between them, however long the backlog.
      receive([&](console_line l) { more = take(l); }, [&](console_eof) { more = false; },
              [&](console_closed) { more = false; }, [&](console_acked) {},
              [&](subscription::ready) { pump_events(); });
      if (!more) break;
    }
    for (const pid& p : traced_) {  // a trace outlives no session
      try {
        sys::trace(p, false, cfg_->opts.command_timeout);
      } catch (const call_error&) {
      }
    }
  }

  std::string prompt() const { return json_ ? "" : "grove> "; }

  std::string paint(const std::string& s, const char* code) const {
    return color_ ? std::string("\x1b[") + code + "m" + s + "\x1b[0m" : s;
  }
  std::string status_word(const std::string& s) const {
    if (s == "running" || s == "waiting" || s == "runnable") return paint(s, "32");
    if (s == "restarting" || s == "suspended") return paint(s, "33");
    if (s == "stopped" || s == "dead" || s == "exiting") return paint(s, "31");
    return s;
  }

  // False: the session ends.
  bool take(const console_line& l) {
    // The connection is gone: the lines it left are dropped, not run.
    if (link_->gone()) return false;
    // After EOF: a client that closed rather than half-closed is only seen when an answer
    // bounces, so each line waits until the answers before it were acknowledged.
    if (link_->input_ended() && !confirmed()) return false;
    const bool more = l.too_long ? too_long() : on_line(l.text);
    link_->ran(console_link::cost(l.text));
    return more;
  }

  // True once the client acknowledged everything sent; false when the connection is gone.
  bool confirmed() {
    link_->ask_confirm();
    return receive([](console_acked) { return true; }, [](console_closed) { return false; });
  }

  bool too_long() {
    out_->answer("error: line too long (the limit is " + std::to_string(cfg_->opts.max_line) + " bytes)\n" + prompt());
    return true;
  }

  bool on_line(const std::string& line) {
    auto words = split(line);
    bool as_json = json_;
    std::erase_if(words, [&](const std::string& w) {
      if (w != "--json") return false;
      as_json = true;
      return true;
    });
    if (words.empty()) {
      if (!json_) out_->answer(prompt());
      return true;
    }
    const std::string cmd = words[0];
    words.erase(words.begin());
    answer a;
    bool quit = false;
    if (!authed_ && cmd != "auth" && cmd != "quit" && cmd != "help") {
      a = answer::error("authenticate first: auth TOKEN");
    } else {
      try {
        a = dispatch(cmd, words, quit);
      } catch (const call_error& e) {
        a = answer::error(e.what());
      } catch (const process_exit&) {
        throw;
      } catch (const std::exception& e) {
        a = answer::error(std::string("failed: ") + e.what());
      }
    }
    quit = quit || close_after_answer_;
    write(cmd, a, as_json, !quit);
    if (quit) out_->close();
    return !quit;
  }

  void write(const std::string& cmd, const answer& a, bool as_json, bool more) {
    const std::string next = more ? prompt() : std::string();
    if (as_json) {
      json j;
      j["ok"] = a.ok;
      j["command"] = cmd;
      if (a.ok) {
        j["result"] = a.data;
      } else {
        j["error"] = a.text;
      }
      out_->answer(j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n" + next);
    } else if (!a.ok) {
      out_->answer(paint("error: " + a.text, "31") + "\n" + next);
    } else {
      out_->answer(a.text + next);
    }
  }

  friend const std::vector<command_info>& command_table();
  // Each command with the table's signature (command_table).
  answer run_help(const std::string&, const command_args& a, bool&) { return help(a); }
  answer run_quit(const std::string&, const command_args&, bool& quit) {
    quit = true;
    answer a;
    a.text = "bye\n";
    a.data = "bye";
    return a;
  }
  answer run_exit(const std::string& cmd, const command_args& a, bool& quit) {
    return a.empty() ? run_quit(cmd, a, quit) : signal(cmd, a);  // `exit` alone ends the session
  }
  answer run_auth(const std::string&, const command_args& a, bool&) { return auth(a); }
  answer run_toggle(const std::string& cmd, const command_args& a, bool&) { return toggle(cmd, a); }
  answer run_apps(const std::string&, const command_args&, bool&) { return apps(); }
  answer run_tree(const std::string&, const command_args& a, bool&) { return tree(a); }
  answer run_ps(const std::string&, const command_args& a, bool&) { return ps(a); }
  answer run_info(const std::string&, const command_args& a, bool&) { return info_of(a); }
  answer run_state(const std::string&, const command_args& a, bool&) { return state(a); }
  answer run_events(const std::string&, const command_args& a, bool&) { return events_cmd(a); }
  answer run_signal(const std::string& cmd, const command_args& a, bool&) { return signal(cmd, a); }
  answer run_child_op(const std::string& cmd, const command_args& a, bool&) { return child_op(cmd, a); }
  answer run_start(const std::string& cmd, const command_args& a, bool&) { return start_from_template(cmd, a); }
  answer run_suspend(const std::string& cmd, const command_args& a, bool&) { return suspend(cmd, a); }
  answer run_trace(const std::string&, const command_args& a, bool&) { return trace_cmd(a); }
  answer run_stats(const std::string&, const command_args&, bool&) { return stats(); }
  answer run_nodes(const std::string&, const command_args&, bool&) { return nodes(); }
  answer run_logs(const std::string&, const command_args& a, bool&) { return logs_cmd(a); }
  answer run_sync(const std::string&, const command_args& a, bool&) { return sync_cmd(a); }

  answer dispatch(const std::string& cmd, const std::vector<std::string>& args, bool& quit) {
    if (const command_info* c = find_command(cmd)) return (this->*c->run)(cmd, args, quit);
    std::string hint = nearest_command(cmd);
    return answer::error("unknown command '" + cmd + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)") +
                         "; `help` lists the commands");
  }

  static const command_info* find_command(const std::string& name) {
    for (auto& c : command_table()) {
      if (name == c.name) return &c;
    }
    return nullptr;
  }

  answer usage(const std::string& cmd) {
    const command_info* c = find_command(cmd);
    return answer::error(std::string("usage: ") + (c ? c->usage : cmd.c_str()));
  }

  answer help(const std::vector<std::string>& args) {
    answer a;
    if (!args.empty()) {
      const command_info* c = find_command(args[0]);
      if (!c) return answer::error("no command '" + args[0] + "'; `help` lists the commands");
      a.text = std::string(c->usage) + "\n  " + c->summary +
               "\nTARGET: a pid <n.s.g>, a registered name, or a tree path such as app/child\n";
      a.data = json{{"command", c->name}, {"usage", c->usage}, {"summary", c->summary}};
      return a;
    }
    std::vector<std::vector<std::string>> rows;
    a.data = json::array();
    for (auto& c : command_table()) {
      rows.push_back({c.usage, c.summary});
      a.data.push_back(json{{"command", c.name}, {"usage", c.usage}, {"summary", c.summary}});
    }
    a.text = table(rows) + "TARGET: a pid <n.s.g>, a registered name, or a tree path such as app/child\n";
    return a;
  }

  answer auth(const std::vector<std::string>& args) {
    if (args.size() != 1) return usage("auth");
    if (cfg_->opts.token.empty() || same_secret(args[0], cfg_->opts.token)) {
      authed_ = true;
      link_->set_authed();
      answer a;
      a.text = "authenticated\n";
      a.data = "authenticated";
      return a;
    }
    // The answer waits, and the session reads nothing meanwhile: guessing costs time. The
    // delay doubles with each wrong token; the third ends the session.
    const auto delay = cfg_->opts.auth_delay * (1 << std::min(failed_auth_, 8));
    if (++failed_auth_ >= 3) close_after_answer_ = true;
    if (receive_for(delay, [](console_closed) {})) close_after_answer_ = true;  // gone meanwhile
    return answer::error("wrong token");
  }

  answer toggle(const std::string& cmd, const std::vector<std::string>& args) {
    if (args.size() != 1 || (args[0] != "on" && args[0] != "off")) return usage(cmd);
    const bool on = args[0] == "on";
    if (cmd == "json") {
      json_ = on;
      out_->set_json(on);
    } else {
      color_ = on;
    }
    answer a;
    a.text = cmd + " " + args[0] + "\n";
    a.data = on;
    return a;
  }

  std::vector<console_app> app_list() const {
    return cfg_->opts.applications ? cfg_->opts.applications() : std::vector<console_app>{};
  }

  answer apps() {
    answer a;
    a.data = json::array();
    std::vector<std::vector<std::string>> rows{{"APPLICATION", "START", "SUPERVISOR", "STATUS"}};
    for (auto& app : app_list()) {
      const bool up = app.top && alive(app.top);
      rows.push_back({app.name, app.start_type, pid_text(app.top), status_word(up ? "running" : "stopped")});
      a.data.push_back(json{{"name", app.name},
                            {"start", app.start_type},
                            {"supervisor", pid_json(app.top)},
                            {"status", up ? "running" : "stopped"}});
    }
    a.text = rows.size() == 1 ? "no applications\n" : table(rows);
    return a;
  }

  // The distribution: this node's name and its connected peers (docs/concepts/distribution.md).
  answer nodes() {
    answer a;
    const dist::distribution* d = dist::find_distribution(this_node());
    if (!d) {
      a.text = "distribution is off (start the node with --sname NAME, or set node.distribution in its YAML)\n";
      a.data = json{{"node", nullptr}, {"peers", json::array()}};
      return a;
    }
    a.data = json{{"node", d->name()}, {"creation", d->creation()}, {"port", d->port()}, {"peers", json::array()}};
    std::vector<std::vector<std::string>> rows{{"NODE", "TYPE", "CONNECTED BY"}};
    auto peers = d->peers();
    std::sort(peers.begin(), peers.end(), [](const auto& x, const auto& y) { return x.name < y.name; });
    for (auto& p : peers) {
      const char* type = p.hidden ? "hidden" : "visible";
      const char* by = p.initiated ? "this node" : "the peer";
      rows.push_back({p.name, type, by});
      a.data["peers"].push_back(json{{"name", p.name}, {"type", type}, {"initiated", p.initiated}});
    }
    a.text = "this node: " + d->name() + " (port " + std::to_string(d->port()) + ")\n" +
             (rows.size() == 1 ? std::string("no connected nodes\n") : table(rows));
    return a;
  }

  // ---- targets ----

  std::optional<path_target> resolve_path(const std::string& path, std::string& err) {
    std::vector<std::string> segs;
    std::string seg;
    std::istringstream in(path);
    while (std::getline(in, seg, '/')) {
      if (!seg.empty()) segs.push_back(seg);
    }
    if (segs.empty()) {
      err = "empty path";
      return std::nullopt;
    }
    path_target t;
    for (auto& app : app_list()) {
      if (app.name == segs[0]) t.who = app.top;
    }
    if (!t.who) {
      err = "no application '" + segs[0] + "'";
      if (segs.size() == 1 && whereis(segs[0])) {
        err +=
            "; " + segs[0] + " is a registered name: give the child's path, app/.../" + segs[0] + " (`tree` shows it)";
      }
      return std::nullopt;
    }
    t.id = segs[0];
    for (std::size_t i = 1; i < segs.size(); ++i) {
      auto st = supervisor_status_of(t.who, cfg_->opts.command_timeout);
      // A dynamic supervisor's children have no ids of their own: they are named by pid.
      const std::optional<pid> by_pid = st.dynamic ? parse_pid(segs[i]) : std::nullopt;
      auto it = std::find_if(st.children.begin(), st.children.end(),
                             [&](const child_info& c) { return by_pid ? c.who == *by_pid : c.id == segs[i]; });
      if (it == st.children.end()) {
        err = "no child '" + segs[i] + "' under " + st.path;
        return std::nullopt;
      }
      if (i + 1 < segs.size() && it->type != child_type::supervisor) {
        err = st.path + "/" + segs[i] + " is a worker: it has no children";
        return std::nullopt;
      }
      if (i + 1 < segs.size() && !it->who) {
        err = st.path + "/" + segs[i] + " is not running";
        return std::nullopt;
      }
      t.parent = t.who;
      t.parent_dynamic = st.dynamic;
      t.id = it->id;
      t.key = st.path + "/" + it->id;
      t.who = it->who;
    }
    return t;
  }

  std::optional<pid> resolve(const std::string& target, std::string& err) {
    if (target.starts_with('<') && !parse_pid(target)) {
      err = "malformed pid '" + target + "' (expected <node.slot.generation>, like <1.42.0>)";
      return std::nullopt;
    }
    if (auto p = parse_pid(target)) {
      if (!alive(*p)) {
        err = "no process " + target + " (noproc)";
        return std::nullopt;
      }
      return p;
    }
    if (target.find('/') == std::string::npos) {
      if (auto p = whereis(target)) return p;
      bool is_app = false;
      for (auto& app : app_list()) is_app |= app.name == target;
      if (!is_app) {
        err = "no process named '" + target + "' (noproc)";
        return std::nullopt;
      }
    }
    auto t = resolve_path(target, err);
    if (!t) return std::nullopt;
    if (!t->who) {
      err = target + " is not running (noproc)";
      return std::nullopt;
    }
    return t->who;
  }

  // ---- tree ----

  void tree_of(const pid& sup, const std::string& id, int depth, std::vector<std::vector<std::string>>& rows,
               json& node) {
    const std::string indent(static_cast<std::size_t>(depth) * 2, ' ');
    supervisor_status st;
    try {
      st = supervisor_status_of(sup, cfg_->opts.command_timeout);
    } catch (const call_error& e) {
      rows.push_back({indent + id, pid_text(sup), "supervisor", status_word("unknown"), "-", e.reason().str()});
      node = json{{"id", id}, {"pid", pid_json(sup)}, {"type", "supervisor"}, {"error", e.reason().str()}};
      return;
    }
    const std::string window = std::to_string(st.restarts) + "/" + std::to_string(st.intensity) + " in " +
                               std::to_string(st.period.count()) + "s";
    rows.push_back({indent + id, pid_text(sup), st.dynamic ? "dynamic_supervisor" : to_string(st.strategy),
                    status_word("running"), window, ""});
    node = json{{"id", id},
                {"pid", pid_json(sup)},
                {"type", st.dynamic ? "dynamic_supervisor" : "supervisor"},
                {"strategy", st.dynamic ? "one_for_one" : to_string(st.strategy)},
                {"status", "running"},
                {"restarts", st.restarts},
                {"intensity", st.intensity},
                {"period_s", st.period.count()},
                {"children", json::array()}};
    for (auto& c : st.children) {
      const std::string last = c.last_exit ? c.last_exit->str() : "";
      if (c.type == child_type::supervisor && c.who) {
        json sub;
        tree_of(c.who, c.id, depth + 1, rows, sub);
        sub["child_restarts"] = c.restarts;
        if (c.last_exit) sub["last_exit"] = last;
        node["children"].push_back(std::move(sub));
        continue;
      }
      const std::string status = c.who ? "running" : (c.restarting ? "restarting" : "stopped");
      rows.push_back({indent + "  " + c.id, pid_text(c.who), c.type == child_type::supervisor ? "supervisor" : "worker",
                      status_word(status), std::to_string(c.restarts), last});
      node["children"].push_back(json{{"id", c.id},
                                      {"pid", pid_json(c.who)},
                                      {"type", c.type == child_type::supervisor ? "supervisor" : "worker"},
                                      {"status", status},
                                      {"restarts", c.restarts},
                                      {"last_exit", c.last_exit ? json(last) : json(nullptr)}});
    }
  }

  answer tree(const std::vector<std::string>& args) {
    if (args.size() > 1) return usage("tree");
    std::vector<std::pair<std::string, pid>> roots;
    if (args.empty()) {
      for (auto& app : app_list()) roots.emplace_back(app.name, app.top);
    } else {
      std::string err;
      auto t = resolve_path(args[0], err);
      if (!t) return answer::error(err);
      if (!t->who) return answer::error(args[0] + " is not running");
      if (t->parent) {  // is it a supervisor?
        auto st = supervisor_status_of(t->parent, cfg_->opts.command_timeout);
        for (auto& c : st.children) {
          if (c.id == t->id && c.type != child_type::supervisor) return answer::error(args[0] + " is a worker");
        }
      }
      roots.emplace_back(t->id, t->who);
    }
    answer a;
    a.data = json::array();
    std::vector<std::vector<std::string>> rows{{"ID", "PID", "TYPE", "STATUS", "RESTARTS", "LAST EXIT"}};
    for (auto& [name, top] : roots) {
      json node;
      if (!top || !alive(top)) {
        rows.push_back({name, "-", "supervisor", status_word("stopped"), "-", ""});
        a.data.push_back(json{{"id", name}, {"pid", nullptr}, {"status", "stopped"}});
        continue;
      }
      tree_of(top, name, 0, rows, node);
      a.data.push_back(std::move(node));
    }
    a.text = rows.size() == 1 ? "no applications\n" : table(rows);
    return a;
  }

  // ---- processes ----

  static std::string name_or_label(const process_info& i) {
    if (auto n = names().name_of(i.pid)) return *n;
    return i.label;
  }

  answer ps(const std::vector<std::string>& args) {
    std::string sort = "pid";
    std::size_t top = 0;
    for (std::size_t i = 0; i < args.size(); ++i) {
      if (args[i] == "--sort" && i + 1 < args.size()) {
        sort = args[++i];
        if (sort != "mailbox" && sort != "messages" && sort != "memory" && sort != "running") {
          return answer::error("--sort takes mailbox, messages, memory or running, not '" + sort + "'");
        }
      } else if (args[i] == "--top" && i + 1 < args.size()) {
        auto n = count_arg(args[++i]);
        if (!n) return answer::error("--top takes a whole number, not '" + args[i] + "'");
        top = *n;
      } else {
        return usage("ps");
      }
    }
    std::vector<process_info> all;
    for (auto& p : this_node().processes()) {
      if (auto i = grove::info(p)) all.push_back(std::move(*i));
    }
    auto key = [&](const process_info& i) -> std::uint64_t {
      if (sort == "mailbox") return i.mailbox_length;
      if (sort == "messages") return i.messages_in + i.messages_out;
      if (sort == "memory") return i.stack_size + i.mailbox_length * 64;
      if (sort == "running") return static_cast<std::uint64_t>(i.running_for.count());
      return 0;
    };
    if (sort != "pid") {
      std::stable_sort(all.begin(), all.end(), [&](const auto& x, const auto& y) { return key(x) > key(y); });
    }
    if (top && all.size() > top) all.resize(top);
    answer a;
    a.data = json::array();
    std::vector<std::vector<std::string>> rows{{"PID", "NAME", "STATUS", "MAILBOX", "IN", "OUT", "RUNNING", "STACK"}};
    for (auto& i : all) {
      const std::string name = name_or_label(i);
      const std::string running = i.status == process_status::running ? human_duration(i.running_for) : "-";
      rows.push_back({i.pid.str(), name.empty() ? "-" : name, status_word(to_string(i.status)),
                      std::to_string(i.mailbox_length), std::to_string(i.messages_in), std::to_string(i.messages_out),
                      running, i.stack_size ? std::to_string(i.stack_size / 1024) + "K" : "-"});
      a.data.push_back(
          json{{"pid", i.pid.str()},
               {"name", name},
               {"status", to_string(i.status)},
               {"mailbox", i.mailbox_length},
               {"messages_in", i.messages_in},
               {"messages_out", i.messages_out},
               {"running_us", std::chrono::duration_cast<std::chrono::microseconds>(i.running_for).count()},
               {"stack_bytes", i.stack_size}});
    }
    a.text = table(rows);
    return a;
  }

  answer info_of(const std::vector<std::string>& args) {
    if (args.size() != 1) return usage("info");
    std::string err;
    auto p = resolve(args[0], err);
    if (!p) return answer::error(err);
    auto i = grove::info(*p);
    if (!i) return answer::error("no process " + p->str() + " (noproc)");
    auto list = [](const std::vector<pid>& v) {
      std::string s;
      for (auto& x : v) s += (s.empty() ? "" : " ") + x.str();
      return s.empty() ? std::string("-") : s;
    };
    auto json_list = [](const std::vector<pid>& v) {
      json j = json::array();
      for (auto& x : v) j.push_back(x.str());
      return j;
    };
    const auto peek = peek_mailbox(*p, 5);
    std::string peek_text;
    for (auto& t : peek) peek_text += "\n    " + t;
    const std::string name = name_or_label(*i);
    answer a;
    std::vector<std::vector<std::string>> rows{
        {"pid", i->pid.str()},
        {"name", names().name_of(*p).value_or("-")},
        {"label", i->label.empty() ? "-" : i->label},
        {"form", i->handler_form ? "handler (GenServer or other behaviour)" : "body"},
        {"status", status_word(to_string(i->status))},
        {"trap_exit", i->trap_exit ? "true" : "false"},
        {"links", list(i->links)},
        {"monitors", list(i->monitors)},
        {"monitored_by", list(i->monitored_by)},
        {"stack", i->stack_size ? std::to_string(i->stack_size) + " bytes" : "- (no stack while idle)"},
        {"scheduler", i->scheduler < 0 ? "-" : std::to_string(i->scheduler)},
        {"messages", std::to_string(i->messages_in) + " in, " + std::to_string(i->messages_out) + " out"},
        {"mailbox", std::to_string(i->mailbox_length) + " queued" + (peek.empty() ? "" : ", next:")}};
    a.text = table(rows);
    if (!peek_text.empty()) a.text.insert(a.text.size() - 1, peek_text);
    a.data = json{{"pid", i->pid.str()},
                  {"name", names().name_of(*p) ? json(*names().name_of(*p)) : json(nullptr)},
                  {"label", i->label},
                  {"handler", i->handler_form},
                  {"status", to_string(i->status)},
                  {"trap_exit", i->trap_exit},
                  {"links", json_list(i->links)},
                  {"monitors", json_list(i->monitors)},
                  {"monitored_by", json_list(i->monitored_by)},
                  {"stack_bytes", i->stack_size},
                  {"scheduler", i->scheduler},
                  {"messages_in", i->messages_in},
                  {"messages_out", i->messages_out},
                  {"mailbox", i->mailbox_length},
                  {"mailbox_peek", peek}};
    return a;
  }

  // A GenServer target: a handler process (anything else would never answer sys messages).
  std::optional<pid> server(const std::vector<std::string>& args, const char* cmd, std::string& err) {
    if (args.empty()) {
      err = std::string("usage: ") + find_command(cmd)->usage;
      return std::nullopt;
    }
    auto p = resolve(args[0], err);
    if (!p) return std::nullopt;
    auto i = grove::info(*p);
    if (!i || !i->handler_form) {
      err = args[0] + " is not a GenServer";
      return std::nullopt;
    }
    return p;
  }

  answer state(const std::vector<std::string>& args) {
    if (args.size() != 1) return usage("state");
    std::string err;
    auto p = server(args, "state", err);
    if (!p) return answer::error(err);
    answer a;
    const std::string s = sys::get_state(*p, cfg_->opts.command_timeout);
    a.text = s + "\n";
    a.data = json{{"pid", p->str()}, {"state", s}};
    try {  // JSON also gives the server's last messages (sys's log of 16), oldest first
      a.data["recent"] = sys::last_events(*p, cfg_->opts.command_timeout);
    } catch (const call_error&) {  // it ended meanwhile: the state stands
    }
    return a;
  }

  answer suspend(const std::string& cmd, const std::vector<std::string>& args) {
    if (args.size() != 1) return usage(cmd);
    std::string err;
    auto p = server(args, cmd.c_str(), err);
    if (!p) return answer::error(err);
    if (cmd == "suspend") {
      sys::suspend(*p, cfg_->opts.command_timeout);
    } else {
      sys::resume(*p, cfg_->opts.command_timeout);
    }
    answer a;
    a.text = p->str() + (cmd == "suspend" ? " suspended\n" : " resumed\n");
    a.data = json{{"pid", p->str()}, {"status", cmd == "suspend" ? "suspended" : "resumed"}};
    return a;
  }

  answer signal(const std::string& cmd, const std::vector<std::string>& args) {
    if (args.empty() || args.size() > 2 || (cmd == "exit" && args.size() != 2)) return usage(cmd);
    std::string err;
    auto p = resolve(args[0], err);
    if (!p) return answer::error(err);
    const exit_reason r = args.size() == 2 ? parse_reason(args[1]) : exit_reason::kill();
    exit(*p, r);
    answer a;
    a.text = "sent exit signal " + r.str() + " to " + p->str() + "\n";
    a.data = json{{"pid", p->str()}, {"reason", r.str()}};
    return a;
  }

  answer child_op(const std::string& cmd, const std::vector<std::string>& args) {
    if (args.size() != 1) return usage(cmd);
    std::string err;
    auto t = resolve_path(args[0], err);
    if (!t) return answer::error(err);
    if (!t->parent) return answer::error(args[0] + " is an application, not a child: give app/child");
    child_result r;
    if (t->parent_dynamic) {
      if (cmd != "terminate") return answer::error("a dynamic supervisor's children can only be terminated");
      r = call<child_result>(t->parent, dynamic_supervisor::terminate_q{t->who}, cfg_->opts.command_timeout);
    } else if (cmd == "restart") {
      r = restart_child(t->parent, t->id, cfg_->opts.command_timeout);
    } else if (cmd == "terminate") {
      r = terminate_child(t->parent, t->id, cfg_->opts.command_timeout);
    } else {
      r = delete_child(t->parent, t->id, cfg_->opts.command_timeout);
    }
    if (!r) {
      std::string why = to_string(r.error);
      if (r.error == child_error::running) why += ": terminate it first";
      if (r.error == child_error::start_failed) why += ": " + r.reason.str();
      return answer::error(cmd + " " + args[0] + ": " + why);
    }
    answer a;
    const char* done = cmd == "restart" ? "restarted" : cmd == "terminate" ? "terminated" : "deleted";
    a.text = args[0] + " " + done + (r.who ? " as " + r.who.str() : "") + "\n";
    a.data = json{{"path", args[0]}, {"result", done}, {"pid", pid_json(r.who)}};
    return a;
  }

  // start PATH [ARGS]: a child under a dynamic supervisor, from the template the node declares
  // for it, with ARGS (a YAML map, e.g. {n: 3}) merged onto the template's args.
  answer start_from_template(const std::string& cmd, const std::vector<std::string>& args) {
    if (args.empty()) return usage(cmd);
    std::string err;
    auto t = resolve_path(args[0], err);
    if (!t) return answer::error(err);
    if (!t->who) return answer::error(args[0] + " is not running (noproc)");
    const supervisor_status st = supervisor_status_of(t->who, cfg_->opts.command_timeout);
    if (!st.dynamic)
      return answer::error(args[0] + " is not a dynamic supervisor: only those start children at run time");
    if (!cfg_->opts.child_template) return answer::error("this node declares no templates");
    std::string extra;
    for (std::size_t i = 1; i < args.size(); ++i) extra += (i > 1 ? " " : "") + args[i];
    // The path as the node declares it: app/.../jobs, by ids.
    std::string canonical;
    {
      std::istringstream in(args[0]);
      for (std::string seg; std::getline(in, seg, '/');) {
        if (!seg.empty()) canonical += (canonical.empty() ? "" : "/") + seg;
      }
    }
    auto spec = cfg_->opts.child_template(canonical, extra, err);
    if (!spec) return answer::error("start " + canonical + ": " + err);
    const auto r =
        call<child_result>(t->who, dynamic_supervisor::start_q{std::move(*spec)}, cfg_->opts.command_timeout);
    if (!r) {
      std::string why = to_string(r.error);
      if (r.error == child_error::start_failed) why += ": " + r.reason.str();
      return answer::error("start " + canonical + ": " + why);
    }
    answer a;
    a.text = "started " + canonical + "/" + r.who.str() + "\n";
    a.data = json{{"path", canonical}, {"result", "started"}, {"pid", pid_json(r.who)}};
    return a;
  }

  // ---- events and traces ----

  struct filter {
    std::string kind, supervisor, child;
    bool matches(const event& e) const {
      if (!kind.empty() && kind != to_string(e.kind)) return false;
      if (!supervisor.empty() && e.supervisor.rfind(supervisor, 0) != 0) return false;
      if (!child.empty() && child != e.child) return false;
      return true;
    }
  };

  static std::optional<filter> parse_filter(const std::string& spec, std::string& err) {
    filter f;
    std::istringstream in(spec);
    std::string part;
    while (std::getline(in, part, ',')) {
      const auto eq = part.find('=');
      if (eq == std::string::npos) {
        err = "--filter takes key=value pairs (kind, supervisor, child), not '" + part + "'";
        return std::nullopt;
      }
      const std::string k = part.substr(0, eq), v = part.substr(eq + 1);
      if (k == "kind") {
        std::vector<std::string> kinds;
        for (int i = 0; i <= static_cast<int>(event_kind::dropped); ++i) {
          kinds.emplace_back(to_string(static_cast<event_kind>(i)));
        }
        if (std::find(kinds.begin(), kinds.end(), v) == kinds.end()) {
          const std::string near = nearest_word(v, kinds);
          err = "no event kind '" + v + "'" + (near.empty() ? "" : " (did you mean '" + near + "'?)") + "; kinds: ";
          for (std::size_t i = 0; i < kinds.size(); ++i) err += (i ? ", " : "") + kinds[i];
          return std::nullopt;
        }
        f.kind = v;
      } else if (k == "supervisor") {
        f.supervisor = v;
      } else if (k == "child") {
        f.child = v;
      } else {
        err = "unknown filter key '" + k + "' (kind, supervisor, child)";
        return std::nullopt;
      }
    }
    return f;
  }

  std::string event_line(const event& e) const {
    if (json_) return to_json(e) + "\n";
    std::string line = iso_time(e.time) + " " + to_text(e);
    const char* lvl = level_of(e);
    if (std::string_view(lvl) == "error") return paint(line, "31") + "\n";
    if (std::string_view(lvl) == "warning") return paint(line, "33") + "\n";
    return line + "\n";
  }

  // While subscribed the session waits for events: not idle (see console_link::set_streaming).
  void ensure_subscribed() {
    if (!sub_) sub_ = events().subscribe(1024, self());
    link_->set_streaming(true);
  }
  void maybe_unsubscribe() {
    if (!follow_ && traced_.empty() && logs_followed_.empty()) {
      sub_.reset();
      link_->set_streaming(false);
    }
  }

  // What `events` shows: not traces (see `trace`), and the debug-level `exit` events only
  // when asked for by kind (each also comes as child_terminated when it matters).
  static bool listed(const event& e, const filter& f) {
    if (e.kind == event_kind::trace) return false;
    return e.kind != event_kind::exit || f.kind == "exit";
  }

  void pump_events() {
    if (!sub_) return;
    for (auto& e : sub_->take()) {
      if (e.kind == event_kind::dropped) {
        out_->stream(json_ ? "{\"dropped\":" + std::to_string(e.dropped) + "}\n"
                           : "-- dropped " + std::to_string(e.dropped) + " events: the node published faster\n");
        continue;
      }
      const bool traced = e.kind == event_kind::trace && traced_.count(e.old_pid);
      if (e.kind == event_kind::output) {  // a flood of program output only where asked for
        if (logs_followed_.count(e.supervisor + "/" + e.child)) {
          out_->stream(json_ ? to_json(e) + "\n" : iso_time(e.time) + " " + e.label + " " + e.text + "\n");
        } else if (follow_ && follow_filter_.kind == "output" && follow_filter_.matches(e)) {
          out_->stream(event_line(e));
        }
        continue;
      }
      if (traced || (follow_ && listed(e, follow_filter_) && follow_filter_.matches(e))) out_->stream(event_line(e));
    }
  }

  answer events_cmd(const std::vector<std::string>& args) {
    bool follow = false, off = false;
    std::size_t last = 20;
    filter f;
    for (std::size_t i = 0; i < args.size(); ++i) {
      if (args[i] == "--follow") {
        follow = true;
      } else if (args[i] == "off") {
        off = true;
      } else if (args[i] == "--last" && i + 1 < args.size()) {
        auto n = count_arg(args[++i]);
        if (!n) return answer::error("--last takes a whole number, not '" + args[i] + "'");
        last = *n;
      } else if (args[i] == "--filter" && i + 1 < args.size()) {
        std::string err;
        auto parsed = parse_filter(args[++i], err);
        if (!parsed) return answer::error(err);
        f = *parsed;
      } else {
        return usage("events");
      }
    }
    answer a;
    if (off) {
      follow_ = false;
      maybe_unsubscribe();
      a.text = "events off\n";
      a.data = "off";
      return a;
    }
    a.data = json::array();
    std::vector<event> recent;
    for (auto& e : events().recent(event_bus::history_size)) {
      if (listed(e, f) && f.matches(e)) recent.push_back(e);
    }
    if (recent.size() > last) recent.erase(recent.begin(), recent.end() - static_cast<std::ptrdiff_t>(last));
    for (auto& e : recent) {
      a.text += event_line(e);
      a.data.push_back(json::parse(to_json(e)));
    }
    if (follow) {
      ensure_subscribed();
      follow_ = true;
      follow_filter_ = f;
      a.text += "-- following events; `events off` stops\n";
    }
    return a;
  }

  answer logs_cmd(const std::vector<std::string>& args) {
    if (args.size() == 1 && args[0] == "off") {
      logs_followed_.clear();
      maybe_unsubscribe();
      answer a;
      a.text = "logs off\n";
      a.data = "off";
      return a;
    }
    std::string path;
    bool follow = false;
    std::size_t last = 20;
    for (std::size_t i = 0; i < args.size(); ++i) {
      if (args[i] == "--follow") {
        follow = true;
      } else if (args[i] == "--last" && i + 1 < args.size()) {
        auto n = count_arg(args[++i]);
        if (!n) return answer::error("--last takes a whole number, not '" + args[i] + "'");
        last = *n;
      } else if (path.empty() && !args[i].starts_with("--")) {
        path = args[i];
      } else {
        return usage("logs");
      }
    }
    if (path.empty()) return usage("logs");
    std::string err;
    auto t = resolve_path(path, err);
    if (!t) return answer::error(err);
    if (t->key.empty()) return answer::error(path + " is an application: give the path of a command child");
    if (follow) ensure_subscribed();  // before the snapshot: a line in between shows twice, none is lost
    auto log = os_log(this_node(), t->key, last);
    if (!log) {
      if (follow) maybe_unsubscribe();
      return answer::error("no output kept for " + t->key +
                           ": it is not a command child, or it has not started a program yet");
    }
    answer a;
    a.data = json::array();
    for (auto& l : *log) {
      a.text += iso_time(l.time) + " " + (l.marker ? "--" : to_string(l.stream)) + " " +
                (l.marker && l.text.starts_with("-- ") ? l.text.substr(3) : l.text) + "\n";
      a.data.push_back(json{{"seq", l.seq},
                            {"time", iso_time(l.time)},
                            {"stream", to_string(l.stream)},
                            {"marker", l.marker},
                            {"text", l.text}});
    }
    if (follow) {
      ensure_subscribed();
      logs_followed_.insert(t->key);
      a.text += "-- following " + t->key + "; `logs off` stops\n";
    }
    return a;
  }

  answer trace_cmd(const std::vector<std::string>& args) {
    if (args.size() != 2 || (args[1] != "on" && args[1] != "off")) return usage("trace");
    std::string err;
    auto p = server(args, "trace", err);
    if (!p) return answer::error(err);
    const bool on = args[1] == "on";
    if (on) ensure_subscribed();
    sys::trace(*p, on, cfg_->opts.command_timeout);
    if (on) {
      traced_.insert(*p);
    } else {
      traced_.erase(*p);
      maybe_unsubscribe();
    }
    answer a;
    a.text = "trace " + p->str() + (on ? " on: its messages stream here\n" : " off\n");
    a.data = json{{"pid", p->str()}, {"trace", on}};
    return a;
  }

  // Walks every application's tree, asking each supervisor for its status: a supervisor
  // answers only once it has handled what came before, and never in the middle of starting or
  // stopping a child. Settled when a walk finds no child waiting to restart and the same
  // children as the walk before it; within the command timeout.
  answer sync_cmd(const std::vector<std::string>& args) {
    if (!args.empty()) return usage("sync");
    const auto budget = cfg_->opts.command_timeout;
    const auto deadline = std::chrono::steady_clock::now() + budget;
    std::map<pid, std::vector<std::pair<std::string, pid>>> last;
    for (int walks = 1;; ++walks) {
      std::map<pid, std::vector<std::pair<std::string, pid>>> seen;
      bool restarting = false, lost = false;
      std::vector<pid> todo;
      for (auto& app : app_list()) {
        if (app.top) todo.push_back(app.top);
      }
      while (!todo.empty()) {
        const pid sup = todo.back();
        todo.pop_back();
        const auto left = std::chrono::duration_cast<duration>(deadline - std::chrono::steady_clock::now());
        if (left <= duration::zero()) break;
        try {
          auto st = supervisor_status_of(sup, left);
          auto& kids = seen[sup];
          for (auto& c : st.children) {
            kids.emplace_back(c.id, c.who);
            restarting |= c.restarting;
            if (c.type == child_type::supervisor && c.who) todo.push_back(c.who);
          }
        } catch (const call_error&) {  // it ended meanwhile: the tree is still moving
          lost = true;
        }
      }
      if (!restarting && !lost && walks > 1 && seen == last) {
        answer a;
        a.text = "synced: " + std::to_string(seen.size()) + " supervisors, no child starting, stopping or waiting to " +
                 "restart\n";
        a.data = json{{"synced", true}, {"supervisors", seen.size()}, {"walks", walks}};
        return a;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return answer::error("not settled within " + std::to_string(budget.count()) + " ms" +
                             (restarting ? ": a child is waiting to restart" : ": children still changing"));
      }
      last = std::move(seen);
      if (restarting) {
        struct never {};
        receive_for(std::chrono::milliseconds(10), [](never) {});  // a backoff: look again shortly
      }
    }
  }

  answer stats() {
    node& n = this_node();
    auto total_in = [&] {
      std::uint64_t s = 0;
      for (auto& p : n.processes()) {
        if (auto i = grove::info(p)) s += i->messages_in;
      }
      return s;
    };
    const auto t0 = std::chrono::steady_clock::now();
    const node_totals idle_before = n.totals();
    const std::uint64_t before = total_in();
    struct never {};
    receive_for(std::chrono::milliseconds(250), [](never) {});  // a 250 ms sample; commands wait their turn
    const std::uint64_t after = total_in();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double rate = after >= before ? static_cast<double>(after - before) / secs : 0.0;
    // Busy share of each scheduler thread over the sample: 1 - idle time / time passed.
    const node_totals idle_after = n.totals();
    std::vector<double> busy;
    std::string busy_text;
    for (std::size_t i = 0; i < idle_after.scheduler_idle.size() && i < idle_before.scheduler_idle.size(); ++i) {
      const double idle =
          std::chrono::duration<double>(idle_after.scheduler_idle[i] - idle_before.scheduler_idle[i]).count();
      const double share = std::clamp(1.0 - idle / secs, 0.0, 1.0);
      busy.push_back(std::round(share * 1000) / 1000);
      busy_text += (busy_text.empty() ? "" : " ") + std::to_string(static_cast<int>(std::lround(share * 100))) + "%";
    }
    auto queues = n.run_queue_lengths();
    std::string q;
    for (auto v : queues) q += (q.empty() ? "" : " ") + std::to_string(v);
    auto& bus = events();
    const auto restarts_min = bus.count_within(event_kind::child_terminated, std::chrono::seconds(60));
    std::ostringstream r;
    r << std::fixed << std::setprecision(0) << rate;
    answer a;
    a.text = table({{"node", n.name()},
                    {"processes", std::to_string(n.process_count())},
                    {"schedulers", std::to_string(n.schedulers())},
                    {"run queues", q},
                    {"utilisation", busy_text + " (busy share of each scheduler thread, 250 ms sample)"},
                    {"messages/s", r.str() + " (received by live processes, 250 ms sample)"},
                    {"restarts/min", std::to_string(restarts_min) + " (child_terminated events, last 60 s)"},
                    {"crashes", std::to_string(bus.count(event_kind::crash)) + " since the event bus started"},
                    {"events", std::to_string(bus.last_seq()) + " published"}});
    a.data = json{{"node", n.name()},
                  {"processes", n.process_count()},
                  {"schedulers", n.schedulers()},
                  {"run_queues", queues},
                  {"utilisation", busy},
                  {"messages_per_s", rate},
                  {"restarts_last_minute", restarts_min},
                  {"crashes", bus.count(event_kind::crash)},
                  {"events", bus.last_seq()}};
    return a;
  }

  std::shared_ptr<console_output> out_;
  std::shared_ptr<console_link> link_;
  std::shared_ptr<const console_session_config> cfg_;
  bool authed_;
  bool color_;
  bool json_ = false;
  int failed_auth_ = 0;
  bool close_after_answer_ = false;  // three wrong tokens: the answer, then the end
  std::shared_ptr<subscription> sub_;
  bool follow_ = false;
  filter follow_filter_;
  std::set<pid> traced_;
  std::set<std::string> logs_followed_;  // keys of OS-process logs streamed here
};

// The commands, in the order `help` lists them.
const std::vector<command_info>& command_table() {
  static const std::vector<command_info> table{
      {"help", "help [COMMAND]", "list the commands, or explain one", &session::run_help},
      {"apps", "apps", "the applications: start type, top supervisor, status", &session::run_apps},
      {"tree", "tree [PATH]", "the supervision tree: pid, status, restarts in the window, last exit reason",
       &session::run_tree},
      {"ps", "ps [--sort mailbox|messages|memory|running] [--top N]", "processes: mailbox, messages, running time",
       &session::run_ps},
      {"info", "info TARGET", "a process: links, monitors, trap_exit, stack, mailbox peek", &session::run_info},
      {"state", "state TARGET", "a GenServer's state, through format_status", &session::run_state},
      {"events", "events [--follow|off] [--last N] [--filter kind=K,supervisor=S,child=C]",
       "recent events; --follow streams them until `events off`", &session::run_events},
      {"kill", "kill TARGET [REASON]", "send an exit signal: kill (untrappable) unless REASON is given",
       &session::run_signal},
      {"exit", "exit TARGET REASON", "send an exit signal with REASON (normal, shutdown, kill, any name)",
       &session::run_exit},
      {"restart", "restart PATH", "restart a stopped child of a supervisor", &session::run_child_op},
      {"terminate", "terminate PATH", "stop a child through its supervisor (not restarted)", &session::run_child_op},
      {"delete", "delete PATH", "remove a stopped child's spec from its supervisor", &session::run_child_op},
      {"start", "start PATH [ARGS]",
       "start a child under the dynamic supervisor at PATH from its template; ARGS: a YAML map, like {n: 3}",
       &session::run_start},
      {"suspend", "suspend TARGET", "suspend a GenServer (it answers only system messages)", &session::run_suspend},
      {"resume", "resume TARGET", "resume a suspended GenServer", &session::run_suspend},
      {"trace", "trace TARGET on|off", "stream a GenServer's calls, casts, infos and replies", &session::run_trace},
      {"logs", "logs PATH [--follow] [--last N] | logs off",
       "what a command child's program wrote (stdout, stderr); --follow streams it until `logs off`",
       &session::run_logs},
      {"stats", "stats", "processes, schedulers, run queues, message rate, restarts per minute", &session::run_stats},
      {"nodes", "nodes", "this node's name in the Erlang cluster and the nodes connected to it", &session::run_nodes},
      {"sync", "sync", "wait until every supervisor has handled its mailbox and no child is starting or stopping",
       &session::run_sync},
      {"json", "json on|off", "answer every command as one JSON line (or add --json to one command)",
       &session::run_toggle},
      {"color", "color on|off", "colour in text answers", &session::run_toggle},
      {"auth", "auth TOKEN",
       "authenticate: required before any command but help and quit when the node has a token (always off loopback)",
       &session::run_auth},
      {"quit", "quit", "end the session", &session::run_quit},
  };
  return table;
}

}  // namespace

void run_console_request(std::shared_ptr<console_output> out, std::shared_ptr<console_link> link,
                         std::shared_ptr<const console_session_config> cfg, const std::string& line) {
  struct closer {
    console_output& o;
    ~closer() { o.close(); }
  } guard{*out};
  session(out, std::move(link), std::move(cfg)).run_one(line);
}

void run_console_session(std::shared_ptr<console_output> out, std::shared_ptr<console_link> link,
                         std::shared_ptr<const console_session_config> cfg) {
  struct closer {
    console_output& o;
    ~closer() { o.close(); }
  } guard{*out};
  session(out, std::move(link), std::move(cfg)).run();
}

}  // namespace grove::detail
