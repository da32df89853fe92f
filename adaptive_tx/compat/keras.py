"""Keras 3's optimizers, exactly: ``keras.optimizers``' argument names and defaults, as Optax transformations.

Each function takes the arguments of the ``keras.optimizers`` class of the same name and returns a full
``optax.GradientTransformationExtraArgs``, learning rate and sign included: the trajectory matches Keras
3.15's to float64 rounding (``tests/test_parity.py``). ``learning_rate`` may also be an Optax schedule,
read at the step count like a Keras ``LearningRateSchedule`` reads ``optimizer.iterations``.

As in Keras, ``weight_decay`` is decoupled on every optimizer (``p <- p - lr * wd * p`` beside the step),
``epsilon`` goes inside the root for Adagrad, RMSprop and Adadelta, and Adam's ``epsilon`` is the paper's
epsilon-hat.

Every function also takes Keras's base-optimizer arguments, with Keras's defaults:

- ``clipnorm``: clip each gradient leaf to this L2 norm first (default ``None``);
- ``clipvalue``: clip each gradient element to ``[-clipvalue, clipvalue]`` first (default ``None``);
- ``global_clipnorm``: clip all gradients together to this L2 norm first (default ``None``); at most one
  of ``clipnorm`` and ``global_clipnorm`` may be set;
- ``use_ema`` (default ``False``), ``ema_overwrite_frequency``, ``loss_scale_factor`` and
  ``gradient_accumulation_steps`` (default ``None``): not supported, anything but the default raises
  ``ValueError`` (keep an EMA with ``optax.incremental_update``, wrap the optimizer in ``optax.MultiSteps``
  for gradient accumulation);
- ``ema_momentum`` (default ``0.99``): meaningless without ``use_ema``, accepted and unused;
- ``name`` (default ``None``): a name has no role in a transformation, accepted and unused.

Example:
  >>> import adaptive_tx.compat.keras as kt
  >>> tx = kt.adam(learning_rate=1e-3, weight_decay=1e-4)  # keras.optimizers.Adam(...)
  >>> tx = kt.rmsprop(momentum=0.9, centered=True, global_clipnorm=1.0)
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
import optax

from adaptive_tx.compat import _build

__all__ = ["adadelta", "adagrad", "adam", "adamw", "nadam", "rmsprop", "sgd"]


def _around(
    weight_decay: Any, clipnorm: Any, clipvalue: Any, global_clipnorm: Any, *, lr_in_buffer: bool = False
) -> _build.Around:
    """Keras's base-optimizer clipping and weight decay (in the signatures' order) as the builders' ``around``.

    ``lr_in_buffer`` is for the optimizers with a momentum (Keras accumulates the learning rate in the
    buffer).
    """
    _build.check_args(
        non_negative=dict(
            weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue, global_clipnorm=global_clipnorm
        ),
    )
    if clipnorm is not None and global_clipnorm is not None:
        raise ValueError("Only one of `clipnorm` and `global_clipnorm` can be set.")
    decays = weight_decay is not None and not _build.is_zero(weight_decay)
    return _build.Around(
        clipvalue=clipvalue,
        clipnorm=clipnorm,
        global_clipnorm=global_clipnorm,
        weight_decay=weight_decay if decays else 0.0,
        decoupled=decays,  # Keras decays every optimizer decoupled.
        lr_in_buffer=lr_in_buffer,
    )


def _refuse_unsupported(
    use_ema: Any, ema_overwrite_frequency: Any, loss_scale_factor: Any, gradient_accumulation_steps: Any
) -> None:
    """Raise on Keras's base-optimizer arguments that have no counterpart here (in the signatures' order),
    unless they are at Keras's defaults; ``ema_momentum`` and ``name`` have no role and are not taken."""
    unsupported = {
        "use_ema": (use_ema, False, "keep an EMA of the parameters with optax.incremental_update"),
        "ema_overwrite_frequency": (ema_overwrite_frequency, None, "see use_ema"),
        "loss_scale_factor": (loss_scale_factor, None, "scale the loss and unscale the gradients yourself"),
        "gradient_accumulation_steps": (gradient_accumulation_steps, None, "wrap the optimizer in optax.MultiSteps"),
    }
    for arg, (value, default, instead) in unsupported.items():
        if _is_set(value, default):
            raise ValueError(f"{arg}={value!r} is not supported by adaptive_tx.compat.keras: {instead}.")


def _is_set(value: Any, default: Any) -> bool:
    """True when an unsupported option is not at its default (``None``, or ``False`` for ``use_ema``).

    Python values are compared; an array or a traced value (a number passed through
    ``optax.inject_hyperparams``) is never the default, and is not compared (a traced comparison cannot
    decide an ``if``).
    """
    if value is None or isinstance(value, bool | np.bool_ | numbers.Real | str):
        return value != default
    return True


def adagrad(
    learning_rate: optax.ScalarOrSchedule = 0.001,
    initial_accumulator_value: float = 0.1,
    epsilon: float = 1e-7,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
    loss_scale_factor: float | None = None,
    gradient_accumulation_steps: int | None = None,
    name: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""``keras.optimizers.Adagrad``: AdaGrad with eps inside the root and :math:`s_0 = 0.1`.

    .. math::
        s_t = s_{t-1} + g^2, \quad p_t = p_{t-1} - \frac{\eta\, g}{\sqrt{s_t + \epsilon}} - \eta \lambda p_{t-1}

    Args:
      learning_rate: :math:`\eta` (default ``0.001``), a float or an Optax schedule.
      initial_accumulator_value: :math:`s_0` (default ``0.1``).
      epsilon: :math:`\epsilon`, inside the root (default ``1e-7``).
      weight_decay: :math:`\lambda`, decoupled (default ``None``: none).
      clipnorm: with clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency,
        loss_scale_factor, gradient_accumulation_steps, name: Keras's base-optimizer arguments; see the
        module docstring.

    Returns:
      ``keras.optimizers.Adagrad`` as an ``optax.GradientTransformationExtraArgs``.

    References:
      https://keras.io/api/optimizers/adagrad/
    """
    _build.check_args(
        rate=("learning_rate", learning_rate),
        non_negative=dict(initial_accumulator_value=initial_accumulator_value, epsilon=epsilon),
    )
    _refuse_unsupported(use_ema, ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps)
    around = _around(weight_decay, clipnorm, clipvalue, global_clipnorm)
    return _build.adagrad(
        learning_rate, eps=epsilon, initial_accumulator=initial_accumulator_value, eps_in_sqrt=True, around=around
    )


def rmsprop(
    learning_rate: optax.ScalarOrSchedule = 0.001,
    rho: float = 0.9,
    momentum: float = 0.0,
    epsilon: float = 1e-7,
    centered: bool = False,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
    loss_scale_factor: float | None = None,
    gradient_accumulation_steps: int | None = None,
    name: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""``keras.optimizers.RMSprop``: eps inside the root, the learning rate inside the momentum buffer.

    .. math::
        v_t = \rho v_{t-1} + (1-\rho) g^2, \quad \bar g_t = \rho \bar g_{t-1} + (1-\rho) g
        \text{ (centered)}, \\
        i_t = \frac{\eta_t\, g}{\sqrt{v_t - \bar g_t^2 + \epsilon}}, \quad m_t = \mu m_{t-1} + i_t, \quad
        p_t = p_{t-1} - m_t - \eta_t \lambda p_{t-1}

    Args:
      learning_rate: :math:`\eta` (default ``0.001``), a float or an Optax schedule.
      rho: :math:`\rho` (default ``0.9``).
      momentum: :math:`\mu`, heavy ball (default ``0.0``).
      epsilon: :math:`\epsilon`, inside the root (default ``1e-7``).
      centered: subtract :math:`\bar g_t^2` (default ``False``).
      weight_decay: :math:`\lambda`, decoupled (default ``None``: none).
      clipnorm: with clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency,
        loss_scale_factor, gradient_accumulation_steps, name: Keras's base-optimizer arguments; see the
        module docstring.

    Returns:
      ``keras.optimizers.RMSprop`` as an ``optax.GradientTransformationExtraArgs``.

    References:
      https://keras.io/api/optimizers/rmsprop/
    """
    _build.check_args(
        rate=("learning_rate", learning_rate),
        decays=dict(rho=rho, momentum=momentum),
        non_negative=dict(epsilon=epsilon),
        flags=dict(centered=centered),
    )
    _refuse_unsupported(use_ema, ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps)
    around = _around(weight_decay, clipnorm, clipvalue, global_clipnorm, lr_in_buffer=not _build.is_zero(momentum))
    return _build.rmsprop(
        learning_rate,
        decay=rho,
        eps=epsilon,
        eps_in_sqrt=True,
        centered=centered,
        momentum=momentum,
        around=around,
    )


def adadelta(
    learning_rate: optax.ScalarOrSchedule = 0.001,
    rho: float = 0.95,
    epsilon: float = 1e-7,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
    loss_scale_factor: float | None = None,
    gradient_accumulation_steps: int | None = None,
    name: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""``keras.optimizers.Adadelta``: the lecture's Adadelta with Keras's defaults (which barely move:
    the paper's learning rate is 1.0, Keras's 0.001).

    .. math::
        s_t = \rho s_{t-1} + (1-\rho) g^2, \quad
        \Delta_t = \frac{\sqrt{u_{t-1} + \epsilon}}{\sqrt{s_t + \epsilon}}\, g, \quad
        u_t = \rho u_{t-1} + (1-\rho) \Delta_t^2, \quad p_t = p_{t-1} - \eta \Delta_t - \eta \lambda p_{t-1}

    Args:
      learning_rate: :math:`\eta` (default ``0.001``), a float or an Optax schedule.
      rho: :math:`\rho` (default ``0.95``).
      epsilon: :math:`\epsilon`, inside both roots (default ``1e-7``).
      weight_decay: :math:`\lambda`, decoupled (default ``None``: none).
      clipnorm: with clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency,
        loss_scale_factor, gradient_accumulation_steps, name: Keras's base-optimizer arguments; see the
        module docstring.

    Returns:
      ``keras.optimizers.Adadelta`` as an ``optax.GradientTransformationExtraArgs``.

    References:
      https://keras.io/api/optimizers/adadelta/
    """
    _build.check_args(rate=("learning_rate", learning_rate), decays=dict(rho=rho), non_negative=dict(epsilon=epsilon))
    _refuse_unsupported(use_ema, ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps)
    around = _around(weight_decay, clipnorm, clipvalue, global_clipnorm)
    return _build.adadelta(learning_rate, rho=rho, eps=epsilon, around=around)


def sgd(
    learning_rate: optax.ScalarOrSchedule = 0.01,
    momentum: float = 0.0,
    nesterov: bool = False,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
    loss_scale_factor: float | None = None,
    gradient_accumulation_steps: int | None = None,
    name: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""``keras.optimizers.SGD``: heavy-ball momentum with the learning rate inside the velocity.

    .. math::
        m_t = \mu m_{t-1} - \eta_t g, \quad
        p_t = p_{t-1} + (\mu m_t - \eta_t g \text{ if Nesterov else } m_t) - \eta_t \lambda p_{t-1}

    Args:
      learning_rate: :math:`\eta` (default ``0.01``), a float or an Optax schedule.
      momentum: :math:`\mu` (default ``0.0``: plain SGD).
      nesterov: Nesterov's look-ahead (default ``False``).
      weight_decay: :math:`\lambda`, decoupled (default ``None``: none).
      clipnorm: with clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency,
        loss_scale_factor, gradient_accumulation_steps, name: Keras's base-optimizer arguments; see the
        module docstring.

    Returns:
      ``keras.optimizers.SGD`` as an ``optax.GradientTransformationExtraArgs``.

    References:
      https://keras.io/api/optimizers/sgd/
    """
    _build.check_args(
        rate=("learning_rate", learning_rate), decays=dict(momentum=momentum), flags=dict(nesterov=nesterov)
    )
    _refuse_unsupported(use_ema, ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps)
    around = _around(weight_decay, clipnorm, clipvalue, global_clipnorm, lr_in_buffer=not _build.is_zero(momentum))
    return _build.sgd(
        learning_rate,
        momentum=momentum,
        dampening=0.0,
        nesterov=nesterov,
        first_step_undampened=False,
        around=around,
    )


def adam(
    learning_rate: optax.ScalarOrSchedule = 0.001,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    amsgrad: bool = False,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
    loss_scale_factor: float | None = None,
    gradient_accumulation_steps: int | None = None,
    name: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""``keras.optimizers.Adam``: the paper's "efficient" form, where ``epsilon`` is epsilon-hat.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g, \quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g^2, \quad
        \hat v^{max}_t = \max(\hat v^{max}_{t-1}, v_t) \text{ (AMSGrad)}, \\
        p_t = p_{t-1} - \eta \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t} \frac{m_t}{\sqrt{v_t} + \hat\epsilon}
        - \eta \lambda p_{t-1}

    No constant ``eps`` makes this equal to PyTorch's Adam: ``epsilon`` here acts like
    ``eps / sqrt(1 - beta_2^t)`` there.

    Args:
      learning_rate: :math:`\eta` (default ``0.001``), a float or an Optax schedule.
      beta_1: :math:`\beta_1` (default ``0.9``).
      beta_2: :math:`\beta_2` (default ``0.999``).
      epsilon: :math:`\hat\epsilon` (default ``1e-7``).
      amsgrad: divide by the running maximum of the raw :math:`v_t` (default ``False``).
      weight_decay: :math:`\lambda`, decoupled (default ``None``: none).
      clipnorm: with clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency,
        loss_scale_factor, gradient_accumulation_steps, name: Keras's base-optimizer arguments; see the
        module docstring.

    Returns:
      ``keras.optimizers.Adam`` as an ``optax.GradientTransformationExtraArgs``.

    References:
      https://keras.io/api/optimizers/adam/
    """
    _build.check_args(
        rate=("learning_rate", learning_rate),
        decays=dict(beta_1=beta_1, beta_2=beta_2),
        non_negative=dict(epsilon=epsilon),
        flags=dict(amsgrad=amsgrad),
    )
    _refuse_unsupported(use_ema, ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps)
    around = _around(weight_decay, clipnorm, clipvalue, global_clipnorm)
    return _build.adam(
        learning_rate,
        b1=beta_1,
        b2=beta_2,
        eps=epsilon,
        eps_hat=True,
        amsgrad="raw" if amsgrad else None,
        around=around,
    )


def adamw(
    learning_rate: optax.ScalarOrSchedule = 0.001,
    weight_decay: float = 0.004,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    amsgrad: bool = False,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
    loss_scale_factor: float | None = None,
    gradient_accumulation_steps: int | None = None,
    name: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""``keras.optimizers.AdamW``: :func:`adam` with ``weight_decay`` defaulting to 0.004.

    .. math::
        p_t = p_{t-1} - \eta \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t} \frac{m_t}{\sqrt{v_t} + \hat\epsilon}
        - \eta \lambda p_{t-1}

    Args:
      learning_rate: :math:`\eta` (default ``0.001``), a float or an Optax schedule.
      weight_decay: :math:`\lambda`, decoupled (default ``0.004``).
      beta_1: :math:`\beta_1` (default ``0.9``).
      beta_2: :math:`\beta_2` (default ``0.999``).
      epsilon: :math:`\hat\epsilon` (default ``1e-7``).
      amsgrad: divide by the running maximum of the raw :math:`v_t` (default ``False``).
      clipnorm: with clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency,
        loss_scale_factor, gradient_accumulation_steps, name: Keras's base-optimizer arguments; see the
        module docstring.

    Returns:
      ``keras.optimizers.AdamW`` as an ``optax.GradientTransformationExtraArgs``.

    References:
      Loshchilov & Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.
      https://arxiv.org/abs/1711.05101 ; https://keras.io/api/optimizers/adamw/
    """
    return adam(
        learning_rate=learning_rate,
        beta_1=beta_1,
        beta_2=beta_2,
        epsilon=epsilon,
        amsgrad=amsgrad,
        weight_decay=weight_decay,
        clipnorm=clipnorm,
        clipvalue=clipvalue,
        global_clipnorm=global_clipnorm,
        use_ema=use_ema,
        ema_momentum=ema_momentum,
        ema_overwrite_frequency=ema_overwrite_frequency,
        loss_scale_factor=loss_scale_factor,
        gradient_accumulation_steps=gradient_accumulation_steps,
        name=name,
    )


def nadam(
    learning_rate: optax.ScalarOrSchedule = 0.001,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-7,
    weight_decay: float | None = None,
    clipnorm: float | None = None,
    clipvalue: float | None = None,
    global_clipnorm: float | None = None,
    use_ema: bool = False,
    ema_momentum: float = 0.99,
    ema_overwrite_frequency: int | None = None,
    loss_scale_factor: float | None = None,
    gradient_accumulation_steps: int | None = None,
    name: str | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""``keras.optimizers.Nadam``: :func:`adaptive_tx.scale_by_nadam` with momentum decay 1 (``0.96^t``).

    .. math::
        \mu_t = \beta_1 (1 - \tfrac12 0.96^{t}), \quad
        p_t = p_{t-1} - \eta \frac{\mu_{t+1} m_t / (1 - \Pi_{t+1}) + (1 - \mu_t) g_t / (1 - \Pi_t)}
        {\sqrt{v_t / (1 - \beta_2^t)} + \epsilon} - \eta \lambda p_{t-1}

    Here ``epsilon`` is added to the corrected root (not epsilon-hat, unlike Keras's Adam).

    Args:
      learning_rate: :math:`\eta` (default ``0.001``), a float or an Optax schedule.
      beta_1: :math:`\beta_1` (default ``0.9``).
      beta_2: :math:`\beta_2` (default ``0.999``).
      epsilon: :math:`\epsilon` (default ``1e-7``).
      weight_decay: :math:`\lambda`, decoupled (default ``None``: none).
      clipnorm: with clipvalue, global_clipnorm, use_ema, ema_momentum, ema_overwrite_frequency,
        loss_scale_factor, gradient_accumulation_steps, name: Keras's base-optimizer arguments; see the
        module docstring.

    Returns:
      ``keras.optimizers.Nadam`` as an ``optax.GradientTransformationExtraArgs``.

    References:
      Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR 2016 workshop;
      https://keras.io/api/optimizers/Nadam/
    """
    _build.check_args(
        rate=("learning_rate", learning_rate),
        decays=dict(beta_1=beta_1, beta_2=beta_2),
        non_negative=dict(epsilon=epsilon),
    )
    _refuse_unsupported(use_ema, ema_overwrite_frequency, loss_scale_factor, gradient_accumulation_steps)
    around = _around(weight_decay, clipnorm, clipvalue, global_clipnorm)
    return _build.nadam(learning_rate, b1=beta_1, b2=beta_2, eps=epsilon, momentum_decay=1.0, around=around)
