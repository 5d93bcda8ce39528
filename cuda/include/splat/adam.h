// One Adam update of one parameter element (shared by the CPU training ops and GPU code).
#pragma once

#include "common.h"

namespace splat {

// m, v: first and second moments (updated in place); returns the new parameter.
// c1 = 1 - beta1 and c2 = 1 - beta2 are passed in (rounded once from double, as torch does);
// step_size = lr / (1 - beta1^t); inv_bc2 = 1 / (1 - beta2^t).
template <typename T>
SPLAT_HD T adam_update(T p, T g, T& m, T& v, T beta1, T beta2, T c1, T c2, T step_size, T inv_bc2, T eps) {
    m = beta1 * m + c1 * g;
    v = beta2 * v + c2 * g * g;
    return p - step_size * m / (sqrt(v * inv_bc2) + eps);
}

}  // namespace splat
