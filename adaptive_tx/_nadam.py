"""NAdam: Adam with Nesterov momentum and Dozat's warming momentum schedule (beyond the lecture)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from adaptive_tx import _checks, _leafwise, _math


class ScaleByNadamState(NamedTuple):
    """State of :func:`scale_by_nadam`."""

    count: jax.Array  # type: ignore[assignment]  # t: steps taken, int32 scalar; saturates at int32 max.
    mu_product: jax.Array  # Pi_t = mu_1 ... mu_t, float scalar (float64 under jax_enable_x64); not in Optax's.
    mu: optax.Updates  # v_t: leaky average of gradients; params' shape, mu_dtype or the params' dtype.
    nu: optax.Updates  # s_t: leaky average of |g|^2; params' shape, real, nu_dtype or the policy's.


class _Constants(NamedTuple):
    """NAdam's per-step constants, in the leaves' compute dtype."""

    b1: jax.Array  # beta_1.
    b2: jax.Array  # beta_2.
    eps: jax.Array  # epsilon, outside the root.
    correction2: jax.Array  # 1 - beta_2^t.
    gradient_weight: jax.Array  # (1 - mu_t) / (1 - Pi_t): the look-ahead's weight on g_t.
    momentum_weight: jax.Array  # mu_{t+1} / (1 - Pi_{t+1}): its weight on v_t.


def scale_by_nadam(
    *,
    b1: ArrayLike = 0.9,
    b2: ArrayLike = 0.999,
    eps: ArrayLike = 1e-8,
    momentum_decay: ArrayLike = 4e-3,
    mu_dtype: _checks.StateDtype = None,
    nu_dtype: _checks.StateDtype = None,
    state_rounding: _checks.StateRounding = "nearest",
    rounding_seed: ArrayLike = 0,
) -> optax.GradientTransformationExtraArgs:
    r"""NAdam's direction, without learning rate or sign: Adam with a Nesterov look-ahead on the momentum.

    .. math::
        \mu_t &= \beta_1 \left(1 - \tfrac12\, 0.96^{t \psi}\right), \qquad \Pi_t = \prod_{k \le t} \mu_k \\
        v_t &= \beta_1 v_{t-1} + (1 - \beta_1)\, g_t, \qquad s_t = \beta_2 s_{t-1} + (1 - \beta_2)\, g_t^2 \\
        d_t &= \frac{\mu_{t+1} v_t / (1 - \Pi_{t+1}) + (1 - \mu_t)\, g_t / (1 - \Pi_t)}
                    {\sqrt{s_t / (1 - \beta_2^t)} + \epsilon}

    ``momentum_decay`` :math:`\psi` picks the framework: PyTorch's ``NAdam`` uses 0.004, Keras's ``Nadam``
    1.0, and ``float("inf")`` makes :math:`\mu_t = \beta_1`, Optax's ``nadam``. Chain it with a learning rate
    (``optax.chain(atx.scale_by_nadam(), optax.scale(-lr))``), or use ``adaptive_tx.compat.torch.nadam`` /
    ``adaptive_tx.compat.keras.nadam``.

    Args:
      b1: :math:`\beta_1`, in [0, 1) (default ``0.9``).
      b2: :math:`\beta_2`, in [0, 1) (default ``0.999``).
      eps: :math:`\epsilon`, outside the root (default ``1e-8``).
      momentum_decay: :math:`\psi` >= 0, possibly ``inf`` (default ``4e-3``, PyTorch's).
      mu_dtype: dtype (or :func:`~adaptive_tx.quantized`) of :math:`v_t` (default: the params'); a real one for complex
        params is refused (it would drop the imaginary part).
      nu_dtype: dtype (or :func:`~adaptive_tx.quantized`) of :math:`s_t` (default: float32 for 16-bit params, else the
        params' real dtype).
      state_rounding: ``"nearest"`` (default) or ``"stochastic"``: see :class:`StochasticRoundingState`.
      rounding_seed: the seed of stochastic rounding (default ``0``).

    Returns:
      An ``optax.GradientTransformationExtraArgs``; its state has Optax's ``count, mu, nu`` and, beyond
      Optax's, the product :math:`\Pi_t` of the momentum schedule, ``mu_product``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> import adaptive_tx as atx
      >>> tx = optax.chain(atx.scale_by_nadam(), optax.scale(-0.1))
      >>> g = jnp.array([1.0, 100.0])  # A constant gradient, on two scales.
      >>> state = tx.init(g)
      >>> for t in range(1, 4):  # Scale-free like Adam; the look-ahead makes the first steps larger.
      ...     updates, state = tx.update(g, state)
      ...     print(t, *(f"{-u:.4f}" for u in updates))
      1 0.1056 0.1056
      2 0.0784 0.0784
      3 0.0732 0.0732

    References:
      Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR 2016 workshop.
      https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ
    """
    _checks.check_decay("b1", b1)
    _checks.check_decay("b2", b2)
    _checks.check_non_negative("eps", eps)
    _checks.check_non_negative("momentum_decay", momentum_decay, allow_inf=True)
    _checks.check_dtype("mu_dtype", mu_dtype)
    _checks.check_dtype("nu_dtype", nu_dtype)
    fields = {
        "mu": _leafwise.Field(0.0, dtype=mu_dtype),
        "nu": _leafwise.Field(0.0, squared=True, dtype=nu_dtype),
    }

    def momentum_at(t, dtype):
        """mu_t = beta_1 (1 - 0.96^(t psi) / 2), in the scalar state's precision."""
        b1_, psi = _leafwise.cast(dtype, b1, momentum_decay)
        return b1_ * (1 - 0.5 * jnp.asarray(0.96, dtype) ** (t.astype(dtype) * psi))

    def advance(count, mu_product):
        return mu_product * momentum_at(count, mu_product.dtype)  # Pi_t = Pi_{t-1} mu_t.

    def constants(dtype, count, mu_product) -> _Constants:
        mu_t, mu_next = momentum_at(count, mu_product.dtype), momentum_at(count + 1, mu_product.dtype)
        gradient_weight = (1 - mu_t) / (1 - mu_product)
        momentum_weight = mu_next / (1 - mu_product * mu_next)
        b1_, b2_, eps_ = _leafwise.cast(dtype, b1, b2, eps)
        return _Constants(
            b1=b1_,
            b2=b2_,
            eps=eps_,
            correction2=_math.bias_correction_factor(b2_, count, dtype),
            gradient_weight=gradient_weight.astype(dtype),
            momentum_weight=momentum_weight.astype(dtype),
        )

    def step(c: _Constants, g, mu, nu, *, stored):
        mu, nu = stored(_math.leaky_average(mu, g, c.b1), _math.leaky_average(nu, _math.square(g), c.b2))
        look_ahead = _math.scaled(mu, c.momentum_weight) + _math.scaled(g, c.gradient_weight)  # d_t's numerator.
        return _math.over_root(look_ahead, _math.unbias(nu, c.correction2), outside=c.eps), mu, nu

    scalars = {"mu_product": _leafwise.Scalar(1.0, advance)}
    return _leafwise.transformation(
        ScaleByNadamState, fields, step, constants, scalars=scalars, rounding=state_rounding, seed=rounding_seed
    )
