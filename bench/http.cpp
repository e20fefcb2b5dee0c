// The HTTP endpoint (docs/dashboard.md, docs/metrics.md): what the dashboard and a Prometheus
// scrape cost the node.
//   api        GET /api/apps round trips on one keep-alive connection (a request runs a
//              console command in a process of its own and answers with its JSON)
//   metrics    GET /metrics with K idle processes on the node (default 1,000 and 100,000):
//              the scrape walks the live processes
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <grove/grove.hpp>
#include <grove/observe/http.hpp>

#include "bench_common.hpp"

namespace {

// A keep-alive client: one request, then its whole response (Content-Length).
class http_client {
 public:
  explicit http_client(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) bench::fail("http", "cannot connect");
    int yes = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
  }
  ~http_client() { ::close(fd_); }
  // The body's size; fails the benchmark on anything but 200.
  std::size_t get(const std::string& target) {
    const std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
      bench::fail("http", "send failed");
    }
    std::size_t head_end;
    while ((head_end = buf_.find("\r\n\r\n")) == std::string::npos) read_more();
    if (buf_.compare(0, 12, "HTTP/1.1 200") != 0) bench::fail("http", "answer: " + buf_.substr(0, 40));
    const std::size_t at = buf_.find("Content-Length: ");
    const std::size_t len = std::stoul(buf_.substr(at + 16));
    while (buf_.size() < head_end + 4 + len) read_more();
    buf_.erase(0, head_end + 4 + len);
    return len;
  }

 private:
  void read_more() {
    char b[65536];
    const ssize_t n = ::recv(fd_, b, sizeof b, 0);
    if (n <= 0) bench::fail("http", "connection closed");
    buf_.append(b, static_cast<std::size_t>(n));
  }
  int fd_ = -1;
  std::string buf_;
};

struct endpoint {
  explicit endpoint(unsigned schedulers) : node({.schedulers = schedulers}), web(node, {}) {
    std::string error;
    if (!web.start(error)) bench::fail("http", error);
  }
  grove::node node;
  grove::http_endpoint web;
};

double api_us(unsigned scheds, long long n) {
  endpoint e(scheds);
  http_client c(e.web.port());
  for (int i = 0; i < 100; ++i) c.get("/api/apps");  // warm-up
  const auto t0 = bench::clock::now();
  for (long long i = 0; i < n; ++i) c.get("/api/apps");
  return bench::ns_since(t0) / 1e3 / static_cast<double>(n);
}

double scrape_us(unsigned scheds, long long idle, long long n, std::size_t& bytes) {
  endpoint e(scheds);
  struct never {};
  std::vector<grove::pid> sleepers = e.node.run([idle] {
    std::vector<grove::pid> v;
    for (long long i = 0; i < idle; ++i) v.push_back(grove::spawn([] { grove::receive([](never) {}); }));
    return v;
  });
  http_client c(e.web.port());
  bytes = c.get("/metrics");
  const auto t0 = bench::clock::now();
  for (long long i = 0; i < n; ++i) c.get("/metrics");
  const double us = bench::ns_since(t0) / 1e3 / static_cast<double>(n);
  e.node.run([&] {
    for (auto& s : sleepers) grove::exit(s, grove::exit_reason::kill());
  });
  return us;
}

}  // namespace

int main(int argc, char** argv) {
  auto a = bench::parse_args(argc, argv);
  const long long requests = a.n ? a.n : (a.small ? 1000 : 20000);
  const long long scrapes = a.small ? 5 : 20;
  const int repeat = a.repeat ? a.repeat : (a.small ? 1 : 3);
  std::vector<long long> idles{1000, a.small ? 10000 : 100000};
  bench::watchdog dog("http", a.timeout_s ? a.timeout_s : (a.small ? 120 : 600));

  for (unsigned scheds : bench::scheduler_set(a)) {
    dog.stage("api schedulers=" + std::to_string(scheds));
    std::vector<double> runs;
    for (int r = 0; r < repeat; ++r) runs.push_back(api_us(scheds, requests));
    bench::json()
        .str("bench", "http")
        .str("form", "api")
        .num("schedulers", scheds)
        .num("requests", requests)
        .num("repeat", repeat)
        .num("us_per_request", bench::median(runs))
        .nums("runs_us", runs)
        .print();
    for (long long idle : idles) {
      dog.stage("metrics schedulers=" + std::to_string(scheds) + " idle=" + std::to_string(idle));
      std::vector<double> us;
      std::size_t bytes = 0;
      for (int r = 0; r < repeat; ++r) us.push_back(scrape_us(scheds, idle, scrapes, bytes));
      bench::json()
          .str("bench", "http")
          .str("form", "metrics")
          .num("schedulers", scheds)
          .num("idle_processes", idle)
          .num("scrapes", scrapes)
          .num("repeat", repeat)
          .num("bytes", static_cast<long long>(bytes))
          .num("us_per_scrape", bench::median(us))
          .nums("runs_us", us)
          .print();
    }
  }
}
