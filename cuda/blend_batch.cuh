// What the blend kernels share: a batch of a tile's Gaussians in shared memory
// and a deterministic warp sum. Device code only; no torch header.
#pragma once

#include "kernels.h"

namespace splat {
namespace gpu {

constexpr int BLEND_THREADS = TILE * TILE;  // one thread per pixel of a tile
constexpr unsigned FULL_MASK = 0xffffffffu;

template <typename T> struct Batch {
    int32_t id[BLEND_THREADS];
    T mx[BLEND_THREADS], my[BLEND_THREADS], ca[BLEND_THREADS], cb[BLEND_THREADS], cc[BLEND_THREADS],
        op[BLEND_THREADS];
    T r[BLEND_THREADS], g[BLEND_THREADS], b[BLEND_THREADS], z[BLEND_THREADS];

    // Slot `slot` <- the projected Gaussian gid (camera * N + index).
    __device__ void load(int slot, int32_t gid, const ConstProjected<T>& p) {
        const int64_t i = gid;
        id[slot] = gid;
        mx[slot] = p.means2d[2 * i];
        my[slot] = p.means2d[2 * i + 1];
        ca[slot] = p.conics[3 * i];
        cb[slot] = p.conics[3 * i + 1];
        cc[slot] = p.conics[3 * i + 2];
        op[slot] = p.opacities[i];
        r[slot] = p.colors[3 * i];
        g[slot] = p.colors[3 * i + 1];
        b[slot] = p.colors[3 * i + 2];
        z[slot] = p.depths[i];
    }
};

// Sum over the 32 lanes of a warp in a fixed tree: the same result on every run.
template <typename T> __device__ __forceinline__ T warp_sum(T v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL_MASK, v, o);
    return v;
}

// One step of warp_sum16: a lane keeps HALF of its values (the upper half where
// its lane bit 2*HALF is set), and adds its partner's copy of those.
template <int HALF, typename T> __device__ __forceinline__ void fold_half(T (&v)[16], int lane) {
    const bool upper = lane & (2 * HALF);
#pragma unroll
    for (int k = 0; k < HALF; ++k) {
        const T send = upper ? v[k] : v[k + HALF];
        const T keep = upper ? v[k + HALF] : v[k];
        v[k] = keep + __shfl_xor_sync(FULL_MASK, send, 2 * HALF);
    }
}

// Sums 16 values over the 32 lanes of a warp with 16 shuffles (16 warp_sums
// would take 80): each step halves the values a lane keeps and swaps the
// other half with its partner. Returns, at lane l, the total of value l / 2
// (lanes 2k and 2k + 1 both hold value k). A fixed tree: the same on every run.
template <typename T> __device__ __forceinline__ T warp_sum16(T (&v)[16]) {
    const int lane = int(threadIdx.x) & 31;
    fold_half<8>(v, lane);
    fold_half<4>(v, lane);
    fold_half<2>(v, lane);
    fold_half<1>(v, lane);
    return v[0] + __shfl_xor_sync(FULL_MASK, v[0], 1);
}

// The tile a block works on and the pixel of this thread.
struct TilePixel {
    int tile, cam, px, py;
    bool inside;
    int64_t pix;  // (camera, y, x) in [C, H, W]
    __device__ TilePixel(int width, int height) {
        const int tiles_x = (width + TILE - 1) / TILE, tiles_y = (height + TILE - 1) / TILE;
        tile = blockIdx.x;  // camera * tiles + tile
        cam = tile / (tiles_x * tiles_y);
        const int t = tile - cam * tiles_x * tiles_y;
        px = (t % tiles_x) * TILE + int(threadIdx.x) % TILE;
        py = (t / tiles_x) * TILE + int(threadIdx.x) / TILE;
        inside = px < width && py < height;
        pix = (int64_t(cam) * height + py) * width + px;
    }
};

}  // namespace gpu
}  // namespace splat
