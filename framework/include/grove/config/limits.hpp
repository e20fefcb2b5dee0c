// Upper bounds on what a configuration may ask for, from YAML or the command line alike: bad
// input is an error that names the limit, never a hang or an allocation the machine cannot
// make. `grove check` refuses exactly what `grove run` would.
#pragma once

#include <cstddef>
#include <cstdint>

namespace grove::config::limits {

// Input: only regular files are read; sizes in bytes.
inline constexpr std::size_t max_file_bytes = std::size_t{4} << 20;  // one YAML file
// Every file read plus every alias expansion, together.
inline constexpr std::size_t max_total_bytes = std::size_t{32} << 20;
inline constexpr std::size_t max_nodes = 1'000'000;  // YAML nodes after alias expansion
inline constexpr int max_include_depth = 16;         // a file including a file including ...
inline constexpr int max_includes = 256;             // files included, all levels together

// Counts that allocate.
inline constexpr int max_schedulers = 1024;
inline constexpr int max_console_sessions = 1024;
inline constexpr int max_http_connections = 4096;
inline constexpr std::int64_t max_partitions = 1024;            // partition_supervisor
inline constexpr std::int64_t max_pool_workers = 100'000;       // pool: size + max_overflow
inline constexpr double max_crash_rate = 1'000'000.0;           // crasher: crashes per second
inline constexpr std::int64_t max_shutdown_timeout_s = 86'400;  // --shutdown-timeout

}  // namespace grove::config::limits
