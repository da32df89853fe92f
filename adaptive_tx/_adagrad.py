"""AdaGrad: per-coordinate steps scaled by the root of the running sum of squared gradients."""

from __future__ import annotations

from typing import Any, NamedTuple

import optax

from adaptive_tx import _moments


class ScaleByAdagradState(NamedTuple):
    """State of :func:`scale_by_adagrad`."""

    s: optax.Updates  # s_t: running sum of squared gradients; shape and dtype of params.


def scale_by_adagrad(
    eps: float = 1e-8, initial_accumulator: float = 0.0, *, eps_in_sqrt: bool = True, accumulator_dtype: Any = None
) -> optax.GradientTransformationExtraArgs:
    """AdaGrad's direction ``g_t / sqrt(s_t + eps)``, without learning rate or sign; see :func:`adagrad`.

    Knobs beyond the lecture: ``eps_in_sqrt=False`` divides by ``sqrt(s_t) + eps`` (PyTorch, Duchi et al.);
    ``accumulator_dtype`` stores ``s_t`` in that dtype (default: the params').
    """
    _moments.check_non_negative("eps", eps)
    _moments.check_non_negative("initial_accumulator", initial_accumulator)
    _moments.check_bool("eps_in_sqrt", eps_in_sqrt)
    _moments.check_dtype("accumulator_dtype", accumulator_dtype)

    def step(dtype, g, s):
        (eps_,) = _moments.cast(dtype, eps)
        s = _moments.running_sum(s, g * g)
        return _moments.safe_divide(g, _moments.rms(s, eps_, eps_in_sqrt)), s

    return _moments.leafwise_transformation(
        ScaleByAdagradState, step, dtypes={"s": accumulator_dtype}, s=initial_accumulator
    )


def adagrad(
    learning_rate: optax.ScalarOrSchedule,
    *,
    eps: float = 1e-8,
    initial_accumulator: float = 0.0,
) -> optax.GradientTransformationExtraArgs:
    r"""AdaGrad, as the lecture writes it.

    .. math::
        s_t = s_{t-1} + g_t^2, \qquad
        w_t = w_{t-1} - \frac{\eta}{\sqrt{s_t + \epsilon}}\, g_t

    Every coordinate gets its own step size, large where gradients have been small. Because :math:`s_t`
    only grows, the step decays like :math:`\eta / \sqrt{t}` on a constant gradient: "the more you update,
    the less you update".

    Args:
      learning_rate: :math:`\eta`, a float or an Optax schedule ``step -> float``.
      eps: :math:`\epsilon`, added inside the square root (default ``1e-8``).
      initial_accumulator: :math:`s_0`, the starting value of the sum of squares (default ``0.0``;
        Optax and Keras use ``0.1``).

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import adaptive_tx as atx
      >>> tx = atx.adagrad(learning_rate=0.1)
      >>> g = jnp.array([1.0, 100.0])  # A constant gradient, on two scales.
      >>> state = tx.init(g)
      >>> for t in range(1, 5):  # Steps of 0.1 / sqrt(t) on both coordinates: the step decays.
      ...     updates, state = tx.update(g, state)
      ...     print(t, *(f"{-u:.4f}" for u in updates))
      1 0.1000 0.1000
      2 0.0707 0.0707
      3 0.0577 0.0577
      4 0.0500 0.0500

    References:
      Duchi, Hazan & Singer, *Adaptive Subgradient Methods for Online Learning and Stochastic
      Optimization*, JMLR 2011. https://jmlr.org/papers/v12/duchi11a.html
    """
    return _moments.descend(scale_by_adagrad(eps=eps, initial_accumulator=initial_accumulator), learning_rate)
