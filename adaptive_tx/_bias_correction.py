"""Bias correction as a block of its own: divide incoming updates by ``1 - decay**t``."""

from __future__ import annotations

from typing import NamedTuple

import jax
import optax
from jax.typing import ArrayLike

from adaptive_tx import _checks, _leafwise, _math


class BiasCorrectionState(NamedTuple):
    """State of :func:`bias_correction`."""

    count: jax.Array  # type: ignore[assignment]  # t: steps taken, int32 scalar; saturates at int32 max.


def bias_correction(decay: ArrayLike) -> optax.GradientTransformationExtraArgs:
    r"""Divide incoming updates by :math:`1 - \beta^t`, with its own step count :math:`t`.

    .. math::
        \hat u_t = \frac{u_t}{1 - \beta^t}

    Undoes the shrinkage toward the zero initial value of a leaky average with forgetting rate
    :math:`\beta`; Adam applies it to both of its moments. Placed after a block whose output is such an
    average, it turns the average into an unbiased estimate, e.g.
    ``optax.chain(atx.scale_by_momentum(beta=0.9), atx.bias_correction(0.9))`` is bias-corrected EMA
    momentum, whose first step equals the gradient.

    Args:
      decay: :math:`\beta`, the forgetting rate of the average being corrected, in [0, 1).

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import adaptive_tx as atx
      >>> tx = optax.chain(atx.scale_by_momentum(beta=0.9), atx.bias_correction(0.9))
      >>> g = jnp.array([2.0])
      >>> state = tx.init(g)
      >>> for _ in range(3):  # On a constant gradient the corrected average is the gradient itself.
      ...     updates, state = tx.update(g, state)
      ...     print(f"{updates[0]:.4f}")
      2.0000
      2.0000
      2.0000

    References:
      Kingma & Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015, section 3.
      https://arxiv.org/abs/1412.6980
    """
    _checks.check_decay("decay", decay)

    def constants(dtype, count):
        (decay_,) = _leafwise.cast(dtype, decay)
        return _math.bias_correction_factor(decay_, count, dtype)  # 1 - beta^t, once per step.

    def step(correction, u, *, stored):
        del stored  # No state to round.
        return (_math.unbias(u, correction),)

    return _leafwise.transformation(BiasCorrectionState, {}, step, constants)
