// The grove command: runs or checks a node declared in YAML, with the built-in kinds.
#include <grove/app/service.hpp>

int main(int argc, char** argv) {
  grove::kind_registry kinds;
  grove::add_builtin_kinds(kinds);
  return grove::cli_main(argc, argv, std::move(kinds));
}
