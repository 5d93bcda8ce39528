// CPU tile binning: visible Gaussians sorted front to back, then appended to the
// tiles (and the chunks of each tile) their ellipse reaches.
#include "rasterize_cpu.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <type_traits>

#include "lanes.h"
#include "splat/blend.h"
#include "splat/tiles.h"
#include "tile_chunks.h"

namespace splat {
namespace cpu {

using namespace detail;

namespace {

// Counting sorts in parallel, with the result of the sequential stable sort: the
// items are cut into BLOCKS runs of consecutive items, each run counts its keys,
// and counting_starts turns counts[b * K + k] (items of key k in run b) into the
// position of run b's first item of key k (the runs of one key follow each other
// in run order); first[k] (K + 1 values, when given) gets key k's first position.
constexpr int BLOCKS = 8;  // more runs than threads, taken as threads come free: a busy core holds no one up

template <typename I>
void counting_starts(std::vector<I>& counts, int K, I* first) {
    I pos = 0;
    for (int k = 0; k < K; ++k) {
        if (first) first[k] = pos;
        for (int b = 0; b < BLOCKS; ++b) {
            const I c = counts[size_t(b) * K + k];
            counts[size_t(b) * K + k] = pos;
            pos += c;
        }
    }
    if (first) first[K] = pos;
}

// Visible Gaussians (radii > 0) front to back: ascending depth, ties by index.
// A stable LSD radix sort on the depth's bits (positive floats order as their
// bits), started from index order: the same order as sorting (depth, index).
template <typename T>
std::vector<int32_t> depth_order(int64_t N, const T* depths, const int32_t* radii) {
    using Key = typename std::conditional<sizeof(T) == 4, uint32_t, uint64_t>::type;
    std::vector<Key> keys, keys_tmp;
    std::vector<int32_t> order, order_tmp;
    for (int64_t i = 0; i < N; ++i)
        if (radii[i] > 0) {
            Key k;
            std::memcpy(&k, &depths[i], sizeof(T));
            keys.push_back(k);
            order.push_back(int32_t(i));
        }
    const int64_t M = int64_t(keys.size());
    keys_tmp.resize(M);
    order_tmp.resize(M);
    std::vector<int64_t> counts(BLOCKS * 256);
    for (int shift = 0; shift < int(8 * sizeof(Key)); shift += 8) {
        std::fill(counts.begin(), counts.end(), 0);
#pragma omp parallel for schedule(dynamic, 1)
        for (int b = 0; b < BLOCKS; ++b)
            for (int64_t m = M * b / BLOCKS; m < M * (b + 1) / BLOCKS; ++m) counts[b * 256 + ((keys[m] >> shift) & 0xff)]++;
        int64_t first_digit = 0;  // one digit only: already in order
        for (int b = 0; b < BLOCKS && M > 0; ++b) first_digit += counts[b * 256 + ((keys[0] >> shift) & 0xff)];
        if (first_digit == M) continue;
        counting_starts(counts, 256, (int64_t*)nullptr);
#pragma omp parallel for schedule(dynamic, 1)
        for (int b = 0; b < BLOCKS; ++b) {
            int64_t* next = &counts[b * 256];
            for (int64_t m = M * b / BLOCKS; m < M * (b + 1) / BLOCKS; ++m) {
                const int64_t pos = next[(keys[m] >> shift) & 0xff]++;
                keys_tmp[pos] = keys[m];
                order_tmp[pos] = order[m];
            }
        }
        keys.swap(keys_tmp);
        order.swap(order_tmp);
    }
    return order;
}

}  // namespace

template <typename T>
void bin_gaussians(int64_t N, const T* means2d, const T* conics, const T* opacities, const T* extents, const T* depths,
                   const int32_t* radii, int width, int height, TileBins& bins) {
    std::vector<int32_t>& offsets = bins.offsets;
    std::vector<int32_t>& ids = bins.ids;
    const int tiles_x = (width + TILE - 1) / TILE, tiles_y = (height + TILE - 1) / TILE;
    std::vector<int32_t>& order = bins.order;
    order = depth_order(N, depths, radii);
    const int64_t M = int64_t(order.size());
    // the tiles of each Gaussian's box where it can reach a pixel, with their chunk
    // masks, Gaussian-major in (ty, tx) order, in parallel: written into room for
    // the whole box (box_start), then counted
    auto box_tiles = [&](int64_t m, int& x0, int& x1, int& y0, int& y1) {
        const int32_t g = order[m];
        tile_box(means2d[2 * g], means2d[2 * g + 1], extents[2 * g], extents[2 * g + 1], tiles_x, tiles_y, x0, x1, y0, y1);
        return int64_t(std::max(0, x1 - x0 + 1)) * std::max(0, y1 - y0 + 1);
    };
    std::vector<int64_t> box_start(M + 1, 0);
#pragma omp parallel for schedule(dynamic, 512)
    for (int64_t m = 0; m < M; ++m) {
        int x0, x1, y0, y1;
        box_start[m + 1] = box_tiles(m, x0, x1, y0, y1);
    }
    std::partial_sum(box_start.begin(), box_start.end(), box_start.begin());
    std::vector<int32_t> box_tile(box_start[M]);
    std::vector<uint32_t> box_mask(box_start[M]);
    std::vector<int32_t> g_count(M + 1, 0);
#pragma omp parallel for schedule(dynamic, 256)
    for (int64_t m = 0; m < M; ++m) {
        const int32_t g = order[m];
        const T* mean = means2d + 2 * g;
        int x0, x1, y0, y1, n = 0;
        box_tiles(m, x0, x1, y0, y1);
        const RowSpans<T> spans({conics[3 * g], conics[3 * g + 1], conics[3 * g + 2]}, {mean[0], mean[1]}, opacities[g]);
        for (int ty = y0; ty <= y1; ++ty) {
            const int ty0 = ty * TILE;
            int py0, py1;
            pixel_rows(mean, extents + 2 * g, ty0, std::min(TILE, height - ty0), py0, py1);
            if (py1 < py0) continue;
            T lo_f[TILE], hi_f[TILE];
            int32_t lo[TILE], hi[TILE];
            for (int r = 0; r < TILE; ++r)  // the tile row's spans at once: a vector loop
                spans.columns_f(T(ty0 + r) + T(0.5) - spans.my, lo_f[r], hi_f[r]);
            for (int r = 0; r < TILE; ++r) {  // whole numbers within +-1e9: exact as int32
                const bool in_box = ty0 + r >= py0 && ty0 + r <= py1;
                lo[r] = in_box ? int32_t(lo_f[r]) : INT32_MAX / 2;
                hi[r] = in_box ? int32_t(hi_f[r]) : INT32_MIN / 2;
            }
            for (int tx = x0; tx <= x1; ++tx) {
                const uint32_t mask = chunk_mask(lo, hi, tx * TILE, std::min(TILE, width - tx * TILE));
                if (mask == 0) continue;
                box_tile[box_start[m] + n] = ty * tiles_x + tx;
                box_mask[box_start[m] + n++] = mask;
            }
        }
        g_count[m + 1] = n;
    }
    std::vector<int32_t>& g_offsets = bins.g_offsets;
    g_offsets.resize(M + 1);
    std::partial_sum(g_count.begin(), g_count.end(), g_offsets.begin());
    const int32_t pairs = g_offsets[M];
    // tile-major lists by a counting sort, stable in depth order; g_pairs is its inverse.
    // The runs of the sort: Gaussians [run_start[b], run_start[b + 1]), about equal in pairs
    std::vector<int64_t> run_start(BLOCKS + 1);
    for (int b = 0; b <= BLOCKS; ++b)
        run_start[b] = std::lower_bound(g_offsets.begin(), g_offsets.end() - 1, int32_t(int64_t(pairs) * b / BLOCKS)) -
                       g_offsets.begin();
    run_start[BLOCKS] = M;
    const int K = tiles_x * tiles_y;
    std::vector<int32_t> counts(size_t(BLOCKS) * K, 0);
#pragma omp parallel for schedule(dynamic, 1)
    for (int b = 0; b < BLOCKS; ++b)
        for (int64_t m = run_start[b]; m < run_start[b + 1]; ++m)
            for (int32_t j = 0; j < g_count[m + 1]; ++j) counts[size_t(b) * K + box_tile[box_start[m] + j]]++;
    offsets.resize(size_t(K) + 1);
    counting_starts(counts, K, offsets.data());
    ids.resize(pairs);
    bins.masks.resize(pairs);
    bins.g_pairs.resize(pairs);
#pragma omp parallel for schedule(dynamic, 1)
    for (int b = 0; b < BLOCKS; ++b) {
        int32_t* next = &counts[size_t(b) * K];
        for (int64_t m = run_start[b]; m < run_start[b + 1]; ++m)
            for (int32_t j = 0; j < g_count[m + 1]; ++j) {
                const int64_t box = box_start[m] + j;
                const int32_t pos = next[box_tile[box]]++;
                ids[pos] = order[m];
                bins.masks[pos] = int32_t(box_mask[box]);
                bins.g_pairs[g_offsets[m] + j] = pos;
            }
    }
}

template void bin_gaussians<float>(int64_t, const float*, const float*, const float*, const float*, const float*,
                                   const int32_t*, int, int, TileBins&);
template void bin_gaussians<double>(int64_t, const double*, const double*, const double*, const double*, const double*,
                                    const int32_t*, int, int, TileBins&);

}  // namespace cpu
}  // namespace splat
