// Front-to-back blend: one block of 16x16 threads per tile, one thread per
// pixel, the tile's Gaussians staged through shared memory in batches of 256.
// The per-pixel step is splat/blend.h (shared with the CPU backend).
#include "blend_batch.cuh"
#include "splat/blend.h"

namespace splat {
namespace gpu {

namespace {

constexpr int THREADS = BLEND_THREADS;
constexpr unsigned FULL = FULL_MASK;

__device__ unsigned long long to_fixed(double v) { return (unsigned long long)(v * CONTRIB_SCALE + 0.5); }

// CONTRIB: also sum alpha T per Gaussian (warp sums, then one integer atomic per
// warp) and per (label, Gaussian). Without it the inner loop is the bare blend.
template <typename T, bool CONTRIB>
__global__ void __launch_bounds__(THREADS)
    blend_forward_kernel(ConstProjected<T> p, int64_t N, int width, int height, const int32_t* __restrict__ ranges,
                         const int32_t* __restrict__ ids, const T* __restrict__ background, T* color, T* alpha,
                         T* depth, T* trans_final, T* depth_sum, T* median_depth,
                         int32_t* last_out, unsigned long long* contrib, const int64_t* __restrict__ labels,
                         int num_labels, unsigned long long* label_contrib) {
    __shared__ Batch<T> s;
    const TilePixel tp(width, height);
    const int tile = tp.tile, px = tp.px, py = tp.py;
    const bool inside = tp.inside;
    const int64_t pix = tp.pix;
    const T fx = T(px) + T(0.5), fy = T(py) + T(0.5);
    const int start = ranges[2 * tile], end = ranges[2 * tile + 1];
    const int label = CONTRIB && labels && inside ? int(labels[pix]) : 0;

    T trans = T(1), c0 = 0, c1 = 0, c2 = 0, dz = 0, med = 0;  // med: depth where T falls to 0.5
    int last = 0;
    bool done = !inside;
    for (int b0 = start; b0 < end; b0 += THREADS) {
        // the whole tile is done: stop loading
        if (__syncthreads_count(done) == THREADS) break;
        const int k = b0 + int(threadIdx.x);
        if (k < end) s.load(threadIdx.x, ids[k], p);
        __syncthreads();
        const int nb = min(THREADS, end - b0);
        for (int j = 0; j < nb; ++j) {
            if (CONTRIB) {
                if (__all_sync(FULL, done)) break;  // warp-wide: the sums below need every lane
            } else if (done) {
                break;
            }
            T w = 0;
            if (!done) {
                const Sym2<T> conic = {s.ca[j], s.cb[j], s.cc[j]};
                const T a = alpha_taken(s.op[j], gaussian_sigma(conic, fx - s.mx[j], fy - s.my[j]));
                if (a > T(0)) {
                    T stop;
                    w = blend_step(a, s.r[j], s.g[j], s.b[j], s.z[j], trans, c0, c1, c2, dz, med, stop);
                    if (stop > T(0)) {
                        done = true;
                    } else {
                        last = b0 + j - start + 1;
                    }
                }
            }
            if (CONTRIB) {
                if (__any_sync(FULL, w > T(0))) {
                    const int64_t gid = s.id[j];
                    const T sum = warp_sum(w);
                    if ((threadIdx.x & 31) == 0) atomicAdd(contrib + gid, to_fixed(double(sum)));
                    if (label_contrib && w > T(0)) {
                        const int64_t c = gid / N, g = gid - c * N;
                        atomicAdd(label_contrib + (c * num_labels + label) * N + g, to_fixed(double(w)));
                    }
                }
            }
        }
        __syncthreads();
    }
    if (!inside) return;
    pixel_finish(c0, c1, c2, trans, dz, background + 3 * tp.cam, color + 3 * pix, alpha[pix], depth[pix]);
    trans_final[pix] = trans;  // kept as is: 1 - alpha loses digits when T is small
    depth_sum[pix] = dz;
    median_depth[pix] = med;
    last_out[pix] = last;
}

}  // namespace

template <typename T>
void blend_forward(const ConstProjected<T>& p, int C, int64_t N, int width, int height, const int32_t* ranges,
                   const int32_t* ids, const T* background, T* color, T* alpha, T* depth, T* trans_final,
                   T* depth_sum, T* median_depth, int32_t* last, unsigned long long* contrib, const int64_t* labels, int num_labels, unsigned long long* label_contrib,
                   cudaStream_t stream) {
    const int tiles = ((width + TILE - 1) / TILE) * ((height + TILE - 1) / TILE) * C;
    if (tiles == 0) return;
    if (contrib)
        blend_forward_kernel<T, true><<<tiles, THREADS, 0, stream>>>(p, N, width, height, ranges, ids, background, color,
                                                                     alpha, depth, trans_final, depth_sum, median_depth, last, contrib, labels,
                                                                     num_labels, label_contrib);
    else
        blend_forward_kernel<T, false><<<tiles, THREADS, 0, stream>>>(p, N, width, height, ranges, ids, background, color,
                                                                      alpha, depth, trans_final, depth_sum, median_depth, last, nullptr, nullptr, 0,
                                                                      nullptr);
}

template void blend_forward<float>(const ConstProjected<float>&, int, int64_t, int, int, const int32_t*, const int32_t*,
                                   const float*, float*, float*, float*, float*, float*, float*, int32_t*, unsigned long long*, const int64_t*, int,
                                   unsigned long long*, cudaStream_t);
template void blend_forward<double>(const ConstProjected<double>&, int, int64_t, int, int, const int32_t*,
                                    const int32_t*, const double*, double*, double*, double*, double*, double*, double*, int32_t*,
                                    unsigned long long*,
                                    const int64_t*, int, unsigned long long*, cudaStream_t);

}  // namespace gpu
}  // namespace splat
