#include <grove/dist/term.hpp>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <mutex>
#include <sstream>

#include <ei.h>

namespace grove::dist {

// ---- equality ---------------------------------------------------------------------------------

bool tuple::operator==(const tuple& o) const { return elements == o.elements; }

bool list::operator==(const list& o) const {
  if (elements != o.elements) return false;
  if (!tail || !o.tail) return !tail == !o.tail || (tail ? tail->is_nil() : o.tail->is_nil());
  return *tail == *o.tail;
}

bool map::operator==(const map& o) const {
  if (entries.size() != o.entries.size()) return false;
  return std::all_of(entries.begin(), entries.end(), [&](const auto& e) {
    return std::find(o.entries.begin(), o.entries.end(), e) != o.entries.end();
  });
}

term term::make_list(std::vector<term> elements) { return term(list{std::move(elements), nullptr}); }

term term::make_improper_list(std::vector<term> elements, term tail) {
  if (tail.is_nil()) return make_list(std::move(elements));
  return term(list{std::move(elements), std::make_shared<const term>(std::move(tail))});
}

namespace {

// ---- atoms: Erlang's rules, by hand (ei truncates at a NUL and does not check UTF-8) ----------

constexpr std::size_t max_atom_chars = 255;

// The number of characters of `s` if it is UTF-8 as Erlang accepts it in an atom (shortest
// forms, no surrogates, nothing past U+10FFFF), -1 if it is not.
long utf8_chars(std::string_view s) {
  long chars = 0;
  for (std::size_t i = 0; i < s.size(); ++chars) {
    const auto b = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (b < 0x80) {
      len = 1;
      cp = b;
    } else if ((b & 0xe0) == 0xc0) {
      len = 2;
      cp = b & 0x1f;
    } else if ((b & 0xf0) == 0xe0) {
      len = 3;
      cp = b & 0x0f;
    } else if ((b & 0xf8) == 0xf0) {
      len = 4;
      cp = b & 0x07;
    } else {
      return -1;
    }
    if (len > s.size() - i) return -1;
    for (std::size_t k = 1; k < len; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xc0) != 0x80) return -1;
      cp = (cp << 6) | (c & 0x3f);
    }
    static constexpr std::uint32_t shortest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < shortest[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return -1;
    i += len;
  }
  return chars;
}

std::string latin1_to_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x80) {
      out += ch;
    } else {
      out += static_cast<char>(0xc0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3f));
    }
  }
  return out;
}

// ---- ei: initialised once; its buffers freed on every path ------------------------------------

void ensure_ei() {
  static std::once_flag once;
  std::call_once(once, [] { ei_init(); });
}

struct xbuf {
  ei_x_buff x{};
  xbuf() { ei_x_new_with_version(&x); }
  ~xbuf() { ei_x_free(&x); }
  xbuf(const xbuf&) = delete;
  xbuf& operator=(const xbuf&) = delete;
};

void check(int rc, const char* what) {
  if (rc < 0) throw std::runtime_error(std::string("term encoding failed: ") + what);
}

void copy_node(char (&dst)[MAXATOMLEN_UTF8], const std::string& node) {
  if (node.size() >= sizeof dst) throw std::runtime_error("term encoding failed: node name too long");
  std::memcpy(dst, node.data(), node.size());
  dst[node.size()] = '\0';
}

// ---- encoding ---------------------------------------------------------------------------------

void put_byte(ei_x_buff& x, unsigned char b) {
  check(ei_x_append_buf(&x, reinterpret_cast<const char*>(&b), 1), "append");
}

void encode_into(ei_x_buff& x, const term& t);

struct encoder {
  ei_x_buff& x;
  void operator()(std::int64_t i) const { check(ei_x_encode_longlong(&x, i), "integer"); }
  void operator()(const bignum& b) const {
    // SMALL_BIG_EXT / LARGE_BIG_EXT by hand: ei's bignum needs GMP's layout.
    const std::size_t n = b.digits.size();
    if (n < 256) {
      put_byte(x, ERL_SMALL_BIG_EXT);
      put_byte(x, static_cast<unsigned char>(n));
    } else {
      put_byte(x, ERL_LARGE_BIG_EXT);
      for (int shift : {24, 16, 8, 0}) put_byte(x, static_cast<unsigned char>((n >> shift) & 0xff));
    }
    put_byte(x, b.negative ? 1 : 0);
    check(ei_x_append_buf(&x, reinterpret_cast<const char*>(b.digits.data()), static_cast<int>(n)), "bignum");
  }
  void operator()(double d) const { check(ei_x_encode_double(&x, d), "float"); }
  void operator()(const atom& a) const {
    const long chars = utf8_chars(a.name);
    if (chars < 0) throw std::runtime_error("term encoding failed: an atom that is not UTF-8");
    if (static_cast<std::size_t>(chars) > max_atom_chars)
      throw std::runtime_error("term encoding failed: an atom longer than 255 characters");
    const std::size_t n = a.name.size();  // at most 4 * 255 bytes
    if (n < 256) {
      put_byte(x, ERL_SMALL_ATOM_UTF8_EXT);
    } else {
      put_byte(x, ERL_ATOM_UTF8_EXT);
      put_byte(x, static_cast<unsigned char>(n >> 8));
    }
    put_byte(x, static_cast<unsigned char>(n & 0xff));
    check(ei_x_append_buf(&x, a.name.data(), static_cast<int>(n)), "atom");
  }
  void operator()(const binary& b) const {
    check(ei_x_encode_binary(&x, b.bytes.data(), static_cast<int>(b.bytes.size())), "binary");
  }
  void operator()(const bitstring& b) const {
    const std::size_t bits = b.bytes.empty() ? 0 : (b.bytes.size() - 1) * 8 + b.last_bits;
    check(ei_x_encode_bitstring(&x, b.bytes.data(), 0, bits), "bitstring");
  }
  void operator()(const erl_pid& p) const {
    erlang_pid e{};
    copy_node(e.node, p.node);
    e.num = p.id;
    e.serial = p.serial;
    e.creation = p.creation;
    check(ei_x_encode_pid(&x, &e), "pid");
  }
  void operator()(const erl_port& p) const {
    erlang_port e{};
    copy_node(e.node, p.node);
    e.id = p.id;
    e.creation = p.creation;
    check(ei_x_encode_port(&x, &e), "port");
  }
  void operator()(const erl_ref& r) const {
    erlang_ref e{};
    copy_node(e.node, r.node);
    if (r.ids.empty() || r.ids.size() > sizeof e.n / sizeof e.n[0])
      throw std::runtime_error("term encoding failed: ref");
    e.len = static_cast<int>(r.ids.size());
    std::copy(r.ids.begin(), r.ids.end(), e.n);
    e.creation = r.creation;
    check(ei_x_encode_ref(&x, &e), "ref");
  }
  void operator()(const tuple& t) const {
    check(ei_x_encode_tuple_header(&x, static_cast<long>(t.elements.size())), "tuple");
    for (const term& e : t.elements) encode_into(x, e);
  }
  void operator()(const list& l) const {
    if (!l.elements.empty()) {
      check(ei_x_encode_list_header(&x, static_cast<long>(l.elements.size())), "list");
      for (const term& e : l.elements) encode_into(x, e);
    }
    if (l.tail && !l.tail->is_nil()) {
      if (l.elements.empty()) throw std::runtime_error("term encoding failed: an improper list needs an element");
      encode_into(x, *l.tail);
    } else {
      check(ei_x_encode_empty_list(&x), "list");
    }
  }
  void operator()(const map& m) const {
    check(ei_x_encode_map_header(&x, static_cast<long>(m.entries.size())), "map");
    for (const auto& [k, v] : m.entries) {
      encode_into(x, k);
      encode_into(x, v);
    }
  }
  void operator()(const opaque& o) const {
    check(ei_x_append_buf(&x, o.encoded.data(), static_cast<int>(o.encoded.size())), "opaque");
  }
};

void encode_into(ei_x_buff& x, const term& t) { std::visit(encoder{x}, t.value()); }

// ---- decoding ---------------------------------------------------------------------------------

// ei reads what a term's tags say without knowing where the buffer ends: every term is walked
// first, bounds and depth checked, and only a term that lies wholly inside is handed to ei.
struct validator {
  const unsigned char* buf;
  std::size_t size;
  unsigned max_depth;
  std::size_t at = 0;

  [[noreturn]] void fail(const std::string& why) const {
    throw decode_error("malformed term at byte " + std::to_string(at) + ": " + why);
  }
  void need(std::size_t n) const {
    if (n > size - at) fail("truncated");
  }
  std::size_t u8() {
    need(1);
    return buf[at++];
  }
  std::size_t u16() {
    need(2);
    const std::size_t v = (std::size_t{buf[at]} << 8) | buf[at + 1];
    at += 2;
    return v;
  }
  std::size_t u32() {
    need(4);
    const std::size_t v =
        (std::size_t{buf[at]} << 24) | (std::size_t{buf[at + 1]} << 16) | (std::size_t{buf[at + 2]} << 8) | buf[at + 3];
    at += 4;
    return v;
  }
  void skip(std::size_t n) {
    need(n);
    at += n;
  }
  // An atom as Erlang's binary_to_term accepts it: Latin-1 or UTF-8, at most 255 characters. A
  // node's name (in a pid, port or ref) must also hold no NUL byte: ei keeps it as a C string.
  void atom_only(bool node = false) {
    const std::size_t tag = u8();
    std::size_t n = 0;
    if (tag == ERL_ATOM_EXT || tag == ERL_ATOM_UTF8_EXT) {
      n = u16();
    } else if (tag == ERL_SMALL_ATOM_EXT || tag == ERL_SMALL_ATOM_UTF8_EXT) {
      n = u8();
    } else {
      fail("an atom was expected");
    }
    need(n);
    const std::string_view text(reinterpret_cast<const char*>(buf) + at, n);
    const bool utf8 = tag == ERL_ATOM_UTF8_EXT || tag == ERL_SMALL_ATOM_UTF8_EXT;
    const long chars = utf8 ? utf8_chars(text) : static_cast<long>(n);
    if (chars < 0) fail("an atom that is not UTF-8");
    if (static_cast<std::size_t>(chars) > max_atom_chars) fail("an atom longer than 255 characters");
    if (node && text.find('\0') != std::string_view::npos) fail("a node name with a NUL byte");
    skip(n);
  }
  void small_or_integer() {
    const std::size_t tag = u8();
    if (tag == ERL_SMALL_INTEGER_EXT) {
      skip(1);
    } else if (tag == ERL_INTEGER_EXT) {
      skip(4);
    } else {
      fail("an integer was expected");
    }
  }
  // NEW_FUN_EXT after its size: arity, uniq, index, the number of free variables, module, old
  // index, old uniq, pid; returns the number of free variables, which follow.
  std::size_t fun_head() {
    skip(1 + 16 + 4);
    const std::size_t free = u32();
    atom_only();
    small_or_integer();
    small_or_integer();
    const std::size_t pid_tag = u8();
    if (pid_tag != ERL_PID_EXT && pid_tag != ERL_NEW_PID_EXT) fail("fun: a pid was expected");
    atom_only(true);
    skip(pid_tag == ERL_PID_EXT ? 9 : 12);
    return free;
  }
  // Where the fun being walked ends (its free variables are its items), 0 for anything else.
  std::size_t fun_end = 0;
  // One item's tag and fixed-size payload; returns how many items a container holds (list: its
  // elements and the tail; fun: its free variables), 0 for everything else.
  std::size_t item() {
    fun_end = 0;
    const std::size_t tag = u8();
    switch (tag) {
      case ERL_SMALL_INTEGER_EXT:
        skip(1);
        return 0;
      case ERL_INTEGER_EXT:
        skip(4);
        return 0;
      case NEW_FLOAT_EXT:
        skip(8);
        return 0;
      case ERL_FLOAT_EXT:
        skip(31);
        return 0;
      case ERL_ATOM_EXT:
      case ERL_SMALL_ATOM_EXT:
      case ERL_ATOM_UTF8_EXT:
      case ERL_SMALL_ATOM_UTF8_EXT:
        --at;
        atom_only();
        return 0;
      case ERL_BINARY_EXT:
        skip(u32());
        return 0;
      case ERL_BIT_BINARY_EXT: {
        const std::size_t n = u32();
        const std::size_t bits = u8();
        if (bits < 1 || bits > 8 || n == 0) fail("bit string");
        skip(n);
        return 0;
      }
      case ERL_SMALL_BIG_EXT: {
        const std::size_t n = u8();
        skip(1 + n);
        return 0;
      }
      case ERL_LARGE_BIG_EXT: {
        const std::size_t n = u32();
        skip(1 + n);
        return 0;
      }
      case ERL_PID_EXT:
        atom_only(true);
        skip(9);
        return 0;
      case ERL_NEW_PID_EXT:
        atom_only(true);
        skip(12);
        return 0;
      case ERL_PORT_EXT:
        atom_only(true);
        skip(5);
        return 0;
      case ERL_NEW_PORT_EXT:
        atom_only(true);
        skip(8);
        return 0;
      case ERL_V4_PORT_EXT:
        atom_only(true);
        skip(12);
        return 0;
      case ERL_REFERENCE_EXT:
        atom_only(true);
        skip(5);
        return 0;
      case ERL_NEW_REFERENCE_EXT:
      case ERL_NEWER_REFERENCE_EXT: {
        const std::size_t n = u16();
        if (n < 1 || n > 5) fail("ref");
        atom_only(true);
        skip((tag == ERL_NEW_REFERENCE_EXT ? 1 : 4) + 4 * n);
        return 0;
      }
      case ERL_SMALL_TUPLE_EXT:
        return u8();
      case ERL_LARGE_TUPLE_EXT:
        return u32();
      case ERL_NIL_EXT:
        return 0;
      case ERL_STRING_EXT:
        skip(u16());
        return 0;
      case ERL_LIST_EXT:
        return u32() + 1;  // the tail
      case ERL_MAP_EXT: {
        const std::size_t n = u32();
        return 2 * n;
      }
      case ERL_NEW_FUN_EXT: {
        const std::size_t start = at;
        const std::size_t n = u32();  // counts itself
        if (n < 4) fail("fun");
        at = start;
        need(n);
        // Its insides are walked too: a fun is re-sent as it came, and a peer drops a connection
        // that carries a malformed one.
        at = start + 4;
        fun_end = start + n;
        return fun_head();
      }
      case ERL_EXPORT_EXT:
        atom_only();
        atom_only();
        if (u8() != ERL_SMALL_INTEGER_EXT) fail("export arity");
        skip(1);
        return 0;
      default:
        --at;
        fail("unsupported tag " + std::to_string(tag));
    }
  }
  // The whole term, without recursion: `open` holds how many items each enclosing container still
  // expects. Every item takes at least one byte, so a count beyond the input fails as truncated.
  // A fun's entry also keeps where the fun ends, to check its size against its contents.
  void whole() {
    struct container {
      std::size_t remaining;
      std::size_t fun_end;
    };
    std::vector<container> open;
    const auto fun_done = [this](std::size_t end) {
      if (end != 0 && at != end) fail("a fun whose size disagrees with its contents");
    };
    do {
      if (open.size() > max_depth) fail("nested deeper than " + std::to_string(max_depth) + " levels");
      const std::size_t items = item();
      if (items > size - at) fail("truncated");
      if (items > 0) {
        open.push_back({items, fun_end});
        continue;
      }
      fun_done(fun_end);
      while (!open.empty() && --open.back().remaining == 0) {
        fun_done(open.back().fun_end);
        open.pop_back();
      }
    } while (!open.empty());
  }
};

struct decoder {
  const char* buf;
  std::size_t size;
  int at = 0;
  unsigned max_depth;

  [[noreturn]] void fail(const std::string& why) const {
    throw decode_error("malformed term at byte " + std::to_string(at) + ": " + why);
  }
  void need(std::size_t n) const {
    if (static_cast<std::size_t>(at) + n > size) fail("truncated");
  }
  unsigned char byte_at(std::size_t i) const { return static_cast<unsigned char>(buf[i]); }

  // A container being filled: its kind, how many items it still expects, the items so far
  // (a list's last item is its tail; a map's alternate key, value).
  struct open_container {
    int kind;
    std::size_t remaining;
    std::vector<term> items;
  };

  static term close(open_container& c) {
    switch (c.kind) {
      case ERL_LIST_EXT: {
        term tail = std::move(c.items.back());
        c.items.pop_back();
        if (c.items.empty()) return tail;  // a list header of no elements: just its tail, as Erlang reads it
        list l{std::move(c.items), nullptr};
        if (!tail.is_nil()) l.tail = std::make_shared<const term>(std::move(tail));
        return term(std::move(l));
      }
      case ERL_MAP_EXT: {
        map m;
        m.entries.reserve(c.items.size() / 2);
        for (std::size_t i = 0; i + 1 < c.items.size(); i += 2)
          m.entries.emplace_back(std::move(c.items[i]), std::move(c.items[i + 1]));
        return term(std::move(m));
      }
      default:
        return term(tuple{std::move(c.items)});
    }
  }

  // The whole term, without recursion (the validator has checked the counts and the depth).
  term whole() {
    std::vector<open_container> open;
    for (;;) {
      if (open.size() > max_depth) fail("nested deeper than " + std::to_string(max_depth) + " levels");
      int type = 0, arity = 0;
      if (ei_get_type(buf, &at, &type, &arity) < 0) fail("unknown tag");
      term value;
      int n = 0;
      switch (type) {
        case ERL_SMALL_TUPLE_EXT:
        case ERL_LARGE_TUPLE_EXT:
          if (ei_decode_tuple_header(buf, &at, &n) < 0) fail("tuple");
          break;
        case ERL_LIST_EXT:
          if (ei_decode_list_header(buf, &at, &n) < 0) fail("list");
          type = ERL_LIST_EXT;
          break;
        case ERL_MAP_EXT:
          if (ei_decode_map_header(buf, &at, &n) < 0) fail("map");
          break;
        default:
          value = leaf(type, arity);
          type = 0;
      }
      if (type != 0) {
        const std::size_t items = type == ERL_LIST_EXT  ? static_cast<std::size_t>(n) + 1
                                  : type == ERL_MAP_EXT ? 2 * static_cast<std::size_t>(n)
                                                        : static_cast<std::size_t>(n);
        open_container c{type == ERL_LARGE_TUPLE_EXT ? ERL_SMALL_TUPLE_EXT : type, items, {}};
        if (items > 0) {
          c.items.reserve(items);
          open.push_back(std::move(c));
          continue;
        }
        value = close(c);
      }
      // Hand the value to its container; a container that is full is itself a value.
      for (;;) {
        if (open.empty()) return value;
        open_container& top = open.back();
        top.items.push_back(std::move(value));
        if (--top.remaining > 0) break;
        value = close(top);
        open.pop_back();
      }
    }
  }

  // Everything but tuples, lists and maps: apart, so that whole()'s frame stays small (these
  // hold ei's fixed buffers, a kilobyte or more each).
  [[gnu::noinline]] term leaf(int type, int arity) {
    switch (type) {
      case ERL_SMALL_INTEGER_EXT:
      case ERL_INTEGER_EXT: {
        long long v = 0;
        if (ei_decode_longlong(buf, &at, &v) < 0) fail("integer");
        return term(static_cast<std::int64_t>(v));
      }
      case ERL_SMALL_BIG_EXT:
      case ERL_LARGE_BIG_EXT: {
        long long v = 0;
        int probe = at;
        if (ei_decode_longlong(buf, &probe, &v) == 0) {  // fits 64 bits: an integer, as in Erlang
          at = probe;
          return term(static_cast<std::int64_t>(v));
        }
        const bool small = byte_at(at) == ERL_SMALL_BIG_EXT;
        std::size_t n = 0;
        std::size_t p = static_cast<std::size_t>(at) + 1;
        if (small) {
          n = byte_at(p);
          p += 1;
        } else {
          n = (std::size_t{byte_at(p)} << 24) | (std::size_t{byte_at(p + 1)} << 16) |
              (std::size_t{byte_at(p + 2)} << 8) | byte_at(p + 3);
          p += 4;
        }
        bignum b;
        b.negative = byte_at(p) != 0;
        p += 1;
        b.digits.assign(reinterpret_cast<const std::uint8_t*>(buf) + p,
                        reinterpret_cast<const std::uint8_t*>(buf) + p + n);
        while (!b.digits.empty() && b.digits.back() == 0) b.digits.pop_back();
        at = static_cast<int>(p + n);
        return term(std::move(b));
      }
      case ERL_FLOAT_EXT:
      case NEW_FLOAT_EXT: {
        double d = 0;
        if (ei_decode_double(buf, &at, &d) < 0) fail("float");
        return term(d);
      }
      case ERL_ATOM_EXT:
      case ERL_SMALL_ATOM_EXT:
      case ERL_ATOM_UTF8_EXT:
      case ERL_SMALL_ATOM_UTF8_EXT: {  // checked by the validator; read here to keep NUL bytes
        const auto p = static_cast<std::size_t>(at);
        const unsigned char tag = byte_at(p);
        const bool wide = tag == ERL_ATOM_EXT || tag == ERL_ATOM_UTF8_EXT;
        const std::size_t n = wide ? (std::size_t{byte_at(p + 1)} << 8) | byte_at(p + 2) : byte_at(p + 1);
        const std::size_t from = p + (wide ? 3 : 2);
        const std::string_view text(buf + from, n);
        at = static_cast<int>(from + n);
        const bool utf8 = tag == ERL_ATOM_UTF8_EXT || tag == ERL_SMALL_ATOM_UTF8_EXT;
        return term(atom{utf8 ? std::string(text) : latin1_to_utf8(text)});
      }
      case ERL_BINARY_EXT: {
        binary b;
        b.bytes.resize(static_cast<std::size_t>(arity));
        long len = 0;
        if (ei_decode_binary(buf, &at, b.bytes.data(), &len) < 0) fail("binary");
        return term(std::move(b));
      }
      case ERL_BIT_BINARY_EXT: {
        const char* p = nullptr;
        unsigned int offset = 0;
        std::size_t bits = 0;
        if (ei_decode_bitstring(buf, &at, &p, &offset, &bits) < 0) fail("bit string");
        bitstring b;
        b.bytes.assign(p, (bits + 7) / 8);
        b.last_bits = bits % 8 == 0 ? 8 : static_cast<unsigned>(bits % 8);
        if (b.last_bits == 8) return term(binary{std::move(b.bytes)});
        return term(std::move(b));
      }
      case ERL_PID_EXT:
      case ERL_NEW_PID_EXT: {
        erlang_pid e{};
        if (ei_decode_pid(buf, &at, &e) < 0) fail("pid");
        return term(erl_pid{e.node, e.num, e.serial, e.creation});
      }
      case ERL_PORT_EXT:
      case ERL_NEW_PORT_EXT:
      case ERL_V4_PORT_EXT: {
        erlang_port e{};
        if (ei_decode_port(buf, &at, &e) < 0) fail("port");
        return term(erl_port{e.node, e.id, e.creation});
      }
      case ERL_REFERENCE_EXT:
      case ERL_NEW_REFERENCE_EXT:
      case ERL_NEWER_REFERENCE_EXT: {
        erlang_ref e{};
        if (ei_decode_ref(buf, &at, &e) < 0) fail("ref");
        return term(erl_ref{e.node, e.creation, std::vector<std::uint32_t>(e.n, e.n + e.len)});
      }
      case ERL_NIL_EXT: {
        int n = 0;
        if (ei_decode_list_header(buf, &at, &n) < 0) fail("list");
        return term();
      }
      case ERL_STRING_EXT: {  // a list of bytes, written compactly
        std::string s(static_cast<std::size_t>(arity) + 1, '\0');
        if (ei_decode_string(buf, &at, s.data()) < 0) fail("string");
        s.resize(static_cast<std::size_t>(arity));
        list l;
        for (unsigned char c : s) l.elements.emplace_back(static_cast<std::int64_t>(c));
        return term(std::move(l));
      }
      case ERL_NEW_FUN_EXT: {  // walked whole by the validator; its size counts itself
        const auto start = static_cast<std::size_t>(at);
        need(5);
        const std::size_t n = (std::size_t{byte_at(start + 1)} << 24) | (std::size_t{byte_at(start + 2)} << 16) |
                              (std::size_t{byte_at(start + 3)} << 8) | byte_at(start + 4);
        need(1 + n);
        at += static_cast<int>(1 + n);
        return term(opaque{std::string(buf + start, 1 + n)});
      }
      case ERL_EXPORT_EXT: {
        const int start = at;
        if (ei_skip_term(buf, &at) < 0) fail("fun");
        return term(opaque{std::string(buf + start, static_cast<std::size_t>(at - start))});
      }
      default:
        fail("unsupported tag " + std::to_string(type));
    }
  }
};

// ---- printing ---------------------------------------------------------------------------------

bool printable(const list& l) {
  if (l.elements.empty() || l.tail) return false;
  return std::all_of(l.elements.begin(), l.elements.end(), [](const term& e) {
    auto* i = e.get_if<std::int64_t>();
    return i && *i >= 32 && *i < 127;
  });
}

void print(std::ostream& os, const term& t);

struct printer {
  std::ostream& os;
  void operator()(std::int64_t i) const { os << i; }
  void operator()(const bignum& b) const {
    // Decimal from base-256 digits, by repeated division.
    std::vector<std::uint8_t> d(b.digits.rbegin(), b.digits.rend());
    std::string out;
    while (!d.empty()) {
      unsigned rem = 0;
      std::vector<std::uint8_t> q;
      for (std::uint8_t digit : d) {
        const unsigned cur = rem * 256 + digit;
        if (!q.empty() || cur / 10) q.push_back(static_cast<std::uint8_t>(cur / 10));
        rem = cur % 10;
      }
      out.push_back(static_cast<char>('0' + rem));
      d = std::move(q);
    }
    if (out.empty()) out = "0";
    if (b.negative) out.push_back('-');
    os << std::string(out.rbegin(), out.rend());
  }
  void operator()(double d) const {
    std::ostringstream s;
    s.precision(17);
    s << d;
    std::string text = s.str();
    if (text.find_first_of(".eni") == std::string::npos) text += ".0";
    os << text;
  }
  void operator()(const atom& a) const {
    const bool plain = !a.name.empty() && a.name[0] >= 'a' && a.name[0] <= 'z' &&
                       std::all_of(a.name.begin(), a.name.end(), [](char c) {
                         return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '@';
                       });
    if (plain) {
      os << a.name;
      return;
    }
    os << '\'';
    for (char c : a.name) {
      if (c == '\'' || c == '\\') {
        os << '\\' << c;
      } else if (c == '\n') {
        os << "\\n";
      } else if (c == '\t') {
        os << "\\t";
      } else if (c == 0x7f) {
        os << "\\d";
      } else if (static_cast<unsigned char>(c) < 0x20) {  // as ~p: three octal digits
        const auto v = static_cast<unsigned>(c);
        os << '\\' << char('0' + (v >> 6)) << char('0' + ((v >> 3) & 7)) << char('0' + (v & 7));
      } else {
        os << c;
      }
    }
    os << '\'';
  }
  void operator()(const binary& b) const {
    // As ~p: printable ASCII text between quotes, any other bytes as numbers.
    const bool text = !b.bytes.empty() && std::all_of(b.bytes.begin(), b.bytes.end(), [](char c) {
      return (c >= 0x20 && c < 0x7f) || c == '\n' || c == '\t';
    });
    if (text) {
      os << "<<\"";
      for (char c : b.bytes) {
        if (c == '"' || c == '\\')
          os << '\\' << c;
        else if (c == '\n')
          os << "\\n";
        else if (c == '\t')
          os << "\\t";
        else
          os << c;
      }
      os << "\">>";
      return;
    }
    os << "<<";
    for (std::size_t i = 0; i < b.bytes.size(); ++i)
      os << (i ? "," : "") << int(static_cast<unsigned char>(b.bytes[i]));
    os << ">>";
  }
  void operator()(const bitstring& b) const {
    os << "<<";
    for (std::size_t i = 0; i < b.bytes.size(); ++i) {
      const unsigned v = static_cast<unsigned char>(b.bytes[i]);
      if (i + 1 == b.bytes.size()) {
        os << (i ? "," : "") << (v >> (8 - b.last_bits)) << ':' << b.last_bits;
      } else {
        os << (i ? "," : "") << v;
      }
    }
    os << ">>";
  }
  void operator()(const erl_pid& p) const { os << "<" << p.node << "." << p.id << "." << p.serial << ">"; }
  void operator()(const erl_port& p) const { os << "#Port<" << p.node << "." << p.id << ">"; }
  void operator()(const erl_ref& r) const {
    os << "#Ref<" << r.node;
    for (auto i = r.ids.rbegin(); i != r.ids.rend(); ++i) os << "." << *i;
    os << ">";
  }
  void operator()(const tuple& t) const {
    os << '{';
    for (std::size_t i = 0; i < t.elements.size(); ++i) {
      if (i) os << ',';
      print(os, t.elements[i]);
    }
    os << '}';
  }
  void operator()(const list& l) const {
    if (printable(l)) {
      os << '"';
      for (const term& e : l.elements) {
        const char c = static_cast<char>(e.as<std::int64_t>());
        os << (c == '"' || c == '\\' ? "\\" : "") << c;
      }
      os << '"';
      return;
    }
    os << '[';
    for (std::size_t i = 0; i < l.elements.size(); ++i) {
      if (i) os << ',';
      print(os, l.elements[i]);
    }
    if (l.tail) {
      os << '|';
      print(os, *l.tail);
    }
    os << ']';
  }
  void operator()(const map& m) const {
    os << "#{";
    for (std::size_t i = 0; i < m.entries.size(); ++i) {
      if (i) os << ',';
      print(os, m.entries[i].first);
      os << " => ";
      print(os, m.entries[i].second);
    }
    os << '}';
  }
  void operator()(const opaque&) const { os << "#Fun<>"; }
};

void print(std::ostream& os, const term& t) { std::visit(printer{os}, t.value()); }

}  // namespace

std::string term::str() const {
  std::ostringstream os;
  print(os, *this);
  return os.str();
}

std::string encode(const term& t) {
  ensure_ei();
  xbuf x;
  encode_into(x.x, t);
  return std::string(x.x.buff, static_cast<std::size_t>(x.x.index));
}

term decode_prefix(std::string_view bytes, std::size_t& used, unsigned max_depth) {
  ensure_ei();
  if (bytes.size() > static_cast<std::size_t>(INT_MAX)) throw decode_error("term too large");
  if (bytes.empty() || static_cast<unsigned char>(bytes[0]) != 131) {
    throw decode_error("not a term: no version byte 131");
  }
  validator v{reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), max_depth, 1};
  v.whole();
  decoder d{bytes.data(), v.at, 1, max_depth};
  term t = d.whole();
  if (static_cast<std::size_t>(d.at) != v.at) throw decode_error("malformed term (its parts disagree on its length)");
  used = v.at;
  return t;
}

term decode(std::string_view bytes, unsigned max_depth) {
  std::size_t used = 0;
  term t = decode_prefix(bytes, used, max_depth);
  if (used != bytes.size()) {
    throw decode_error("trailing bytes after the term (" + std::to_string(bytes.size() - used) + ")");
  }
  return t;
}

}  // namespace grove::dist
