// CPU rasterizer over raw pointers (OpenMP over Gaussians and tiles).
// Deterministic: every sum has a fixed order, no atomics on floats.
#pragma once

#include <cstdint>
#include <vector>

#include "splat/gaussian.h"

namespace splat {
namespace cpu {

// Projection of N Gaussians into one camera. Outputs are [N, ...] arrays;
// culled Gaussians get radius 0 and zeros (mean2d is kept when in depth range).
template <typename T>
void project_forward(int64_t N, const T* means, const T* log_scales, const T* quats, const T* logits, const T* sh,
                     int K_sh, int sh_degree, bool antialiased, const CameraParams<T>& cam, T* means2d, T* conics,
                     T* opacities, T* colors, T* depths, T* extents, int32_t* radii);

template <typename T>
void project_backward(int64_t N, const T* means, const T* log_scales, const T* quats, const T* logits, const T* sh,
                      int K_sh, int sh_degree, bool antialiased, const CameraParams<T>& cam, const int32_t* radii,
                      const T* v_means2d, const T* v_conics, const T* v_opacities, const T* v_colors, const T* v_depths,
                      T* v_means, T* v_log_scales, T* v_quats, T* v_logits, T* v_sh);

// Tile lists and their inverse. Gaussians with radius > 0 are sorted by (depth,
// index) and appended to every tile of their screen box where their ellipse
// (alpha >= 1/255, widened against rounding) reaches a pixel row of the box.
struct TileBins {
    std::vector<int32_t> offsets;    // [tiles + 1]: the pairs of tile t are [offsets[t], offsets[t+1])
    std::vector<int32_t> ids;        // [pairs]: the Gaussian of each pair (tile-major, front to back)
    std::vector<int32_t> masks;      // [pairs]: the chunks (4 x 2 pixels) the pair's Gaussian reaches (bits)
    std::vector<int32_t> order;      // [M]: visible Gaussians front to back
    std::vector<int32_t> g_offsets;  // [M + 1]: the pairs of order[m] are g_pairs[g_offsets[m] .. g_offsets[m+1])
    std::vector<int32_t> g_pairs;    // [pairs]
};

// The same, read-only, over raw arrays (what the backward pass gets back).
struct BinsView {
    const int32_t *offsets, *ids, *masks, *order, *g_offsets, *g_pairs;
    int64_t num_tiles, pairs, M;
};

inline BinsView view(const TileBins& b) {
    return {b.offsets.data(), b.ids.data(), b.masks.data(), b.order.data(), b.g_offsets.data(), b.g_pairs.data(),
            int64_t(b.offsets.size()) - 1, int64_t(b.ids.size()), int64_t(b.order.size())};
}

template <typename T>
void bin_gaussians(int64_t N, const T* means2d, const T* conics, const T* opacities, const T* extents, const T* depths,
                   const int32_t* radii, int width,
                   int height, TileBins& bins);

// Front-to-back blend. Writes color [H*W*3] (the blend plus T * background [3]),
// alpha [H*W], depth [H*W] (expected depth, pixel_finish), trans_final [H*W]
// (the T left, kept apart from alpha for the backward pass), depth_sum [H*W],
// last [H*W] (list entries up to the last included Gaussian), contributions [N]
// (sum of alpha*T), and label_contrib [L*N] if labels != null.
template <typename T>
void blend_forward(int64_t N, const T* means2d, const T* conics, const T* opacities, const T* colors, const T* depths,
                   const BinsView& bins, int width, int height, const T* background,
                   const int64_t* labels, int num_labels, T* color, T* alpha, T* depth, T* trans_final, T* depth_sum,
                   int32_t* last, T* contributions, T* label_contrib,
                   T* median_depth);  // [H, W]: depth of the Gaussian where T falls to 0.5 (0: never)

// Back-to-front VJP of blend_forward, from the gradients of its colour, alpha
// and depth. Gradients per Gaussian are written into v_* arrays of size N
// (zeroed here); the background's gradient (sum of T * v_color) is the caller's.
template <typename T>
void blend_backward(int64_t N, const T* means2d, const T* conics, const T* opacities, const T* colors, const T* depths,
                    const BinsView& bins, int width, int height, const T* background,
                    const T* trans_final, const T* depth_sum, const int32_t* last, const T* v_color, const T* v_alpha,
                    const T* v_depth, T* v_means2d, T* v_conics, T* v_opacities, T* v_colors, T* v_depths,
                    T* v_abs);  // v_abs [N, 2]: sum over pixels of |d loss / d mean2d| (absgrad), or null

}  // namespace cpu
}  // namespace splat
