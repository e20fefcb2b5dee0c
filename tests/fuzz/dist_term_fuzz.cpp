// The distribution's term decoder on arbitrary bytes (what a peer node may put in a frame): every
// input decodes or throws decode_error, never crashes, hangs or leaks. A term that decodes
// prints, re-encodes, and its encoding is stable: decoding and encoding it again gives the same
// bytes. Also read as a frame body: a control term followed by a message term.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <grove/dist/term.hpp>

namespace {

void round_trip(const grove::dist::term& t) {
  (void)t.str();
  const std::string once = grove::dist::encode(t);
  const std::string twice = grove::dist::encode(grove::dist::decode(once));
  if (once != twice) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    round_trip(grove::dist::decode(bytes));
  } catch (const grove::dist::decode_error&) {
  }
  try {
    std::size_t used = 0;
    const grove::dist::term control = grove::dist::decode_prefix(bytes, used);
    round_trip(control);
    if (used < bytes.size()) round_trip(grove::dist::decode(bytes.substr(used)));
  } catch (const grove::dist::decode_error&) {
  }
  return 0;
}
