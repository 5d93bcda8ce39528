// CPU blend forward and backward over the tile lists of bin_cpu.cpp, chunk by chunk.
// The per-pixel step and its VJP are in cuda/include/splat/blend.h.
#include "rasterize_cpu.h"

#include <algorithm>
#include <cstring>
#include <memory>
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

constexpr int32_t REDUCE_AHEAD = 8;

// Per-Gaussian sums of per-pair values, in parallel over Gaussians; each sums its
// pairs in a fixed order, so results are bitwise reproducible. A pair holds the
// fields of outs back to back, widths[o] values for outs[o] (widths ends with 0);
// outs[o][g * widths[o] + j] is written for visible Gaussians only. Each pair's
// values are asked for REDUCE_AHEAD pairs early: they lie scattered (tile-major),
// and waiting for them took half of the reduction's time.
template <typename T>
void reduce_pairs(const BinsView& b, const T* pair_vals, T* const* outs, const int* widths) {
    int W = 0;
    for (int o = 0; widths[o] > 0; ++o) W += widths[o];
#pragma omp parallel for schedule(dynamic, 512)
    for (int64_t m = 0; m < b.M; ++m) {
        T acc[16] = {};
        for (int32_t q = b.g_offsets[m]; q < b.g_offsets[m + 1]; ++q) {
            if (q + REDUCE_AHEAD < b.g_offsets[b.M]) {
                const T* ahead = pair_vals + int64_t(b.g_pairs[q + REDUCE_AHEAD]) * W;
                __builtin_prefetch(ahead);
                __builtin_prefetch(ahead + W - 1);
            }
            const T* v = pair_vals + int64_t(b.g_pairs[q]) * W;
            for (int c = 0; c < W; ++c) acc[c] += v[c];
        }
        const int64_t g = b.order[m];
        for (int o = 0, c = 0; widths[o] > 0; c += widths[o], ++o)
            for (int j = 0; j < widths[o]; ++j) outs[o][g * widths[o] + j] = acc[c + j];
    }
}

}  // namespace

// Both passes walk a tile's list one Gaussian at a time and, for each Gaussian,
// the chunks of its mask. Chunks are always whole (the per-pixel state lives in
// [TILE * TILE] arrays, phantom pixels past the image edge start done): a fixed
// trip count and per-lane accumulators let the compiler vectorise the pixel
// loop. Each pixel still sees the Gaussians strictly in list order.
template <typename T>
void blend_forward(int64_t N, const T* means2d, const T* conics, const T* opacities, const T* colors, const T* depths,
                   const BinsView& bins, int width, int height, const T* background,
                   const int64_t* labels, int num_labels, T* color, T* alpha, T* depth, T* trans_final, T* depth_sum,
                   int32_t* last, T* contributions, T* label_contrib, T* median_depth) {
    const int tiles_x = (width + TILE - 1) / TILE, tiles_y = (height + TILE - 1) / TILE;
    const int64_t num_tiles = int64_t(tiles_x) * tiles_y;
    const int32_t* offsets = bins.offsets;
    const int32_t* ids = bins.ids;
    const int32_t* masks = bins.masks;
    const size_t pairs = size_t(bins.pairs);
    std::vector<T> pair_w(pairs, T(0));
    std::vector<T> pair_label(labels ? pairs * size_t(num_labels) : 0, T(0));
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < num_tiles; ++t) {
        const int tx0 = int(t % tiles_x) * TILE, ty0 = int(t / tiles_x) * TILE;
        const int tw = std::min(TILE, width - tx0), th = std::min(TILE, height - ty0);
        constexpr int P = TILE * TILE;
        // state as floating point only (entry counts are exact in T): with one
        // element type the pixel loop vectorises
        T trans[P], c0[P], c1[P], c2[P], dep[P], med[P], lst[P], done[P], wbuf[CHUNK];
        // per-Gaussian chunk list and alphas
        int seg_p[MAX_CHUNKS];
        T seg_x[MAX_CHUNKS], seg_dy0[MAX_CHUNKS], seg_dy1[MAX_CHUNKS], abuf[MAX_CHUNKS][CHUNK];
        int n_live = 0;
        for (int p = 0; p < P; ++p) {
            trans[p] = T(1);
            c0[p] = c1[p] = c2[p] = dep[p] = med[p] = T(0);
            lst[p] = T(0);
            done[p] = (state_x(p) < tw && state_y(p) < th) ? T(0) : T(1);
            n_live += done[p] == T(0);
        }
        // chunks with a pixel still blending: a Gaussian's chunks where every pixel has
        // ended (or is past the image edge) would take alpha 0 everywhere, so they are skipped
        auto chunk_done = [&done](int q) {
            T all_done = T(1);
            for (int i = 0; i < CHUNK; ++i) all_done = std::min(all_done, done[q * CHUNK + i]);
            return all_done != T(0);
        };
        uint32_t live_chunks = 0;
        for (int q = 0; q < MAX_CHUNKS; ++q) live_chunks |= uint32_t(!chunk_done(q)) << q;
        const int32_t start = offsets[t], end = offsets[t + 1];
        for (int32_t k = start; k < end && n_live > 0; ++k) {
            const int32_t g = ids[k];
            if (k + PREFETCH_AHEAD < end)
                prefetch_gaussian(ids[k + PREFETCH_AHEAD], means2d, conics, opacities, colors, depths);
            const Loaded<T> L = load(g, means2d, conics, opacities, colors, depths);
            const int32_t entry = k - start + 1;
            T w_lane[CHUNK] = {}, stop_lane[CHUNK] = {};
            const T ent = T(entry);
            // the chunks (4 x 2 pixels) this Gaussian can reach in this tile
            const int nseg = chunk_list(uint32_t(masks[k]) & live_chunks, tx0, ty0, L.mean2d.y, seg_p, seg_x, seg_dy0, seg_dy1);
            // phase 1: alphas, independent across chunks (keeps the exp pipelines full)
            for (int sgi = 0; sgi < nseg; ++sgi) {
                const T sx = seg_x[sgi], dy0 = seg_dy0[sgi], dy1 = seg_dy1[sgi];  // scalars: a vector loop
                for (int i = 0; i < CHUNK; ++i)
                    abuf[sgi][i] = alpha_taken(L.opacity, gaussian_sigma(L.conic, sx + lane_dx<T>(i) - L.mean2d.x,
                                                                         lane_row1(i) ? dy1 : dy0));
            }
            // phase 2: the blend, which carries each pixel's state from Gaussian to Gaussian
            for (int sgi = 0; sgi < nseg; ++sgi) {
                const int base = seg_p[sgi];
                for (int i = 0; i < CHUNK; ++i) {  // constant trip count: one full vector
                    const int p = base + i;
                    const T a = done[p] == T(0) ? abuf[sgi][i] : T(0);
                    T stop;
                    const T w = blend_step(a, L.color[0], L.color[1], L.color[2], L.depth, trans[p], c0[p], c1[p], c2[p],
                                           dep[p], med[p], stop);
                    lst[p] = w > T(0) ? ent : lst[p];
                    done[p] = stop > T(0) ? T(1) : done[p];
                    stop_lane[i] += stop;
                    w_lane[i] += w;
                    wbuf[i] = w;
                }
                if (labels)
                    for (int i = 0; i < CHUNK; ++i) {
                        const int x = state_x(base + i), y = state_y(base + i);
                        if (x < tw && y < th)
                            pair_label[size_t(k) * num_labels + labels[int64_t(ty0 + y) * width + tx0 + x]] += wbuf[i];
                    }
            }
            T w_sum = 0, stopped = 0;
            for (int i = 0; i < CHUNK; ++i) {
                w_sum += w_lane[i];
                stopped += stop_lane[i];
            }
            n_live -= int(stopped);
            if (stopped > T(0))  // a pixel ended in one of this Gaussian's chunks: is its chunk done?
                for (int sgi = 0; sgi < nseg; ++sgi)
                    if (chunk_done(seg_p[sgi] / CHUNK)) live_chunks &= ~(1u << (seg_p[sgi] / CHUNK));
            pair_w[k] = w_sum;
        }
        for (int y = 0; y < th; ++y)
            for (int x = 0; x < tw; ++x) {
                const int p = state_index(x, y);
                const int64_t pix = int64_t(ty0 + y) * width + tx0 + x;
                pixel_finish(c0[p], c1[p], c2[p], trans[p], dep[p], background, color + 3 * pix, alpha[pix], depth[pix]);
                trans_final[pix] = trans[p];  // kept as is: 1 - alpha loses digits when T is small
                depth_sum[pix] = dep[p];
                median_depth[pix] = med[p];
                last[pix] = int32_t(lst[p]);
            }
    }
    std::fill(contributions, contributions + N, T(0));
    T* outs[1] = {contributions};
    const int widths[2] = {1, 0};
    reduce_pairs(bins, pair_w.data(), outs, widths);
    if (labels) {  // [L, N] layout: a small sequential pass in pair order
        std::fill(label_contrib, label_contrib + N * num_labels, T(0));
        for (size_t k = 0; k < pairs; ++k)
            for (int l = 0; l < num_labels; ++l) label_contrib[int64_t(l) * N + ids[k]] += pair_label[k * num_labels + l];
    }
}

template <typename T>
void blend_backward(int64_t N, const T* means2d, const T* conics, const T* opacities, const T* colors, const T* depths,
                    const BinsView& bins, int width, int height,
                    const T* background, const T* trans_final, const T* depth_sum, const int32_t* last,
                    const T* v_color, const T* v_alpha, const T* v_depth, T* v_means2d, T* v_conics, T* v_opacities, T* v_colors, T* v_depths,
                    T* v_abs) {
    const int tiles_x = (width + TILE - 1) / TILE;
    const int32_t* offsets = bins.offsets;
    const int32_t* ids = bins.ids;
    const int32_t* masks = bins.masks;
    const int64_t num_tiles = bins.num_tiles;
    const size_t pairs = size_t(bins.pairs);
    const int NG = v_abs ? 12 : 10;  // per pair: mean2d 2, conic 3, opacity 1, colour 3, depth 1 (, |mean2d| 2)
    // every pair's values are written once by its tile (zeros past the tile's last
    // entry taken), so the buffer starts uninitialised: no 10-floats-per-pair memset
    std::unique_ptr<T[]> pair_grad(new T[pairs * NG]);
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < num_tiles; ++t) {
        const int tx0 = int(t % tiles_x) * TILE, ty0 = int(t / tiles_x) * TILE;
        const int tw = std::min(TILE, width - tx0), th = std::min(TILE, height - ty0);
        constexpr int P = TILE * TILE;
        // incoming gradients and back-walk state per pixel (phantom pixels: last = 0)
        T g0[P] = {}, g1[P] = {}, g2[P] = {}, gd[P] = {}, gk[P] = {};
        T trans[P] = {}, S[P] = {}, lst[P] = {};
        // per-Gaussian chunk list, falloffs, alphas and alpha gradients
        int seg_p[MAX_CHUNKS];
        T seg_x[MAX_CHUNKS], seg_dy0[MAX_CHUNKS], seg_dy1[MAX_CHUNKS];
        T gbuf[MAX_CHUNKS][CHUNK], abuf[MAX_CHUNKS][CHUNK], vbuf[MAX_CHUNKS][CHUNK];
        int32_t max_last = 0;
        for (int y = 0; y < th; ++y)
            for (int x = 0; x < tw; ++x) {
                const int p = state_index(x, y);
                const int64_t pix = int64_t(ty0 + y) * width + tx0 + x;
                g0[p] = v_color[3 * pix];
                g1[p] = v_color[3 * pix + 1];
                g2[p] = v_color[3 * pix + 2];
                trans[p] = trans_final[pix];
                T ga;
                pixel_finish_vjp(v_color + 3 * pix, v_alpha[pix], v_depth[pix], trans[p], depth_sum[pix], background, gd[p], ga);
                gk[p] = ga * trans[p];
                lst[p] = T(last[pix]);
                max_last = std::max(max_last, last[pix]);
            }
        // per chunk, the last entry any of its pixels took: a Gaussian at or after it
        // changes none of the chunk's pixels, so the back walk skips the chunk there
        T chunk_last[MAX_CHUNKS];
        for (int q = 0; q < MAX_CHUNKS; ++q) {
            chunk_last[q] = T(0);
            for (int i = 0; i < CHUNK; ++i) chunk_last[q] = std::max(chunk_last[q], lst[q * CHUNK + i]);
        }
        const int32_t start = offsets[t];
        std::fill(&pair_grad[size_t(start + max_last) * NG], &pair_grad[size_t(offsets[t + 1]) * NG], T(0));
        for (int32_t j = max_last - 1; j >= 0; --j) {
            const int32_t k = start + j, g = ids[k];
            if (j >= PREFETCH_AHEAD)
                prefetch_gaussian(ids[k - PREFETCH_AHEAD], means2d, conics, opacities, colors, depths);
            const T jt = T(j);
            const Loaded<T> L = load(g, means2d, conics, opacities, colors, depths);
            // plain locals: the vectoriser does not look through struct members here
            const Sym2<T> conic = L.conic;
            const T op = L.opacity, mx = L.mean2d.x, cr = L.color[0], cg = L.color[1], cb = L.color[2], z = L.depth;
            // per-lane gradient sums, added up in a fixed order at the end
            T l_ca[CHUNK] = {}, l_cb[CHUNK] = {}, l_cc[CHUNK] = {}, l_mx[CHUNK] = {}, l_my[CHUNK] = {};
            T l_o[CHUNK] = {}, l_c0[CHUNK] = {}, l_c1[CHUNK] = {}, l_c2[CHUNK] = {}, l_z[CHUNK] = {};
            T l_ax[CHUNK] = {}, l_ay[CHUNK] = {};  // sums of each pixel's |d loss / d mean2d| (absgrad)
            uint32_t reached = 0;
            for (int q = 0; q < MAX_CHUNKS; ++q) reached |= uint32_t(jt < chunk_last[q]) << q;
            const int nseg = chunk_list(uint32_t(masks[k]) & reached, tx0, ty0, L.mean2d.y, seg_p, seg_x, seg_dy0, seg_dy1);
            // phase 1: falloff and alpha, independent across chunks
            for (int sgi = 0; sgi < nseg; ++sgi) {
                const T sx = seg_x[sgi], dy0 = seg_dy0[sgi], dy1 = seg_dy1[sgi];
                for (int i = 0; i < CHUNK; ++i) {
                    const T sigma = gaussian_sigma(conic, sx + lane_dx<T>(i) - mx, lane_row1(i) ? dy1 : dy0);
                    gbuf[sgi][i] = gaussian_falloff(sigma);
                    abuf[sgi][i] = alpha_taken_g(op, sigma, gbuf[sgi][i]);
                }
            }
            // phase 2: the back walk, which carries each pixel's state between Gaussians
            for (int sgi = 0; sgi < nseg; ++sgi) {
                const int base = seg_p[sgi];
                for (int i = 0; i < CHUNK; ++i) {  // constant trip count: one full vector
                    const int p = base + i;
                    // a pixel that ended before this Gaussian, or skips it, sees alpha 0:
                    // no state change, no gradient
                    const T a = jt < lst[p] ? abuf[sgi][i] : T(0);
                    const T gc = g0[p] * cr + g1[p] * cg + g2[p] * cb + gd[p] * z;
                    T tr = trans[p], sp = S[p], w;
                    T va = blend_step_vjp_dot(gc, gk[p], tr, sp, a, w);
                    va = a > T(0) ? va : T(0);
                    vbuf[sgi][i] = alpha_grad_passes(op, gbuf[sgi][i]) ? va : T(0);
                    trans[p] = tr;
                    S[p] = sp;
                    l_c0[i] += w * g0[p];
                    l_c1[i] += w * g1[p];
                    l_c2[i] += w * g2[p];
                    l_z[i] += w * gd[p];
                }
            }
            // phase 3: alpha -> conic, mean, opacity, independent across chunks; the
            // sums of |d loss / d mean2d| only when asked for (a loop of its own)
            auto alpha_vjp = [&](auto with_abs) {
                for (int sgi = 0; sgi < nseg; ++sgi) {
                    const T sx = seg_x[sgi], dy0 = seg_dy0[sgi], dy1 = seg_dy1[sgi];
                    for (int i = 0; i < CHUNK; ++i) {
                        T px = 0, py = 0;  // this pixel's part of the mean's gradient
                        gaussian_alpha_vjp_g(conic, op, gbuf[sgi][i], sx + lane_dx<T>(i) - mx, lane_row1(i) ? dy1 : dy0,
                                             vbuf[sgi][i], l_ca[i], l_cb[i], l_cc[i], px, py, l_o[i]);
                        l_mx[i] += px;
                        l_my[i] += py;
                        if (with_abs) {
                            l_ax[i] += px < T(0) ? -px : px;
                            l_ay[i] += py < T(0) ? -py : py;
                        }
                    }
                }
            };
            if (v_abs)
                alpha_vjp(std::true_type{});
            else
                alpha_vjp(std::false_type{});
            T* out = &pair_grad[size_t(k) * NG];
            std::fill(out, out + NG, T(0));
            for (int i = 0; i < CHUNK; ++i) {
                out[0] += l_mx[i]; out[1] += l_my[i];
                out[2] += l_ca[i]; out[3] += l_cb[i]; out[4] += l_cc[i];
                out[5] += l_o[i];
                out[6] += l_c0[i]; out[7] += l_c1[i]; out[8] += l_c2[i];
                out[9] += l_z[i];
            }
            if (v_abs)
                for (int i = 0; i < CHUNK; ++i) out[10] += l_ax[i], out[11] += l_ay[i];
        }
    }
    std::fill(v_means2d, v_means2d + 2 * N, T(0));
    std::fill(v_conics, v_conics + 3 * N, T(0));
    std::fill(v_opacities, v_opacities + N, T(0));
    std::fill(v_colors, v_colors + 3 * N, T(0));
    std::fill(v_depths, v_depths + N, T(0));
    if (v_abs) std::fill(v_abs, v_abs + 2 * N, T(0));
    T* outs[6] = {v_means2d, v_conics, v_opacities, v_colors, v_depths, v_abs};
    const int widths[7] = {2, 3, 1, 3, 1, v_abs ? 2 : 0, 0};
    reduce_pairs(bins, pair_grad.get(), outs, widths);
}

#define SPLAT_INSTANTIATE(T)                                                                                              \
    template void blend_forward<T>(int64_t, const T*, const T*, const T*, const T*, const T*,                             \
                                   const BinsView&, int, int, const T*, const int64_t*, int, T*, T*, T*, T*, T*,          \
                                   int32_t*, T*, T*, T*);                                                                     \
    template void blend_backward<T>(int64_t, const T*, const T*, const T*, const T*, const T*,                            \
                                    const BinsView&, int, int, const T*, const T*, const T*, const int32_t*, const T*,    \
                                    const T*, const T*, T*, T*, T*, T*, T*, T*);

SPLAT_INSTANTIATE(float)
SPLAT_INSTANTIATE(double)

}  // namespace cpu
}  // namespace splat
