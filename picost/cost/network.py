"""Networks: bandwidth and round-trip time, parsed from text with units, and named presets.

Units (case-sensitive: ``b`` is bits, ``B`` is bytes):

* bandwidth: ``bps``, ``bit/s``, ``b/s`` (bits) or ``Bps``, ``B/s`` (bytes), with an optional
  decimal prefix ``k``/``K``, ``M``, ``G``, ``T`` or binary prefix ``Ki``, ``Mi``, ``Gi``, ``Ti``;
  e.g. ``100Mbps``, ``1Gbps``, ``3Gbit/s``, ``400MB/s`` (= 3.2 Gbit/s);
* time: ``ns``, ``us`` (or ``µs``), ``ms``, ``s`` (or ``sec``), ``min``, ``h``; e.g. ``80ms``,
  ``0.5ms``, ``1s``, ``8.2min``;
* size: ``B`` (bytes) or ``b`` (bits) with the same prefixes; e.g. ``25.3GB``, ``1.5GiB``, ``800Mb``.

Decimal prefixes are powers of 1000, binary ones (``Ki`` ... ``Ti``) powers of 1024.

The latency model (what a round costs, duplex, how both directions count) is in
``docs/latency-model.md``: a round costs one one-way delay (RTT / 2), and the bytes of both
directions go through one ``bandwidth``. Presets live in ``picost/cost/networks.yaml`` with sources.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from picost.errors import UserError
from picost.model import limits

_PREFIXES = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
             "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}
_BANDWIDTH_UNITS: dict[str, float] = {}  # unit -> bits per second
_SIZE_UNITS: dict[str, float] = {}  # unit -> bytes
for _p, _scale in _PREFIXES.items():
    for _suffix in ("bps", "bit/s", "b/s"):
        _BANDWIDTH_UNITS[_p + _suffix] = _scale
    for _suffix in ("Bps", "B/s"):
        _BANDWIDTH_UNITS[_p + _suffix] = 8 * _scale
    _SIZE_UNITS[_p + "B"], _SIZE_UNITS[_p + "b"] = _scale, _scale / 8
_TIME_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0}
_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([-+]?[0-9]+))?\s*([^\s0-9.][^\s]*)?\s*$")


def _split(text: Any, what: str, option: str, example: str, default_unit: str | None = None) -> tuple[float, str]:
    """The number and the unit of ``text``; a missing unit is ``default_unit`` (``None``: an error)."""
    if isinstance(text, bool) or not isinstance(text, str):
        raise UserError(f"{what} must be text with a unit, e.g. {example} (got {text!r})", field=option)
    match = _QUANTITY.match(text)
    if not match:
        raise UserError(f"cannot read {what} '{text}': expected a non-negative number and a unit, e.g. {example}",
                        field=option)
    mantissa, exponent, unit = match.groups()
    if not unit:
        if default_unit is None:
            raise UserError(f"{what} '{text}' has no unit; write e.g. {example}", field=option)
        unit = default_unit
    value = float(mantissa + (f"e{exponent}" if exponent else ""))
    if not math.isfinite(value):
        raise UserError(f"{what} '{text}' is not finite", field=option)
    return value, unit


def parse_bandwidth(text: Any, option: str = "--bandwidth") -> float:
    """``'100Mbps'`` -> 1e8 (bits per second). Zero or unknown units are a :class:`UserError`."""
    value, unit = _split(text, "bandwidth", option, "100Mbps, 1Gbps, 3Gbit/s or 400MB/s")
    if unit not in _BANDWIDTH_UNITS:
        raise UserError(f"unknown bandwidth unit '{unit}' in '{text}'; units are case-sensitive (b = bits, "
                        f"B = bytes): e.g. 100Mbps, 1Gbps, 3Gbit/s, 400MB/s, 1GiB/s", field=option)
    bits_per_s = value * _BANDWIDTH_UNITS[unit]
    if bits_per_s <= 0:
        raise UserError(f"bandwidth '{text}' must be positive", field=option)
    if not limits.MIN_BANDWIDTH_BPS <= bits_per_s <= limits.MAX_BANDWIDTH_BPS:
        raise UserError(f"bandwidth '{text}' is outside {limits.MIN_BANDWIDTH_BPS:g} bit/s .. "
                        f"{limits.MAX_BANDWIDTH_BPS:g} bit/s (see docs/limits.md)", field=option)
    return bits_per_s


def parse_duration(text: Any, option: str = "--rtt", default_unit: str | None = None) -> float:
    """``'80ms'`` -> 0.08, ``'8.2min'`` -> 492 (seconds). A number without a unit is in
    ``default_unit`` (``None``: an error). Unknown units are a :class:`UserError`; zero is allowed."""
    value, unit = _split(text, "time", option, "80ms, 0.5ms, 1s or 8.2min", default_unit)
    if unit not in _TIME_UNITS:
        raise UserError(f"unknown time unit '{unit}' in '{text}'; use {', '.join(_TIME_UNITS)} (e.g. 80ms)",
                        field=option)
    seconds = value * _TIME_UNITS[unit]
    if seconds > limits.MAX_DURATION_S:
        raise UserError(f"time '{text}' exceeds {limits.MAX_DURATION_S:g} s (see docs/limits.md)", field=option)
    return seconds


def parse_bytes(text: Any, option: str = "--comm") -> float:
    """``'25.3GB'`` -> 2.53e10, ``'1.5GiB'``, ``'800Mb'`` (bits) -> 1e8 (bytes). A number without a
    unit is bytes. Zero or unknown units are a :class:`UserError`."""
    value, unit = _split(text, "size", option, "25.3GB, 1.5GiB or 800Mb", default_unit="B")
    if unit not in _SIZE_UNITS:
        raise UserError(f"unknown size unit '{unit}' in '{text}'; use B, kB, MB, GB, TB, KiB..TiB, "
                        "or bits (b, Mb, Gb)", field=option)
    n_bytes = value * _SIZE_UNITS[unit]
    if n_bytes <= 0:
        raise UserError(f"size '{text}' must be positive", field=option)
    if n_bytes > limits.MAX_BYTES:
        raise UserError(f"size '{text}' exceeds {limits.MAX_BYTES:g} bytes (see docs/limits.md)", field=option)
    return n_bytes


@dataclass(frozen=True)
class Network:
    """A link between the parties: ``bandwidth_bps`` bits per second, round-trip time ``rtt_s``."""

    name: str
    bandwidth_bps: float
    rtt_s: float
    description: str = ""
    source: str = ""

    @property
    def round_s(self) -> float:
        """Seconds one protocol round costs: one one-way delay, RTT / 2 (docs/latency-model.md)."""
        return self.rtt_s / 2

    def transfer_s(self, n_bytes: Any) -> Any:
        """Seconds to push ``n_bytes`` bytes (both directions together) through the link."""
        return n_bytes * 8 / self.bandwidth_bps

    def summary(self) -> str:
        return f"{_human_rate(self.bandwidth_bps)}, RTT {_human_time(self.rtt_s)}"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "bandwidth_bps": self.bandwidth_bps, "rtt_s": self.rtt_s,
                "round_s": self.round_s, "source": self.source}


def _human_rate(bps: float) -> str:
    for unit, scale in (("Tbit/s", 1e12), ("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps >= scale:
            return f"{bps / scale:.4g} {unit}"
    return f"{bps:.4g} bit/s"


def _human_time(s: float) -> str:
    return f"{s:.4g} s" if s >= 1 else f"{s * 1e3:.4g} ms"


PRESETS_FILE = Path(__file__).resolve().parent / "networks.yaml"
_PRESETS: dict[str, Network] = {}


def presets() -> dict[str, Network]:
    """The named presets of ``picost/cost/networks.yaml``, in file order."""
    if not _PRESETS:
        from picost.model.located_yaml import load_located

        data, lines = load_located(PRESETS_FILE)
        for name, entry in data.items():
            line = lines.get((name,))
            keys = set(entry) if isinstance(entry, dict) else set()
            if not {"bandwidth", "rtt", "source"} <= keys <= {"bandwidth", "rtt", "source", "description"}:
                raise UserError("a preset has bandwidth, rtt, source and optionally description",
                                file=str(PRESETS_FILE), line=line, field=str(name))
            try:
                _PRESETS[name] = Network(name, parse_bandwidth(entry["bandwidth"], f"{name}.bandwidth"),
                                         parse_duration(entry["rtt"], f"{name}.rtt"),
                                         entry.get("description", ""), " ".join(str(entry["source"]).split()))
            except UserError as exc:
                raise UserError(exc.message, file=str(PRESETS_FILE), line=line, field=exc.field) from None
    return _PRESETS


def get_network(ref: str | Network | None = None, *, bandwidth: str | None = None,
                rtt: str | None = None) -> Network:
    """A preset (by name) or a given :class:`Network`, with ``bandwidth``/``rtt`` text overriding
    its fields; with no preset, both ``bandwidth`` and ``rtt`` are required."""
    if ref is None:
        if bandwidth is None or rtt is None:
            raise UserError(f"give a network preset ({', '.join(presets())}) or both --bandwidth and --rtt",
                            field="--network")
        return Network("custom", parse_bandwidth(bandwidth), parse_duration(rtt), "given on the command line")
    if isinstance(ref, Network):
        base = ref
    elif not isinstance(ref, str):
        raise UserError(f"network must be a preset name or a Network, not {type(ref).__name__}", field="--network")
    else:
        known = presets()
        if ref not in known:
            close = difflib.get_close_matches(ref, list(known), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UserError(f"unknown network '{ref}'{hint} (presets: {', '.join(known)}; or give --bandwidth and "
                            f"--rtt)", field="--network")
        base = known[ref]
    if bandwidth is None and rtt is None:
        return base
    return Network(base.name + " (modified)",
                   parse_bandwidth(bandwidth) if bandwidth is not None else base.bandwidth_bps,
                   parse_duration(rtt) if rtt is not None else base.rtt_s, base.description, base.source)
