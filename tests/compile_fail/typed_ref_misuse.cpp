// Misuses of typed_ref<S> that must not compile, one per GROVE_CASE_* macro
// (tests/compile_fail/check_compile_fails.cmake). With no case defined, this is the control: every
// correct use below compiles, so a failure here is the build's, not the check's.
#include <cstdint>
#include <string>

#include <grove/behaviours/typed_ref.hpp>

namespace {
struct balance {};
struct deposit {
  std::int64_t cents;
};
struct audit {};    // in no handles list
struct listed {};   // listed, but no handler for it
struct promise {};  // answered later: the reply type is not visible
struct name_q {};

class ledger final : public grove::gen_server<ledger> {
 public:
  using handles = grove::types<balance, deposit, listed, promise, name_q>;
  std::int64_t handle_call(const balance&, const grove::from&) { return cents_; }
  void handle_call(const deposit& d, const grove::from&) { cents_ += d.cents; }
  void handle_cast(const deposit& d) { cents_ += d.cents; }
  grove::deferred_t handle_call(const promise&, const grove::from&) { return grove::deferred; }
  std::string handle_call(const name_q&, const grove::from&) { return "ledger"; }

 private:
  std::int64_t cents_ = 0;
};
}  // namespace

void use(const grove::typed_ref<ledger>& l) {
#if defined(GROVE_CASE_CALL_NOT_IN_HANDLES)
  l.call(audit{});
#elif defined(GROVE_CASE_CALL_LISTED_WITHOUT_HANDLER)
  l.call(listed{});
#elif defined(GROVE_CASE_CAST_WITHOUT_HANDLE_CAST)
  l.cast(balance{});
#elif defined(GROVE_CASE_CAST_NOT_IN_HANDLES)
  l.cast(audit{});
#elif defined(GROVE_CASE_DEFERRED_WITHOUT_REPLY_TYPE)
  l.call(promise{});
#elif defined(GROVE_CASE_WRONG_REPLY_TYPE)
  l.call<int>(name_q{});
#elif defined(GROVE_CASE_TRY_CALL_NOT_IN_HANDLES)
  (void)l.try_call(audit{});
#else
  std::int64_t cents = l.call(balance{});
  static_assert(std::is_same_v<decltype(l.call(balance{})), std::int64_t>);
  static_assert(std::is_same_v<decltype(l.call(deposit{1})), void>);
  static_assert(std::is_same_v<decltype(l.call<std::string>(promise{})), std::string>);
  static_assert(std::is_same_v<decltype(l.try_call(name_q{})), grove::call_result<std::string> >);
  (void)cents;
  l.cast(deposit{1});
  (void)l.ref();
#endif
}

int main() {}
