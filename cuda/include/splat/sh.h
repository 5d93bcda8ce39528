// Real spherical harmonics (3DGS basis order), degree 0..3, next to the VJP.
// Colour = max(sum_k basis_k(dir) * coeff_k + 0.5, 0) per channel.
#pragma once

#include "common.h"

namespace splat {

constexpr double SH_C0 = 0.28209479177387814;
constexpr double SH_C1 = 0.4886025119029199;
// scalars, not arrays: constexpr arrays are not readable in device code
constexpr double SH_C2_0 = 1.0925484305920792, SH_C2_1 = -1.0925484305920792, SH_C2_2 = 0.31539156525252005,
                 SH_C2_3 = -1.0925484305920792, SH_C2_4 = 0.5462742152960396;
constexpr double SH_C3_0 = -0.5900435899266435, SH_C3_1 = 2.890611442640554, SH_C3_2 = -0.4570457994644658,
                 SH_C3_3 = 0.3731763325901154, SH_C3_4 = -0.4570457994644658, SH_C3_5 = 1.445305721320277,
                 SH_C3_6 = -0.5900435899266435;

// Basis values at a unit direction; fills (degree+1)^2 entries of b.
template <typename T> SPLAT_HD void sh_basis(int degree, const Vec3<T>& d, T* b) {
    const T x = d.x, y = d.y, z = d.z;
    b[0] = T(SH_C0);
    if (degree < 1) return;
    b[1] = -T(SH_C1) * y;
    b[2] = T(SH_C1) * z;
    b[3] = -T(SH_C1) * x;
    if (degree < 2) return;
    const T xx = x * x, yy = y * y, zz = z * z;
    b[4] = T(SH_C2_0) * x * y;
    b[5] = T(SH_C2_1) * y * z;
    b[6] = T(SH_C2_2) * (2 * zz - xx - yy);
    b[7] = T(SH_C2_3) * x * z;
    b[8] = T(SH_C2_4) * (xx - yy);
    if (degree < 3) return;
    b[9] = T(SH_C3_0) * y * (3 * xx - yy);
    b[10] = T(SH_C3_1) * x * y * z;
    b[11] = T(SH_C3_2) * y * (4 * zz - xx - yy);
    b[12] = T(SH_C3_3) * z * (2 * zz - 3 * xx - 3 * yy);
    b[13] = T(SH_C3_4) * x * (4 * zz - xx - yy);
    b[14] = T(SH_C3_5) * z * (xx - yy);
    b[15] = T(SH_C3_6) * x * (xx - 3 * yy);
}

// Gradient of each basis function with respect to (x, y, z), treating them as
// independent (the normalisation's VJP is applied by the caller).
template <typename T> SPLAT_HD void sh_basis_grad(int degree, const Vec3<T>& d, Vec3<T>* g) {
    const T x = d.x, y = d.y, z = d.z;
    g[0] = {0, 0, 0};
    if (degree < 1) return;
    const T c1 = T(SH_C1);
    g[1] = {0, -c1, 0};
    g[2] = {0, 0, c1};
    g[3] = {-c1, 0, 0};
    if (degree < 2) return;
    const T xx = x * x, yy = y * y, zz = z * z;
    g[4] = {T(SH_C2_0) * y, T(SH_C2_0) * x, 0};
    g[5] = {0, T(SH_C2_1) * z, T(SH_C2_1) * y};
    g[6] = {-2 * T(SH_C2_2) * x, -2 * T(SH_C2_2) * y, 4 * T(SH_C2_2) * z};
    g[7] = {T(SH_C2_3) * z, 0, T(SH_C2_3) * x};
    g[8] = {2 * T(SH_C2_4) * x, -2 * T(SH_C2_4) * y, 0};
    if (degree < 3) return;
    g[9] = {6 * T(SH_C3_0) * x * y, T(SH_C3_0) * (3 * xx - 3 * yy), 0};
    g[10] = {T(SH_C3_1) * y * z, T(SH_C3_1) * x * z, T(SH_C3_1) * x * y};
    g[11] = {-2 * T(SH_C3_2) * x * y, T(SH_C3_2) * (4 * zz - xx - 3 * yy), 8 * T(SH_C3_2) * y * z};
    g[12] = {-6 * T(SH_C3_3) * x * z, -6 * T(SH_C3_3) * y * z, T(SH_C3_3) * (6 * zz - 3 * xx - 3 * yy)};
    g[13] = {T(SH_C3_4) * (4 * zz - 3 * xx - yy), -2 * T(SH_C3_4) * x * y, 8 * T(SH_C3_4) * x * z};
    g[14] = {2 * T(SH_C3_5) * x * z, -2 * T(SH_C3_5) * y * z, T(SH_C3_5) * (xx - yy)};
    g[15] = {T(SH_C3_6) * (3 * xx - 3 * yy), -6 * T(SH_C3_6) * x * y, 0};
}

// Unit direction from the camera centre to the mean; inv = 1 / distance.
template <typename T> SPLAT_HD Vec3<T> view_dir(const Vec3<T>& mean, const Vec3<T>& campos, T& inv) {
    const Vec3<T> d = {mean.x - campos.x, mean.y - campos.y, mean.z - campos.z};
    inv = T(1) / s_sqrt(dot3(d, d));
    return {d.x * inv, d.y * inv, d.z * inv};
}

// The colour before the clamp from the first n basis values b: sum_k b_k coeff_k + 0.5.
template <typename T> SPLAT_HD Vec3<T> sh_raw_color(int n, const T* b, const T* coeffs) {
    T r = 0, g = 0, bl = 0;
    for (int k = 0; k < n; ++k) {
        r += b[k] * coeffs[3 * k + 0];
        g += b[k] * coeffs[3 * k + 1];
        bl += b[k] * coeffs[3 * k + 2];
    }
    return {r + T(0.5), g + T(0.5), bl + T(0.5)};
}

// Colour of one Gaussian seen from camera centre `campos`.
// coeffs: [K][3] with K >= (degree+1)^2, channel innermost. raw: colour before the clamp.
template <typename T>
SPLAT_HD Vec3<T> sh_to_color(int degree, const T* coeffs, const Vec3<T>& mean, const Vec3<T>& campos, Vec3<T>& raw) {
    T inv;
    const Vec3<T> d = view_dir(mean, campos, inv);
    T b[16];
    sh_basis(degree, d, b);
    raw = sh_raw_color((degree + 1) * (degree + 1), b, coeffs);
    return {s_max(raw.x, T(0)), s_max(raw.y, T(0)), s_max(raw.z, T(0))};
}

// VJP of sh_to_color: v_color -> v_coeffs ((degree+1)^2 x 3, written, or added
// to when `accumulate`) and v_mean (accumulated). The colour before the clamp is
// recomputed here, from the same basis values, as sh_to_color computes it.
template <typename T>
SPLAT_HD void sh_to_color_vjp(int degree, const T* coeffs, const Vec3<T>& mean, const Vec3<T>& campos,
                              const Vec3<T>& v_color, T* v_coeffs, Vec3<T>& v_mean, bool accumulate = false) {
    T inv;
    const Vec3<T> d = view_dir(mean, campos, inv);
    T b[16];
    sh_basis(degree, d, b);
    const int n = (degree + 1) * (degree + 1);
    // the clamp at 0 passes the gradient where raw >= 0 (as torch.clamp)
    const Vec3<T> raw = sh_raw_color(n, b, coeffs);
    const T vr = select(raw.x >= T(0), v_color.x, T(0)), vg = select(raw.y >= T(0), v_color.y, T(0));
    const T vb = select(raw.z >= T(0), v_color.z, T(0));
    for (int k = 0; k < n; ++k) {
        if (accumulate) {
            v_coeffs[3 * k + 0] += b[k] * vr;
            v_coeffs[3 * k + 1] += b[k] * vg;
            v_coeffs[3 * k + 2] += b[k] * vb;
        } else {
            v_coeffs[3 * k + 0] = b[k] * vr;
            v_coeffs[3 * k + 1] = b[k] * vg;
            v_coeffs[3 * k + 2] = b[k] * vb;
        }
    }
    if (degree < 1) return;
    Vec3<T> g[16];
    sh_basis_grad(degree, d, g);
    Vec3<T> v_d = {0, 0, 0};
    for (int k = 1; k < n; ++k) {
        const T w = coeffs[3 * k] * vr + coeffs[3 * k + 1] * vg + coeffs[3 * k + 2] * vb;
        v_d.x += w * g[k].x;
        v_d.y += w * g[k].y;
        v_d.z += w * g[k].z;
    }
    // d = u / |u| -> v_u = (v_d - d (d . v_d)) / |u|
    const T dd = dot3(d, v_d);
    v_mean.x += (v_d.x - d.x * dd) * inv;
    v_mean.y += (v_d.y - d.y * dd) * inv;
    v_mean.z += (v_d.z - d.z * dd) * inv;
}

}  // namespace splat
