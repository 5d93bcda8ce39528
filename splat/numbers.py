"""Comma-separated numbers typed by a user (``1,2,3``), with one-line errors."""

from __future__ import annotations

from .errors import SplatError


def parse_numbers(text: str, what: str, counts: tuple[int, ...] | None = None) -> tuple[float, ...]:
    """The floats in ``text``; ``counts`` lists the allowed lengths (None: any).

    Raises:
        SplatError: naming ``what`` when a part is not a number or the count is wrong.
    """
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise SplatError(f"{what}: '{text}' is not comma-separated numbers") from None
    if counts is not None and len(vals) not in counts:
        raise SplatError(f"{what}: expected {' or '.join(map(str, counts))} comma-separated numbers, got {len(vals)} in '{text}'")
    return vals
