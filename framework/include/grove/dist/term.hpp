// term: any Erlang term, as the distribution protocol carries it (docs/concepts/distribution.md,
// issue 13) — integers of any size, floats, atoms (UTF-8), binaries and bit strings, pids,
// ports and refs of any node, tuples of any arity, proper and improper lists, maps with keys of
// any kind; funs travel opaque (as their encoding, re-sent unchanged).
//
// encode/decode speak Erlang's external term format (what term_to_binary writes), with
// erl_interface's ei as the codec. Decoding never trusts its input: a malformed, truncated or
// too deeply nested term is a decode_error, never a crash.
#pragma once

#include <compare>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace grove::dist {

class term;

struct atom {
  std::string name;  // UTF-8
  bool operator==(const atom&) const = default;
};
// An integer beyond 64 bits: sign and magnitude, little-endian base-256 digits (no leading
// zero digit at the top).
struct bignum {
  bool negative = false;
  std::vector<std::uint8_t> digits;
  bool operator==(const bignum&) const = default;
};
struct binary {
  std::string bytes;
  bool operator==(const binary&) const = default;
};
// A bit string that is not a whole number of bytes: the last byte holds `last_bits` bits (1..7),
// the high ones.
struct bitstring {
  std::string bytes;
  unsigned last_bits = 8;
  bool operator==(const bitstring&) const = default;
};
struct erl_pid {
  std::string node;
  std::uint32_t id = 0, serial = 0, creation = 0;
  bool operator==(const erl_pid&) const = default;
};
struct erl_port {
  std::string node;
  std::uint64_t id = 0;
  std::uint32_t creation = 0;
  bool operator==(const erl_port&) const = default;
};
struct erl_ref {
  std::string node;
  std::uint32_t creation = 0;
  std::vector<std::uint32_t> ids;
  bool operator==(const erl_ref&) const = default;
};
struct tuple {
  std::vector<term> elements;
  bool operator==(const tuple&) const;
};
// A list: its elements and, for an improper list, the tail after the last one (null: `[]`).
struct list {
  std::vector<term> elements;
  std::shared_ptr<const term> tail;
  bool operator==(const list&) const;
};
// Entries in the order they were decoded or built; equality ignores the order, as Erlang's.
struct map {
  std::vector<std::pair<term, term>> entries;
  bool operator==(const map&) const;
};
// A term carried as its encoding (funs): re-encoded byte for byte.
struct opaque {
  std::string encoded;  // without the version byte
  bool operator==(const opaque&) const = default;
};

class term {
 public:
  using value_type = std::variant<std::int64_t, bignum, double, atom, binary, bitstring, erl_pid, erl_port, erl_ref,
                                  tuple, list, map, opaque>;

  term() : v_(list{}) {}  // []
  term(std::int64_t i) : v_(i) {}
  term(int i) : v_(static_cast<std::int64_t>(i)) {}
  term(double d) : v_(d) {}
  template <class T>
  requires std::is_constructible_v<value_type, T&&> &&(!std::is_arithmetic_v<std::remove_cvref_t<T>>)term(T&& v)
      : v_(std::forward<T>(v)) {}

  static term make_atom(std::string name) { return term(atom{std::move(name)}); }
  static term make_binary(std::string bytes) { return term(binary{std::move(bytes)}); }
  static term make_tuple(std::vector<term> elements) { return term(tuple{std::move(elements)}); }
  // A proper list, or an improper one ending in `tail`.
  static term make_list(std::vector<term> elements);
  static term make_improper_list(std::vector<term> elements, term tail);

  template <class T>
  bool is() const noexcept {
    return std::holds_alternative<T>(v_);
  }
  template <class T>
  const T& as() const {
    return std::get<T>(v_);
  }
  template <class T>
  const T* get_if() const noexcept {
    return std::get_if<T>(&v_);
  }
  const value_type& value() const noexcept { return v_; }
  bool is_nil() const noexcept {
    auto* l = std::get_if<list>(&v_);
    return l && l->elements.empty() && !l->tail;
  }

  bool operator==(const term& o) const { return v_ == o.v_; }

  // Erlang's way of writing it (~p without line breaks): {ok,[1,2|3]}, #{a => <<"x">>}, <0.12.0>.
  std::string str() const;

 private:
  value_type v_;
};

struct decode_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The external term format, with the version byte (131) first.
std::string encode(const term& t);
// Decodes one whole term (the version byte first); throws decode_error on anything else, on
// trailing bytes, and past `max_depth` levels of nesting.
term decode(std::string_view bytes, unsigned max_depth = 256);
// Decodes the term at the start of `bytes` (the version byte first) and sets `used` to its
// length, so that more may follow (a distribution frame: control, then message).
term decode_prefix(std::string_view bytes, std::size_t& used, unsigned max_depth = 256);

}  // namespace grove::dist
