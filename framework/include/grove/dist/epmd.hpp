// epmd: the Erlang port mapper, as a distribution node talks to it (docs/concepts/distribution.md).
// A node registers its name and listening port and keeps that connection open for as long as
// it is registered (epmd forgets the name when it closes); other nodes look names up.
// Blocking calls with a deadline, for the distribution layer's own thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace grove::dist {

inline constexpr int epmd_default_port = 4369;

// What epmd knows of a registered node.
struct epmd_entry {
  int port = 0;         // where the node listens for distribution connections
  bool hidden = false;  // registered as a hidden node (type 72) rather than a normal one (77)
  int highest_version = 0;
  int lowest_version = 0;
  std::string name;  // the short name, without @host
};

// A registration: epmd keeps the name while this object lives.
class epmd_registration {
 public:
  epmd_registration() = default;
  epmd_registration(epmd_registration&& o) noexcept;
  epmd_registration& operator=(epmd_registration&& o) noexcept;
  ~epmd_registration();

  bool active() const noexcept { return fd_ >= 0; }
  // The creation epmd gave the node: part of every pid, port and ref it makes.
  std::uint32_t creation() const noexcept { return creation_; }

 private:
  friend std::optional<epmd_registration> epmd_register(const std::string&, int, bool, std::string&, int,
                                                        std::chrono::milliseconds);
  int fd_ = -1;
  std::uint32_t creation_ = 0;
};

// Registers `name` (the part before @) as listening on `port`. nullopt with `error` set when
// epmd cannot be reached, refuses (the name is taken), or does not answer in time.
std::optional<epmd_registration> epmd_register(const std::string& name, int port, bool hidden, std::string& error,
                                               int epmd_port = epmd_default_port,
                                               std::chrono::milliseconds timeout = std::chrono::seconds(5));

// Looks `name` up on the epmd of `host`. nullopt with `error` set if it is not registered or
// epmd cannot be reached.
std::optional<epmd_entry> epmd_lookup(const std::string& host, const std::string& name, std::string& error,
                                      int epmd_port = epmd_default_port,
                                      std::chrono::milliseconds timeout = std::chrono::seconds(5));

// The handshake's digest: MD5 of the cookie followed by the challenge in decimal.
std::string handshake_digest(std::uint32_t challenge, const std::string& cookie);
// MD5 of `data` (16 bytes), for the handshake.
std::string md5(const std::string& data);

}  // namespace grove::dist
