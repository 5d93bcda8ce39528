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

// Alpha of one Gaussian at a pixel centre (px, py). Returns false if skipped.
template <typename T>
SPLAT_HD bool gaussian_alpha(const Sym2<T>& conic, const Vec2<T>& mean2d, T opacity, T px, T py, T& alpha) {
    const T dx = px - mean2d.x, dy = py - mean2d.y;
    const T sigma = T(0.5) * (conic.a * dx * dx + conic.c * dy * dy) + conic.b * dx * dy;
    if (sigma < 0) return false;
    alpha = s_min(T(ALPHA_MAX), opacity * s_exp(-sigma));
    return alpha >= T(ALPHA_MIN);
}

// VJP of gaussian_alpha (for a Gaussian that was not skipped): v_alpha ->
// accumulates v_conic, v_mean2d, v_opacity.
template <typename T>
SPLAT_HD void gaussian_alpha_vjp(const Sym2<T>& conic, const Vec2<T>& mean2d, T opacity, T px, T py, T v_alpha,
                                 Sym2<T>& v_conic, Vec2<T>& v_mean2d, T& v_opacity) {
    const T dx = px - mean2d.x, dy = py - mean2d.y;
    const T sigma = T(0.5) * (conic.a * dx * dx + conic.c * dy * dy) + conic.b * dx * dy;
    const T G = s_exp(-sigma);
    if (opacity * G > T(ALPHA_MAX)) return;  // clamped: no gradient (as torch.clamp)
    v_opacity += G * v_alpha;
    const T v_sigma = -opacity * G * v_alpha;
    v_conic.a += T(0.5) * dx * dx * v_sigma;
    v_conic.b += dx * dy * v_sigma;
    v_conic.c += T(0.5) * dy * dy * v_sigma;
    v_mean2d.x -= (conic.a * dx + conic.b * dy) * v_sigma;
    v_mean2d.y -= (conic.b * dx + conic.c * dy) * v_sigma;
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

// VJP of one blend step, walking back to front. Updates the state to the
// transmittance before this Gaussian; returns v_alpha, writes v_color, v_depth.
template <typename T>
SPLAT_HD T blend_step_vjp(const PixelGrad<T>& g, PixelBack<T>& st, T alpha, const T* color, T depth, T* v_color, T& v_depth) {
    const T ra = T(1) / (T(1) - alpha);
    const T Ti = st.trans * ra;  // transmittance before this Gaussian
    const T w = alpha * Ti;
    T v_alpha = g.alpha * g.T_final * ra + g.depth * (depth * Ti - st.depth * ra);
    for (int ch = 0; ch < 3; ++ch) {
        v_color[ch] = w * g.color[ch];
        v_alpha += g.color[ch] * (color[ch] * Ti - st.color[ch] * ra);
        st.color[ch] += w * color[ch];
    }
    v_depth = w * g.depth;
    st.depth += w * depth;
    st.trans = Ti;
    return v_alpha;
}

}  // namespace splat
