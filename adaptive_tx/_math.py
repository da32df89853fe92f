"""The lecture's math, written once, on single arrays.

The lecture builds each algorithm from the one before: AdaGrad keeps a running sum of squared gradients,
RMSprop and Adadelta replace it by a leaky average, Momentum keeps a leaky average of the gradients, and
Adam is Momentum plus RMSprop plus bias correction. The helpers here are those pieces; each algorithm's
module composes them, and ``_leafwise`` lifts them to pytrees.

Every helper works on real and complex arrays (a hyperparameter is cast to the dtype of the array it
scales), and every division and square root is safe under ``jax.grad`` as well as in the forward pass:
the guarded input is replaced before the operation (the double-``where`` pattern), so a zero never sends
an infinite derivative into the chain rule.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

Array = jax.Array


def _like(value: ArrayLike, array: Array) -> Array:
    """``value`` in ``array``'s dtype: a real hyperparameter becomes complex beside a complex array."""
    return jnp.asarray(value).astype(array.dtype)


def scaled(array: Array, factor: ArrayLike) -> Array:
    """``factor * array``, the factor cast to the array's dtype."""
    return _like(factor, array) * array


def leaky_average(previous: Array, new: Array, decay: ArrayLike, dampening: ArrayLike | None = None) -> Array:
    """``decay * previous + (1 - dampening) * new``, with ``dampening = decay`` by default.

    The default is the exponentially weighted average of RMSprop, Adadelta, Momentum and Adam;
    ``dampening = 0`` is the heavy ball's undamped sum.
    """
    dampening = decay if dampening is None else dampening
    return scaled(previous, decay) + scaled(new, 1 - jnp.asarray(dampening))


def running_sum(previous: Array, new: Array) -> Array:
    """``previous + new``: AdaGrad's accumulator, which never forgets."""
    return previous + new


def square(g: Array) -> Array:
    """``|g|^2``, real: ``g * g`` for real arrays, ``g * conj(g)`` for complex ones."""
    if jnp.iscomplexobj(g):
        return jnp.real(g) ** 2 + jnp.imag(g) ** 2
    return g * g


def bias_correction_factor(decay: ArrayLike, count: Array, dtype: Any) -> Array:
    """``1 - decay**t`` in ``dtype`` (at least float32), for a step count ``t >= 1``.

    Computed in float32 or wider on purpose: in bfloat16, ``0.999**t`` rounds to 1 and the factor to 0.
    """
    decay = jnp.asarray(decay, dtype)
    return 1 - decay ** count.astype(dtype)


def unbias(moment: Array, factor: Array) -> Array:
    """``moment / factor``: a leaky average divided by its bias-correction factor ``1 - decay**t > 0``."""
    return moment / _like(factor, moment)


def safe_sqrt(x: Array) -> Array:
    """``sqrt(x)``, whose derivative at ``x = 0`` is 0 instead of infinite.

    The forward value is exactly ``sqrt(x)``: a NaN stays NaN, a negative number gives NaN.
    """
    # lax rather than jnp.where: one select per call instead of a nested jit per call (tracing time on
    # trees of hundreds of leaves).
    zero = lax.eq(x, lax.full_like(x, 0))
    return lax.select(zero, lax.full_like(x, 0), lax.sqrt(lax.select(zero, lax.full_like(x, 1), x)))


def rms(mean_square: Array, eps: ArrayLike, eps_in_sqrt: bool = True) -> Array:
    """``sqrt(mean_square + eps)``: the lecture's root mean square, with ``eps`` inside the root.

    With ``eps_in_sqrt=False``, ``sqrt(mean_square) + eps``: PyTorch's placement for AdaGrad and RMSprop.
    """
    eps = _like(eps, mean_square)
    return safe_sqrt(mean_square + eps) if eps_in_sqrt else safe_sqrt(mean_square) + eps


def safe_divide(numerator: Array, denominator: Array) -> Array:
    """``numerator / denominator``, except that ``0 / 0`` is 0 (and its derivative finite).

    Only 0/0 changes: a non-zero number over 0 is still ``inf`` (or NaN for a complex numerator), and NaN
    stays NaN, so ``optax.apply_if_finite`` and the user see what the equation gives. In the optimizers,
    0/0 arises where a coordinate's gradients have all been 0 and eps is 0: no gradient, no step.
    """
    numerator, denominator = jnp.broadcast_arrays(numerator, _like(denominator, numerator))
    both_zero = lax.bitwise_and(
        lax.eq(numerator, lax.full_like(numerator, 0)), lax.eq(denominator, lax.full_like(denominator, 0))
    )
    safe = lax.select(both_zero, lax.full_like(denominator, 1), denominator)
    return lax.select(both_zero, lax.full_like(numerator, 0), lax.div(numerator, safe))
