#include "neuron/find_byte.h"

#include <cstdint>
#include <cstring>

#if defined(__wasm__)
#include <wasm_simd128.h>
#endif

namespace neuron {

#if defined(__wasm__)

#define NEURON_SIMD __attribute__((target("simd128")))

// Bit i set: byte i of the aligned block at `block` is the needle.
NEURON_SIMD inline std::uint32_t hits(std::uintptr_t block, v128_t needle) {
  return static_cast<std::uint32_t>(
      wasm_i8x16_bitmask(wasm_i8x16_eq(wasm_v128_load(reinterpret_cast<const void*>(block)), needle)));
}

// Aligned 16-byte blocks: a block that holds a byte of [p, end) lies in the
// same 64 KiB page of linear memory as that byte, so no read can trap; the
// bytes of a block outside [p, end) are masked out.
NEURON_SIMD const char* find_byte(const char* p, const char* end, char c) {
  if (p >= end) return end;
  const v128_t needle = wasm_i8x16_splat(c);
  auto block = reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t{15};
  const auto skip = static_cast<unsigned>(reinterpret_cast<std::uintptr_t>(p) & 15);
  std::uint32_t mask = hits(block, needle) >> skip << skip;
  for (;;) {
    if (mask != 0) {
      const char* hit = reinterpret_cast<const char*>(block) + __builtin_ctz(mask);
      return hit < end ? hit : end;
    }
    block += 16;
    if (reinterpret_cast<const char*>(block) >= end) return end;
    mask = hits(block, needle);
  }
}

#else

const char* find_byte(const char* p, const char* end, char c) {
  if (p >= end) return end;
  const void* hit = std::memchr(p, c, static_cast<std::size_t>(end - p));
  return hit != nullptr ? static_cast<const char*>(hit) : end;
}

#endif

}  // namespace neuron
