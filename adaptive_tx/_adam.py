"""Adam: Momentum's average of gradients over RMSprop's average of squares, both bias-corrected."""

from __future__ import annotations

from typing import NamedTuple

import jax
import optax

from adaptive_tx import _moments


class ScaleByAdamState(NamedTuple):
    """State of :func:`scale_by_adam`."""

    count: jax.Array  # type: ignore[assignment]  # t: steps taken, int32 scalar; saturates at int32 max.
    v: optax.Updates  # v_t: leaky average of gradients (first moment); shape and dtype of params.
    s: optax.Updates  # s_t: leaky average of squared gradients (second moment); shape and dtype of params.


def scale_by_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    eps_root: float = 0.0,
    initial_mu: float = 0.0,
    initial_nu: float = 0.0,
) -> optax.GradientTransformationExtraArgs:
    """Adam's direction ``v^_t / (sqrt(s^_t + eps_root) + eps)``, without learning rate or sign; see :func:`adam`."""
    _moments.check_decay("b1", b1)
    _moments.check_decay("b2", b2)
    _moments.check_non_negative("eps", eps)
    _moments.check_non_negative("eps_root", eps_root)
    _moments.check_finite("initial_mu", initial_mu)
    _moments.check_non_negative("initial_nu", initial_nu)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args  # Unused.
        count = _moments.next_count(state.count)

        def step(dtype, g, v, s):
            b1_, b2_, eps_, eps_root_ = _moments.cast(dtype, b1, b2, eps, eps_root)
            v = _moments.leaky_average(v, g, b1_)  # Momentum's velocity.
            s = _moments.leaky_average(s, g * g, b2_)  # RMSprop's mean square.
            v_hat = v / _moments.bias_correction_factor(b1_, count, dtype)
            s_hat = s / _moments.bias_correction_factor(b2_, count, dtype)
            return _moments.safe_divide(v_hat, _moments.rms(s_hat, eps_root_) + eps_), v, s

        directions, v, s = _moments.map_leaves(step, updates, state.v, state.s)
        return directions, ScaleByAdamState(count=count, v=v, s=s)

    def init_fn(params):
        return ScaleByAdamState(
            count=_moments.init_count(),
            v=_moments.full_like_params(params, initial_mu),
            s=_moments.full_like_params(params, initial_nu),
        )

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


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
