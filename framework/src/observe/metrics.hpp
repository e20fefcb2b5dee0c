// The node's figures in Prometheus's text format (docs/metrics.md), for the HTTP endpoint's
// /metrics. Used from one thread (the endpoint's I/O thread).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/registry.h>

#include <grove/runtime/events.hpp>
#include <grove/runtime/node.hpp>

namespace grove::detail {

class node_metrics {
 public:
  // Subscribes to the node's event bus: restarts and crashes are counted from then on.
  explicit node_metrics(node& n);
  // Counts the events queued since the last call (call at least every few seconds: the queue
  // holds 16,384 events; what overflows it is lost and counted in grove_event_bus_dropped_total).
  void absorb();
  // absorb(), then every metric in the text exposition format 0.0.4.
  std::string scrape();

  // Distinct {supervisor, child} label sets kept per family; later ones are counted under
  // child="_other" (dynamic children would otherwise grow the series without bound).
  static constexpr std::size_t max_children = 1000;

 private:
  prometheus::Counter& per_child(prometheus::Family<prometheus::Counter>& f, std::size_t& count,
                                 const std::string& supervisor, const std::string& child);

  node& node_;
  std::shared_ptr<subscription> sub_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& restarts_;
  prometheus::Family<prometheus::Counter>& terminations_;
  prometheus::Family<prometheus::Counter>& intensity_;
  prometheus::Family<prometheus::Counter>& crashes_;
  std::size_t restart_children_ = 0, termination_children_ = 0;
  // Counters summed from live processes and totals can dip for a moment (a process between its
  // end and the totals, a spell of idleness seen late): what was reported is never undercut.
  double last_in_ = 0, last_out_ = 0;
  std::vector<double> last_busy_, last_idle_;
};

}  // namespace grove::detail
