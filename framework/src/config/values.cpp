#include "values.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>

namespace grove::config::detail {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool all_of(std::string_view s, bool (*pred)(char)) { return !s.empty() && std::all_of(s.begin(), s.end(), pred); }

bool is_core_int(std::string_view s) {
  if (s.starts_with("0x")) return all_of(s.substr(2), is_hex);
  if (s.starts_with("0o")) return all_of(s.substr(2), [](char c) { return c >= '0' && c <= '7'; });
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  return all_of(s, is_digit);
}

// [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?  |  [-+]?\.inf  |  \.nan
bool is_core_float(std::string_view s) {
  std::string_view body = s;
  if (!body.empty() && (body[0] == '-' || body[0] == '+')) body.remove_prefix(1);
  if (body == ".inf" || body == ".Inf" || body == ".INF") return true;
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return true;
  std::size_t i = 0;
  std::size_t int_digits = 0, frac_digits = 0;
  while (i < body.size() && is_digit(body[i])) ++i, ++int_digits;
  if (i < body.size() && body[i] == '.') {
    ++i;
    while (i < body.size() && is_digit(body[i])) ++i, ++frac_digits;
  }
  if (int_digits == 0 && frac_digits == 0) return false;
  if (i < body.size() && (body[i] == 'e' || body[i] == 'E')) {
    ++i;
    if (i < body.size() && (body[i] == '-' || body[i] == '+')) ++i;
    std::size_t exp_digits = 0;
    while (i < body.size() && is_digit(body[i])) ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  return i == body.size();
}

std::optional<std::int64_t> parse_int(std::string_view s) {
  int base = 10;
  bool negative = false;
  if (s.starts_with("0x")) {
    base = 16;
    s.remove_prefix(2);
  } else if (s.starts_with("0o")) {
    base = 8;
    s.remove_prefix(2);
  } else if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  std::uint64_t magnitude = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), magnitude, base);
  if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (negative) {
    if (magnitude > max + 1) return std::nullopt;
    return magnitude == max + 1 ? std::numeric_limits<std::int64_t>::min() : -static_cast<std::int64_t>(magnitude);
  }
  if (magnitude > max) return std::nullopt;
  return static_cast<std::int64_t>(magnitude);
}

std::optional<double> parse_double(std::string_view s) {
  std::string_view body = s;
  bool negative = false;
  if (!body.empty() && (body[0] == '-' || body[0] == '+')) {
    negative = body[0] == '-';
    body.remove_prefix(1);
  }
  if (body == ".inf" || body == ".Inf" || body == ".INF")
    return negative ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return std::numeric_limits<double>::quiet_NaN();
  double v = 0;
  auto [end, ec] = std::from_chars(body.data(), body.data() + body.size(), v);
  if (ec != std::errc{} || end != body.data() + body.size()) return std::nullopt;
  return negative ? -v : v;
}

// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i)
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

}  // namespace

scalar_class classify(const tree_node& n) {
  if (n.is_null()) return scalar_class::null;
  if (!n.is_scalar() || (n.quoted && !n.expanded)) return scalar_class::string;
  const std::string& s = n.text;
  if (n.expanded) {
    // An expanded value is typed by its content alone: an empty one stays an (empty) string.
    if (s.empty()) return scalar_class::string;
  } else if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") {
    return scalar_class::null;
  }
  if (s == "true" || s == "True" || s == "TRUE" || s == "false" || s == "False" || s == "FALSE")
    return scalar_class::boolean;
  if (is_core_int(s)) return scalar_class::integer;
  if (is_core_float(s)) return scalar_class::floating;
  return scalar_class::string;
}

std::string describe(const tree_node& n) {
  switch (n.t) {
    case tree_node::type::map:
      return "a map";
    case tree_node::type::sequence:
      return "a list";
    case tree_node::type::null:
      return "null";
    case tree_node::type::scalar:
      break;
  }
  std::string text = n.text.size() > 60 ? n.text.substr(0, 57) + "..." : n.text;
  if (n.quoted && !n.expanded) return "the string \"" + text + "\"";
  if (classify(n) != scalar_class::string) return text;  // a number or a boolean, as written
  return "'" + text + "'";
}

void report_got(const tree_node& n, const std::string& path, diagnostics& errors, std::string expected,
                std::string hint) {
  errors.add(n.pos, path, "got " + describe(n), std::move(expected), std::move(hint));
}

std::string nearest(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = std::numeric_limits<std::size_t>::max();
  std::string w = lower(word);
  for (auto& c : candidates) {
    std::size_t d = edit_distance(w, lower(c));
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  if (best.empty() || best == word) return {};
  std::size_t shorter = std::min(word.size(), best.size());
  std::size_t allowed = std::max<std::size_t>(1, shorter / 3);
  return best_d <= allowed ? best : std::string{};
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
  std::string n = nearest(word, candidates);
  return n.empty() ? std::string{} : "did you mean '" + n + "'?";
}

std::string one_of(const std::vector<std::string>& candidates, std::size_t limit) {
  std::string out = "one of: ";
  for (std::size_t i = 0; i < candidates.size(); ++i) {
    if (i == limit) {
      out += ", ...";
      break;
    }
    if (i) out += ", ";
    out += candidates[i];
  }
  return out;
}

bool read_bool(const tree_node& n, const std::string& path, diagnostics& errors, bool& out) {
  if (n.is_scalar() && classify(n) == scalar_class::boolean) {
    out = n.text[0] == 't' || n.text[0] == 'T';
    return true;
  }
  std::string hint;
  if (n.is_scalar() && n.quoted && (n.text == "true" || n.text == "false")) hint = "remove the quotes";
  report_got(n, path, errors, "true or false", std::move(hint));
  return false;
}

bool read_int(const tree_node& n, const std::string& path, diagnostics& errors, std::int64_t& out, std::int64_t min,
              std::int64_t max, const std::string& expected) {
  if (n.is_scalar() && classify(n) == scalar_class::integer) {
    if (auto v = parse_int(n.text); v && *v >= min && *v <= max) {
      out = *v;
      return true;
    }
  }
  std::string hint;
  if (n.is_scalar() && n.quoted && !n.expanded && is_core_int(n.text)) hint = "remove the quotes";
  report_got(n, path, errors, expected, std::move(hint));
  return false;
}

bool read_double(const tree_node& n, const std::string& path, diagnostics& errors, double& out, double min, double max,
                 const std::string& expected) {
  auto c = n.is_scalar() ? classify(n) : scalar_class::string;
  if (c == scalar_class::integer || c == scalar_class::floating) {
    std::optional<double> v = c == scalar_class::integer ? std::nullopt : parse_double(n.text);
    if (c == scalar_class::integer)
      if (auto i = parse_int(n.text)) v = static_cast<double>(*i);
    if (v && !std::isnan(*v) && *v >= min && *v <= max) {
      out = *v;
      return true;
    }
  }
  std::string hint;
  if (n.is_scalar() && n.quoted && !n.expanded && (is_core_int(n.text) || is_core_float(n.text)))
    hint = "remove the quotes";
  report_got(n, path, errors, expected, std::move(hint));
  return false;
}

bool read_string(const tree_node& n, const std::string& path, diagnostics& errors, std::string& out, bool strict) {
  if (n.is_scalar() && (!strict || classify(n) == scalar_class::string)) {
    out = n.text;
    return true;
  }
  std::string hint;
  if (n.is_scalar()) hint = "quote it: \"" + n.text + "\"";
  report_got(n, path, errors, "a string", std::move(hint));
  return false;
}

std::optional<duration> parse_duration(std::string_view s) {
  std::size_t digits = 0;
  while (digits < s.size() && is_digit(s[digits])) ++digits;
  if (digits == 0) return std::nullopt;
  std::string_view unit = s.substr(digits);
  std::int64_t scale = 0;
  if (unit == "us")
    scale = 1'000;
  else if (unit == "ms")
    scale = 1'000'000;
  else if (unit == "s")
    scale = 1'000'000'000;
  else if (unit == "m")
    scale = 60'000'000'000;
  else if (unit == "h")
    scale = 3'600'000'000'000;
  else
    return std::nullopt;
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + digits, value);
  if (ec != std::errc{} || end != s.data() + digits) return std::nullopt;
  if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max() / scale)) return std::nullopt;
  return duration(static_cast<std::int64_t>(value) * scale);
}

bool read_duration(const tree_node& n, const std::string& path, diagnostics& errors, duration& out, duration min,
                   const std::string& expected) {
  if (n.is_scalar() && classify(n) == scalar_class::string) {
    if (auto d = parse_duration(n.text); d && *d >= min) {
      out = *d;
      return true;
    }
  }
  std::string hint;
  if (n.is_scalar() && is_core_int(n.text)) hint = "add a unit: " + n.text + "s or " + n.text + "ms";
  report_got(n, path, errors, expected, std::move(hint));
  return false;
}

bool read_size(const tree_node& n, const std::string& path, diagnostics& errors, std::size_t& out, std::size_t min,
               const std::string& expected) {
  std::optional<std::uint64_t> bytes;
  auto c = n.is_scalar() ? classify(n) : scalar_class::null;
  if (c == scalar_class::integer && all_of(n.text, is_digit)) {
    if (auto v = parse_int(n.text)) bytes = static_cast<std::uint64_t>(*v);
  } else if (c == scalar_class::string) {
    std::string_view s = n.text;
    std::uint64_t scale = 0;
    if (s.ends_with("KiB"))
      scale = 1024;
    else if (s.ends_with("MiB"))
      scale = 1024 * 1024;
    if (scale) {
      s.remove_suffix(3);
      std::uint64_t v = 0;
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (!s.empty() && ec == std::errc{} && end == s.data() + s.size() && v <= (std::uint64_t{1} << 40))
        bytes = v * scale;
    }
  }
  if (bytes && *bytes >= min && *bytes <= (std::uint64_t{1} << 40)) {
    out = static_cast<std::size_t>(*bytes);
    return true;
  }
  report_got(n, path, errors, expected);
  return false;
}

}  // namespace grove::config::detail
