"""Adadelta: RMSprop whose learning rate is the root of a leaky average of past squared steps."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import optax

from adaptive_tx import _moments


class ScaleByAdadeltaState(NamedTuple):
    """State of :func:`scale_by_adadelta`."""

    s: optax.Updates  # s_t: leaky average of squared gradients; shape and dtype of params.
    dw: optax.Updates  # dw_t: leaky average of squared steps g'^2; shape and dtype of params.


def scale_by_adadelta(
    rho: float = 0.9,
    eps: float = 1e-6,
    initial_scale: float = 0.0,
    initial_delta: float = 0.0,
    *,
    accumulator_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """Adadelta's step ``g'_t`` before the learning rate and sign; see :func:`adadelta`.

    Knob beyond the lecture: ``accumulator_dtype`` stores ``s_t`` and ``dw_t`` in that dtype (default: the
    params').
    """
    _moments.check_decay("rho", rho)
    _moments.check_non_negative("eps", eps)
    _moments.check_non_negative("initial_scale", initial_scale)
    _moments.check_non_negative("initial_delta", initial_delta)
    _moments.check_dtype("accumulator_dtype", accumulator_dtype)
    if _moments.all_numbers((eps, initial_delta)) and eps == 0 and initial_delta == 0:
        raise ValueError(
            "eps and initial_delta cannot both be 0: the step sqrt(dw + eps) / sqrt(s + eps) * g would stay 0 "
            "forever. Use eps > 0 (the paper uses 1e-6) or initial_delta > 0."
        )

    def step(dtype, g, s, dw):
        rho_, eps_ = _moments.cast(dtype, rho, eps)
        s = _moments.leaky_average(s, g * g, rho_)
        # sqrt((dw + eps) / (s + eps)) takes one root where the equation takes two; same value, faster.
        delta = jnp.sqrt(_moments.safe_divide(dw + eps_, s + eps_)) * g
        dw = _moments.leaky_average(dw, delta * delta, rho_)
        return delta, s, dw

    return _moments.leafwise_transformation(
        ScaleByAdadeltaState,
        step,
        dtypes={"s": accumulator_dtype, "dw": accumulator_dtype},
        s=initial_scale,
        dw=initial_delta,
    )


def adadelta(
    learning_rate: optax.ScalarOrSchedule = 1.0,
    *,
    rho: float = 0.9,
    eps: float = 1e-6,
    initial_scale: float = 0.0,
    initial_delta: float = 0.0,
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
    applied step only. Unlike ``optax.adadelta()``, the default learning rate is 1.0 and it descends.

    Args:
      learning_rate: :math:`\eta`, a float or an Optax schedule ``step -> float`` (default ``1.0``).
      rho: :math:`\rho`, the forgetting rate of both averages, in [0, 1) (default ``0.9``).
      eps: :math:`\epsilon`, added inside both square roots (default ``1e-6``).
      initial_scale: :math:`s_0`, the starting mean square gradient (default ``0.0``).
      initial_delta: :math:`\Delta w_0`, the starting mean square step (default ``0.0``); ``eps`` and
        ``initial_delta`` cannot both be 0.

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
    block = scale_by_adadelta(rho=rho, eps=eps, initial_scale=initial_scale, initial_delta=initial_delta)
    return _moments.descend(block, learning_rate)
