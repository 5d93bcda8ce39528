"""The Gaussian store: the one scene representation everything reads or writes.

Parameters are kept as they are optimised (log-scales, unnormalised quaternions,
opacity logits, SH coefficients); activated views are computed on demand.
Optional per-Gaussian fields (``labels``, features, ...) live in ``extras`` and
travel with every selection, concatenation, device move and file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, Sequence

import torch

from .errors import SplatError

from .geometry import SH_C0, rgb_to_sh_dc  # noqa: F401 (re-exported: the store's colour convention)

CORE_FIELDS = ("means", "log_scales", "quats", "opacity_logits", "sh")


def num_sh_bases(degree: int) -> int:
    """Number of SH coefficients per channel for ``degree`` (0..3): (d+1)^2."""
    return (degree + 1) ** 2


@dataclass
class GaussianStore:
    """N Gaussians with their optimised parameters.

    Attributes:
        means: [N, 3] world positions.
        log_scales: [N, 3] log of the per-axis standard deviations.
        quats: [N, 4] rotation quaternions (w, x, y, z), not necessarily unit.
        opacity_logits: [N] logits of the opacity.
        sh: [N, (d+1)^2, 3] SH coefficients per colour channel, d in 0..3.
        extras: optional per-Gaussian fields, each with first dimension N
            (e.g. ``labels`` [N] int64).
    """

    means: torch.Tensor
    log_scales: torch.Tensor
    quats: torch.Tensor
    opacity_logits: torch.Tensor
    sh: torch.Tensor
    extras: Dict[str, torch.Tensor] = field(default_factory=dict)

    # -- construction ---------------------------------------------------------
    @classmethod
    def empty(cls, sh_degree: int = 0, dtype=torch.float32, device="cpu") -> "GaussianStore":
        """A store with N = 0."""
        z = lambda *s: torch.zeros(*s, dtype=dtype, device=device)  # noqa: E731
        return cls(z(0, 3), z(0, 3), z(0, 4), z(0), z(0, num_sh_bases(sh_degree), 3))

    @classmethod
    def from_activated(
        cls,
        means: torch.Tensor,  # [N, 3]
        scales: torch.Tensor,  # [N, 3]
        quats: torch.Tensor,  # [N, 4]
        opacities: torch.Tensor,  # [N]
        rgb: torch.Tensor,  # [N, 3]
        sh_degree: int = 0,
        **extras: torch.Tensor,
    ) -> "GaussianStore":
        """Build a store from activated values; higher SH bands start at zero."""
        n = means.shape[0]
        sh = torch.zeros(n, num_sh_bases(sh_degree), 3, dtype=means.dtype, device=means.device)
        sh[:, 0] = rgb_to_sh_dc(rgb)
        eps = torch.finfo(means.dtype).eps
        o = opacities.clamp(eps, 1 - eps)
        return cls(means, scales.log(), quats, torch.log(o / (1 - o)), sh, dict(extras))

    # -- basic properties -------------------------------------------------------
    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def num_gaussians(self) -> int:
        return len(self)

    @property
    def sh_degree(self) -> int:
        """SH degree d inferred from the coefficient count (d+1)^2."""
        return int(round(math.sqrt(self.sh.shape[1]))) - 1

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    @property
    def labels(self) -> torch.Tensor | None:
        """Per-Gaussian integer labels [N] (-1 = unlabelled), or None."""
        return self.extras.get("labels")

    # -- activated views ---------------------------------------------------------
    @property
    def scales(self) -> torch.Tensor:
        """[N, 3] per-axis standard deviations."""
        return self.log_scales.exp()

    @property
    def unit_quats(self) -> torch.Tensor:
        """[N, 4] normalised quaternions (w, x, y, z)."""
        return torch.nn.functional.normalize(self.quats, dim=-1)

    @property
    def opacities(self) -> torch.Tensor:
        """[N] opacities in (0, 1)."""
        return torch.sigmoid(self.opacity_logits)

    @property
    def rgb(self) -> torch.Tensor:
        """[N, 3] view-independent colour from the SH DC term (unclamped)."""
        return self.sh[:, 0] * SH_C0 + 0.5

    # -- field-wise operations ----------------------------------------------------
    def fields(self) -> Dict[str, torch.Tensor]:
        """All per-Gaussian tensors by name: core fields then extras."""
        out = {name: getattr(self, name) for name in CORE_FIELDS}
        out.update(self.extras)
        return out

    def _map(self, fn) -> "GaussianStore":
        core = {name: fn(getattr(self, name)) for name in CORE_FIELDS}
        return GaussianStore(**core, extras={k: fn(v) for k, v in self.extras.items()})

    def select(self, mask_or_indices: torch.Tensor | Sequence[int]) -> "GaussianStore":
        """A new store with the selected Gaussians (bool mask [N] or int indices)."""
        idx = torch.as_tensor(mask_or_indices, device=self.device)
        if idx.dtype == torch.bool:
            if idx.shape != (len(self),):
                raise SplatError(f"selection mask has shape {tuple(idx.shape)}, expected ({len(self)},)")
        elif idx.dtype in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
            idx = idx.long().reshape(-1)
            if idx.numel() and (idx.min() < -len(self) or idx.max() >= len(self)):
                raise SplatError(f"selection index out of range for {len(self)} Gaussians")
        else:
            raise SplatError(f"selection must be a bool mask or integer indices, got {idx.dtype}")
        return self._map(lambda t: t[idx])

    @staticmethod
    def concat(*stores: "GaussianStore") -> "GaussianStore":
        """Concatenate stores; SH is zero-padded to the highest degree.

        An extra field present in only some stores is filled with -1 (integers)
        or NaN-free zeros (floats) for the others, so labels survive merges.
        """
        if len(stores) == 1 and not isinstance(stores[0], GaussianStore):
            stores = tuple(stores[0])
        if not stores:
            raise SplatError("concat needs at least one store")
        deg = max(s.sh_degree for s in stores)
        k = num_sh_bases(deg)
        names = []
        for s in stores:
            names += [n for n in s.extras if n not in names]
        parts = {n: [] for n in CORE_FIELDS + tuple(names)}
        for s in stores:
            for n in CORE_FIELDS:
                t = getattr(s, n)
                if n == "sh" and t.shape[1] < k:
                    t = torch.cat([t, t.new_zeros(t.shape[0], k - t.shape[1], 3)], 1)
                parts[n].append(t)
            for n in names:
                if n in s.extras:
                    parts[n].append(s.extras[n])
                else:
                    ref = next(o.extras[n] for o in stores if n in o.extras)
                    fill = -1 if not ref.is_floating_point() else 0
                    parts[n].append(torch.full((len(s),) + ref.shape[1:], fill, dtype=ref.dtype, device=s.device))
        try:
            out = {n: torch.cat(v) for n, v in parts.items()}
        except RuntimeError as e:
            raise SplatError(f"cannot concatenate stores: {str(e).splitlines()[0]}") from None
        return GaussianStore(**{n: out[n] for n in CORE_FIELDS}, extras={n: out[n] for n in names})

    def to(self, device=None, dtype: torch.dtype | None = None) -> "GaussianStore":
        """Move to ``device``; ``dtype`` converts floating fields only."""

        def move(t):
            if dtype is not None and t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        return self._map(move)

    def detach(self) -> "GaussianStore":
        return self._map(lambda t: t.detach())

    def clone(self) -> "GaussianStore":
        return self._map(lambda t: t.clone())

    def requires_grad_(self, flag: bool = True) -> "GaussianStore":
        """Mark the core floating parameters as requiring grad (in place)."""
        for n in CORE_FIELDS:
            getattr(self, n).requires_grad_(flag)
        return self

    # -- validation ----------------------------------------------------------------
    def non_finite_rows(self) -> torch.Tensor:
        """[N] bool: the Gaussians with NaN or Inf in any float field (core or extra)."""
        bad = torch.zeros(len(self), dtype=torch.bool, device=self.device)
        for t in self.fields().values():
            if t.is_floating_point():
                bad |= ~torch.isfinite((t if t.dim() > 1 else t[:, None]).detach().flatten(1)).all(1)
        return bad

    def invalid_rows(self) -> torch.Tensor:
        """[N] bool: the Gaussians no renderer can draw (NaN/Inf anywhere, zero quaternion)."""
        return self.non_finite_rows() | (self.quats.detach().norm(dim=-1) == 0)

    def validate(self) -> "GaussianStore":
        """Check shapes, dtypes and finiteness; raise SplatError naming the field.

        Returns self so it can be chained.
        """
        n = self.means.shape[0] if self.means.dim() >= 1 else -1
        expect = {
            "means": (n, 3),
            "log_scales": (n, 3),
            "quats": (n, 4),
            "opacity_logits": (n,),
        }
        for name, shape in expect.items():
            t = getattr(self, name)
            if not isinstance(t, torch.Tensor):
                raise SplatError(f"field {name}: expected a tensor, got {type(t).__name__}")
            if tuple(t.shape) != shape:
                raise SplatError(f"field {name}: shape {tuple(t.shape)}, expected {shape}")
        sh = self.sh
        if sh.dim() != 3 or sh.shape[0] != n or sh.shape[2] != 3 or sh.shape[1] not in (1, 4, 9, 16):
            raise SplatError(f"field sh: shape {tuple(sh.shape)}, expected ({n}, 1|4|9|16, 3)")
        for name in CORE_FIELDS:
            t = getattr(self, name)
            if not t.is_floating_point():
                raise SplatError(f"field {name}: dtype {t.dtype}, expected a floating dtype")
            if t.dtype != self.means.dtype:
                raise SplatError(f"field {name}: dtype {t.dtype} differs from means ({self.means.dtype})")
            if t.device != self.means.device:
                raise SplatError(f"field {name}: on {t.device}, means on {self.means.device}")
            bad = ~torch.isfinite(t.detach())
            if bad.any():
                row = int(bad.reshape(t.shape[0], -1).any(1).nonzero()[0])
                kind = "NaN" if torch.isnan(t.detach()).any() else "Inf"
                raise SplatError(f"field {name}: {int(bad.sum())} non-finite values ({kind}), first at Gaussian {row}")
        if n and (self.quats.detach().norm(dim=-1) == 0).any():
            raise SplatError("field quats: zero-length quaternion")
        for name, t in self.extras.items():
            if name in CORE_FIELDS:
                raise SplatError(f"extra field {name}: name clashes with a core field")
            if not isinstance(t, torch.Tensor) or t.dim() < 1 or t.shape[0] != n:
                shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise SplatError(f"extra field {name}: shape {shape}, expected first dimension {n}")
            if t.dim() > 2:
                raise SplatError(f"extra field {name}: {t.dim()} dimensions, at most 2 are supported")
            if t.is_floating_point() and not torch.isfinite(t).all():
                raise SplatError(f"extra field {name}: non-finite values")
        return self

    def __repr__(self) -> str:
        ex = ", ".join(f"{k}{tuple(v.shape[1:])}" for k, v in self.extras.items())
        return (
            f"GaussianStore(N={len(self)}, sh_degree={self.sh_degree}, dtype={self.dtype}, "
            f"device={self.device}{', extras=[' + ex + ']' if ex else ''})"
        )
