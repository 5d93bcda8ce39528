// Quaternion + scale -> 3D covariance, each next to its VJP.
#pragma once

#include "common.h"

namespace splat {

// Unit quaternion (w, x, y, z) -> rotation matrix (row-major).
template <typename T> SPLAT_HD Mat3<T> quat_to_rotmat(const Vec4<T>& q) {
    const T w = q.w, x = q.x, y = q.y, z = q.z;
    Mat3<T> R;
    R.m[0][0] = 1 - 2 * (y * y + z * z); R.m[0][1] = 2 * (x * y - w * z);     R.m[0][2] = 2 * (x * z + w * y);
    R.m[1][0] = 2 * (x * y + w * z);     R.m[1][1] = 1 - 2 * (x * x + z * z); R.m[1][2] = 2 * (y * z - w * x);
    R.m[2][0] = 2 * (x * z - w * y);     R.m[2][1] = 2 * (y * z + w * x);     R.m[2][2] = 1 - 2 * (x * x + y * y);
    return R;
}

// VJP of quat_to_rotmat at unit q: v_R -> v_q.
template <typename T> SPLAT_HD Vec4<T> quat_to_rotmat_vjp(const Vec4<T>& q, const Mat3<T>& v) {
    const T w = q.w, x = q.x, y = q.y, z = q.z;
    Vec4<T> g;
    g.w = 2 * (x * (v.m[2][1] - v.m[1][2]) + y * (v.m[0][2] - v.m[2][0]) + z * (v.m[1][0] - v.m[0][1]));
    g.x = 2 * (-2 * x * (v.m[1][1] + v.m[2][2]) + y * (v.m[1][0] + v.m[0][1]) + z * (v.m[2][0] + v.m[0][2]) + w * (v.m[2][1] - v.m[1][2]));
    g.y = 2 * (x * (v.m[1][0] + v.m[0][1]) - 2 * y * (v.m[0][0] + v.m[2][2]) + z * (v.m[2][1] + v.m[1][2]) + w * (v.m[0][2] - v.m[2][0]));
    g.z = 2 * (x * (v.m[2][0] + v.m[0][2]) + y * (v.m[2][1] + v.m[1][2]) - 2 * z * (v.m[0][0] + v.m[1][1]) + w * (v.m[1][0] - v.m[0][1]));
    return g;
}

// Quaternion of any length -> unit quaternion.
template <typename T> SPLAT_HD Vec4<T> quat_normalize(const Vec4<T>& q) {
    const T inv = T(1) / s_sqrt(q.w * q.w + q.x * q.x + q.y * q.y + q.z * q.z);
    return {q.w * inv, q.x * inv, q.y * inv, q.z * inv};
}

// VJP of quat_normalize: v_qn -> v_q.
template <typename T> SPLAT_HD Vec4<T> quat_normalize_vjp(const Vec4<T>& q, const Vec4<T>& v) {
    const T inv = T(1) / s_sqrt(q.w * q.w + q.x * q.x + q.y * q.y + q.z * q.z);
    const Vec4<T> n = {q.w * inv, q.x * inv, q.y * inv, q.z * inv};
    const T d = n.w * v.w + n.x * v.x + n.y * v.y + n.z * v.z;
    return {(v.w - n.w * d) * inv, (v.x - n.x * d) * inv, (v.y - n.y * d) * inv, (v.z - n.z * d) * inv};
}

// Covariance R S S^T R^T from an unnormalised quaternion and per-axis scales.
template <typename T> SPLAT_HD Mat3<T> quat_scale_to_covar(const Vec4<T>& q, const Vec3<T>& s) {
    const Mat3<T> R = quat_to_rotmat(quat_normalize(q));
    const T sc[3] = {s.x, s.y, s.z};
    Mat3<T> M;  // R S
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) M.m[i][j] = R.m[i][j] * sc[j];
    return matmul(M, transpose(M));
}

// VJP of quat_scale_to_covar: v_cov (3x3 gradient, any symmetry) -> v_q, v_s.
template <typename T>
SPLAT_HD void quat_scale_to_covar_vjp(const Vec4<T>& q, const Vec3<T>& s, const Mat3<T>& v_cov, Vec4<T>& v_q, Vec3<T>& v_s) {
    const Vec4<T> qn = quat_normalize(q);
    const Mat3<T> R = quat_to_rotmat(qn);
    const T sc[3] = {s.x, s.y, s.z};
    Mat3<T> M;
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) M.m[i][j] = R.m[i][j] * sc[j];
    // cov = M M^T  ->  v_M = (v_cov + v_cov^T) M
    Mat3<T> vsym;
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) vsym.m[i][j] = v_cov.m[i][j] + v_cov.m[j][i];
    const Mat3<T> v_M = matmul(vsym, M);
    Mat3<T> v_R;
    T vs[3] = {0, 0, 0};
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) {
            v_R.m[i][j] = v_M.m[i][j] * sc[j];
            vs[j] += v_M.m[i][j] * R.m[i][j];
        }
    v_s = {vs[0], vs[1], vs[2]};
    v_q = quat_normalize_vjp(q, quat_to_rotmat_vjp(qn, v_R));
}

}  // namespace splat
