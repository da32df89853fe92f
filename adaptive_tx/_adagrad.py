"""AdaGrad: per-coordinate steps scaled by the root of the running sum of squared gradients."""

from __future__ import annotations

from typing import NamedTuple

import optax
from jax.typing import ArrayLike

from adaptive_tx import _checks, _leafwise, _math


class ScaleByAdagradState(NamedTuple):
    """State of :func:`scale_by_adagrad`: field for field Optax's ``ScaleByRssState``."""

    sum_of_squares: optax.Updates  # s_t: running sum of |g|^2; params' shape, real, accumulator_dtype or policy's.


class _Constants(NamedTuple):
    """AdaGrad's per-step constants, in the leaves' compute dtype."""

    inside: ArrayLike  # epsilon under the root (the lecture's, Optax's), or 0.
    outside: ArrayLike  # epsilon added to the root (PyTorch's), or 0.


def scale_by_adagrad(
    *,
    eps: ArrayLike = 1e-8,
    initial_accumulator: ArrayLike = 0.0,
    eps_in_sqrt: bool = True,
    accumulator_dtype: _checks.StateDtype = None,
    state_rounding: _checks.StateRounding = "nearest",
    rounding_seed: ArrayLike = 0,
    initial_accumulator_value: ArrayLike | None = None,
) -> optax.GradientTransformationExtraArgs:
    """AdaGrad's direction ``g_t / sqrt(s_t + eps)``, without learning rate or sign; see :func:`adagrad`.

    Args:
      eps: :math:`\\epsilon` (default ``1e-8``).
      initial_accumulator: :math:`s_0`, >= 0 (default ``0.0``).
      eps_in_sqrt: ``True`` divides by ``sqrt(s_t + eps)`` (the lecture, Optax); ``False`` by
        ``sqrt(s_t) + eps`` (PyTorch, Duchi et al.) (default ``True``).
      accumulator_dtype: dtype (or :func:`~adaptive_tx.quantized`) of ``s_t`` (default: float32 for 16-bit params, else
        the params' real dtype).
      state_rounding: ``"nearest"`` (default) or ``"stochastic"``: see :class:`StochasticRoundingState`.
      rounding_seed: the seed of stochastic rounding (default ``0``).
      initial_accumulator_value: Optax's name for ``initial_accumulator`` (``optax.scale_by_rss``).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its state is Optax's (``sum_of_squares``).

    Examples:
      >>> import jax.numpy as jnp
      >>> import adaptive_tx as atx
      >>> tx = atx.scale_by_adagrad()
      >>> g = jnp.array([3.0, -4.0])
      >>> state = tx.init(g)
      >>> for _ in range(2):  # g / sqrt(t g^2): 1, then 1 / sqrt(2), in each coordinate's own scale.
      ...     direction, state = tx.update(g, state)
      ...     print(*(f"{d:.4f}" for d in direction))
      1.0000 -1.0000
      0.7071 -0.7071
    """
    initial_accumulator = _checks.optax_name(
        "initial_accumulator", initial_accumulator, 0.0, "initial_accumulator_value", initial_accumulator_value
    )
    _checks.check_non_negative("eps", eps)
    _checks.check_non_negative("initial_accumulator", initial_accumulator)
    _checks.check_bool("eps_in_sqrt", eps_in_sqrt)
    _checks.check_dtype("accumulator_dtype", accumulator_dtype)
    fields = {"sum_of_squares": _leafwise.Field(initial_accumulator, squared=True, dtype=accumulator_dtype)}

    def constants(dtype) -> _Constants:
        (eps_,) = _leafwise.cast(dtype, eps)
        return _Constants(inside=eps_, outside=0) if eps_in_sqrt else _Constants(inside=0, outside=eps_)

    def step(c: _Constants, g, s, *, stored):
        (s,) = stored(_math.running_sum(s, _math.square(g)))  # s_t = s_{t-1} + g_t^2.
        return _math.over_root(g, s, inside=c.inside, outside=c.outside), s  # g_t / sqrt(s_t + eps).

    return _leafwise.transformation(
        ScaleByAdagradState, fields, step, constants, rounding=state_rounding, seed=rounding_seed
    )


def adagrad(
    learning_rate: optax.ScalarOrSchedule,
    *,
    eps: ArrayLike = 1e-8,
    initial_accumulator: ArrayLike = 0.0,
    eps_in_sqrt: bool = True,
    accumulator_dtype: _checks.StateDtype = None,
    state_rounding: _checks.StateRounding = "nearest",
    rounding_seed: ArrayLike = 0,
    initial_accumulator_value: ArrayLike | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""AdaGrad, as the lecture writes it.

    .. math::
        s_t = s_{t-1} + g_t^2, \qquad
        w_t = w_{t-1} - \frac{\eta}{\sqrt{s_t + \epsilon}}\, g_t

    Every coordinate gets its own step size, large where gradients have been small. Because :math:`s_t`
    only grows, the step decays like :math:`\eta / \sqrt{t}` on a constant gradient: "the more you update,
    the less you update". The state is Optax's ``ScaleByRssState``: ``sum_of_squares`` is :math:`s_t`.

    Args:
      learning_rate: :math:`\eta`, a float or an Optax schedule ``step -> float``.
      eps: :math:`\epsilon`, added inside the square root (default ``1e-8``).
      initial_accumulator: :math:`s_0`, the starting value of the sum of squares (default ``0.0``;
        Optax and Keras use ``0.1``).
      eps_in_sqrt: ``False`` puts :math:`\epsilon` outside the root, as PyTorch does (default ``True``).
      accumulator_dtype: dtype (or :func:`~adaptive_tx.quantized`) of :math:`s_t` (default: float32 for 16-bit params,
        else the params' real dtype).
      state_rounding: ``"nearest"`` (default) or ``"stochastic"``: see :class:`StochasticRoundingState`.
      rounding_seed: the seed of stochastic rounding (default ``0``).
      initial_accumulator_value: Optax's name for ``initial_accumulator`` (``optax.adagrad``).

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
    block = scale_by_adagrad(
        eps=eps,
        initial_accumulator=initial_accumulator,
        eps_in_sqrt=eps_in_sqrt,
        accumulator_dtype=accumulator_dtype,
        state_rounding=state_rounding,
        rounding_seed=rounding_seed,
        initial_accumulator_value=initial_accumulator_value,
    )
    return _leafwise.descend(block, learning_rate)
