// Input checks by name and output allocation, shared by the glue of every native
// backend (cuda/cpu/bindings.cpp, cuda/glue/*.cpp). A few ATen headers only.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <limits>
#include <vector>

namespace splat {
namespace glue {

// When set (tests), every output buffer is filled with NaN / INT_MIN before the
// kernels run, so an element they forget to write shows up. Defined once in each
// extension (each has its own switch).
extern bool g_poison;

inline at::Tensor out(at::IntArrayRef shape, const at::TensorOptions& opt) {
    at::Tensor t = at::empty(shape, opt);
    if (g_poison) {
        if (t.is_floating_point()) t.fill_(std::numeric_limits<double>::quiet_NaN());
        else t.fill_(std::numeric_limits<int32_t>::min());
    }
    return t;
}

// A named input on the expected device, dtype, shape (-1: any) and contiguous.
inline void check(const at::Tensor& t, const char* name, at::DeviceType device, at::ScalarType dtype,
                  std::vector<int64_t> shape) {
    TORCH_CHECK(t.device().type() == device, name, " must be a ", device == at::kCUDA ? "CUDA" : "CPU", " tensor");
    TORCH_CHECK(t.scalar_type() == dtype, name, " has dtype ", t.scalar_type(), ", expected ", dtype);
    TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
    TORCH_CHECK(t.dim() == int64_t(shape.size()), name, " has ", t.dim(), " dimensions, expected ", shape.size());
    for (size_t i = 0; i < shape.size(); ++i)
        TORCH_CHECK(shape[i] < 0 || t.size(i) == shape[i], name, " has size ", t.size(i), " in dimension ", i,
                    ", expected ", shape[i]);
}

}  // namespace glue
}  // namespace splat
