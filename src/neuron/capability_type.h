// neuron/capability_type.h: capability types, PROTOCOL.md rule 1.
//
//   std::string why;
//   if (!is_valid_capability_type("core/script.python", &why)) fail(why);
#pragma once

#include <string>
#include <string_view>

namespace neuron {

// Rule 1: `{owner}/{package}[/{name}][.{variant}]`, owner `[a-z0-9][a-z0-9-]*`,
// then one to three segments of `[A-Za-z0-9][A-Za-z0-9:_-]*`, then an optional
// `.variant` of `[A-Za-z0-9_-]+`, 200 characters at most. On failure `why`
// says what is wrong, e.g. "owner must start with [a-z0-9]".
bool is_valid_capability_type(std::string_view type, std::string* why = nullptr);

}  // namespace neuron
