// Eight floats as one value, so that the shared per-Gaussian math (gaussian.h,
// written for it: see Mask in common.h) runs on eight Gaussians at once on the
// CPU. The projection is scalar code per Gaussian, and GCC does not vectorise
// it across Gaussians by itself (gathers, branches). GCC / Clang vector
// extensions: one AVX register with -march=native on x86-64, narrower code on
// other targets. CPU only: no CUDA code includes this.
#pragma once

#include <math.h>
#include <stdint.h>

#include "splat/common.h"

namespace splat {
namespace cpu {
// A namespace of its own: the overloads below (s_exp, s_min, ...) are found by
// argument-dependent lookup for F8 only, and hide nothing for float code.
namespace lanes {

constexpr int LANES = 8;
typedef float f8v __attribute__((vector_size(4 * LANES)));
typedef int32_t i8v __attribute__((vector_size(4 * LANES)));

inline f8v broadcast(float x) { return f8v{x, x, x, x, x, x, x, x}; }

// One flag per lane: -1 (all bits set) for true, 0 for false.
struct M8 {
    i8v v;
};
inline M8 operator&(M8 a, M8 b) { return {a.v & b.v}; }
inline M8 operator|(M8 a, M8 b) { return {a.v | b.v}; }
inline M8 operator!(M8 a) { return {~a.v}; }
inline bool any_lane(M8 m) {
    int32_t r = 0;
    for (int l = 0; l < LANES; ++l) r |= m.v[l];
    return r != 0;
}
inline bool lane(M8 m, int l) { return m.v[l] != 0; }

struct F8 {
    f8v v;
    F8() = default;                              // value-initialised (F8{}, = {}): zeros
    F8(double x) : v(broadcast(float(x))) {}     // constants and scalars: every lane (rounded once to float)
    explicit F8(f8v x) : v(x) {}
    float operator[](int l) const { return v[l]; }
    void set(int l, float x) { v[l] = x; }
    F8& operator+=(F8 o) { v += o.v; return *this; }
    F8& operator-=(F8 o) { v -= o.v; return *this; }
    F8& operator*=(F8 o) { v *= o.v; return *this; }
};

inline F8 operator+(F8 a, F8 b) { return F8(a.v + b.v); }
inline F8 operator-(F8 a, F8 b) { return F8(a.v - b.v); }
inline F8 operator*(F8 a, F8 b) { return F8(a.v * b.v); }
inline F8 operator/(F8 a, F8 b) { return F8(a.v / b.v); }
inline F8 operator-(F8 a) { return F8(-a.v); }
inline M8 operator<(F8 a, F8 b) { return {a.v < b.v}; }
inline M8 operator>(F8 a, F8 b) { return {a.v > b.v}; }
inline M8 operator<=(F8 a, F8 b) { return {a.v <= b.v}; }
inline M8 operator>=(F8 a, F8 b) { return {a.v >= b.v}; }
inline M8 operator!=(F8 a, F8 b) { return {a.v != b.v}; }

inline F8 select(M8 c, F8 a, F8 b) { return F8(c.v ? a.v : b.v); }
inline F8 s_min(F8 a, F8 b) { return F8(a.v < b.v ? a.v : b.v); }
inline F8 s_max(F8 a, F8 b) { return F8(a.v > b.v ? a.v : b.v); }

// The same polynomial as exp_poly (common.h), on eight lanes (not fused: a
// projection has four exps per Gaussian, their rounding is not worth the care).
inline F8 s_exp(F8 a) {
    f8v x = a.v;
    x = x < broadcast(-87.0f) ? broadcast(-87.0f) : x;
    x = x > broadcast(88.0f) ? broadcast(88.0f) : x;
    const f8v n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    f8v r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    f8v p = broadcast(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = (p * r) * r + r + 1.0f;
    const i8v bits = (__builtin_convertvector(n, i8v) + 127) << 23;
    return F8(p * (f8v)bits);  // the bits as floats: 2^n
}

// The rest lane by lane: a few calls per Gaussian (GCC makes sqrt and ceil single instructions).
template <typename Fn> inline F8 per_lane(F8 a, Fn fn) {
    F8 r;
    for (int l = 0; l < LANES; ++l) r.v[l] = fn(a.v[l]);
    return r;
}
inline F8 s_sqrt(F8 a) { return per_lane(a, [](float x) { return sqrtf(x); }); }
inline F8 s_log(F8 a) { return per_lane(a, [](float x) { return logf(x); }); }
inline F8 s_ceil(F8 a) { return per_lane(a, [](float x) { return ceilf(x); }); }
inline F8 s_floor(F8 a) { return per_lane(a, [](float x) { return floorf(x); }); }

}  // namespace lanes
using lanes::F8;
using lanes::M8;
using lanes::LANES;
}  // namespace cpu
}  // namespace splat
