// neuron/find_byte.h: the first byte `c` in [p, end), or `end` when there is
// none. What the scans of a lease's bytes use (SSE line ends, a frame's
// escapes): in WebAssembly it reads 16 bytes per step with SIMD (libc's
// memchr there reads 4); elsewhere it is memchr.
#pragma once

namespace neuron {

const char* find_byte(const char* p, const char* end, char c);
inline char* find_byte(char* p, char* end, char c) {
  return const_cast<char*>(find_byte(static_cast<const char*>(p), end, c));
}

}  // namespace neuron
