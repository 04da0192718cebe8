"""The two-party building blocks, each costed in the module docstring of ``picost-2pc.yaml``.

All functions take a :class:`Ctx` and additive shares (int64 tensors; the dealer carries zero
tensors of the same shapes through the program and only produces correlated randomness). Per
party and per element, online (8 bytes = one ring element):

================  =====================================================  ======
primitive         what each party sends                                   rounds
================  =====================================================  ======
open              its share (8 B)                                          1
mul (Beaver)      x - a and y - b (8 B each)                                1
square            x - a (8 B)                                               1
matmul (Beaver)   X - A and Y - B                                           1
mul_server        client: x0 - A (the server's W - B: once per model)        1
trunc             its share of x + r (8 B); exact up to +1 ulp              1
spline            x + r (8 B) + 1 B per threshold; + trunc unless exact     2 (+1)
spline, tree      x + r (8 B) + ceil(9J/8) + ceil(4J/8) + ceil(J/8) B       4 (+1)
                  for J thresholds; + trunc unless exact
================  =====================================================  ======

``ctx.comparison`` chooses how splines compare (picost-2pc's option ``comparison``): ``tables``
(below, the default) or ``tree`` (:func:`_tree_comparison`: two rounds of AND gates over six
digits, about 1/20 of the dealer bytes for two more rounds).

**Truncation** (dealer-assisted, by ``s`` bits, inputs ``|x| < 2^62``): with ``y = x + 2^62``
the parties open ``c = y + r`` (``r`` uniform); the wrap bit of ``y + r`` is exactly
``msb(r) and not msb(c)``, so ``floor(y / 2^s) = (c >> s) - (r >> s) - borrow + 2^(64-s) wrap``.
The dealer gives shares of ``r >> s`` and ``msb(r)``; the borrow of the low ``s`` bits is not
computed, so the result is ``floor(x / 2^s)`` or one more: error in ``[0, 1]`` ulp, never a wrap
failure (unlike local SecureML truncation).

**Spline** (piecewise quadratic with public thresholds ``t_j``; comparison = the 1-threshold
ReLU): inputs ``|x - t_j| < 2^32`` (2^16 in real units at f = 16). The parties open
``c = x + r``. For each threshold, ``y = x - t_j + 2^32`` has ``[x >= t_j]`` as bit 32, which is
``bit32(c') xor bit32(r) xor borrow`` with ``c' = c - t_j + 2^32`` public and ``borrow =
[c' mod 2^32 < r mod 2^32]``. The dealer cuts ``r mod 2^32`` into digits of 11, 11 and 10
bits and gives, per digit, a shared table (2048, 2048, 1024 entries) of ``trit(v, r_i)``
(gt/eq/lt of a public digit ``v`` against ``r_i``; mod-3 shares, five to a byte on the wire).
One set of tables serves every threshold: each party looks up its shares at the digits of each
``c'`` and adds its share of a fresh uniform mask ``s_ij`` (both shares come from the PRG
seeds: nothing sent); the parties open the three masked trits (one byte: base-3 packed),
uniform by the masks. A second shared table of 27 entries per threshold, indexed by the opened
trits, gives shares of ``r^k * (bit32(r) xor borrow)`` for k = 0..degree; with the public
``bit32(c')`` the parties get shares of ``r^k [x >= t_j]`` and, for every segment ``S`` (a
difference of two threshold bits), ``sum_k coef_k(c) [r^k S]``: the polynomial of ``x = c - r``
on its segment, locally. Coefficients are scaled so the result has ``3f`` fractional bits; one
truncation by ``2f`` follows (exact splines such as ReLU need none). Dealer bytes per element:
``5120 / 5 = 1024`` for the digit tables plus ``27 * (degree + 1) * 8`` per threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from picost.mpc import ring
from picost.mpc.dealer import Correlations
from picost.mpc.splines import Spline
from picost.mpc.transport import CLIENT, DEALER, SERVER, Transport

CMP_BITS = 32
DIGIT_WIDTHS = (11, 11, 10)
"""The comparison's digits, low first: as even as 32 bits allow (table entries: 2 * 2^11 + 2^10)."""
DIGITS = len(DIGIT_WIDTHS)
TABLE_OFFSETS = tuple(sum(1 << w for w in DIGIT_WIDTHS[:i]) for i in range(DIGITS))
"""Where digit i's table starts in an element's row of digit tables."""
TABLE_ENTRIES = sum(1 << w for w in DIGIT_WIDTHS)
TRIT_COMBOS = 3 ** DIGITS
assert sum(DIGIT_WIDTHS) == CMP_BITS
assert DIGITS <= ring.residues_per_byte(3), "the masked trits of one threshold travel in one byte"

COMPARISONS = ("tables", "tree")
TRUNCATIONS = ("exact", "local")
EXPS = ("spline", "limit")
LIMIT_BITS = 8
"""``exp`` by limit: ``(1 + x / 2^LIMIT_BITS)^(2^LIMIT_BITS)``, LIMIT_BITS squarings (CrypTen's)."""
LIMIT_EXTRA_BITS = 2
"""Fractional bits the limit's chain carries beyond f: 4x less rounding error, and squares below
2^(2 (f + 2)) = 2^36 at f = 16 (a local truncation's wrap failure: about 2^-28 per step)."""
TREE_WIDTHS = (5, 5, 5, 5, 6, 6)
"""The tree comparison's digits, low first: six digits of 32 bits (table bits: 2 * (4*32 + 2*64))."""
TREE_OFFSETS = tuple(2 * sum(1 << w for w in TREE_WIDTHS[:i]) for i in range(len(TREE_WIDTHS)))
"""Where digit i's (lt, eq) bit pairs start in an element's row of tree tables."""
TREE_SHIFTS = tuple(sum(TREE_WIDTHS[:i]) for i in range(len(TREE_WIDTHS)))
"""Where digit i sits in ``r mod 2^32`` (its lowest bit)."""
TREE_TABLE_BITS = 2 * sum(1 << w for w in TREE_WIDTHS)
TREE_PAIRS = 3
"""The first AND round pairs the six digits: three combines of two gates (lt and eq) each."""
TREE_TOP_PRODUCTS = 5
"""The second AND round combines the three pairs at once, ``lt_45 xor eq_45 lt_23 xor eq_45 eq_23
lt_01``: four opened bits (masks a, b1, b2, c) and the dealer's a b1, a b2, a c, b2 c, a b2 c."""
TREE_AND_BITS = 2 * TREE_PAIRS + TREE_TOP_PRODUCTS
"""Dealer bits per threshold: the server's shares of the AND products."""
TREE_OPENED = (3 + 2 * TREE_PAIRS, 4)
"""Bits opened per threshold in the two AND rounds (eq_hi once for its two gates, then x, y1, y2, z)."""
assert sum(TREE_WIDTHS) == CMP_BITS and TREE_TABLE_BITS == 512 and TREE_AND_BITS == 11
assert all(o % 64 == 0 and 5 <= w <= 6 for o, w in zip(TREE_OFFSETS, TREE_WIDTHS)), "a digit's pairs fill whole words"


@dataclass
class Ctx:
    """A party's view of the protocol: its role, transport, randomness and fixed point."""

    tx: Transport
    pre: Correlations
    frac_bits: int
    staging: bool = False
    """Inside an op's offline-then-online stage (``ops_exec.stage``): nested ops do not stage."""
    preprocess_s: float = 0.0
    """Seconds spent in offline rehearsals (preprocessing) so far."""
    comparison: str = "tables"
    """How splines compare (:data:`COMPARISONS`): ``tables`` (two rounds, large dealer tables) or
    ``tree`` (four rounds, about 1/20 of the dealer bytes)."""
    truncation: str = "exact"
    """How products are rescaled (:data:`TRUNCATIONS`): ``exact`` (dealer-assisted, one round) or
    ``local`` (SecureML's, nothing sent; rare wrap failures)."""
    exp: str = "spline"
    """How softmax exponentiates (:data:`EXPS`): a ``spline`` or the ``limit`` (:func:`exp_limit`)."""

    @property
    def role(self) -> int:
        return self.tx.rank

    @property
    def placeholders(self) -> bool:
        """The values are placeholders (zeros): the dealer's, whose program only produces
        correlated randomness, and a party's in an offline rehearsal, whose online messages are
        muted. Local arithmetic on them is skipped once the material is drawn."""
        return self.tx.rehearsal or self.role == DEALER

    def public(self, value: torch.Tensor) -> torch.Tensor:
        """Shares of a public ring value: the client holds it, the server holds 0."""
        return value.clone() if self.role == CLIENT else torch.zeros_like(value)

    def open(self, x: torch.Tensor) -> torch.Tensor:
        """Reveal shared ``x`` to both parties (one round)."""
        return ring.reconstruct(x, self.tx.exchange(x, x))

    def reveal_to_client(self, x: torch.Tensor) -> torch.Tensor | None:
        """The server sends its share; the client gets ``x``, the server None (one round)."""
        if self.role == CLIENT:
            return x + self.tx.exchange(None, x)
        self.tx.exchange(x if self.role == SERVER else None, None)
        return None


# -- products --------------------------------------------------------------------------------

def _broadcast(a: tuple[int, ...] | torch.Size, b: tuple[int, ...] | torch.Size) -> tuple[int, ...]:
    """The broadcast shape of ``a`` and ``b`` (``torch.broadcast_shapes`` imports sympy on its
    first call: 0.4 s of a party's first product)."""
    width = max(len(a), len(b))
    a, b = (1,) * (width - len(a)) + tuple(a), (1,) * (width - len(b)) + tuple(b)
    if any(p != q and 1 not in (p, q) for p, q in zip(a, b)):
        raise ValueError(f"shapes {a} and {b} do not broadcast")
    return tuple(q if p == 1 else p for p, q in zip(a, b))


def mul(ctx: Ctx, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Shares of ``x * y`` (broadcasting), fractional bits added, not truncated."""
    a = ctx.pre.random(tuple(x.shape))
    b = ctx.pre.random(tuple(y.shape))
    out_shape = _broadcast(x.shape, y.shape)
    c = ctx.pre.correlated(out_shape, lambda: a * b)
    d_e = ctx.open(torch.cat([(x - a).reshape(-1), (y - b).reshape(-1)]))
    d, e = d_e[: x.numel()].view(x.shape), d_e[x.numel():].view(y.shape)
    z = c + d * b + a * e
    return z + d * e if ctx.role == CLIENT else z


def square(ctx: Ctx, x: torch.Tensor) -> torch.Tensor:
    """Shares of ``x * x``, not truncated."""
    return square_opening(ctx, x)[0]


def square_opening(ctx: Ctx, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shares of ``x * x`` (not truncated), with the opened ``d = x - a`` and the shares of the
    mask ``a``: :func:`mul_opened` multiplies ``x`` again without opening it a second time."""
    a = ctx.pre.random(tuple(x.shape))
    c = ctx.pre.correlated(tuple(x.shape), lambda: a * a)
    d = ctx.open(x - a)
    z = c + 2 * d * a
    return (z + d * d if ctx.role == CLIENT else z), d, a


def mul_opened(ctx: Ctx, d: torch.Tensor, a: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Shares of ``x * y`` (broadcasting) for an ``x = d + a`` already opened as ``d`` against the
    mask ``a`` (:func:`square_opening`): only ``y - b`` is opened (a Beaver product whose first
    half is reused; ``a`` masks nothing new). Not truncated."""
    b = ctx.pre.random(tuple(y.shape))
    out_shape = _broadcast(d.shape, y.shape)
    c = ctx.pre.correlated(out_shape, lambda: a * b)
    e = ctx.open(y - b)
    z = c + d * b + a * e
    return z + d * e if ctx.role == CLIENT else z


def matmul(ctx: Ctx, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Shares of ``x @ y`` (batched), not truncated."""
    a = ctx.pre.random(tuple(x.shape))
    b = ctx.pre.random(tuple(y.shape))
    out_shape = tuple((a[..., :1] @ b[..., :1, :]).shape[:-2]) + (x.shape[-2], y.shape[-1])
    c = ctx.pre.correlated(out_shape, lambda: a @ b)
    d_e = ctx.open(torch.cat([(x - a).reshape(-1), (y - b).reshape(-1)]))
    if ctx.placeholders:
        return torch.zeros(out_shape, dtype=torch.int64)
    d, e = d_e[: x.numel()].view(x.shape), d_e[x.numel():].view(y.shape)
    z = c + d @ b + a @ e
    return z + d @ e if ctx.role == CLIENT else z


def mul_server(ctx: Ctx, x: torch.Tensor, w: torch.Tensor | None, w_shape: tuple[int, ...],
               prod: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], key: str | None = None) -> torch.Tensor:
    """Shares of ``prod(x, w)`` for a server-held ``w`` (ring values; None off the server),
    ``prod`` bilinear (matmul or broadcast mul), not truncated.

    The dealer makes ``A`` (the client's), the weight's mask ``B`` (the server's) and shares of
    ``C = prod(A, B)``; the client holds ``F = w - B``. With a ``key`` (the weight's name in the
    model), ``B`` is the model's (:meth:`Correlations.weight_mask`): ``F`` crosses once per model
    as setup bytes and the client precomputes ``prod(A, F) + C0`` offline. Without one, ``B`` is
    fresh and the server sends ``F`` in the round. Online, the client sends ``E = x0 - A``;
    client: ``prod(A, F) + C0``; server: ``prod(x1 + E, w) + C1``.
    """
    A = ctx.pre.private(CLIENT, tuple(x.shape))
    zx, zw = torch.zeros(tuple(x.shape), dtype=torch.int64), torch.zeros(w_shape, dtype=torch.int64)
    if prod is torch.matmul:
        out_shape = tuple(x.shape[:-1]) + (w_shape[-1],)
    else:
        out_shape = _broadcast(x.shape, w_shape)
    if key is not None:
        F = ctx.pre.weight_mask(key, w, w_shape)  # client: w - B; dealer: B
        B = F if ctx.pre.is_dealer else None
    else:
        B = ctx.pre.private(SERVER, w_shape)
        F = None
    C = ctx.pre.correlated(out_shape, lambda: prod(A, B))
    if ctx.role == CLIENT:
        if key is not None:
            pre = ctx.pre.local(lambda: prod(A, F) + C)
            ctx.tx.exchange(x - A, None)
            return pre
        F = ctx.tx.exchange(x - A, zw)
        return prod(A, F) + C
    if ctx.role == SERVER:
        E = ctx.tx.exchange(None if key is not None else w - B, zx)
        if ctx.placeholders:
            return torch.zeros(out_shape, dtype=torch.int64)
        return prod(x + E, w) + C
    ctx.tx.exchange(None, None)
    return torch.zeros(out_shape, dtype=torch.int64)


# -- truncation ------------------------------------------------------------------------------

_OFFSET_BITS = 62


def trunc(ctx: Ctx, x: torch.Tensor, shift: int) -> torch.Tensor:
    """Shares of ``floor(x / 2^shift)`` or one more (see the module docstring); ``|x| < 2^62``."""
    return _truncate(ctx, x, shift, square=False)[0]


def trunc_square(ctx: Ctx, x: torch.Tensor, shift: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`trunc` and the square of its result, for no more messages: after the opening the
    result is ``y = top - R`` with ``top`` public and ``R = r_hi - (1 - msb(c)) 2^(64-s) msb(r)``
    linear in the dealer's values, so ``y^2 = top^2 - 2 top R + R^2`` is local given shares of
    ``r_hi^2`` and ``r_hi msb(r)`` (the ``msb(r)^2`` term is a multiple of 2^64 for s <= 32).
    Returns shares of y and of y^2 (twice y's fractional bits, not truncated)."""
    assert shift <= 32, shift
    y, y_sq = _truncate(ctx, x, shift, square=True)
    assert y_sq is not None
    return y, y_sq


def _truncate(ctx: Ctx, x: torch.Tensor, shift: int, square: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The truncation of :func:`trunc` (one opening of ``x + 2^62 + r``) and, with ``square``, the
    local square of its result (:func:`trunc_square`: two more dealer values per element)."""
    shape = tuple(x.shape)
    r = ctx.pre.random(shape)

    def r_hi_value() -> torch.Tensor:  # r >> s, computed by the dealer only
        return ring.logical_rshift(r, shift)

    r_hi = ctx.pre.correlated(shape, r_hi_value)
    r_msb = ctx.pre.correlated(shape, lambda: ring.msb(r))
    if square:
        r_hi_sq = ctx.pre.correlated(shape, lambda: r_hi_value() ** 2)
        r_hi_msb = ctx.pre.correlated(shape, lambda: r_hi_value() * ring.msb(r))
    offset = torch.full(shape, 1 << _OFFSET_BITS, dtype=torch.int64)
    c = ctx.open(x + ctx.public(offset) + r)
    if ctx.placeholders:
        zeros = torch.zeros(shape, dtype=torch.int64)
        return zeros, (zeros if square else None)
    unwrapped = 1 - ring.msb(c)  # public: the wrap is msb(r) and not msb(c)
    top = ring.logical_rshift(c, shift) - (1 << (_OFFSET_BITS - shift))
    R = r_hi - unwrapped * ring.pow2(ring.RING_BITS - shift) * r_msb
    y = ctx.public(top) - R
    if not square:
        return y, None
    R_sq = r_hi_sq - unwrapped * ring.pow2(ring.RING_BITS + 1 - shift) * r_hi_msb
    return y, ctx.public(top * top) - 2 * top * R + R_sq


def exp_limit(ctx: Ctx, x: torch.Tensor) -> torch.Tensor:
    """Shares of ``(1 + x / 2^8)^(2^8)`` (about exp(x): abs error below 1.5e-3 for x in [-16, 0],
    the limit's own 1.1e-3; inputs above -256): eight squarings, as CrypTen's exp, carried at
    :data:`LIMIT_EXTRA_BITS`
    more fractional bits than f (the squarings multiply the rounding error by up to 2^8). With
    exact truncation the first truncation (x / 2^8) and each squaring's are :func:`trunc_square`:
    every square is local, nine rounds of one element. With local truncation each squaring is a
    Beaver square (one round, one element) rescaled locally: eight rounds."""
    f = ctx.frac_bits
    g = f + LIMIT_EXTRA_BITS  # the chain's fractional bits; y <= 1, so y^2 < 2^(2g)
    if ctx.truncation == "local":
        y = ctx.public(torch.full_like(x, 1 << g)) + local_trunc(ctx, x, LIMIT_BITS - LIMIT_EXTRA_BITS)
        for step in range(LIMIT_BITS):
            y = local_trunc(ctx, square(ctx, y), g if step < LIMIT_BITS - 1 else 2 * g - f)
        return y
    _, y_sq = trunc_square(ctx, x + ctx.public(torch.full_like(x, 1 << (f + LIMIT_BITS))), LIMIT_BITS - LIMIT_EXTRA_BITS)
    for _ in range(LIMIT_BITS - 1):
        _, y_sq = trunc_square(ctx, y_sq, g)
    return trunc(ctx, y_sq, 2 * g - f)


def rescale(ctx: Ctx, x: torch.Tensor, shift: int) -> torch.Tensor:
    """A product of two fixed-point values (2f fractional bits) brought back to f: :func:`trunc`,
    or with ``ctx.truncation == "local"`` :func:`local_trunc`. Values with 3f fractional bits (a
    spline's sum, the norms' means, variances and gained outputs) always use :func:`trunc`: locally
    they would fail about once in 2^16 elements."""
    return local_trunc(ctx, x, shift) if ctx.truncation == "local" else trunc(ctx, x, shift)


def local_trunc(ctx: Ctx, x: torch.Tensor, shift: int) -> torch.Tensor:
    """SecureML's local truncation (CrypTen's two-party division by its scale): the client shifts
    its share, the server negates, shifts and negates its own; nothing is sent, the dealer gives
    nothing. The result is ``floor(x / 2^shift)`` within one ulp either way unless the shares wrap
    around 0 in the wrong place: a failure (a garbage element) with probability about
    ``|x| / 2^64`` per element (below 2^-22 for values under 2^10 at 2f = 32 bits), as in CrypTen."""
    if ctx.role == CLIENT:
        return x >> shift
    if ctx.role == SERVER:
        return -((-x) >> shift)
    return torch.zeros_like(x)


# -- comparison and splines ------------------------------------------------------------------

def _trits(public_digits: torch.Tensor, secret_digits: torch.Tensor) -> torch.Tensor:
    """0 if public > secret, 1 if equal, 2 if public < secret (a borrow), as uint8."""
    below, equal = public_digits < secret_digits, public_digits == secret_digits
    return 2 * below.to(torch.uint8) + equal.to(torch.uint8)


def _borrow(trits: torch.Tensor) -> torch.Tensor:
    """[public < secret] of two numbers from their digit trits (..., DIGITS), low digit first."""
    lt = torch.zeros(trits.shape[:-1], dtype=torch.int64)
    decided = torch.zeros(trits.shape[:-1], dtype=torch.bool)
    for i in reversed(range(DIGITS)):
        t = trits[..., i]
        lt = torch.where(~decided & (t == 2), 1, lt)
        decided |= t != 1
    return lt


def _digits(v: torch.Tensor, widths: tuple[int, ...] = DIGIT_WIDTHS) -> torch.Tensor:
    """The digits (``widths``, low first) of the low CMP_BITS bits of each element: shape (..., digits)."""
    shifts = torch.tensor([sum(widths[:i]) for i in range(len(widths))], dtype=torch.int64)
    return (v.unsqueeze(-1) >> shifts) & ((1 << torch.tensor(widths, dtype=torch.int64)) - 1)


def _r_powers(r: torch.Tensor, deg: int) -> torch.Tensor:
    """``r^k`` for k = 0..deg along a new last dimension (the dealer's values)."""
    return torch.stack([torch.ones_like(r), r, r * r][: deg + 1], dim=-1)


def _expect_residues(ctx: Ctx, shape: tuple[int, ...], mod: int) -> None:
    """What :func:`_open_residues` of residues of ``shape`` will receive, for a rehearsal that
    skips computing them (:meth:`Transport.expect`)."""
    groups = -(-shape[-1] // ring.residues_per_byte(mod))
    ctx.tx.expect(torch.empty(shape[:-1] + (groups,), dtype=torch.uint8))


def _open_residues(ctx: Ctx, mine: torch.Tensor, mod: int) -> torch.Tensor:
    """Open residues mod ``mod`` (..., L) shared additively mod ``mod``, packed along the last
    dimension on the wire (one round): the opened values, uint8."""
    packed = ring.pack_residues(mine, mod)
    theirs = ring.unpack_residues(ctx.tx.exchange(packed, packed), mod, mine.shape[-1])
    return mine ^ theirs if mod == 2 else (mine + theirs) % mod


Compared = tuple[torch.Tensor, torch.Tensor, "torch.Tensor | None", torch.Tensor]
"""What a comparison gives a spline: the opened ``c``, the public ``c'`` (n, J), a public flip
(n, J) or None, and shares ``base`` (n, J, deg + 1): shares of ``r^k beta_j`` are ``r^k - base``
where the flip is 1, ``base`` elsewhere."""


def _table_comparison(ctx: Ctx, x: torch.Tensor, r: torch.Tensor, thresholds: torch.Tensor,
                      powers: list[torch.Tensor]) -> Compared:
    """The comparison by digit tables and 27-entry tables (two rounds; module docstring): the
    opened ``c = x + r``, ``c' = c - t_j + 2^32`` (n, J), shares of ``r^k beta_j`` (n, J, deg + 1)
    with ``beta_j = bit32(r) xor [c' mod 2^32 < r mod 2^32]`` (``powers``: shares of r^k), read
    from the tables (no flip)."""
    n, J, pre, deg = x.numel(), len(thresholds), ctx.pre, len(powers) - 1
    masks = pre.random((n, J, DIGITS), mod=3)  # shares; the dealer gets the masks

    def digit_tables(lo: int, hi: int) -> torch.Tensor:  # (hi - lo, TABLE_ENTRIES): digit i's at TABLE_OFFSETS[i]
        secret = _digits(r[lo:hi])
        return torch.cat([_trits(torch.arange(1 << w), secret[:, i: i + 1])
                          for i, w in enumerate(DIGIT_WIDTHS)], 1)

    def final_tables(lo: int, hi: int) -> torch.Tensor:  # (hi - lo, J, TRIT_COMBOS, deg + 1)
        combos = torch.arange(TRIT_COMBOS, dtype=torch.uint8).view(TRIT_COMBOS, 1)
        opened = ring.unpack_residues(combos, 3, DIGITS).to(torch.int64)  # (TRIT_COMBOS, DIGITS)
        trits = (opened.view(1, 1, TRIT_COMBOS, DIGITS) - masks[lo:hi].unsqueeze(2).to(torch.int64)) % 3
        rows = r[lo:hi]
        beta = _borrow(trits) ^ ((rows >> CMP_BITS) & 1).view(hi - lo, 1, 1)  # (rows, J, TRIT_COMBOS)
        return beta.unsqueeze(-1) * _r_powers(rows, deg).view(hi - lo, 1, 1, deg + 1)

    # the dealer's tables, per element (packed trits, five a byte; the 27-entry tables), read
    # at J * DIGITS and J * (deg + 1) places
    tables = pre.keyed_rows(n, TABLE_ENTRIES, digit_tables, mod=3)
    finals = pre.keyed_rows(n, J * TRIT_COMBOS * (deg + 1), final_tables)

    c = ctx.open(x + r)  # round 1
    cj = c.unsqueeze(1) + (1 << CMP_BITS) - thresholds  # (n, J) public
    if ctx.placeholders:  # the masked trits' message, not computed
        _expect_residues(ctx, (n, J, DIGITS), 3)
        return c, cj, None, torch.zeros((n, J, deg + 1), dtype=torch.int64)
    at = (_digits(cj) + torch.tensor(TABLE_OFFSETS)).view(n, J * DIGITS)
    mine = (tables.at(at).view(n, J, DIGITS) + masks) % 3  # shares of the masked trits
    opened = _open_residues(ctx, mine, 3)  # round 2
    index = ring.pack_residues(opened, 3).to(torch.int64).view(n, J)  # the combo's number
    entry = (torch.arange(J) * TRIT_COMBOS + index) * (deg + 1)  # (n, J): where threshold j's entry starts
    beta = finals.at((entry.unsqueeze(-1) + torch.arange(deg + 1)).view(n, J * (deg + 1))).view(n, J, deg + 1)
    return c, cj, None, beta


def _tree_comparison(ctx: Ctx, x: torch.Tensor, r: torch.Tensor, thresholds: torch.Tensor,
                     powers: list[torch.Tensor]) -> Compared:
    """:func:`_table_comparison` in four rounds with little dealer material. The dealer cuts
    ``r mod 2^32`` into six digits (:data:`TREE_WIDTHS`) and gives XOR shares of, per digit and
    public value v, the pair ``([v < r_i], [v == r_i])`` (with ``bit32(r)`` folded into the top
    digit's ``lt``): 512 bits an element, for every threshold. Each party reads its shares at the
    digits of each ``c'``; one round of AND gates pairs the digits (a combine is ``lt = lt_hi xor
    eq_hi lt_lo``, ``eq = eq_hi eq_lo``, one opened bit of eq_hi serving both; dealer triples), one
    more combines the three pairs at once (:func:`_top_combine`), giving shares of ``beta_j``; the
    parties open ``o = beta_j xor s_j`` (``s_j`` a mask from the PRG seeds) and ``r^k beta_j = o
    r^k + (1 - 2 o) [s_j r^k]`` with the dealer's ``s_j r^k`` (returned as the flip ``o`` and the
    shares ``s_j r^k``). Online per element and party: 8 B for c, then ``ceil(9J/8)``,
    ``ceil(4J/8)``, ``ceil(J/8)`` bytes (the rounds' opened bits, packed per element, and o).
    Dealer: 64 B of tables, ``ceil(11J/8)`` bytes of AND products and ``8 (deg + 1) J`` for
    ``s_j r^k``."""
    n, J, pre, deg = x.numel(), len(thresholds), ctx.pre, len(powers) - 1
    # the masks of both AND rounds from the PRG seeds; the server's shares of their products from the dealer
    a = pre.random((n, J, TREE_PAIRS), mod=2)
    b = pre.random((n, J, TREE_PAIRS, 2), mod=2)
    m = pre.random((n, J, 4), mod=2)  # the top round's a, b1, b2, c
    products = pre.correlated((n, J * TREE_AND_BITS), lambda: torch.cat(
        [(a.unsqueeze(-1) & b).reshape(n, -1), _top_products(m).reshape(n, -1)], 1), mod=2)
    products = ring.unpack_residues(products, 2, J * TREE_AND_BITS)
    pair_products = products[:, : J * 2 * TREE_PAIRS].reshape(n, J, TREE_PAIRS, 2)
    top_products = products[:, J * 2 * TREE_PAIRS:].reshape(n, J, TREE_TOP_PRODUCTS)
    s = pre.random((n, J), mod=2)
    s_rk = pre.correlated((n, J, deg + 1), lambda: s.to(torch.int64).unsqueeze(-1) * _r_powers(r, deg).unsqueeze(1))

    def tree_tables(lo: int, hi: int) -> torch.Tensor:  # (hi - lo, TREE_TABLE_BITS / 64) words
        return _tree_table_words(r[lo:hi])

    tables = pre.keyed_rows(n, TREE_TABLE_BITS, tree_tables, mod=2)

    c = ctx.open(x + r)  # round 1
    cj = c.unsqueeze(1) + (1 << CMP_BITS) - thresholds  # (n, J) public
    if ctx.placeholders:  # the two AND rounds' and o's messages, not computed
        for bits in (*TREE_OPENED, 1):
            _expect_residues(ctx, (n, bits * J), 2)
        return c, cj, None, torch.zeros((n, J, deg + 1), dtype=torch.int64)
    pairs = _tree_pairs(tables.words(n), cj)
    lt, eq = pairs & 1, pairs >> 1
    hi, lo = slice(1, None, 2), slice(0, None, 2)  # round 2: digit pairs (1, 0), (3, 2), (5, 4)
    z = _and_gates(ctx, eq[..., hi], torch.stack([lt[..., lo], eq[..., lo]], -1), a, b, pair_products)
    lt, eq = lt[..., hi] ^ z[..., 0], z[..., 1]  # pairs of digits 0-1, 2-3, 4-5
    beta = _top_combine(ctx, lt, eq, m, top_products)  # round 3: shares of beta_j
    o = _open_residues(ctx, beta ^ s, 2)  # (n, J) public, round 4
    return c, cj, o, s_rk  # r^k beta = o r^k + (1 - 2 o) [s r^k]


_EVEN_BITS = 0x5555555555555555
"""The lt bits of a word of (lt, eq) pairs: bit 2v is [v < r_i], bit 2v + 1 is [v == r_i]."""


def _pair_word(d: torch.Tensor) -> torch.Tensor:
    """The word of (lt, eq) pairs of the 32 values 0..31 against digits ``d`` (int64, any value:
    below 0 no value is smaller or equal, from 32 on every value is smaller)."""
    low = d.clamp(0, 32)
    lt = torch.where(low == 32, _EVEN_BITS, _EVEN_BITS & ((1 << (2 * low.clamp(max=31))) - 1))
    inside = (d >= 0) & (d < 32)
    return lt | torch.where(inside, 1 << (2 * d.clamp(0, 31) + 1), 0)


def _tree_table_words(r: torch.Tensor) -> torch.Tensor:
    """The dealer's tree tables of masks ``r`` (n,) as words (n, TREE_TABLE_BITS / 64): per digit of
    ``r mod 2^32`` (:data:`TREE_WIDTHS`) the (lt, eq) pairs of every digit value (one word per 32
    values), ``bit32(r)`` folded into the top digit's lt bits. Built word by word, not bit by bit."""
    digits = _digits(r, TREE_WIDTHS)
    words = []
    for i, w in enumerate(TREE_WIDTHS):
        words += [_pair_word(digits[:, i] - 32 * part) for part in range(1 << (w - 5))]
    top = (r >> CMP_BITS) & 1
    for part in range(1 << (TREE_WIDTHS[-1] - 5)):
        words[-1 - part] = words[-1 - part] ^ (top * _EVEN_BITS)
    return torch.stack(words, 1)


def _tree_pairs(words: torch.Tensor, cj: torch.Tensor) -> torch.Tensor:
    """A party's shares of the (lt, eq) pairs (``lt + 2 eq``, uint8) of every digit of each public
    ``c'`` (n, J) -> (n, J, digits), read from the elements' table words (n, TREE_TABLE_BITS / 64):
    digit i's pairs start at bit ``TREE_OFFSETS[i]``, two bits per value, so a 5-bit digit's pairs
    fill one word and a 6-bit digit's two. Shifts of one word per digit: no gather."""
    out = torch.empty(tuple(cj.shape) + (len(TREE_WIDTHS),), dtype=torch.uint8)
    for i, (shift, width, offset) in enumerate(zip(TREE_SHIFTS, TREE_WIDTHS, TREE_OFFSETS)):
        twice = (2 << width) - 2  # 2 * (2^width - 1): 2 * digit is the pair's first bit in its words
        bit = (cj << 1) & twice if shift == 0 else (cj >> (shift - 1)) & twice
        first = words[:, offset // 64: offset // 64 + 1]
        if width == 6:  # the second word holds digit values 32..63
            first = torch.where(bit >= 64, words[:, offset // 64 + 1: offset // 64 + 2], first)
            bit = bit & 63
        out[..., i] = (first >> bit) & 3
    return out


def _top_products(m: torch.Tensor) -> torch.Tensor:
    """The dealer's products of the top round's masks ``m = (a, b1, b2, c)`` (..., 4): (..., 5) bits
    a b1, a b2, a c, b2 c, a b2 c."""
    a, b1, b2, c = m.unbind(-1)
    return torch.stack([a & b1, a & b2, a & c, b2 & c, a & b2 & c], -1)


def _top_combine(ctx: Ctx, lt: torch.Tensor, eq: torch.Tensor, m: torch.Tensor, products: torch.Tensor) -> torch.Tensor:
    """XOR shares of ``lt_45 xor x y1 xor x y2 z`` with ``x = eq_45``, ``y1 = lt_23``, ``y2 = eq_23``,
    ``z = lt_01`` (lt, eq: (n, J, 3) shares of the digit pairs 01, 23, 45), one round: the parties
    open ``d, e1, e2, f = x ^ a, y1 ^ b1, y2 ^ b2, z ^ c`` (four bits per threshold, packed per
    element); then ``x y1 = d e1 ^ d b1 ^ e1 a ^ a b1`` and ``x y2 z = d e2 f ^ d e2 c ^ d f b2 ^ e2 f
    a ^ d (b2 c) ^ e2 (a c) ^ f (a b2) ^ a b2 c`` are local given shares of the masks (``m``) and of
    their products (``products``, :func:`_top_products`); the public terms go to the client."""
    n, J = lt.shape[:2]
    inputs = torch.stack([eq[..., 2], lt[..., 1], eq[..., 1], lt[..., 0]], -1)  # x, y1, y2, z
    d, e1, e2, f = _open_residues(ctx, (inputs ^ m).view(n, -1), 2).view(n, J, 4).unbind(-1)
    a, b1, b2, c = m.unbind(-1)
    ab1, ab2, ac, b2c, ab2c = products.unbind(-1)
    de2 = d & e2
    out = lt[..., 2] ^ (d & b1) ^ (e1 & a) ^ ab1  # lt_45 and x y1
    out ^= (de2 & c) ^ (d & f & b2) ^ (e2 & f & a) ^ (d & b2c) ^ (e2 & ac) ^ (f & ab2) ^ ab2c  # x y2 z
    return out ^ (d & e1) ^ (de2 & f) if ctx.role == CLIENT else out


def _and_gates(ctx: Ctx, x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
               c: torch.Tensor) -> torch.Tensor:
    """XOR shares of ``x AND y`` (x: (n, J, g), y: (n, J, g, w): each x bit with w bits of y),
    one round: the parties open ``x xor a`` (once per x bit) and ``y xor b``, packed per element."""
    n = x.shape[0]
    opened = _open_residues(ctx, torch.cat([(x ^ a).reshape(n, -1), (y ^ b).reshape(n, -1)], 1), 2)
    d = opened[:, : x.numel() // n].view(x.shape).unsqueeze(-1)
    e = opened[:, x.numel() // n:].view(y.shape)
    z = c ^ (d & b) ^ (e & a.unsqueeze(-1))
    return z ^ (d & e) if ctx.role == CLIENT else z


@dataclass(frozen=True)
class RingSpline:
    """A :class:`Spline` in ring integers at ``frac_bits``."""

    thresholds: torch.Tensor  # (J,)
    centres: torch.Tensor  # (J+1,)
    coefs: torch.Tensor  # (J+1, degree+1): coefficient of (x-m)^k, scaled so the sum has 3f bits
    degree: int
    exact: bool

    @classmethod
    def of(cls, s: Spline, f: int) -> "RingSpline":
        enc = lambda v, bits: int(round(v * (1 << bits)))  # noqa: E731
        thresholds = torch.tensor([enc(t, f) for t in s.thresholds], dtype=torch.int64)
        centres = torch.tensor([enc(p[0], f) for p in s.pieces], dtype=torch.int64)
        if s.exact:
            assert all(p[1] == 0 and p[3] == 0 and p[0] == 0 and float(p[2]).is_integer() for p in s.pieces)
            coefs = torch.tensor([[0, int(p[2])] for p in s.pieces], dtype=torch.int64)
            return cls(thresholds, centres, coefs, 1, True)
        coefs = torch.tensor([[enc(p[3], 3 * f), enc(p[2], 2 * f), enc(p[1], f)] for p in s.pieces],
                             dtype=torch.int64)
        return cls(thresholds, centres, coefs, 2, False)


def spline(ctx: Ctx, x: torch.Tensor, s: Spline, want_bits: bool = False
           ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Shares of ``s(x)`` (fractional bits f), and with ``want_bits`` shares of the threshold
    bits ``[x >= t_j]`` (integers, shape (..., J)). Two rounds, plus a truncation unless
    ``s.exact``."""
    rs = RingSpline.of(s, ctx.frac_bits)
    shape = tuple(x.shape)
    n, J, deg = x.numel(), len(rs.thresholds), rs.degree
    pre = ctx.pre
    r = pre.random((n,))
    powers = [ctx.public(torch.ones(n, dtype=torch.int64)), r]  # shares of r^k
    if deg == 2:
        powers.append(pre.correlated((n,), lambda: r * r))
    compare = _tree_comparison if ctx.comparison == "tree" else _table_comparison
    c, cj, flip, base = compare(ctx, x.reshape(-1), r, rs.thresholds, powers)
    if ctx.placeholders:  # the material is drawn: nothing more to take
        out = trunc(ctx, torch.zeros(n, dtype=torch.int64), 2 * ctx.frac_bits) if not rs.exact else torch.zeros(n, dtype=torch.int64)
        return out.view(shape), (base[..., 0].reshape(shape + (J,)) if want_bits else None)
    rk = torch.stack(powers, dim=-1)  # (n, deg+1) shares of r^k
    top = (cj >> CMP_BITS) & 1  # public bit CMP_BITS of c': [x >= t_j] = top xor beta_j
    if flip is not None:
        top = top ^ flip
    bits = torch.where(top.unsqueeze(-1) == 1, rk.unsqueeze(1) - base, base)  # shares of r^k [x >= t_j]: (n, J, deg+1)
    # On segment j (between thresholds j-1 and j) the spline is sum_k coef_jk (x - m_j)^k with
    # x - m_j = X_j - r, X_j = c - m_j public: sum_i G_ji r^i, G_ji = sum_k coef_jk C(k, i) (-1)^i
    # X_j^(k-i). The segment's indicator times r^i is b_(j-1),i - b_j,i (b_-1 = r^i, b_J = 0), so
    # summed over segments (Abel): sum_i G_0i r^i + sum_(j<J) (G_(j+1),i - G_ji) b_ji, locally.
    X = c.unsqueeze(1) - rs.centres  # (n, J+1) public
    out = torch.zeros(n, dtype=torch.int64)
    for i in range(deg + 1):  # G_i by Horner in X; G_deg is the segments' constant coefficient
        G = rs.coefs[:, deg] * math.comb(deg, i)
        for k in range(deg - 1, i - 1, -1):
            G = G * X + rs.coefs[:, k] * math.comb(k, i)
        G = -G if i % 2 else G
        first = G[..., 0] * rk[:, i] if G.dim() == 2 else G[0] * rk[:, i]
        out += first + ((G[..., 1:] - G[..., :-1]) * bits[..., i]).sum(1)
    if not rs.exact:
        out = trunc(ctx, out, 2 * ctx.frac_bits)
    out = out.view(shape)
    if not want_bits:
        return out, None
    return out, bits[..., 0].reshape(shape + (J,))
