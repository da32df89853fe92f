"""Adadelta: RMSprop whose learning rate is the root of a leaky average of past squared steps."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from adaptive_tx import _checks, _leafwise, _math


class ScaleByAdadeltaState(NamedTuple):
    """State of :func:`scale_by_adadelta`: field for field Optax's ``ScaleByAdaDeltaState``."""

    e_g: optax.Updates  # s_t: leaky average of |g|^2; params' shape, real, accumulator_dtype or the policy's.
    e_x: optax.Updates  # dw_t: leaky average of squared steps |g'|^2; like e_g.


class _Constants(NamedTuple):
    """Adadelta's per-step constants, in the leaves' compute dtype."""

    rho: ArrayLike  # rho, the forgetting rate of both averages.
    eps: ArrayLike  # epsilon, inside both roots.


def scale_by_adadelta(
    *,
    rho: ArrayLike = 0.9,
    eps: ArrayLike = 1e-6,
    initial_scale: ArrayLike = 0.0,
    initial_delta: ArrayLike = 0.0,
    accumulator_dtype: _checks.StateDtype = None,
    state_rounding: _checks.StateRounding = "nearest",
    rounding_seed: ArrayLike = 0,
) -> optax.GradientTransformationExtraArgs:
    """Adadelta's step ``g'_t`` before the learning rate and sign; see :func:`adadelta`.

    Args:
      rho: :math:`\\rho`, in [0, 1) (default ``0.9``).
      eps: :math:`\\epsilon`, inside both roots (default ``1e-6``).
      initial_scale: :math:`s_0`, >= 0 (default ``0.0``).
      initial_delta: :math:`\\Delta w_0`, >= 0 (default ``0.0``); not 0 together with ``eps``.
      accumulator_dtype: dtype (or :func:`~adaptive_tx.quantized`) of ``e_g`` and ``e_x`` (default: float32 for 16-bit
        params, else the params' real dtype).
      state_rounding: ``"nearest"`` (default) or ``"stochastic"``: see :class:`StochasticRoundingState`.
      rounding_seed: the seed of stochastic rounding (default ``0``).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its state is Optax's (``e_g, e_x``).

    Examples:
      >>> import jax.numpy as jnp
      >>> import adaptive_tx as atx
      >>> tx = atx.scale_by_adadelta(eps=1e-4)
      >>> g = jnp.array([1.0, -1000.0])
      >>> step, state = tx.update(g, tx.init(g))  # sqrt(eps / (1 - rho)): the same for every scale.
      >>> print(*(f"{d:.4f}" for d in step))
      0.0316 -0.0316
    """
    _checks.check_decay("rho", rho)
    _checks.check_non_negative("eps", eps)
    _checks.check_non_negative("initial_scale", initial_scale)
    _checks.check_non_negative("initial_delta", initial_delta)
    _checks.check_dtype("accumulator_dtype", accumulator_dtype)
    if _checks.all_numbers((eps, initial_delta)) and eps == 0 and initial_delta == 0:
        raise ValueError(
            "eps and initial_delta cannot both be 0: the step sqrt(dw + eps) / sqrt(s + eps) * g would stay 0 "
            "forever. Use eps > 0 (the paper uses 1e-6) or initial_delta > 0."
        )
    fields = {
        "e_g": _leafwise.Field(initial_scale, squared=True, dtype=accumulator_dtype),
        "e_x": _leafwise.Field(initial_delta, squared=True, dtype=accumulator_dtype),
    }

    def constants(dtype) -> _Constants:
        return _Constants(*_leafwise.cast(dtype, rho, eps))

    def step(c: _Constants, g, e_g, e_x, *, stored):
        (e_g,) = stored(_math.leaky_average(e_g, _math.square(g), c.rho))  # s_t = rho s + (1 - rho) g^2.
        # g'_t = sqrt(dw + eps) / sqrt(s_t + eps) g_t, as sqrt((dw + eps) / (s_t + eps)): one root where the
        # equation takes two, the same value, and XLA fuses it tighter. dw accumulates the step as returned
        # (rounded to the params' dtype for 16-bit params): XLA then keeps one rounded step for both its
        # readers instead of recomputing it from a copy of dw.
        numerator, denominator = e_x + c.eps, e_g + c.eps
        if _math.known_positive(c.eps):  # Neither can be 0: no guard to trace and compile for every leaf.
            delta = stored.direction(_math.scaled(g, jnp.sqrt(numerator / denominator)))
        else:
            # s + eps is 0 only where every gradient so far was 0 (and eps is 0): 0/0, no step. And dw + eps
            # is 0 only if eps and dw are (a traced eps; numbers are refused above): no step either. Both
            # guards replace the root's input as well as its output, so jax.grad stays finite there.
            still = (denominator == 0) | (numerator == 0)
            ratio = numerator / jnp.where(still, jnp.ones_like(denominator), denominator)
            root = jnp.sqrt(jnp.where(still, jnp.ones_like(ratio), ratio))
            delta = stored.direction(jnp.where(still, jnp.zeros_like(g), _math.scaled(g, root)))
        e_x = _math.leaky_average(e_x, _math.square(delta), c.rho)  # dw_t = rho dw + (1 - rho) g'^2.
        return delta, e_g, e_x

    return _leafwise.transformation(
        ScaleByAdadeltaState, fields, step, constants, rounding=state_rounding, seed=rounding_seed
    )


def adadelta(
    learning_rate: optax.ScalarOrSchedule = 1.0,
    *,
    rho: ArrayLike = 0.9,
    eps: ArrayLike = 1e-6,
    initial_scale: ArrayLike = 0.0,
    initial_delta: ArrayLike = 0.0,
    accumulator_dtype: _checks.StateDtype = None,
    state_rounding: _checks.StateRounding = "nearest",
    rounding_seed: ArrayLike = 0,
    weight_decay: optax.ScalarOrSchedule = 0.0,
    weight_decay_mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Adadelta, as the lecture writes it.

    .. math::
        s_t &= \rho s_{t-1} + (1 - \rho)\, g_t^2 \\
        g'_t &= \frac{\sqrt{\Delta w_{t-1} + \epsilon}}{\sqrt{s_t + \epsilon}}\, g_t \\
        \Delta w_t &= \rho\, \Delta w_{t-1} + (1 - \rho)\, g'^2_t \\
        w_t &= w_{t-1} - \eta\, g'_t

    The numerator replaces RMSprop's learning rate by the root mean square of past steps, so the paper
    needs no learning rate (:math:`\eta = 1`). With :math:`\Delta w_0 = 0` the first step is
    :math:`\sqrt{\epsilon / (1-\rho)}` times the gradient's sign: :math:`\epsilon` acts as the learning
    rate at the start. :math:`\Delta w` accumulates the unscaled :math:`g'`; :math:`\eta` scales the
    applied step only. Unlike ``optax.adadelta()``, the default learning rate is 1.0 and it descends. The
    state is Optax's ``ScaleByAdaDeltaState``: ``e_g`` is :math:`s_t`, ``e_x`` is :math:`\Delta w_t`.

    Args:
      learning_rate: :math:`\eta`, a float or an Optax schedule ``step -> float`` (default ``1.0``).
      rho: :math:`\rho`, the forgetting rate of both averages, in [0, 1) (default ``0.9``).
      eps: :math:`\epsilon`, added inside both square roots (default ``1e-6``).
      initial_scale: :math:`s_0`, the starting mean square gradient (default ``0.0``).
      initial_delta: :math:`\Delta w_0`, the starting mean square step (default ``0.0``); ``eps`` and
        ``initial_delta`` cannot both be 0.
      accumulator_dtype: dtype (or :func:`~adaptive_tx.quantized`) of both averages (default: float32 for 16-bit params,
        else the params' real dtype).
      state_rounding: ``"nearest"`` (default) or ``"stochastic"``: see :class:`StochasticRoundingState`.
      rounding_seed: the seed of stochastic rounding (default ``0``).
      weight_decay: :math:`\lambda`, coupled L2 as ``optax.adadelta`` adds it: :math:`g_t + \lambda w_{t-1}`
        enters the equation in place of :math:`g_t` (default ``0.0``: none).
      weight_decay_mask: a pytree of bools like the params (or a function of the params that gives one):
        where False, no decay (default ``None``: decay everywhere).

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import adaptive_tx as atx
      >>> tx = atx.adadelta()
      >>> g = jnp.array([1.0, 100.0])  # A constant gradient, on two scales.
      >>> state = tx.init(g)
      >>> for t in range(1, 4):  # Steps of sqrt(eps / (1 - rho)) = 3.2e-3 whatever the gradient's scale.
      ...     updates, state = tx.update(g, state)
      ...     print(t, *(f"{-u:.4f}" for u in updates))
      1 0.0032 0.0032
      2 0.0032 0.0032
      3 0.0033 0.0033

    References:
      Zeiler, *ADADELTA: An Adaptive Learning Rate Method*, 2012. https://arxiv.org/abs/1212.5701
    """
    block = scale_by_adadelta(
        rho=rho,
        eps=eps,
        initial_scale=initial_scale,
        initial_delta=initial_delta,
        accumulator_dtype=accumulator_dtype,
        state_rounding=state_rounding,
        rounding_seed=rounding_seed,
    )
    _checks.check_learning_rate(weight_decay, "weight_decay")
    if not (_checks.is_number(weight_decay) and weight_decay == 0):
        block = optax.chain(_leafwise.add_decayed_weights(weight_decay, weight_decay_mask), block)
    return _leafwise.descend(block, learning_rate)
