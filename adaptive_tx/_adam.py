"""Adam: Momentum's average of gradients over RMSprop's average of squares, both bias-corrected."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from adaptive_tx import _moments


class ScaleByAdamState(NamedTuple):
    """State of :func:`scale_by_adam`."""

    count: jax.Array  # type: ignore[assignment]  # t: steps taken, int32 scalar; saturates at int32 max.
    v: optax.Updates  # v_t: leaky average of gradients (first moment); shape and dtype of params.
    s: optax.Updates  # s_t: leaky average of squared gradients (second moment); shape and dtype of params.


class ScaleByAmsgradState(NamedTuple):
    """State of :func:`scale_by_adam` with ``amsgrad`` set."""

    count: jax.Array  # type: ignore[assignment]  # t: steps taken, int32 scalar; saturates at int32 max.
    v: optax.Updates  # v_t: leaky average of gradients (first moment); shape and dtype of params.
    s: optax.Updates  # s_t: leaky average of squared gradients (second moment); shape and dtype of params.
    s_max: optax.Updates  # running maximum of s_t ("raw") or of s^_t ("corrected"); shape and dtype of params.


AMSGRAD_MODES = (None, "raw", "corrected")


def scale_by_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    initial_mu: float = 0.0,
    initial_nu: float = 0.0,
    *,
    eps_hat: bool = False,
    amsgrad: str | None = None,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
) -> optax.GradientTransformationExtraArgs:
    """Adam's direction ``v^_t / (sqrt(s^_t + eps_root) + eps)``, without learning rate or sign; see :func:`adam`.

    Knobs beyond the lecture:

    - ``eps_hat=True`` reads ``eps`` as the paper's epsilon-hat of its "efficient" form (end of section 2),
      ``sqrt(1 - b2^t) / (1 - b1^t) * v_t / (sqrt(s_t) + eps)``, which is Keras's ``epsilon``; it equals
      the default form with ``eps * sqrt(1 - b2^t)`` in place of ``eps``.
    - ``amsgrad="raw"`` divides by the running maximum of the raw ``s_t``, bias-corrected at the current
      step (Reddi et al. 2018 as PyTorch and Keras compute it); ``amsgrad="corrected"`` by the running
      maximum of the corrected ``s^_t`` (Optax's ``amsgrad``). Either way the state is
      :class:`ScaleByAmsgradState`.
    - ``mu_dtype`` and ``nu_dtype`` store the first moment ``v_t`` and the second moments (``s_t`` and its
      maximum) in those dtypes (default: the params'), e.g. float32 moments for bfloat16 params.
    """
    _moments.check_decay("b1", b1)
    _moments.check_decay("b2", b2)
    _moments.check_non_negative("eps", eps)
    _moments.check_non_negative("eps_root", eps_root)
    _moments.check_finite("initial_mu", initial_mu)
    _moments.check_non_negative("initial_nu", initial_nu)
    _moments.check_bool("eps_hat", eps_hat)
    _moments.check_dtype("mu_dtype", mu_dtype)
    _moments.check_dtype("nu_dtype", nu_dtype)
    dtypes = {"v": mu_dtype, "s": nu_dtype, "s_max": nu_dtype}
    if amsgrad not in AMSGRAD_MODES:
        raise ValueError(f"amsgrad must be one of {AMSGRAD_MODES}, got {amsgrad!r}.")

    def moments(dtype, g, v, s, count):
        """The new moments, their bias-correction factors, and eps as the denominator adds it."""
        b1_, b2_, eps_ = _moments.cast(dtype, b1, b2, eps)
        v = _moments.leaky_average(v, g, b1_)  # Momentum's velocity.
        s = _moments.leaky_average(s, g * g, b2_)  # RMSprop's mean square.
        correction1 = _moments.bias_correction_factor(b1_, count, dtype)
        correction2 = _moments.bias_correction_factor(b2_, count, dtype)
        if eps_hat:  # eps-hat / sqrt(1 - b2^t): the same step as Keras's, in the corrected variables.
            eps_ = eps_ / jnp.sqrt(correction2)
        return v, s, correction1, correction2, eps_

    def direction(dtype, v_hat, s_hat, eps_):
        (eps_root_,) = _moments.cast(dtype, eps_root)
        return _moments.safe_divide(v_hat, _moments.rms(s_hat, eps_root_) + eps_)

    def step(dtype, g, v, s, *, count):
        v, s, correction1, correction2, eps_ = moments(dtype, g, v, s, count)
        return direction(dtype, v / correction1, s / correction2, eps_), v, s

    def amsgrad_step(dtype, g, v, s, s_max, *, count):
        v, s, correction1, correction2, eps_ = moments(dtype, g, v, s, count)
        if amsgrad == "raw":
            s_max = jnp.maximum(s_max, s)
            s_hat = s_max / correction2
        else:
            s_max = jnp.maximum(s_max, s / correction2)
            s_hat = s_max
        return direction(dtype, v / correction1, s_hat, eps_), v, s, s_max

    if amsgrad is None:
        return _moments.leafwise_transformation(
            ScaleByAdamState, step, counted=True, dtypes=dtypes, v=initial_mu, s=initial_nu
        )
    return _moments.leafwise_transformation(
        ScaleByAmsgradState, amsgrad_step, counted=True, dtypes=dtypes, v=initial_mu, s=initial_nu, s_max=initial_nu
    )


def adam(
    learning_rate: optax.ScalarOrSchedule,
    *,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    initial_mu: float = 0.0,
    initial_nu: float = 0.0,
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
    :math:`\hat\epsilon`); :math:`\epsilon_{root}` inside it, for differentiating through the update.

    Args:
      learning_rate: :math:`\eta`, a float or an Optax schedule ``step -> float``.
      b1: :math:`\beta_1`, forgetting rate of the first moment, in [0, 1) (default ``0.9``).
      b2: :math:`\beta_2`, forgetting rate of the second moment, in [0, 1) (default ``0.999``).
      eps: :math:`\epsilon`, added outside the square root (default ``1e-8``).
      eps_root: :math:`\epsilon_{root}`, added inside the square root (default ``0.0``).
      initial_mu: :math:`v_0`, the first moment's starting value (default ``0.0``).
      initial_nu: :math:`s_0`, the second moment's starting value (default ``0.0``).

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
    """
    block = scale_by_adam(b1=b1, b2=b2, eps=eps, eps_root=eps_root, initial_mu=initial_mu, initial_nu=initial_nu)
    return _moments.descend(block, learning_rate)
