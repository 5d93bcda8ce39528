"""Rasterizer constants, in one place (mirrored by cuda/include/splat/common.h; a test checks they agree)."""

ALPHA_MAX = 0.99  # alpha is clamped to this so transmittance never reaches zero
ALPHA_MIN = 1.0 / 255.0  # a Gaussian with alpha below this at a pixel is skipped there
T_MIN = 1e-4  # a pixel stops before the Gaussian that would bring T below this
EPS2D = 0.3  # low-pass filter added to every 2D covariance, in pixels^2
TILE = 16  # tiles are TILE x TILE pixels
