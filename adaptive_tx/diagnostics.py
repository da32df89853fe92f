"""Seeing what an optimizer does: the effective learning rate, and ``track`` to log it every step.

An adaptive optimizer's learning rate is only where its step starts: AdaGrad divides it by a root that
keeps growing, RMSprop by one that levels off, Adadelta has none and still moves. The *effective* learning
rate ``|u| / |g|``, the step the optimizer took per unit of gradient, shows what actually happened, one
coordinate at a time. ``track`` wraps any transformation and keeps a few float32 summaries of it in the
optimizer state, computed inside the jitted step, so a training loop can log them every step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from adaptive_tx import _leafwise

__all__ = ("TrackState", "TrackStats", "effective_learning_rate", "summarize", "track")

Array = jax.Array
ArrayTree = Any


class TrackStats(NamedTuple):
    """What :func:`track` measured at the last step, all float32 scalars.

    ``effective_lr_*`` summarize ``|u_i| / |g_i|`` over the coordinates with ``g_i != 0`` (all three are 0
    when every gradient coordinate is 0); the root-mean-squares run over every coordinate, so a momentum
    step on a coordinate whose gradient is 0 still counts.
    """

    effective_lr_mean: Array  # mean of |u| / |g| over g != 0.
    effective_lr_min: Array  # min of |u| / |g| over g != 0.
    effective_lr_max: Array  # max of |u| / |g| over g != 0.
    update_rms: Array  # sqrt(mean |u|^2): the size of the step.
    grad_rms: Array  # sqrt(mean |g|^2): the size of the gradient.
    update_to_param_ratio: Array  # ||u|| / ||w|| (global 2-norms); NaN when update gets no params.


class TrackState(NamedTuple):
    """State of :func:`track`: the wrapped transformation's state and the last step's statistics."""

    inner_state: optax.OptState
    stats: TrackStats


def _real_dtype(*leaves: Any) -> Any:
    """float32, or float64 when a leaf is (complex) double: the dtype the ratios are computed in."""
    return _leafwise.wider(*(jnp.real(jnp.zeros((), jnp.result_type(x))).dtype for x in leaves), at_least=jnp.float32)


def effective_learning_rate(updates: ArrayTree, grads: ArrayTree) -> ArrayTree:
    r"""The step size an optimizer actually took, per coordinate: :math:`|u_i| / |g_i|`, and 0 where :math:`g_i = 0`.

    For AdaGrad with learning rate :math:`\eta` it is :math:`\eta / \sqrt{s_t + \epsilon}`; for plain
    gradient descent it is :math:`\eta` everywhere. Computed in float32 or wider (complex leaves give real
    ratios of moduli).

    Args:
      updates: what the optimizer returned (the step that is added to the params).
      grads: the gradients it was given; a tree like ``updates``.

    Returns:
      A tree like ``grads`` of real, non-negative arrays.

    Examples:
      >>> import jax.numpy as jnp
      >>> import adaptive_tx as atx
      >>> from adaptive_tx.diagnostics import effective_learning_rate
      >>> g = jnp.array([3.0, 0.0, -4.0])
      >>> tx = atx.adagrad(learning_rate=0.5, eps=0.0)
      >>> u, _ = tx.update(g, tx.init(g))
      >>> print(effective_learning_rate(u, g))  # eta / sqrt(g^2) on the first step: 0.5 / |g|.
      [0.16666667 0.         0.125     ]

    References:
      Duchi, Hazan & Singer, *Adaptive Subgradient Methods for Online Learning and Stochastic
      Optimization*, JMLR 2011 (the per-coordinate learning rate).
    """
    _check_like(updates, grads)
    return jax.tree.map(_ratio, updates, grads)


def _ratio(u: Array, g: Array) -> Array:
    dtype = _real_dtype(u, g)
    magnitude_g = jnp.abs(g).astype(dtype)
    nonzero = magnitude_g != 0
    return jnp.where(nonzero, jnp.abs(u).astype(dtype) / jnp.where(nonzero, magnitude_g, 1), 0)


def _check_like(updates: ArrayTree, grads: ArrayTree) -> None:
    structure: Any = jax.tree.structure(updates)  # jaxlib's PyTreeDef stubs lack __eq__.
    if structure != jax.tree.structure(grads):
        raise ValueError(
            f"updates and grads must be trees of the same structure, got {jax.tree.structure(updates)} and "
            f"{jax.tree.structure(grads)}"
        )
    for path, u, g in zip(
        (jax.tree_util.keystr(p) or "(the root)" for p, _ in jax.tree_util.tree_flatten_with_path(grads)[0]),
        jax.tree.leaves(updates),
        jax.tree.leaves(grads),
        strict=True,
    ):
        if jnp.shape(u) != jnp.shape(g):
            raise ValueError(f"leaf {path}: the update has shape {jnp.shape(u)} but the gradient {jnp.shape(g)}")


def summarize(updates: ArrayTree, grads: ArrayTree, params: ArrayTree | None = None) -> TrackStats:
    """The :class:`TrackStats` of one step: ``updates`` returned for ``grads`` at ``params``.

    One pass over each leaf (XLA fuses the reductions), then a few scalar operations.

    Args:
      updates: what the optimizer returned.
      grads: the gradients it was given.
      params: the params the updates will be added to; without them ``update_to_param_ratio`` is NaN.

    Returns:
      :class:`TrackStats` of float32 scalars.
    """
    _check_like(updates, grads)
    dtype = _real_dtype(*jax.tree.leaves(updates), *jax.tree.leaves(grads))
    totals: dict[str, list[Any]] = {
        "count": [],
        "lr_sum": [],
        "lr_min": [],
        "lr_max": [],
        "u2": [],
        "g2": [],
        "size": [],
    }
    for u, g in zip(jax.tree.leaves(updates), jax.tree.leaves(grads), strict=True):
        ratio = _ratio(u, g)
        nonzero = g != 0
        totals["count"].append(jnp.sum(nonzero, dtype=dtype))
        totals["lr_sum"].append(jnp.sum(ratio, dtype=dtype))
        totals["lr_min"].append(jnp.min(jnp.where(nonzero, ratio, jnp.inf), initial=jnp.inf))
        totals["lr_max"].append(jnp.max(ratio, initial=0))  # ratio is 0 where g == 0.
        totals["u2"].append(jnp.sum(jnp.square(jnp.abs(u).astype(dtype))))
        totals["g2"].append(jnp.sum(jnp.square(jnp.abs(g).astype(dtype))))
        totals["size"].append(jnp.size(g))
    zero = jnp.zeros((), dtype)
    count = sum(totals["count"], zero)
    size = jnp.asarray(max(sum(totals["size"]), 1), dtype)
    u2 = sum(totals["u2"], zero)
    if params is None:
        ratio_to_params = jnp.asarray(jnp.nan, dtype)
    else:
        w2 = sum((jnp.sum(jnp.square(jnp.abs(w).astype(dtype))) for w in jax.tree.leaves(params)), zero)
        ratio_to_params = jnp.where(u2 == 0, zero, jnp.sqrt(u2) / jnp.sqrt(w2))  # inf from w = 0 on a step.
    any_nonzero = count > 0
    lr_min = jnp.min(jnp.stack(totals["lr_min"])) if totals["lr_min"] else zero
    lr_max = jnp.max(jnp.stack(totals["lr_max"])) if totals["lr_max"] else zero
    stats = TrackStats(
        effective_lr_mean=jnp.where(any_nonzero, sum(totals["lr_sum"], zero) / jnp.maximum(count, 1), zero),
        effective_lr_min=jnp.where(any_nonzero, lr_min, zero),
        effective_lr_max=lr_max,
        update_rms=jnp.sqrt(u2 / size),
        grad_rms=jnp.sqrt(sum(totals["g2"], zero) / size),
        update_to_param_ratio=ratio_to_params,
    )
    return TrackStats(*(s.astype(jnp.float32) for s in stats))


def _with_stats(
    new_updates: ArrayTree, inner_state: optax.OptState, grads: ArrayTree, params: ArrayTree | None
) -> tuple[ArrayTree, TrackState]:
    return new_updates, TrackState(inner_state, summarize(new_updates, grads, params))


def track(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """Wrap ``tx`` so that its state also holds :class:`TrackStats` of the last step.

    The updates are ``tx``'s own arrays, returned unchanged; the state is :class:`TrackState`
    ``(inner_state, stats)``. (Under ``jax.jit`` XLA compiles the update together with its new consumers, the
    statistics, and may then round the update differently in its last bit, as it does when a training step
    also logs ``optax.tree.norm(updates)``; op by op the updates are identical.) It
    composes like any transformation (``optax.chain``, ``optax.inject_hyperparams``, ``optax.MultiSteps``,
    ``optax.apply_if_finite``); a ``GradientTransformationExtraArgs`` stays one and passes its extra
    arguments through. The statistics cost one reduction pass over the updates and gradients; pass
    ``params`` to ``update`` to get ``update_to_param_ratio``. Find them in a larger state with
    ``optax.tree_utils.tree_get(opt_state, "stats")``.

    Args:
      tx: any ``optax.GradientTransformation``.

    Returns:
      A transformation of the same kind as ``tx``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import adaptive_tx as atx
      >>> from adaptive_tx.diagnostics import track
      >>> tx = track(atx.adagrad(learning_rate=1.0, eps=0.0))
      >>> w = jnp.array([1.0, 2.0])
      >>> state = tx.init(w)
      >>> for t in range(1, 5):  # A constant gradient: AdaGrad's rate decays like 1 / sqrt(t).
      ...     u, state = tx.update(jnp.ones(2), state, w)
      ...     print(t, f"{state.stats.effective_lr_mean:.4f}")
      1 1.0000
      2 0.7071
      3 0.5774
      4 0.5000

    References:
      Zeiler, *ADADELTA: An Adaptive Learning Rate Method*, 2012, section 4.3 (watching the effective
      step sizes). https://arxiv.org/abs/1212.5701
    """
    if not isinstance(tx, optax.GradientTransformation):
        raise TypeError(f"track wraps an optax.GradientTransformation, got {type(tx).__name__}")

    def init_fn(params: ArrayTree) -> TrackState:
        zero = _leafwise.init_scalar(params, 0.0, jnp.float32)
        return TrackState(inner_state=tx.init(params), stats=TrackStats(*([zero] * len(TrackStats._fields))))

    if isinstance(tx, optax.GradientTransformationExtraArgs):

        def update_extra(
            updates: ArrayTree, state: TrackState, params: ArrayTree | None = None, **extra_args: Any
        ) -> tuple[ArrayTree, TrackState]:
            new_updates, inner_state = tx.update(updates, state.inner_state, params, **extra_args)
            return _with_stats(new_updates, inner_state, updates, params)

        return optax.GradientTransformationExtraArgs(init_fn, update_extra)

    def update_fn(
        updates: ArrayTree, state: TrackState, params: ArrayTree | None = None
    ) -> tuple[ArrayTree, TrackState]:
        new_updates, inner_state = tx.update(updates, state.inner_state, params)
        return _with_stats(new_updates, inner_state, updates, params)

    return optax.GradientTransformation(init_fn, update_fn)
