// docs/concepts/registry.md's examples, built and run by CI: local names, and a keyed registry
// used for lookup by id and for pub/sub.
#include <iostream>
#include <string>

#include <grove/grove.hpp>

namespace {
struct headline {
  std::string text;
};
struct session_info {
  std::string user;
};
struct stop_now {};
}  // namespace

int main() {
  grove::node node({.schedulers = 2});
  grove::keyed_registry<std::string, session_info> sessions(node, {.keys = grove::keys::unique});
  grove::keyed_registry<std::string> topics(node, {.keys = grove::keys::duplicate, .partitions = 4});
  return node.run([&] {
    const grove::pid me = grove::self();
    // A named process, found by its name.
    auto echo = grove::spawn(
        [] { grove::receive([](const std::pair<grove::pid, std::string>& m) { grove::send(m.first, m.second); }); });
    grove::register_name("echo", echo);
    grove::send("echo", std::make_pair(me, std::string("hello")));
    std::string back = grove::receive([](const std::string& s) { return s; });

    // Subscribers of a topic, each also registered under a unique session id.
    for (int i = 0; i < 3; ++i) {
      grove::spawn([&, me, i] {
        (void)sessions.register_self("user:" + std::to_string(i), session_info{"user " + std::to_string(i)});
        (void)topics.register_self("news");
        grove::send(me, true);
        grove::receive([&](const headline& h) { grove::send(me, h.text + " seen by " + std::to_string(i)); });
        grove::receive([](stop_now) {});
      });
    }
    for (int i = 0; i < 3; ++i) grove::receive([](bool) {});
    std::size_t sent = topics.publish("news", headline{"grove 0.1"});
    for (int i = 0; i < 3; ++i) std::cout << grove::receive([](const std::string& s) { return s; }) << "\n";
    auto who = sessions.find("user:1");
    std::cout << "echo said " << back << "; published to " << sent << "; user:1 is "
              << (who ? who->value.user : "missing") << "\n";
    for (auto& e : topics.lookup("news")) grove::send(e.who, stop_now{});
    return back == "hello" && sent == 3 && who ? 0 : 1;
  });
}
