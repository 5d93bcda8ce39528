// PyTorch glue for the CPU backend: checks inputs by name, turns tensors into
// pointers, calls project_cpu.cpp, bin_cpu.cpp and blend_cpu.cpp. All math lives in cuda/include/splat.
#include <torch/extension.h>

#include "glue/checks.h"
#include "rasterize_cpu.h"
#include "train_ops.h"

namespace splat {
namespace glue {
bool g_poison = false;
}  // namespace glue
}  // namespace splat

namespace {

using splat::CameraParams;

using splat::glue::out;

void check(const torch::Tensor& t, const char* name, at::ScalarType dtype, std::vector<int64_t> shape) {
    splat::glue::check(t, name, at::kCPU, dtype, std::move(shape));
}

template <typename T>
CameraParams<T> camera(const torch::Tensor& viewmat, const torch::Tensor& K, int64_t width, int64_t height, double near,
                       double far) {
    check(viewmat, "viewmat", at::kDouble, {4, 4});
    check(K, "K", at::kDouble, {3, 3});
    TORCH_CHECK(width > 0 && height > 0, "image size must be positive");
    return splat::camera_params<T>(viewmat.data_ptr<double>(), K.data_ptr<double>(), int(width), int(height), near, far);
}

struct Params {
    torch::Tensor means, log_scales, quats, logits, sh;
    int64_t N() const { return means.size(0); }
    void check_all() const {
        const auto dt = means.scalar_type();
        TORCH_CHECK(dt == at::kFloat || dt == at::kDouble, "means must be float32 or float64");
        check(means, "means", dt, {-1, 3});
        check(log_scales, "log_scales", dt, {N(), 3});
        check(quats, "quats", dt, {N(), 4});
        check(logits, "opacity_logits", dt, {N()});
        check(sh, "sh", dt, {N(), -1, 3});
    }
};

std::vector<torch::Tensor> project_fwd(torch::Tensor means, torch::Tensor log_scales, torch::Tensor quats,
                                       torch::Tensor logits, torch::Tensor sh, torch::Tensor viewmat, torch::Tensor K,
                                       int64_t width, int64_t height, double near, double far, int64_t sh_degree,
                                       bool antialiased) {
    Params P{means, log_scales, quats, logits, sh};
    P.check_all();
    const int64_t N = P.N();
    TORCH_CHECK((sh_degree + 1) * (sh_degree + 1) <= sh.size(1), "sh_degree ", sh_degree, " needs more SH coefficients");
    auto opt = means.options();
    auto means2d = out({N, 2}, opt), conics = out({N, 3}, opt), opac = out({N}, opt);
    auto colors = out({N, 3}, opt), depths = out({N}, opt), extents = out({N, 2}, opt);
    auto radii = out({N}, opt.dtype(at::kInt));
    AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "project_fwd", [&] {
        splat::cpu::project_forward<scalar_t>(
            N, means.data_ptr<scalar_t>(), log_scales.data_ptr<scalar_t>(), quats.data_ptr<scalar_t>(),
            logits.data_ptr<scalar_t>(), sh.data_ptr<scalar_t>(), int(sh.size(1)), int(sh_degree), antialiased,
            camera<scalar_t>(viewmat, K, width, height, near, far), means2d.data_ptr<scalar_t>(),
            conics.data_ptr<scalar_t>(), opac.data_ptr<scalar_t>(), colors.data_ptr<scalar_t>(),
            depths.data_ptr<scalar_t>(), extents.data_ptr<scalar_t>(), radii.data_ptr<int32_t>());
    });
    return {means2d, conics, opac, colors, depths, extents, radii};
}

std::vector<torch::Tensor> project_bwd(torch::Tensor means, torch::Tensor log_scales, torch::Tensor quats,
                                       torch::Tensor logits, torch::Tensor sh, torch::Tensor viewmat, torch::Tensor K,
                                       int64_t width, int64_t height, double near, double far, int64_t sh_degree,
                                       bool antialiased, torch::Tensor radii, torch::Tensor v_means2d,
                                       torch::Tensor v_conics, torch::Tensor v_opacities, torch::Tensor v_colors,
                                       torch::Tensor v_depths) {
    Params P{means, log_scales, quats, logits, sh};
    P.check_all();
    const int64_t N = P.N();
    const auto dt = means.scalar_type();
    check(radii, "radii", at::kInt, {N});
    check(v_means2d, "v_means2d", dt, {N, 2});
    check(v_conics, "v_conics", dt, {N, 3});
    check(v_opacities, "v_opacities", dt, {N});
    check(v_colors, "v_colors", dt, {N, 3});
    check(v_depths, "v_depths", dt, {N});
    auto v_means = out(means.sizes(), means.options()), v_ls = out(log_scales.sizes(), log_scales.options()), v_q = out(quats.sizes(), quats.options());
    auto v_l = out(logits.sizes(), logits.options()), v_sh = out(sh.sizes(), sh.options());
    AT_DISPATCH_FLOATING_TYPES(dt, "project_bwd", [&] {
        splat::cpu::project_backward<scalar_t>(
            N, means.data_ptr<scalar_t>(), log_scales.data_ptr<scalar_t>(), quats.data_ptr<scalar_t>(),
            logits.data_ptr<scalar_t>(), sh.data_ptr<scalar_t>(), int(sh.size(1)), int(sh_degree), antialiased,
            camera<scalar_t>(viewmat, K, width, height, near, far), radii.data_ptr<int32_t>(),
            v_means2d.data_ptr<scalar_t>(), v_conics.data_ptr<scalar_t>(), v_opacities.data_ptr<scalar_t>(),
            v_colors.data_ptr<scalar_t>(), v_depths.data_ptr<scalar_t>(), v_means.data_ptr<scalar_t>(),
            v_ls.data_ptr<scalar_t>(), v_q.data_ptr<scalar_t>(), v_l.data_ptr<scalar_t>(), v_sh.data_ptr<scalar_t>());
    });
    return {v_means, v_ls, v_q, v_l, v_sh};
}

struct Projection {
    torch::Tensor means2d, conics, opacities, colors, depths, extents;
    int64_t N() const { return means2d.size(0); }
    void check_all() const {
        const auto dt = means2d.scalar_type();
        TORCH_CHECK(dt == at::kFloat || dt == at::kDouble, "means2d must be float32 or float64");
        check(means2d, "means2d", dt, {-1, 2});
        check(conics, "conics", dt, {N(), 3});
        check(opacities, "opacities", dt, {N()});
        check(colors, "colors", dt, {N(), 3});
        check(depths, "depths", dt, {N()});
        check(extents, "extents", dt, {N(), 2});
    }
};

std::vector<torch::Tensor> rasterize_fwd(torch::Tensor means2d, torch::Tensor conics, torch::Tensor opacities,
                                         torch::Tensor colors, torch::Tensor depths, torch::Tensor extents,
                                         torch::Tensor radii, int64_t width, int64_t height, torch::Tensor background,
                                         c10::optional<torch::Tensor> labels, int64_t num_labels) {
    Projection P{means2d, conics, opacities, colors, depths, extents};
    P.check_all();
    const int64_t N = P.N();
    check(background, "background", means2d.scalar_type(), {3});
    check(radii, "radii", at::kInt, {N});
    TORCH_CHECK(width > 0 && height > 0, "image size must be positive");
    const int64_t* lab = nullptr;
    if (labels.has_value()) {
        check(*labels, "labels", at::kLong, {height, width});
        TORCH_CHECK(num_labels > 0, "num_labels must be positive when labels are given");
        lab = labels->data_ptr<int64_t>();
    }
    auto opt = means2d.options();
    auto color = out({height, width, 3}, opt), alpha = out({height, width, 1}, opt);
    auto depth_sum = out({height, width, 1}, opt), trans_final = out({height, width, 1}, opt);
    auto depth = out({height, width, 1}, opt), median_depth = out({height, width, 1}, opt);
    auto last = out({height, width}, opt.dtype(at::kInt));
    auto contrib = out({N}, opt);
    auto label_contrib = out({lab ? num_labels : 0, N}, opt);
    splat::cpu::TileBins bins;
    AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_fwd", [&] {
        splat::cpu::bin_gaussians<scalar_t>(N, means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(),
                                            opacities.data_ptr<scalar_t>(), extents.data_ptr<scalar_t>(),
                                            depths.data_ptr<scalar_t>(), radii.data_ptr<int32_t>(), int(width),
                                            int(height), bins);
        splat::cpu::blend_forward<scalar_t>(
            N, means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(), opacities.data_ptr<scalar_t>(),
            colors.data_ptr<scalar_t>(), depths.data_ptr<scalar_t>(), splat::cpu::view(bins),
            int(width), int(height), background.data_ptr<scalar_t>(), lab, int(num_labels), color.data_ptr<scalar_t>(),
            alpha.data_ptr<scalar_t>(), depth.data_ptr<scalar_t>(), trans_final.data_ptr<scalar_t>(), depth_sum.data_ptr<scalar_t>(), last.data_ptr<int32_t>(), contrib.data_ptr<scalar_t>(),
            lab ? label_contrib.data_ptr<scalar_t>() : nullptr, median_depth.data_ptr<scalar_t>());
    });
    // the tile lists go back to Python, which keeps them for the backward pass
    std::vector<torch::Tensor> lists;
    for (const std::vector<int32_t>* v : {&bins.offsets, &bins.ids, &bins.masks, &bins.order, &bins.g_offsets, &bins.g_pairs}) {
        auto t = torch::empty({int64_t(v->size())}, torch::kInt);
        std::copy(v->begin(), v->end(), t.data_ptr<int32_t>());
        lists.push_back(t);
    }
    return {color, alpha, depth, depth_sum, trans_final, last, contrib, label_contrib, median_depth,
            lists[0], lists[1], lists[2], lists[3], lists[4], lists[5]};
}

std::vector<torch::Tensor> rasterize_bwd(torch::Tensor means2d, torch::Tensor conics, torch::Tensor opacities,
                                         torch::Tensor colors, torch::Tensor depths, torch::Tensor extents,
                                         std::vector<torch::Tensor> lists, torch::Tensor background,
                                         torch::Tensor trans_final, torch::Tensor depth_sum, torch::Tensor last,
                                         torch::Tensor v_color, torch::Tensor v_alpha, torch::Tensor v_depth,
                                         bool absgrad) {
    Projection P{means2d, conics, opacities, colors, depths, extents};
    P.check_all();
    const int64_t N = P.N(), H = trans_final.size(0), W = trans_final.size(1);
    const auto dt = means2d.scalar_type();
    check(trans_final, "trans_final", dt, {H, W, 1});
    check(depth_sum, "depth_sum", dt, {H, W, 1});
    check(background, "background", dt, {3});
    check(last, "last", at::kInt, {H, W});
    TORCH_CHECK(lists.size() == 6, "tile lists: expected 6 tensors");
    const char* names[6] = {"tile_offsets", "tile_ids", "chunk_masks", "order", "gaussian_offsets", "gaussian_pairs"};
    for (int i = 0; i < 6; ++i) check(lists[i], names[i], at::kInt, {-1});
    const torch::Tensor &offsets = lists[0], &ids = lists[1], &masks = lists[2];
    check(v_color, "v_color", dt, {H, W, 3});
    check(v_alpha, "v_alpha", dt, {H, W, 1});
    check(v_depth, "v_depth", dt, {H, W, 1});
    const int64_t tiles = ((W + splat::TILE - 1) / splat::TILE) * ((H + splat::TILE - 1) / splat::TILE);
    TORCH_CHECK(offsets.size(0) == tiles + 1, "tile_offsets does not match the image size");
    TORCH_CHECK(masks.size(0) == ids.size(0) && lists[5].size(0) == ids.size(0) && lists[4].size(0) == lists[3].size(0) + 1,
                "tile lists are inconsistent");
    const splat::cpu::BinsView bins = {offsets.data_ptr<int32_t>(), ids.data_ptr<int32_t>(), masks.data_ptr<int32_t>(),
                                       lists[3].data_ptr<int32_t>(), lists[4].data_ptr<int32_t>(),
                                       lists[5].data_ptr<int32_t>(), tiles, ids.size(0), lists[3].size(0)};
    auto opt = means2d.options();
    auto v_m = out({N, 2}, opt), v_c = out({N, 3}, opt), v_o = out({N}, opt);
    auto v_col = out({N, 3}, opt), v_d = out({N}, opt), v_abs = out({absgrad ? N : 0, 2}, opt);
    AT_DISPATCH_FLOATING_TYPES(dt, "rasterize_bwd", [&] {
        splat::cpu::blend_backward<scalar_t>(
            N, means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(), opacities.data_ptr<scalar_t>(),
            colors.data_ptr<scalar_t>(), depths.data_ptr<scalar_t>(),
            bins, int(W), int(H), background.data_ptr<scalar_t>(), trans_final.data_ptr<scalar_t>(),
            depth_sum.data_ptr<scalar_t>(), last.data_ptr<int32_t>(), v_color.data_ptr<scalar_t>(),
            v_alpha.data_ptr<scalar_t>(), v_depth.data_ptr<scalar_t>(), v_m.data_ptr<scalar_t>(), v_c.data_ptr<scalar_t>(),
            v_o.data_ptr<scalar_t>(), v_col.data_ptr<scalar_t>(), v_d.data_ptr<scalar_t>(),
            absgrad ? v_abs.data_ptr<scalar_t>() : nullptr);
    });
    return {v_m, v_c, v_o, v_col, v_d, v_abs};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.doc() = "splat CPU rasterizer and training ops (OpenMP)";
    m.def("set_poison", [](bool on) { splat::glue::g_poison = on; });
    m.def("project_fwd", &project_fwd);
    m.def("project_bwd", &project_bwd);
    m.def("rasterize_fwd", &rasterize_fwd);
    m.def("rasterize_bwd", &rasterize_bwd);
    m.def("ssim_fwd", &splat::train_ops::ssim_fwd);
    m.def("ssim_bwd", &splat::train_ops::ssim_bwd);
    m.def("adam_step", &splat::train_ops::adam_step);
    m.def("sgld_add", &splat::train_ops::sgld_add);
}
