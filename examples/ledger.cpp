// docs/concepts/gen_server.md's example, built and run by CI: a ledger server behind a typed
// client facade.
#include <cstdint>
#include <iostream>
#include <map>
#include <string>

#include <grove/behaviours/gen_server.hpp>
#include <grove/grove.hpp>

namespace bank {

struct balance {
  std::string account;
};
struct deposit {
  std::string account;
  std::int64_t amount;
};
struct withdraw {
  std::string account;
  std::int64_t amount;
};

class ledger final : public grove::gen_server<ledger> {
 public:
  using handles = grove::types<balance, deposit, withdraw>;

  std::int64_t handle_call(const balance& q, const grove::from&) { return accounts_[q.account]; }
  void handle_cast(const deposit& d) { accounts_[d.account] += d.amount; }
  bool handle_call(const withdraw& w, const grove::from&) {
    auto& funds = accounts_[w.account];
    if (funds < w.amount) return false;
    funds -= w.amount;
    return true;
  }
  std::string format_status() const { return std::to_string(accounts_.size()) + " accounts"; }

 private:
  std::map<std::string, std::int64_t> accounts_;
};

// What the rest of the service sees: plain C++, no messages.
class ledger_client {
 public:
  explicit ledger_client(grove::server_ref server) : server_(std::move(server)) {}
  std::int64_t balance(const std::string& account) {
    return grove::call<std::int64_t>(server_, bank::balance{account});
  }
  void deposit(const std::string& account, std::int64_t amount) {
    grove::cast(server_, bank::deposit{account, amount});
  }
  bool withdraw(const std::string& account, std::int64_t amount) {
    return grove::call<bool>(server_, bank::withdraw{account, amount});
  }

 private:
  grove::server_ref server_;
};

}  // namespace bank

int main() {
  grove::node node({.schedulers = 1});
  return node.run([] {
    grove::start(std::make_unique<bank::ledger>(), {.name = "ledger"}).value();
    bank::ledger_client ledger("ledger");
    ledger.deposit("alice", 100);
    bool ok = ledger.withdraw("alice", 30);
    bool refused = !ledger.withdraw("alice", 1000);
    std::int64_t left = ledger.balance("alice");
    std::cout << "alice has " << left << "; state: " << grove::sys::get_state("ledger") << "\n";
    grove::stop("ledger");
    return ok && refused && left == 70 ? 0 : 1;
  });
}
