// Launchers of the CUDA rasterizer: raw device pointers and a stream, no torch.
// C cameras of one image size render N Gaussians; per-camera arrays are
// [C, N, ...] (camera-major), per-pixel arrays [C, H, W, ...].
//
// Pipeline: project_forward -> count_tiles -> exclusive_scan -> emit_pairs ->
// sort_pairs -> tile_ranges -> blend_forward; backward: blend_backward ->
// project_backward. The glue (cuda/glue/*.cpp) allocates every buffer.
#pragma once

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "splat/gaussian.h"

namespace splat {
namespace gpu {

// Fixed-point scale of the contribution sums: unsigned 64-bit integer atomics
// add associatively, so the sums are the same on every run (float atomics are
// not). 2^36 leaves 2^28 pixels of headroom and 1.5e-11 rounding per term.
constexpr double CONTRIB_SCALE = 68719476736.0;  // 2^36

template <typename T> struct GaussianArrays {
    const T *means, *log_scales, *quats, *logits, *sh;  // [N,3] [N,3] [N,4] [N] [N,K_sh,3]
    int64_t N;
    int K_sh;
};

template <typename T> struct ProjectedArrays {  // [C, N, ...]
    T *means2d, *conics, *opacities, *colors, *depths, *extents;
    int32_t* radii;
};

template <typename T> struct ConstProjected {
    const T *means2d, *conics, *opacities, *colors, *depths, *extents;
    const int32_t* radii;
};

template <typename T>
void project_forward(const GaussianArrays<T>& g, const CameraParams<T>* cams, int C, int sh_degree, bool antialiased,
                     const ProjectedArrays<T>& out, cudaStream_t stream);

// Gradients of the [C, N, ...] projected arrays -> gradients of the Gaussians
// (summed over cameras in camera order: deterministic).
template <typename T>
void project_backward(const GaussianArrays<T>& g, const CameraParams<T>* cams, int C, int sh_degree, bool antialiased,
                      const int32_t* radii, const T* v_means2d, const T* v_conics, const T* v_opacities,
                      const T* v_colors, const T* v_depths, T* v_means, T* v_log_scales, T* v_quats, T* v_logits,
                      T* v_sh, cudaStream_t stream);

// Number of tiles each (camera, Gaussian) touches: its screen box, each tile
// tested against the ellipse. counts [C * N].
template <typename T>
void count_tiles(const ConstProjected<T>& p, int64_t CN, int width, int height, int32_t* counts, cudaStream_t stream);

// offsets = exclusive prefix sum of counts (int64). workspace_bytes first.
size_t scan_workspace_bytes(int64_t n);
void exclusive_scan(const int32_t* counts, int64_t* offsets, int64_t n, void* workspace, size_t bytes, cudaStream_t stream);

// One key per (tile, Gaussian) pair: (camera * tiles + tile) << 32 | float depth
// bits (depths are positive, so the bits order as the values); the value is
// camera * N + Gaussian. Written at offsets[i].
template <typename T>
void emit_pairs(const ConstProjected<T>& p, int64_t N, int64_t CN, int width, int height, const int64_t* offsets,
                uint64_t* keys, int32_t* values, cudaStream_t stream);

// Bits the sort must look at: 32 depth bits plus as many as the tile index needs.
int sort_end_bit(int64_t total_tiles);
size_t sort_workspace_bytes(int64_t pairs, int end_bit);
// Stable radix sort of the pairs (equal depths keep the Gaussian order).
void sort_pairs(const uint64_t* keys_in, uint64_t* keys_out, const int32_t* values_in, int32_t* values_out, int64_t pairs,
                int end_bit, void* workspace, size_t bytes, cudaStream_t stream);

// ranges [total_tiles, 2] (zeroed by the caller): each tile's [start, end) in the sorted pairs.
void tile_ranges(const uint64_t* sorted_keys, int64_t pairs, int32_t* ranges, cudaStream_t stream);

// Front-to-back blend, one 16x16 block per tile. Writes color [C,H,W,3] (the
// blend plus T * background [C,3]), alpha, depth (expected depth; both as
// pixel_finish), trans_final, depth_sum [C,H,W], last [C,H,W] (entries of the
// tile's list up to the last Gaussian that counted). If contrib is not null,
// adds sum(alpha T) per (camera, Gaussian) into contrib [C*N] in fixed point
// (zeroed by the caller); if labels [C,H,W] are given, also into
// label_contrib [C, L, N] by the pixel's label. median_depth [C,H,W]: the depth of the
// Gaussian at which T falls to 0.5 (0 where it never does).
template <typename T>
void blend_forward(const ConstProjected<T>& p, int C, int64_t N, int width, int height, const int32_t* ranges,
                   const int32_t* ids, const T* background, T* color, T* alpha, T* depth, T* trans_final,
                   T* depth_sum, T* median_depth, int32_t* last, unsigned long long* contrib, const int64_t* labels, int num_labels,
                   unsigned long long* label_contrib, cudaStream_t stream);

// Back-to-front VJP of blend_forward, from the gradients of its colour, alpha
// and depth. Adds into v_grad [C, N, row] (zeroed by the caller), one packed
// row per (camera, Gaussian) in GRAD_* order; row = GRAD_ROW_ABS when
// `absgrad` (each pixel's |d loss / d mean2d| per component is added too),
// else GRAD_ROW. Gradients are summed over each warp before one atomic
// instruction per warp. The background's gradient (sum of T * v_color) is the caller's.
enum GradSlot { GRAD_MEAN2D = 0, GRAD_CONIC = 2, GRAD_OPACITY = 5, GRAD_COLOR = 6, GRAD_DEPTH = 9, GRAD_ABS = 10 };
constexpr int GRAD_ROW = 10, GRAD_ROW_ABS = 12;
template <typename T>
void blend_backward(const ConstProjected<T>& p, int C, int64_t N, int width, int height, const int32_t* ranges,
                    const int32_t* ids, const T* background, const T* trans_final, const T* depth_sum,
                    const int32_t* last, const T* v_color, const T* v_alpha, const T* v_depth, T* v_grad, bool absgrad,
                    cudaStream_t stream);

// Launch-error check: returns the last launch's error string, or null.
const char* last_error();

}  // namespace gpu
}  // namespace splat
