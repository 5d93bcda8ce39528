// Glue of the CUDA tile rasterizer: binning (count, scan, emit, sort, ranges)
// and the blend forward and backward. Checks inputs by name, allocates every
// buffer through torch (so the caching allocator reuses them), launches
// cuda/bin.cu, cuda/sort.cu and cuda/blend_*.cu on the current stream.
#include "common.h"

namespace splat {
namespace glue {

namespace {

struct Projection {
    const at::Tensor &means2d, &conics, &opacities, &colors, &depths, &extents, &radii;
    int64_t C() const { return means2d.size(0); }
    int64_t N() const { return means2d.size(1); }
    void check_all() const {
        const auto dt = means2d.scalar_type();
        TORCH_CHECK(dt == at::kFloat || dt == at::kDouble, "means2d must be float32 or float64");
        check(means2d, "means2d", at::kCUDA, dt, {-1, -1, 2});
        check(conics, "conics", at::kCUDA, dt, {C(), N(), 3});
        check(opacities, "opacities", at::kCUDA, dt, {C(), N()});
        check(colors, "colors", at::kCUDA, dt, {C(), N(), 3});
        check(depths, "depths", at::kCUDA, dt, {C(), N()});
        check(extents, "extents", at::kCUDA, dt, {C(), N(), 2});
        check(radii, "radii", at::kCUDA, at::kInt, {C(), N()});
        TORCH_CHECK(C() * N() < std::numeric_limits<int32_t>::max(), "cameras x Gaussians must be below 2^31");
    }
    template <typename T> gpu::ConstProjected<T> arrays() const {
        return {means2d.data_ptr<T>(), conics.data_ptr<T>(), opacities.data_ptr<T>(), colors.data_ptr<T>(),
                depths.data_ptr<T>(), extents.data_ptr<T>(), radii.data_ptr<int32_t>()};
    }
};

int64_t num_tiles(int64_t C, int64_t width, int64_t height) {
    return C * ((width + TILE - 1) / TILE) * ((height + TILE - 1) / TILE);
}

// Sorted tile lists: ranges [tiles, 2] int32 and ids [pairs] int32 (camera * N + Gaussian).
template <typename T>
std::pair<at::Tensor, at::Tensor> bin(const Projection& P, int64_t width, int64_t height) {
    const int64_t C = P.C(), N = P.N(), CN = C * N, tiles = num_tiles(C, width, height);
    TORCH_CHECK(tiles < (int64_t(1) << 32), "too many tiles");
    const auto dev = P.means2d.options();
    const gpu::ConstProjected<T> p = P.arrays<T>();
    // one extra zero count, so that the scan's last entry is the total
    at::Tensor counts = at::zeros({CN + 1}, dev.dtype(at::kInt));
    at::Tensor offsets = at::empty({CN + 1}, dev.dtype(at::kLong));
    gpu::count_tiles<T>(p, CN, int(width), int(height), counts.data_ptr<int32_t>(), stream());
    at::Tensor scan_ws = at::empty({int64_t(gpu::scan_workspace_bytes(CN + 1)) + 1}, dev.dtype(at::kByte));
    gpu::exclusive_scan(counts.data_ptr<int32_t>(), offsets.data_ptr<int64_t>(), CN + 1, scan_ws.data_ptr<uint8_t>(),
                        size_t(scan_ws.numel()), stream());
    check_launch("tile binning");
    // the one host sync of a render: how many pairs to allocate
    const int64_t pairs = offsets[CN].item<int64_t>();
    TORCH_CHECK(pairs < std::numeric_limits<int32_t>::max(), "too many tile pairs (", pairs, ")");
    at::Tensor keys = at::empty({pairs}, dev.dtype(at::kLong)), keys_sorted = at::empty({pairs}, dev.dtype(at::kLong));
    at::Tensor vals = at::empty({pairs}, dev.dtype(at::kInt)), ids = at::empty({pairs}, dev.dtype(at::kInt));
    auto* k_in = reinterpret_cast<uint64_t*>(keys.data_ptr<int64_t>());
    auto* k_out = reinterpret_cast<uint64_t*>(keys_sorted.data_ptr<int64_t>());
    gpu::emit_pairs<T>(p, N, CN, int(width), int(height), offsets.data_ptr<int64_t>(), k_in, vals.data_ptr<int32_t>(),
                       stream());
    const int end_bit = gpu::sort_end_bit(tiles);
    at::Tensor sort_ws = at::empty({int64_t(gpu::sort_workspace_bytes(pairs, end_bit)) + 1}, dev.dtype(at::kByte));
    gpu::sort_pairs(k_in, k_out, vals.data_ptr<int32_t>(), ids.data_ptr<int32_t>(), pairs, end_bit,
                    sort_ws.data_ptr<uint8_t>(), size_t(sort_ws.numel()), stream());
    at::Tensor ranges = at::zeros({tiles, 2}, dev.dtype(at::kInt));
    gpu::tile_ranges(k_out, pairs, ranges.data_ptr<int32_t>(), stream());
    check_launch("tile sort");
    return {ranges, ids};
}

std::vector<at::Tensor> rasterize_fwd(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& opacities,
                                      const at::Tensor& colors, const at::Tensor& depths, const at::Tensor& extents,
                                      const at::Tensor& radii, int64_t width, int64_t height,
                                      const at::Tensor& background, const c10::optional<at::Tensor>& labels,
                                      int64_t num_labels, bool with_contributions) {
    const Projection P{means2d, conics, opacities, colors, depths, extents, radii};
    P.check_all();
    TORCH_CHECK(width > 0 && height > 0, "image size must be positive");
    const c10::cuda::CUDAGuard guard(means2d.device());
    const int64_t C = P.C(), N = P.N();
    check(background, "background", at::kCUDA, means2d.scalar_type(), {C, 3});
    const int64_t* lab = nullptr;
    if (labels.has_value()) {
        check(*labels, "labels", at::kCUDA, at::kLong, {C, height, width});
        TORCH_CHECK(num_labels > 0, "num_labels must be positive when labels are given");
        TORCH_CHECK(with_contributions, "labels need with_contributions");
        lab = labels->data_ptr<int64_t>();
    }
    const auto opt = means2d.options();
    at::Tensor color = out({C, height, width, 3}, opt), alpha = out({C, height, width, 1}, opt);
    at::Tensor depth_sum = out({C, height, width, 1}, opt), trans_final = out({C, height, width, 1}, opt);
    at::Tensor depth = out({C, height, width, 1}, opt), median = out({C, height, width, 1}, opt);
    at::Tensor last = out({C, height, width}, opt.dtype(at::kInt));
    // fixed-point sums, added to by integer atomics
    at::Tensor contrib_fx = at::zeros({with_contributions ? C * N : 0}, opt.dtype(at::kLong));
    at::Tensor label_fx = at::zeros({lab ? C * num_labels * N : 0}, opt.dtype(at::kLong));
    at::Tensor ranges, ids;
    AT_DISPATCH_FLOATING_TYPES(means2d.scalar_type(), "rasterize_fwd", [&] {
        std::tie(ranges, ids) = bin<scalar_t>(P, width, height);
        gpu::blend_forward<scalar_t>(
            P.arrays<scalar_t>(), int(C), N, int(width), int(height), ranges.data_ptr<int32_t>(),
            ids.data_ptr<int32_t>(), background.data_ptr<scalar_t>(), color.data_ptr<scalar_t>(),
            alpha.data_ptr<scalar_t>(), depth.data_ptr<scalar_t>(), trans_final.data_ptr<scalar_t>(), depth_sum.data_ptr<scalar_t>(), median.data_ptr<scalar_t>(), last.data_ptr<int32_t>(),
            with_contributions ? reinterpret_cast<unsigned long long*>(contrib_fx.data_ptr<int64_t>()) : nullptr, lab,
            int(num_labels), lab ? reinterpret_cast<unsigned long long*>(label_fx.data_ptr<int64_t>()) : nullptr,
            stream());
        check_launch("rasterize_fwd");
    });
    const double scale = 1.0 / gpu::CONTRIB_SCALE;
    at::Tensor contrib = contrib_fx.to(at::kDouble).mul_(scale).to(opt.dtype()).view({with_contributions ? C : 0, N});
    at::Tensor label_contrib = label_fx.to(at::kDouble).mul_(scale).to(opt.dtype()).view({lab ? C : 0, num_labels, N});
    return {color, alpha, depth, depth_sum, trans_final, last, contrib, label_contrib, ranges, ids, median};
}

std::vector<at::Tensor> rasterize_bwd(const at::Tensor& means2d, const at::Tensor& conics, const at::Tensor& opacities,
                                      const at::Tensor& colors, const at::Tensor& depths, const at::Tensor& extents,
                                      const at::Tensor& radii, const at::Tensor& ranges, const at::Tensor& ids,
                                      const at::Tensor& background, const at::Tensor& trans_final,
                                      const at::Tensor& depth_sum, const at::Tensor& last, const at::Tensor& v_color,
                                      const at::Tensor& v_alpha, const at::Tensor& v_depth, bool absgrad) {
    const Projection P{means2d, conics, opacities, colors, depths, extents, radii};
    P.check_all();
    const c10::cuda::CUDAGuard guard(means2d.device());
    const int64_t C = P.C(), N = P.N(), H = trans_final.size(1), W = trans_final.size(2);
    const auto dt = means2d.scalar_type();
    check(trans_final, "trans_final", at::kCUDA, dt, {C, H, W, 1});
    check(depth_sum, "depth_sum", at::kCUDA, dt, {C, H, W, 1});
    check(background, "background", at::kCUDA, dt, {C, 3});
    check(last, "last", at::kCUDA, at::kInt, {C, H, W});
    check(ranges, "tile_ranges", at::kCUDA, at::kInt, {num_tiles(C, W, H), 2});
    check(ids, "tile_ids", at::kCUDA, at::kInt, {-1});
    check(v_color, "v_color", at::kCUDA, dt, {C, H, W, 3});
    check(v_alpha, "v_alpha", at::kCUDA, dt, {C, H, W, 1});
    check(v_depth, "v_depth", at::kCUDA, dt, {C, H, W, 1});
    const auto opt = means2d.options();
    // summed into by atomics: zeros, never poisoned; one packed row per (camera,
    // Gaussian), handed on as views (the projection's backward takes them contiguous)
    const int64_t row = absgrad ? gpu::GRAD_ROW_ABS : gpu::GRAD_ROW;
    const at::Tensor grad = at::zeros({C, N, row}, opt);
    const at::Tensor v_m = grad.slice(2, gpu::GRAD_MEAN2D, gpu::GRAD_MEAN2D + 2);
    const at::Tensor v_c = grad.slice(2, gpu::GRAD_CONIC, gpu::GRAD_CONIC + 3);
    const at::Tensor v_o = grad.select(2, gpu::GRAD_OPACITY);
    const at::Tensor v_col = grad.slice(2, gpu::GRAD_COLOR, gpu::GRAD_COLOR + 3);
    const at::Tensor v_d = grad.select(2, gpu::GRAD_DEPTH);
    // absgrad: sum over pixels of |d loss / d mean2d| per component; empty when not asked for
    const at::Tensor v_abs = absgrad ? grad.slice(2, gpu::GRAD_ABS, gpu::GRAD_ABS + 2) : at::empty({0}, opt);
    AT_DISPATCH_FLOATING_TYPES(dt, "rasterize_bwd", [&] {
        gpu::blend_backward<scalar_t>(
            P.arrays<scalar_t>(), int(C), N, int(W), int(H), ranges.data_ptr<int32_t>(), ids.data_ptr<int32_t>(),
            background.data_ptr<scalar_t>(), trans_final.data_ptr<scalar_t>(), depth_sum.data_ptr<scalar_t>(),
            last.data_ptr<int32_t>(), v_color.data_ptr<scalar_t>(), v_alpha.data_ptr<scalar_t>(),
            v_depth.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>(), absgrad, stream());
        check_launch("rasterize_bwd");
    });
    return {v_m, v_c, v_o, v_col, v_d, v_abs};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(splat_cuda, m) {
    m.def("rasterize_fwd", &rasterize_fwd);
    m.def("rasterize_bwd", &rasterize_bwd);
}

}  // namespace glue
}  // namespace splat
