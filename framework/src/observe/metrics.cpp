#include "observe/metrics.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <limits>
#include <vector>

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <grove/runtime/process.hpp>

namespace grove::detail {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

const char* kind_name(exit_reason::kind k) {
  switch (k) {
    case exit_reason::kind::normal:
      return "normal";
    case exit_reason::kind::shutdown:
      return "shutdown";
    case exit_reason::kind::killed:
      return "killed";
    case exit_reason::kind::kill:
      return "kill";
    case exit_reason::kind::noproc:
      return "noproc";
    case exit_reason::kind::noconnection:
      return "noconnection";
    case exit_reason::kind::timeout:
      return "timeout";
    case exit_reason::kind::error:
      return "error";
    case exit_reason::kind::other:
      return "other";
  }
  return "other";
}

MetricFamily family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

ClientMetric gauge(double v, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = v;
  return m;
}

ClientMetric counter(double v, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = v;
  return m;
}

double seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

// Mailbox lengths of the live processes, counted in ranges: up to each bound, above the one
// before; the last range is above the last bound.
constexpr std::array<std::size_t, 6> mailbox_bounds{0, 1, 10, 100, 1000, 10000};
const std::array<const char*, mailbox_bounds.size() + 1> mailbox_ranges{"0",        "1",          "2-10",  "11-100",
                                                                        "101-1000", "1001-10000", "10001+"};

}  // namespace

node_metrics::node_metrics(node& n)
    : node_(n),
      sub_(events(n).subscribe(16384)),
      registry_(std::make_shared<prometheus::Registry>()),
      restarts_(prometheus::BuildCounter()
                    .Name("grove_restarts_total")
                    .Help("Children restarted by their supervisor (progress events of restarts)")
                    .Register(*registry_)),
      terminations_(prometheus::BuildCounter()
                        .Name("grove_child_terminations_total")
                        .Help("Children ended in a way their supervisor reports (child_terminated events)")
                        .Register(*registry_)),
      intensity_(prometheus::BuildCounter()
                     .Name("grove_intensity_reached_total")
                     .Help("Supervisors that gave up after too many restarts (intensity_reached events)")
                     .Register(*registry_)),
      crashes_(prometheus::BuildCounter()
                   .Name("grove_crashes_total")
                   .Help("Processes that ended by themselves with an abnormal reason, by the reason's kind")
                   .Register(*registry_)) {}

prometheus::Counter& node_metrics::per_child(prometheus::Family<prometheus::Counter>& f, std::size_t& count,
                                             const std::string& supervisor, const std::string& child) {
  std::map<std::string, std::string> labels{{"supervisor", supervisor}, {"child", child}};
  if (!f.Has(labels)) {
    if (count >= max_children) {
      labels["child"] = "_other";
    } else {
      ++count;
    }
  }
  return f.Add(labels);
}

void node_metrics::absorb() {
  for (const event& e : sub_->take()) {
    switch (e.kind) {
      case event_kind::progress:
        if (e.restarts > 0) per_child(restarts_, restart_children_, e.supervisor, e.child).Increment();
        break;
      case event_kind::child_terminated:
        per_child(terminations_, termination_children_, e.supervisor, e.child).Increment();
        break;
      case event_kind::intensity_reached:
        intensity_.Add({{"supervisor", e.supervisor}}).Increment();
        break;
      case event_kind::crash:
        crashes_.Add({{"kind", kind_name(e.reason.what())}}).Increment();
        break;
      default:
        break;
    }
  }
}

std::string node_metrics::scrape() {
  absorb();
  std::vector<MetricFamily> out = registry_->Collect();
  const node_totals t = node_.totals();

  // Processes: a walk over the live ones for their messages and mailboxes.
  std::uint64_t in = t.ended_messages_in, sent = t.ended_messages_out;
  std::array<std::uint64_t, mailbox_ranges.size()> in_range{};
  std::uint64_t mail_sum = 0, mail_max = 0;
  for (const pid& p : node_.processes()) {
    auto i = info(p);
    if (!i) continue;
    in += i->messages_in;
    sent += i->messages_out;
    mail_sum += i->mailbox_length;
    mail_max = std::max<std::uint64_t>(mail_max, i->mailbox_length);
    std::size_t r = 0;
    while (r < mailbox_bounds.size() && i->mailbox_length > mailbox_bounds[r]) ++r;
    ++in_range[r];
  }
  {
    auto f = family("grove_processes", "Processes alive", MetricType::Gauge);
    f.metric.push_back(gauge(static_cast<double>(node_.process_count())));
    out.push_back(std::move(f));
  }
  {
    auto f = family("grove_processes_spawned_total", "Processes started since the node started", MetricType::Counter);
    f.metric.push_back(counter(static_cast<double>(t.spawned)));
    out.push_back(std::move(f));
  }
  {
    auto f = family("grove_messages_received_total", "Messages received by processes (ended ones included)",
                    MetricType::Counter);
    last_in_ = std::max(last_in_, static_cast<double>(in));
    f.metric.push_back(counter(last_in_));
    out.push_back(std::move(f));
  }
  {
    auto f =
        family("grove_messages_sent_total", "Messages sent by processes (ended ones included)", MetricType::Counter);
    last_out_ = std::max(last_out_, static_cast<double>(sent));
    f.metric.push_back(counter(last_out_));
    out.push_back(std::move(f));
  }
  {
    auto f = family("grove_processes_by_mailbox_length",
                    "Live processes by the length of their mailbox (ranges of messages waiting)", MetricType::Gauge);
    for (std::size_t r = 0; r < mailbox_ranges.size(); ++r) {
      f.metric.push_back(gauge(static_cast<double>(in_range[r]), {{"length", mailbox_ranges[r]}}));
    }
    out.push_back(std::move(f));
  }
  {
    auto f = family("grove_mailbox_messages", "Messages waiting in the mailboxes of live processes, in all",
                    MetricType::Gauge);
    f.metric.push_back(gauge(static_cast<double>(mail_sum)));
    out.push_back(std::move(f));
    auto g = family("grove_mailbox_length_max", "The longest mailbox of a live process", MetricType::Gauge);
    g.metric.push_back(gauge(static_cast<double>(mail_max)));
    out.push_back(std::move(g));
  }
  {
    auto f = family("grove_calls_total", "GenServer calls made by processes", MetricType::Counter);
    f.metric.push_back(counter(static_cast<double>(t.calls)));
    out.push_back(std::move(f));
    auto h = family("grove_call_duration_seconds",
                    "Round trip of answered GenServer calls, one call in 16 per scheduler thread timed",
                    MetricType::Histogram);
    ClientMetric m;
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < call_latency_bounds_ns.size(); ++b) {
      cumulative += t.call_latency[b];
      m.histogram.bucket.push_back({cumulative, static_cast<double>(call_latency_bounds_ns[b]) / 1e9});
    }
    cumulative += t.call_latency.back();
    m.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
    m.histogram.sample_count = cumulative;
    m.histogram.sample_sum = seconds(t.sampled_call_time);
    h.metric.push_back(std::move(m));
    out.push_back(std::move(h));
  }
  {
    auto busy = family("grove_scheduler_busy_seconds_total",
                       "Time each scheduler thread spent running processes (not idle)", MetricType::Counter);
    auto idle =
        family("grove_scheduler_idle_seconds_total",
               "Time each scheduler thread had nothing to run (looking for work, then asleep)", MetricType::Counter);
    last_busy_.resize(t.scheduler_idle.size(), 0.0);
    last_idle_.resize(t.scheduler_idle.size(), 0.0);
    for (std::size_t s = 0; s < t.scheduler_idle.size(); ++s) {
      const double i = seconds(t.scheduler_idle[s]);
      last_idle_[s] = std::max(last_idle_[s], i);
      last_busy_[s] = std::max(last_busy_[s], seconds(t.uptime) - i);
      const std::vector<ClientMetric::Label> l{{"scheduler", std::to_string(s)}};
      busy.metric.push_back(counter(last_busy_[s], l));
      idle.metric.push_back(counter(last_idle_[s], l));
    }
    out.push_back(std::move(busy));
    out.push_back(std::move(idle));
    auto q = family("grove_run_queue_length", "Processes waiting to run, per scheduler thread", MetricType::Gauge);
    const auto lengths = node_.run_queue_lengths();
    for (std::size_t s = 0; s < lengths.size(); ++s) {
      q.metric.push_back(gauge(static_cast<double>(lengths[s]), {{"scheduler", std::to_string(s)}}));
    }
    out.push_back(std::move(q));
    auto n = family("grove_schedulers", "Scheduler threads", MetricType::Gauge);
    n.metric.push_back(gauge(static_cast<double>(node_.schedulers())));
    out.push_back(std::move(n));
  }
  {
    event_bus& bus = events(node_);
    auto f = family("grove_event_bus_dropped_total", "Events subscribers lost because they fell behind",
                    MetricType::Counter);
    f.metric.push_back(counter(static_cast<double>(bus.dropped())));
    out.push_back(std::move(f));
    auto p = family("grove_events_published_total", "Events published on the node's bus, by kind", MetricType::Counter);
    for (event_kind k :
         {event_kind::progress, event_kind::child_terminated, event_kind::start_error, event_kind::shutdown_error,
          event_kind::intensity_reached, event_kind::crash, event_kind::application, event_kind::long_schedule,
          event_kind::exit, event_kind::nodeup, event_kind::nodedown, event_kind::connection_failed}) {
      p.metric.push_back(counter(static_cast<double>(bus.count(k)), {{"kind", to_string(k)}}));
    }
    out.push_back(std::move(p));
  }
  {
    auto f = family("grove_uptime_seconds", "Time since the node started", MetricType::Gauge);
    f.metric.push_back(gauge(seconds(t.uptime)));
    out.push_back(std::move(f));
  }
  return prometheus::TextSerializer().Serialize(out);
}

}  // namespace grove::detail
