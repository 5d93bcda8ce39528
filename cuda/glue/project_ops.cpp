// Glue of the CUDA projection: checks inputs by name, allocates outputs,
// launches cuda/project.cu on the current stream. Registered as torch.ops.splat_cuda.*.
#include "common.h"

namespace splat {
namespace glue {

bool g_poison = false;

namespace {

struct Gaussians {
    const at::Tensor &means, &log_scales, &quats, &logits, &sh;
    int64_t N() const { return means.size(0); }
    void check_all() const {
        const auto dt = means.scalar_type();
        TORCH_CHECK(dt == at::kFloat || dt == at::kDouble, "means must be float32 or float64");
        check(means, "means", at::kCUDA, dt, {-1, 3});
        check(log_scales, "log_scales", at::kCUDA, dt, {N(), 3});
        check(quats, "quats", at::kCUDA, dt, {N(), 4});
        check(logits, "opacity_logits", at::kCUDA, dt, {N()});
        check(sh, "sh", at::kCUDA, dt, {N(), -1, 3});
        TORCH_CHECK(sh.size(1) <= 16, "sh has ", sh.size(1), " coefficients per channel, at most 16 (degree 3)");
    }
    template <typename T> gpu::GaussianArrays<T> arrays() const {
        return {means.data_ptr<T>(), log_scales.data_ptr<T>(), quats.data_ptr<T>(), logits.data_ptr<T>(),
                sh.data_ptr<T>(), N(), int(sh.size(1))};
    }
};

std::vector<at::Tensor> project_fwd(const at::Tensor& means, const at::Tensor& log_scales, const at::Tensor& quats,
                                    const at::Tensor& logits, const at::Tensor& sh, const at::Tensor& viewmats,
                                    const at::Tensor& Ks, const at::Tensor& near_far, int64_t width, int64_t height,
                                    int64_t sh_degree, bool antialiased) {
    const Gaussians g{means, log_scales, quats, logits, sh};
    g.check_all();
    TORCH_CHECK((sh_degree + 1) * (sh_degree + 1) <= sh.size(1), "sh_degree ", sh_degree, " needs more SH coefficients");
    const c10::cuda::CUDAGuard guard(means.device());
    const int64_t C = viewmats.size(0), N = g.N();
    const auto opt = means.options();
    at::Tensor means2d = out({C, N, 2}, opt), conics = out({C, N, 3}, opt), opac = out({C, N}, opt);
    at::Tensor colors = out({C, N, 3}, opt), depths = out({C, N}, opt), extents = out({C, N, 2}, opt);
    at::Tensor radii = out({C, N}, opt.dtype(at::kInt));
    AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "project_fwd", [&] {
        const at::Tensor cams = camera_params<scalar_t>(viewmats, Ks, near_far, width, height, means.device());
        gpu::project_forward<scalar_t>(g.arrays<scalar_t>(), cams_ptr<scalar_t>(cams), int(C), int(sh_degree),
                                       antialiased,
                                       {means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(),
                                        opac.data_ptr<scalar_t>(), colors.data_ptr<scalar_t>(),
                                        depths.data_ptr<scalar_t>(), extents.data_ptr<scalar_t>(),
                                        radii.data_ptr<int32_t>()},
                                       stream());
        check_launch("project_fwd");
    });
    return {means2d, conics, opac, colors, depths, extents, radii};
}

std::vector<at::Tensor> project_bwd(const at::Tensor& means, const at::Tensor& log_scales, const at::Tensor& quats,
                                    const at::Tensor& logits, const at::Tensor& sh, const at::Tensor& viewmats,
                                    const at::Tensor& Ks, const at::Tensor& near_far, int64_t width, int64_t height,
                                    int64_t sh_degree, bool antialiased, const at::Tensor& radii,
                                    const at::Tensor& v_means2d, const at::Tensor& v_conics,
                                    const at::Tensor& v_opacities, const at::Tensor& v_colors,
                                    const at::Tensor& v_depths) {
    const Gaussians g{means, log_scales, quats, logits, sh};
    g.check_all();
    const c10::cuda::CUDAGuard guard(means.device());
    const int64_t C = viewmats.size(0), N = g.N();
    const auto dt = means.scalar_type();
    check(radii, "radii", at::kCUDA, at::kInt, {C, N});
    check(v_means2d, "v_means2d", at::kCUDA, dt, {C, N, 2});
    check(v_conics, "v_conics", at::kCUDA, dt, {C, N, 3});
    check(v_opacities, "v_opacities", at::kCUDA, dt, {C, N});
    check(v_colors, "v_colors", at::kCUDA, dt, {C, N, 3});
    check(v_depths, "v_depths", at::kCUDA, dt, {C, N});
    at::Tensor v_means = out(means.sizes(), means.options()), v_ls = out(log_scales.sizes(), log_scales.options());
    at::Tensor v_q = out(quats.sizes(), quats.options()), v_l = out(logits.sizes(), logits.options());
    at::Tensor v_sh = out(sh.sizes(), sh.options());
    AT_DISPATCH_FLOATING_TYPES(dt, "project_bwd", [&] {
        const at::Tensor cams = camera_params<scalar_t>(viewmats, Ks, near_far, width, height, means.device());
        gpu::project_backward<scalar_t>(g.arrays<scalar_t>(), cams_ptr<scalar_t>(cams), int(C), int(sh_degree),
                                        antialiased, radii.data_ptr<int32_t>(), v_means2d.data_ptr<scalar_t>(),
                                        v_conics.data_ptr<scalar_t>(), v_opacities.data_ptr<scalar_t>(),
                                        v_colors.data_ptr<scalar_t>(), v_depths.data_ptr<scalar_t>(),
                                        v_means.data_ptr<scalar_t>(), v_ls.data_ptr<scalar_t>(),
                                        v_q.data_ptr<scalar_t>(), v_l.data_ptr<scalar_t>(), v_sh.data_ptr<scalar_t>(),
                                        stream());
        check_launch("project_bwd");
    });
    return {v_means, v_ls, v_q, v_l, v_sh};
}

void set_poison(bool on) { g_poison = on; }

}  // namespace

TORCH_LIBRARY_FRAGMENT(splat_cuda, m) {
    m.def("set_poison", &set_poison);
    m.def("project_fwd", &project_fwd);
    m.def("project_bwd", &project_bwd);
}

}  // namespace glue
}  // namespace splat
