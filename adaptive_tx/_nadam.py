"""NAdam: Adam with Nesterov momentum and Dozat's warming momentum schedule (beyond the lecture)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike, DTypeLike

from adaptive_tx import _checks, _leafwise, _math


class ScaleByNadamState(NamedTuple):
    """State of :func:`scale_by_nadam`."""

    count: jax.Array  # type: ignore[assignment]  # t: steps taken, int32 scalar; saturates at int32 max.
    mu_product: jax.Array  # Pi_t = mu_1 ... mu_t, float scalar (float64 under jax_enable_x64); not in Optax's.
    mu: optax.Updates  # v_t: leaky average of gradients; params' shape, mu_dtype or the params' dtype.
    nu: optax.Updates  # s_t: leaky average of |g|^2; params' shape, real, nu_dtype or the policy's.


def scale_by_nadam(
    *,
    b1: ArrayLike = 0.9,
    b2: ArrayLike = 0.999,
    eps: ArrayLike = 1e-8,
    momentum_decay: ArrayLike = 4e-3,
    mu_dtype: DTypeLike | None = None,
    nu_dtype: DTypeLike | None = None,
    state_rounding: str = "nearest",
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
      mu_dtype: dtype of :math:`v_t` (default: the params').
      nu_dtype: dtype of :math:`s_t` (default: float32 for 16-bit params, else the params' real dtype).
      state_rounding: how new state values are rounded to a 16-bit state dtype (the ``*_dtype`` arguments):
        ``"nearest"`` (default) or ``"stochastic"``, unbiased random rounding that keeps small changes such
        as ``0.999 * s`` on average; the state is then ``StochasticRoundingState`` (this state and a key).
      rounding_seed: the seed of stochastic rounding's PRNG key (default ``0``): one seed, one trajectory.

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
        b1_, psi = _leafwise.cast(dtype, b1, momentum_decay)
        return b1_ * (1 - 0.5 * jnp.asarray(0.96, dtype) ** (t * psi))

    def schedule(count, mu_product):
        """mu_t, mu_{t+1} and their running products, once per step in the scalar state's precision."""
        t = count.astype(mu_product.dtype)
        mu, mu_next = momentum_at(t, mu_product.dtype), momentum_at(t + 1, mu_product.dtype)
        product = mu_product * mu
        per_step = {"mu_t": mu, "mu_next": mu_next, "product": product, "product_next": product * mu_next}
        return {"mu_product": product}, per_step

    def step(dtype, g, mu, nu, *, stored, count, mu_t, mu_next, product, product_next):
        b1_, b2_, eps_ = _leafwise.cast(dtype, b1, b2, eps)
        mu_t, mu_next, product, product_next = _leafwise.cast(dtype, mu_t, mu_next, product, product_next)
        mu, nu = stored(_math.leaky_average(mu, g, b1_), _math.leaky_average(nu, _math.square(g), b2_))
        nu_hat = nu / _math.bias_correction_factor(b2_, count, dtype)
        look_ahead = _math.scaled(mu, mu_next / (1 - product_next)) + _math.scaled(g, (1 - mu_t) / (1 - product))
        return _math.over_root(look_ahead, nu_hat, outside=eps_), mu, nu

    return _leafwise.transformation(
        ScaleByNadamState,
        step,
        fields,
        counted=True,
        scalars={"mu_product": 1.0},
        schedule=schedule,
        rounding=state_rounding,
        seed=rounding_seed,
    )
