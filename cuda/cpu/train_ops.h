// CPU training ops over the shared math (splat/ssim.h, splat/adam.h, splat/sgld.h): fused SSIM, Adam
// and the MCMC position noise.
#pragma once

#include <torch/extension.h>

#include <vector>

namespace splat {
namespace train_ops {

// (ssim map [H, W, 3], moments [H, W, 15]) of two [H, W, 3] images.
std::vector<torch::Tensor> ssim_fwd(torch::Tensor a, torch::Tensor b);
// dL/da [H, W, 3] from dL/dmap [H, W, 3].
torch::Tensor ssim_bwd(torch::Tensor a, torch::Tensor b, torch::Tensor moments, torch::Tensor v_map);
// One in-place Adam update of p and its moments m, v (step counts from 1). With lead > 0 the
// rate is lr for the first `lead` values of each row of p (a row: p[i]) and lr_rest for the
// others (SH: the DC band and the rest, one tensor); with lead = 0, lr everywhere. Only the
// first `used` values of each row are stepped (SH: the bands of the degree reached); the
// caller vouches that the others have a zero gradient and zero moments, where a step
// would leave them as they are.
void adam_step(torch::Tensor p, torch::Tensor g, torch::Tensor m, torch::Tensor v, double lr, double beta1, double beta2,
               double eps, int64_t step, int64_t lead, double lr_rest, int64_t used);

// In place: means [N, 3] += the SGLD noise (splat/sgld.h) for noise draws eps [N, 3].
void sgld_add(torch::Tensor means, torch::Tensor log_scales, torch::Tensor quats, torch::Tensor opacity_logits,
              torch::Tensor eps, double min_opacity, double scale);

}  // namespace train_ops
}  // namespace splat
