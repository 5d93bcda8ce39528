"""3DGS PLY files: the standard layout other tools (Inria, gsplat, SuperSplat) read.

Layout of the ``vertex`` element, all binary little-endian:
``x y z nx ny nz f_dc_0..2 f_rest_0..(3K-4) opacity scale_0..2 rot_0..3`` then
extras. ``f_rest`` is channel-major: all red coefficients, then green, then blue.
Stored values are the optimised parameters (log-scales, opacity logits, raw
quaternions, SH). Extra per-Gaussian fields become extra properties: a field
``name`` [N] is one property, [N, D] is ``name_0 .. name_{D-1}``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from ..errors import SplatError
from ..store import GaussianStore
from .atomic import atomic_write, open_input

# PLY scalar type names -> little-endian numpy dtype strings
_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_TORCH_TO_PLY = {
    torch.float32: "float", torch.float64: "double", torch.int32: "int",
    torch.int64: "int", torch.int16: "short", torch.uint8: "uchar", torch.bool: "uchar",
}
_STANDARD = re.compile(r"^(x|y|z|nx|ny|nz|opacity|f_dc_\d+|f_rest_\d+|scale_\d+|rot_\d+)$")
_MAX_HEADER = 1 << 20  # a real header is a few KB; refuse to scan further


def _parse_header(path: Path, f) -> tuple[list[tuple[str, int, list[tuple[str, str]]]], str, int]:
    """Read the header. Returns (elements, endian char, header byte length)."""
    first = f.readline(16)
    if first.rstrip(b"\r\n") != b"ply":
        raise SplatError(f"{path}: not a PLY file (does not start with 'ply')")
    elements: list[tuple[str, int, list[tuple[str, str]]]] = []
    fmt = None
    size = len(first)
    while True:
        raw = f.readline(4096)
        size += len(raw)
        if not raw.endswith(b"\n"):
            if len(raw) == 4096:
                raise SplatError(f"{path}: PLY header line longer than 4096 bytes")
            raise SplatError(f"{path}: truncated PLY header (no end_header)")
        if size > _MAX_HEADER:
            raise SplatError(f"{path}: PLY header longer than {_MAX_HEADER} bytes")
        try:
            line = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise SplatError(f"{path}: PLY header contains non-ASCII bytes") from None
        if not line or line.startswith(("comment", "obj_info")):
            continue
        words = line.split()
        if words[0] == "end_header":
            break
        if words[0] == "format":
            if len(words) != 3:
                raise SplatError(f"{path}: malformed format line '{line}'")
            fmt = words[1]
        elif words[0] == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise SplatError(f"{path}: malformed element line '{line}'")
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property":
            if not elements:
                raise SplatError(f"{path}: property before any element")
            if len(words) < 3:
                raise SplatError(f"{path}: malformed property line '{line}'")
            if words[1] == "list":
                raise SplatError(f"{path}: list property '{words[-1]}' in element '{elements[-1][0]}' is not supported")
            if len(words) != 3 or words[1] not in _PLY_TYPES:
                raise SplatError(f"{path}: malformed property line '{line}'")
            elements[-1][2].append((words[2], words[1]))
        else:
            raise SplatError(f"{path}: unknown PLY header keyword '{words[0]}'")
    if fmt is None:
        raise SplatError(f"{path}: PLY header has no format line")
    if fmt == "ascii":
        raise SplatError(f"{path}: ASCII PLY is not supported; save it as binary_little_endian")
    if fmt not in ("binary_little_endian", "binary_big_endian"):
        raise SplatError(f"{path}: unknown PLY format '{fmt}'")
    return elements, "<" if fmt == "binary_little_endian" else ">", size


def _column(path: Path, data: np.ndarray, name: str) -> np.ndarray:
    if name not in data.dtype.names:
        raise SplatError(f"{path}: missing property '{name}'")
    return data[name]


def _stack(path: Path, data: np.ndarray, names: list[str], dtype) -> torch.Tensor:
    cols = [np.ascontiguousarray(_column(path, data, n), dtype=dtype) for n in names]
    arr = np.stack(cols, axis=1) if cols else np.zeros((len(data), 0), dtype)
    return torch.from_numpy(arr)


def load_ply(path: str | os.PathLike) -> GaussianStore:
    """Read a 3DGS PLY file into a GaussianStore.

    SH degree 0..3 is inferred from the number of ``f_rest_*`` properties.
    Core fields come back as float32 (float64 if the file stores doubles);
    integer extras come back as int64, float extras as stored.

    Raises:
        SplatError: missing/unreadable file, wrong header, ASCII format,
            missing properties, inconsistent SH count, truncated data.
    """
    path = Path(path)
    return store_from_elements(path, read_elements(path))


def store_from_elements(path: Path, elements: dict[str, np.ndarray]) -> GaussianStore:
    """The store held by a PLY's ``vertex`` element (3DGS layout)."""
    if "vertex" not in elements:
        raise SplatError(f"{path}: no 'vertex' element")
    data = elements["vertex"]
    return _store_from_vertex(path, data, list(data.dtype.names or ()))


def read_elements(path: Path) -> dict[str, np.ndarray]:
    """Every element of a binary PLY as a structured array, by name, in file order."""
    with open_input(path, ".ply") as f:
        elements, endian, header_size = _parse_header(path, f)
        file_size = os.fstat(f.fileno()).st_size
        offset = header_size
        layout = []
        for name, count, props in elements:
            names = [p for p, _ in props]
            if len(set(names)) != len(names):
                raise SplatError(f"{path}: duplicate property names in element '{name}'")
            dtype = np.dtype([(p, endian + _PLY_TYPES[t]) for p, t in props])
            layout.append((name, count, dtype, offset))
            offset += count * dtype.itemsize  # Python ints: a forged count cannot overflow
        if offset > file_size:
            raise SplatError(f"{path}: truncated: header promises {offset} bytes, file has {file_size}")
        out = {}
        for name, count, dtype, start in layout:
            f.seek(start)
            out[name] = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype, count=count)
    return out


def read_vertices(path: Path) -> tuple[np.ndarray, list[str]]:
    """The ``vertex`` element of a binary PLY as a structured array, and its property names."""
    elements = read_elements(path)
    if "vertex" not in elements:
        raise SplatError(f"{path}: no 'vertex' element")
    data = elements["vertex"]
    return data, list(data.dtype.names or ())


def load_point_cloud(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """A coloured point cloud PLY (x y z [red green blue]): ([P, 3] float64, [P, 3] in [0, 1] or None)."""
    path = Path(path)
    data, names = read_vertices(path)
    pts = _stack(path, data, ["x", "y", "z"], np.float64).numpy()
    if not np.isfinite(pts).all():
        raise SplatError(f"{path}: point coordinates contain NaN or Inf")
    cols = None
    if all(c in names for c in ("red", "green", "blue")):
        raw = _stack(path, data, ["red", "green", "blue"], np.float64).numpy()
        cols = np.clip(raw / (255.0 if data.dtype["red"].kind in "ui" else 1.0), 0, 1)
    return pts, cols


def save_point_cloud(path: str | os.PathLike, points: np.ndarray, colors: np.ndarray) -> None:
    """Write [P, 3] points with [P, 3] colours in [0, 1] as a binary PLY (x y z red green blue), atomically."""
    dt = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    v = np.empty(len(points), dt)
    for k, name in enumerate("xyz"):
        v[name] = points[:, k]
    rgb = np.clip(np.round(np.asarray(colors) * 255), 0, 255).astype(np.uint8)
    v["red"], v["green"], v["blue"] = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    header = ("ply\nformat binary_little_endian 1.0\n"
              f"element vertex {len(v)}\nproperty float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")
    with atomic_write(path) as f:
        f.write(header.encode() + v.tobytes())


def _store_from_vertex(path: Path, data: np.ndarray, names: list[str]) -> GaussianStore:
    # doubles in either byte order keep double precision
    core_dtype = np.float64 if any(data.dtype[n].kind == "f" and data.dtype[n].itemsize == 8
                                   for n in ("x", "y", "z") if n in names) else np.float32
    n_rest = sum(1 for n in names if n.startswith("f_rest_"))
    if n_rest % 3 or (n_rest // 3 + 1) not in (1, 4, 9, 16):
        raise SplatError(f"{path}: {n_rest} f_rest properties; expected 0, 9, 24 or 45 (SH degree 0..3)")
    k = n_rest // 3 + 1
    means = _stack(path, data, ["x", "y", "z"], core_dtype)
    dc = _stack(path, data, [f"f_dc_{i}" for i in range(3)], core_dtype)
    rest = _stack(path, data, [f"f_rest_{i}" for i in range(n_rest)], core_dtype)
    sh = torch.cat([dc[:, None, :], rest.reshape(len(data), 3, k - 1).transpose(1, 2)], dim=1).contiguous()
    opacity = _stack(path, data, ["opacity"], core_dtype)[:, 0].contiguous()
    log_scales = _stack(path, data, [f"scale_{i}" for i in range(3)], core_dtype)
    quats = _stack(path, data, [f"rot_{i}" for i in range(4)], core_dtype)
    extras = _read_extras(data, [n for n in names if not _STANDARD.match(n)])
    return GaussianStore(means, log_scales, quats, opacity, sh, extras)


def _read_extras(data: np.ndarray, names: list[str]) -> dict[str, torch.Tensor]:
    """Group ``name_0..name_{D-1}`` into [N, D] fields; other names are [N]."""
    groups: dict[str, list[str]] = {}
    for n in names:
        m = re.match(r"^(.*)_(\d+)$", n)
        base = m.group(1) if m else n
        groups.setdefault(base, []).append(n)
    extras = {}
    for base, members in groups.items():
        vector = [f"{base}_{i}" for i in range(len(members))]
        if members == vector and base not in names:
            cols = vector
        else:  # not a clean 0..D-1 run: keep each property as its own field
            for n in members:
                extras[n] = _as_tensor(data[n])
            continue
        arr = np.stack([data[c] for c in cols], axis=1)
        extras[base] = _as_tensor(arr)
    return extras


def _as_tensor(arr: np.ndarray) -> torch.Tensor:
    arr = np.ascontiguousarray(arr)
    if arr.dtype.kind in "iub":
        return torch.from_numpy(arr.astype(np.int64))
    return torch.from_numpy(arr.astype(arr.dtype.newbyteorder("=")))


def ply_bytes(store: GaussianStore) -> bytes:
    """Serialise a store to PLY bytes (binary little-endian)."""
    store = store.detach().to("cpu")
    n, k = len(store), store.sh.shape[1]
    ftype = "double" if store.dtype == torch.float64 else "float"
    cols: list[tuple[str, str, np.ndarray]] = []

    def add(name: str, values: torch.Tensor, ply_type: str = ftype):
        npt = "<" + _PLY_TYPES[ply_type]
        cols.append((name, ply_type, values.numpy().astype(npt, copy=False)))

    for i, axis in enumerate("xyz"):
        add(axis, store.means[:, i])
    for axis in ("nx", "ny", "nz"):
        add(axis, torch.zeros(n, dtype=store.dtype))
    for i in range(3):
        add(f"f_dc_{i}", store.sh[:, 0, i])
    rest = store.sh[:, 1:, :].transpose(1, 2).reshape(n, 3 * (k - 1))
    for i in range(rest.shape[1]):
        add(f"f_rest_{i}", rest[:, i])
    add("opacity", store.opacity_logits)
    for i in range(3):
        add(f"scale_{i}", store.log_scales[:, i])
    for i in range(4):
        add(f"rot_{i}", store.quats[:, i])
    for name, t in store.extras.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name) or _STANDARD.match(name):
            raise SplatError(f"extra field '{name}': name cannot be stored as a PLY property")
        if t.dtype not in _TORCH_TO_PLY:
            raise SplatError(f"extra field '{name}': dtype {t.dtype} cannot be stored in PLY")
        ply_type = _TORCH_TO_PLY[t.dtype]
        if t.dtype == torch.int64 and t.numel() and (t.min() < -(2**31) or t.max() >= 2**31):
            raise SplatError(f"extra field '{name}': values do not fit in a 32-bit PLY int")
        t = t.to(torch.uint8) if t.dtype == torch.bool else t
        if t.dim() == 1:
            add(name, t, ply_type)
        else:
            for j in range(t.shape[1]):
                add(f"{name}_{j}", t[:, j], ply_type)
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {n}"]
    header += [f"property {ptype} {name}" for name, ptype, _ in cols]
    header += ["end_header"]
    rec = np.empty(n, dtype=[(name, arr.dtype) for name, _, arr in cols])
    for name, _, arr in cols:
        rec[name] = arr
    return ("\n".join(header) + "\n").encode("ascii") + rec.tobytes()


def save_ply(store: GaussianStore, path: str | os.PathLike) -> None:
    """Write ``store`` to ``path`` atomically (temporary file, then rename).

    Raises:
        SplatError: invalid store, or a folder that does not exist.
    """
    store.validate()
    data = ply_bytes(store)
    with atomic_write(path, "wb") as f:
        f.write(data)
