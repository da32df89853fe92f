"""RMSprop: AdaGrad with a leaky average of squared gradients in place of the running sum."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from adaptive_tx import _checks, _leafwise, _math
from adaptive_tx._momentum import scale_by_momentum
from adaptive_tx._quantize import QuantizedDtype


class ScaleByRmsState(NamedTuple):
    """State of :func:`scale_by_rms`: field for field Optax's ``ScaleByRmsState``."""

    nu: optax.Updates  # s_t: leaky average of |g|^2; params' shape, real, accumulator_dtype or the policy's.


class ScaleByRmsWithCountState(NamedTuple):
    """State of :func:`scale_by_rms` with ``bias_correction=True``: Optax's ``ScaleByRmsWithCountState``."""

    count: jax.Array  # type: ignore[assignment]  # t: steps taken, int32 scalar; saturates at int32 max.
    nu: optax.Updates  # s_t: leaky average of |g|^2; params' shape, real, accumulator_dtype or the policy's.


class ScaleByCenteredRmsState(NamedTuple):
    """State of :func:`scale_by_rms` with ``centered=True``: Optax's ``ScaleByRStdDevState``."""

    mu: optax.Updates  # g-bar_t: leaky average of gradients; params' shape and dtype.
    nu: optax.Updates  # s_t: leaky average of |g|^2; params' shape, real, accumulator_dtype or the policy's.


class ScaleByCenteredRmsWithCountState(NamedTuple):
    """State of :func:`scale_by_rms` with ``centered`` and ``bias_correction``: Optax's
    ``ScaleByRStdDevWithCountState``."""

    count: jax.Array  # type: ignore[assignment]  # t: steps taken, int32 scalar; saturates at int32 max.
    mu: optax.Updates  # g-bar_t: leaky average of gradients; params' shape and dtype.
    nu: optax.Updates  # s_t: leaky average of |g|^2; params' shape, real, accumulator_dtype or the policy's.


class _Constants(NamedTuple):
    """RMSprop's per-step constants, in the leaves' compute dtype."""

    decay: ArrayLike  # beta.
    inside: ArrayLike  # epsilon under the root (the lecture's, Optax's), or 0.
    outside: ArrayLike  # epsilon added to the root (PyTorch's), or 0.
    correction: jax.Array | None  # 1 - beta^t with bias_correction; None without.


def _corrected(average: jax.Array, c: _Constants) -> jax.Array:
    """A leaky average as the root reads it: divided by ``1 - beta^t`` with ``bias_correction``."""
    return average if c.correction is None else _math.unbias(average, c.correction)


def scale_by_rms(
    *,
    decay: ArrayLike = 0.9,
    eps: ArrayLike = 1e-8,
    initial_scale: ArrayLike = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    accumulator_dtype: _checks.StateDtype = None,
    state_rounding: _checks.StateRounding = "nearest",
    rounding_seed: ArrayLike = 0,
    bias_correction: bool = False,
) -> optax.GradientTransformationExtraArgs:
    """RMSprop's direction ``g_t / sqrt(s_t + eps)``, without learning rate or sign; see :func:`rmsprop`.

    Args:
      decay: :math:`\\beta`, in [0, 1) (default ``0.9``).
      eps: :math:`\\epsilon` (default ``1e-8``).
      initial_scale: :math:`s_0`, >= 0 (default ``0.0``).
      eps_in_sqrt: ``False`` divides by ``sqrt(s_t) + eps`` (PyTorch) instead of ``sqrt(s_t + eps)``
        (default ``True``).
      centered: subtract the squared leaky average of gradients, ``sqrt(s_t - |g_bar_t|^2 + eps)`` (Graves
        2013; clamped at 0 against rounding); the state is then :class:`ScaleByCenteredRmsState` (default
        ``False``).
      accumulator_dtype: dtype (or :func:`~adaptive_tx.quantized`) of the averages (default: the policy's: float32 for
        the mean square of 16-bit params, the params' dtype for the mean gradient); for complex params a real dtype is
        refused when ``centered`` (the mean gradient would drop its imaginary part).
      state_rounding: ``"nearest"`` (default) or ``"stochastic"``: see :class:`StochasticRoundingState`.
      rounding_seed: the seed of stochastic rounding (default ``0``).
      bias_correction: divide the averages by ``1 - decay^t`` before the root, as Optax's ``scale_by_rms``
        and ``scale_by_stddev`` do; the state then carries a count, :class:`ScaleByRmsWithCountState`
        (centered: :class:`ScaleByCenteredRmsWithCountState`) (default ``False``).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its state is Optax's (``nu``; centered ``mu, nu``; with
      ``bias_correction``, a ``count`` first).

    Examples:
      >>> import jax.numpy as jnp
      >>> import adaptive_tx as atx
      >>> tx = atx.scale_by_rms(decay=0.5)
      >>> g = jnp.array([3.0, -4.0])
      >>> direction, state = tx.update(g, tx.init(g))  # g / sqrt((1 - 0.5) g^2) = sign(g) sqrt(2).
      >>> print(*(f"{d:.4f}" for d in direction))
      1.4142 -1.4142
    """
    _checks.check_decay("decay", decay)
    _checks.check_non_negative("eps", eps)
    _checks.check_non_negative("initial_scale", initial_scale)
    _checks.check_bool("eps_in_sqrt", eps_in_sqrt)
    _checks.check_bool("centered", centered)
    _checks.check_bool("bias_correction", bias_correction)
    _checks.check_dtype("accumulator_dtype", accumulator_dtype)
    if centered and isinstance(accumulator_dtype, QuantizedDtype):
        raise ValueError(
            "centered=True cannot keep 8-bit state (accumulator_dtype=quantized(...)): its variance s_t - g_bar_t^2 "
            "is the difference of two 8-bit values, which can cancel to 0 where the true variance is small, and the "
            "step g / sqrt(eps) explodes (measured: 30 steps on a quadratic ended at loss 1e14 against 294 with "
            "float32 state). Keep float32 or bfloat16 state for centered RMSprop."
        )
    nu = _leafwise.Field(initial_scale, squared=True, dtype=accumulator_dtype)

    def constants(dtype, count=None) -> _Constants:
        decay_, eps_ = _leafwise.cast(dtype, decay, eps)
        correction = None if count is None else _math.bias_correction_factor(decay_, count, dtype)
        inside, outside = (eps_, 0) if eps_in_sqrt else (0, eps_)
        return _Constants(decay=decay_, inside=inside, outside=outside, correction=correction)

    def step(c: _Constants, g, nu, *, stored):
        (nu,) = stored(_math.leaky_average(nu, _math.square(g), c.decay))  # s_t = beta s + (1 - beta) g^2.
        return _math.over_root(g, _corrected(nu, c), inside=c.inside, outside=c.outside), nu

    def centered_step(c: _Constants, g, mu, nu, *, stored):
        mu, nu = stored(_math.leaky_average(mu, g, c.decay), _math.leaky_average(nu, _math.square(g), c.decay))
        variance = jnp.maximum(_corrected(nu, c) - _math.square(_corrected(mu, c)), 0)  # Clamped against rounding.
        return _math.over_root(g, variance, inside=c.inside, outside=c.outside), mu, nu

    if centered:
        fields = {"mu": _leafwise.Field(0.0, dtype=accumulator_dtype), "nu": nu}
        centered_type = ScaleByCenteredRmsWithCountState if bias_correction else ScaleByCenteredRmsState
        return _leafwise.transformation(
            centered_type, fields, centered_step, constants, rounding=state_rounding, seed=rounding_seed
        )
    state_type = ScaleByRmsWithCountState if bias_correction else ScaleByRmsState
    return _leafwise.transformation(
        state_type, {"nu": nu}, step, constants, rounding=state_rounding, seed=rounding_seed
    )


def rmsprop(
    learning_rate: optax.ScalarOrSchedule,
    *,
    decay: ArrayLike = 0.9,
    eps: ArrayLike = 1e-8,
    initial_scale: ArrayLike = 0.0,
    eps_in_sqrt: bool = True,
    centered: bool = False,
    momentum: ArrayLike | None = None,
    nesterov: bool = False,
    accumulator_dtype: _checks.StateDtype = None,
    state_rounding: _checks.StateRounding = "nearest",
    rounding_seed: ArrayLike = 0,
    bias_correction: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""RMSprop, as the lecture writes it.

    .. math::
        s_t = \beta s_{t-1} + (1 - \beta)\, g_t^2, \qquad
        w_t = w_{t-1} - \frac{\eta}{\sqrt{s_t + \epsilon}}\, g_t

    AdaGrad's sum forgets nothing, so its steps shrink forever; RMSprop forgets old gradients at rate
    :math:`\beta` and keeps the step size from decaying. There is no bias correction: with :math:`s_0 = 0`
    the first step is :math:`\eta / \sqrt{1 - \beta}` times the gradient's sign. The state is Optax's:
    ``nu`` is :math:`s_t`, and the chain has Optax's three parts (block, learning rate, momentum).

    Args:
      learning_rate: :math:`\eta`, a float or an Optax schedule ``step -> float``.
      decay: :math:`\beta`, the forgetting rate of the average, in [0, 1) (default ``0.9``).
      eps: :math:`\epsilon`, added inside the square root (default ``1e-8``).
      initial_scale: :math:`s_0`, the starting mean square (default ``0.0``; TF1 used ``1.0``).
      eps_in_sqrt: ``False`` puts :math:`\epsilon` outside the root, as PyTorch does (default ``True``).
      centered: divide by the root of the variance, :math:`s_t - \bar g_t^2` (default ``False``).
      momentum: heavy-ball momentum :math:`\mu` on the step, ``b = mu b + step``, as
        ``optax.rmsprop(momentum=)`` places it (after the learning rate); ``None`` for none (default).
      nesterov: Nesterov's look-ahead on that momentum (default ``False``; needs ``momentum``).
      accumulator_dtype: dtype (or :func:`~adaptive_tx.quantized`) of the averages and of the momentum (default: float32
        for the mean square of 16-bit params, else the params' dtype); for complex params a real dtype is refused with
        ``centered`` or ``momentum`` (those would drop their imaginary part).
      state_rounding: ``"nearest"`` (default) or ``"stochastic"``: see :class:`StochasticRoundingState`.
      rounding_seed: the seed of stochastic rounding (default ``0``).
      bias_correction: divide the averages by :math:`1 - \beta^t` before the root, as
        ``optax.rmsprop(bias_correction=True)`` (default ``False``).

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

      Graves, *Generating Sequences With Recurrent Neural Networks*, 2013. https://arxiv.org/abs/1308.0850
    """
    _checks.check_bool("nesterov", nesterov)
    if nesterov and momentum is None:
        raise ValueError("nesterov=True needs a momentum: pass momentum=0.9, say.")
    block = scale_by_rms(
        decay=decay,
        eps=eps,
        initial_scale=initial_scale,
        eps_in_sqrt=eps_in_sqrt,
        centered=centered,
        accumulator_dtype=accumulator_dtype,
        state_rounding=state_rounding,
        rounding_seed=rounding_seed,
        bias_correction=bias_correction,
    )
    heavy_ball = (
        optax.identity()
        if momentum is None
        else scale_by_momentum(
            beta=momentum,
            dampening=0.0,
            nesterov=nesterov,
            accumulator_dtype=accumulator_dtype,
            state_rounding=state_rounding,
            rounding_seed=rounding_seed,
        )
    )
    return _leafwise.descend(block, learning_rate, then=heavy_ball)
