"""Mutations of valid inputs, driven by a byte source so that hypothesis and atheris share them.

``mutate(seed, draw)``: ``draw(n)`` returns an int in [0, n); a few operations are applied:
truncate, flip bits, forge a count (a huge or zero integer written over 4 or 8 bytes), write
NaN/Inf floats, insert or delete bytes, and for text: replace a number with a hostile token;
for JSON: replace a value anywhere in the document with a value of the wrong type or range.
"""

from __future__ import annotations

import json
import re
import struct

HUGE = [0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**53, 2**63 - 1, 2**64 - 1, 10**9]
FLOATS = [float("nan"), float("inf"), float("-inf"), 1e308, -1e308, 0.0, -0.0, 1e-45]
TOKENS = [b"nan", b"inf", b"-inf", b"1e999", b"-1", b"0", b"99999999999999999999999", b"abc", b"", b"1.5", b"-0"]
VALUES = [None, "x", "", [], {}, -1, 0, 1, 1e308, float("nan"), float("inf"), 10**30, True, [[1, 2], [3]],
          [0.0] * 16, {"a": 1}, "../../etc/passwd", 2**63]


def _binary_op(data: bytearray, draw) -> bytearray:
    op = draw(7)
    n = len(data)
    i = draw(n + 1) if n else 0
    if op == 0:
        return data[:i]
    if op == 1 and n:
        data[min(i, n - 1)] ^= 1 << draw(8)
    elif op == 2 and n >= 8:
        v, size = HUGE[draw(len(HUGE))], (4, 8)[draw(2)]
        j = min(i, n - size)
        data[j:j + size] = (v % (1 << (8 * size))).to_bytes(size, "little")
    elif op == 3 and n >= 8:
        f = FLOATS[draw(len(FLOATS))]
        raw = struct.pack("<d", f) if draw(2) or abs(f) == 1e308 else struct.pack("<f", f)
        j = min(i, n - len(raw))
        data[j:j + len(raw)] = raw
    elif op == 4:
        data[i:i] = bytes(draw(256) for _ in range(1 + draw(16)))
    elif op == 5 and n:
        del data[i:i + 1 + draw(64)]
    elif op == 6:
        data = data + data[i:]  # repeated tail: more records than the header says
    return data


def _text_op(data: bytearray, draw) -> bytearray:
    numbers = [m.span() for m in re.finditer(rb"-?\d+(\.\d+)?(e-?\d+)?", bytes(data))]
    if not numbers:
        return _binary_op(data, draw)
    a, b = numbers[draw(len(numbers))]
    return data[:a] + bytearray(TOKENS[draw(len(TOKENS))]) + data[b:]


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for k, v in enumerate(doc[:6]):
            yield from _paths(v, prefix + (k,))


def _json_op(data: bytearray, draw) -> bytearray:
    try:
        doc = json.loads(bytes(data))
    except (ValueError, UnicodeDecodeError):
        return _text_op(data, draw)
    paths = list(_paths(doc))
    path = paths[draw(len(paths))]
    value = VALUES[draw(len(VALUES))]
    if not path:
        doc = value
    else:
        parent = doc
        for k in path[:-1]:
            parent = parent[k]
        if draw(4) == 0 and isinstance(parent, dict):
            parent.pop(path[-1], None)  # a missing key
        else:
            parent[path[-1]] = value
    return bytearray(json.dumps(doc).encode())


def mutate(seed: bytes, draw, kind: str = "binary") -> bytes:
    """``kind``: binary, text or json (which operations make sense)."""
    data = bytearray(seed)
    for _ in range(1 + draw(3)):
        pick = draw(3)
        if kind == "json" and pick < 2:
            data = _json_op(data, draw)
        elif kind in ("text", "json") and pick < 2:
            data = _text_op(data, draw)
        else:
            data = _binary_op(data, draw)
    return bytes(data)


KINDS = {"ply": "binary", "ply_foreign": "binary", "ply_points": "binary", "splat": "binary", "cameras_json": "json",
         "transforms_json": "json", "colmap_bin_cameras": "binary", "colmap_bin_images": "binary",
         "colmap_bin_points3D": "binary", "colmap_txt_cameras": "text", "colmap_txt_images": "text",
         "colmap_txt_points3D": "text", "spz": "binary", "spz_gzip": "binary", "compressed_ply": "binary",
         "sog": "binary", "sog_meta": "json", "ksplat": "binary"}
