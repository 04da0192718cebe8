"""Statistics on what a party received (recorded with the job option ``record_views``)."""

from __future__ import annotations

import torch

from picost.mpc.protocols import TRIT_COMBOS


def view(run, role, op_prefix=""):
    """int64 and uint8 messages ``role`` received during the ops (inputs/outputs excluded)."""
    msgs = [t for name, t in run.views[role] if not name.startswith("_") and name.startswith(op_prefix)]
    words = torch.cat([t.reshape(-1) for t in msgs if t.dtype == torch.int64] or [torch.zeros(0, dtype=torch.int64)])
    small = torch.cat([t.reshape(-1) for t in msgs if t.dtype == torch.uint8] or [torch.zeros(0, dtype=torch.uint8)])
    return words, small


def looks_uniform(words: torch.Tensor) -> bool:
    """Each of the 64 bits is 1 about half the time and the top byte is uniform (6 sigma)."""
    n = words.numel()
    bits = ((words.unsqueeze(1) >> torch.arange(64)) & 1).double().mean(0)
    bits_ok = bool(((bits - 0.5).abs() <= 6 * 0.5 / n ** 0.5).all())
    top = torch.bincount(((words >> 56) & 255), minlength=256).double()
    chi2 = float(((top - n / 256) ** 2 / (n / 256)).sum())
    return bits_ok and chi2 <= 255 + 6 * (2 * 255) ** 0.5


def uncorrelated(secret: torch.Tensor, seen: torch.Tensor) -> bool:
    """|corr(secret, top 20 bits of what was seen)| below 5 sigma."""
    a = secret.double().reshape(-1)
    b = (seen.reshape(-1) >> 44).double()
    corr = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
    return abs(corr) <= 5 / a.numel() ** 0.5


def trits_look_uniform(packed: torch.Tensor) -> bool:
    """Packed masked trits (one byte per comparison) are uniform over their TRIT_COMBOS values
    (chi-square, ~6 sigma)."""
    if packed.numel() == 0 or int(packed.max()) >= TRIT_COMBOS:
        return False
    counts = torch.bincount(packed.long(), minlength=TRIT_COMBOS).double()
    expected = packed.numel() / TRIT_COMBOS
    dof = TRIT_COMBOS - 1
    return float(((counts - expected) ** 2 / expected).sum()) <= dof + 6 * (2 * dof) ** 0.5


def bits_look_uniform(packed: torch.Tensor, valid: int) -> bool:
    """Rows of packed bits (n, bytes; ``valid`` bits used per row, low bit first): each used bit
    is 1 about half the time (6 sigma) and the padding is zero."""
    n = packed.shape[0]
    bits = ((packed.long().unsqueeze(-1) >> torch.arange(8)) & 1).reshape(n, -1)
    if n == 0 or bits.shape[1] < valid or bool(bits[:, valid:].any()):
        return False
    return bool(((bits[:, :valid].double().mean(0) - 0.5).abs() <= 6 * 0.5 / n ** 0.5).all())

