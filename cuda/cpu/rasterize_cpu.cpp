// CPU rasterizer: projection, tile binning, blend forward and backward.
// The math is in cuda/include/splat; this file only schedules it.
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
// bit (r / 2) * 4 + c / 4 for tile-local row r and column c. Rows come from the
// screen box (pixel_rows), columns from the row spans of the ellipse; lo / hi
// hold the spans of the tile's rows py0 .. py1 (from row py0). Binning computes
// the masks once; both blend passes read them (chunk_list).
template <typename T>
uint32_t chunk_mask(const T* lo, const T* hi, int py0, int py1, int tx0, int ty0, int tw) {
    uint32_t live = 0;
    for (int r = 0; r <= py1 - py0; ++r)
        for (int c = 0; c < TILE; c += CHUNK_W)
            live |= uint32_t((lo[r] <= T(tx0 + c + CHUNK_W - 1)) & (hi[r] >= T(tx0 + c)) & (c < tw))
                    << ((py0 - ty0 + r) / CHUNK_H * CHUNKS_X + c / CHUNK_W);
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

// A projected value of lane l: a scalar is its own lane 0.
template <typename T> T at(T x, int) { return x; }
inline float at(F8 x, int l) { return x[l]; }
inline bool at(M8 m, int l) { return lanes::lane(m, l); }

// Writes lane l of a projection as Gaussian i's outputs: zeros where culled.
template <typename T, typename P>
void store_projected(const P& p, int l, int64_t i, T* means2d, T* conics, T* opacities, T* colors, T* depths,
                     T* extents, int32_t* radii) {
    const bool vis = at(p.radius, l) > 0, in_depth = at(p.in_depth, l);
    means2d[2 * i] = in_depth ? at(p.mean2d.x, l) : T(0);
    means2d[2 * i + 1] = in_depth ? at(p.mean2d.y, l) : T(0);
    conics[3 * i] = vis ? at(p.conic.a, l) : T(0);
    conics[3 * i + 1] = vis ? at(p.conic.b, l) : T(0);
    conics[3 * i + 2] = vis ? at(p.conic.c, l) : T(0);
    opacities[i] = vis ? at(p.opacity, l) : T(0);
    colors[3 * i] = vis ? at(p.color.x, l) : T(0);
    colors[3 * i + 1] = vis ? at(p.color.y, l) : T(0);
    colors[3 * i + 2] = vis ? at(p.color.z, l) : T(0);
    depths[i] = vis ? at(p.depth, l) : T(0);
    extents[2 * i] = vis ? at(p.extent.x, l) : T(0);
    extents[2 * i + 1] = vis ? at(p.extent.y, l) : T(0);
    radii[i] = vis ? int(at(p.radius, l)) : 0;
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
                    store_projected(p, l, i0 + l, means2d, conics, opacities, colors, depths, extents, radii);
            }
            return;
        }
    }
#pragma omp parallel for schedule(dynamic, 512)
    for (int64_t i = 0; i < N; ++i) {
        const Projected<T> p = project_gaussian(gaussian_in(i, means, log_scales, quats, logits, sh, K_sh), cam, sh_degree, antialiased);
        store_projected(p, 0, i, means2d, conics, opacities, colors, depths, extents, radii);
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

namespace {

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
    const size_t M = keys.size();
    keys_tmp.resize(M);
    order_tmp.resize(M);
    for (int shift = 0; shift < int(8 * sizeof(Key)); shift += 8) {
        size_t count[257] = {};
        for (size_t m = 0; m < M; ++m) count[((keys[m] >> shift) & 0xff) + 1]++;
        if (count[((keys.empty() ? 0 : keys[0]) >> shift & 0xff) + 1] == M) continue;  // one digit: already in order
        for (int d = 0; d < 256; ++d) count[d + 1] += count[d];
        for (size_t m = 0; m < M; ++m) {
            const size_t pos = count[(keys[m] >> shift) & 0xff]++;
            keys_tmp[pos] = keys[m];
            order_tmp[pos] = order[m];
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
            T lo[TILE], hi[TILE];
            for (int r = 0; r < TILE; ++r)  // the tile row's spans at once: a vector loop
                spans.columns_f(T(py0 + r) + T(0.5) - spans.my, lo[r], hi[r]);
            for (int tx = x0; tx <= x1; ++tx) {
                const uint32_t mask = chunk_mask(lo, hi, py0, py1, tx * TILE, ty0, std::min(TILE, width - tx * TILE));
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
    // tile-major lists by a counting sort, stable in depth order; g_pairs is its inverse
    offsets.assign(size_t(tiles_x) * tiles_y + 1, 0);
    for (int64_t m = 0; m < M; ++m)
        for (int32_t j = 0; j < g_count[m + 1]; ++j) offsets[box_tile[box_start[m] + j] + 1]++;
    std::partial_sum(offsets.begin(), offsets.end(), offsets.begin());
    ids.resize(pairs);
    bins.masks.resize(pairs);
    bins.g_pairs.resize(pairs);
    std::vector<int32_t> fill(offsets.begin(), offsets.end() - 1);
    for (int64_t m = 0; m < M; ++m)
        for (int32_t j = 0; j < g_count[m + 1]; ++j) {
            const int64_t b = box_start[m] + j;
            const int32_t pos = fill[box_tile[b]]++;
            ids[pos] = order[m];
            bins.masks[pos] = int32_t(box_mask[b]);
            bins.g_pairs[g_offsets[m] + j] = pos;
        }
}

// Per-Gaussian sums of per-pair values, in parallel over Gaussians; each sums its
// pairs in a fixed order, so results are bitwise reproducible. A pair holds the
// fields of outs back to back, widths[o] values for outs[o] (widths ends with 0);
// outs[o][g * widths[o] + j] is written for visible Gaussians only.
template <typename T>
void reduce_pairs(const BinsView& b, const T* pair_vals, T* const* outs, const int* widths) {
    int W = 0;
    for (int o = 0; widths[o] > 0; ++o) W += widths[o];
#pragma omp parallel for schedule(dynamic, 512)
    for (int64_t m = 0; m < b.M; ++m) {
        T acc[16] = {};
        for (int32_t q = b.g_offsets[m]; q < b.g_offsets[m + 1]; ++q) {
            const T* v = pair_vals + int64_t(b.g_pairs[q]) * W;
            for (int c = 0; c < W; ++c) acc[c] += v[c];
        }
        const int64_t g = b.order[m];
        for (int o = 0, c = 0; widths[o] > 0; c += widths[o], ++o)
            for (int j = 0; j < widths[o]; ++j) outs[o][g * widths[o] + j] = acc[c + j];
    }
}

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
            const int nseg = chunk_list(uint32_t(masks[k]), tx0, ty0, L.mean2d.y, seg_p, seg_x, seg_dy0, seg_dy1);
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
                    T a = done[p] == T(0) ? abuf[sgi][i] : T(0);
                    const T tr = trans[p];
                    const T stop = blend_stops(tr * (T(1) - a)) ? T(1) : T(0);
                    a = stop > T(0) ? T(0) : a;  // a is now the alpha taken (0: nothing changes)
                    const T w = a * tr;
                    c0[p] += w * L.color[0];
                    c1[p] += w * L.color[1];
                    c2[p] += w * L.color[2];
                    dep[p] += w * L.depth;
                    trans[p] = tr * (T(1) - a);
                    // median depth: the Gaussian at which the transmittance falls to 0.5
                    med[p] = (tr > T(0.5) && trans[p] <= T(0.5)) ? L.depth : med[p];
                    lst[p] = a > T(0) ? ent : lst[p];
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
            T w_sum = 0;
            for (int i = 0; i < CHUNK; ++i) {
                w_sum += w_lane[i];
                n_live -= int(stop_lane[i]);
            }
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
    std::vector<T> pair_grad(pairs * NG, T(0));
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
        const int32_t start = offsets[t];
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
            const int nseg = chunk_list(uint32_t(masks[k]), tx0, ty0, L.mean2d.y, seg_p, seg_x, seg_dy0, seg_dy1);
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
    reduce_pairs(bins, pair_grad.data(), outs, widths);
}

#define SPLAT_INSTANTIATE(T)                                                                                              \
    template void project_forward<T>(int64_t, const T*, const T*, const T*, const T*, const T*, int, int, bool,           \
                                     const CameraParams<T>&, T*, T*, T*, T*, T*, T*, int32_t*);                           \
    template void project_backward<T>(int64_t, const T*, const T*, const T*, const T*, const T*, int, int, bool,          \
                                      const CameraParams<T>&, const int32_t*, const T*, const T*, const T*, const T*,     \
                                      const T*, T*, T*, T*, T*, T*);                                                      \
    template void bin_gaussians<T>(int64_t, const T*, const T*, const T*, const T*, const T*, const int32_t*, int, int, \
                                   TileBins&);                                                                         \
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
