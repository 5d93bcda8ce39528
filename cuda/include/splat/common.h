// Shared math for every native backend: small vector types, math helpers and
// the rasterizer constants. Compiled by nvcc (host + device) and by a plain
// C++ compiler (CPU backend). No PyTorch header may be included here.
#pragma once

#include <math.h>

#ifdef __CUDACC__
#define SPLAT_HD __host__ __device__ __forceinline__
#else
#define SPLAT_HD inline
#endif

namespace splat {

// Rasterizer constants, mirrored from splat/render/constants.py. Doubles, so
// that T(constant) rounds once to the working precision, as torch does.
constexpr double ALPHA_MAX = 0.99;          // alpha clamp
constexpr double ALPHA_MIN = 1.0 / 255.0;   // skip a Gaussian at a pixel below this alpha
constexpr double T_MIN = 1e-4;              // stop before T would fall below this
constexpr double EPS2D = 0.3;               // low-pass added to 2D covariances (px^2)
constexpr int TILE = 16;                    // tile edge in pixels

// a * b + c rounded once where the target has fused multiply-adds (fewer and
// shorter dependent steps in the polynomial below), else rounded twice
SPLAT_HD float mul_add(float a, float b, float c) {
#if defined(__FMA__) || defined(__CUDA_ARCH__)
    return fmaf(a, b, c);
#else
    return a * b + c;
#endif
}

// exp for float on the host: Cephes' polynomial (max relative error ~1.2e-7),
// written with plain arithmetic so that loops over pixels vectorise; libm's
// expf is an opaque call. On the device the hardware expf is used.
SPLAT_HD float exp_poly(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    // round(x / ln 2) by the 1.5 * 2^23 trick (adds only: vectorises without SSE4.1)
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = mul_add(p, r, 1.3981999507e-3f);
    p = mul_add(p, r, 8.3334519073e-3f);
    p = mul_add(p, r, 4.1665795894e-2f);
    p = mul_add(p, r, 1.6666665459e-1f);
    p = mul_add(p, r, 5.0000001201e-1f);
    p = mul_add(p * r, r, r) + 1.0f;
    union { int i; float f; } scale;
    scale.i = (int(n) + 127) << 23;
    return p * scale.f;
}

// Overloads that resolve to the float or double function on host and device.
SPLAT_HD float s_exp(float x) { return expf(x); }
SPLAT_HD double s_exp(double x) { return exp(x); }
// exp in the per-pixel blend: the vectorisable polynomial for float on the host.
#ifdef __CUDA_ARCH__
SPLAT_HD float blend_exp(float x) { return expf(x); }
#else
SPLAT_HD float blend_exp(float x) { return exp_poly(x); }
#endif
SPLAT_HD double blend_exp(double x) { return exp(x); }
SPLAT_HD float s_log(float x) { return logf(x); }
SPLAT_HD double s_log(double x) { return log(x); }
SPLAT_HD float s_sqrt(float x) { return sqrtf(x); }
SPLAT_HD double s_sqrt(double x) { return sqrt(x); }
SPLAT_HD float s_ceil(float x) { return ceilf(x); }
SPLAT_HD double s_ceil(double x) { return ceil(x); }
SPLAT_HD float s_floor(float x) { return floorf(x); }
SPLAT_HD double s_floor(double x) { return floor(x); }
template <typename T> SPLAT_HD T s_min(T a, T b) { return a < b ? a : b; }
template <typename T> SPLAT_HD T s_max(T a, T b) { return a > b ? a : b; }

// Lanes. The per-Gaussian math (covariance, projection, SH) is written so that T
// may also be a vector of Gaussians (the CPU backend runs 8 at a time, cuda/cpu/lanes.h):
// conditions are Mask<T> (bool for a scalar, one flag per lane for a vector),
// combined with & and |, and data-dependent choices are select()s. A branch
// on a mask is taken only to skip work no lane needs: `if (!any_lane(m)) return`.
template <typename T> using Mask = decltype(T() < T());
template <typename C, typename T> SPLAT_HD T select(C c, T a, T b) { return c ? a : b; }
SPLAT_HD bool any_lane(bool c) { return c; }

// The largest sigma = 0.5 d^T Sigma^-1 d at which a Gaussian of this opacity still
// reaches alpha 1/255: ln(255 o), 0 if it never does. Screen extents and row
// spans both cull with it.
template <typename T> SPLAT_HD T sigma_limit(T opacity) { return s_log(s_max(opacity / T(ALPHA_MIN), T(1))); }

template <typename T> struct Vec2 { T x, y; };
template <typename T> struct Vec3 { T x, y, z; };
template <typename T> struct Vec4 { T w, x, y, z; };  // quaternion, w first
// Symmetric 2x2 [[a, b], [b, c]]. As a gradient it holds d/da, d/db, d/dc with
// b one parameter that appears in both off-diagonal entries.
template <typename T> struct Sym2 { T a, b, c; };
// Row-major 3x3.
template <typename T> struct Mat3 {
    T m[3][3];
    SPLAT_HD T& operator()(int i, int j) { return m[i][j]; }
    SPLAT_HD T operator()(int i, int j) const { return m[i][j]; }
};

template <typename T> SPLAT_HD Mat3<T> mat3_zero() {
    Mat3<T> r;
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) r.m[i][j] = T(0);
    return r;
}

template <typename T> SPLAT_HD Mat3<T> matmul(const Mat3<T>& A, const Mat3<T>& B) {
    Mat3<T> r;
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
            T s = T(0);
            for (int k = 0; k < 3; ++k) s += A.m[i][k] * B.m[k][j];
            r.m[i][j] = s;
        }
    return r;
}

template <typename T> SPLAT_HD Mat3<T> transpose(const Mat3<T>& A) {
    Mat3<T> r;
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) r.m[i][j] = A.m[j][i];
    return r;
}

template <typename T> SPLAT_HD Vec3<T> matvec(const Mat3<T>& A, const Vec3<T>& v) {
    return {A.m[0][0] * v.x + A.m[0][1] * v.y + A.m[0][2] * v.z,
            A.m[1][0] * v.x + A.m[1][1] * v.y + A.m[1][2] * v.z,
            A.m[2][0] * v.x + A.m[2][1] * v.y + A.m[2][2] * v.z};
}

// A^T v
template <typename T> SPLAT_HD Vec3<T> matTvec(const Mat3<T>& A, const Vec3<T>& v) {
    return {A.m[0][0] * v.x + A.m[1][0] * v.y + A.m[2][0] * v.z,
            A.m[0][1] * v.x + A.m[1][1] * v.y + A.m[2][1] * v.z,
            A.m[0][2] * v.x + A.m[1][2] * v.y + A.m[2][2] * v.z};
}

template <typename T> SPLAT_HD T dot3(const Vec3<T>& a, const Vec3<T>& b) { return a.x * b.x + a.y * b.y + a.z * b.z; }

}  // namespace splat
