// Projection and SH colour of every (camera, Gaussian), and its backward.
// The math is splat/gaussian.h (shared with the CPU backend); this file only
// maps threads to Gaussians.
#include "kernels.h"

namespace splat {
namespace gpu {

namespace {

constexpr int BLOCK = 256;

template <typename T> __device__ GaussianIn<T> gaussian_in(const GaussianArrays<T>& g, int64_t i) {
    return {g.means + 3 * i, g.log_scales + 3 * i, g.quats + 4 * i, g.logits[i], g.sh + int64_t(3) * g.K_sh * i};
}

// One thread per (camera, Gaussian); culled entries get zeros and radius 0
// (mean2d is kept where the Gaussian is inside the depth range, as the reference).
template <typename T>
__global__ void project_forward_kernel(GaussianArrays<T> g, const CameraParams<T>* __restrict__ cams, int C,
                                       int sh_degree, bool antialiased, ProjectedArrays<T> out) {
    const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= int64_t(C) * g.N) return;
    const int c = int(idx / g.N);
    const int64_t i = idx - int64_t(c) * g.N;
    const CameraParams<T> cam = cams[c];
    const Projected<T> p = project_gaussian(gaussian_in(g, i), cam, sh_degree, antialiased);
    store_projected(p, idx, out.means2d, out.conics, out.opacities, out.colors, out.depths, out.extents, out.radii);
}

// Threads per block of the backward: its SH gradients are staged in shared
// memory, SH_ROW values per Gaussian (double: 64 x 49 x 8 bytes = 25 KB).
constexpr int BWD_BLOCK = 64;
constexpr int SH_ROW = 49;  // 48 values (16 rows of 3) + 1: an odd stride, no bank conflicts

// One thread per Gaussian, looping over the cameras in order, so the sum over
// cameras is the same on every run and needs no atomics. Each thread sums its
// SH gradients into its own row of shared memory; the block then writes all
// its rows at once, consecutive threads to consecutive addresses (written
// straight from each thread, 192-byte strided stores were the kernel's cost).
// DEG, the SH degree, is a template argument: the SH loops unroll and their
// arrays stay in registers.
template <typename T, int DEG>
__global__ void __launch_bounds__(BWD_BLOCK)
    project_backward_kernel(GaussianArrays<T> g, const CameraParams<T>* __restrict__ cams, int C,
                            bool antialiased, const int32_t* __restrict__ radii, const T* __restrict__ v_means2d,
                            const T* __restrict__ v_conics, const T* __restrict__ v_opacities,
                            const T* __restrict__ v_colors, const T* __restrict__ v_depths, T* v_means,
                            T* v_log_scales, T* v_quats, T* v_logits, T* v_sh) {
    __shared__ T s_sh[BWD_BLOCK * SH_ROW];
    const int64_t first = int64_t(blockIdx.x) * BWD_BLOCK;
    const int64_t i = first + threadIdx.x;
    const int n_sh = 3 * g.K_sh;
    constexpr int sh_degree = DEG, n_used = 3 * (DEG + 1) * (DEG + 1);
    T* row = s_sh + threadIdx.x * SH_ROW;
    for (int k = 0; k < n_sh; ++k) row[k] = T(0);
    if (i < g.N) {
        const GaussianIn<T> gi = gaussian_in(g, i);
        T acc_mean[3] = {0, 0, 0}, acc_ls[3] = {0, 0, 0}, acc_q[4] = {0, 0, 0, 0}, acc_logit = 0;
        for (int c = 0; c < C; ++c) {
            const CameraParams<T> cam = cams[c];
            const T* m = gi.mean;
            const T z = cam.R.m[2][0] * m[0] + cam.R.m[2][1] * m[1] + cam.R.m[2][2] * m[2] + cam.t.z;
            if (!(z > cam.near && z < cam.far)) continue;  // outside the depth range nothing flows back
            const int64_t idx = int64_t(c) * g.N + i;
            GaussianGrad<T> out = {};
            out.sh = row;  // added to for visible Gaussians only
            out.sh_accumulate = true;
            project_gaussian_vjp(gi, cam, sh_degree, antialiased, radii[idx] > 0,
                                 Vec2<T>{v_means2d[2 * idx], v_means2d[2 * idx + 1]},
                                 Sym2<T>{v_conics[3 * idx], v_conics[3 * idx + 1], v_conics[3 * idx + 2]},
                                 v_opacities[idx], Vec3<T>{v_colors[3 * idx], v_colors[3 * idx + 1], v_colors[3 * idx + 2]},
                                 v_depths[idx], out);
            for (int k = 0; k < 3; ++k) acc_mean[k] += out.mean[k], acc_ls[k] += out.log_scale[k];
            for (int k = 0; k < 4; ++k) acc_q[k] += out.quat[k];
            acc_logit += out.logit;
        }
        for (int k = 0; k < 3; ++k) v_means[3 * i + k] = acc_mean[k], v_log_scales[3 * i + k] = acc_ls[k];
        for (int k = 0; k < 4; ++k) v_quats[4 * i + k] = acc_q[k];
        v_logits[i] = acc_logit;
    }
    __syncthreads();
    // rows [first, first + rows) of v_sh [N, n_sh] are one contiguous range
    const int rows = int(g.N - first < BWD_BLOCK ? g.N - first : BWD_BLOCK);
    T* dst = v_sh + first * n_sh;
    for (int e = threadIdx.x; e < rows * n_sh; e += BWD_BLOCK) {
        const int r = e / n_sh, k = e - r * n_sh;
        dst[e] = k < n_used ? s_sh[r * SH_ROW + k] : T(0);
    }
}

int blocks_for(int64_t n) { return int((n + BLOCK - 1) / BLOCK); }

}  // namespace

template <typename T>
void project_forward(const GaussianArrays<T>& g, const CameraParams<T>* cams, int C, int sh_degree, bool antialiased,
                     const ProjectedArrays<T>& out, cudaStream_t stream) {
    const int64_t n = int64_t(C) * g.N;
    if (n == 0) return;
    project_forward_kernel<T><<<blocks_for(n), BLOCK, 0, stream>>>(g, cams, C, sh_degree, antialiased, out);
}

template <typename T>
void project_backward(const GaussianArrays<T>& g, const CameraParams<T>* cams, int C, int sh_degree, bool antialiased,
                      const int32_t* radii, const T* v_means2d, const T* v_conics, const T* v_opacities,
                      const T* v_colors, const T* v_depths, T* v_means, T* v_log_scales, T* v_quats, T* v_logits,
                      T* v_sh, cudaStream_t stream) {
    if (g.N == 0) return;
    const dim3 blocks(unsigned((g.N + BWD_BLOCK - 1) / BWD_BLOCK));
#define SPLAT_PROJECT_BWD(DEG)                                                                                      \
    project_backward_kernel<T, DEG><<<blocks, BWD_BLOCK, 0, stream>>>(g, cams, C, antialiased, radii, v_means2d,    \
                                                                      v_conics, v_opacities, v_colors, v_depths,    \
                                                                      v_means, v_log_scales, v_quats, v_logits, v_sh)
    switch (sh_degree) {
        case 0: SPLAT_PROJECT_BWD(0); break;
        case 1: SPLAT_PROJECT_BWD(1); break;
        case 2: SPLAT_PROJECT_BWD(2); break;
        default: SPLAT_PROJECT_BWD(3); break;  // the glue checks 0 <= degree <= 3
    }
#undef SPLAT_PROJECT_BWD
}

const char* last_error() {
    const cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

#define SPLAT_INSTANTIATE(T)                                                                                          \
    template void project_forward<T>(const GaussianArrays<T>&, const CameraParams<T>*, int, int, bool,               \
                                     const ProjectedArrays<T>&, cudaStream_t);                                        \
    template void project_backward<T>(const GaussianArrays<T>&, const CameraParams<T>*, int, int, bool,              \
                                      const int32_t*, const T*, const T*, const T*, const T*, const T*, T*, T*, T*,   \
                                      T*, T*, cudaStream_t);

SPLAT_INSTANTIATE(float)
SPLAT_INSTANTIATE(double)

}  // namespace gpu
}  // namespace splat
