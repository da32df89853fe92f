"""PyTorch's optimizers, exactly: ``torch.optim``'s argument names and defaults, as Optax transformations.

Each function takes the arguments of the ``torch.optim`` class of the same name (without ``params``) and
returns a full ``optax.GradientTransformationExtraArgs``, learning rate and sign included: the trajectory
matches PyTorch 2.13's to float64 rounding (``tests/test_parity.py``). ``lr`` may also be an Optax schedule,
read at the step count like a ``torch.optim.lr_scheduler`` stepped after each ``optimizer.step()``.

``maximize`` works (the gradient is negated first, as in PyTorch). ``foreach``, ``fused``, ``capturable``
and ``differentiable`` choose how PyTorch executes a step, not what it computes: under ``jax.jit`` the
step is one fused XLA program and JAX differentiates through it anyway, so they are accepted (``None``
or a bool) and change nothing.

Example:
  >>> import adaptive_tx.compat.torch as tt
  >>> tx = tt.adam(lr=1e-3, betas=(0.9, 0.99), weight_decay=1e-4)  # torch.optim.Adam(params, ...)
  >>> tx = tt.sgd(lr=0.1, momentum=0.9, nesterov=True)  # torch.optim.SGD(params, ...)
"""

from __future__ import annotations

from typing import Any

import optax

from adaptive_tx import _checks
from adaptive_tx.compat import _build

__all__ = ["adadelta", "adagrad", "adam", "adamw", "nadam", "rmsprop", "sgd"]


def _execution_options(options: dict[str, Any]) -> None:
    """PyTorch's execution switches, by name: accepted when None or a bool; they do not change the numbers."""
    for name, value in options.items():
        if value is not None and not isinstance(value, bool):
            raise TypeError(f"{name} must be None or a bool, got {value!r}.")


def _around(weight_decay: Any, *, maximize: bool, decoupled: bool = False) -> _build.Around:
    """PyTorch's wrapping of the block: ``maximize``, then coupled L2 unless ``decoupled`` (AdamW's decay)."""
    return _build.Around(
        maximize=maximize,
        weight_decay=weight_decay,
        decoupled=decoupled and not _build.is_zero(weight_decay),  # No decay: nothing to decouple.
        lr_in_buffer=False,  # The learning rate is applied after the momentum buffer.
    )


def _betas(betas: Any) -> tuple[Any, Any]:
    if not (isinstance(betas, tuple | list) and len(betas) == 2):
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}.")
    return betas[0], betas[1]


def adagrad(
    lr: optax.ScalarOrSchedule = 1e-2,
    lr_decay: float = 0,
    weight_decay: float = 0,
    initial_accumulator_value: float = 0,
    eps: float = 1e-10,
    foreach: bool | None = None,
    *,
    maximize: bool = False,
    differentiable: bool = False,
    fused: bool | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""``torch.optim.Adagrad``.

    .. math::
        g \leftarrow g + \lambda p, \quad s_t = s_{t-1} + g^2, \quad
        p_t = p_{t-1} - \frac{\gamma}{1 + (t-1)\eta}\, \frac{g}{\sqrt{s_t} + \epsilon}

    Args:
      lr: :math:`\gamma` (default ``1e-2``), a float or an Optax schedule.
      lr_decay: :math:`\eta` (default ``0``).
      weight_decay: :math:`\lambda`, coupled L2 (default ``0``).
      initial_accumulator_value: :math:`s_0` (default ``0``).
      eps: :math:`\epsilon`, outside the root (default ``1e-10``).
      foreach, differentiable, fused: accepted, no effect (see the module docstring).
      maximize: ascend instead of descend (default ``False``).

    Returns:
      ``torch.optim.Adagrad`` as an ``optax.GradientTransformationExtraArgs``.

    References:
      https://docs.pytorch.org/docs/stable/generated/torch.optim.Adagrad.html
    """
    _execution_options(dict(foreach=foreach, differentiable=differentiable, fused=fused))
    _build.check_args(
        rate=("lr", lr),
        non_negative=dict(
            lr_decay=lr_decay, weight_decay=weight_decay, initial_accumulator_value=initial_accumulator_value, eps=eps
        ),
        flags=dict(maximize=maximize),
    )
    return _build.adagrad(
        lr,
        eps=eps,
        initial_accumulator=initial_accumulator_value,
        eps_in_sqrt=False,
        lr_decay=lr_decay,
        around=_around(weight_decay, maximize=maximize),
    )


def rmsprop(
    lr: optax.ScalarOrSchedule = 1e-2,
    alpha: float = 0.99,
    eps: float = 1e-8,
    weight_decay: float = 0,
    momentum: float = 0,
    centered: bool = False,
    capturable: bool = False,
    foreach: bool | None = None,
    maximize: bool = False,
    differentiable: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""``torch.optim.RMSprop``.

    .. math::
        g \leftarrow g + \lambda p, \quad v_t = \alpha v_{t-1} + (1-\alpha) g^2, \quad
        \bar g_t = \alpha \bar g_{t-1} + (1-\alpha) g \text{ (centered)}, \\
        d_t = \frac{g}{\sqrt{v_t - \bar g_t^2} + \epsilon}, \quad b_t = \mu b_{t-1} + d_t, \quad
        p_t = p_{t-1} - \gamma\, b_t \quad (b_t = d_t \text{ if } \mu = 0)

    Args:
      lr: :math:`\gamma` (default ``1e-2``), a float or an Optax schedule (applied outside the momentum
        buffer, as PyTorch does).
      alpha: :math:`\alpha` (default ``0.99``).
      eps: :math:`\epsilon`, outside the root (default ``1e-8``).
      weight_decay: :math:`\lambda`, coupled L2 (default ``0``).
      momentum: :math:`\mu` (default ``0``).
      centered: subtract :math:`\bar g_t^2` (default ``False``).
      capturable, foreach, differentiable: accepted, no effect (see the module docstring).
      maximize: ascend instead of descend (default ``False``).

    Returns:
      ``torch.optim.RMSprop`` as an ``optax.GradientTransformationExtraArgs``.

    References:
      https://docs.pytorch.org/docs/stable/generated/torch.optim.RMSprop.html
    """
    _execution_options(dict(capturable=capturable, foreach=foreach, differentiable=differentiable))
    _build.check_args(
        rate=("lr", lr),
        decays=dict(alpha=alpha, momentum=momentum),
        non_negative=dict(eps=eps, weight_decay=weight_decay),
        flags=dict(centered=centered, maximize=maximize),
    )
    return _build.rmsprop(
        lr,
        decay=alpha,
        eps=eps,
        eps_in_sqrt=False,
        centered=centered,
        momentum=momentum,
        around=_around(weight_decay, maximize=maximize),
    )


def adadelta(
    lr: optax.ScalarOrSchedule = 1.0,
    rho: float = 0.9,
    eps: float = 1e-6,
    weight_decay: float = 0,
    foreach: bool | None = None,
    *,
    capturable: bool = False,
    maximize: bool = False,
    differentiable: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""``torch.optim.Adadelta``: the lecture's Adadelta (:func:`adaptive_tx.adadelta`) plus coupled L2.

    .. math::
        g \leftarrow g + \lambda p, \quad s_t = \rho s_{t-1} + (1-\rho) g^2, \quad
        \Delta_t = \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{s_t + \epsilon}}\, g, \quad
        u_t = \rho u_{t-1} + (1-\rho) \Delta_t^2, \quad p_t = p_{t-1} - \gamma \Delta_t

    Args:
      lr: :math:`\gamma` (default ``1.0``), a float or an Optax schedule.
      rho: :math:`\rho` (default ``0.9``).
      eps: :math:`\epsilon`, inside both roots (default ``1e-6``).
      weight_decay: :math:`\lambda`, coupled L2 (default ``0``).
      foreach, capturable, differentiable: accepted, no effect (see the module docstring).
      maximize: ascend instead of descend (default ``False``).

    Returns:
      ``torch.optim.Adadelta`` as an ``optax.GradientTransformationExtraArgs``.

    References:
      https://docs.pytorch.org/docs/stable/generated/torch.optim.Adadelta.html
    """
    _execution_options(dict(foreach=foreach, capturable=capturable, differentiable=differentiable))
    _build.check_args(
        rate=("lr", lr),
        decays=dict(rho=rho),
        non_negative=dict(eps=eps, weight_decay=weight_decay),
        flags=dict(maximize=maximize),
    )
    return _build.adadelta(lr, rho=rho, eps=eps, around=_around(weight_decay, maximize=maximize))


def sgd(
    lr: optax.ScalarOrSchedule = 1e-3,
    momentum: float = 0,
    dampening: float = 0,
    weight_decay: float = 0,
    nesterov: bool = False,
    *,
    maximize: bool = False,
    foreach: bool | None = None,
    differentiable: bool = False,
    fused: bool | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""``torch.optim.SGD``.

    .. math::
        g \leftarrow g + \lambda p, \quad b_1 = g_1, \quad b_t = \mu b_{t-1} + (1-\tau) g_t, \quad
        p_t = p_{t-1} - \gamma\, (g_t + \mu b_t \text{ if Nesterov else } b_t)

    The first step is undampened (PyTorch creates its buffer as a copy of the first gradient), so
    ``dampening=momentum`` is not the lecture's leaky average: use :func:`adaptive_tx.momentum` for that.

    Args:
      lr: :math:`\gamma` (default ``1e-3``), a float or an Optax schedule (outside the buffer).
      momentum: :math:`\mu` (default ``0``: plain SGD).
      dampening: :math:`\tau` (default ``0``).
      weight_decay: :math:`\lambda`, coupled L2 (default ``0``).
      nesterov: Nesterov's look-ahead; needs ``momentum > 0`` and ``dampening == 0`` (default ``False``).
      maximize: ascend instead of descend (default ``False``).
      foreach, differentiable, fused: accepted, no effect (see the module docstring).

    Returns:
      ``torch.optim.SGD`` as an ``optax.GradientTransformationExtraArgs``.

    References:
      https://docs.pytorch.org/docs/stable/generated/torch.optim.SGD.html
    """
    _execution_options(dict(foreach=foreach, differentiable=differentiable, fused=fused))
    _build.check_args(
        rate=("lr", lr),
        decays=dict(momentum=momentum, dampening=dampening),
        non_negative=dict(weight_decay=weight_decay),
        flags=dict(nesterov=nesterov, maximize=maximize),
    )
    # Checked on Python numbers only: arrays and traced values (optax.inject_hyperparams) pass unchecked.
    if nesterov and (
        (_checks.is_number(momentum) and momentum <= 0) or (_checks.is_number(dampening) and dampening != 0)
    ):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")
    return _build.sgd(
        lr,
        momentum=momentum,
        dampening=dampening,
        nesterov=nesterov,
        first_step_undampened=True,
        around=_around(weight_decay, maximize=maximize),
    )


def adam(
    lr: optax.ScalarOrSchedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0,
    amsgrad: bool = False,
    *,
    foreach: bool | None = None,
    maximize: bool = False,
    capturable: bool = False,
    differentiable: bool = False,
    fused: bool | None = None,
    decoupled_weight_decay: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""``torch.optim.Adam``: the paper's Algorithm 1 (eps outside the root, after bias correction).

    .. math::
        g \leftarrow g + \lambda p, \quad m_t = \beta_1 m_{t-1} + (1-\beta_1) g, \quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g^2, \\
        \hat v_t^{max} = \max(\hat v_{t-1}^{max}, v_t) \text{ (AMSGrad, raw)}, \quad
        p_t = p_{t-1} - \gamma \frac{m_t / (1-\beta_1^t)}{\sqrt{v_t / (1-\beta_2^t)} + \epsilon}

    Args:
      lr: :math:`\gamma` (default ``1e-3``), a float or an Optax schedule.
      betas: :math:`(\beta_1, \beta_2)` (default ``(0.9, 0.999)``).
      eps: :math:`\epsilon` (default ``1e-8``).
      weight_decay: :math:`\lambda`: coupled L2, or decoupled as in AdamW if ``decoupled_weight_decay``
        (default ``0``).
      amsgrad: divide by the running maximum of the raw :math:`v_t` (default ``False``).
      foreach, capturable, differentiable, fused: accepted, no effect (see the module docstring).
      maximize: ascend instead of descend (default ``False``).
      decoupled_weight_decay: :func:`adamw`'s decay (default ``False``).

    Returns:
      ``torch.optim.Adam`` as an ``optax.GradientTransformationExtraArgs``.

    References:
      https://docs.pytorch.org/docs/stable/generated/torch.optim.Adam.html
    """
    _execution_options(dict(foreach=foreach, capturable=capturable, differentiable=differentiable, fused=fused))
    b1, b2 = _betas(betas)
    _build.check_args(
        rate=("lr", lr),
        decays={"betas[0]": b1, "betas[1]": b2},
        non_negative=dict(eps=eps, weight_decay=weight_decay),
        flags=dict(amsgrad=amsgrad, maximize=maximize, decoupled_weight_decay=decoupled_weight_decay),
    )
    return _build.adam(
        lr,
        b1=b1,
        b2=b2,
        eps=eps,
        eps_hat=False,
        amsgrad="raw" if amsgrad else None,
        around=_around(weight_decay, maximize=maximize, decoupled=decoupled_weight_decay),
    )


def adamw(
    lr: optax.ScalarOrSchedule = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 1e-2,
    amsgrad: bool = False,
    *,
    maximize: bool = False,
    foreach: bool | None = None,
    capturable: bool = False,
    differentiable: bool = False,
    fused: bool | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""``torch.optim.AdamW``: :func:`adam` with decoupled weight decay, ``p <- p (1 - lr wd)`` each step.

    .. math::
        p \leftarrow p (1 - \gamma \lambda), \quad \text{then the Adam step of } :func:`adam`

    Args:
      lr: :math:`\gamma` (default ``1e-3``), a float or an Optax schedule.
      betas: :math:`(\beta_1, \beta_2)` (default ``(0.9, 0.999)``).
      eps: :math:`\epsilon` (default ``1e-8``).
      weight_decay: :math:`\lambda` (default ``1e-2``).
      amsgrad: divide by the running maximum of the raw :math:`v_t` (default ``False``).
      maximize: ascend instead of descend (default ``False``).
      foreach, capturable, differentiable, fused: accepted, no effect (see the module docstring).

    Returns:
      ``torch.optim.AdamW`` as an ``optax.GradientTransformationExtraArgs``.

    References:
      Loshchilov & Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.
      https://arxiv.org/abs/1711.05101 ;
      https://docs.pytorch.org/docs/stable/generated/torch.optim.AdamW.html
    """
    return adam(
        lr,
        betas,
        eps,
        weight_decay,
        amsgrad,
        foreach=foreach,
        maximize=maximize,
        capturable=capturable,
        differentiable=differentiable,
        fused=fused,
        decoupled_weight_decay=True,
    )


def nadam(
    lr: optax.ScalarOrSchedule = 2e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0,
    momentum_decay: float = 4e-3,
    decoupled_weight_decay: bool = False,
    *,
    foreach: bool | None = None,
    maximize: bool = False,
    capturable: bool = False,
    differentiable: bool = False,
) -> optax.GradientTransformationExtraArgs:
    r"""``torch.optim.NAdam``: :func:`adaptive_tx.scale_by_nadam` with :math:`\psi` = ``momentum_decay``.

    .. math::
        \mu_t = \beta_1 (1 - \tfrac12 0.96^{t \psi}), \quad
        p_t = p_{t-1} - \gamma \frac{\mu_{t+1} m_t / (1 - \Pi_{t+1}) + (1 - \mu_t) g_t / (1 - \Pi_t)}
        {\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}

    Args:
      lr: :math:`\gamma` (default ``2e-3``), a float or an Optax schedule.
      betas: :math:`(\beta_1, \beta_2)` (default ``(0.9, 0.999)``).
      eps: :math:`\epsilon` (default ``1e-8``).
      weight_decay: :math:`\lambda`: coupled L2, or decoupled if ``decoupled_weight_decay`` (default ``0``).
      momentum_decay: :math:`\psi` (default ``4e-3``).
      decoupled_weight_decay: ``p <- p (1 - lr wd)`` instead of L2 (default ``False``).
      foreach, capturable, differentiable: accepted, no effect (see the module docstring).
      maximize: ascend instead of descend (default ``False``).

    Returns:
      ``torch.optim.NAdam`` as an ``optax.GradientTransformationExtraArgs``.

    References:
      Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR 2016 workshop;
      https://docs.pytorch.org/docs/stable/generated/torch.optim.NAdam.html
    """
    _execution_options(dict(foreach=foreach, capturable=capturable, differentiable=differentiable))
    b1, b2 = _betas(betas)
    _build.check_args(
        rate=("lr", lr),
        decays={"betas[0]": b1, "betas[1]": b2},
        non_negative=dict(eps=eps, weight_decay=weight_decay),
        flags=dict(maximize=maximize, decoupled_weight_decay=decoupled_weight_decay),
    )
    return _build.nadam(
        lr,
        b1=b1,
        b2=b2,
        eps=eps,
        momentum_decay=momentum_decay,
        around=_around(weight_decay, maximize=maximize, decoupled=decoupled_weight_decay),
    )
