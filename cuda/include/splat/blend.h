// The per-pixel blend step, next to its VJP.
//
// alpha = min(0.99, o exp(-sigma)), sigma = 0.5 (a dx^2 + c dy^2) + b dx dy, with
// d = pixel centre - mean2d. A Gaussian with sigma < 0 or alpha < 1/255 is skipped
// at that pixel; a pixel stops before the Gaussian that would bring T below 1e-4.
// Front to back: w_i = alpha_i T_i, T_{i+1} = T_i (1 - alpha_i),
// colour = sum w_i c_i, depth_sum = sum w_i z_i, alpha_final = 1 - T_final.
#pragma once

#include "common.h"

namespace splat {

// sigma = 0.5 d^T conic d for d = (dx, dy) = pixel centre - mean2d.
template <typename T> SPLAT_HD T gaussian_sigma(const Sym2<T>& conic, T dx, T dy) {
    return T(0.5) * (conic.a * dx * dx + conic.c * dy * dy) + conic.b * dx * dy;
}

// G = exp(-sigma), with sigma capped at 30. Beyond the cap alpha < 1e-13 is
// skipped either way (the threshold is 1/255), and the cap keeps G and o G
// out of the denormal range, which costs ~100 cycles per operation on x86.
template <typename T> SPLAT_HD T gaussian_falloff(T sigma) { return blend_exp(-s_min(sigma, T(30))); }

// The same with G = gaussian_falloff(sigma) given (backward passes reuse G).
template <typename T> SPLAT_HD T alpha_taken_g(T opacity, T sigma, T G) {
    const T a = s_min(T(ALPHA_MAX), opacity * G);
    const T a1 = sigma >= T(0) ? a : T(0);
    return a1 >= T(ALPHA_MIN) ? a1 : T(0);
}

// The alpha a pixel takes from a Gaussian at sigma: min(0.99, o exp(-sigma)),
// or 0 when the Gaussian is skipped there (sigma < 0 or alpha < 1/255).
// Written as float selects so that CPU loops over pixels vectorise.
template <typename T> SPLAT_HD T alpha_taken(T opacity, T sigma) {
    return alpha_taken_g(opacity, sigma, gaussian_falloff(sigma));
}

// A pixel stops before a Gaussian that would bring its transmittance below T_MIN.
template <typename T> SPLAT_HD bool blend_stops(T trans_after) { return trans_after < T(T_MIN); }

// One front-to-back step at a pixel whose transmittance is trans: the Gaussian (alpha a,
// 0 where it is skipped; colour c; depth z) is taken unless the pixel stops before it
// (stop = 1, and nothing changes). Taken, it adds w = a T to the colour and depth sums,
// moves T to T (1 - a), and becomes the median depth where T falls through 0.5.
// Returns w: > 0 exactly when the Gaussian was taken (a >= 1/255 and T >= T_MIN).
// Float selects only, so CPU loops over pixels vectorise; the VJP is blend_step_vjp.
template <typename T>
SPLAT_HD T blend_step(T a, T c0, T c1, T c2, T z, T& trans, T& s0, T& s1, T& s2, T& sz, T& med, T& stop) {
    const T tr = trans;
    stop = blend_stops(tr * (T(1) - a)) ? T(1) : T(0);
    a = stop > T(0) ? T(0) : a;  // the alpha taken (0: nothing changes)
    const T w = a * tr;
    s0 += w * c0;
    s1 += w * c1;
    s2 += w * c2;
    sz += w * z;
    trans = tr * (T(1) - a);
    med = (tr > T(0.5) && trans <= T(0.5)) ? z : med;
    return w;
}

// Alpha of one Gaussian at a pixel centre (px, py). Returns false if skipped.
template <typename T>
SPLAT_HD bool gaussian_alpha(const Sym2<T>& conic, const Vec2<T>& mean2d, T opacity, T px, T py, T& alpha) {
    alpha = alpha_taken(opacity, gaussian_sigma(conic, px - mean2d.x, py - mean2d.y));
    return alpha > T(0);
}

// Whether alpha = min(0.99, o G) passes a gradient: not where it is clamped (as torch.clamp).
template <typename T> SPLAT_HD bool alpha_grad_passes(T opacity, T G) { return !(opacity * G > T(ALPHA_MAX)); }

// Core of the alpha VJP with G = exp(-sigma) given and v_alpha already zero
// where alpha_grad_passes is false.
template <typename T>
SPLAT_HD void gaussian_alpha_vjp_g(const Sym2<T>& conic, T opacity, T G, T dx, T dy, T va, T& v_ca, T& v_cb, T& v_cc,
                                   T& v_mx, T& v_my, T& v_o) {
    v_o += G * va;
    const T v_sigma = -opacity * G * va;
    v_ca += T(0.5) * dx * dx * v_sigma;
    v_cb += dx * dy * v_sigma;
    v_cc += T(0.5) * dy * dy * v_sigma;
    v_mx -= (conic.a * dx + conic.b * dy) * v_sigma;
    v_my -= (conic.b * dx + conic.c * dy) * v_sigma;
}

// VJP of alpha_taken o gaussian_sigma (for a Gaussian that counts at the
// pixel): v_alpha -> accumulates v_conic (a, b, c), v_mean2d (x, y), v_opacity.
// Scalar references so that CPU loops over pixels vectorise.
template <typename T>
SPLAT_HD void gaussian_alpha_vjp_d(const Sym2<T>& conic, T opacity, T dx, T dy, T v_alpha, T& v_ca, T& v_cb, T& v_cc,
                                   T& v_mx, T& v_my, T& v_o) {
    const T G = gaussian_falloff(gaussian_sigma(conic, dx, dy));
    gaussian_alpha_vjp_g(conic, opacity, G, dx, dy, alpha_grad_passes(opacity, G) ? v_alpha : T(0), v_ca, v_cb, v_cc,
                         v_mx, v_my, v_o);
}

// The same with the pixel centre and structs (for per-pixel kernels).
template <typename T>
SPLAT_HD void gaussian_alpha_vjp(const Sym2<T>& conic, const Vec2<T>& mean2d, T opacity, T px, T py, T v_alpha,
                                 Sym2<T>& v_conic, Vec2<T>& v_mean2d, T& v_opacity) {
    gaussian_alpha_vjp_d(conic, opacity, px - mean2d.x, py - mean2d.y, v_alpha, v_conic.a, v_conic.b, v_conic.c,
                         v_mean2d.x, v_mean2d.y, v_opacity);
}

// What a pixel shows once its Gaussians are blended: the blended colour plus
// the background through the transmittance left, alpha = 1 - T, and the
// expected depth depth_sum / alpha (alpha clamped at 1e-10; 0 where alpha = 0).
template <typename T>
SPLAT_HD void pixel_finish(T c0, T c1, T c2, T trans, T depth_sum, const T* bg, T* color, T& alpha, T& depth) {
    color[0] = c0 + trans * bg[0];
    color[1] = c1 + trans * bg[1];
    color[2] = c2 + trans * bg[2];
    alpha = T(1) - trans;
    depth = alpha > T(0) ? depth_sum / s_max(alpha, T(1e-10)) : T(0);
}

// VJP of pixel_finish, seen from the blend: gradients of the shown colour,
// alpha and depth -> gradients of the blended colour (g_color is passed
// through unchanged), of depth_sum and of alpha = 1 - T (the background term
// enters through T). The background's own gradient, trans * g_color summed over
// pixels, is left to the caller.
template <typename T>
SPLAT_HD void pixel_finish_vjp(const T* g_color, T g_alpha, T g_depth, T trans, T depth_sum, const T* bg, T& v_depth_sum,
                               T& v_alpha) {
    const T alpha = T(1) - trans;
    v_alpha = g_alpha - (g_color[0] * bg[0] + g_color[1] * bg[1] + g_color[2] * bg[2]);
    v_depth_sum = T(0);
    if (alpha > T(0)) {
        const T a = s_max(alpha, T(1e-10));
        v_depth_sum = g_depth / a;
        if (alpha > T(1e-10)) v_alpha -= g_depth * depth_sum / (a * a);
    }
}

// Gradients arriving at one pixel.
template <typename T> struct PixelGrad {
    T color[3];   // d loss / d colour (before the background term)
    T depth;      // d loss / d depth_sum
    T alpha;      // d loss / d alpha_final
    T T_final;    // transmittance left after the last Gaussian
};

// State of the back-to-front walk at one pixel.
template <typename T> struct PixelBack {
    T trans;     // transmittance after the current Gaussian (starts at T_final)
    T color[3];  // sum of w_j c_j over the Gaussians behind the current one
    T depth;     // sum of w_j z_j over the Gaussians behind
};

// VJP of one blend step, walking back to front, on scalars: g_* are the
// pixel's incoming gradients, (trans, s0, s1, s2, sd) its back-walk state, which
// is moved to before this Gaussian. Returns v_alpha; w is the Gaussian's weight
// (its colour gradient is w * g_color, its depth gradient w * g_depth).
template <typename T>
SPLAT_HD T blend_step_vjp_s(T g0, T g1, T g2, T gd, T ga, T T_final, T& trans, T& s0, T& s1, T& s2, T& sd, T alpha, T c0,
                            T c1, T c2, T depth, T& w) {
    const T ra = T(1) / (T(1) - alpha);
    const T Ti = trans * ra;  // transmittance before this Gaussian
    w = alpha * Ti;
    const T v_alpha = ga * T_final * ra + gd * (depth * Ti - sd * ra) + g0 * (c0 * Ti - s0 * ra) +
                      g1 * (c1 * Ti - s1 * ra) + g2 * (c2 * Ti - s2 * ra);
    s0 += w * c0;
    s1 += w * c1;
    s2 += w * c2;
    sd += w * depth;
    trans = Ti;
    return v_alpha;
}

// The same step with the back-walk state folded into one number. The incoming
// gradients are fixed per pixel, so the sums behind enter v_alpha only through
// S = g0 s0 + g1 s1 + g2 s2 + gd sd:  v_alpha = Ti gc + (k - S) / (1 - alpha), with
// gc = g0 c0 + g1 c1 + g2 c2 + gd depth for this Gaussian and k = ga T_final.
// Two state values per pixel instead of five (CPU loops keep the state in memory).
template <typename T> SPLAT_HD T blend_step_vjp_dot(T gc, T k, T& trans, T& S, T alpha, T& w) {
    const T ra = T(1) / (T(1) - alpha);
    const T Ti = trans * ra;  // transmittance before this Gaussian
    w = alpha * Ti;
    const T v_alpha = Ti * gc + (k - S) * ra;
    S += w * gc;
    trans = Ti;
    return v_alpha;
}

// The same over the structs (for per-pixel kernels).
template <typename T>
SPLAT_HD T blend_step_vjp(const PixelGrad<T>& g, PixelBack<T>& st, T alpha, const T* color, T depth, T* v_color, T& v_depth) {
    T w;
    const T v_alpha = blend_step_vjp_s(g.color[0], g.color[1], g.color[2], g.depth, g.alpha, g.T_final, st.trans,
                                       st.color[0], st.color[1], st.color[2], st.depth, alpha, color[0], color[1],
                                       color[2], depth, w);
    for (int ch = 0; ch < 3; ++ch) v_color[ch] = w * g.color[ch];
    v_depth = w * g.depth;
    return v_alpha;
}

}  // namespace splat
