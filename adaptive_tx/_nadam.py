"""NAdam: Adam with Nesterov momentum and Dozat's warming momentum schedule (beyond the lecture)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from adaptive_tx import _moments


class ScaleByNadamState(NamedTuple):
    """State of :func:`scale_by_nadam`."""

    count: jax.Array  # type: ignore[assignment]  # t: steps taken, int32 scalar; saturates at int32 max.
    mu_product: jax.Array  # Pi_t = mu_1 ... mu_t, float scalar (float64 under jax_enable_x64).
    v: optax.Updates  # v_t: leaky average of gradients; shape of params, dtype mu_dtype or the params'.
    s: optax.Updates  # s_t: leaky average of squared gradients; shape of params, dtype nu_dtype or the params'.


def scale_by_nadam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    momentum_decay: float = 4e-3,
    *,
    mu_dtype: Any = None,
    nu_dtype: Any = None,
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
      nu_dtype: dtype of :math:`s_t` (default: the params').

    Returns:
      An ``optax.GradientTransformationExtraArgs``.

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
    _moments.check_decay("b1", b1)
    _moments.check_decay("b2", b2)
    _moments.check_non_negative("eps", eps)
    if _moments.check_number("momentum_decay", momentum_decay) and not momentum_decay >= 0:
        raise ValueError(f"momentum_decay must be >= 0 (inf allowed), got {momentum_decay!r}.")
    _moments.check_dtype("mu_dtype", mu_dtype)
    _moments.check_dtype("nu_dtype", nu_dtype)

    def momentum_at(t, dtype):
        b1_, psi = _moments.cast(dtype, b1, momentum_decay)
        return b1_ * (1 - 0.5 * jnp.asarray(0.96, dtype) ** (t * psi))

    def init_fn(params):
        return ScaleByNadamState(
            count=_moments.init_count(),
            mu_product=jnp.ones([], jnp.result_type(float)),
            v=_moments.full_like_params(params, 0.0, mu_dtype),
            s=_moments.full_like_params(params, 0.0, nu_dtype),
        )

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args  # Unused.
        count = _moments.next_count(state.count)
        scalar = state.mu_product.dtype
        t = count.astype(scalar)
        mu, mu_next = momentum_at(t, scalar), momentum_at(t + 1, scalar)
        product = state.mu_product * mu
        product_next = product * mu_next

        def step(dtype, g, v, s):
            b1_, b2_, eps_ = _moments.cast(dtype, b1, b2, eps)
            mu_, mu_next_, product_, product_next_ = _moments.cast(dtype, mu, mu_next, product, product_next)
            v = _moments.leaky_average(v, g, b1_)
            s = _moments.leaky_average(s, g * g, b2_)
            s_hat = s / _moments.bias_correction_factor(b2_, count, dtype)
            look_ahead = mu_next_ * v / (1 - product_next_) + (1 - mu_) * g / (1 - product_)
            return _moments.safe_divide(look_ahead, jnp.sqrt(s_hat) + eps_), v, s

        directions, v, s = _moments.map_leaves(step, updates, state.v, state.s)
        return directions, ScaleByNadamState(count=count, mu_product=product, v=v, s=s)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
