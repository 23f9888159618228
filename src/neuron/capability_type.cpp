#include "neuron/capability_type.h"

#include <string>

namespace neuron {

// ------------------------------------------------------- capability types --

namespace {

constexpr std::size_t kMaxCapabilityTypeLength = 200;
constexpr int kMaxSegmentsAfterOwner = 3;
constexpr std::string_view kExpectedForm =
    " (expected {owner}/{package}[/{name}][.{variant}], e.g. \"core/http\" or "
    "\"desktop/mcp/drive.read\")";

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_alnum(char c) { return is_lower_alnum(c) || (c >= 'A' && c <= 'Z'); }
bool is_owner_char(char c) { return is_lower_alnum(c) || c == '-'; }
bool is_segment_char(char c) { return is_alnum(c) || c == ':' || c == '_' || c == '-'; }
bool is_variant_char(char c) { return is_alnum(c) || c == '_' || c == '-'; }

// Quotes printable ASCII; anything else (control bytes, UTF-8) as hex so the
// message stays readable ASCII.
std::string describe_char(char c) {
  auto u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f) return std::string("'") + c + "'";
  static constexpr char kHex[] = "0123456789ABCDEF";
  return std::string("byte 0x") + kHex[u >> 4] + kHex[u & 15];
}

bool fail(std::string* why, std::string message) {
  if (why) *why = std::move(message) + std::string(kExpectedForm);
  return false;
}

std::string at(std::size_t i) { return " at index " + std::to_string(i); }

// `n` counts the owner as segment 1.
std::string segment_name(int n) {
  std::string numbered = "segment " + std::to_string(n);
  if (n == 2) return "package (" + numbered + ")";
  if (n == 3) return "name (" + numbered + ")";
  return numbered;
}

}  // namespace

bool is_valid_capability_type(std::string_view type, std::string* why) {
  if (type.empty()) return fail(why, "capability type is empty");
  if (type.size() > kMaxCapabilityTypeLength) {
    return fail(why, "capability type is " + std::to_string(type.size()) +
                         " characters long, at most " +
                         std::to_string(kMaxCapabilityTypeLength) + " are allowed");
  }

  const std::size_t n = type.size();
  std::size_t i = 0;

  // owner
  if (type[0] == '/') return fail(why, "owner (before the first '/') is empty");
  if (!is_lower_alnum(type[0])) {
    return fail(why, "owner must start with [a-z0-9], found " + describe_char(type[0]) + at(0));
  }
  for (i = 1; i < n && type[i] != '/'; ++i) {
    char c = type[i];
    if (is_owner_char(c)) continue;
    if (c >= 'A' && c <= 'Z') {
      return fail(why, "owner must be lower case ([a-z0-9-]), found " + describe_char(c) + at(i));
    }
    if (c == '.') {
      return fail(why, "'.' found" + at(i) +
                           " in the owner; a .variant may only follow the package or name");
    }
    return fail(why, "owner may contain only [a-z0-9-], found " + describe_char(c) + at(i));
  }
  if (i == n) {
    return fail(why, "missing \"/{package}\" after owner \"" + std::string(type) + "\"");
  }

  // One to three segments, each introduced by the '/' at type[i].
  int segments = 0;
  while (i < n && type[i] == '/') {
    ++segments;
    if (segments > kMaxSegmentsAfterOwner) {
      return fail(why, "too many '/' segments: at most " +
                           std::to_string(kMaxSegmentsAfterOwner) +
                           " may follow the owner, found another '/'" + at(i));
    }
    const std::size_t start = ++i;
    if (start == n || type[start] == '/' || type[start] == '.') {
      return fail(why, segment_name(segments + 1) + " after the '/'" + at(start - 1) +
                           " is empty");
    }
    if (!is_alnum(type[start])) {
      return fail(why, segment_name(segments + 1) + " must start with [A-Za-z0-9], found " + describe_char(type[start]) +
                           at(start));
    }
    for (i = start + 1; i < n && type[i] != '/' && type[i] != '.'; ++i) {
      if (!is_segment_char(type[i])) {
        return fail(why, segment_name(segments + 1) + " may contain only [A-Za-z0-9:_-], found " + describe_char(type[i]) +
                             at(i));
      }
    }
  }
  if (i == n) return true;

  // type[i] == '.': the variant runs to the end.
  const std::size_t dot = i++;
  if (i == n || type[i] == '.' || type[i] == '/') {
    return fail(why, "variant after the '.'" + at(dot) + " is empty");
  }
  for (; i < n; ++i) {
    char c = type[i];
    if (is_variant_char(c)) continue;
    if (c == '.') {
      return fail(why, "only one '.' is allowed, found a second one" + at(i));
    }
    if (c == '/') {
      return fail(why, "'/' found" + at(i) + " after the .variant; the variant must come last");
    }
    return fail(why, "variant may contain only [A-Za-z0-9_-], found " + describe_char(c) + at(i));
  }
  return true;
}

}  // namespace neuron
