// The dashboard's page and assets, embedded in the binary at build time (cmake/embed.cmake).
#pragma once

#include <string_view>
#include <vector>

namespace grove::detail {

struct embedded_file {
  std::string_view path;  // "/index.html"
  std::string_view type;  // its Content-Type
  std::string_view body;
};
const std::vector<embedded_file>& dashboard_files();

}  // namespace grove::detail
