// epmd and the handshake digest (grove/dist/epmd.hpp), against Debian's real epmd and erl.
#include <unistd.h>

#include <cstdio>
#include <string>
#include <thread>

#include <catch2/catch.hpp>
#include <grove/dist/epmd.hpp>

#include "erl_support.hpp"

namespace d = grove::dist;
using namespace std::chrono_literals;

namespace {

std::string hex_of(const std::string& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

// What a shell command prints.
std::string output_of(const std::string& command) {
  std::string out;
  if (FILE* p = popen(command.c_str(), "r")) {
    char b[4096];
    std::size_t n;
    while ((n = fread(b, 1, sizeof b, p)) > 0) out.append(b, n);
    pclose(p);
  }
  return out;
}

}  // namespace

TEST_CASE("MD5 and the handshake digest agree with the RFC and with erlang:md5", "[dist][epmd]") {
  CHECK(hex_of(d::md5("")) == "d41d8cd98f00b204e9800998ecf8427e");
  CHECK(hex_of(d::md5("abc")) == "900150983cd24fb0d6963f7d28e17f72");
  CHECK(hex_of(d::md5("The quick brown fox jumps over the lazy dog")) == "9e107d9d372bb6826bd81d3542a419d6");
  CHECK(hex_of(d::md5(std::string(1000, 'a'))) == "cabe45dcc9ae5b66ba86600cca6b8ba8");
  erl_shell erl(R"(
    io:format("~s~n", [binary:encode_hex(erlang:md5("SECRETCOOKIE" ++ integer_to_list(4294967295)))]),
    io:format("~s~n", [binary:encode_hex(erlang:md5("c" ++ integer_to_list(0)))]),
    halt().)");
  std::string a = erl.read_line(), b = erl.read_line();
  for (char& c : a) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (char& c : b) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  CHECK(hex_of(d::handshake_digest(4294967295u, "SECRETCOOKIE")) == a);
  CHECK(hex_of(d::handshake_digest(0, "c")) == b);
}

TEST_CASE("a name registered with epmd is listed and looked up until its registration ends", "[dist][epmd]") {
  REQUIRE(std::system("epmd -daemon") == 0);  // started once per machine; a no-op when it runs
  const std::string name = "grove_test_" + std::to_string(::getpid());
  std::string error;
  std::optional<d::epmd_registration> reg;
  // epmd -daemon returns before it listens: the first registration may have to wait for it.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!(reg = d::epmd_register(name, 12345, false, error)) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  REQUIRE(reg);
  CHECK(reg->active());
  CHECK(reg->creation() != 0);
  CHECK(output_of("epmd -names").find("name " + name + " at port 12345") != std::string::npos);

  auto found = d::epmd_lookup("localhost", name, error);
  REQUIRE(found);
  CHECK(found->port == 12345);
  CHECK_FALSE(found->hidden);
  CHECK(found->name == name);
  CHECK(found->highest_version == 6);

  std::string taken;
  CHECK_FALSE(d::epmd_register(name, 12346, false, taken));
  CHECK(taken.find("refused the name " + name) != std::string::npos);

  auto hidden = d::epmd_register(name + "_h", 12347, true, error);
  REQUIRE(hidden);
  CHECK(d::epmd_lookup("localhost", name + "_h", error)->hidden);

  reg.reset();  // the connection closes: epmd forgets the name
  std::string gone;
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (d::epmd_lookup("localhost", name, gone) && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  CHECK(gone == "no node " + name + " on localhost");

  std::string bad;
  CHECK_FALSE(d::epmd_register("a@b", 1, false, bad));
  CHECK(bad.find("without @") != std::string::npos);
  CHECK_FALSE(d::epmd_lookup("localhost", name, bad, 1));  // nothing listens on port 1
  CHECK(bad.find("cannot reach epmd") != std::string::npos);
}
