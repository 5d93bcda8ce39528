// Internal to the CPU backend: how a tile's pixels are laid out in chunks, which
// chunks a Gaussian reaches, and the loads the blend passes make. Binning computes
// the chunk masks (bin_cpu.cpp); both blend passes read them (blend_cpu.cpp).
#pragma once

#include <algorithm>
#include <cstdint>

#include "lanes.h"
#include "splat/blend.h"
#include "splat/tiles.h"

namespace splat {
namespace cpu {
namespace detail {

// Pixel rows of a tile that a Gaussian can reach: its screen box plus one pixel of
// margin (beyond the box alpha < 1/255 mathematically; the margin absorbs rounding).
// Columns come from the ellipse's row spans (chunk_mask).
template <typename T>
void pixel_rows(const T* m, const T* e, int ty0, int th, int& py0, int& py1) {
    py0 = std::max(ty0, int(s_floor(m[1] - e[1] - T(1.5))));
    py1 = std::min(ty0 + th - 1, int(s_ceil(m[1] + e[1] + T(0.5))));
}

// A chunk is the unit of the pixel loops: a block of 4 x 2 pixels, one AVX2
// vector of floats. A tile's per-pixel state is stored chunk by chunk (chunks in
// row-major order, 4 across and 8 down; in a chunk, its two rows of 4), so a
// chunk's 8 values lie together. Blocks of 4 x 2 fit small ellipses better than
// runs of 8 x 1: at 256 x 256 / 20k, 439 k chunks hold a pixel some Gaussian
// reaches against 525 k runs.
constexpr int CHUNK_W = 4, CHUNK_H = 2, CHUNK = CHUNK_W * CHUNK_H;
constexpr int CHUNKS_X = TILE / CHUNK_W;
constexpr int MAX_CHUNKS = TILE * TILE / CHUNK;
static_assert(MAX_CHUNKS == 32, "a tile's chunks are the bits of one uint32_t");
static_assert(CHUNK_W == 4, "chunk_mask divides columns by 4 with a shift");
static_assert(CHUNK_H == 2, "the pixel loops pick each lane's row offset from two values");

// Index in a tile's state arrays of tile-local pixel (x, y), and back.
inline int state_index(int x, int y) {
    return ((y / CHUNK_H) * CHUNKS_X + x / CHUNK_W) * CHUNK + (y % CHUNK_H) * CHUNK_W + x % CHUNK_W;
}
inline int state_x(int p) { return (p / CHUNK % CHUNKS_X) * CHUNK_W + p % CHUNK_W; }
inline int state_y(int p) { return (p / CHUNK / CHUNKS_X) * CHUNK_H + p % CHUNK / CHUNK_W; }
// Lane i of a chunk: pixel-centre x offset from the chunk's first column, and its row (0 or 1).
template <typename T> T lane_dx(int i) { return T(i % CHUNK_W) + T(0.5); }
inline bool lane_row1(int i) { return i >= CHUNK_W; }

// The chunks of the tile at (tx0, ty0) that a Gaussian can reach, as a bit mask:
// bit (r / 2) * 4 + c / 4 for tile-local row r and column c. lo / hi hold, for each
// of the tile's TILE rows, the span of whole pixel columns (columns_f, within
// +-1e9) that the Gaussian can reach in it; lo > hi for rows it cannot reach
// (outside its screen box: pixel_rows). Binning computes the masks once; both
// blend passes read them (chunk_list).
//
// Chunk column k (pixels 4k .. 4k + 3 of the tile) is reached by a row where
// lo <= tx0 + 4k + 3 and hi >= tx0 + 4k, i.e. for k from floor((lo - tx0) / 4) to
// floor((hi - tx0) / 4): two shifts per row instead of a test per chunk, and a
// fixed trip count, so the loop vectorises over the rows.
inline uint32_t chunk_mask(const int32_t* lo, const int32_t* hi, int tx0, int tw) {
    const int last_col = (tw - 1) / CHUNK_W;  // chunks past the image edge stay out
    uint32_t live = 0;
    for (int r = 0; r < TILE; ++r) {
        // first and one-past-last chunk column, each clamped to 0 .. 4
        const int k0 = std::min(std::max((lo[r] - tx0) >> 2, 0), CHUNKS_X);
        const int k1 = std::min(std::max(std::min((hi[r] - tx0) >> 2, last_col) + 1, 0), CHUNKS_X);
        const uint32_t cols = ((1u << k1) - 1u) & ~((1u << k0) - 1u);
        live |= cols << (r / CHUNK_H * CHUNKS_X);
    }
    return live;
}

// A chunk mask as a list, in chunk order: seg_p the index of the chunk's first
// value in the state arrays, seg_x the pixel x of its first column, seg_dy0 /
// seg_dy1 its two rows' pixel-centre dy from the mean (my). Returns the count.
template <typename T>
int chunk_list(uint32_t live, int tx0, int ty0, T my, int* seg_p, T* seg_x, T* seg_dy0, T* seg_dy1) {
    int n = 0;
    for (; live != 0; live &= live - 1, ++n) {
        const int bit = __builtin_ctz(live), r = bit / CHUNKS_X * CHUNK_H, c = bit % CHUNKS_X * CHUNK_W;
        seg_p[n] = bit * CHUNK;
        seg_x[n] = T(tx0 + c);
        seg_dy0[n] = T(ty0 + r) + T(0.5) - my;
        seg_dy1[n] = T(ty0 + r + 1) + T(0.5) - my;
    }
    return n;
}

template <typename T> struct Loaded {
    Vec2<T> mean2d;
    Sym2<T> conic;
    T opacity;
    T color[3];
    T depth;
};

template <typename T>
Loaded<T> load(int32_t g, const T* means2d, const T* conics, const T* opacities, const T* colors, const T* depths) {
    Loaded<T> L;
    L.mean2d = {means2d[2 * g], means2d[2 * g + 1]};
    L.conic = {conics[3 * g], conics[3 * g + 1], conics[3 * g + 2]};
    L.opacity = opacities[g];
    L.color[0] = colors[3 * g];
    L.color[1] = colors[3 * g + 1];
    L.color[2] = colors[3 * g + 2];
    L.depth = depths[g];
    return L;
}

// A tile's list visits Gaussians in depth order, scattered in memory, so their
// values missed the cache at the start of every pair (~9 % of the blend passes'
// time). The passes ask for the values of the pair PREFETCH_AHEAD entries on.
constexpr int PREFETCH_AHEAD = 2;

template <typename T>
void prefetch_gaussian(int32_t g, const T* means2d, const T* conics, const T* opacities, const T* colors, const T* depths) {
    __builtin_prefetch(means2d + 2 * g);
    __builtin_prefetch(conics + 3 * g);
    __builtin_prefetch(opacities + g);
    __builtin_prefetch(colors + 3 * g);
    __builtin_prefetch(depths + g);
}


}  // namespace detail
}  // namespace cpu
}  // namespace splat
