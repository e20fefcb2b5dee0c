// The bank service: `bank run config/bank.yaml` (or bank-table.yaml), `bank check ...`.
#include <grove/app/service.hpp>

#include "bank.hpp"

int main(int argc, char** argv) {
  grove::kind_registry kinds;
  grove::add_builtin_kinds(kinds);
  bank::add_kinds(kinds);
  return grove::cli_main(argc, argv, std::move(kinds));
}
