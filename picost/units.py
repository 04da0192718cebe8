"""Parse sizes and durations written by people, as papers print them: ``25.3GB``, ``8.2min``.

(Bandwidths and round-trip times are parsed by :mod:`picost.network`.)

Decimal prefixes (k, M, G, T) are powers of 1000; binary ones (KiB, MiB, GiB, TiB) powers of
1024. A lowercase ``b`` means bits, an uppercase ``B`` bytes. A bad value is a
:class:`~picost.errors.UserError` naming the option.
"""

from __future__ import annotations

import re

from picost.errors import UserError

_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z/]*)\s*$")

_PREFIX = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
           "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}

_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0}


def _split(text: str, option: str, what: str) -> tuple[float, str]:
    match = _NUMBER.match(str(text))
    if not match:
        raise UserError(f"cannot read '{text}' as {what}", field=option)
    value = float(match.group(1))
    if value <= 0:
        raise UserError(f"{what} must be positive (got '{text}')", field=option)
    return value, match.group(2)


def _prefixed(unit: str, bases: dict[str, float]) -> float | None:
    for base, factor in bases.items():
        if unit.endswith(base) and unit[: len(unit) - len(base)] in _PREFIX:
            return _PREFIX[unit[: len(unit) - len(base)]] * factor
    return None


def parse_bytes(text: str, option: str = "--comm") -> float:
    """``25.3GB`` -> 2.53e10 bytes; ``1.5GiB``; ``800Mb`` (bits) -> 1e8 bytes. No unit: bytes."""
    value, unit = _split(text, option, "a size (e.g. 25.3GB, 1.5GiB, 800Mb)")
    factor = 1.0 if unit == "" else _prefixed(unit, {"B": 1.0, "b": 1 / 8})
    if factor is None:
        raise UserError(f"unknown size unit '{unit}' in '{text}'; use B, kB, MB, GB, TB, KiB..TiB, "
                        "or bits (b, Mb, Gb)", field=option)
    return value * factor


def parse_seconds(text: str, option: str = "--latency") -> float:
    """``8.2min`` -> 492 s; ``80ms``; ``1.5h``. No unit: seconds."""
    value, unit = _split(text, option, "a duration (e.g. 8.2min, 80ms, 3s)")
    if unit == "":
        return value
    if unit not in _SECONDS:
        raise UserError(f"unknown time unit '{unit}' in '{text}'; use {', '.join(_SECONDS)}", field=option)
    return value * _SECONDS[unit]

