// CPU training ops: fused SSIM (forward and backward) and a fused Adam step, over the
// shared math in splat/ssim.h and splat/adam.h. OpenMP over rows; every output element
// is written by one thread in a fixed order, so results are deterministic.
// Registered in bindings.cpp (one extension: one build).
#include "train_ops.h"

#include <algorithm>
#include <cmath>

#include "glue/checks.h"
#include "splat/adam.h"
#include "splat/sgld.h"
#include "splat/ssim.h"

namespace {

constexpr int R = splat::SSIM_WINDOW / 2;

// Separable blur of an [H, W, C] image (channel-interleaved) with zero padding: out = g * in.
// C is a compile-time constant so the channel loops unroll and vectorise; the taps of each
// output are summed in ascending order (the ones outside the image left out), so the result
// does not depend on the thread count.
template <int C, typename T>
void blur(const T* in, T* out, T* tmp, int H, int W, const T* g) {
_Pragma("omp parallel for schedule(static)")
    for (int y = 0; y < H; ++y) {
        const T* row = in + int64_t(y) * W * C;
        for (int x = 0; x < W; ++x) {
            T acc[C] = {};
            const int k0 = std::max(-R, -x), k1 = std::min(R, W - 1 - x);
            for (int k = k0; k <= k1; ++k) {
                const T* s = row + int64_t(x + k) * C;
                const T w = g[k + R];
                for (int c = 0; c < C; ++c) acc[c] += w * s[c];
            }
            T* o = tmp + (int64_t(y) * W + x) * C;
            for (int c = 0; c < C; ++c) o[c] = acc[c];
        }
    }
_Pragma("omp parallel for schedule(static)")
    for (int y = 0; y < H; ++y) {
        T* o = out + int64_t(y) * W * C;
        for (int i = 0; i < W * C; ++i) o[i] = 0;
        const int k0 = std::max(-R, -y), k1 = std::min(R, H - 1 - y);
        for (int k = k0; k <= k1; ++k) {
            const T* s = tmp + int64_t(y + k) * W * C;
            const T w = g[k + R];
            for (int i = 0; i < W * C; ++i) o[i] += w * s[i];
        }
    }
}

template <typename T>
std::vector<T> window() {
    double w[splat::SSIM_WINDOW];
    splat::ssim_window(w);
    return std::vector<T>(w, w + splat::SSIM_WINDOW);
}

}  // namespace

namespace splat {
namespace train_ops {

static void check_images(const torch::Tensor& a, const torch::Tensor& b) {
    splat::glue::check(a, "image", at::kCPU, a.scalar_type(), {-1, -1, 3});
    splat::glue::check(b, "target", at::kCPU, a.scalar_type(), {a.size(0), a.size(1), 3});
    TORCH_CHECK(a.scalar_type() == at::kFloat || a.scalar_type() == at::kDouble, "image must be float32 or float64");
}

// Returns (ssim map [H, W, 3], moments [H, W, 15] = mx, my, exx, eyy, exy per channel).
std::vector<torch::Tensor> ssim_fwd(torch::Tensor a, torch::Tensor b) {
    check_images(a, b);
    const int H = a.size(0), W = a.size(1);
    auto prod = torch::empty({H, W, 15}, a.options());
    auto moments = torch::empty({H, W, 15}, a.options()), tmp = torch::empty({H, W, 15}, a.options());
    auto map = torch::empty({H, W, 3}, a.options());
    AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "ssim_fwd", [&] {
        const scalar_t* x = a.data_ptr<scalar_t>();
        const scalar_t* y = b.data_ptr<scalar_t>();
        scalar_t* p = prod.data_ptr<scalar_t>();
_Pragma("omp parallel for schedule(static)")
        for (int64_t i = 0; i < int64_t(H) * W; ++i)
            for (int c = 0; c < 3; ++c) {
                const scalar_t xv = x[3 * i + c], yv = y[3 * i + c];
                scalar_t* q = p + 15 * i + 5 * c;
                q[0] = xv, q[1] = yv, q[2] = xv * xv, q[3] = yv * yv, q[4] = xv * yv;
            }
        const auto g = window<scalar_t>();
        scalar_t* m = moments.data_ptr<scalar_t>();
        blur<15>(p, m, tmp.data_ptr<scalar_t>(), H, W, g.data());
        scalar_t* s = map.data_ptr<scalar_t>();
_Pragma("omp parallel for schedule(static)")
        for (int64_t i = 0; i < int64_t(H) * W; ++i)
            for (int c = 0; c < 3; ++c) {
                const scalar_t* q = m + 15 * i + 5 * c;
                s[3 * i + c] = splat::ssim_pixel(q[0], q[1], q[2], q[3], q[4]);
            }
    });
    return {map, moments};
}

// dL/dimage from dL/dmap [H, W, 3].
torch::Tensor ssim_bwd(torch::Tensor a, torch::Tensor b, torch::Tensor moments, torch::Tensor v_map) {
    check_images(a, b);
    const int H = a.size(0), W = a.size(1);
    splat::glue::check(moments, "moments", at::kCPU, a.scalar_type(), {H, W, 15});
    splat::glue::check(v_map, "v_map", at::kCPU, a.scalar_type(), {H, W, 3});
    auto d = torch::empty({H, W, 9}, a.options()), bd = torch::empty({H, W, 9}, a.options());
    auto tmp = torch::empty({H, W, 9}, a.options());
    auto v_a = torch::empty({H, W, 3}, a.options());
    AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "ssim_bwd", [&] {
        const scalar_t* m = moments.data_ptr<scalar_t>();
        const scalar_t* v = v_map.data_ptr<scalar_t>();
        scalar_t* dp = d.data_ptr<scalar_t>();
_Pragma("omp parallel for schedule(static)")
        for (int64_t i = 0; i < int64_t(H) * W; ++i)
            for (int c = 0; c < 3; ++c) {
                const scalar_t* q = m + 15 * i + 5 * c;
                scalar_t* o = dp + 9 * i + 3 * c;
                splat::ssim_pixel_vjp(q[0], q[1], q[2], q[3], q[4], v[3 * i + c], o[0], o[1], o[2]);
            }
        const auto g = window<scalar_t>();
        scalar_t* bp = bd.data_ptr<scalar_t>();
        blur<9>(dp, bp, tmp.data_ptr<scalar_t>(), H, W, g.data());
        const scalar_t* x = a.data_ptr<scalar_t>();
        const scalar_t* y = b.data_ptr<scalar_t>();
        scalar_t* out = v_a.data_ptr<scalar_t>();
_Pragma("omp parallel for schedule(static)")
        for (int64_t i = 0; i < int64_t(H) * W; ++i)
            for (int c = 0; c < 3; ++c) {
                const scalar_t* q = bp + 9 * i + 3 * c;
                out[3 * i + c] = q[0] + scalar_t(2) * x[3 * i + c] * q[1] + y[3 * i + c] * q[2];
            }
    });
    return v_a;
}

// In-place Adam step of one parameter tensor and its moments (see train_ops.h for lead).
void adam_step(torch::Tensor p, torch::Tensor g, torch::Tensor m, torch::Tensor v, double lr, double beta1, double beta2,
               double eps, int64_t step, int64_t lead, double lr_rest, int64_t used) {
    const auto dt = p.scalar_type();
    TORCH_CHECK(dt == at::kFloat || dt == at::kDouble, "parameter must be float32 or float64");
    for (auto* t : {&g, &m, &v}) TORCH_CHECK(t->sizes() == p.sizes(), "adam: shapes differ");
    for (auto* t : {&p, &g, &m, &v}) {
        TORCH_CHECK(t->device().is_cpu() && t->is_contiguous() && t->scalar_type() == dt,
                    "adam: tensors must be contiguous CPU tensors of one dtype");
    }
    const int64_t n = p.numel();
    const int64_t row = p.dim() > 0 && p.size(0) > 0 ? n / p.size(0) : 1;
    TORCH_CHECK(lead >= 0 && lead <= row, "adam: lead ", lead, " outside a row of ", row);
    TORCH_CHECK(used >= 0 && used <= row, "adam: used ", used, " outside a row of ", row);
    const double bc1 = 1 - std::pow(beta1, double(step));
    const double step_size = lr / bc1, step_size_rest = (lead > 0 ? lr_rest : lr) / bc1;
    const double inv_bc2 = 1 / (1 - std::pow(beta2, double(step)));
    AT_DISPATCH_FLOATING_TYPES(dt, "adam_step", [&] {
        scalar_t* pp = p.data_ptr<scalar_t>();
        const scalar_t* gp = g.data_ptr<scalar_t>();
        scalar_t* mp = m.data_ptr<scalar_t>();
        scalar_t* vp = v.data_ptr<scalar_t>();
        auto update = [&](int64_t i, double size) {
            pp[i] = splat::adam_update<scalar_t>(pp[i], gp[i], mp[i], vp[i], scalar_t(beta1), scalar_t(beta2),
                                                 scalar_t(1 - beta1), scalar_t(1 - beta2), scalar_t(size),
                                                 scalar_t(inv_bc2), scalar_t(eps));
        };
        if (lead == 0 && used == row) {
_Pragma("omp parallel for schedule(static)")
            for (int64_t i = 0; i < n; ++i) update(i, step_size);
        } else {
            const int64_t rows = n / row, lead_used = std::min(lead, used);
_Pragma("omp parallel for schedule(static)")
            for (int64_t r = 0; r < rows; ++r) {
                for (int64_t i = r * row; i < r * row + lead_used; ++i) update(i, step_size);
                for (int64_t i = r * row + lead_used; i < r * row + used; ++i) update(i, step_size_rest);
            }
        }
    });
}

// means += the SGLD noise of every Gaussian (eps [N, 3] drawn by the caller), in place.
void sgld_add(torch::Tensor means, torch::Tensor log_scales, torch::Tensor quats, torch::Tensor opacity_logits,
              torch::Tensor eps, double min_opacity, double scale) {
    const auto dt = means.scalar_type();
    TORCH_CHECK(dt == at::kFloat || dt == at::kDouble, "means must be float32 or float64");
    const int64_t n = means.size(0);
    splat::glue::check(means, "means", at::kCPU, dt, {n, 3});
    splat::glue::check(log_scales, "log_scales", at::kCPU, dt, {n, 3});
    splat::glue::check(quats, "quats", at::kCPU, dt, {n, 4});
    splat::glue::check(opacity_logits, "opacity_logits", at::kCPU, dt, {n});
    splat::glue::check(eps, "eps", at::kCPU, dt, {n, 3});
    AT_DISPATCH_FLOATING_TYPES(dt, "sgld_add", [&] {
        scalar_t* m = means.data_ptr<scalar_t>();
        const scalar_t* ls = log_scales.data_ptr<scalar_t>();
        const scalar_t* q = quats.data_ptr<scalar_t>();
        const scalar_t* o = opacity_logits.data_ptr<scalar_t>();
        const scalar_t* e = eps.data_ptr<scalar_t>();
_Pragma("omp parallel for schedule(static)")
        for (int64_t i = 0; i < n; ++i) {
            const auto d = splat::sgld_noise<scalar_t>({q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]},
                                                      {ls[3 * i], ls[3 * i + 1], ls[3 * i + 2]}, o[i],
                                                      {e[3 * i], e[3 * i + 1], e[3 * i + 2]}, scalar_t(min_opacity),
                                                      scalar_t(scale));
            m[3 * i] += d.x, m[3 * i + 1] += d.y, m[3 * i + 2] += d.z;
        }
    });
}

}  // namespace train_ops
}  // namespace splat
