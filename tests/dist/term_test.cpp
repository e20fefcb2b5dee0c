// Erlang terms (grove/dist/term.hpp): round trips in C++, against a real `erl` (Debian's
// erlang-nox), and decoding that refuses bad input instead of crashing.
#include <chrono>
#include <cstdint>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <grove/dist/term.hpp>
#include <grove/grove.hpp>

#include "erl_support.hpp"

using grove::dist::term;
namespace d = grove::dist;

namespace {

std::string hex(const std::string& bytes) {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string unhex(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i + 1 < text.size(); i += 2)
    out += static_cast<char>(std::stoi(text.substr(i, 2), nullptr, 16));
  return out;
}

}  // namespace

TEST_CASE("terms round-trip in C++: bignums, UTF-8 atoms, bit strings, improper lists, big tuples, maps with any keys",
          "[dist][term]") {
  std::vector<term> elements;
  for (int i = 0; i < 300; ++i) elements.emplace_back(i);
  const std::vector<term> samples{
      term(0),
      term(std::int64_t{-1} << 40),
      term(std::int64_t{INT64_MAX}),
      term(d::bignum{true, {1, 2, 3, 4, 5, 6, 7, 8, 9}}),
      term(2.5),
      term::make_atom("h\xc3\xa9llo"),
      term::make_atom(""),
      term::make_binary(std::string("\0\1\2", 3)),
      term(d::bitstring{"\xa0", 3}),
      term::make_list({term(1), term(2)}),
      term::make_improper_list({term(1), term(2)}, term(3)),
      term(),
      term::make_tuple(elements),
      term(d::map{{{term::make_tuple({term::make_atom("a"), term(1)}), term::make_atom("x")},
                   {term::make_list({term(1)}), term(d::map{})}}}),
      term(d::erl_pid{"a@b", 12, 3, 7}),
      term(d::erl_ref{"a@b", 7, {1, 2, 3}}),
      term(d::erl_port{"a@b", 99, 7}),
  };
  for (const term& t : samples) {
    INFO(t.str());
    CHECK(d::decode(d::encode(t)) == t);
  }
  CHECK(term::make_improper_list({term(1)}, term(2)).str() == "[1|2]");
  CHECK(term::make_binary("two \"q\"").str() == "<<\"two \\\"q\\\"\">>");  // text as ~p writes it
  CHECK(term::make_binary(std::string("\x01\xff", 2)).str() == "<<1,255>>");
  CHECK(samples[13].str() == "#{{a,1} => x,[1] => #{}}");
  // Map equality ignores the order of the entries, as Erlang's.
  CHECK(term(d::map{{{term(1), term(2)}, {term(3), term(4)}}}) ==
        term(d::map{{{term(3), term(4)}, {term(1), term(2)}}}));
}

TEST_CASE("terms from a real erl decode to the right values, and erl reads back what Grove encodes as equal",
          "[dist][term]") {
  // One erl: it prints term_to_binary of each term, reads our re-encodings back, and says
  // whether each binary_to_term is =:= the original (pids, refs and funs included).
  erl_shell erl(R"(
    T = [1 bsl 200, -(1 bsl 100), 1 bsl 62, -5, 3.5,
         list_to_atom([104,233,108,108,111]), list_to_atom([26085,26412]),
         <<1:3>>, <<255,7:5>>, <<"abc">>,
         [1,2|3], "abc", [],
         list_to_tuple(lists:seq(1,300)),
         #{{a,1} => x, [1] => y, <<"k">> => #{}},
         self(), make_ref(), hd(erlang:ports()),
         fun(X) -> X + 1 end, fun lists:reverse/1],
    [io:format("~s~n", [binary:encode_hex(term_to_binary(X))]) || X <- T],
    R = [begin
           L = io:get_line(""),
           binary_to_term(binary:decode_hex(list_to_binary(string:trim(L)))) =:= X
         end || X <- T],
    io:format("verdict ~w~n", [R]),
    halt().)");
  constexpr std::size_t count = 20;
  std::vector<term> got;
  for (std::size_t i = 0; i < count; ++i) {
    const std::string line = erl.read_line();
    REQUIRE_FALSE(line.empty());
    got.push_back(d::decode(unhex(line)));
  }
  const auto& big = got[0].as<d::bignum>();
  CHECK_FALSE(big.negative);
  CHECK(big.digits.size() == 26);
  CHECK(big.digits.back() == 1);
  CHECK(got[0].str() == "1606938044258990275541962092341162602522202993782792835301376");
  CHECK(got[1].as<d::bignum>().negative);
  CHECK(got[1].str() == "-1267650600228229401496703205376");
  CHECK(got[2] == term(std::int64_t{1} << 62));
  CHECK(got[3] == term(-5));
  CHECK(got[4] == term(3.5));
  CHECK(got[5] == term::make_atom("h\xc3\xa9llo"));
  CHECK(got[6] == term::make_atom("\xe6\x97\xa5\xe6\x9c\xac"));
  CHECK(got[7] == term(d::bitstring{"\x20", 3}));
  CHECK(got[7].str() == "<<1:3>>");
  CHECK(got[8].str() == "<<255,7:5>>");
  CHECK(got[9] == term::make_binary("abc"));
  CHECK(got[10] == term::make_improper_list({term(1), term(2)}, term(3)));
  CHECK(got[11] == term::make_list({term('a'), term('b'), term('c')}));
  CHECK(got[11].str() == "\"abc\"");
  CHECK(got[12].is_nil());
  CHECK(got[13].as<d::tuple>().elements.size() == 300);
  CHECK(got[13].as<d::tuple>().elements[299] == term(300));
  const auto& m = got[14].as<d::map>();
  CHECK(m.entries.size() == 3);
  CHECK(std::find_if(m.entries.begin(), m.entries.end(), [](const auto& e) {
          return e.first == term::make_tuple({term::make_atom("a"), term(1)}) && e.second == term::make_atom("x");
        }) != m.entries.end());
  CHECK(got[15].as<d::erl_pid>().node == "nonode@nohost");
  CHECK(got[16].is<d::erl_ref>());
  CHECK(got[17].is<d::erl_port>());
  CHECK(got[18].is<d::opaque>());
  CHECK(got[19].is<d::opaque>());
  for (const term& t : got) erl.write_line(hex(d::encode(t)));
  CHECK(erl.read_line() == "verdict [" + [&] {
    std::string s;
    for (std::size_t i = 0; i < count; ++i) s += i ? ",true" : "true";
    return s;
  }() + "]");
}

TEST_CASE("decoding refuses malformed, truncated, too deep or oversized terms with an error, never a crash",
          "[dist][term]") {
  const std::string good = d::encode(term::make_tuple(
      {term::make_atom("ok"),
       term::make_list({term(1), term::make_binary("xyz"), term(d::bignum{false, {1, 2, 3, 4, 5, 6, 7, 8, 9}})}),
       term(d::map{{{term(1), term(d::erl_pid{"n@h", 1, 2, 3})}}})}));
  CHECK_NOTHROW(d::decode(good));
  for (std::size_t n = 0; n < good.size(); ++n) {  // every truncation
    CHECK_THROWS_AS(d::decode(good.substr(0, n)), d::decode_error);
  }
  CHECK_THROWS_WITH(d::decode(good + "x"), Catch::Contains("trailing bytes"));
  CHECK_THROWS_WITH(d::decode("\x83\x6c\x7f\xff\xff\xff\x6a"),
                    Catch::Contains("truncated"));  // a list of 2^31 elements
  CHECK_THROWS_WITH(d::decode(std::string("\x83\x6d\xff\xff\xff\xff", 6)),
                    Catch::Contains("truncated"));                                   // a 4 GiB binary
  CHECK_THROWS_WITH(d::decode("\x83\x52\x01"), Catch::Contains("unsupported tag"));  // an atom cache reference
  CHECK_THROWS_WITH(d::decode("nope"), Catch::Contains("version byte"));
  std::string deep = "\x83";
  for (int i = 0; i < 1000; ++i) deep += "\x68\x01";  // {{{...}}}
  deep += "\x6a";
  CHECK_THROWS_WITH(d::decode(deep), Catch::Contains("nested deeper than 256"));
  CHECK_NOTHROW(d::decode(deep, 1001));
  // Decoding takes no stack per level (a term at the limit decodes, and is freed, in a process's
  // default 64 KiB stack).
  std::string at_limit = "\x83";
  for (int i = 0; i < 256; ++i) at_limit += "\x68\x01";
  at_limit += "\x6a";
  grove::node n({.schedulers = 1});
  CHECK(n.run([&] {
    const term t = d::decode(at_limit);
    int depth = 0;
    for (const term* p = &t; auto* tu = p->get_if<d::tuple>(); p = &tu->elements[0]) ++depth;
    return depth;
  }) == 256);
  // Random corruption of a good term: decoded or refused, never a crash (ASan checks the reads).
  std::mt19937 rng(42);
  for (int i = 0; i < 20000; ++i) {
    std::string bad = good;
    for (int k = 0; k < 3; ++k) bad[1 + rng() % (bad.size() - 1)] = static_cast<char>(rng());
    try {
      (void)d::decode(bad);
    } catch (const d::decode_error&) {
    }
  }
}

TEST_CASE("a fun is carried as it came only if its insides are well formed; a bad one is refused, never read past",
          "[dist][term]") {
  using namespace std::string_literals;
  // NEW_FUN_EXT: size (counting itself), arity, uniq, index, free count, module, old index, old
  // uniq, pid, free variables.
  const auto fun = [](std::string module, std::uint32_t free_count, std::string free, int size_adjust = 0) {
    const std::string pid = "\x58\x77\x03n@h"s + std::string(12, '\1');
    std::string body = "\x01"s + std::string(16, '\x2a') + std::string(4, '\0');
    body += std::string{static_cast<char>(free_count >> 24), static_cast<char>(free_count >> 16),
                        static_cast<char>(free_count >> 8), static_cast<char>(free_count)};
    body += module + "\x61\x00\x61\x00"s + pid + free;
    const auto size = static_cast<std::uint32_t>(static_cast<int>(body.size()) + 4 + size_adjust);
    return "\x83\x70"s +
           std::string{static_cast<char>(size >> 24), static_cast<char>(size >> 16), static_cast<char>(size >> 8),
                       static_cast<char>(size)} +
           body;
  };
  const std::string good = fun("\x77\x01m"s, 2, "\x61\x07\x68\x01\x6a"s);  // free: 7, {[]}
  const term t = d::decode(good);
  REQUIRE(t.is<d::opaque>());
  CHECK(d::encode(t) == good);
  CHECK(d::decode(d::encode(term::make_list({t, t}))) == term::make_list({t, t}));
  for (std::size_t n = 0; n < good.size(); ++n) CHECK_THROWS_AS(d::decode(good.substr(0, n)), d::decode_error);
  // The module atom says it is longer than the fun (the fuzzer's find: ei read past the buffer).
  CHECK_THROWS_AS(d::decode(fun("\x64\xff\xffm"s, 0, "")), d::decode_error);
  CHECK_THROWS_WITH(d::decode(fun("\x61\x01"s, 0, "")), Catch::Contains("an atom was expected"));
  // More free variables than follow, fewer, or a size that disagrees with the contents.
  CHECK_THROWS_AS(d::decode(fun("\x77\x01m"s, 3, "\x61\x07\x68\x01\x6a"s)), d::decode_error);
  CHECK_THROWS_WITH(d::decode(fun("\x77\x01m"s, 1, "\x61\x07\x68\x01\x6a"s)), Catch::Contains("size disagrees"));
  CHECK_THROWS_WITH(d::decode(fun("\x77\x01m"s, 2, "\x61\x07\x68\x01\x6a"s, -1)), Catch::Contains("size disagrees"));
  CHECK_THROWS_AS(d::decode(fun("\x77\x01m"s, 2, "\x61\x07\x68\x01\x6a"s, 1)), d::decode_error);
  // Funs nested in a fun's free variables count towards the depth limit, as any container.
  std::string nested = "\x6a"s;
  for (int i = 0; i < 300; ++i) nested = fun("\x77\x01m"s, 1, nested).substr(1);
  CHECK_THROWS_WITH(d::decode("\x83"s + nested), Catch::Contains("nested deeper than 256"));
  CHECK_NOTHROW(d::decode("\x83"s + nested, 400));
}

TEST_CASE(
    "atoms follow Erlang's rules: Latin-1 read as UTF-8, NUL bytes kept, bad UTF-8 and over 255 characters refused",
    "[dist][term]") {
  using namespace std::string_literals;
  // A Latin-1 atom ('é\0x', as binary_to_term reads it) becomes UTF-8, NUL byte and all, and is
  // re-encoded as a UTF-8 atom that decodes to the same name.
  const term latin = d::decode("\x83\x64\x00\x03\xe9\x00x"s);
  REQUIRE(latin.is<d::atom>());
  CHECK(latin.as<d::atom>().name == "\xc3\xa9\0x"s);
  CHECK(d::decode(d::encode(latin)) == latin);
  CHECK(latin.str() == "'\xc3\xa9\\000x'");
  // 255 four-byte characters is the longest atom: 1020 bytes, written with a two-byte length.
  std::string widest;
  for (int i = 0; i < 255; ++i) widest += "\xf0\x9f\x98\x80";
  const std::string enc = d::encode(term::make_atom(widest));
  CHECK(enc.substr(0, 4) == "\x83\x76\x03\xfc"s);  // ATOM_UTF8_EXT, 1020
  CHECK(d::decode(enc).as<d::atom>().name == widest);
  CHECK_THROWS_WITH(d::encode(term::make_atom(widest + "a")), Catch::Contains("longer than 255 characters"));
  CHECK_THROWS_WITH(d::decode("\x83\x76\x01\x00"s + std::string(256, 'a')),
                    Catch::Contains("longer than 255 characters"));
  // Not UTF-8: a stray continuation byte, an overlong form, a surrogate; refused both ways.
  for (const std::string& bad : {"a\x80"s, "\xc0\xaf"s, "\xed\xa0\x80"s}) {
    CHECK_THROWS_WITH(d::decode("\x83\x77"s + char(bad.size()) + bad), Catch::Contains("not UTF-8"));
    CHECK_THROWS_WITH(d::encode(term::make_atom(bad)), Catch::Contains("not UTF-8"));
  }
  // A node name (here a pid's) may not hold a NUL byte.
  CHECK_THROWS_WITH(d::decode("\x83\x58\x77\x03n\0h"s + std::string(12, '\0')), Catch::Contains("NUL"));
}
