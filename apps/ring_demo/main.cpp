// The runtime demo: a ring of linked processes, each also monitored by an observer. One
// member is killed; the link carries its death around the ring, and every process reports
// what it saw before it went.
#include <iostream>
#include <string>
#include <vector>

#include <grove/grove.hpp>

namespace {
struct next_is {
  grove::pid next;
};
struct report {
  std::string line;
};
}  // namespace

int main() {
  using namespace std::chrono_literals;
  grove::node node({.schedulers = 2});
  static constexpr int ring_size = 5;
  node.run([&] {
    const grove::pid observer = grove::self();
    grove::trap_exit(true);
    std::vector<grove::pid> ring;
    for (int i = 0; i < ring_size; ++i) {
      ring.push_back(grove::spawn(
          [observer, i] {
            // The last member traps exits: it sees the signal as a message, reports, and ends.
            bool trapping = i == ring_size - 1;
            grove::trap_exit(trapping);
            grove::receive([&](const next_is& n) {
              if (n.next) grove::link(n.next);
            });
            grove::send(observer,
                        report{"process " + std::to_string(i) + " " + grove::self().str() + " linked and waiting"});
            grove::receive([&](const grove::exit_signal& e) {
              grove::send(observer, report{"process " + std::to_string(i) + " trapped exit from " + e.from.str() +
                                           " with reason " + e.reason.str()});
            });
          },
          {.label = "ring-" + std::to_string(i)}));
    }
    std::vector<grove::monitor_ref> monitors;
    for (auto& p : ring) monitors.push_back(grove::monitor(p));
    for (int i = 0; i < ring_size; ++i) grove::send(ring[i], next_is{i + 1 < ring_size ? ring[i + 1] : grove::pid{}});
    for (int i = 0; i < ring_size; ++i) grove::receive([](const report& r) { std::cout << r.line << "\n"; });
    std::cout << "killing process 2 " << ring[2] << "\n";
    grove::exit(ring[2], grove::exit_reason::kill());
    int downs = 0;
    while (downs < ring_size) {
      grove::receive([&](const report& r) { std::cout << r.line << "\n"; },
                     [&](const grove::down& d) {
                       ++downs;
                       std::cout << "observer: " << d.who << " is down, reason " << d.reason << "\n";
                     });
    }
  });
  std::cout << "all " << ring_size << " processes ended; node has " << node.process_count() << " processes\n";
  return 0;
}
