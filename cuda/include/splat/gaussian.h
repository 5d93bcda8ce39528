// One Gaussian through the whole projection (covariance, EWA, opacity, SH
// colour, screen extent), and its VJP. Shared by the CPU and CUDA kernels:
// they only decide which thread runs which Gaussian.
#pragma once

#include "common.h"
#include "covariance.h"
#include "projection.h"
#include "sh.h"

namespace splat {

template <typename T> struct CameraParams {
    Mat3<T> R;   // world -> camera rotation
    Vec3<T> t;   // world -> camera translation
    Vec3<T> campos;  // camera centre in world coordinates (-R^T t)
    Intrinsics<T> K;
    T near, far;
};

// A camera from a row-major world-to-camera 4x4 ``viewmat`` and a 3x3 ``K`` in float64
// (what the glue of both backends receives), rounded once to T; the centre -R^T t is
// computed in T, like the reference.
template <typename T>
SPLAT_HD CameraParams<T> camera_params(const double* viewmat, const double* K, int width, int height, double near,
                                       double far) {
    CameraParams<T> c;
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) c.R.m[i][j] = T(viewmat[4 * i + j]);
    c.t = {T(viewmat[3]), T(viewmat[7]), T(viewmat[11])};
    const Vec3<T> rt = matTvec(c.R, c.t);
    c.campos = {-rt.x, -rt.y, -rt.z};
    c.K = {T(K[0]), T(K[4]), T(K[2]), T(K[5]), width, height};
    c.near = T(near);
    c.far = T(far);
    return c;
}

// Per-Gaussian inputs (pointers to row i of each [N, ...] array).
template <typename T> struct GaussianIn {
    const T* mean;       // [3]
    const T* log_scale;  // [3]
    const T* quat;       // [4] w, x, y, z
    T logit;             // opacity logit
    const T* sh;         // [K_sh * 3], channel innermost
};

// Per-Gaussian outputs of the projection. Where radius is 0 (culled) only
// mean2d (when in_depth) has a meaning.
template <typename T> struct Projected {
    Vec2<T> mean2d;
    Sym2<T> conic;
    T opacity;     // sigmoid(logit), times the compensation in antialiased mode
    Vec3<T> color; // clamped SH colour
    T depth;       // camera-space z
    Vec2<T> extent;
    T radius;      // ceil(max extent), a whole number >= 1; 0 = culled
    Mask<T> in_depth; // inside (near, far): mean2d is defined
};

// Writes projection p (one Gaussian, scalar T) as entry i of the per-Gaussian output
// arrays: zeros and radius 0 where culled; mean2d wherever the Gaussian is in the depth
// range, since densification reads its gradient. Both native projections store so.
template <typename T>
SPLAT_HD void store_projected(const Projected<T>& p, int64_t i, T* means2d, T* conics, T* opacities, T* colors,
                              T* depths, T* extents, int32_t* radii) {
    const bool vis = p.radius > 0, in_depth = p.in_depth;
    means2d[2 * i] = in_depth ? p.mean2d.x : T(0);
    means2d[2 * i + 1] = in_depth ? p.mean2d.y : T(0);
    conics[3 * i] = vis ? p.conic.a : T(0);
    conics[3 * i + 1] = vis ? p.conic.b : T(0);
    conics[3 * i + 2] = vis ? p.conic.c : T(0);
    opacities[i] = vis ? p.opacity : T(0);
    colors[3 * i] = vis ? p.color.x : T(0);
    colors[3 * i + 1] = vis ? p.color.y : T(0);
    colors[3 * i + 2] = vis ? p.color.z : T(0);
    depths[i] = vis ? p.depth : T(0);
    extents[2 * i] = vis ? p.extent.x : T(0);
    extents[2 * i + 1] = vis ? p.extent.y : T(0);
    radii[i] = vis ? int32_t(p.radius) : 0;
}

template <typename T> SPLAT_HD T sigmoid(T x) { return T(1) / (T(1) + s_exp(-x)); }

// Branch-free but for early exits when every lane is out (see Mask in common.h).
template <typename T>
SPLAT_HD Projected<T> project_gaussian(const GaussianIn<T>& g, const CameraParams<T>& cam, int sh_degree, bool antialiased) {
    Projected<T> out = {};
    const Vec3<T> p = {g.mean[0], g.mean[1], g.mean[2]};
    const Vec3<T> pc = {dot3({cam.R.m[0][0], cam.R.m[0][1], cam.R.m[0][2]}, p) + cam.t.x,
                        dot3({cam.R.m[1][0], cam.R.m[1][1], cam.R.m[1][2]}, p) + cam.t.y,
                        dot3({cam.R.m[2][0], cam.R.m[2][1], cam.R.m[2][2]}, p) + cam.t.z};
    out.in_depth = (pc.z > cam.near) & (pc.z < cam.far);
    if (!any_lane(out.in_depth)) return out;
    const Vec4<T> q = {g.quat[0], g.quat[1], g.quat[2], g.quat[3]};
    const Vec3<T> s = {s_exp(g.log_scale[0]), s_exp(g.log_scale[1]), s_exp(g.log_scale[2])};
    const Mat3<T> cov_c = covar_world_to_cam(cam.R, quat_scale_to_covar(q, s));
    Sym2<T> cov2d;
    persp_proj(pc, cov_c, cam.K, out.mean2d, cov2d);
    T comp;
    Mask<T> kept = out.in_depth & blur_and_invert(cov2d, out.conic, comp);
    if (!any_lane(kept)) return out;
    out.opacity = antialiased ? sigmoid(g.logit) * comp : sigmoid(g.logit);
    kept = kept & screen_extent(cov2d, out.opacity, out.extent);
    const T u = out.mean2d.x, v = out.mean2d.y;
    kept = kept & (u + out.extent.x > T(0)) & (u - out.extent.x < T(cam.K.width)) & (v + out.extent.y > T(0)) &
           (v - out.extent.y < T(cam.K.height));
    if (!any_lane(kept)) return out;
    out.depth = pc.z;
    Vec3<T> raw;
    out.color = sh_to_color(sh_degree, g.sh, p, cam.campos, raw);
    out.radius = select(kept, s_max(s_ceil(s_max(out.extent.x, out.extent.y)), T(1)), T(0));
    return out;
}

// Gradients of one Gaussian.
template <typename T> struct GaussianGrad {
    T mean[3], log_scale[3], quat[4], logit;
    T* sh;  // [K_sh * 3] written for the first (degree+1)^2 rows, caller zeroes the rest
    bool sh_accumulate = false;  // add into sh instead of writing (a sum over cameras in place)
};

// VJP of project_gaussian. `visible` says whether the forward pass kept it
// (radius > 0); only then do conic, opacity, colour and depth carry gradient.
// For a vector of Gaussians out.sh is written for every lane once any lane is
// visible: the callers keep the rows of visible lanes only.
template <typename T>
SPLAT_HD void project_gaussian_vjp(const GaussianIn<T>& g, const CameraParams<T>& cam, int sh_degree, bool antialiased,
                                   Mask<T> visible, const Vec2<T>& v_mean2d, const Sym2<T>& v_conic, T v_opacity,
                                   const Vec3<T>& v_color, T v_depth, GaussianGrad<T>& out) {
    const Vec3<T> p = {g.mean[0], g.mean[1], g.mean[2]};
    const Vec3<T> pc = {dot3({cam.R.m[0][0], cam.R.m[0][1], cam.R.m[0][2]}, p) + cam.t.x,
                        dot3({cam.R.m[1][0], cam.R.m[1][1], cam.R.m[1][2]}, p) + cam.t.y,
                        dot3({cam.R.m[2][0], cam.R.m[2][1], cam.R.m[2][2]}, p) + cam.t.z};
    const Vec4<T> q = {g.quat[0], g.quat[1], g.quat[2], g.quat[3]};
    const Vec3<T> s = {s_exp(g.log_scale[0]), s_exp(g.log_scale[1]), s_exp(g.log_scale[2])};
    const Mat3<T> cov = quat_scale_to_covar(q, s);
    const Mat3<T> cov_c = covar_world_to_cam(cam.R, cov);
    Vec2<T> mean2d;
    Sym2<T> cov2d, conic = {0, 0, 0};
    T comp = 0;
    persp_proj(pc, cov_c, cam.K, mean2d, cov2d);
    Sym2<T> v_cov2d = {0, 0, 0};
    Vec3<T> v_pc = {0, 0, select(visible, v_depth, T(0))};
    Vec3<T> v_p = {0, 0, 0};
    out.logit = 0;
    if (any_lane(visible)) {
        // computed for every lane, kept where visible (elsewhere the conic may not exist)
        blur_and_invert(cov2d, conic, comp);
        const T sig = sigmoid(g.logit);
        T v_comp = 0;
        if (antialiased) {
            out.logit = v_opacity * comp * sig * (1 - sig);
            v_comp = v_opacity * sig;
        } else {
            out.logit = v_opacity * sig * (1 - sig);
        }
        out.logit = select(visible, out.logit, T(0));
        const Sym2<T> v_cov2d_all = blur_and_invert_vjp(cov2d, conic, comp, v_conic, v_comp);
        v_cov2d = {select(visible, v_cov2d_all.a, T(0)), select(visible, v_cov2d_all.b, T(0)),
                   select(visible, v_cov2d_all.c, T(0))};
        sh_to_color_vjp(sh_degree, g.sh, p, cam.campos, v_color, out.sh, v_p, out.sh_accumulate);
        v_p = {select(visible, v_p.x, T(0)), select(visible, v_p.y, T(0)), select(visible, v_p.z, T(0))};
    }
    Mat3<T> v_cov_c = mat3_zero<T>();
    persp_proj_vjp(pc, cov_c, cam.K, v_mean2d, v_cov2d, v_pc, v_cov_c);
    const Mat3<T> v_cov = covar_world_to_cam_vjp(cam.R, v_cov_c);
    Vec4<T> v_q;
    Vec3<T> v_s;
    quat_scale_to_covar_vjp(q, s, v_cov, v_q, v_s);
    const Vec3<T> v_from_cam = matTvec(cam.R, v_pc);
    out.mean[0] = v_p.x + v_from_cam.x;
    out.mean[1] = v_p.y + v_from_cam.y;
    out.mean[2] = v_p.z + v_from_cam.z;
    out.log_scale[0] = v_s.x * s.x;
    out.log_scale[1] = v_s.y * s.y;
    out.log_scale[2] = v_s.z * s.z;
    out.quat[0] = v_q.w; out.quat[1] = v_q.x; out.quat[2] = v_q.y; out.quat[3] = v_q.z;
}

}  // namespace splat
