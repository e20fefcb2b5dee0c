#include <grove/behaviours/gen_server.hpp>
#include <grove/detail/remote.hpp>
#include <grove/runtime/events.hpp>

#include <algorithm>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>

namespace grove {

namespace detail {
struct start_ack {
  std::uint64_t tag;
  start_result result;
};
}  // namespace detail

namespace {
// A value in a trace: at most 200 bytes, so a large one cannot flood the event bus.
std::string cut(std::string text) {
  constexpr std::size_t most = 200;
  if (text.size() > most) {
    text.resize(most);
    text += "...";
  }
  return text;
}

// What a message is, for people: the request inside a call or cast, not Grove's wrapper
// ("call bank::deposit", not "call grove::detail::call_msg<bank::deposit>").
std::string request_type(std::string name) {
  for (std::string_view wrapper : {"grove::detail::call_msg<", "grove::detail::cast_msg<"}) {
    if (name.starts_with(wrapper) && name.ends_with('>'))
      return name.substr(wrapper.size(), name.size() - wrapper.size() - 1);
  }
  return name;
}
}  // namespace

std::optional<pid> server_ref::resolve() const {
  if (via_) return via_->whereis();
  if (name_.empty()) return pid_;
  if (!node_.empty()) return detail::resolve_remote_name(name_, node_);
  if (!in_process()) return std::nullopt;
  return whereis(name_);
}

pid start_result::value() const {
  if (kind_ != kind::ok) throw process_error(reason_, "start");
  return pid_;
}

// ---- the server loop ----------------------------------------------------------------------

void gen_server_base::on_start() {
  stats_.started = now();
  auto ack = [this](start_result r) { send(starter_, detail::start_ack{start_tag_, std::move(r)}); };
  if (!name_.empty()) {
    try {
      register_name(name_, self());
    } catch (const registry_error& e) {
      ack(e.what_kind() == registry_error::kind::name_taken ? start_result::already_started(e.holder())
                                                            : start_result::failed(exit_reason::other(e.what())));
      throw process_exit(exit_reason::normal());
    }
  }
  if (via_) {
    std::optional<pid> holder;
    try {
      holder = via_->register_self();
    } catch (const process_error& e) {
      ack(start_result::failed(e.reason()));
      throw process_exit(exit_reason::normal());
    }
    if (holder) {
      ack(start_result::already_started(*holder));
      throw process_exit(exit_reason::normal());
    }
  }
  init_result r = init_result::ok();
  try {
    r = do_init();
  } catch (const process_exit&) {
    throw;
  } catch (...) {
    auto reason = detail::reason_of_current_exception();
    ack(start_result::failed(reason));
    throw process_exit(reason);
  }
  switch (r.what()) {
    case init_result::kind::ok:
      break;
    case init_result::kind::ignore:
      ack(start_result::ignored());
      throw process_exit(exit_reason::normal());
    case init_result::kind::error:
      ack(start_result::failed(r.reason()));
      throw process_exit(exit_reason::normal());
    case init_result::kind::stop:
      ack(start_result::failed(r.reason()));
      throw process_exit(r.reason());
  }
  ack(start_result::started(self()));
  try {
    after_callback();  // a continue_with from init runs before any queued message
  } catch (const process_exit&) {
    throw;
  } catch (...) {
    shut_down(detail::reason_of_current_exception());
  }
}

void gen_server_base::on_message(message& m) {
  if (handle_system(m)) {
    arm_idle_timer();
    return;
  }
  if (suspended_) {
    if (!held_) held_ = std::make_unique<std::deque<message>>();
    held_->push_back(std::move(m));
    return;
  }
  handle(m);
}

void gen_server_base::handle(message& m) {
  if (auto* tick = m.get<detail::idle_tick>()) {
    if (tick->token != idle_token_) return;  // a message came since: this timeout is void
  }
  ++idle_token_;
  // From the later of the turn's start and the last callback's end (no clock read of its own
  // before the callback) to its end.
  struct account {
    gen_server_base& s;
    std::int64_t t0 = std::max(detail::turn_started(), s.last_callback_end_);
    ~account() {
      s.last_callback_end_ = detail::timestamp();
      s.callback_ticks_ += s.last_callback_end_ - t0;
    }
  } accounting{*this};
  try {
    if (m.is<detail::idle_tick>()) {
      message timeout(std::make_unique<detail::message_envelope<idle_timeout>>());
      ++stats_.infos;
      record("timeout", timeout);
      if (do_dispatch(timeout) == handled_as::none) unexpected(timeout);
    } else if (auto* e = m.get<exit_signal>(); e && e->from == parent_) {
      // The parent's exit signal reaches a server only when it traps exits: stop with its reason.
      record("parent exit", m);
      shut_down(e->reason);
    } else {
      switch (do_dispatch(m)) {
        case handled_as::call:
          ++stats_.calls;
          record("call", m);
          break;
        case handled_as::cast:
          ++stats_.casts;
          record("cast", m);
          break;
        case handled_as::info:
          ++stats_.infos;
          record("info", m);
          break;
        case handled_as::none: {
          record("unhandled", m);
          if (const detail::reply_address* to = m.envelope()->reply_to()) {
            // The caller's mistake, not the server's: fail the call and go on, unless the
            // server asked for OTP's crash (which would spend its supervisor's restarts).
            exit_reason why = exit_reason::other("{bad_call," + request_type(m.type_name()) + "}");
            if (bad_call_crashes_) throw process_error(std::move(why));
            detail::deliver_reply(
                to->caller, to->alias,
                std::make_unique<detail::message_envelope<detail::call_refused>>(detail::call_refused{std::move(why)}));
            break;
          }
          std::string type = m.type_name();
          if (type.rfind("grove::detail::cast_msg<", 0) == 0) {
            // Nobody waits for a cast's answer: as in OTP, the server crashes.
            throw process_error(exit_reason::other("{bad_cast," + request_type(std::move(type)) + "}"));
          }
          ++stats_.infos;
          unexpected(m);
        }
      }
    }
    after_callback();
  } catch (const process_exit&) {
    throw;  // killed, or ending through shut_down: terminate already ran or must not run
  } catch (...) {
    shut_down(detail::reason_of_current_exception());
  }
}

void gen_server_base::after_callback() {
  while (continue_) {
    message c = std::move(continue_);
    continue_ = message();
    record("continue", c);
    if (!do_continue(c)) throw process_error(exit_reason::other("{undef,handle_continue," + c.type_name() + "}"));
  }
  if (stop_) return end_after_return(*stop_);
  arm_idle_timer();
}

// The usual end (stop_after): terminate, then end when this callback returns, unwinding nothing.
void gen_server_base::end_after_return(exit_reason reason) { exit_after_handler(terminate_for(std::move(reason))); }

exit_reason gen_server_base::terminate_for(exit_reason reason) {
  try {
    do_terminate(reason);
  } catch (const process_exit&) {
    throw;
  } catch (...) {
    reason = detail::reason_of_current_exception();  // a crash in terminate becomes the reason
  }
  if (pending_reply_) (*pending_reply_)();
  return reason;
}

void gen_server_base::shut_down(exit_reason reason) { throw process_exit(terminate_for(std::move(reason))); }

void gen_server_base::arm_idle_timer() {
  if (idle_ <= duration::zero()) return;
  send_after(idle_, self(), detail::idle_tick{idle_token_});
}

bool gen_server_base::handle_system(message& m) {
  if (auto* s = m.get<detail::stop_request>()) {
    record("stop", m);
    shut_down(s->reason);
  }
  auto* c = m.get<detail::call_msg<detail::sys_request>>();
  if (!c) return false;
  using op = detail::sys_request::op;
  switch (c->request.what) {
    // Introspection runs user code outside the callbacks' try block: what it throws is answered
    // to the caller, and the server goes on (OTP: a placeholder for format_status, and
    // {callback_failed,...} for replace_state's fun).
    case op::get_state: {
      std::string text;
      try {
        text = do_format_status();
      } catch (const process_exit&) {
        throw;
      } catch (...) {
        text = "format_status crashed: " + detail::reason_of_current_exception().str();
      }
      reply(c->f, std::move(text));
      break;
    }
    case op::replace_state: {
      detail::replace_outcome outcome;
      try {
        c->request.replace(*this);
      } catch (const process_exit&) {
        throw;
      } catch (...) {
        outcome.failed = detail::reason_of_current_exception();
      }
      reply(c->f, std::move(outcome));
      break;
    }
    case op::suspend:
      suspended_ = true;
      reply(c->f, ok_t{});
      break;
    case op::resume: {
      suspended_ = false;
      reply(c->f, ok_t{});
      while (!suspended_ && held_ && !held_->empty()) {
        message held = std::move(held_->front());
        held_->pop_front();
        handle(held);
      }
      break;
    }
    case op::statistics: {
      server_statistics s = stats_;
      s.in_callbacks = duration(detail::timestamp_to_ns(callback_ticks_));
      if (auto i = info(self())) {
        s.messages_in = i->messages_in;
        s.messages_out = i->messages_out;
      }
      reply(c->f, s);
      break;
    }
    case op::trace_on:
      tracing_ = true;
      reply(c->f, ok_t{});
      break;
    case op::trace_off:
      tracing_ = false;
      reply(c->f, ok_t{});
      break;
    case op::events:
      reply(c->f, last_events());
      break;
  }
  return true;
}

void gen_server_base::record(const char* what, const message& m) {
  if (!events_) events_ = std::make_unique<std::vector<event>>();
  event e{detail::timestamp(), what, &m.type()};
  if (events_->size() < events_kept) {
    events_->push_back(e);
  } else {
    (*events_)[next_event_] = e;
  }
  next_event_ = (next_event_ + 1) % events_kept;
  if (tracing_) {
    std::ostringstream value;
    const bool shown = m.envelope()->print(value);
    publish_trace(std::string(what) + " " + request_type(m.type_name()) + (shown ? ": " + cut(value.str()) : ""));
  }
}

void gen_server_base::record_reply(const std::type_info& type, const void* value,
                                   void (*show)(std::ostream&, const void*)) {
  std::string text = "reply " + detail::demangle(type.name());
  if (show) {
    std::ostringstream os;
    show(os, value);
    text += ": " + cut(os.str());
  }
  publish_trace(std::move(text));
}

void gen_server_base::publish_trace(std::string text) {
  grove::event e;
  e.kind = event_kind::trace;
  e.old_pid = self();
  e.child = detail::demangle(server_type());
  e.label = std::move(text);
  events().publish(std::move(e));
}

std::vector<std::string> gen_server_base::last_events() const {
  std::vector<std::string> out;
  if (!events_) return out;
  const auto& v = *events_;
  std::size_t start = v.size() < events_kept ? 0 : next_event_;
  const std::int64_t now_ticks = detail::timestamp();
  for (std::size_t i = 0; i < v.size(); ++i) {
    const event& e = v[(start + i) % v.size()];
    auto ago_us = detail::timestamp_to_ns(now_ticks - e.at) / 1000;
    out.push_back(std::to_string(ago_us) + "us ago " + e.what + " " + request_type(detail::demangle(e.type->name())));
  }
  return out;
}

void gen_server_base::unexpected(const message& m) {
  const std::type_info* t = &m.type();
  if (!warned_) warned_ = std::make_unique<std::vector<const std::type_info*>>();
  for (auto* seen : *warned_) {
    if (*seen == *t) return;
  }
  warned_->push_back(t);
  std::ostringstream line;
  line << "grove: " << detail::demangle(server_type()) << " " << self() << " dropped an unexpected message of type "
       << m.type_name() << " (logged once per type)\n";
  std::cerr << line.str();
}

// ---- starting -------------------------------------------------------------------------------

namespace {
bool is_down_of(const detail::envelope& e, std::uint64_t ref) {
  return detail::same_type(e.type, typeid(down)) &&
         static_cast<const detail::message_envelope<down>&>(e).value.ref.id == ref;
}

// After a failed start: waits for the child's end and consumes its exit signal if linked and
// trapping, so the caller is left with no stray message.
void await_end(const pid& child, const monitor_ref& m, bool linked) {
  grove::receive(when<down>([m](const down& d) { return d.ref == m; }, [](const down&) {}));
  if (linked)
    grove::receive_for(duration::zero(), when<exit_signal>([child](const exit_signal& e) { return e.from == child; },
                                                           [](const exit_signal&) {}));
}
}  // namespace

start_result detail::start_server(std::unique_ptr<gen_server_base> s, const start_options& opts, bool link) {
  const pid me = self();
  const std::uint64_t tag = make_ref();
  s->parent_ = me;
  s->starter_ = me;
  s->start_tag_ = tag;
  s->name_ = opts.name;
  s->via_ = opts.via;
  const pid child = link ? spawn_handler_link(std::move(s), opts.spawn) : spawn_handler(std::move(s), opts.spawn);
  const monitor_ref m = monitor(child);
  struct ctx_t {
    std::uint64_t tag, ref;
  } ctx{tag, m.id};
  auto match = [](const envelope& e, void* c) {
    auto& x = *static_cast<ctx_t*>(c);
    if (same_type(e.type, typeid(start_ack)))
      return static_cast<const message_envelope<start_ack>&>(e).value.tag == x.tag;
    return is_down_of(e, x.ref);
  };
  const std::int64_t t = opts.timeout == duration::max() ? -1 : to_ns(opts.timeout);
  std::unique_ptr<envelope> e(receive_match(match, &ctx, t));
  if (!e) {
    exit(child, exit_reason::kill());
    await_end(child, m, link);
    return start_result::failed(exit_reason::timeout());
  }
  if (same_type(e->type, typeid(start_ack))) {
    start_result r = std::move(static_cast<message_envelope<start_ack>&>(*e).value.result);
    if (r) {
      demonitor(m, true);
      return r;
    }
    await_end(child, m, link);
    return r;
  }
  // It died before acknowledging (killed during init): the down just taken is its end, so no
  // other down will come. Its exit signal, if linked and trapping, went out before the down.
  exit_reason reason = static_cast<message_envelope<down>&>(*e).value.reason;
  if (link)
    receive_for(duration::zero(), when<exit_signal>([child](const exit_signal& x) { return x.from == child; },
                                                    [](const exit_signal&) {}));
  return start_result::failed(reason);
}

// ---- calls ------------------------------------------------------------------------------------

std::unique_ptr<detail::envelope> detail::call_impl(const server_ref& target, make_call_envelope make, void* ctx,
                                                    duration timeout) {
  const pid me = self();
  auto server = target.resolve();
  if (!server) throw call_error(exit_reason::noproc(), target.str());
  if (*server == me) throw call_error(exit_reason::other("calling_self"), target.str());
  // The monitor's ref is the call's tag and the alias replies are addressed to.
  const monitor_ref m = monitor_with_alias(*server);
  std::uint64_t tag = m.id;
  struct cleanup {
    monitor_ref m;
    void alias_off() { alias_deactivate(m.id); }
    ~cleanup() { demonitor_with_alias(m); }  // also when the caller is killed meanwhile
  } guard{m};
  const std::int64_t timed = call_started();
  deliver(*server, make(ctx, from{me, tag}));
  auto match = [](const envelope& e, void* c) {
    const std::uint64_t t = *static_cast<std::uint64_t*>(c);
    return (e.kind == envelope_kind::reply && e.alias == t) || is_down_of(e, t);
  };
  const std::int64_t t = timeout == duration::max() ? -1 : to_ns(timeout);
  std::unique_ptr<envelope> e(receive_match(match, &tag, t));
  if (!e) {
    guard.alias_off();                       // from here on a reply is dropped before it reaches the mailbox
    e.reset(receive_match(match, &tag, 0));  // one that raced the timeout is taken
  }
  if (!e) throw call_error(exit_reason::timeout(), target.str());  // the guard demonitors
  if (e->kind == envelope_kind::reply) {
    // A pointer compare suffices: call_refused envelopes are made only in this file.
    if (e->type == &typeid(call_refused)) [[unlikely]]
      throw call_error(static_cast<message_envelope<call_refused>&>(*e).value.reason, target.str());
    if (timed != 0) [[unlikely]]
      call_answered(timed);  // one call in 16
    return e;
  }
  throw call_error(static_cast<message_envelope<down>&>(*e).value.reason, target.str());
}

void stop(const server_ref& target, exit_reason reason, duration timeout) {
  auto server = target.resolve();
  if (!server || !alive(*server)) throw call_error(exit_reason::noproc(), target.str());
  const monitor_ref m = monitor(*server);
  send(*server, detail::stop_request{reason});
  auto d = timeout == duration::max()
               ? std::optional<down>(
                     receive(when<down>([m](const down& x) { return x.ref == m; }, [](down x) { return x; })))
               : receive_for(timeout, when<down>([m](const down& x) { return x.ref == m; }, [](down x) { return x; }));
  if (!d) {
    demonitor(m, true);
    throw call_error(exit_reason::timeout(), target.str());
  }
  if (!(d->reason == reason)) throw call_error(d->reason, target.str());
}

namespace sys {
namespace {
detail::sys_request req(detail::sys_request::op o) { return detail::sys_request{o, {}}; }
}  // namespace
std::string get_state(const server_ref& target, duration timeout) {
  return call<std::string>(target, req(detail::sys_request::op::get_state), timeout);
}
void suspend(const server_ref& target, duration timeout) {
  call<void>(target, req(detail::sys_request::op::suspend), timeout);
}
void resume(const server_ref& target, duration timeout) {
  call<void>(target, req(detail::sys_request::op::resume), timeout);
}
server_statistics statistics(const server_ref& target, duration timeout) {
  return call<server_statistics>(target, req(detail::sys_request::op::statistics), timeout);
}
void trace(const server_ref& target, bool on, duration timeout) {
  call<void>(target, req(on ? detail::sys_request::op::trace_on : detail::sys_request::op::trace_off), timeout);
}
std::vector<std::string> last_events(const server_ref& target, duration timeout) {
  return call<std::vector<std::string>>(target, req(detail::sys_request::op::events), timeout);
}
}  // namespace sys

}  // namespace grove
