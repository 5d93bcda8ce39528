// Instantiates every shared math header as device code, so that a plain
// `nvcc -c cuda/check_headers.cu` checks the GPU side of the math on a machine
// without a GPU (CI does this). No PyTorch header may appear here.
#include <cuda_runtime.h>

#include "splat/adam.h"
#include "splat/blend.h"
#include "splat/gaussian.h"
#include "splat/sgld.h"
#include "splat/ssim.h"
#include "splat/tiles.h"

namespace {

template <typename T>
__global__ void train_math_kernel(int n, T* x) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    T m = x[i], v = x[i] * x[i], v_mx, v_exx, v_exy;
    x[i] = splat::adam_update(x[i], T(0.1), m, v, T(0.9), T(0.999), T(0.1), T(0.001), T(1e-3), T(1), T(1e-15));
    splat::ssim_pixel_vjp(x[i], T(0.5), T(0.3), T(0.3), T(0.2), T(1), v_mx, v_exx, v_exy);
    x[i] += splat::ssim_pixel(x[i], T(0.5), T(0.3), T(0.3), T(0.2)) + v_mx + v_exx + v_exy;
    const splat::Vec3<T> d = splat::sgld_noise<T>({T(1), x[i], T(0), T(0)}, {T(-2), T(-2), x[i]}, T(-5),
                                                 {T(1), T(0), T(-1)}, T(0.005), T(1e-3));
    x[i] += d.x + d.y + d.z;
}

template <typename T>
__global__ void project_kernel(int n, const T* means, const T* log_scales, const T* quats, const T* logits, const T* sh,
                               int K_sh, splat::CameraParams<T> cam, T* out, T* grad) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const splat::GaussianIn<T> g = {means + 3 * i, log_scales + 3 * i, quats + 4 * i, logits[i], sh + 3 * K_sh * i};
    const splat::Projected<T> p = splat::project_gaussian(g, cam, 3, true);
    out[i] = p.mean2d.x + p.conic.a + p.opacity + p.color.x + p.depth + p.extent.x + T(p.radius);
    splat::GaussianGrad<T> gg = {};
    gg.sh = grad + 64 * i;
    splat::project_gaussian_vjp(g, cam, 3, true, p.radius > 0, splat::Vec2<T>{1, 1}, splat::Sym2<T>{1, 1, 1}, T(1),
                                splat::Vec3<T>{1, 1, 1}, T(1), gg);
    grad[64 * i + 48] = gg.mean[0] + gg.log_scale[0] + gg.quat[0] + gg.logit;
}

template <typename T>
__global__ void blend_kernel(int n, const T* m, T* out) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const splat::Sym2<T> conic = {m[0], m[1], m[2]};
    const splat::Vec2<T> mean = {m[3], m[4]};
    T alpha;
    const bool counts = splat::gaussian_alpha(conic, mean, m[5], T(i) + T(0.5), T(0.5), alpha);
    splat::Sym2<T> vc = {0, 0, 0};
    splat::Vec2<T> vm = {0, 0};
    T vo = 0;
    splat::gaussian_alpha_vjp(conic, mean, m[5], T(i) + T(0.5), T(0.5), T(1), vc, vm, vo);
    splat::PixelGrad<T> pg = {{1, 1, 1}, 1, 1, T(0.5)};
    splat::PixelBack<T> st = {T(0.5), {0, 0, 0}, 0};
    const T color[3] = {1, 1, 1};
    T v_color[3], v_depth;
    const T va = splat::blend_step_vjp(pg, st, alpha, color, T(2), v_color, v_depth);
    const splat::RowSpans<T> spans(conic, mean, m[5]);
    T x0, x1;
    spans.columns_f(T(i) + T(0.5) - mean.y, x0, x1);
    T trans = T(0.5), S = 0, w;
    const T va_dot = splat::blend_step_vjp_dot(T(1), T(0.25), trans, S, alpha, w);
    out[i] = (counts ? alpha : T(0)) + vc.a + vm.x + vo + va + v_color[0] + v_depth + (x1 - x0) + va_dot + w +
             T(splat::blend_stops(alpha));
}

}  // namespace

// Host entry points (never called; they make nvcc emit both instantiations).
void splat_check_headers_float(int n, const float* a, float* b, cudaStream_t s) {
    splat::CameraParams<float> cam = {};
    project_kernel<float><<<1, 32, 0, s>>>(n, a, a, a, a, a, 16, cam, b, b);
    blend_kernel<float><<<1, 32, 0, s>>>(n, a, b);
    train_math_kernel<float><<<1, 32, 0, s>>>(n, b);
}

void splat_check_headers_double(int n, const double* a, double* b, cudaStream_t s) {
    splat::CameraParams<double> cam = {};
    project_kernel<double><<<1, 32, 0, s>>>(n, a, a, a, a, a, 16, cam, b, b);
    blend_kernel<double><<<1, 32, 0, s>>>(n, a, b);
    train_math_kernel<double><<<1, 32, 0, s>>>(n, b);
}
