"""Adam: Momentum's average of gradients over RMSprop's average of squares, both bias-corrected."""

from __future__ import annotations

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from adaptive_tx import _checks, _leafwise, _math


class ScaleByAdamState(NamedTuple):
    """State of :func:`scale_by_adam`: field for field Optax's ``ScaleByAdamState``."""

    count: jax.Array  # type: ignore[assignment]  # t: steps taken, int32 scalar; saturates at int32 max.
    mu: optax.Updates  # v_t: leaky average of gradients (first moment); params' shape, mu_dtype or params' dtype.
    nu: optax.Updates  # s_t: leaky average of |g|^2 (second moment); params' shape, real, nu_dtype or the policy's.


class ScaleByAmsgradState(NamedTuple):
    """State of :func:`scale_by_adam` with ``amsgrad`` set: Optax's ``ScaleByAmsgradState``."""

    count: jax.Array  # type: ignore[assignment]  # t: steps taken, int32 scalar; saturates at int32 max.
    mu: optax.Updates  # v_t: leaky average of gradients (first moment).
    nu: optax.Updates  # s_t: leaky average of |g|^2 (second moment).
    nu_max: optax.Updates  # running maximum of s_t ("raw") or of s^_t ("corrected"); like nu.


AmsgradMode = Literal["raw", "corrected"]  # Which running maximum AMSGrad divides by.


class _Constants(NamedTuple):
    """Adam's per-step constants, in the leaves' compute dtype: computed once per step, not per leaf."""

    b1: jax.Array  # beta_1.
    b2: jax.Array  # beta_2.
    eps: jax.Array  # epsilon, outside the root (eps_hat: epsilon-hat / sqrt(1 - beta_2^t)).
    eps_root: jax.Array  # epsilon_root, inside the root.
    correction1: jax.Array  # 1 - beta_1^t.
    correction2: jax.Array  # 1 - beta_2^t.
    ahead: jax.Array  # 1 - beta_1^(t+1): the Nesterov look-ahead's correction (unused without it).


def scale_by_adam(
    *,
    b1: ArrayLike = 0.9,
    b2: ArrayLike = 0.999,
    eps: ArrayLike = 1e-8,
    eps_root: ArrayLike = 0.0,
    initial_mu: ArrayLike = 0.0,
    initial_nu: ArrayLike = 0.0,
    nesterov: bool = False,
    eps_hat: bool = False,
    amsgrad: AmsgradMode | None = None,
    mu_dtype: _checks.StateDtype = None,
    nu_dtype: _checks.StateDtype = None,
    state_rounding: _checks.StateRounding = "nearest",
    rounding_seed: ArrayLike = 0,
) -> optax.GradientTransformationExtraArgs:
    """Adam's direction ``v^_t / (sqrt(s^_t + eps_root) + eps)``, without learning rate or sign; see :func:`adam`.

    Args:
      b1: :math:`\\beta_1`, forgetting rate of the first moment, in [0, 1) (default ``0.9``).
      b2: :math:`\\beta_2`, forgetting rate of the second moment, in [0, 1) (default ``0.999``).
      eps: :math:`\\epsilon`, added outside the square root (default ``1e-8``).
      eps_root: :math:`\\epsilon_{root}`, added inside the square root (default ``0.0``).
      initial_mu: :math:`v_0` (default ``0.0``).
      initial_nu: :math:`s_0`, >= 0 (default ``0.0``).
      nesterov: Optax's Nesterov form, ``b1 v_t / (1 - b1^{t+1}) + (1 - b1) g_t / (1 - b1^t)`` in place of
        :math:`\\hat v_t` (default ``False``).
      eps_hat: read ``eps`` as the paper's epsilon-hat of its "efficient" form (end of section 2),
        ``sqrt(1 - b2^t) / (1 - b1^t) * v_t / (sqrt(s_t) + eps)``: Keras's ``epsilon`` (default ``False``).
      amsgrad: ``"raw"`` divides by the running maximum of the raw ``s_t``, corrected at the current step
        (PyTorch, Keras); ``"corrected"`` by the running maximum of ``s^_t`` (Optax's ``amsgrad``); the state
        is then :class:`ScaleByAmsgradState` (default ``None``).
      mu_dtype: dtype (or :func:`~adaptive_tx.quantized`) of ``mu`` (default: the params'); a real one for complex
        params is refused (it would drop the imaginary part).
      nu_dtype: dtype (or :func:`~adaptive_tx.quantized`) of ``nu`` and ``nu_max`` (default: float32 for 16-bit params,
        else the params' real dtype).
      state_rounding: ``"nearest"`` (default) or ``"stochastic"``: see :class:`StochasticRoundingState`.
      rounding_seed: the seed of stochastic rounding (default ``0``).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its state is Optax's (``count, mu, nu``).

    Examples:
      >>> import jax.numpy as jnp
      >>> import adaptive_tx as atx
      >>> tx = atx.scale_by_adam()
      >>> g = jnp.array([0.5, -2.0])
      >>> direction, state = tx.update(g, tx.init(g))  # t = 1: v^ = g and s^ = g^2, so about sign(g).
      >>> print(*(f"{d:.6f}" for d in direction), int(state.count))
      1.000000 -1.000000 1
    """
    _checks.check_decay("b1", b1)
    _checks.check_decay("b2", b2)
    _checks.check_non_negative("eps", eps)
    _checks.check_non_negative("eps_root", eps_root)
    _checks.check_finite("initial_mu", initial_mu)
    _checks.check_non_negative("initial_nu", initial_nu)
    _checks.check_bool("nesterov", nesterov)
    _checks.check_bool("eps_hat", eps_hat)
    _checks.check_dtype("mu_dtype", mu_dtype)
    _checks.check_dtype("nu_dtype", nu_dtype)
    _checks.check_choice("amsgrad", amsgrad, AmsgradMode | None)
    fields = {
        "mu": _leafwise.Field(initial_mu, dtype=mu_dtype),
        "nu": _leafwise.Field(initial_nu, squared=True, dtype=nu_dtype),
    }
    if amsgrad is not None:
        fields["nu_max"] = fields["nu"]

    def constants(dtype, count) -> _Constants:
        b1_, b2_, eps_, eps_root_ = _leafwise.cast(dtype, b1, b2, eps, eps_root)
        correction2 = _math.bias_correction_factor(b2_, count, dtype)
        return _Constants(
            b1=b1_,
            b2=b2_,
            eps=eps_ / jnp.sqrt(correction2) if eps_hat else eps_,  # Keras's step, in the corrected variables.
            eps_root=eps_root_,
            correction1=_math.bias_correction_factor(b1_, count, dtype),
            correction2=correction2,
            ahead=_math.bias_correction_factor(b1_, _leafwise.next_count(count), dtype),
        )

    def step(c: _Constants, g, mu, nu, nu_max=None, *, stored):
        mu = _math.leaky_average(mu, g, c.b1)  # v_t: Momentum's velocity.
        nu = _math.leaky_average(nu, _math.square(g), c.b2)  # s_t: RMSprop's mean square.
        if amsgrad is None:
            mu, nu = stored(mu, nu)
        else:  # AMSGrad's running maximum, of s_t ("raw") or of s^_t ("corrected").
            largest = nu if amsgrad == "raw" else _math.unbias(nu, c.correction2)
            mu, nu, nu_max = stored(mu, nu, jnp.maximum(nu_max, largest))
        mu_hat = _math.unbias(mu, c.correction1)  # v^_t.
        if nesterov:  # The velocity one step ahead, on the same gradient.
            ahead = _math.unbias(_math.scaled(mu, c.b1), c.ahead)
            mu_hat = ahead + _math.unbias(_math.scaled(g, 1 - c.b1), c.correction1)
        if amsgrad == "corrected":
            nu_hat = nu_max
        else:
            nu_hat = _math.unbias(nu if amsgrad is None else nu_max, c.correction2)  # s^_t.
        direction = _math.over_root(mu_hat, nu_hat, inside=c.eps_root, outside=c.eps)  # v^_t / (sqrt(s^_t) + eps).
        return (direction, mu, nu) if amsgrad is None else (direction, mu, nu, nu_max)

    state_type = ScaleByAdamState if amsgrad is None else ScaleByAmsgradState
    return _leafwise.transformation(state_type, fields, step, constants, rounding=state_rounding, seed=rounding_seed)


def adam(
    learning_rate: optax.ScalarOrSchedule,
    *,
    b1: ArrayLike = 0.9,
    b2: ArrayLike = 0.999,
    eps: ArrayLike = 1e-8,
    eps_root: ArrayLike = 0.0,
    initial_mu: ArrayLike = 0.0,
    initial_nu: ArrayLike = 0.0,
    nesterov: bool = False,
    eps_hat: bool = False,
    amsgrad: AmsgradMode | None = None,
    mu_dtype: _checks.StateDtype = None,
    nu_dtype: _checks.StateDtype = None,
    state_rounding: _checks.StateRounding = "nearest",
    rounding_seed: ArrayLike = 0,
) -> optax.GradientTransformationExtraArgs:
    r"""Adam, as the lecture (and the paper's Algorithm 1) writes it.

    .. math::
        v_t &= \beta_1 v_{t-1} + (1 - \beta_1)\, g_t, \qquad
        s_t = \beta_2 s_{t-1} + (1 - \beta_2)\, g_t^2 \\
        \hat v_t &= \frac{v_t}{1 - \beta_1^t}, \qquad \hat s_t = \frac{s_t}{1 - \beta_2^t} \\
        w_t &= w_{t-1} - \frac{\eta}{\sqrt{\hat s_t + \epsilon_{root}} + \epsilon}\, \hat v_t

    Momentum's velocity divided by RMSprop's root mean square. The bias correction undoes the pull of the
    zero initial values: on a constant gradient every step is exactly :math:`\eta` from :math:`t = 1`.
    :math:`\epsilon` sits outside the root (the paper's :math:`\epsilon`, not Keras's
    :math:`\hat\epsilon`); :math:`\epsilon_{root}` inside it. The state is Optax's ``ScaleByAdamState``:
    ``mu`` is :math:`v_t`, ``nu`` is :math:`s_t`, so Optax's tools and checkpoints find them by name.

    Args:
      learning_rate: :math:`\eta`, a float or an Optax schedule ``step -> float``.
      b1: :math:`\beta_1`, forgetting rate of the first moment, in [0, 1) (default ``0.9``).
      b2: :math:`\beta_2`, forgetting rate of the second moment, in [0, 1) (default ``0.999``).
      eps: :math:`\epsilon`, added outside the square root (default ``1e-8``).
      eps_root: :math:`\epsilon_{root}`, added inside the square root (default ``0.0``).
      initial_mu: :math:`v_0`, the first moment's starting value (default ``0.0``).
      initial_nu: :math:`s_0`, the second moment's starting value (default ``0.0``).
      nesterov: Nesterov's look-ahead on the first moment, as ``optax.adam(nesterov=True)`` (default ``False``).
      eps_hat: read ``eps`` as the paper's (and Keras's) epsilon-hat (default ``False``).
      amsgrad: ``None``, ``"raw"`` (PyTorch's and Keras's AMSGrad) or ``"corrected"`` (Optax's) (default
        ``None``).
      mu_dtype: dtype (or :func:`~adaptive_tx.quantized`) of the first moment (default: the params'); a real one for
        complex params is refused (it would drop the imaginary part).
      nu_dtype: dtype (or :func:`~adaptive_tx.quantized`) of the second moment (default: float32 for 16-bit params, else
        the params' real dtype).
      state_rounding: ``"nearest"`` (default) or ``"stochastic"``: see :class:`StochasticRoundingState`.
      rounding_seed: the seed of stochastic rounding (default ``0``).

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

    Examples:
      >>> import jax
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import adaptive_tx as atx
      >>> tx = atx.adam(learning_rate=0.1)
      >>> g = jnp.array([1.0, 100.0])  # A constant gradient, on two scales.
      >>> state = tx.init(g)
      >>> for t in range(1, 4):  # Bias correction: exactly the learning rate, from the first step.
      ...     updates, state = tx.update(g, state)
      ...     print(t, *(f"{-u:.4f}" for u in updates))
      1 0.1000 0.1000
      2 0.1000 0.1000
      3 0.1000 0.1000
      >>> f = lambda w: jnp.sum(w ** 2)  # And in a training loop:
      >>> w = jnp.array([1.0, 2.0, 3.0])
      >>> state = tx.init(w)
      >>> for _ in range(3):
      ...     updates, state = tx.update(jax.grad(f)(w), state, w)
      ...     w = optax.apply_updates(w, updates)
      ...     print(f"{f(w):.3e}")
      1.283e+01
      1.172e+01
      1.068e+01

    References:
      Kingma & Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015. https://arxiv.org/abs/1412.6980

      Reddi, Kale & Kumar, *On the Convergence of Adam and Beyond*, ICLR 2018.
      https://openreview.net/forum?id=ryQu7f-RZ
    """
    block = scale_by_adam(
        b1=b1,
        b2=b2,
        eps=eps,
        eps_root=eps_root,
        initial_mu=initial_mu,
        initial_nu=initial_nu,
        nesterov=nesterov,
        eps_hat=eps_hat,
        amsgrad=amsgrad,
        mu_dtype=mu_dtype,
        nu_dtype=nu_dtype,
        state_rounding=state_rounding,
        rounding_seed=rounding_seed,
    )
    return _leafwise.descend(block, learning_rate)
