// CPU projection and its VJP, eight Gaussians at a time on lanes (float) or one at
// a time (double, or SH past what the lanes hold). The math is in cuda/include/splat.
#include "rasterize_cpu.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <type_traits>

#include "lanes.h"
#include "splat/blend.h"
#include "splat/tiles.h"

namespace splat {
namespace cpu {

namespace {

template <typename T> GaussianIn<T> gaussian_in(int64_t i, const T* means, const T* log_scales, const T* quats, const T* logits,
                                               const T* sh, int K_sh) {
    return {means + 3 * i, log_scales + 3 * i, quats + 4 * i, logits[i], sh + int64_t(3) * K_sh * i};
}

// Lane l of a projection of eight Gaussians, as the projection of that one Gaussian.
inline Projected<float> lane_of(const Projected<F8>& p, int l) {
    Projected<float> q;
    q.mean2d = {p.mean2d.x[l], p.mean2d.y[l]};
    q.conic = {p.conic.a[l], p.conic.b[l], p.conic.c[l]};
    q.opacity = p.opacity[l];
    q.color = {p.color.x[l], p.color.y[l], p.color.z[l]};
    q.depth = p.depth[l];
    q.extent = {p.extent.x[l], p.extent.y[l]};
    q.radius = p.radius[l];
    q.in_depth = lanes::lane(p.in_depth, l);
    return q;
}

// Eight Gaussians, i0 .. i0 + 7, as lanes (float only): row values of each
// [N, width] array transposed into `width` F8s. Lanes past N repeat the last
// Gaussian; their results are not stored.
constexpr int MAX_SH_VALUES = 48;  // degree 3: 16 rows of 3

void gather_lanes(const float* src, int64_t stride, int width, int64_t i0, int64_t N, F8* dst) {
    for (int l = 0; l < LANES; ++l) {
        const float* row = src + stride * std::min(i0 + l, N - 1);
        for (int k = 0; k < width; ++k) dst[k].set(l, row[k]);
    }
}

struct GaussianLanes {
    F8 mean[3], log_scale[3], quat[4], logit, sh[MAX_SH_VALUES];

    GaussianLanes(int64_t i0, int64_t N, const float* means, const float* log_scales, const float* quats,
                  const float* logits, const float* sh, int K_sh, int sh_degree) {
        gather_lanes(means, 3, 3, i0, N, mean);
        gather_lanes(log_scales, 3, 3, i0, N, log_scale);
        gather_lanes(quats, 4, 4, i0, N, quat);
        gather_lanes(logits, 1, 1, i0, N, &logit);
        gather_lanes(sh, int64_t(3) * K_sh, 3 * (sh_degree + 1) * (sh_degree + 1), i0, N, this->sh);
    }
    GaussianIn<F8> in() const { return {mean, log_scale, quat, logit, sh}; }
};

CameraParams<F8> camera_lanes(const CameraParams<float>& c) {
    CameraParams<F8> r;
    for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) r.R.m[i][j] = c.R.m[i][j];
    r.t = {c.t.x, c.t.y, c.t.z};
    r.campos = {c.campos.x, c.campos.y, c.campos.z};
    r.K = {c.K.fx, c.K.fy, c.K.cx, c.K.cy, c.K.width, c.K.height};
    r.near = c.near;
    r.far = c.far;
    return r;
}

bool lanes_fit(int sh_degree) { return 3 * (sh_degree + 1) * (sh_degree + 1) <= MAX_SH_VALUES; }

}  // namespace

template <typename T>
void project_forward(int64_t N, const T* means, const T* log_scales, const T* quats, const T* logits, const T* sh, int K_sh,
                     int sh_degree, bool antialiased, const CameraParams<T>& cam, T* means2d, T* conics, T* opacities,
                     T* colors, T* depths, T* extents, int32_t* radii) {
    if constexpr (std::is_same<T, float>::value) {
        if (lanes_fit(sh_degree)) {  // eight Gaussians at a time
            const CameraParams<F8> cam8 = camera_lanes(cam);
#pragma omp parallel for schedule(dynamic, 64)
            for (int64_t i0 = 0; i0 < N; i0 += LANES) {
                const GaussianLanes G(i0, N, means, log_scales, quats, logits, sh, K_sh, sh_degree);
                const Projected<F8> p = project_gaussian(G.in(), cam8, sh_degree, antialiased);
                for (int l = 0; l < LANES && i0 + l < N; ++l)
                    store_projected(lane_of(p, l), i0 + l, means2d, conics, opacities, colors, depths, extents, radii);
            }
            return;
        }
    }
#pragma omp parallel for schedule(dynamic, 512)
    for (int64_t i = 0; i < N; ++i) {
        const Projected<T> p = project_gaussian(gaussian_in(i, means, log_scales, quats, logits, sh, K_sh), cam, sh_degree, antialiased);
        store_projected(p, i, means2d, conics, opacities, colors, depths, extents, radii);
    }
}

namespace {

// Eight Gaussians' backward (float): the shared VJP on lanes, then each lane's
// gradients stored as the scalar loop stores them.
void project_backward_lanes(int64_t N, const float* means, const float* log_scales, const float* quats,
                            const float* logits, const float* sh, int K_sh, int sh_degree, bool antialiased,
                            const CameraParams<float>& cam, const int32_t* radii, const float* v_means2d,
                            const float* v_conics, const float* v_opacities, const float* v_colors,
                            const float* v_depths, float* v_means, float* v_log_scales, float* v_quats,
                            float* v_logits, float* v_sh) {
    const CameraParams<F8> cam8 = camera_lanes(cam);
    const int n_used = 3 * (sh_degree + 1) * (sh_degree + 1);
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t i0 = 0; i0 < N; i0 += LANES) {
        const GaussianLanes G(i0, N, means, log_scales, quats, logits, sh, K_sh, sh_degree);
        const F8* m = G.mean;
        // the depth test as the scalar loop below writes it
        const F8 z = cam8.R.m[2][0] * m[0] + cam8.R.m[2][1] * m[1] + cam8.R.m[2][2] * m[2] + cam8.t.z;
        const M8 in_depth = (z > cam8.near) & (z < cam8.far);
        M8 visible = {};
        for (int l = 0; l < LANES; ++l) visible.v[l] = radii[std::min(i0 + l, N - 1)] > 0 ? -1 : 0;
        F8 vm[2] = {}, vc[3] = {}, vo = {}, vcol[3] = {}, vd = {}, sh_grad[MAX_SH_VALUES];
        GaussianGrad<F8> out = {};
        out.sh = sh_grad;
        if (any_lane(in_depth)) {
            gather_lanes(v_means2d, 2, 2, i0, N, vm);
            gather_lanes(v_conics, 3, 3, i0, N, vc);
            gather_lanes(v_opacities, 1, 1, i0, N, &vo);
            gather_lanes(v_colors, 3, 3, i0, N, vcol);
            gather_lanes(v_depths, 1, 1, i0, N, &vd);
            project_gaussian_vjp(G.in(), cam8, sh_degree, antialiased, visible, Vec2<F8>{vm[0], vm[1]},
                                 Sym2<F8>{vc[0], vc[1], vc[2]}, vo, Vec3<F8>{vcol[0], vcol[1], vcol[2]}, vd, out);
        }
        for (int l = 0; l < LANES && i0 + l < N; ++l) {
            const int64_t i = i0 + l;
            const bool in = lanes::lane(in_depth, l);  // outside the depth range nothing flows back
            for (int k = 0; k < 3; ++k) {
                v_means[3 * i + k] = in ? out.mean[k][l] : 0.0f;
                v_log_scales[3 * i + k] = in ? out.log_scale[k][l] : 0.0f;
            }
            for (int k = 0; k < 4; ++k) v_quats[4 * i + k] = in ? out.quat[k][l] : 0.0f;
            v_logits[i] = in ? out.logit[l] : 0.0f;
            // SH rows carry gradient only for visible Gaussians, the first (degree + 1)^2 of them
            float* row = v_sh + int64_t(3) * K_sh * i;
            const int written = in && radii[i] > 0 ? n_used : 0;
            for (int k = 0; k < written; ++k) row[k] = sh_grad[k][l];
            std::memset(row + written, 0, sizeof(float) * (3 * K_sh - written));
        }
    }
}

}  // namespace

template <typename T>
void project_backward(int64_t N, const T* means, const T* log_scales, const T* quats, const T* logits, const T* sh, int K_sh,
                      int sh_degree, bool antialiased, const CameraParams<T>& cam, const int32_t* radii, const T* v_means2d,
                      const T* v_conics, const T* v_opacities, const T* v_colors, const T* v_depths, T* v_means,
                      T* v_log_scales, T* v_quats, T* v_logits, T* v_sh) {
    if constexpr (std::is_same<T, float>::value) {
        if (lanes_fit(sh_degree))
            return project_backward_lanes(N, means, log_scales, quats, logits, sh, K_sh, sh_degree, antialiased, cam,
                                          radii, v_means2d, v_conics, v_opacities, v_colors, v_depths, v_means,
                                          v_log_scales, v_quats, v_logits, v_sh);
    }
#pragma omp parallel for schedule(dynamic, 512)
    for (int64_t i = 0; i < N; ++i) {
        GaussianGrad<T> out = {};
        out.sh = v_sh + int64_t(3) * K_sh * i;
        const GaussianIn<T> g = gaussian_in(i, means, log_scales, quats, logits, sh, K_sh);
        const T* m = g.mean;
        const T z = cam.R.m[2][0] * m[0] + cam.R.m[2][1] * m[1] + cam.R.m[2][2] * m[2] + cam.t.z;
        const bool in_depth = z > cam.near && z < cam.far;
        // the VJP writes the first (degree + 1)^2 SH rows of a visible Gaussian; zero the rest
        const int sh_written = in_depth && radii[i] > 0 ? 3 * (sh_degree + 1) * (sh_degree + 1) : 0;
        std::memset(out.sh + sh_written, 0, sizeof(T) * (3 * K_sh - sh_written));
        if (in_depth) {
            project_gaussian_vjp(g, cam, sh_degree, antialiased, radii[i] > 0,
                                 Vec2<T>{v_means2d[2 * i], v_means2d[2 * i + 1]},
                                 Sym2<T>{v_conics[3 * i], v_conics[3 * i + 1], v_conics[3 * i + 2]}, v_opacities[i],
                                 Vec3<T>{v_colors[3 * i], v_colors[3 * i + 1], v_colors[3 * i + 2]}, v_depths[i], out);
        }
        for (int k = 0; k < 3; ++k) v_means[3 * i + k] = out.mean[k], v_log_scales[3 * i + k] = out.log_scale[k];
        for (int k = 0; k < 4; ++k) v_quats[4 * i + k] = out.quat[k];
        v_logits[i] = out.logit;
    }
}

template void project_forward<float>(int64_t, const float*, const float*, const float*, const float*, const float*, int, int,
                                     bool, const CameraParams<float>&, float*, float*, float*, float*, float*, float*, int32_t*);
template void project_forward<double>(int64_t, const double*, const double*, const double*, const double*, const double*, int,
                                      int, bool, const CameraParams<double>&, double*, double*, double*, double*, double*,
                                      double*, int32_t*);
template void project_backward<float>(int64_t, const float*, const float*, const float*, const float*, const float*, int, int,
                                      bool, const CameraParams<float>&, const int32_t*, const float*, const float*,
                                      const float*, const float*, const float*, float*, float*, float*, float*, float*);
template void project_backward<double>(int64_t, const double*, const double*, const double*, const double*, const double*,
                                       int, int, bool, const CameraParams<double>&, const int32_t*, const double*,
                                       const double*, const double*, const double*, const double*, double*, double*,
                                       double*, double*, double*);

}  // namespace cpu
}  // namespace splat
