// Shared by the CUDA glue files: camera parameters, device guard and stream
// (input checks and output allocation: checks.h). Kept to a few
// ATen headers so that each glue file compiles in seconds.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../kernels.h"
#include "checks.h"

namespace splat {
namespace glue {

inline cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

inline void check_launch(const char* what) {
    const char* err = splat::gpu::last_error();
    TORCH_CHECK(err == nullptr, what, ": CUDA error: ", err ? err : "");
}

// C cameras on the device as CameraParams<T> (bytes): viewmats [C, 4, 4] and Ks
// [C, 3, 3] float64 on the CPU, near_far [C, 2] float64.
template <typename T>
at::Tensor camera_params(const at::Tensor& viewmats, const at::Tensor& Ks, const at::Tensor& near_far, int64_t width,
                         int64_t height, const at::Device& device) {
    const int64_t C = viewmats.size(0);
    check(viewmats, "viewmats", at::kCPU, at::kDouble, {C, 4, 4});
    check(Ks, "Ks", at::kCPU, at::kDouble, {C, 3, 3});
    check(near_far, "near_far", at::kCPU, at::kDouble, {C, 2});
    TORCH_CHECK(width > 0 && height > 0, "image size must be positive");
    // pinned, so that the copy below does not wait for the device
    at::Tensor host = at::empty({int64_t(C * sizeof(CameraParams<T>))},
                                at::TensorOptions().dtype(at::kByte).pinned_memory(true));
    auto* cams = reinterpret_cast<CameraParams<T>*>(host.data_ptr<uint8_t>());
    for (int64_t c = 0; c < C; ++c)
        cams[c] = splat::camera_params<T>(viewmats.data_ptr<double>() + 16 * c, Ks.data_ptr<double>() + 9 * c, int(width),
                                   int(height), near_far.data_ptr<double>()[2 * c], near_far.data_ptr<double>()[2 * c + 1]);
    return host.to(device, /*non_blocking=*/true);
}

template <typename T> const CameraParams<T>* cams_ptr(const at::Tensor& blob) {
    return reinterpret_cast<const CameraParams<T>*>(blob.data_ptr<uint8_t>());
}

}  // namespace glue
}  // namespace splat
