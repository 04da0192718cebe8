"""PNG plots for reports, rendered in memory with matplotlib (Agg backend, imported lazily).

Each function returns the PNG bytes; the caller writes them (atomically). No timestamps or
software tags are embedded, so the same data and matplotlib version give the same bytes.
"""

from __future__ import annotations

import io
from typing import Any, Sequence


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    _pyplot().close(fig)
    return buf.getvalue()


def stacked_comm(title: str, contexts: Sequence[int], by_class: dict[str, Sequence[float]]) -> bytes:
    """Stacked communication (GB) per op class against T (log2 x axis)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    labels = [c for c, v in by_class.items() if any(x > 0 for x in v)]
    ax.stackplot(list(contexts), *[[x / 1e9 for x in by_class[c]] for c in labels], labels=labels)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("context T (tokens)")
    ax.set_ylabel("online communication (GB)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def latency_lines(title: str, contexts: Sequence[int], by_network: dict[str, Sequence[float]]) -> bytes:
    """Latency (s) against T, one line per network (log-log)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, values in by_network.items():
        ax.plot(list(contexts), list(values), marker="o", markersize=3, label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context T (tokens)")
    ax.set_ylabel("latency (s)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return _png(fig)
