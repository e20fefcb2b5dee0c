// A console (or HTTP) client over TCP, for tests: reads until a text appears, with deadlines.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

#include <catch2/catch.hpp>

namespace {

using namespace std::chrono_literals;

// A console client over TCP.
class client {
 public:
  explicit client(int port, int rcvbuf = 0) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf) setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  ~client() {
    if (fd_ >= 0) close(fd_);
  }

  void send_raw(const std::string& s) {
    REQUIRE(::send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size()));
  }
  // Reads until `n` bytes are buffered (within the deadline); takes them ("" on deadline).
  std::string take(std::size_t n, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (buf_.size() < n) {
      if (!read_some(deadline)) return "";
    }
    std::string out = buf_.substr(0, n);
    buf_.erase(0, n);
    return out;
  }
  void send_line(const std::string& line) {
    std::string s = line + "\n";
    REQUIRE(::send(fd_, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size()));
  }
  // Reads until `text` appears; returns what was read up to and including it ("" on deadline).
  std::string until(const std::string& text, std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      if (auto at = buf_.find(text); at != std::string::npos) {
        std::string out = buf_.substr(0, at + text.size());
        buf_.erase(0, at + text.size());
        return out;
      }
      if (!read_some(deadline)) return "";
    }
  }
  // One command's answer: everything up to the next prompt.
  std::string ask(const std::string& line) {
    send_line(line);
    return until("grove> ");
  }
  // True once the server closed the connection (within the deadline).
  bool closed(std::chrono::milliseconds limit = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (read_some(deadline)) {
    }
    return eof_;
  }
  std::string rest() { return std::exchange(buf_, {}); }
  bool at_eof() const { return eof_; }
  // A client that stalled and now reads at full speed: a 4 KiB receive window, far below
  // loopback's 64 KiB segments, can leave the sender to zero-window probes that back off
  // (200 ms, 400 ms, ... seconds), which is the kernel's pace, not the node's.
  void grow_receive_buffer(int bytes = 1 << 20) { setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes); }
  // Shuts down the sending half: the node sees EOF and should still answer.
  void shut_write() { ::shutdown(fd_, SHUT_WR); }
  // Closes the connection (as a client that goes away).
  void close_now() {
    ::close(fd_);
    fd_ = -1;
  }
  // Sends `line` without reading, as much as the node takes: until `max` bytes went out, or
  // it has taken nothing for `stall` (it stopped reading). Returns the bytes sent.
  std::size_t flood(const std::string& line, std::size_t max, std::chrono::milliseconds stall) {
    std::size_t sent = 0, at = 0;
    while (sent < max) {
      const ssize_t w = ::send(fd_, line.data() + at, line.size() - at, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0) {
        sent += static_cast<std::size_t>(w);
        at = (at + static_cast<std::size_t>(w)) % line.size();
        continue;
      }
      if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) break;
      pollfd p{fd_, POLLOUT, 0};
      if (poll(&p, 1, static_cast<int>(stall.count())) <= 0) break;
    }
    return sent;
  }

 private:
  bool read_some(std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || eof_) return false;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char b[65536];
    ssize_t n = recv(fd_, b, sizeof b, 0);
    if (n <= 0) {
      eof_ = true;
      return false;
    }
    buf_.append(b, static_cast<std::size_t>(n));
    return true;
  }
  int fd_ = -1;
  std::string buf_;
  bool eof_ = false;
};

}  // namespace
