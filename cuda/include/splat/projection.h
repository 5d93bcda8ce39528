// EWA projection of a 3D Gaussian to the image, each step next to its VJP.
//
// world -> camera:  p_c = R p + t,  Sigma_c = R Sigma R^T
// perspective:      mean2d = (fx x/z + cx, fy y/z + cy), cov2d = J Sigma_c J^T with
//                   J evaluated at (x, y) clamped to 1.3x the field of view (as 3DGS)
// low-pass:         cov2d + 0.3 I, conic = its inverse; antialiased mode scales
//                   opacity by sqrt(det(cov2d) / det(cov2d + 0.3 I))
#pragma once

#include "common.h"

namespace splat {

template <typename T> struct Intrinsics { T fx, fy, cx, cy; int width, height; };

// Camera-space covariance R Sigma R^T.
template <typename T> SPLAT_HD Mat3<T> covar_world_to_cam(const Mat3<T>& R, const Mat3<T>& cov) {
    return matmul(matmul(R, cov), transpose(R));
}

// VJP: v_cov_c -> v_cov = R^T v_cov_c R.
template <typename T> SPLAT_HD Mat3<T> covar_world_to_cam_vjp(const Mat3<T>& R, const Mat3<T>& v_cov_c) {
    return matmul(matmul(transpose(R), v_cov_c), R);
}

// Limits of x/z (and y/z) where the Jacobian stops following the point.
template <typename T> SPLAT_HD void fov_limits(const Intrinsics<T>& K, T& lo_x, T& hi_x, T& lo_y, T& hi_y) {
    const T mx = T(0.3) * T(0.5) * T(K.width) / K.fx, my = T(0.3) * T(0.5) * T(K.height) / K.fy;
    lo_x = -(K.cx / K.fx + mx);
    hi_x = (T(K.width) - K.cx) / K.fx + mx;
    lo_y = -(K.cy / K.fy + my);
    hi_y = (T(K.height) - K.cy) / K.fy + my;
}

// Perspective projection of a camera-space Gaussian. Requires z > 0.
template <typename T>
SPLAT_HD void persp_proj(const Vec3<T>& p, const Mat3<T>& cov, const Intrinsics<T>& K, Vec2<T>& mean2d, Sym2<T>& cov2d) {
    T lo_x, hi_x, lo_y, hi_y;
    fov_limits(K, lo_x, hi_x, lo_y, hi_y);
    const T z = p.z, rz = T(1) / z, rz2 = rz * rz;
    const T xc = z * s_min(s_max(p.x * rz, lo_x), hi_x);
    const T yc = z * s_min(s_max(p.y * rz, lo_y), hi_y);
    // J = [[fx/z, 0, -fx xc/z^2], [0, fy/z, -fy yc/z^2]]
    const T j00 = K.fx * rz, j02 = -K.fx * xc * rz2, j11 = K.fy * rz, j12 = -K.fy * yc * rz2;
    // rows of J Sigma (the second row's first entry is not needed: cov2d is symmetric)
    const T a0 = j00 * cov.m[0][0] + j02 * cov.m[2][0], a1 = j00 * cov.m[0][1] + j02 * cov.m[2][1], a2 = j00 * cov.m[0][2] + j02 * cov.m[2][2];
    const T b1 = j11 * cov.m[1][1] + j12 * cov.m[2][1], b2 = j11 * cov.m[1][2] + j12 * cov.m[2][2];
    cov2d.a = a0 * j00 + a2 * j02;
    cov2d.b = a1 * j11 + a2 * j12;
    cov2d.c = b1 * j11 + b2 * j12;
    mean2d.x = K.fx * p.x * rz + K.cx;
    mean2d.y = K.fy * p.y * rz + K.cy;
}

// VJP of persp_proj: (v_mean2d, v_cov2d) -> accumulates into v_p and v_cov.
template <typename T>
SPLAT_HD void persp_proj_vjp(const Vec3<T>& p, const Mat3<T>& cov, const Intrinsics<T>& K, const Vec2<T>& v_mean2d,
                             const Sym2<T>& v_cov2d, Vec3<T>& v_p, Mat3<T>& v_cov) {
    T lo_x, hi_x, lo_y, hi_y;
    fov_limits(K, lo_x, hi_x, lo_y, hi_y);
    const T z = p.z, rz = T(1) / z, rz2 = rz * rz, rz3 = rz2 * rz;
    const T tx = p.x * rz, ty = p.y * rz;
    const Mask<T> clamp_x = (tx < lo_x) | (tx > hi_x), clamp_y = (ty < lo_y) | (ty > hi_y);
    const T xc = z * s_min(s_max(tx, lo_x), hi_x), yc = z * s_min(s_max(ty, lo_y), hi_y);
    T J[2][3] = {{K.fx * rz, 0, -K.fx * xc * rz2}, {0, K.fy * rz, -K.fy * yc * rz2}};
    // G: the gradient of cov2d as a full symmetric matrix
    const T G[2][2] = {{v_cov2d.a, T(0.5) * v_cov2d.b}, {T(0.5) * v_cov2d.b, v_cov2d.c}};
    // v_cov += J^T G J
    T GJ[2][3];
    for (int i = 0; i < 2; ++i)
        for (int k = 0; k < 3; ++k) GJ[i][k] = G[i][0] * J[0][k] + G[i][1] * J[1][k];
    for (int k = 0; k < 3; ++k)
        for (int l = 0; l < 3; ++l) v_cov.m[k][l] += J[0][k] * GJ[0][l] + J[1][k] * GJ[1][l];
    // v_J = 2 G J Sigma (G and Sigma symmetric)
    T vJ[2][3];
    for (int i = 0; i < 2; ++i)
        for (int l = 0; l < 3; ++l) {
            T s = 0;
            for (int k = 0; k < 3; ++k) s += GJ[i][k] * cov.m[k][l];
            vJ[i][l] = 2 * s;
        }
    // mean2d
    v_p.x += K.fx * rz * v_mean2d.x;
    v_p.y += K.fy * rz * v_mean2d.y;
    v_p.z -= (K.fx * p.x * v_mean2d.x + K.fy * p.y * v_mean2d.y) * rz2;
    // J entries
    v_p.z -= K.fx * rz2 * vJ[0][0] + K.fy * rz2 * vJ[1][1];
    // J02 = -fx xc / z^2: with x/z clamped, xc = z L with L fixed, so J02 = -fx L / z
    const T jx = K.fx * xc * rz3 * vJ[0][2], jy = K.fy * yc * rz3 * vJ[1][2];
    v_p.x -= select(clamp_x, T(0), K.fx * rz2 * vJ[0][2]);
    v_p.z += select(clamp_x, jx, 2 * jx);
    v_p.y -= select(clamp_y, T(0), K.fy * rz2 * vJ[1][2]);
    v_p.z += select(clamp_y, jy, 2 * jy);
}

// Add the low-pass filter and invert. Returns false when the blurred
// covariance is not positive definite (the Gaussian is culled; conic and
// compensation are then meaningless).
// compensation = sqrt(max(det(cov2d) / det(cov2d + eps I), 0)).
template <typename T>
SPLAT_HD Mask<T> blur_and_invert(const Sym2<T>& cov2d, Sym2<T>& conic, T& compensation) {
    const T a = cov2d.a + T(EPS2D), b = cov2d.b, c = cov2d.c + T(EPS2D);
    const T det = a * c - b * b;
    const T det0 = cov2d.a * cov2d.c - b * b;
    const T rdet = T(1) / det;
    conic = {c * rdet, -b * rdet, a * rdet};
    compensation = s_sqrt(s_max(det0 * rdet, T(0)));
    return det > T(0);
}

// VJP of blur_and_invert: (v_conic, v_compensation) -> v_cov2d.
template <typename T>
SPLAT_HD Sym2<T> blur_and_invert_vjp(const Sym2<T>& cov2d, const Sym2<T>& conic, T compensation, const Sym2<T>& v_conic,
                                     T v_compensation) {
    // conic Q = S^-1: v_S = -Q G Q with G the conic gradient as a symmetric matrix
    const T g00 = v_conic.a, g01 = T(0.5) * v_conic.b, g11 = v_conic.c;
    const T qa = conic.a, qb = conic.b, qc = conic.c;
    // Q G
    const T m00 = qa * g00 + qb * g01, m01 = qa * g01 + qb * g11;
    const T m10 = qb * g00 + qc * g01, m11 = qb * g01 + qc * g11;
    // (Q G) Q
    const T s00 = m00 * qa + m01 * qb, s01 = m00 * qb + m01 * qc, s11 = m10 * qb + m11 * qc;
    Sym2<T> v = {-s00, -2 * s01, -s11};
    const Mask<T> comp_flows = (compensation > T(0)) & (v_compensation != T(0));
    if (any_lane(comp_flows)) {
        const T a = cov2d.a + T(EPS2D), b = cov2d.b, c = cov2d.c + T(EPS2D);
        const T det = a * c - b * b, det0 = cov2d.a * cov2d.c - b * b;
        const T v_r = v_compensation * T(0.5) / compensation;  // r = det0 / det
        const T rdet2 = T(1) / (det * det);
        v.a = select(comp_flows, v.a + v_r * (cov2d.c * det - det0 * c) * rdet2, v.a);
        v.c = select(comp_flows, v.c + v_r * (cov2d.a * det - det0 * a) * rdet2, v.c);
        v.b = select(comp_flows, v.b + v_r * (-2 * b * (det - det0)) * rdet2, v.b);
    }
    return v;
}

// Screen half-extent of the ellipse where opacity * exp(-d^T conic d / 2) >= 1/255:
// d^T Sigma^-1 d <= 2 ln(255 o); the box half-widths are sqrt(level * Sigma_ii).
// Returns false if the Gaussian can never reach alpha 1/255.
template <typename T>
SPLAT_HD Mask<T> screen_extent(const Sym2<T>& cov2d, T opacity, Vec2<T>& extent) {
    const T level = 2 * sigma_limit(opacity);
    extent.x = s_sqrt(level * (cov2d.a + T(EPS2D)));
    extent.y = s_sqrt(level * (cov2d.c + T(EPS2D)));
    return level > T(0);
}

}  // namespace splat
