// SSIM of one pixel and channel from its Gaussian-windowed local moments, and its VJP.
// Shared by the CPU training ops (and any GPU kernel). No PyTorch header here.
//
// Moments at pixel p (window g, zero padding): mx = g*x, my = g*y, exx = g*x^2,
// eyy = g*y^2, exy = g*xy. With vx = exx - mx^2, vy = eyy - my^2, cxy = exy - mx my:
//   S = (2 mx my + C1)(2 cxy + C2) / ((mx^2 + my^2 + C1)(vx + vy + C2)).
// The gradient reaching image x at pixel q is, for upstream weights w_p:
//   blur(w dS/dmx)(q) + 2 x(q) blur(w dS/dexx)(q) + y(q) blur(w dS/dexy)(q)
// (the window is symmetric, so the blur is its own adjoint).
#pragma once

#include "common.h"

namespace splat {

constexpr double SSIM_C1 = 0.01 * 0.01;
constexpr double SSIM_C2 = 0.03 * 0.03;
constexpr int SSIM_WINDOW = 11;
constexpr double SSIM_SIGMA = 1.5;

template <typename T>
SPLAT_HD T ssim_pixel(T mx, T my, T exx, T eyy, T exy) {
    const T vx = exx - mx * mx, vy = eyy - my * my, cxy = exy - mx * my;
    const T A = T(2) * mx * my + T(SSIM_C1), B = T(2) * cxy + T(SSIM_C2);
    const T C = mx * mx + my * my + T(SSIM_C1), D = vx + vy + T(SSIM_C2);
    return (A * B) / (C * D);
}

// v_s: upstream dL/dS. Writes dL/dmx (through every path), dL/dexx, dL/dexy.
template <typename T>
SPLAT_HD void ssim_pixel_vjp(T mx, T my, T exx, T eyy, T exy, T v_s, T& v_mx, T& v_exx, T& v_exy) {
    const T vx = exx - mx * mx, vy = eyy - my * my, cxy = exy - mx * my;
    const T A = T(2) * mx * my + T(SSIM_C1), B = T(2) * cxy + T(SSIM_C2);
    const T C = mx * mx + my * my + T(SSIM_C1), D = vx + vy + T(SSIM_C2);
    const T S = (A * B) / (C * D);
    const T dA = v_s * B / (C * D), dB = v_s * A / (C * D), dC = -v_s * S / C, dD = -v_s * S / D;
    v_mx = T(2) * my * dA - T(2) * my * dB + T(2) * mx * dC - T(2) * mx * dD;
    v_exx = dD;
    v_exy = T(2) * dB;
}

// The normalised 1-D Gaussian window (SSIM_WINDOW taps, SSIM_SIGMA), computed in double.
inline void ssim_window(double* w) {
    double sum = 0;
    for (int k = 0; k < SSIM_WINDOW; ++k) {
        const double x = k - SSIM_WINDOW / 2;
        w[k] = exp(-x * x / (2 * SSIM_SIGMA * SSIM_SIGMA));
        sum += w[k];
    }
    for (int k = 0; k < SSIM_WINDOW; ++k) w[k] /= sum;
}

}  // namespace splat
