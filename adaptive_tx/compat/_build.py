"""The frameworks' optimizers as chains of adaptive_tx blocks and Optax transforms, every knob explicit.

``compat.torch`` and ``compat.keras`` only translate their framework's argument names and defaults into
these builders. Each builder returns a full ``optax.GradientTransformationExtraArgs`` (learning rate and
sign included). The block knobs (``eps_in_sqrt``, ``centered``, ``first_step_undampened``, ``eps_hat``,
``amsgrad``, NAdam's ``momentum_decay``) are the builders' own arguments; what a framework puts around the
block is one :class:`Around`, the builders' ``around`` argument.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

from adaptive_tx import _checks, _leafwise, _math
from adaptive_tx._adadelta import scale_by_adadelta
from adaptive_tx._adagrad import scale_by_adagrad
from adaptive_tx._adam import scale_by_adam
from adaptive_tx._momentum import scale_by_momentum
from adaptive_tx._nadam import scale_by_nadam
from adaptive_tx._rmsprop import scale_by_rms


def check_args(
    *,
    rate: tuple[str, Any] | None = None,
    decays: dict[str, Any] | None = None,
    non_negative: dict[str, Any] | None = None,
    flags: dict[str, Any] | None = None,
) -> None:
    """Check a framework's arguments under the framework's own names, before the builders see them."""
    if rate is not None:
        _checks.check_learning_rate(rate[1], rate[0])
    for name, value in (decays or {}).items():
        _checks.check_decay(name, value)
    for name, value in (non_negative or {}).items():
        if value is not None:
            _checks.check_non_negative(name, value)
    for name, value in (flags or {}).items():
        _checks.check_bool(name, value)


def is_zero(value: Any) -> bool:
    """True for a Python number equal to 0: the frameworks skip such terms, and so do we."""
    return _checks.is_number(value) and value == 0


def _as_schedule(learning_rate: optax.ScalarOrSchedule):
    return learning_rate if callable(learning_rate) else (lambda count: learning_rate)


class DecoupledDecayState(NamedTuple):
    """State of the decoupled weight decay: the step count its learning-rate schedule reads."""

    count: jax.Array  # type: ignore[assignment]  # t - 1: steps taken, int32 scalar; saturates at int32 max.


def decoupled_weight_decay(weight_decay: Any, learning_rate: optax.ScalarOrSchedule) -> optax.GradientTransformation:
    """Add ``-lr_t * weight_decay * p`` to the updates: ``p <- p (1 - lr_t wd)`` beside the step.

    Keras applies this to every optimizer before its step, PyTorch's AdamW likewise; ``lr_t`` is the
    learning rate of the same step (a schedule is read at the same count as ``optax.scale_by_schedule``).
    """
    _checks.check_non_negative("weight_decay", weight_decay)
    _checks.check_learning_rate(learning_rate)
    schedule = _as_schedule(learning_rate)

    def init_fn(params):
        return DecoupledDecayState(count=_leafwise.init_count(params))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError("decoupled weight decay needs the parameters: call update(grads, state, params).")
        rate = schedule(state.count) * weight_decay

        def decay(u, p):
            p = jnp.asarray(p)
            dtype = _leafwise.compute_dtype(p.dtype)
            return u - (jnp.asarray(rate, dtype) * p.astype(dtype)).astype(u.dtype)

        updates = jax.tree.map(decay, updates, params)
        return updates, DecoupledDecayState(count=_leafwise.next_count(state.count))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def clip_by_norm(max_norm: float, *, per_leaf: bool) -> optax.GradientTransformation:
    """Rescale the gradients to an L2 norm of at most ``max_norm``: each leaf on its own (Keras's
    ``clipnorm``) or all together (``global_clipnorm``).

    ``g * max_norm / max(||g||, max_norm)`` as Keras computes it, with the norm in float32 (float64 for
    float64 leaves): in float16, ``sum(g * g)`` overflows to inf once ``||g||`` passes 256. The result is
    cast back to each leaf's dtype. Clipped to norm 0 everything is 0, an all-zero leaf stays 0, and the
    derivative with respect to ``g`` is finite everywhere, 0 included.
    """
    _checks.check_non_negative("global_clipnorm" if not per_leaf else "clipnorm", max_norm)

    def norm_of(leaves):
        """The L2 norm of ``leaves`` together, in the dtype it is computed in (float32 or wider)."""
        dtype = _leafwise.compute_dtype(*(x.dtype for x in leaves))
        squares = sum((jnp.sum(_math.square(x.astype(dtype))) for x in leaves), jnp.zeros([], dtype))
        return _math.safe_sqrt(squares), dtype

    def clip(g, total, dtype):
        x, limit = g.astype(dtype), jnp.asarray(max_norm, dtype)
        # max(norm, limit) is 0 only for a zero gradient clipped to norm 0, whose numerator is 0 too: 0/0 = 0.
        return _math.safe_divide(x * limit, jnp.maximum(total, limit)).astype(g.dtype)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args
        updates = jax.tree.map(jnp.asarray, updates)
        if per_leaf:
            return jax.tree.map(lambda g: clip(g, *norm_of([g])), updates), state
        total, dtype = norm_of(jax.tree.leaves(updates))
        return jax.tree.map(lambda g: clip(g, total, dtype), updates), state

    return optax.GradientTransformationExtraArgs(optax.init_empty_state, update_fn)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Around:
    """What a framework puts around the block, in the order :func:`_compose` applies it.

    Attributes:
      maximize: ascend (PyTorch negates the gradient first).
      clipvalue: clip each gradient element to ``[-clipvalue, clipvalue]`` (Keras), or ``None``.
      clipnorm: clip each gradient leaf to this L2 norm (Keras), or ``None``.
      global_clipnorm: clip all gradients together to this L2 norm (Keras), or ``None``.
      weight_decay: ``wd``; with ``decoupled``, coupled L2 adds ``wd * p`` to the gradient before the block
        (PyTorch, except AdamW), decoupled subtracts ``lr_t * wd * p`` from the parameters beside the step
        (PyTorch's AdamW, and every Keras optimizer).
      decoupled: see ``weight_decay``.
      lr_in_buffer: momentum accumulates ``lr_t * direction`` (Keras) instead of the direction, the learning
        rate applied after (PyTorch). The two differ only when the learning rate changes.
    """

    maximize: bool = False
    clipvalue: float | None = None
    clipnorm: float | None = None
    global_clipnorm: float | None = None
    weight_decay: Any = 0.0  # A float, or an array or tracer under optax.inject_hyperparams.
    decoupled: bool = False
    lr_in_buffer: bool = False


NOTHING_AROUND = Around()  # The bare block: no sign flip, clipping, weight decay or lr in a buffer.


def _compose(
    block: optax.GradientTransformation | None,
    learning_rate: optax.ScalarOrSchedule,
    *,
    momentum: optax.GradientTransformation | None = None,
    around: Around = NOTHING_AROUND,
) -> optax.GradientTransformationExtraArgs:
    """``block`` then ``momentum``, with ``around`` around them, in the framework's order.

    maximize -> clipping -> coupled L2 -> block -> momentum and learning rate (in the order ``lr_in_buffer``
    picks) -> decoupled weight decay.

    Raises ``ValueError`` on knobs of ``around`` that would have nothing to act on: ``lr_in_buffer=True``
    without a ``momentum`` block, ``decoupled=True`` with a weight decay of (a Python) 0.
    """
    _checks.check_learning_rate(learning_rate)
    _checks.check_non_negative("weight_decay", around.weight_decay)
    _checks.check_bool("decoupled", around.decoupled)
    _checks.check_bool("maximize", around.maximize)
    _checks.check_bool("lr_in_buffer", around.lr_in_buffer)
    if around.lr_in_buffer and momentum is None:
        raise ValueError("lr_in_buffer=True needs a momentum: without a momentum buffer there is nothing to put lr in.")
    if around.decoupled and is_zero(around.weight_decay):
        raise ValueError("decoupled=True needs a weight_decay: with weight_decay=0 there is no decay to decouple.")
    parts: list[optax.GradientTransformation] = []
    if around.maximize:
        parts.append(optax.scale(-1.0))
    if around.clipvalue is not None:
        _checks.check_non_negative("clipvalue", around.clipvalue)
        parts.append(optax.clip(around.clipvalue))
    if around.clipnorm is not None:
        parts.append(clip_by_norm(around.clipnorm, per_leaf=True))
    if around.global_clipnorm is not None:
        parts.append(clip_by_norm(around.global_clipnorm, per_leaf=False))
    if not around.decoupled and not is_zero(around.weight_decay):
        parts.append(_leafwise.add_decayed_weights(around.weight_decay))  # Coupled L2: g + wd * p.
    if block is not None:
        parts.append(block)
    if momentum is not None and not around.lr_in_buffer:
        parts.append(momentum)
    parts.append(_leafwise.scale_by_learning_rate(learning_rate))  # The only sign flip.
    if momentum is not None and around.lr_in_buffer:
        parts.append(momentum)
    if around.decoupled:
        parts.append(decoupled_weight_decay(around.weight_decay, learning_rate))
    return optax.chain(*parts)


def _heavy_ball(momentum: Any) -> optax.GradientTransformation | None:
    _checks.check_decay("momentum", momentum)
    return None if is_zero(momentum) else scale_by_momentum(beta=momentum, dampening=0.0)


def adagrad(
    learning_rate: optax.ScalarOrSchedule,
    *,
    eps: float,
    initial_accumulator: float,
    eps_in_sqrt: bool,
    lr_decay: float = 0.0,
    around: Around = NOTHING_AROUND,
) -> optax.GradientTransformationExtraArgs:
    """AdaGrad; ``lr_decay`` is PyTorch's ``lr / (1 + (t - 1) lr_decay)``."""
    _checks.check_non_negative("lr_decay", lr_decay)
    rate = learning_rate
    if not is_zero(lr_decay):
        _checks.check_learning_rate(learning_rate)
        base = _as_schedule(learning_rate)

        def rate(count):
            # In the wider of the decay's dtype and float32 (an injected float32 decay under x64 included).
            base_rate = base(count)
            dtype = _leafwise.compute_dtype(jnp.result_type(base_rate), jnp.result_type(lr_decay))
            return jnp.asarray(base_rate, dtype) / (1 + jnp.asarray(count, dtype) * jnp.asarray(lr_decay, dtype))

    block = scale_by_adagrad(eps=eps, initial_accumulator=initial_accumulator, eps_in_sqrt=eps_in_sqrt)
    return _compose(block, rate, around=around)


def rmsprop(
    learning_rate: optax.ScalarOrSchedule,
    *,
    decay: float,
    eps: float,
    eps_in_sqrt: bool,
    centered: bool,
    momentum: float = 0.0,
    around: Around = NOTHING_AROUND,
) -> optax.GradientTransformationExtraArgs:
    """RMSprop, optionally centered, with heavy-ball ``momentum`` (``lr_in_buffer`` picks where lr goes)."""
    block = scale_by_rms(decay=decay, eps=eps, eps_in_sqrt=eps_in_sqrt, centered=centered)
    return _compose(block, learning_rate, momentum=_heavy_ball(momentum), around=around)


def adadelta(
    learning_rate: optax.ScalarOrSchedule, *, rho: float, eps: float, around: Around = NOTHING_AROUND
) -> optax.GradientTransformationExtraArgs:
    """Adadelta: the frameworks agree on the equation; only defaults and weight decay differ."""
    return _compose(scale_by_adadelta(rho=rho, eps=eps), learning_rate, around=around)


def sgd(
    learning_rate: optax.ScalarOrSchedule,
    *,
    momentum: float,
    dampening: float,
    nesterov: bool,
    first_step_undampened: bool,
    around: Around = NOTHING_AROUND,
) -> optax.GradientTransformationExtraArgs:
    """SGD with heavy-ball momentum ``v = momentum v + (1 - dampening) g`` (none when momentum is 0)."""
    _checks.check_decay("momentum", momentum)
    velocity = None
    if not is_zero(momentum):
        velocity = scale_by_momentum(
            beta=momentum, dampening=dampening, nesterov=nesterov, first_step_undampened=first_step_undampened
        )
    return _compose(None, learning_rate, momentum=velocity, around=around)


def adam(
    learning_rate: optax.ScalarOrSchedule,
    *,
    b1: float,
    b2: float,
    eps: float,
    eps_hat: bool,
    amsgrad: Literal["raw", "corrected"] | None,
    around: Around = NOTHING_AROUND,
) -> optax.GradientTransformationExtraArgs:
    """Adam with the paper's eps or its epsilon-hat, AMSGrad on the raw or corrected second moment."""
    block = scale_by_adam(b1=b1, b2=b2, eps=eps, eps_hat=eps_hat, amsgrad=amsgrad)
    return _compose(block, learning_rate, around=around)


def nadam(
    learning_rate: optax.ScalarOrSchedule,
    *,
    b1: float,
    b2: float,
    eps: float,
    momentum_decay: float,
    around: Around = NOTHING_AROUND,
) -> optax.GradientTransformationExtraArgs:
    """NAdam; ``momentum_decay`` is PyTorch's psi (0.004), Keras's 1.0, Optax's inf."""
    return _compose(scale_by_nadam(b1=b1, b2=b2, eps=eps, momentum_decay=momentum_decay), learning_rate, around=around)
