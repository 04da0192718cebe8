"""Z_2^64 arithmetic in ``torch.int64`` and fixed-point encoding.

Ring elements are int64 tensors; torch's int64 add/mul wrap modulo 2^64 (two's complement),
which is exactly arithmetic in Z_2^64. A real number ``v`` is encoded as ``round(v * 2^f)``.
"""

from __future__ import annotations

import math

import torch

RING_BITS = 64
DEFAULT_FRAC_BITS = 16


def encode(x: torch.Tensor, frac_bits: int) -> torch.Tensor:
    """Reals -> ring elements with ``frac_bits`` fractional bits (round to nearest)."""
    return torch.round(x.to(torch.float64) * (1 << frac_bits)).to(torch.int64)


def decode(x: torch.Tensor, frac_bits: int) -> torch.Tensor:
    """Ring elements (read as signed) -> reals (float64)."""
    return x.to(torch.float64) / (1 << frac_bits)


def uniform(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Uniform ring elements from ``gen`` (torch's bound is exclusive, so 2^63 - 1 never comes
    up: statistical distance 2^-64 from uniform)."""
    return torch.randint(-(1 << 63), (1 << 63) - 1, shape, generator=gen, dtype=torch.int64)


def uniform_mod(shape: tuple[int, ...], modulus: int, gen: torch.Generator) -> torch.Tensor:
    """Uniform residues mod ``modulus`` (< 256), as uint8 (bits: 64 from each random ring element)."""
    if modulus == 2:
        count = math.prod(shape)
        random_bytes = uniform((-(-count // 64),), gen).view(torch.uint8)
        return unpack_residues(random_bytes, 2, count).view(shape)
    return torch.randint(0, modulus, shape, generator=gen, dtype=torch.uint8)


def as_int64(value: int) -> int:
    """An unsigned 64-bit constant as the int64 that represents it."""
    return value - (1 << RING_BITS) if value >= 1 << (RING_BITS - 1) else value


_GOLDEN, _MIX1, _MIX2 = (as_int64(c) for c in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB))


HASH_BLOCK = 1 << 16
"""Elements hashed at a time (cache-sized: 3x faster than whole tensors)."""
_LOW32 = (1 << 32) - 1


def _mix(key: int, counter: torch.Tensor) -> torch.Tensor:
    """SplitMix64 of ``key + counter * golden``."""
    z = counter * _GOLDEN + key
    z = (z ^ logical_rshift(z, 30)) * _MIX1
    z = (z ^ logical_rshift(z, 27)) * _MIX2
    return z ^ logical_rshift(z, 31)


def _residue(half: torch.Tensor, modulus: int) -> torch.Tensor:
    """A 32-bit value -> a residue mod ``modulus`` by multiply-shift (bias below modulus / 2^32,
    as torch's own ``randint``)."""
    return ((half * modulus) >> 32).to(torch.uint8)


def hashed(key: int, index: torch.Tensor, modulus: int | None = None) -> torch.Tensor:
    """Random-access pseudo-random values at positions ``index``: ring elements, SplitMix64 of
    the position (:func:`_mix`), or residues mod ``modulus`` (uint8, ``modulus`` > 2), two per
    64-bit output (the low half at even positions); bits are whole outputs (:func:`hashed_words`).
    Like torch's Mersenne Twister, a stand-in for a cryptographic PRG (e.g. AES in counter mode).
    :func:`hashed_range` gives the same values for a whole range."""
    assert modulus != 2, "bits: hashed_words"
    flat = index.reshape(-1)
    out = torch.empty(flat.shape, dtype=torch.int64 if modulus is None else torch.uint8)
    for lo in range(0, len(flat), HASH_BLOCK):
        part = flat[lo: lo + HASH_BLOCK]
        if modulus is None:
            out[lo: lo + HASH_BLOCK] = _mix(key, part)
        else:
            z = _mix(key, part >> 1)
            out[lo: lo + HASH_BLOCK] = _residue(torch.where((part & 1) == 1, logical_rshift(z, 32), z & _LOW32), modulus)
    return out.view(index.shape)


def hashed_range(key: int, start: int, count: int, modulus: int | None = None) -> torch.Tensor:
    """:func:`hashed` at positions ``start .. start + count - 1`` (1-D), computed once per 64-bit
    output (residues: ``start`` and ``count`` even)."""
    if modulus is None:
        return hashed(key, torch.arange(start, start + count))
    assert start % 2 == 0 and count % 2 == 0, (start, count)
    out = torch.empty(count, dtype=torch.uint8)
    for lo in range(0, count, 2 * HASH_BLOCK):
        n = min(2 * HASH_BLOCK, count - lo)
        z = _mix(key, torch.arange((start + lo) // 2, (start + lo + n) // 2))
        out[lo: lo + n] = _residue(torch.stack([z & _LOW32, logical_rshift(z, 32)], dim=-1).view(-1), modulus)
    return out


def hashed_words(key: int, start: int, count: int) -> torch.Tensor:
    """Random-access pseudo-random bits ``64 start .. 64 (start + count) - 1``, 64 per output (bit
    ``p mod 64`` of output ``p // 64``): as bytes (little-endian) they are those bits packed as
    :func:`pack_residues` packs them."""
    return _mix(key, torch.arange(start, start + count))


def share(x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Additive shares ``(x0, x1)`` of ring elements ``x``: x0 + x1 = x mod 2^64, x1 uniform."""
    x1 = uniform(tuple(x.shape), gen)
    return x - x1, x1


def reconstruct(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    return x0 + x1


def logical_rshift(x: torch.Tensor, bits: int) -> torch.Tensor:
    """``x >> bits`` reading ``x`` as an unsigned 64-bit number."""
    if bits == 0:
        return x
    return (x >> bits) & ((1 << (RING_BITS - bits)) - 1)


def msb(x: torch.Tensor) -> torch.Tensor:
    """The top bit of each element (0 or 1, int64)."""
    return (x >> (RING_BITS - 1)) & 1


def pow2(bits: int) -> int:
    """2^bits as the int64 value that represents it in Z_2^64 (2^63 wraps to -2^63)."""
    return (1 << bits) - (1 << RING_BITS) if bits == RING_BITS - 1 else 1 << bits


def residues_per_byte(modulus: int) -> int:
    """How many residues mod ``modulus`` one byte holds as base-``modulus`` digits (5 for 3)."""
    k = 0
    while modulus ** (k + 1) <= 256:
        k += 1
    return k


def _digit_weights(modulus: int) -> torch.Tensor:
    return torch.tensor([modulus ** i for i in range(residues_per_byte(modulus))], dtype=torch.uint8)


_BIT_GATHER = 0x0102040810204080
"""Times eight 0/1 bytes read as a little-endian int64, its top byte is their bits, byte i at bit i
(the partial products of distinct bytes land on distinct bits: no carries)."""
_BYTE_BITS = ((torch.arange(256).unsqueeze(-1) >> torch.arange(8)) & 1).to(torch.uint8).view(torch.int64).view(-1)
"""For each byte value, its eight bits as eight 0/1 bytes (one int64): unpacking is one lookup."""


def pack_residues(v: torch.Tensor, modulus: int) -> torch.Tensor:
    """Residues mod ``modulus`` (uint8 or int64, ..., L) -> bytes (..., ceil(L / k)) with
    ``k = residues_per_byte(modulus)``: each byte holds k consecutive residues, low digit first
    (the last byte padded with zeros)."""
    k, length = residues_per_byte(modulus), v.shape[-1]
    groups = -(-length // k)
    padded = v.to(torch.uint8)
    if groups * k != length:
        padded = torch.zeros(tuple(v.shape[:-1]) + (groups * k,), dtype=torch.uint8)
        padded[..., :length] = v
    if modulus == 2:  # eight bits at once: one multiply per byte
        words = padded.contiguous().view(torch.int64)
        return logical_rshift(words * _BIT_GATHER, 56).to(torch.uint8)
    out = padded[..., k - 1::k].clone()  # Horner over the digits, high first: one pass per digit
    for i in range(k - 2, -1, -1):
        out.mul_(modulus).add_(padded[..., i::k])
    return out


def unpack_residues(packed: torch.Tensor, modulus: int, length: int) -> torch.Tensor:
    """The inverse of :func:`pack_residues`: bytes (..., G) -> the first ``length`` residues (uint8)."""
    if modulus == 2:  # a lookup per byte, not divisions
        return torch.take(_BYTE_BITS, packed.long()).view(torch.uint8)[..., :length]
    digits = (packed.unsqueeze(-1) // _digit_weights(modulus)) % modulus
    return digits.view(*packed.shape[:-1], -1)[..., :length]


def residues_at(packed: torch.Tensor, modulus: int, index: torch.Tensor) -> torch.Tensor:
    """The residues at positions ``index`` (int64, same leading dims) of packed rows (..., G),
    without unpacking the rest (uint8)."""
    k = residues_per_byte(modulus)
    byte = torch.gather(packed, -1, index // k)
    return (byte // _digit_weights(modulus)[index % k]) % modulus
