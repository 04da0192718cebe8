"""Real networks on one machine: parties in network namespaces, shaped links, a delay line.

Test and measurement tooling (needs root); the analytic core never imports it.

* :mod:`picost.netlab.lab` -- :class:`~picost.netlab.lab.Netlab`: namespaces, veths, ``tbf``
  shapers, cleanup (also of crashed runs);
* :mod:`picost.netlab.delayline` -- the TUN delay line (the kernel here has no netem);
* :mod:`picost.netlab.gro` -- turns on GRO for veth ends;
* :mod:`picost.netlab.probe`, :mod:`picost.netlab.verify` -- measured RTT and goodput vs the
  configuration;
* :mod:`picost.netlab.engine_runs` -- the MPC engine's parties inside a lab;
* :mod:`picost.netlab.latency_check` -- modeled latency vs wall time (docs/latency-model-check.md).
* :mod:`picost.netlab.party_runs`, :mod:`picost.netlab.spu_runs`, :mod:`picost.netlab.crypten_runs` --
  SPU's and CrypTen's parties as processes in a lab, each op timed at several one-way delays;
  :mod:`picost.netlab.depth` -- the depth: the slope of wall time over the delay.
"""
