"""Momentum: a leaky average of the gradients, the velocity of a heavy ball."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from adaptive_tx import _checks, _leafwise, _math


class ScaleByMomentumState(NamedTuple):
    """State of :func:`scale_by_momentum`: field for field Optax's ``TraceState``."""

    trace: optax.Updates  # v_t: velocity, a leaky average of gradients; params' shape and dtype.


class ScaleByMomentumWithCountState(NamedTuple):
    """State of :func:`scale_by_momentum` with ``first_step_undampened=True``: a count beside Optax's trace."""

    count: jax.Array  # type: ignore[assignment]  # t: steps taken, int32 scalar; saturates at int32 max.
    trace: optax.Updates  # v_t: velocity, a leaky average of gradients; params' shape and dtype.


class _Constants(NamedTuple):
    """Momentum's per-step constants, in the leaves' compute dtype."""

    beta: ArrayLike  # beta, the forgetting rate of the velocity.
    dampening: ArrayLike  # d: the share of each gradient held back (0 at t = 1 with first_step_undampened).


def _heavy_ball(beta: Any, dampening: Any, name: str, heavy_ball: Any) -> tuple[Any, Any]:
    """``(beta, dampening)``, or Optax's heavy ball ``(heavy_ball, 0)`` when Optax's keyword ``name`` is given."""
    if heavy_ball is None:
        return beta, dampening
    if not (_checks.is_number(beta) and beta == 0.9 and dampening is None):
        raise TypeError(f"{name} is Optax's heavy ball, beta={name} with dampening=0: pass it or beta/dampening.")
    return heavy_ball, 0.0


def scale_by_momentum(
    *,
    beta: ArrayLike = 0.9,
    dampening: ArrayLike | None = None,
    nesterov: bool = False,
    first_step_undampened: bool = False,
    accumulator_dtype: _checks.StateDtype = None,
    state_rounding: _checks.StateRounding = "nearest",
    rounding_seed: ArrayLike = 0,
    decay: ArrayLike | None = None,
) -> optax.GradientTransformationExtraArgs:
    """Momentum's velocity ``v_t`` (or its Nesterov look-ahead), without learning rate or sign; see :func:`momentum`.

    Args:
      beta: :math:`\\beta`, in [0, 1) (default ``0.9``).
      dampening: :math:`d` in [0, 1); ``None`` means ``beta`` (the lecture's leaky average), ``0.0`` the
        heavy ball (default ``None``).
      nesterov: return ``beta v_t + (1 - d) g_t``, the velocity one step ahead (default ``False``).
      first_step_undampened: start the velocity at ``v_1 = g_1`` whatever the dampening, as PyTorch's SGD
        does (its buffer is created as a copy of the first gradient); the state then carries a count,
        :class:`ScaleByMomentumWithCountState` (default ``False``).
      accumulator_dtype: dtype (or :func:`~adaptive_tx.quantized`) of ``v_t`` (default: the params'); a real one for
        complex params is refused (it would drop the imaginary part).
      state_rounding: ``"nearest"`` (default) or ``"stochastic"``: see :class:`StochasticRoundingState`.
      rounding_seed: the seed of stochastic rounding (default ``0``).
      decay: Optax's keyword (``optax.trace(decay)``): the heavy ball, ``beta=decay`` with ``dampening=0``
        (default ``None``: use ``beta`` and ``dampening``).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its state is Optax's (``trace``).

    Examples:
      >>> import jax.numpy as jnp
      >>> import adaptive_tx as atx
      >>> tx = atx.scale_by_momentum(beta=0.5)
      >>> g = jnp.array([4.0])
      >>> state = tx.init(g)
      >>> for _ in range(3):  # The leaky average of a constant gradient: 2, 3, 3.5 -> 4.
      ...     direction, state = tx.update(g, state)
      ...     print(f"{direction[0]:.2f}")
      2.00
      3.00
      3.50
    """
    beta, dampening = _heavy_ball(beta, dampening, "decay", decay)
    _checks.check_decay("beta", beta)
    if dampening is not None:
        _checks.check_decay("dampening", dampening)
    _checks.check_bool("nesterov", nesterov)
    _checks.check_bool("first_step_undampened", first_step_undampened)
    _checks.check_dtype("accumulator_dtype", accumulator_dtype)
    fields = {"trace": _leafwise.Field(0.0, dtype=accumulator_dtype)}

    def constants(dtype, count=None) -> _Constants:
        beta_, dampening_ = _leafwise.cast(dtype, beta, beta if dampening is None else dampening)
        if count is not None:  # first_step_undampened: v_1 = g_1.
            dampening_ = jnp.where(count == 1, jnp.zeros_like(dampening_), dampening_)
        return _Constants(beta=beta_, dampening=dampening_)

    def step(c: _Constants, g, v, *, stored):
        (v,) = stored(_math.leaky_average(v, g, c.beta, c.dampening))  # v_t = beta v + (1 - d) g_t.
        if nesterov:  # Look one step ahead: the velocity the next step would have on the same gradient.
            return _math.leaky_average(v, g, c.beta, c.dampening), v
        return v, v

    state_type = ScaleByMomentumWithCountState if first_step_undampened else ScaleByMomentumState
    return _leafwise.transformation(state_type, fields, step, constants, rounding=state_rounding, seed=rounding_seed)


def momentum(
    learning_rate: optax.ScalarOrSchedule,
    *,
    beta: ArrayLike = 0.9,
    dampening: ArrayLike | None = None,
    nesterov: bool = False,
    first_step_undampened: bool = False,
    accumulator_dtype: _checks.StateDtype = None,
    state_rounding: _checks.StateRounding = "nearest",
    rounding_seed: ArrayLike = 0,
    momentum: ArrayLike | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""Gradient descent with momentum, as the lecture writes it.

    .. math::
        v_t = \beta v_{t-1} + (1 - d)\, g_t, \qquad w_t = w_{t-1} - \eta\, v_t

    with dampening :math:`d = \beta` by default, which makes :math:`v_t` the lecture's leaky average of
    gradients; :math:`d = 0` is Polyak's heavy ball (PyTorch's ``SGD(momentum=beta)`` after its first
    step, and ``optax.sgd(momentum=beta)``), whose steps are :math:`1/(1-\beta)` times larger.
    With ``nesterov=True`` the applied step looks ahead:
    :math:`w_t = w_{t-1} - \eta\, (\beta v_t + (1 - d)\, g_t)`. The state is Optax's ``TraceState``:
    ``trace`` is :math:`v_t`.

    Args:
      learning_rate: :math:`\eta`, a float or an Optax schedule ``step -> float``.
      beta: :math:`\beta`, the momentum (forgetting rate of the velocity), in [0, 1) (default ``0.9``).
      dampening: :math:`d`, in [0, 1): how much of each gradient is held back; ``None`` (default) means
        :math:`d = \beta` (leaky average), ``0.0`` the heavy ball.
      nesterov: use Nesterov's look-ahead step (default ``False``).
      first_step_undampened: :math:`v_1 = g_1` whatever :math:`d`, as PyTorch's SGD (default ``False``).
      accumulator_dtype: dtype (or :func:`~adaptive_tx.quantized`) of :math:`v_t` (default: the params'); a real one for
        complex params is refused (it would drop the imaginary part).
      state_rounding: ``"nearest"`` (default) or ``"stochastic"``: see :class:`StochasticRoundingState`.
      rounding_seed: the seed of stochastic rounding (default ``0``).
      momentum: Optax's keyword (``optax.sgd(momentum=)``): the heavy ball, ``beta=momentum`` with
        ``dampening=0`` (default ``None``: use ``beta`` and ``dampening``).

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import adaptive_tx as atx
      >>> g = jnp.array([1.0])  # A constant gradient.
      >>> for dampening in (None, 0.0):  # The leaky average ramps up to 0.1; the heavy ball to 1.0.
      ...     tx = atx.momentum(learning_rate=0.1, dampening=dampening)
      ...     state = tx.init(g)
      ...     steps = []
      ...     for _ in range(3):
      ...         updates, state = tx.update(g, state)
      ...         steps.append(f"{-updates[0]:.4f}")
      ...     print(dampening, *steps)
      None 0.0100 0.0190 0.0271
      0.0 0.1000 0.1900 0.2710

    References:
      Polyak, *Some methods of speeding up the convergence of iteration methods*, USSR Computational
      Mathematics and Mathematical Physics, 1964. https://doi.org/10.1016/0041-5553(64)90137-5

      Sutskever, Martens, Dahl & Hinton, *On the importance of initialization and momentum in deep
      learning*, ICML 2013. https://proceedings.mlr.press/v28/sutskever13.html
    """
    beta, dampening = _heavy_ball(beta, dampening, "momentum", momentum)
    block = scale_by_momentum(
        beta=beta,
        dampening=dampening,
        nesterov=nesterov,
        first_step_undampened=first_step_undampened,
        accumulator_dtype=accumulator_dtype,
        state_rounding=state_rounding,
        rounding_seed=rounding_seed,
    )
    return _leafwise.descend(block, learning_rate)
