// Where a projected Gaussian can count: the region sigma(d) <= ln(255 o) where its alpha
// can reach 1/255. Two uses of the one rule: the CUDA binning tests that ellipse against
// each 16x16 tile of the screen box (ellipse_meets_tile), the CPU binning takes its row
// spans (RowSpans) to mark the 4x2 chunks it reaches. Culling only: a tile or chunk
// dropped has no pixel where the Gaussian counts, so results do not change.
#pragma once

#include "common.h"

namespace splat {

// Tiles [x0, x1] x [y0, y1] that the box mean +- extent touches, clamped to the
// image (floor((mean -/+ extent) / TILE), as the torch reference).
template <typename T>
SPLAT_HD void tile_box(T mx, T my, T ex, T ey, int tiles_x, int tiles_y, int& x0, int& x1, int& y0, int& y1) {
    x0 = s_max(0, int(s_floor((mx - ex) / T(TILE))));
    x1 = s_min(tiles_x - 1, int(s_floor((mx + ex) / T(TILE))));
    y0 = s_max(0, int(s_floor((my - ey) / T(TILE))));
    y1 = s_min(tiles_y - 1, int(s_floor((my + ey) / T(TILE))));
}

// 0.5 (a dx^2 + c dy^2) + b dx dy minimised over dy in [lo, hi] at fixed dx (c > 0).
template <typename T> SPLAT_HD T sigma_min_on_vertical(T a, T b, T c, T dx, T lo, T hi) {
    const T dy = s_min(hi, s_max(lo, -b * dx / c));
    return T(0.5) * (a * dx * dx + c * dy * dy) + b * dx * dy;
}

// Whether the ellipse sigma(d) <= level (d = point - mean, conic a b c positive
// definite) meets the tile whose pixel centres span [x0 + 0.5, x0 + TILE - 0.5]
// x [y0 + 0.5, y0 + TILE - 0.5]. The rectangle is widened by half a pixel and the
// level by 0.1 % against rounding: the blend evaluates alpha at the pixel
// centres with other roundings, and a dropped tile must truly have no pixel.
template <typename T>
SPLAT_HD bool ellipse_meets_tile(T a, T b, T c, T level, T mx, T my, int x0, int y0) {
    const T lo_x = T(x0) - mx, hi_x = T(x0 + TILE) - mx;  // pixel centres +- 0.5 px
    const T lo_y = T(y0) - my, hi_y = T(y0 + TILE) - my;
    if (lo_x <= T(0) && hi_x >= T(0) && lo_y <= T(0) && hi_y >= T(0)) return true;  // mean inside
    const T lim = level * T(1.001) + T(1e-3);
    // a convex quadratic attains its minimum over a rectangle not holding the
    // centre on the rectangle's boundary: check the four edges
    T m = s_min(sigma_min_on_vertical(a, b, c, lo_x, lo_y, hi_y), sigma_min_on_vertical(a, b, c, hi_x, lo_y, hi_y));
    // horizontal edges: the same with x and y swapped (a <-> c)
    m = s_min(m, s_min(sigma_min_on_vertical(c, b, a, lo_y, lo_x, hi_x), sigma_min_on_vertical(c, b, a, hi_y, lo_x, hi_x)));
    return m <= lim;
}

// Row spans of the region where a Gaussian can reach alpha >= 1/255:
// sigma(dx, dy) <= ln(255 o). Set up once per Gaussian, queried per row.
// Culling only: alpha is still evaluated exactly inside the span. Against the
// blend's own roundings (sigma, exp) the level is raised by 0.1 % + 1e-3 (as
// ellipse_meets_tile) and each span widened by SPAN_MARGIN px at both ends.
constexpr double SPAN_MARGIN = 0.1;

template <typename T> struct RowSpans {
    T inv_a, b, c, level, mx, my, a;
    SPLAT_HD RowSpans(const Sym2<T>& conic, const Vec2<T>& mean2d, T opacity)
        : inv_a(T(1) / conic.a), b(conic.b), c(conic.c), level(sigma_limit(opacity) * T(1.001) + T(1e-3)),
          mx(mean2d.x), my(mean2d.y), a(conic.a) {}
    // Pixel columns [x0, x1] (as floats) of the pixel row whose centre is dy below
    // the mean: the pixels whose centre lies in the row's span; x0 > x1 when the
    // row has none. Float selects only, so it vectorises over rows.
    SPLAT_HD void columns_f(T dy, T& x0, T& x1) const {
        // 0.5 a dx^2 + b dy dx + (0.5 c dy^2 - level) <= 0   (a > 0 for a valid conic)
        const T disc = b * b * dy * dy - a * (c * dy * dy - 2 * level);
        const T r = s_sqrt(s_max(disc, T(0))) * inv_a + T(SPAN_MARGIN), centre = mx - b * dy * inv_a;
        // pixel x has its centre x + 0.5 in [centre - r, centre + r]
        x0 = disc >= T(0) ? s_ceil(centre - r - T(0.5)) : T(1e9);
        x1 = disc >= T(0) ? s_floor(centre + r - T(0.5)) : T(-1e9);
    }
};

}  // namespace splat
