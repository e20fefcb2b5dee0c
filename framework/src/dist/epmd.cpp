#include <grove/dist/epmd.hpp>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <utility>

namespace grove::dist {

namespace {

using steady = std::chrono::steady_clock;

int millis_left(steady::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// A connected TCP socket to host:port, or -1 with `error` set.
int connect_to(const std::string& host, int port, steady::time_point deadline, std::string& error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res); rc != 0) {
    error = "epmd on " + host + ": " + gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = res; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    if (errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int err = 0;
      socklen_t len = sizeof err;
      if (poll(&p, 1, millis_left(deadline)) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
          err == 0) {
        break;
      }
      errno = err ? err : ETIMEDOUT;
    }
    error = "cannot reach epmd on " + host + ":" + std::to_string(port) + ": " + std::strerror(errno) +
            " (is epmd running? `epmd -daemon` starts it)";
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  return fd;
}

bool send_all(int fd, const std::string& data, steady::time_point deadline) {
  std::size_t at = 0;
  while (at < data.size()) {
    const ssize_t n = send(fd, data.data() + at, data.size() - at, MSG_NOSIGNAL);
    if (n > 0) {
      at += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, millis_left(deadline)) != 1) return false;
  }
  return true;
}

// Reads exactly n bytes; false on EOF, error or the deadline.
bool recv_exact(int fd, std::string& out, std::size_t n, steady::time_point deadline) {
  out.resize(n);
  std::size_t at = 0;
  while (at < n) {
    const ssize_t r = recv(fd, out.data() + at, n - at, 0);
    if (r > 0) {
      at += static_cast<std::size_t>(r);
      continue;
    }
    if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) return false;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, millis_left(deadline)) != 1) return false;
  }
  return true;
}

void put16(std::string& s, std::size_t v) {
  s += static_cast<char>((v >> 8) & 0xff);
  s += static_cast<char>(v & 0xff);
}

std::size_t get16(const std::string& s, std::size_t at) {
  return (std::size_t{static_cast<unsigned char>(s[at])} << 8) | static_cast<unsigned char>(s[at + 1]);
}

std::uint32_t get32(const std::string& s, std::size_t at) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

// A request: 2-byte length, then the body.
std::string framed(const std::string& body) {
  std::string s;
  put16(s, body.size());
  return s + body;
}

}  // namespace

epmd_registration::epmd_registration(epmd_registration&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), creation_(o.creation_) {}

epmd_registration& epmd_registration::operator=(epmd_registration&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    creation_ = o.creation_;
  }
  return *this;
}

epmd_registration::~epmd_registration() {
  if (fd_ >= 0) close(fd_);
}

std::optional<epmd_registration> epmd_register(const std::string& name, int port, bool hidden, std::string& error,
                                               int epmd_port, std::chrono::milliseconds timeout) {
  if (name.empty() || name.size() > 255 || name.find('@') != std::string::npos) {
    error = "node name '" + name + "' must be 1 to 255 bytes, without @";
    return std::nullopt;
  }
  const auto deadline = steady::now() + timeout;
  const int fd = connect_to("localhost", epmd_port, deadline, error);
  if (fd < 0) return std::nullopt;
  // ALIVE2_REQ: 'x', port, node type (77 normal, 72 hidden), protocol 0 (TCP/IPv4), highest and
  // lowest version 6, name, no extra.
  std::string body(1, 'x');
  put16(body, static_cast<std::size_t>(port));
  body += static_cast<char>(hidden ? 72 : 77);
  body += '\0';
  put16(body, 6);
  put16(body, 6);
  put16(body, name.size());
  body += name;
  put16(body, 0);
  std::string reply;
  if (!send_all(fd, framed(body), deadline) || !recv_exact(fd, reply, 2, deadline)) {
    error = "epmd did not answer the registration of " + name;
    close(fd);
    return std::nullopt;
  }
  // ALIVE2_X_RESP 'v' result creation(4), or the older ALIVE2_RESP 'y' result creation(2).
  std::string rest;
  const char tag = reply[0];
  const bool ok_tag = tag == 'v' || tag == 'y';
  if (!ok_tag || reply[1] != 0 || !recv_exact(fd, rest, tag == 'v' ? 4 : 2, deadline)) {
    error = ok_tag ? "epmd refused the name " + name + " (is a node of that name already running?)"
                   : "epmd answered the registration with an unknown reply";
    close(fd);
    return std::nullopt;
  }
  epmd_registration r;
  r.fd_ = fd;
  r.creation_ = tag == 'v' ? get32(rest, 0) : static_cast<std::uint32_t>(get16(rest, 0));
  return r;
}

std::optional<epmd_entry> epmd_lookup(const std::string& host, const std::string& name, std::string& error,
                                      int epmd_port, std::chrono::milliseconds timeout) {
  const auto deadline = steady::now() + timeout;
  const int fd = connect_to(host, epmd_port, deadline, error);
  if (fd < 0) return std::nullopt;
  struct closer {
    int fd;
    ~closer() { close(fd); }
  } guard{fd};
  std::string head;
  if (!send_all(fd, framed("z" + name), deadline) || !recv_exact(fd, head, 2, deadline) || head[0] != 'w') {
    error = "epmd on " + host + " did not answer the lookup of " + name;
    return std::nullopt;
  }
  if (head[1] != 0) {
    error = "no node " + name + " on " + host;
    return std::nullopt;
  }
  // PORT2_RESP: port(2) type(1) protocol(1) highest(2) lowest(2) nlen(2) name elen(2) extra
  std::string fixed, rest;
  if (!recv_exact(fd, fixed, 10, deadline)) {
    error = "epmd on " + host + ": truncated answer";
    return std::nullopt;
  }
  epmd_entry e;
  e.port = static_cast<int>(get16(fixed, 0));
  e.hidden = static_cast<unsigned char>(fixed[2]) == 72;
  e.highest_version = static_cast<int>(get16(fixed, 4));
  e.lowest_version = static_cast<int>(get16(fixed, 6));
  if (!recv_exact(fd, e.name, get16(fixed, 8), deadline)) {
    error = "epmd on " + host + ": truncated answer";
    return std::nullopt;
  }
  return e;
}

// ---- MD5 (RFC 1321), for the handshake's digest -----------------------------------------------

std::string md5(const std::string& data) {
  static constexpr std::array<std::uint32_t, 64> k = [] {
    std::array<std::uint32_t, 64> t{};
    // floor(abs(sin(i + 1)) * 2^32), as the RFC tabulates.
    constexpr std::uint32_t table[64] = {
        0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
        0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
        0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
        0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
        0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
        0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
        0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
        0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};
    for (int i = 0; i < 64; ++i) t[static_cast<std::size_t>(i)] = table[i];
    return t;
  }();
  static constexpr int shift[64] = {7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
                                    5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
                                    4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
                                    6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};
  std::string msg = data;
  const std::uint64_t bits = static_cast<std::uint64_t>(data.size()) * 8;
  msg += static_cast<char>(0x80);
  while (msg.size() % 64 != 56) msg += '\0';
  for (int i = 0; i < 8; ++i) msg += static_cast<char>((bits >> (8 * i)) & 0xff);
  std::uint32_t a0 = 0x67452301, b0 = 0xefcdab89, c0 = 0x98badcfe, d0 = 0x10325476;
  auto rotl = [](std::uint32_t x, int c) { return (x << c) | (x >> (32 - c)); };
  for (std::size_t chunk = 0; chunk < msg.size(); chunk += 64) {
    std::uint32_t m[16];
    for (int i = 0; i < 16; ++i) {
      const auto* p = reinterpret_cast<const unsigned char*>(msg.data() + chunk + 4 * static_cast<std::size_t>(i));
      m[i] = p[0] | (std::uint32_t{p[1]} << 8) | (std::uint32_t{p[2]} << 16) | (std::uint32_t{p[3]} << 24);
    }
    std::uint32_t a = a0, b = b0, c = c0, d = d0;
    for (int i = 0; i < 64; ++i) {
      std::uint32_t f;
      int g;
      if (i < 16) {
        f = (b & c) | (~b & d);
        g = i;
      } else if (i < 32) {
        f = (d & b) | (~d & c);
        g = (5 * i + 1) % 16;
      } else if (i < 48) {
        f = b ^ c ^ d;
        g = (3 * i + 5) % 16;
      } else {
        f = c ^ (b | ~d);
        g = (7 * i) % 16;
      }
      f = f + a + k[static_cast<std::size_t>(i)] + m[g];
      a = d;
      d = c;
      c = b;
      b = b + rotl(f, shift[i]);
    }
    a0 += a;
    b0 += b;
    c0 += c;
    d0 += d;
  }
  std::string out;
  for (std::uint32_t v : {a0, b0, c0, d0}) {
    for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  }
  return out;
}

std::string handshake_digest(std::uint32_t challenge, const std::string& cookie) {
  return md5(cookie + std::to_string(challenge));
}

}  // namespace grove::dist
