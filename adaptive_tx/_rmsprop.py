"""RMSprop: AdaGrad with a leaky average of squared gradients in place of the running sum."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import optax

from adaptive_tx import _moments


class ScaleByRmsState(NamedTuple):
    """State of :func:`scale_by_rms`."""

    s: optax.Updates  # s_t: leaky average of squared gradients; shape and dtype of params.


class ScaleByCenteredRmsState(NamedTuple):
    """State of :func:`scale_by_rms` with ``centered=True``."""

    s: optax.Updates  # s_t: leaky average of squared gradients; shape and dtype of params.
    g_bar: optax.Updates  # g-bar_t: leaky average of gradients; shape and dtype of params.


def scale_by_rms(
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
    *,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    accumulator_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """RMSprop's direction ``g_t / sqrt(s_t + eps)``, without learning rate or sign; see :func:`rmsprop`.

    Knobs beyond the lecture: ``eps_in_sqrt=False`` divides by ``sqrt(s_t) + eps`` (PyTorch);
    ``centered=True`` subtracts the squared leaky average of gradients, ``sqrt(s_t - g_bar_t^2 + eps)``
    (Graves 2013; clamped at 0 against rounding), with state :class:`ScaleByCenteredRmsState`;
    ``accumulator_dtype`` stores the averages in that dtype (default: the params').
    """
    _moments.check_decay("decay", decay)
    _moments.check_non_negative("eps", eps)
    _moments.check_non_negative("initial_scale", initial_scale)
    _moments.check_bool("eps_in_sqrt", eps_in_sqrt)
    _moments.check_bool("centered", centered)
    _moments.check_dtype("accumulator_dtype", accumulator_dtype)
    dtypes = {"s": accumulator_dtype, "g_bar": accumulator_dtype}

    def step(dtype, g, s):
        decay_, eps_ = _moments.cast(dtype, decay, eps)
        s = _moments.leaky_average(s, g * g, decay_)
        return _moments.safe_divide(g, _moments.rms(s, eps_, eps_in_sqrt)), s

    def centered_step(dtype, g, s, g_bar):
        decay_, eps_ = _moments.cast(dtype, decay, eps)
        s = _moments.leaky_average(s, g * g, decay_)
        g_bar = _moments.leaky_average(g_bar, g, decay_)
        variance = jnp.maximum(s - g_bar * g_bar, 0)
        return _moments.safe_divide(g, _moments.rms(variance, eps_, eps_in_sqrt)), s, g_bar

    if centered:
        return _moments.leafwise_transformation(
            ScaleByCenteredRmsState, centered_step, dtypes=dtypes, s=initial_scale, g_bar=0.0
        )
    return _moments.leafwise_transformation(ScaleByRmsState, step, dtypes=dtypes, s=initial_scale)


def rmsprop(
    learning_rate: optax.ScalarOrSchedule,
    *,
    decay: float = 0.9,
    eps: float = 1e-8,
    initial_scale: float = 0.0,
) -> optax.GradientTransformationExtraArgs:
    r"""RMSprop, as the lecture writes it.

    .. math::
        s_t = \beta s_{t-1} + (1 - \beta)\, g_t^2, \qquad
        w_t = w_{t-1} - \frac{\eta}{\sqrt{s_t + \epsilon}}\, g_t

    AdaGrad's sum forgets nothing, so its steps shrink forever; RMSprop forgets old gradients at rate
    :math:`\beta` and keeps the step size from decaying. There is no bias correction: with :math:`s_0 = 0`
    the first step is :math:`\eta / \sqrt{1 - \beta}` times the gradient's sign.

    Args:
      learning_rate: :math:`\eta`, a float or an Optax schedule ``step -> float``.
      decay: :math:`\beta`, the forgetting rate of the average, in [0, 1) (default ``0.9``).
      eps: :math:`\epsilon`, added inside the square root (default ``1e-8``).
      initial_scale: :math:`s_0`, the starting mean square (default ``0.0``; TF1 used ``1.0``).

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import adaptive_tx as atx
      >>> tx = atx.rmsprop(learning_rate=0.1)
      >>> g = jnp.array([1.0, 100.0])  # A constant gradient, on two scales.
      >>> state = tx.init(g)
      >>> for t in range(1, 4):  # The first step is 0.1 / sqrt(1 - 0.9); later steps settle at 0.1.
      ...     updates, state = tx.update(g, state)
      ...     print(t, *(f"{-u:.4f}" for u in updates))
      1 0.3162 0.3162
      2 0.2294 0.2294
      3 0.1921 0.1921

    References:
      Tieleman & Hinton, *Lecture 6e: rmsprop: Divide the gradient by a running average of its recent
      magnitude*, COURSERA: Neural Networks for Machine Learning, 2012.
      https://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf
    """
    return _moments.descend(scale_by_rms(decay=decay, eps=eps, initial_scale=initial_scale), learning_rate)
