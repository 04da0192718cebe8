"""A real two-party private-inference engine in torch (the ground truth for ``picost-2pc``).

Three OS processes talk over ``torch.distributed`` (gloo, TCP): the client (rank 0, holds the token
ids), the server (rank 1, holds the weights) and a dealer (rank 2) that makes correlated
randomness. Values are additively shared over Z_2^64 (``torch.int64``, wrap-around) in fixed
point with ``f`` fractional bits. Every message is counted, attributed to the op that sent it.

Modules: :mod:`ring` (encoding, shares), :mod:`transport` (counted, time-limited messages),
:mod:`dealer` (correlated randomness), :mod:`protocols` (the 2PC building blocks),
:mod:`splines` (the piecewise polynomials behind the nonlinearities), :mod:`ops_exec` (one
function per op kind), :mod:`model` (whole models), :mod:`party` (a party's entry point),
:mod:`launcher` (local runs). The analytic core never imports this package.
"""
