// The busy machine: a CPU-bound program of the benchmarks' own. T threads (default 2) spin at
// normal priority, each doing arithmetic without a system call, until S seconds pass (default
// 600) or the program is killed. bench/runtime.py runs it beside the runtime benchmarks to
// measure them on a machine that other work keeps busy. Prints one JSON line when it stops.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  int threads = 2;
  double seconds = 600;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--threads") threads = std::atoi(argv[i + 1]);
    if (k == "--seconds") seconds = std::atof(argv[i + 1]);
  }
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> total{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      std::uint64_t x = 88172645463325252ull + static_cast<std::uint64_t>(t), n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (int k = 0; k < 4096; ++k) {  // xorshift: pure CPU work
          x ^= x << 13;
          x ^= x >> 7;
          x ^= x << 17;
        }
        n += 4096;
      }
      total += n + (x & 1);
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : ts) t.join();
  std::printf("{\"bench\":\"hog\",\"threads\":%d,\"iterations\":%llu}\n", threads,
              static_cast<unsigned long long>(total.load()));
}
