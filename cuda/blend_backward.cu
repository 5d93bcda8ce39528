// Back-to-front VJP of the blend: one block of 16x16 threads per tile, the
// tile's list walked from each pixel's last Gaussian towards the front, in
// shared-memory batches. Each Gaussian's gradients are summed over a warp
// (warp_sum16) and added by one atomic instruction per warp, its lanes writing
// neighbouring entries of one packed row. The per-pixel step is splat/blend.h.
#include "blend_batch.cuh"
#include "splat/blend.h"

namespace splat {
namespace gpu {

namespace {

constexpr int THREADS = BLEND_THREADS;

template <typename T>
__global__ void __launch_bounds__(THREADS)
    blend_backward_kernel(ConstProjected<T> p, int width, int height, const int32_t* __restrict__ ranges,
                          const int32_t* __restrict__ ids, const T* __restrict__ background,
                          const T* __restrict__ trans_final, const T* __restrict__ depth_sum,
                          const int32_t* __restrict__ last_in, const T* __restrict__ v_color,
                          const T* __restrict__ v_alpha, const T* __restrict__ v_depth, T* v_grad, int row) {
    __shared__ Batch<T> s;
    __shared__ int s_max_last;
    const TilePixel tp(width, height);
    const T fx = T(tp.px) + T(0.5), fy = T(tp.py) + T(0.5);
    const int start = ranges[2 * tp.tile];

    // incoming gradients and the back-walk state (pixels past the image: last = 0)
    T g0 = 0, g1 = 0, g2 = 0, gd = 0, ga = 0, tf = 0;
    int last = 0;
    if (tp.inside) {
        g0 = v_color[3 * tp.pix];
        g1 = v_color[3 * tp.pix + 1];
        g2 = v_color[3 * tp.pix + 2];
        tf = trans_final[tp.pix];
        pixel_finish_vjp(v_color + 3 * tp.pix, v_alpha[tp.pix], v_depth[tp.pix], tf, depth_sum[tp.pix],
                         background + 3 * tp.cam, gd, ga);
        last = last_in[tp.pix];
    }
    T trans = tf, s0 = 0, s1 = 0, s2 = 0, sd = 0;
    if (threadIdx.x == 0) s_max_last = 0;
    __syncthreads();
    atomicMax(&s_max_last, last);
    __syncthreads();
    const int max_last = s_max_last;
    // the last entry any lane of this warp takes: entries behind it are skipped warp-wide
    int warp_last = last;
    for (int o = 16; o > 0; o >>= 1) warp_last = max(warp_last, __shfl_xor_sync(FULL_MASK, warp_last, o));

    // batches [b_lo, b_hi) of the tile's list, back to front; slot j holds entry b_hi - 1 - j
    for (int b_hi = max_last; b_hi > 0; b_hi -= THREADS) {
        const int b_lo = max(0, b_hi - THREADS);
        __syncthreads();  // the previous batch is no longer read
        const int e = b_hi - 1 - int(threadIdx.x);
        if (e >= b_lo) s.load(threadIdx.x, ids[start + e], p);
        __syncthreads();
        const int nb = b_hi - b_lo;
        for (int j = 0; j < nb; ++j) {
            const int entry = b_hi - 1 - j;
            if (entry >= warp_last) continue;  // warp-uniform
            const T mx = s.mx[j], my = s.my[j], op = s.op[j];
            const Sym2<T> conic = {s.ca[j], s.cb[j], s.cc[j]};
            const T dx = fx - mx, dy = fy - my;
            const T sigma = gaussian_sigma(conic, dx, dy);
            const T G = gaussian_falloff(sigma);
            // a pixel that ended before this Gaussian, or skips it, takes nothing from it
            const T a = entry < last ? alpha_taken_g(op, sigma, G) : T(0);
            const bool counts = a > T(0);
            if (!__any_sync(FULL_MASK, counts)) continue;
            T v_mx = 0, v_my = 0, v_ca = 0, v_cb = 0, v_cc = 0, v_o = 0, v_r = 0, v_g = 0, v_b = 0, v_z = 0;
            T abs_x = 0, abs_y = 0;  // this pixel's |d loss / d mean2d| (absgrad densification)
            if (counts) {
                T w;
                T va = blend_step_vjp_s(g0, g1, g2, gd, ga, tf, trans, s0, s1, s2, sd, a, s.r[j], s.g[j], s.b[j],
                                        s.z[j], w);
                v_r = w * g0;
                v_g = w * g1;
                v_b = w * g2;
                v_z = w * gd;
                va = alpha_grad_passes(op, G) ? va : T(0);
                gaussian_alpha_vjp_g(conic, op, G, dx, dy, va, v_ca, v_cb, v_cc, v_mx, v_my, v_o);
                abs_x = fabs(v_mx);
                abs_y = fabs(v_my);
            }
            // in the order of a packed row (GRAD_* in kernels.h)
            T v[16] = {v_mx, v_my, v_ca, v_cb, v_cc, v_o, v_r, v_g, v_b, v_z, abs_x, abs_y, 0, 0, 0, 0};
            const T total = warp_sum16(v);
            const int lane = int(threadIdx.x) & 31, slot = lane >> 1;
            if (!(lane & 1) && slot < row) atomicAdd(v_grad + int64_t(s.id[j]) * row + slot, total);
        }
    }
}

}  // namespace

template <typename T>
void blend_backward(const ConstProjected<T>& p, int C, int64_t N, int width, int height, const int32_t* ranges,
                    const int32_t* ids, const T* background, const T* trans_final, const T* depth_sum,
                    const int32_t* last, const T* v_color, const T* v_alpha, const T* v_depth, T* v_grad,
                    bool absgrad, cudaStream_t stream) {
    (void)N;
    const int tiles = ((width + TILE - 1) / TILE) * ((height + TILE - 1) / TILE) * C;
    if (tiles == 0) return;
    blend_backward_kernel<T><<<tiles, THREADS, 0, stream>>>(p, width, height, ranges, ids, background, trans_final,
                                                            depth_sum, last, v_color, v_alpha, v_depth, v_grad,
                                                            absgrad ? GRAD_ROW_ABS : GRAD_ROW);
}

template void blend_backward<float>(const ConstProjected<float>&, int, int64_t, int, int, const int32_t*,
                                    const int32_t*, const float*, const float*, const float*, const int32_t*, const float*, const float*,
                                    const float*, float*, bool, cudaStream_t);
template void blend_backward<double>(const ConstProjected<double>&, int, int64_t, int, int, const int32_t*,
                                     const int32_t*, const double*, const double*, const double*, const int32_t*, const double*, const double*,
                                     const double*, double*, bool, cudaStream_t);

}  // namespace gpu
}  // namespace splat
