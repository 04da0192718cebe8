"""The machine compute runs on, and how a table's compute time scales to it.

A table's ``compute_s`` is seconds on its *reference machine*: every measured table of picost was
timed on one 2-core AMD EPYC (Zen 4) VM with all parties as processes sharing its two cores
(:data:`REFERENCE`). A :class:`Machine` says where the user's parties run:

* ``threads_per_party`` (n): cores each party's process can use;
* ``parties_share_host``: all parties on one host of n cores (as in the reference), or one
  machine of n cores per party (a real deployment);
* ``per_core_speed`` (f): one core's speed relative to a reference core (1 = the same).

The model (docs/latency-model.md, "Machines"), per table entry, with the two numbers measured for
it (``compute_scaling`` in the table: ``serial`` s, ``concurrent`` c) and the table's party count P:
a fraction c of an op's time (measured with each party pinned to its own core) has all parties
computing at once, the rest one party computes while the others wait; within a party's
computing a fraction s does not speed up with cores. Relative to one core per party::

    one party alone (the waiting parts):    s + (1 - s) / n
    all parties at once, own machines:      s + (1 - s) / n
    all parties at once, one shared host:   s * max(1, P / n) + (1 - s) * P / n
    unit(machine) = c * at_once + (1 - c) * alone

and ``compute_s(machine) = compute_s(reference) * unit(machine) / unit(REFERENCE) / f``. An
entry may also carry ``oversubscribed`` (rho >= 1): its parties, unpinned on a shared host of
n > 1 cores, were measured rho times slower than the model allows (CrypTen's parties each run as
many threads as the host has cores, so two of them on two cores run four threads); ``unit`` of
such a placement is multiplied by rho. The reference gets a factor of exactly 1; each measured
placement of the scaling runs (each party pinned to its own core; all on one core; unpinned on
two) is reproduced by construction.

An entry without measured scaling uses the median (s, c) of its table's measured entries
(``derived:``), and a table with none is not scaled with cores (s = 1: only ``per_core_speed``
applies); every output says which. This module is part of the analytic core: no face, no engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from picost.errors import UserError

SCHEMA = "picost.machine/1"
_KEYS = ("schema", "name", "description", "threads_per_party", "parties_share_host", "per_core_speed", "source")
_REQUIRED = ("name", "threads_per_party", "source")
MAX_THREADS = 4096


@dataclass(frozen=True)
class Scaling:
    """How one entry's compute scales with cores: ``serial`` s and ``concurrent`` c (fractions),
    and where they come from (``measured`` for the entry's own runs, ``derived`` for its table's
    median, ``none`` when nothing was measured: no core scaling)."""

    serial: float
    concurrent: float
    basis: str = "measured"
    oversubscribed: float = 1.0


NO_SCALING = Scaling(1.0, 1.0, "none")


@dataclass(frozen=True)
class Machine:
    """Where compute runs (see the module docstring). ``compute=False``: leave compute out
    (communication and round delays only, ``--compute none``)."""

    name: str
    description: str
    threads_per_party: float
    parties_share_host: bool
    per_core_speed: float | None
    source: str
    compute: bool = True

    @property
    def speed(self) -> float:
        """``per_core_speed``, 1 where it is not known."""
        return 1.0 if self.per_core_speed is None else self.per_core_speed

    @property
    def is_reference(self) -> bool:
        return (self.compute and self.threads_per_party == REFERENCE.threads_per_party and self.speed == 1.0
                and self.parties_share_host == REFERENCE.parties_share_host)

    def unit(self, scaling: Scaling, parties: int) -> float:
        """Compute time on this machine relative to one core per party (module docstring)."""
        n, s, c = self.threads_per_party, scaling.serial, scaling.concurrent
        alone = s + (1 - s) / n
        p = max(parties, 1)
        at_once = s * max(1.0, p / n) + (1 - s) * p / n if self.parties_share_host else alone
        crowded = scaling.oversubscribed if self.parties_share_host and n > 1 and p > 1 else 1.0
        return (c * at_once + (1 - c) * alone) * crowded

    def factor(self, scaling: Scaling, parties: int) -> float:
        """``compute_s(this machine) / compute_s(reference)`` for an entry with ``scaling``."""
        if not self.compute:
            return 0.0
        return self.unit(scaling, parties) / REFERENCE.unit(scaling, parties) / self.speed

    def summary(self) -> str:
        """One line: name, cores, placement, speed."""
        if not self.compute:
            return "none (compute left out: communication and round delays only)"
        placement = "all parties on one host" if self.parties_share_host else "one machine per party"
        speed = ("per-core speed as the reference (not known)" if self.per_core_speed is None
                 else f"per-core speed {self.per_core_speed:g}x the reference")
        return f"{self.name} ({_threads(self.threads_per_party)}, {placement}, {speed})"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "threads_per_party": self.threads_per_party,
                "parties_share_host": self.parties_share_host, "per_core_speed": self.per_core_speed,
                "source": self.source, "compute": self.compute, "reference": self.is_reference}


    def to_yaml(self) -> str:
        """The machine as a profile file (schema ``picost.machine/1``) for ``--machine FILE``."""
        import yaml

        data = {"schema": SCHEMA, "name": self.name, "description": self.description,
                "threads_per_party": self.threads_per_party, "parties_share_host": self.parties_share_host,
                "per_core_speed": self.per_core_speed, "source": self.source}
        return yaml.safe_dump(data, sort_keys=False, width=100)


@dataclass(frozen=True)
class SpeedPoint:
    """One op timed on the machine being calibrated, beside its table's reference compute."""

    kind: str
    dims: Mapping[str, int]
    measured_s: float
    table_s: float
    scaling: Scaling

    def speed(self, host: "Machine", parties: int) -> float:
        """The per-core speed at which the model predicts ``measured_s`` on ``host``."""
        return self.table_s * host.unit(self.scaling, parties) / REFERENCE.unit(self.scaling, parties) / self.measured_s


def fit_speed(points: list[SpeedPoint], threads: float, parties: int) -> tuple[float, list[float]]:
    """``(per-core speed, each point's)`` of a host of ``threads`` cores on which all ``parties``
    ran the ``points`` (as the reference campaign ran them): the median of the points' speeds."""
    if not points:
        raise UserError("no op was timed: nothing to calibrate from", field="--engine")
    import statistics

    host = Machine("host", "", threads, True, 1.0, "calibration")
    speeds = [p.speed(host, parties) for p in points]
    return statistics.median(speeds), speeds


def _threads(n: float) -> str:
    return f"{n:g} core{'s' if n != 1 else ''}"


REFERENCE = Machine(
    "reference", "the tables' reference machine: one 2-core AMD EPYC (Zen 4, family 25 model 17) VM, all parties "
    "as processes sharing its cores", 2, True, 1.0,
    "measured: benchmarks/spu_compute.py and benchmarks/crypten_compute.py ran there (each table entry's "
    "compute_source names the run)")
NO_COMPUTE = Machine("none", "compute left out", REFERENCE.threads_per_party, True, 1.0,
                     "--compute none: communication and round delays only", compute=False)


def table_scalings(entries: Mapping[str, Any]) -> tuple[Scaling, str]:
    """The fallback (s, c) of a table whose entries lack their own: the median of its measured
    entries (``derived``), or :data:`NO_SCALING`; and a sentence saying which."""
    measured = [e.compute_scaling for e in entries.values() if getattr(e, "compute_scaling", None) is not None]
    if not measured:
        return NO_SCALING, "no core scaling measured for this table: compute scales with per-core speed only"
    import statistics

    s = statistics.median(m.serial for m in measured)
    c = statistics.median(m.concurrent for m in measured)
    rho = statistics.median(m.oversubscribed for m in measured)
    return (Scaling(s, c, "derived", rho),
            f"entries without measured core scaling use the median of the table's {len(measured)} measured entries "
            f"(serial {s:.2f}, concurrent {c:.2f}" + (f", oversubscribed {rho:.2f}" if rho != 1 else "") + ")")


# -- presets and files ---------------------------------------------------------------------------

def _presets_path() -> Path:
    return Path(__file__).with_name("machines.yaml")


def preset_names() -> list[str]:
    return ["reference", *_load_presets()]


def _load_presets() -> dict[str, Machine]:
    from picost.model.located_yaml import load_located

    path = _presets_path()
    data, lines = load_located(path)
    if not isinstance(data, dict):
        raise UserError("the machine presets must be a mapping of name -> machine", file=str(path))
    return {name: _machine(spec, str(path), lines, (name,), name) for name, spec in data.items()}


def _machine(data: Any, file: str, lines: Any, path: tuple, name: str | None = None) -> Machine:
    from picost.model.located_yaml import line_of

    def fail(message: str, key: tuple = ()) -> UserError:
        where = path + key
        return UserError(message, file=file, line=line_of(lines, where) if where else None,
                         field=".".join(map(str, where)) or None)

    if not isinstance(data, dict):
        raise fail("a machine is a mapping with name, threads_per_party, parties_share_host, per_core_speed, source")
    allowed = _KEYS if name is None else tuple(k for k in _KEYS if k not in ("schema", "name"))
    for key in data:
        if key not in allowed:
            raise fail(f"unknown key '{key}' (allowed: {', '.join(allowed)})", (key,))
    for key in _REQUIRED:
        if key not in data and not (key == "name" and name is not None):
            raise fail(f"missing '{key}'")
    if name is None and data.get("schema") != SCHEMA:
        raise fail(f"schema must be '{SCHEMA}'", ("schema",))
    label = name if name is not None else data["name"]
    if not isinstance(label, str) or not label.strip():
        raise fail("'name' must be non-empty text", ("name",))
    for key in ("description", "source"):
        if key in data and (not isinstance(data[key], str) or not data[key].strip()):
            raise fail(f"'{key}' must be non-empty text", (key,))
    threads = data["threads_per_party"]
    if isinstance(threads, bool) or not isinstance(threads, (int, float)) or not math.isfinite(threads) \
            or not 1 <= threads <= MAX_THREADS:
        raise fail(f"threads_per_party must be a number of cores from 1 to {MAX_THREADS}", ("threads_per_party",))
    share = data.get("parties_share_host", False)
    if not isinstance(share, bool):
        raise fail("parties_share_host must be true or false", ("parties_share_host",))
    speed = data.get("per_core_speed")
    if speed is not None and (isinstance(speed, bool) or not isinstance(speed, (int, float))
                              or not math.isfinite(speed) or not 0.01 <= speed <= 100):
        raise fail("per_core_speed must be a number from 0.01 to 100 (a core's speed relative to the reference's), "
                   "or null if not known", ("per_core_speed",))
    return Machine(label.strip(), str(data.get("description", label)).strip(), threads, share,
                   None if speed is None else float(speed), data["source"].strip())


def load_machine_file(path: str | Path) -> Machine:
    """A machine profile (YAML, schema ``picost.machine/1``, as ``picost calibrate`` writes it)."""
    from picost.model.located_yaml import load_located

    data, lines = load_located(path)
    return _machine(data, str(path), lines, ())


def get_machine(machine: "str | Path | Machine | None" = None, threads: Any = None, compute: str | None = None) -> Machine:
    """The machine of a costing command: ``machine`` (a preset name, a profile path or a
    :class:`Machine`; default the reference), with ``threads`` (cores per party) overriding its
    count, or, with ``compute="none"``, no compute at all."""
    if compute is not None and compute not in ("model", "none"):
        raise UserError(f"unknown value '{compute}' for --compute; choose from model, none", field="--compute")
    if compute == "none":
        if machine is not None or threads is not None:
            raise UserError("--compute none leaves compute out; it takes no --machine or --threads",
                            field="--compute")
        return NO_COMPUTE
    if machine is None:
        chosen = REFERENCE
    elif isinstance(machine, Machine):
        chosen = machine
    elif isinstance(machine, (str, Path)):
        chosen = _named_or_file(str(machine))
    else:
        raise UserError(f"machine must be a preset name, a profile path or a Machine, not {type(machine).__name__}",
                        field="--machine")
    if threads is None:
        return chosen
    if isinstance(threads, bool) or not isinstance(threads, (int, float)) or not math.isfinite(threads) \
            or not 1 <= threads <= MAX_THREADS:
        raise UserError(f"--threads must be a number of cores per party from 1 to {MAX_THREADS}, not {threads!r}",
                        field="--threads")
    if machine is None:  # only --threads: that many cores per party, one machine each, reference cores
        return Machine(f"{_threads(threads)} per party", f"one machine of {_threads(threads)} per party, cores as "
                       "fast as the reference's", threads, False, 1.0, "--threads")
    from dataclasses import replace

    return replace(chosen, name=f"{chosen.name} at {_threads(threads)}", threads_per_party=threads)


def _named_or_file(text: str) -> Machine:
    if text == "reference":
        return REFERENCE
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_machine_file(path)
    presets = _load_presets()
    if text not in presets:
        import difflib

        close = difflib.get_close_matches(text, preset_names(), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise UserError(f"unknown machine '{text}'; {hint}presets: {', '.join(preset_names())} (or a profile "
                        "file, .yaml)", field="--machine")
    return presets[text]
