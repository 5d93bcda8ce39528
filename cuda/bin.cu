// Tile binning: count the tiles each projected Gaussian touches (box, then the
// ellipse against each tile), emit (tile, depth) keys at the scanned offsets,
// and find each tile's range in the sorted list (scan and sort: sort.cu).
#include "kernels.h"
#include "splat/tiles.h"

namespace splat {
namespace gpu {

namespace {

constexpr int BLOCK = 256;

int blocks_for(int64_t n) { return int((n + BLOCK - 1) / BLOCK); }

// Calls f(tile_x, tile_y) for every tile of the box that the ellipse meets.
template <typename T, typename F>
__device__ void for_each_tile(const ConstProjected<T>& p, int64_t idx, int tiles_x, int tiles_y, F f) {
    if (p.radii[idx] <= 0) return;
    const T mx = p.means2d[2 * idx], my = p.means2d[2 * idx + 1];
    int x0, x1, y0, y1;
    tile_box(mx, my, p.extents[2 * idx], p.extents[2 * idx + 1], tiles_x, tiles_y, x0, x1, y0, y1);
    const T a = p.conics[3 * idx], b = p.conics[3 * idx + 1], c = p.conics[3 * idx + 2];
    const T level = sigma_limit(p.opacities[idx]);
    const bool single = x0 == x1 && y0 == y1;  // the common case for small Gaussians: no test needed
    for (int ty = y0; ty <= y1; ++ty)
        for (int tx = x0; tx <= x1; ++tx)
            if (single || ellipse_meets_tile(a, b, c, level, mx, my, tx * TILE, ty * TILE)) f(tx, ty);
}

template <typename T>
__global__ void count_kernel(ConstProjected<T> p, int64_t CN, int tiles_x, int tiles_y, int32_t* counts) {
    const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= CN) return;
    int n = 0;
    for_each_tile(p, idx, tiles_x, tiles_y, [&](int, int) { ++n; });
    counts[idx] = n;
}

template <typename T>
__global__ void emit_kernel(ConstProjected<T> p, int64_t N, int64_t CN, int tiles_x, int tiles_y,
                            const int64_t* __restrict__ offsets, uint64_t* keys, int32_t* values) {
    const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (idx >= CN) return;
    const int64_t cam = idx / N;
    const uint64_t tile_base = uint64_t(cam) * uint64_t(tiles_x) * uint64_t(tiles_y);
    const float z = float(p.depths[idx]);
    const uint64_t zbits = uint64_t(__float_as_uint(z));
    int64_t out = offsets[idx];
    for_each_tile(p, idx, tiles_x, tiles_y, [&](int tx, int ty) {
        keys[out] = ((tile_base + uint64_t(ty) * tiles_x + tx) << 32) | zbits;
        values[out] = int32_t(idx);
        ++out;
    });
}

// A tile's range starts where its id differs from the previous key's and ends
// where the next key's differs.
__global__ void ranges_kernel(const uint64_t* __restrict__ keys, int64_t pairs, int32_t* ranges) {
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= pairs) return;
    const uint32_t tile = uint32_t(keys[i] >> 32);
    if (i == 0 || uint32_t(keys[i - 1] >> 32) != tile) ranges[2 * int64_t(tile)] = int32_t(i);
    if (i == pairs - 1 || uint32_t(keys[i + 1] >> 32) != tile) ranges[2 * int64_t(tile) + 1] = int32_t(i + 1);
}

}  // namespace

template <typename T>
void count_tiles(const ConstProjected<T>& p, int64_t CN, int width, int height, int32_t* counts, cudaStream_t stream) {
    if (CN == 0) return;
    const int tiles_x = (width + TILE - 1) / TILE, tiles_y = (height + TILE - 1) / TILE;
    count_kernel<T><<<blocks_for(CN), BLOCK, 0, stream>>>(p, CN, tiles_x, tiles_y, counts);
}

template <typename T>
void emit_pairs(const ConstProjected<T>& p, int64_t N, int64_t CN, int width, int height, const int64_t* offsets,
                uint64_t* keys, int32_t* values, cudaStream_t stream) {
    if (CN == 0) return;
    const int tiles_x = (width + TILE - 1) / TILE, tiles_y = (height + TILE - 1) / TILE;
    emit_kernel<T><<<blocks_for(CN), BLOCK, 0, stream>>>(p, N, CN, tiles_x, tiles_y, offsets, keys, values);
}

void tile_ranges(const uint64_t* sorted_keys, int64_t pairs, int32_t* ranges, cudaStream_t stream) {
    if (pairs == 0) return;
    ranges_kernel<<<blocks_for(pairs), BLOCK, 0, stream>>>(sorted_keys, pairs, ranges);
}

#define SPLAT_INSTANTIATE(T)                                                                                         \
    template void count_tiles<T>(const ConstProjected<T>&, int64_t, int, int, int32_t*, cudaStream_t);             \
    template void emit_pairs<T>(const ConstProjected<T>&, int64_t, int64_t, int, int, const int64_t*, uint64_t*,   \
                                int32_t*, cudaStream_t);

SPLAT_INSTANTIATE(float)
SPLAT_INSTANTIATE(double)

}  // namespace gpu
}  // namespace splat
