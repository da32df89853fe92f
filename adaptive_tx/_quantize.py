r"""8-bit optimizer state: each block of a state array kept as 8-bit codes and one float32 scale.

The math of block-wise quantized state (Dettmers et al. 2022, "8-bit Optimizers via Block-wise
Quantization"), on single arrays. A block is ``block_size`` consecutive elements of the last axis, so a block
never crosses a shard of any other axis, nor of the last one when its shards hold whole blocks (the last
block of a row may be short). A block's scale :math:`a` is the power of two just above its absmax, so that
:math:`x_i / a` is exact and in (-1, 1); element :math:`x_i` is kept as the code of a value
:math:`q \approx x_i / a` and read back as :math:`q a`.

The codes are tiny floating-point numbers (``Format``): an exponent and a mantissa, so every value has the
same relative precision, over many decades below the scale (a dynamic map, as bitsandbytes' is, here
encoded and decoded by arithmetic on the float32 bits, with no table to search). First moments (signed) have
a sign bit, 5 exponent bits and 2 mantissa bits, with subnormals down to 0; squared accumulators
(non-negative) no sign and no zero, 5 exponent bits and 3 mantissa bits, so a non-zero second moment never
reads back as 0 (the trap of Li et al. 2023: a second moment read as 0 makes the step
:math:`v / \sqrt{s}` explode).

Encoding rounds to nearest, or stochastically: up with probability equal to the distance from the value
below, so that the decoded value equals the input on average (unbiased) and small changes survive.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec

from adaptive_tx import _math

Array = jax.Array


@functools.partial(jax.tree_util.register_dataclass, data_fields=["codes", "scales"], meta_fields=["block_size"])
@dataclasses.dataclass(frozen=True)
class QuantizedArray:
    """A state array kept quantized: element ``i`` of block ``b`` is the value of ``codes[i]`` times ``scales[b]``.

    A pytree of two arrays (``block_size`` is static): Optax's and JAX's tree utilities, ``jax.jit``,
    donation and checkpoints see the codes and the scales.
    """

    # Arrays; or, in trees like the state's, what stands for them (ShapeDtypeStructs, shardings).
    codes: Any  # k: uint8 codes, the array's shape.
    scales: Any  # a: float32 power of two above each block's absmax; the last axis counted in blocks.
    block_size: int  # B: elements of the last axis per scale.

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of the array it holds."""
        return tuple(self.codes.shape)


class Format(NamedTuple):
    """An 8-bit floating-point code: ``signed`` (a sign bit, subnormals down to 0) or not (no zero).

    The magnitude code ``c = e * 2**mantissa_bits + m`` stands for :math:`2^{e - b}(1 + m / 2^M)` with the bias
    :math:`b = 2^E - 1`, so that the largest code used, ``e = b, m = 0``, is exactly 1 (the block's absmax).
    Signed codes read ``e = 0`` as subnormal, :math:`2^{1 - b} m / 2^M`, which includes 0.
    """

    signed: bool
    exponent_bits: int  # E
    mantissa_bits: int  # M

    @property
    def bias(self) -> int:
        return 2**self.exponent_bits - 1

    @property
    def top(self) -> int:
        """The magnitude code of 1.0, the largest one used."""
        return self.bias << self.mantissa_bits

    @property
    def smallest_normal(self) -> float:
        return 2.0 ** (1 - self.bias) if self.signed else 2.0**-self.bias


SIGNED = Format(signed=True, exponent_bits=5, mantissa_bits=2)  # First moments: from 2**-32 (and 0) to 1.
UNSIGNED = Format(signed=False, exponent_bits=5, mantissa_bits=3)  # Squared accumulators: from 2**-31 to 1.


# --------------------------------------------------------------------------- blocks


def _blocks(x: Array, block_size: int) -> Array:
    """``x`` (at least 1-D) as ``(..., blocks, block_size)``, its last axis padded with zeros to whole blocks."""
    n = x.shape[-1]
    pad = -n % block_size
    if pad:
        x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, pad)])
    return x.reshape(*x.shape[:-1], -1, block_size)


def _unblocks(blocked: Array, n: int) -> Array:
    """The inverse of :func:`_blocks`, for a last axis of ``n``."""
    return blocked.reshape(*blocked.shape[:-2], -1)[..., :n]


# --------------------------------------------------------------------------- the codes


def _u32(value: int) -> Array:
    return jnp.asarray(value, jnp.uint32)


def _magnitude_codes(magnitude: Array, fmt: Format, draw: Array | None) -> Array:
    """The magnitude code (int32) of each value in [0, 1], rounded up with probability ``draw``'s share.

    ``draw`` is 32 random bits per element (stochastic rounding), or ``None`` (to nearest, ties up). In the
    normal range the code is the float32 bits with the exponent re-biased and the mantissa cut to M bits: a
    carry out of the cut bits rounds up, into the exponent too. Below it, signed codes are subnormal, spaced
    evenly down to 0; unsigned ones stop at the smallest value (never 0: biased up there, by design).
    """
    cut = 23 - fmt.mantissa_bits  # float32 mantissa bits dropped.
    bits = lax.bitcast_convert_type(magnitude, jnp.uint32)
    carry = _u32(1 << (cut - 1)) if draw is None else lax.shift_right_logical(draw, _u32(32 - cut))
    # (127 - bias) << M, the float32 exponent's bias less the code's; plus the carry past the cut bits.
    shifted = lax.shift_right_logical(bits + carry, _u32(cut)).astype(jnp.int32)
    normal = shifted - ((127 - fmt.bias) << fmt.mantissa_bits)
    if fmt.signed:
        # Subnormal: magnitude / 2^(1 - bias) * 2^M, in [0, 2^M): exact (a power of two), then rounded.
        fraction = 0.5 if draw is None else lax.shift_right_logical(draw, _u32(8)).astype(jnp.float32) * 2.0**-24
        subnormal = jnp.floor(magnitude * 2.0 ** (fmt.bias - 1 + fmt.mantissa_bits) + fraction).astype(jnp.int32)
        normal = jnp.where(magnitude < fmt.smallest_normal, subnormal, normal)
    return jnp.clip(normal, 0, fmt.top)


def _magnitude_values(codes: Array, fmt: Format) -> Array:
    """The float32 value of each magnitude code (int32): the code's bits moved back into a float32's."""
    offset = (127 - fmt.bias) << fmt.mantissa_bits
    bits = lax.shift_left((codes + offset).astype(jnp.uint32), _u32(23 - fmt.mantissa_bits))
    normal = lax.bitcast_convert_type(bits, jnp.float32)
    if not fmt.signed:
        return normal
    subnormal = codes.astype(jnp.float32) * 2.0 ** (1 - fmt.bias - fmt.mantissa_bits)
    return jnp.where(codes < 2**fmt.mantissa_bits, subnormal, normal)


# Jitted (a nested jit is inlined into an enclosing one): outside jit, encoding and decoding are each one call
# instead of dozens of small operations dispatched one by one.
@functools.partial(jax.jit, static_argnames=("codec", "spec"))
def encode(x: Array, codec: Codec, key: Array | None = None, spec: PartitionSpec | None = None) -> QuantizedArray:
    """``x`` (real, at least 1-D) as codes and one scale per block: the power of two above its absmax.

    To nearest (ties away from 0) without a PRNG ``key``; with one, stochastically: up or down to the two
    codes around ``x / a``, unbiased (except below an unsigned code's smallest value, where it reads back
    larger). ``spec`` is ``x``'s partition spec under Explicit mesh axes, for the random bits.
    """
    fmt, block_size = codec.format, codec.block_size
    blocked = _blocks(x.astype(jnp.float32), block_size)
    # The scale: the power of two just above the absmax, from the largest float32 exponent field in the
    # block (so x / a is exact). An integer reduction of one byte per element: XLA's CPU backend writes out a
    # reduction's input, and a float reduction's input is 4 bytes.
    exponents = lax.shift_right_logical(lax.bitcast_convert_type(blocked, jnp.uint32), _u32(23)).astype(jnp.uint8)
    largest = jnp.max(exponents, axis=-1).astype(jnp.uint32)
    scales = lax.bitcast_convert_type(lax.shift_left(largest + 1, _u32(23)), jnp.float32)
    y = blocked / scales[..., None]  # In (-1, 1), exact: a power of two.
    draw = None
    if key is not None:
        draw = _blocks(_math._random_bits(key, x.shape, spec), block_size)
    codes = _magnitude_codes(jnp.minimum(jnp.abs(y), 1.0), fmt, draw)
    if fmt.signed:  # The sign bit, except on 0 (one code for 0).
        codes = jnp.where((y < 0) & (codes > 0), codes | (1 << (fmt.exponent_bits + fmt.mantissa_bits)), codes)
    return QuantizedArray(_unblocks(codes.astype(jnp.uint8), x.shape[-1]), scales, block_size)


@functools.partial(jax.jit, static_argnames=("codec",))
def decode(q: QuantizedArray, codec: Codec) -> Array:
    """The float32 values ``q`` holds: each code's value times its block's scale."""
    fmt = codec.format
    codes = _blocks(q.codes.astype(jnp.int32), codec.block_size)
    if not fmt.signed:
        return _unblocks(_magnitude_values(codes, fmt) * q.scales[..., None], q.codes.shape[-1])
    sign_bit = 1 << (fmt.exponent_bits + fmt.mantissa_bits)
    magnitude = _magnitude_values(codes & (sign_bit - 1), fmt) * q.scales[..., None]
    return _unblocks(jnp.where(codes >= sign_bit, -magnitude, magnitude), q.codes.shape[-1])


# --------------------------------------------------------------------------- the state dtype


class Codec(NamedTuple):
    """How one state leaf is kept: its code's format and its block size."""

    format: Format
    block_size: int


@dataclasses.dataclass(frozen=True)
class QuantizedDtype:
    """A state dtype for the ``*_dtype`` arguments: block-wise 8-bit codes, made by :func:`quantized`."""

    bits: int = 8  # Bits per code (8).
    block_size: int = 256  # Elements of the last axis that share one float32 scale.
    min_size: int = 4096  # Leaves with fewer elements, and scalars, stay float32 (float64 for float64 params).

    def codec(self, *, squared: bool) -> Codec:
        """The codes of a squared accumulator (unsigned, no zero) or of a first moment (signed)."""
        return Codec(UNSIGNED if squared else SIGNED, self.block_size)

    def quantizes(self, shape: tuple[int, ...]) -> bool:
        """Whether a leaf of ``shape`` is kept quantized: at least 1-D and ``min_size`` elements."""
        return len(shape) >= 1 and int(np.prod(shape, dtype=np.int64)) >= max(self.min_size, 1)


def quantized(bits: int = 8, *, block_size: int = 256, min_size: int = 4096) -> QuantizedDtype:
    """Block-wise 8-bit optimizer state: a state dtype for ``mu_dtype``, ``nu_dtype`` and ``accumulator_dtype``.

    Each state leaf of at least ``min_size`` elements is kept as a :class:`QuantizedArray`: one uint8 code
    per element and one float32 scale (the power of two above the block's absmax) per ``block_size`` elements
    of the last axis, about 1.02 bytes per element instead of 4. The codes are 8-bit floating-point numbers
    relative to the scale: first moments with a sign bit, 5 exponent bits and 2 mantissa bits (and 0);
    squared accumulators with 5 exponent bits and 3 mantissa bits and no zero, so a non-zero second moment
    never reads back as 0. The step decodes the state, runs the algorithm's math in float32 and encodes the
    new state, leaf by leaf.

    Pass ``state_rounding="stochastic"`` as well: the codes are then rounded stochastically, unbiased, and
    training follows float32 state's closely (the documentation's 8-bit state page has the measurements);
    rounded to nearest, small changes such as ``0.999 * s`` are lost, and the second moment stops following
    the gradients.

    Args:
      bits: bits per code; only 8 (4-bit second moments biased training in measurements, see the 8-bit state
        page of the documentation).
      block_size: elements of the last axis per scale, >= 2 (default ``256``, as bitsandbytes'). Under a mesh
        that splits the last axis, each shard must hold whole blocks.
      min_size: leaves with fewer elements, and scalars, stay float32 (default ``4096``, as bitsandbytes').

    Returns:
      A :class:`QuantizedDtype`.

    Examples:
      >>> import jax.numpy as jnp
      >>> import adaptive_tx as atx
      >>> q8 = atx.quantized()
      >>> tx = atx.adam(1e-3, mu_dtype=q8, nu_dtype=q8, state_rounding="stochastic")
      >>> state = tx.init({"w": jnp.zeros((512, 512)), "b": jnp.zeros(512)})
      >>> nu = state[0].inner_state.nu
      >>> nu["w"].codes.dtype, nu["w"].scales.shape, nu["b"].dtype  # The bias is below min_size.
      (dtype('uint8'), (512, 2), dtype('float32'))
    """
    if bits != 8:
        raise ValueError(
            f"bits must be 8, got {bits!r}: 4-bit second moments made training diverge from float32 state's "
            "in measurements (see the documentation's 8-bit state page)."
        )
    for name, value, low in (("block_size", block_size, 2), ("min_size", min_size, 0)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    return QuantizedDtype(bits, int(block_size), int(min_size))


def is_quantized(x: Any) -> bool:
    """Whether ``x`` is a :class:`QuantizedArray` (a state leaf of two arrays)."""
    return isinstance(x, QuantizedArray)
