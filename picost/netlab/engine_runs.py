"""Run the MPC engine's parties inside a netlab: client, server and dealer in their namespaces.

The engine (:mod:`picost.mpc`) is started by its own launcher; the lab only supplies where each
party runs (``ip netns exec``), the interface gloo binds, and the client's lab address for the
rendezvous. Importing this module does not import torch; running does.
"""

from __future__ import annotations

from typing import Any

from picost.netlab.lab import PARTY_IFNAME, Netlab

RENDEZVOUS_PORT = 29500
"""Any port works: the client's namespace is fresh, nothing else listens there."""


def role_prefixes(lab: Netlab) -> dict[str, list[str]]:
    """argv prefix per engine role: enter its namespace, make gloo bind its lab interface."""
    return {role: ["ip", "netns", "exec", lab.namespace(role), "env", f"GLOO_SOCKET_IFNAME={PARTY_IFNAME}"]
            for role in ("client", "server", "dealer")}


def run_jobs(lab: Netlab, jobs: list[dict[str, Any]], timeout_s: float = 120.0) -> list[Any]:
    """Run engine ``jobs`` (see :mod:`picost.mpc.launcher`) with the parties in ``lab``;
    returns one :class:`~picost.mpc.launcher.RunResult` per job."""
    from picost.mpc.launcher import run_batch

    return run_batch(jobs, host=lab.address("client"), port=RENDEZVOUS_PORT, timeout_s=timeout_s,
                     role_prefix=role_prefixes(lab))
