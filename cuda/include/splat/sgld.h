// The SGLD position noise of 3DGS-MCMC for one Gaussian (no gradient: it is not a loss term).
// Shared by the CPU training op; splat/train/mcmc.py (inject_noise) is the reference.
//   noise = Sigma eps * gate * scale,  Sigma = R S^2 R^T,  gate = sigmoid(-100 (opacity - min_opacity))
#pragma once

#include "common.h"
#include "covariance.h"

namespace splat {

template <typename T>
SPLAT_HD Vec3<T> sgld_noise(const Vec4<T>& quat, const Vec3<T>& log_scale, T opacity_logit, const Vec3<T>& eps,
                            T min_opacity, T scale) {
    const Mat3<T> R = quat_to_rotmat(quat_normalize(quat));
    const T s[3] = {s_exp(log_scale.x), s_exp(log_scale.y), s_exp(log_scale.z)};
    const T e[3] = {eps.x, eps.y, eps.z};
    T local[3], out[3];
    for (int i = 0; i < 3; ++i) {  // S^2 R^T eps
        local[i] = (R.m[0][i] * e[0] + R.m[1][i] * e[1] + R.m[2][i] * e[2]) * s[i] * s[i];
    }
    for (int i = 0; i < 3; ++i) out[i] = R.m[i][0] * local[0] + R.m[i][1] * local[1] + R.m[i][2] * local[2];
    const T opacity = T(1) / (T(1) + s_exp(-opacity_logit));
    const T gate = T(1) / (T(1) + s_exp(T(100) * (opacity - min_opacity)));
    const T k = gate * scale;
    return Vec3<T>{out[0] * k, out[1] * k, out[2] * k};
}

}  // namespace splat
