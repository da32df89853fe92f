"""The lecture's math, written once, on single arrays.

The lecture builds each algorithm from the one before: AdaGrad keeps a running sum of squared gradients,
RMSprop and Adadelta replace it by a leaky average, Momentum keeps a leaky average of the gradients, and
Adam is Momentum plus RMSprop plus bias correction. The helpers here are those pieces; each algorithm's
module composes them, and ``_leafwise`` lifts them to pytrees.

Every helper works on real and complex arrays (a hyperparameter is cast to the dtype of the array it
scales), and every division and square root is safe under ``jax.grad`` as well as in the forward pass:
the guarded input is shifted away from zero before the operation, so a zero never sends an infinite
derivative into the chain rule.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike

Array = jax.Array


def _like(value: ArrayLike, array: Array) -> Any:
    """``value`` in ``array``'s dtype: a real hyperparameter becomes complex beside a complex array.

    A number stays a NumPy scalar, folded while tracing: one constant, not an operation in every leaf.
    """
    if isinstance(value, int | float | np.number | np.ndarray):
        return np.asarray(value).astype(array.dtype)
    return jnp.asarray(value).astype(array.dtype)


def scaled(array: Array, factor: ArrayLike) -> Array:
    """``factor * array``, the factor cast to the array's dtype."""
    # lax rather than jnp operators here and below: jnp's are jitted functions, and calling one per leaf
    # and per operation is most of the time it takes to trace a step on a tree of hundreds of leaves.
    if _known(factor) and np.asarray(factor) == 1:  # The heavy ball's (1 - 0) * g: nothing to trace.
        return array
    return lax.mul(_like(factor, array), array)


def leaky_average(previous: Array, new: Array, decay: ArrayLike, dampening: ArrayLike | None = None) -> Array:
    """``decay * previous + (1 - dampening) * new``, with ``dampening = decay`` by default.

    The default is the exponentially weighted average of RMSprop, Adadelta, Momentum and Adam;
    ``dampening = 0`` is the heavy ball's undamped sum.
    """
    dampening = decay if dampening is None else dampening
    return lax.add(scaled(previous, decay), scaled(new, 1 - dampening))


def running_sum(previous: Array, new: Array) -> Array:
    """``previous + new``: AdaGrad's accumulator, which never forgets."""
    return lax.add(previous, new)


def square(g: Array) -> Array:
    """``|g|^2``, real: ``g * g`` for real arrays, ``g * conj(g)`` for complex ones."""
    if jnp.iscomplexobj(g):
        return jnp.real(g) ** 2 + jnp.imag(g) ** 2
    return lax.mul(g, g)


def bias_correction_factor(decay: ArrayLike, count: Array, dtype: Any) -> Array:
    """``1 - decay**t`` in ``dtype`` (at least float32), for a step count ``t >= 1``.

    Computed in float32 or wider on purpose: in bfloat16, ``0.999**t`` rounds to 1 and the factor to 0.
    """
    decay = jnp.asarray(decay, dtype)
    return 1 - decay ** count.astype(dtype)


def unbias(moment: Array, factor: Array) -> Array:
    """``moment / factor``: a leaky average divided by its bias-correction factor ``1 - decay**t > 0``."""
    return lax.div(moment, _like(factor, moment))


@jax.custom_jvp
def safe_sqrt(x: Array) -> Array:
    """``sqrt(x)``, whose derivative at ``x = 0`` is 0 instead of infinite.

    The forward value is exactly ``sqrt(x)``: a NaN stays NaN, a negative number gives NaN.
    """
    # The guard lives in the derivative rule alone: the forward pass traces and compiles one square root,
    # which matters on trees of hundreds of leaves.
    return lax.sqrt(x)


@safe_sqrt.defjvp
def _safe_sqrt_jvp(primals: tuple[Array], tangents: tuple[Array]) -> tuple[Array, Array]:
    (x,), (t,) = primals, tangents
    root = lax.sqrt(x)
    zero = x == 0
    # 1 / (2 sqrt(x)), and 0 where x == 0 (its input replaced too, so no inf * 0 enters the chain rule).
    slope = jnp.where(zero, jnp.zeros_like(root), 0.5 / jnp.where(zero, jnp.ones_like(root), root))
    return root, t * slope


def over_root(numerator: Array, mean_square: Array, *, inside: ArrayLike = 0, outside: ArrayLike = 0) -> Array:
    """``numerator / (sqrt(mean_square + inside) + outside)``: a step over a root mean square, 0/0 = 0.

    ``inside`` is eps under the root (the lecture's placement, Adam's ``eps_root``), ``outside`` eps added to
    the root (PyTorch's AdaGrad and RMSprop, Adam's ``eps``). Safe like :func:`safe_sqrt` and
    :func:`safe_divide`; where a positive number (not a traced value) keeps the root's argument or the
    denominator away from 0, the guard it makes moot is left out, so a step traces fewer operations per
    leaf. Zero numbers are not added at all.
    """
    under = mean_square if known_zero(inside) else lax.add(mean_square, _like(inside, mean_square))
    if known_positive(inside):
        root = lax.sqrt(under)
    elif _hides_tiny_roots(outside, under.dtype):
        # Roots below sqrt(tiny) vanish in ``root + outside`` anyway, so flooring ``under`` at the smallest
        # normal number changes no bit of the denominator, and keeps the derivative at 0 finite (it is 0):
        # two operations where safe_sqrt's guard takes more.
        root = lax.sqrt(lax.max(under, _scalar(float(jnp.finfo(under.dtype).tiny), under)))
    else:
        root = safe_sqrt(under)
    denominator = root if known_zero(outside) else lax.add(root, _like(outside, root))
    if known_positive(inside) or known_positive(outside):
        return lax.div(numerator, lax.convert_element_type(denominator, numerator.dtype))
    return safe_divide(numerator, denominator)


def _hides_tiny_roots(outside: ArrayLike, dtype: Any) -> bool:
    """Whether ``sqrt(tiny) + outside`` rounds to ``outside`` with room to spare: a known eps >= about 4e-12
    in float32 (1e-8 by default), 3e-138 in float64."""
    info = jnp.finfo(dtype)
    return known_positive(outside) and bool(np.asarray(outside) > 4 * np.sqrt(float(info.tiny)) / float(info.eps))


def known_zero(value: ArrayLike) -> bool:
    """Whether ``value`` is a number known while tracing (not a traced array) and equal to 0."""
    return _known(value) and bool(np.asarray(value) == 0)


def known_positive(value: ArrayLike) -> bool:
    """Whether ``value`` is a number known while tracing (not a traced array) and positive."""
    return _known(value) and bool(np.asarray(value) > 0)


def _known(value: ArrayLike) -> bool:
    return isinstance(value, int | float | np.number | np.ndarray) and not np.ndim(value)


def safe_divide(numerator: Array, denominator: Array) -> Array:
    """``numerator / denominator``, except that ``0 / 0`` is 0 (and its derivative finite).

    Only 0/0 changes: a non-zero number over 0 is still ``inf`` (or NaN for a complex numerator), and NaN
    stays NaN, so ``optax.apply_if_finite`` and the user see what the equation gives. In the optimizers,
    0/0 arises where a coordinate's gradients have all been 0 and eps is 0: no gradient, no step.
    """
    numerator, denominator = jnp.broadcast_arrays(numerator, _like(denominator, numerator))
    # n / (d + z) with z = 1 where both are 0: 0 / 1 there, n / d elsewhere; the derivative there is finite.
    both_zero = lax.bitwise_and(lax.eq(numerator, _scalar(0, numerator)), lax.eq(denominator, _scalar(0, denominator)))
    return lax.div(numerator, lax.add(denominator, lax.convert_element_type(both_zero, denominator.dtype)))


def _scalar(value: float, like: Array) -> Any:
    """``value`` as a 0-d constant of ``like``'s dtype, which lax broadcasts: no array-sized constant."""
    return np.asarray(value, like.dtype)


def stochastic_round(x: Array, dtype: Any, key: Array, out_sharding: Any = None) -> Array:
    """``x`` rounded to the narrower float ``dtype``, up or down at random, unbiased: ``E[result] = x``.

    A value between two neighbours of ``dtype`` becomes the upper one with probability proportional to its
    distance from the lower one, so a small change (``0.999 * s`` in bfloat16) survives on average where
    rounding to nearest would erase it every time. Values ``dtype`` holds exactly, infinities and NaNs are
    kept; a value beyond ``dtype``'s range becomes its infinity, as with rounding to nearest.

    ``key`` is a typed PRNG key; the result is deterministic for it. float32 to bfloat16 adds 16 random
    bits below bfloat16's last bit and truncates; other pairs (float32 to float16, float64 to float32) pick
    between the two neighbours with a uniform draw. Real arrays only. Under ``jax.grad`` it differentiates
    like a cast (the rounding is noise of mean zero), so a step stays differentiable through its state.
    """
    return _stochastic_round(x, jnp.dtype(dtype), key, out_sharding)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 3))
def _stochastic_round(x: Array, dtype: Any, key: Array, out_sharding: Any) -> Array:
    dtype = jnp.dtype(dtype)
    if x.dtype == jnp.float32 and dtype == jnp.bfloat16:
        # All on x's bits, one expression: XLA fuses it into the loop that computes x, with no buffer of its own.
        u32 = functools.partial(np.asarray, dtype=np.uint32)
        bits = lax.bitcast_convert_type(x, jnp.uint32)
        noise = lax.shift_right_logical(_random_bits(key, x.shape, out_sharding), u32(16))
        rounded = lax.bitwise_and(bits + noise, u32(0xFFFF0000))  # A carry rounds up, into the exponent too.
        magnitude = lax.bitwise_and(bits, u32(0x7FFFFFFF))
        sign = lax.bitwise_and(bits, u32(0x80000000))
        # Beyond the largest bfloat16 plus half a unit, rounding to nearest gives infinity: so does this. A NaN
        # stays a NaN (its payload could otherwise carry into, or truncate to, infinity's bits).
        rounded = lax.select(magnitude >= u32(0x7F7F8000), lax.bitwise_or(sign, u32(0x7F800000)), rounded)
        rounded = lax.select(magnitude > u32(0x7F800000), lax.bitwise_or(bits, u32(0x00400000)), rounded)
        return lax.convert_element_type(lax.bitcast_convert_type(rounded, jnp.float32), dtype)  # Exact.
    nearest = x.astype(dtype)
    back = nearest.astype(x.dtype)
    toward = jnp.where(back < x, jnp.asarray(jnp.inf, dtype), jnp.asarray(-jnp.inf, dtype))
    other = jnp.nextafter(nearest, toward)  # The neighbour on x's other side.
    gap = other.astype(x.dtype) - back
    exact = (back == x) | ~jnp.isfinite(back) | ~jnp.isfinite(gap)
    chance = (x - back) / jnp.where(exact, jnp.ones_like(gap), gap)  # In [0, 1/2]: nearest is the closer one.
    # 24 random bits as a uniform draw in [0, 1).
    draw = lax.shift_right_logical(_random_bits(key, x.shape, out_sharding), jnp.uint32(8)).astype(x.dtype) * 2.0**-24
    return jnp.where(~exact & (draw < chance), other, nearest)


def _random_bits(key: Array, shape: tuple[int, ...], out_sharding: Any) -> Array:
    """32 random bits per element: a hash of the element's flat index and ``key``.

    Elementwise integer arithmetic that XLA fuses into the loop that rounds, so it needs no buffer of its
    own (``jax.random.bits`` materialized 36 bytes per element of temporaries in a bfloat16 Adam step).
    A 32-bit avalanche hash (Wellons' "lowbias32") of the index xor the hashed key words.
    """
    k0, k1 = (lax.convert_element_type(w, jnp.uint32) for w in jax.random.key_data(key))
    index = jnp.zeros(shape, jnp.uint32)
    stride = 1
    for dim in reversed(range(len(shape))):
        term = lax.broadcasted_iota(jnp.uint32, shape, dim, out_sharding=out_sharding) * jnp.uint32(stride)
        index = term if dim == len(shape) - 1 else index + term
        stride = (stride * shape[dim]) % 2**32
    return _lowbias32(index ^ _lowbias32(k0 ^ _lowbias32(k1)))  # One vector round: the key words mix as scalars.


def _lowbias32(x: Array) -> Array:
    x = x ^ lax.shift_right_logical(x, jnp.uint32(16))
    x = x * jnp.uint32(0x7FEB352D)
    x = x ^ lax.shift_right_logical(x, jnp.uint32(15))
    x = x * jnp.uint32(0x846CA68B)
    return x ^ lax.shift_right_logical(x, jnp.uint32(16))


@_stochastic_round.defjvp
def _stochastic_round_jvp(dtype, out_sharding, primals, tangents):
    x, key = primals
    return _stochastic_round(x, dtype, key, out_sharding), tangents[0].astype(dtype)
