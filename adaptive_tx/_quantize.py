"""Block-wise quantization: a state array kept as 8-bit codes into a code book, with one scale per block.

The math of low-bit optimizer state (Dettmers et al. 2022, "8-bit Optimizers via Block-wise Quantization"),
on single arrays. A block is ``block_size`` consecutive elements of the last axis (so a block never crosses a
shard of an array split along that axis in multiples of ``block_size``; the last block of a row may be
short). A block's scale is its absmax, :math:`a = \\max_i |x_i|`; each element is stored as the code :math:`k`
whose book value :math:`q_k` makes :math:`q_k a` nearest :math:`x_i`, and is read back as :math:`q_k a`.

The code books spread their values over decades (``dynamic_code_book``), so a block keeps relative precision
for elements much smaller than its absmax; the one for non-negative state (second moments, squared sums)
has no zero, so a non-zero value never reads back as 0 (the trap of Li et al. 2023: a second moment read as
0 makes the step :math:`v / \\sqrt{s}` explode).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from adaptive_tx import _math

Array = jax.Array


class Quantized(NamedTuple):
    """An array kept as codes and block scales: element ``i`` of block ``b`` is ``book[codes[i]] * scales[b]``."""

    codes: Array  # k: uint8, the array's shape.
    scales: Array  # a: float32 absmax per block, the array's shape with its last axis in blocks.


def dynamic_code_book(bits: int, *, signed: bool, decades: int | None = None) -> np.ndarray:
    """The ``2**bits`` sorted values of a code book spread over the decades below 1.

    The magnitudes are 1 and, in each decade :math:`[10^{-d-1}, 10^{-d})`, the midpoints of equal bins, the
    top decade holding half of the magnitudes, the next a quarter, and so on (the last two decades the
    same share): relative precision about :math:`10^{-d} / \\text{bins}_d`, finest near the absmax. The
    signed book holds 0, ``2**(bits-1)`` positive values and one fewer negative ones (each code distinct);
    the unsigned book has no zero, its smallest value in the lowest decade.

    Args:
      bits: bits per code, 2 to 8.
      signed: a book for signed values (first moments) or for non-negative ones (squared accumulators).
      decades: how many decades below 1 the magnitudes reach; None (default): until a decade gets one bin
        (8 bits: 8 decades signed, 9 unsigned, the smallest values 5.5e-8 and 5.5e-9). Fewer decades raise the
        unsigned book's floor, where small values read back larger: on the digits MLP, AdaGrad with 8-bit
        state (stochastic rounding) ended 1.8% above float32's loss with 7 decades and 0.7% below with 9 (3 seeds).

    Returns:
      float32 values in [-1, 1] (signed) or (0, 1], ascending.
    """
    if not 2 <= bits <= 8:
        raise ValueError(f"bits must be in [2, 8], got {bits}.")
    if not signed:
        return _magnitudes(2**bits, decades)
    # 0, 2**(bits-1) positive values and one fewer negative ones: all 2**bits codes distinct.
    positive = _magnitudes(2 ** (bits - 1), decades)
    negative = -_magnitudes(2 ** (bits - 1) - 1, decades)[::-1]
    return np.concatenate([negative, [np.float32(0)], positive])


def _magnitudes(count: int, decades: int | None) -> np.ndarray:
    """``count`` ascending float32 values in (0, 1]: 1, and midpoints of equal bins in each decade below."""
    values = [1.0]
    for d, n in enumerate(_decade_bins(count - 1, decades)):
        edges = np.linspace(10.0 ** -(d + 1), 10.0**-d, n + 1)
        values.extend((edges[:-1] + edges[1:]) / 2)
    return np.sort(np.asarray(values)).astype(np.float32)


def _decade_bins(total: int, decades: int | None) -> list[int]:
    """``total`` bins shared by the decades: half to the top one, a quarter to the next, ..., the last decade
    (the ``decades``-th, or the first to get one bin) taking what is left."""
    bins: list[int] = []
    left = total
    while left:
        n = left if len(bins) + 1 == decades else max(1, left // 2)
        bins.append(n)
        left -= n
    return bins


def _blocks(x: Array, block_size: int) -> Array:
    """``x`` as ``(..., blocks, block_size)``, its last axis padded with zeros to whole blocks."""
    n = x.shape[-1] if x.ndim else 1
    x = x.reshape(*x.shape[:-1], n) if x.ndim else x.reshape(1)
    pad = -n % block_size
    if pad:
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])
    return x.reshape(*x.shape[:-1], -1, block_size)


def _unblocks(blocked: Array, shape: tuple[int, ...]) -> Array:
    n = shape[-1] if shape else 1
    flat = blocked.reshape(*blocked.shape[:-2], -1)[..., :n]
    return flat.reshape(shape)


def encode(x: Array, book: np.ndarray, block_size: int, key: Array | None = None) -> Quantized:
    """``x`` (real) as codes into ``book`` and one absmax scale per block of ``block_size``.

    To nearest: the code whose value is nearest ``x / a`` (a tie goes to the lower code). With a PRNG ``key``,
    stochastically: between the two codes around ``x / a``, the upper with probability proportional to the
    distance from the lower, so the decoded value equals ``x`` on average; below the smallest value of a book
    without zero, the smallest (never 0: biased up there, by design).
    """
    blocked = _blocks(x.astype(jnp.float32), block_size)
    scales = jnp.max(jnp.abs(blocked), axis=-1)
    y = blocked / jnp.where(scales > 0, scales, 1.0)[..., None]  # In [-1, 1]; 0 where the block is all 0.
    table = jnp.asarray(book)
    if key is None:
        midpoints = jnp.asarray((book[:-1].astype(np.float64) + book[1:]) / 2, jnp.float32)
        codes = jnp.searchsorted(midpoints, y, side="left")  # Midpoints below y: the nearest code.
    else:
        lower = jnp.clip(jnp.searchsorted(table, y, side="right") - 1, 0, len(book) - 2)
        below, above = table[lower], table[lower + 1]
        chance = jnp.clip((y - below) / (above - below), 0.0, 1.0)
        draw = lax.shift_right_logical(_math._random_bits(key, y.shape, None), jnp.uint32(8))
        up = draw.astype(jnp.float32) * 2.0**-24 < chance
        codes = lower + up.astype(lower.dtype)
    return Quantized(_unblocks(codes.astype(jnp.uint8), x.shape), scales)


def decode(q: Quantized, book: np.ndarray, block_size: int) -> Array:
    """The float32 values ``q`` holds: ``book[code] * scale`` of its block."""
    shape = q.codes.shape
    values = jnp.asarray(book)[_blocks(q.codes.astype(jnp.int32), block_size)]
    return _unblocks(values * q.scales[..., None], shape)
