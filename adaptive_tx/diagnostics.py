"""Seeing what an optimizer does: the effective learning rate, and ``track`` to log it every step.

An adaptive optimizer's learning rate is only where its step starts: AdaGrad divides it by a root that
keeps growing, RMSprop by one that levels off, Adadelta has none and still moves. The *effective* learning
rate ``|u| / |g|``, the step the optimizer took per unit of gradient, shows what actually happened, one
coordinate at a time. ``track`` wraps any transformation and keeps float32 summaries of it in the
optimizer state, for the whole model or per layer, computed inside the jitted step; ``scalars`` turns them
into ``{name: float}`` for any logger (TensorBoard, Weights & Biases, a CSV file).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adaptive_tx import _checks, _leafwise

__all__ = (
    "QUANTILE_RESOLUTION",
    "TrackState",
    "TrackStats",
    "effective_learning_rate",
    "scalars",
    "summarize",
    "track",
)

Array = jax.Array
ArrayTree = Any
Statistic = Array | dict[str, Array]  # A float32 scalar, or one per params leaf by path (track(per_leaf=True)).

# The quantiles come from a histogram of the ratios' float32 bit patterns: the exponent and the top
# _MANTISSA_BITS of the mantissa name a bin, so every octave [2^e, 2^(e+1)) has 16 bins of equal width
# 2^e / 16 (log-spaced to within a factor 2). A quantile is reported as its bin's midpoint: within
# 1/32 of the value of the coordinate it stands for, relative.
_MANTISSA_BITS = 4
_SHIFT = 23 - _MANTISSA_BITS  # float32 has 23 mantissa bits.
_BINS = 1 << (31 - _SHIFT)  # 4096: every non-negative float32 (inf and NaN in the top bins).
QUANTILE_RESOLUTION = 2.0 ** -(_MANTISSA_BITS + 1)
"""The relative error of ``effective_lr_p10/median/p90`` against the exact quantile's value: 1/32."""
_QUANTILES = (0.1, 0.5, 0.9)
_ROW = 1 << 16  # A long vector is reduced as rows of this many coordinates (see _reduce_once).
_SAMPLE = 65536  # track's default: the quantiles of a larger leaf read every k-th coordinate (k odd).


class TrackStats(NamedTuple):
    """What :func:`track` measured at the last step, all float32 scalars (dicts of them with ``per_leaf``).

    Read ``effective_lr_median`` (with ``effective_lr_p10`` and ``effective_lr_p90`` for the spread): the step
    size the optimizer took per unit of gradient, on a typical coordinate. The mean and the extremes of
    ``|u_i| / |g_i|`` are dominated by the coordinates whose gradient is nearly 0 (on an MLP Adam's max is
    ~1e7 where its median is ~10); they stay for what they are, a bound. ``update_to_param_ratio`` per layer
    (``track(tx, per_leaf=True)``) is the usual health check of training, about 1e-3.

    The ``effective_lr_*`` statistics run over the coordinates with ``g_i != 0`` (all are 0 when every
    gradient coordinate is 0); the root-mean-squares and norms over every coordinate, so a momentum step on
    a coordinate whose gradient is 0 still counts. The three quantiles are NumPy's ``method="lower"``
    quantiles (the coordinate of rank ``floor(q (n - 1))``) read from a histogram: within
    :data:`QUANTILE_RESOLUTION` (1/32) of that coordinate's value, relative, 0 when it is 0, over every
    coordinate of a leaf of at most ``sample`` coordinates (see :func:`track`) and over every k-th one of a
    larger leaf.
    """

    effective_lr_mean: Statistic  # mean of |u| / |g| over g != 0.
    effective_lr_min: Statistic  # min of |u| / |g| over g != 0.
    effective_lr_max: Statistic  # max of |u| / |g| over g != 0.
    update_rms: Statistic  # sqrt(mean |u|^2): the size of the step.
    grad_rms: Statistic  # sqrt(mean |g|^2): the size of the gradient.
    update_to_param_ratio: Statistic  # ||u|| / ||w|| (2-norms); NaN when update gets no params.
    effective_lr_p10: Statistic  # 10th percentile of |u| / |g| over g != 0.
    effective_lr_median: Statistic  # median of |u| / |g| over g != 0: the one to read.
    effective_lr_p90: Statistic  # 90th percentile of |u| / |g| over g != 0.
    update_to_grad_ratio: Statistic  # ||u|| / ||g|| (2-norms): the step per unit of gradient, as a whole.


class TrackState(NamedTuple):
    """State of :func:`track`: the wrapped transformation's state and the last measured statistics."""

    inner_state: optax.OptState  # the wrapped transformation's state.
    stats: TrackStats  # the statistics of the last measured step.
    count: Array  # type: ignore[assignment]  # t: the updates seen (int32, saturating); stats are measured when t % every == 0.


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
    return jax.tree.map(lambda u, g: _ratio(u, g)[0], updates, grads)


def _ratio(u: Array, g: Array) -> tuple[Array, Array, Array, Array]:
    """|u| / |g| (0 where g = 0), g != 0, |u| and |g|, in the real dtype of ``u`` and ``g`` (float32 or wider)."""
    dtype = _real_dtype(u, g)
    magnitude_u, magnitude_g = jnp.abs(u).astype(dtype), jnp.abs(g).astype(dtype)
    nonzero = magnitude_g != 0
    return jnp.where(nonzero, magnitude_u / jnp.where(nonzero, magnitude_g, 1), 0), nonzero, magnitude_u, magnitude_g


def _leaf_names(tree: ArrayTree) -> list[str]:
    """Each leaf's path as ``a/b/0`` (the empty string for a bare array): the keys of per-leaf statistics.

    >>> _leaf_names({"dense": {"w": 1, "b": 2}, "out": [3]})
    ['dense/b', 'dense/w', 'out/0']
    """
    paths = [path for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]
    names = [jax.tree_util.keystr(path, simple=True, separator="/") for path in paths]
    if len(set(names)) < len(names):
        raise ValueError(f"per-leaf statistics are named by the leaves' paths, and these repeat: {names}")
    return names


def _check_like(updates: ArrayTree, grads: ArrayTree) -> None:
    structure: Any = jax.tree.structure(updates)  # jaxlib's PyTreeDef stubs lack __eq__.
    if structure != jax.tree.structure(grads):
        raise ValueError(
            f"updates and grads must be trees of the same structure, got {jax.tree.structure(updates)} and "
            f"{jax.tree.structure(grads)}"
        )
    for (path, g), u in zip(jax.tree_util.tree_flatten_with_path(grads)[0], jax.tree.leaves(updates), strict=True):
        if jnp.shape(u) != jnp.shape(g):
            raise ValueError(
                f"leaf {jax.tree_util.keystr(path) or '(the root)'}: the update has shape {jnp.shape(u)} but the "
                f"gradient {jnp.shape(g)}"
            )


# ----------------------------------------------------------------------------------------------- one leaf
class _Totals(NamedTuple):
    """Sums and extremes over a set of coordinates (a leaf, or several merged): what TrackStats follow from."""

    nonzero: Array  # the number of coordinates with g != 0.
    lr_sum: Array  # sum of |u| / |g| over g != 0.
    lr_min: Array  # min of |u| / |g| over g != 0 (inf if none).
    lr_max: Array  # max of |u| / |g| (0 where g = 0).
    u2: Array  # ||u||^2.
    g2: Array  # ||g||^2.
    w2: Array  # ||w||^2 (NaN without params).
    size: Array  # the number of coordinates.
    histogram: Array  # float32[_BINS]: coordinates with g != 0 per bin of |u| / |g|, each sampled one weighing k.


# How each scalar field of _Totals combines over coordinates and over leaves, and its value on no coordinate.
_SUM, _MIN, _MAX = (jnp.add, jnp.sum, 0.0), (jnp.minimum, jnp.min, math.inf), (jnp.maximum, jnp.max, 0.0)
_COMBINE: tuple[tuple[Callable[[Array, Array], Array], Callable[..., Array], float], ...] = (
    _SUM,
    _SUM,
    _MIN,
    _MAX,
    _SUM,
    _SUM,
    _SUM,
)


def _under_mesh() -> bool:
    """True under ``jax.set_mesh`` with several devices: the leaves may be split, so nothing may gather them."""
    return jax.sharding.get_abstract_mesh().size > 1


def _explicitly_sharded(x: Array) -> bool:
    """True for an array split over a mesh's Explicit axes: a scatter from it must be told its output's sharding."""
    return any(jax.typeof(x).sharding.spec)


def _reduce_once(operands: Sequence[Array]) -> list[Array]:
    """The seven scalar fields of :class:`_Totals` from their per-coordinate operands, in one traversal.

    One variadic ``lax.reduce``: XLA reads each coordinate once and updates seven accumulators. On a leaf of
    more than 65536 coordinates it runs over the last axis, then over the (few) partial results: XLA's CPU
    backend vectorizes that form, twice as fast as a flat reduction, so such a vector is first viewed as
    rows. Under a mesh of several devices (``jax.set_mesh``) the fields are seven reductions instead, which
    XLA partitions (one all-reduce); it would gather the leaf for a variadic one.
    """
    if _under_mesh():
        return [whole(x, initial=identity) for x, (_, whole, identity) in zip(operands, _COMBINE, strict=True)]
    if operands[0].ndim == 1 and operands[0].size > _ROW:
        operands = [x.reshape(-1, math.gcd(x.size, _ROW)) for x in operands]
    initial = tuple(jnp.asarray(identity, x.dtype) for x, (_, _, identity) in zip(operands, _COMBINE, strict=True))

    def combine(a: Sequence[Array], b: Sequence[Array]) -> tuple[Array, ...]:
        return tuple(op(x, y) for (op, _, _), x, y in zip(_COMBINE, a, b, strict=True))

    ndim = operands[0].ndim
    if ndim < 2 or operands[0].size <= _ROW:  # Small: one reduction over every axis.
        return list(jax.lax.reduce(tuple(operands), initial, combine, tuple(range(ndim))))
    partial = jax.lax.reduce(tuple(operands), initial, combine, (ndim - 1,))
    return list(jax.lax.reduce(partial, initial, combine, tuple(range(ndim - 1))))


def _stride(size: int, sample: int | None) -> int:
    """Every how many coordinates the histogram reads: 1, or the odd k that keeps at most ``sample``.

    Odd, so that the sampled coordinates of a matrix with a power-of-2 row length cycle through its columns.

    >>> _stride(1000, 65536), _stride(4 * 1024 * 1024, 65536), _stride(4 * 1024 * 1024, None)
    (1, 65, 1)
    """
    if sample is None or size <= sample:
        return 1
    k = -(-size // sample)
    return k + 1 - k % 2


def _histogram(u: Array, g: Array, sample: int | None) -> Array:
    """Counts of |u| / |g| over the coordinates with g != 0, per bin of its float32 bits (see _SHIFT).

    The ratio is computed again from the sampled coordinates, not shared with the reduction: shared, XLA
    would write the whole leaf's ratios to memory for both to read.
    """
    k = _stride(g.size, sample)
    weight: int | Array = k
    if k > 1 and not _under_mesh():
        u, g = u.reshape(-1)[::k], g.reshape(-1)[::k]
    elif k > 1:  # Keep the shape and the sharding (XLA would gather the leaf to slice its flat view): every
        # coordinate is binned, the unsampled ones with weight 0.
        strides = np.cumprod((1, *g.shape[:0:-1]))[::-1]  # Row-major: the last axis varies fastest.
        flat_index = sum(
            jax.lax.broadcasted_iota(jnp.int32, g.shape, axis) * int(stride) for axis, stride in enumerate(strides)
        )
        weight = jnp.where(flat_index % k == 0, k, 0)
    ratio, nonzero, _, _ = _ratio(u, g)
    bits = jax.lax.bitcast_convert_type(ratio.astype(jnp.float32), jnp.uint32) & 0x7FFFFFFF  # |NaN| too.
    bins = jax.lax.shift_right_logical(bits, jnp.uint32(_SHIFT)).astype(jnp.int32)
    replicated = jax.sharding.PartitionSpec() if _explicitly_sharded(bins) else None  # The counts of all shards.
    counts = (
        jnp.zeros(_BINS, jnp.int32)
        .at[bins]
        .add(jnp.where(nonzero, weight, 0), mode="promise_in_bounds", out_sharding=replicated)
    )
    return counts.astype(jnp.float32)


def _leaf_totals(u: Array, g: Array, w: Array | None, sample: int | None) -> _Totals:
    """The totals of one leaf: one traversal for the sums and extremes, a sampled one for the histogram."""
    ratio, nonzero, magnitude_u, magnitude_g = _ratio(u, g)
    dtype = ratio.dtype
    w2 = jnp.square(jnp.abs(w).astype(dtype)) if w is not None else jnp.zeros_like(ratio)
    scalars = _reduce_once(
        (
            nonzero.astype(dtype),
            ratio,
            jnp.where(nonzero, ratio, jnp.inf),
            ratio,
            jnp.square(magnitude_u),
            jnp.square(magnitude_g),
            w2,
        )
    )
    if w is None:
        scalars[6] = jnp.asarray(jnp.nan, dtype)
    return _Totals._make([*scalars, jnp.asarray(ratio.size, dtype), _histogram(u, g, sample)])


def _merge(totals: Sequence[_Totals], dtype: Any) -> _Totals:
    """The totals of several leaves together (of none: no coordinates)."""
    if not totals:
        zero = jnp.zeros((), dtype)
        return _Totals._make([*(jnp.asarray(i, dtype) for _, _, i in _COMBINE), zero, jnp.zeros(_BINS)])
    columns = list(zip(*totals, strict=True))
    merged = [functools.reduce(op, column) for (op, _, _), column in zip(_COMBINE, columns[:7], strict=True)]
    size, histogram = (functools.reduce(jnp.add, column) for column in columns[7:])
    return _Totals._make([*merged, size, histogram])


# Upper triangles of ones: ``x @ _INCLUSIVE`` is the running sum of ``x``; ``x @ _EXCLUSIVE`` of what precedes.
_BLOCK = 64  # The 4096 bins as 64 blocks of 64.
_INCLUSIVE = np.triu(np.ones((_BLOCK, _BLOCK), np.float32))
_EXCLUSIVE = np.triu(np.ones((_BLOCK, _BLOCK), np.float32), k=1)


def _running_sum(histogram: Array) -> Array:
    """``jnp.cumsum(histogram)`` as two 64 x 64 matrix products (within blocks, then the blocks before).

    XLA compiles a scan over 4096 bins into a dozen passes, a quarter of ``track``'s compile time on a small
    model; the products cost a handful. Exact up to 2^24 coordinates; ``HIGHEST`` keeps the float32
    arithmetic on accelerators that would multiply in lower precision.
    """
    blocks = histogram.reshape(_BLOCK, _BLOCK)
    highest = jax.lax.Precision.HIGHEST
    within = jnp.matmul(blocks, _INCLUSIVE, precision=highest)
    before = jnp.matmul(jnp.sum(blocks, axis=1), _EXCLUSIVE, precision=highest)
    return (within + before[:, None]).reshape(-1)


def _quantiles(histogram: Array, probabilities: Sequence[float]) -> list[Array]:
    """The value of the coordinate of rank floor(q (n - 1)) for each q, as the midpoint of its bin."""
    cumulative = _running_sum(histogram)
    total = cumulative[-1]
    ranks = jnp.floor(np.asarray(probabilities, np.float32) * jnp.maximum(total - 1, 0))
    # The first bin whose running count exceeds the rank: the number of bins whose count does not.
    bins = jnp.sum(cumulative[None, :] <= ranks[:, None], axis=1).astype(jnp.uint32)
    values = jax.lax.bitcast_convert_type((bins << _SHIFT) | (1 << (_SHIFT - 1)), jnp.float32)
    values = jnp.where((total > 0) & (bins > 0), values, 0.0)  # Bin 0 holds 0 (and subnormals).
    return list(values)


def _finish(t: _Totals) -> TrackStats:
    zero = jnp.zeros((), t.u2.dtype)
    any_nonzero = t.nonzero > 0

    def norm_ratio(top: Array, bottom: Array) -> Array:  # 0 for no step; inf for a step against a 0 norm.
        return jnp.where(top == 0, zero, jnp.sqrt(top) / jnp.sqrt(bottom))

    p10, median, p90 = _quantiles(t.histogram, _QUANTILES)
    stats = TrackStats(
        effective_lr_mean=jnp.where(any_nonzero, t.lr_sum / jnp.maximum(t.nonzero, 1), zero),
        effective_lr_min=jnp.where(any_nonzero, t.lr_min, zero),
        effective_lr_max=t.lr_max,
        update_rms=jnp.sqrt(t.u2 / jnp.maximum(t.size, 1)),
        grad_rms=jnp.sqrt(t.g2 / jnp.maximum(t.size, 1)),
        update_to_param_ratio=jnp.where(jnp.isnan(t.w2), t.w2, norm_ratio(t.u2, t.w2)),
        effective_lr_p10=p10,
        effective_lr_median=median,
        effective_lr_p90=p90,
        update_to_grad_ratio=norm_ratio(t.u2, t.g2),
    )
    return TrackStats._make(jnp.asarray(s, jnp.float32) for s in stats)


def summarize(
    updates: ArrayTree,
    grads: ArrayTree,
    params: ArrayTree | None = None,
    *,
    per_leaf: bool = False,
    sample: int | None = _SAMPLE,
) -> TrackStats:
    """The :class:`TrackStats` of one step: ``updates`` returned for ``grads`` at ``params``.

    One traversal of each leaf for the sums and extremes (a variadic reduction), one of at most ``sample``
    of its coordinates for the quantiles' histogram, then a few scalar operations.

    Args:
      updates: what the optimizer returned.
      grads: the gradients it was given.
      params: the params the updates will be added to; without them ``update_to_param_ratio`` is NaN.
      per_leaf: statistics of each leaf instead of the whole tree: each field of the :class:`TrackStats` is
        a dict ``{leaf path: value}``, the path as ``"dense/w"``.
      sample: the quantiles of a leaf of more than ``sample`` coordinates read every k-th one (k the
        smallest odd number that keeps at most ``sample``; each stands for k); ``None`` reads them all.

    Returns:
      :class:`TrackStats` of float32 scalars, or of dicts of them (``per_leaf``).
    """
    _check_like(updates, grads)
    if params is not None:
        _check_like(params, grads)
    _checks.check_bool("per_leaf", per_leaf)
    _checks.check_count("sample", sample, allow_none=True)
    # Counts, extremes and a histogram have no useful derivative: a step differentiated through (a learned
    # learning rate) carries none into them. (And Python numbers become arrays.)
    updates, grads, params = jax.tree.map(jnp.asarray, jax.lax.stop_gradient((updates, grads, params)))
    u_leaves, g_leaves = jax.tree.leaves(updates), jax.tree.leaves(grads)
    w_leaves = jax.tree.leaves(params) if params is not None else [None] * len(g_leaves)
    totals = [_leaf_totals(u, g, w, sample) for u, g, w in zip(u_leaves, g_leaves, w_leaves, strict=True)]
    names = _leaf_names(grads)
    if not (per_leaf and names):  # A tree without leaves has one set of statistics, per leaf or not.
        merged = _merge(totals, _real_dtype(*u_leaves, *g_leaves))
        return _finish(merged if params is not None else merged._replace(w2=jnp.full_like(merged.w2, jnp.nan)))
    per = [_finish(t) for t in totals]
    return TrackStats._make({name: s[i] for name, s in zip(names, per, strict=True)} for i in range(len(per[0])))


def track(
    tx: optax.GradientTransformation,
    *,
    per_leaf: bool = False,
    every: int = 1,
    sample: int | None = _SAMPLE,
) -> optax.GradientTransformation:
    """Wrap ``tx`` so that its state also holds :class:`TrackStats` of its steps.

    The updates are ``tx``'s own arrays, returned unchanged; the state is :class:`TrackState`
    ``(inner_state, stats, count)``. (Under ``jax.jit`` XLA compiles the update together with its new
    consumers, the statistics, and may then round the update differently in its last bit, as it does when a
    training step also logs ``optax.tree.norm(updates)``; op by op the updates are identical.) It
    composes like any transformation (``optax.chain``, ``optax.inject_hyperparams``, ``optax.MultiSteps``,
    ``optax.apply_if_finite``); a ``GradientTransformationExtraArgs`` stays one and passes its extra
    arguments through. Pass ``params`` to ``update`` to get ``update_to_param_ratio``; find the statistics
    in a larger state with ``optax.tree_utils.tree_get(opt_state, "stats")`` and log them with
    :func:`scalars`.

    Cost: one traversal of each leaf's updates, gradients and params (a variadic reduction XLA runs as one
    loop) and a histogram of at most ``sample`` coordinates per leaf; ``every=k`` computes them on one step in
    k (on a CPU, XLA's conditional still copies its operands on every step: see benchmarks/RESULTS.md).

    Args:
      tx: any ``optax.GradientTransformation``.
      per_leaf: keep the statistics of every params leaf instead of the whole model's: each field of
        :class:`TrackStats` is then a dict ``{leaf path: value}``, the path as ``"dense/w"`` (a flat dict of
        replicated scalars that ``optax.tree_utils.tree_map_params`` and ``sharding.state_shardings`` leave
        alone; a tree without leaves has the whole tree's scalars).
      every: measure on steps 0, k, 2k, ... (counting this transformation's updates) and keep the last
        values in between.
      sample: the quantiles of a leaf of more than ``sample`` coordinates read every k-th one (k the
        smallest odd number that keeps at most ``sample``); ``None``: every coordinate, exactly to the
        histogram's resolution, at the price of a scatter over the whole leaf.

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
    _checks.check_bool("per_leaf", per_leaf)
    _checks.check_count("every", every)
    _checks.check_count("sample", sample, allow_none=True)

    def init_fn(params: ArrayTree) -> TrackState:
        names = _leaf_names(params)

        def field() -> Array | dict[str, Array]:  # Distinct arrays: a donated state must not repeat a buffer.
            # Without leaves (Optax's tree_map_params calls init with a leafless placeholder), a scalar: so that
            # tree_map_params sees no params tree here and leaves the statistics alone.
            if per_leaf and names:
                return {name: _leafwise.init_scalar(params, 0.0, jnp.float32) for name in names}
            return _leafwise.init_scalar(params, 0.0, jnp.float32)

        stats = TrackStats._make(field() for _ in TrackStats._fields)
        return TrackState(tx.init(params), stats, _leafwise.init_count(params))

    def tracked_update(
        updates: ArrayTree, state: TrackState, params: ArrayTree | None, extra_args: dict[str, Any]
    ) -> tuple[ArrayTree, TrackState]:
        new_updates, inner_state = tx.update(updates, state.inner_state, params, **extra_args)

        def measure() -> TrackStats:
            return summarize(new_updates, updates, params, per_leaf=per_leaf, sample=sample)

        # (A branch that computed the update again from the step's inputs, instead of reading it, would make
        # XLA copy the donated inner state on every step: dearer.)
        stats = measure() if every == 1 else jax.lax.cond(state.count % every == 0, measure, lambda: state.stats)
        return new_updates, TrackState(inner_state, stats, _leafwise.next_count(state.count))

    if isinstance(tx, optax.GradientTransformationExtraArgs):

        def update_extra(
            updates: ArrayTree, state: TrackState, params: ArrayTree | None = None, **extra_args: Any
        ) -> tuple[ArrayTree, TrackState]:
            return tracked_update(updates, state, params, extra_args)

        return optax.GradientTransformationExtraArgs(init_fn, update_extra)

    def update_fn(
        updates: ArrayTree, state: TrackState, params: ArrayTree | None = None
    ) -> tuple[ArrayTree, TrackState]:
        return tracked_update(updates, state, params, {})

    return optax.GradientTransformation(init_fn, update_fn)


def scalars(stats: TrackStats | TrackState, prefix: str = "") -> dict[str, float]:
    """``{name: value}`` of every statistic, as Python floats, for any logger.

    The names are ``prefix/field`` and, for per-leaf statistics, ``prefix/field/path/of/the/leaf``
    (TensorBoard groups the charts by the part before the first ``/``). The values are read from the
    device once.

    Args:
      stats: a :class:`TrackStats` (``state.stats``), or the :class:`TrackState` that holds it.
      prefix: prepended to every name, with a ``/``; ``""`` for none.

    Returns:
      A dict of Python floats, in the order of :class:`TrackStats`' fields.

    Examples:
      >>> import jax.numpy as jnp
      >>> import optax
      >>> from adaptive_tx.diagnostics import scalars, track
      >>> params = {"dense": {"w": jnp.ones(3)}, "bias": jnp.zeros(2)}
      >>> tx = track(optax.sgd(0.5), per_leaf=True)
      >>> _, state = tx.update({"dense": {"w": jnp.full(3, 2.0)}, "bias": jnp.ones(2)}, tx.init(params), params)
      >>> logged = scalars(state, prefix="opt")
      >>> logged["opt/effective_lr_mean/dense/w"], logged["opt/update_to_param_ratio/dense/w"]
      (0.5, 1.0)
      >>> logged["opt/effective_lr_median/bias"]  # 0.5 to within 1/32: the midpoint of its histogram bin.
      0.515625
    """
    if isinstance(stats, TrackState):
        stats = stats.stats
    if not isinstance(stats, TrackStats):
        raise TypeError(f"stats must be a TrackStats or a TrackState, got {type(stats).__name__}")
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
    named = {}
    for field, values in zip(TrackStats._fields, jax.device_get(stats), strict=True):
        for leaf, value in values.items() if isinstance(values, dict) else [("", values)]:
            named["/".join(part for part in (prefix, field, leaf) if part)] = float(np.asarray(value))
    return named
