"""Run a two-party program in three threads of this process (queues instead of gloo).

For fast protocol unit tests; the real engine (processes, gloo) is tested in test_mpc_*.py.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable

import torch

from picost.mpc.dealer import Correlations
from picost.mpc.protocols import Ctx
from picost.mpc.transport import Transport


class _Done:
    def wait(self, timeout: Any = None) -> None:
        return None


class QueueTransport(Transport):
    """A :class:`Transport` whose wire is a set of in-process queues."""

    def __init__(self, rank: int, wires: dict[tuple[int, int], queue.Queue], timeout_s: float = 20.0) -> None:
        super().__init__(rank, timeout_s)
        self.wires = wires

    def _send(self, tensor: torch.Tensor, peer: int) -> Any:
        self.wires[(self.rank, peer)].put(tensor.clone())
        return _Done()

    def _post_recv(self, shape: tuple[int, ...], dtype: torch.dtype, peer: int) -> tuple[torch.Tensor, Any]:
        buf, wire, timeout_s = torch.empty(shape, dtype=dtype), self.wires[(peer, self.rank)], self.timeout_s

        class Pending:
            def wait(self, timeout: Any = None) -> None:
                got = wire.get(timeout=timeout_s)
                assert tuple(got.shape) == shape and got.dtype == dtype, (got.shape, shape)
                buf.copy_(got)

        return buf, Pending()


def run_threads(program: Callable[[Ctx], Any], frac_bits: int = 16, comparison: str = "tables") -> list[Any]:
    """``program(ctx)`` as client, server and dealer (splines compare by ``comparison``); returns
    [client, server, dealer] results and each party's transport as ``.tx`` on the ctx (results
    are (value, ctx) pairs)."""
    wires = {(a, b): queue.Queue() for a in range(3) for b in range(3) if a != b}
    out: list[Any] = [None, None, None]
    errors: list[BaseException] = []

    def party(rank: int) -> None:
        try:
            tx = QueueTransport(rank, wires)
            ctx = Ctx(tx, Correlations(tx), frac_bits, comparison=comparison)
            out[rank] = (program(ctx), ctx)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            errors.append(exc)

    threads = [threading.Thread(target=party, args=(r,)) for r in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
    return out
