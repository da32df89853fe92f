"""Placing optimizer state on a mesh of devices: follow the params, or spread it over the data axis (ZeRO-1).

``state_shardings(tx, params, mesh)`` gives the ``NamedSharding`` of every leaf of ``tx.init(params)``: a
leaf shaped like a parameter gets that parameter's sharding, everything else (step counts, injected
hyperparameters, statistics) is replicated. A jitted step whose state has these shardings runs with no
communication at all: each device updates its own slice of the params with its own slice of the state.

With ``zero_axis="data"`` each parameter-shaped leaf is additionally split over the ``data`` mesh axis, the
axis over which data-parallel replicas hold identical copies of the params (ZeRO stage 1, Rajbhandari et
al. 2020): every replica keeps only its slice of the moments, so per-device state memory drops by the size
of that axis. The price is one all-gather per step: each replica computes the update of its slice, and the
params (replicated over ``data``) need the whole update.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from adaptive_tx._quantize import QuantizedArray

__all__ = ("abstract_state", "param_sharding", "state_shardings", "zero_spec")

ArrayTree = Any


def param_sharding(param: Any, mesh: Mesh) -> NamedSharding:
    """The sharding of ``param`` on ``mesh``: its own ``NamedSharding`` if it has one there, else replicated.

    Args:
      param: an array, a ``jax.ShapeDtypeStruct`` (with or without a sharding), or a ``NamedSharding`` /
        ``PartitionSpec`` standing for one.
      mesh: the device mesh the state goes on.
    """
    if isinstance(param, PartitionSpec):
        return NamedSharding(mesh, param)
    sharding = param if isinstance(param, NamedSharding) else getattr(param, "sharding", None)
    if isinstance(sharding, NamedSharding):
        if sharding.mesh.shape_tuple != mesh.shape_tuple:
            raise ValueError(
                f"a parameter is sharded on a mesh of shape {dict(sharding.mesh.shape)}, but the state goes on "
                f"a mesh of shape {dict(mesh.shape)}; pass the params' own mesh"
            )
        return NamedSharding(mesh, sharding.spec)
    return NamedSharding(mesh, PartitionSpec())


def zero_spec(
    spec: PartitionSpec, shape: tuple[int, ...], mesh: Mesh, zero_axis: str, *, block_size: int = 1
) -> PartitionSpec:
    """``spec`` additionally split over the mesh axis ``zero_axis`` (ZeRO-1), where a dimension allows it.

    The dimension chosen is the largest one that ``spec`` leaves unsharded and whose size the axis divides
    (the first such, on a tie); the last one only into shards of whole blocks of ``block_size`` elements
    (quantized state, ``adaptive_tx.quantized``). ``spec`` comes back unchanged when it already uses
    ``zero_axis``, or when no dimension fits (a scalar, a vector of 3 on a data axis of 2): that leaf stays
    replicated over the axis.

    Examples:
      >>> import jax
      >>> from jax.sharding import PartitionSpec as P
      >>> from adaptive_tx.sharding import zero_spec
      >>> mesh = jax.sharding.AbstractMesh((4,), ("data",))
      >>> zero_spec(P(), (8, 512), mesh, "data"), zero_spec(P(), (8, 512), mesh, "data", block_size=256)
      (P(None, 'data'), P('data', None))
    """
    if zero_axis not in mesh.shape:
        raise ValueError(f"zero_axis {zero_axis!r} is not an axis of the mesh, whose axes are {tuple(mesh.shape)}")
    entries = tuple(spec) + (None,) * (len(shape) - len(spec))
    used = {a for e in entries if e is not None for a in (e if isinstance(e, tuple) else (e,))}
    size = mesh.shape[zero_axis]
    if zero_axis in used or size == 1:
        return PartitionSpec(*entries)
    free = [
        d
        for d, e in enumerate(entries)
        if e is None and shape[d] > 0 and shape[d] % (size * (block_size if d == len(shape) - 1 else 1)) == 0
    ]
    if not free:
        return PartitionSpec(*entries)
    d = max(free, key=lambda i: (shape[i], -i))
    return PartitionSpec(*(zero_axis if i == d else e for i, e in enumerate(entries)))


def _whole_blocks(spec: PartitionSpec, shape: tuple[int, ...], mesh: Mesh, block_size: int, path: str) -> PartitionSpec:
    """``spec`` of a quantized leaf, checked: a split last axis must give each shard whole blocks."""
    entries = tuple(spec) + (None,) * (len(shape) - len(spec))
    last = entries[-1] if entries else None
    if last is not None:
        shards = int(np.prod([mesh.shape[a] for a in (last if isinstance(last, tuple) else (last,))]))
        if (shape[-1] // shards) % block_size:
            raise ValueError(
                f"params leaf {path} splits its last axis of {shape[-1]} into {shards} shards of "
                f"{shape[-1] // shards}, which is not a multiple of the quantized state's block_size "
                f"{block_size}: a block would cross a shard. Pick a block_size that divides {shape[-1] // shards}."
            )
    return PartitionSpec(*entries)


def state_shardings(
    tx: optax.GradientTransformation, params: ArrayTree, mesh: Mesh, *, zero_axis: str | None = None
) -> ArrayTree:
    """The ``NamedSharding`` of every leaf of ``tx.init(params)`` on ``mesh``.

    Parameter-shaped leaves (moments, accumulators, traces; found as Optax's ``tree_map_params`` finds them)
    get their parameter's sharding (quantized state: its codes, and its scales by blocks of the last axis;
    a split last axis must give each shard whole blocks); every other leaf (step counts, injected
    hyperparameters, ``track``'s statistics) is replicated. With ``zero_axis``, parameter-shaped leaves are
    also split over that mesh axis along the largest dimension the parameter's spec leaves free and the axis
    size divides (:func:`zero_spec`); a leaf with no such dimension stays replicated over the axis.

    Works for any transformation: ``adaptive_tx``'s, Optax's, chains, ``inject_hyperparams``,
    ``MultiSteps``, ``apply_if_finite``, ``diagnostics.track``. Nothing is allocated: the state's shapes
    come from ``jax.eval_shape``.

    Use it to create the state where it belongs, and to keep it there across steps::

        shardings = state_shardings(tx, params, mesh, zero_axis="data")
        state = jax.jit(tx.init, out_shardings=shardings)(params)
        step = jax.jit(train_step, out_shardings=(param_shardings, shardings))

    Without ``zero_axis`` such a step compiles with no collective for the optimizer. With ZeRO-1 it
    compiles to one all-gather of the updates over ``zero_axis`` (a data-parallel step's gradient
    all-reduce may become a reduce-scatter).

    Args:
      tx: the transformation whose state is placed.
      params: the params, as arrays or ``jax.ShapeDtypeStruct``s; a leaf's ``NamedSharding`` (on a mesh of
        ``mesh``'s shape) is its placement, a leaf without one is replicated.
      mesh: the device mesh, with Auto or Explicit axes.
      zero_axis: the mesh axis to spread the state over (ZeRO-1), usually the data-parallel one; ``None``
        (default) places the state exactly like the params.

    Returns:
      A pytree like ``tx.init(params)`` of ``NamedSharding`` leaves.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import adaptive_tx as atx
      >>> from adaptive_tx.sharding import state_shardings
      >>> mesh = jax.sharding.AbstractMesh((2, 4), ("data", "model"))  # or a real jax.make_mesh(...)
      >>> params = {"w": jax.ShapeDtypeStruct((6, 8), jnp.float32)}  # replicated: no sharding of its own
      >>> adam = state_shardings(atx.adam(1e-3), params, mesh, zero_axis="data")[0]
      >>> print(adam.mu["w"].spec, adam.nu["w"].spec, adam.count.spec)
      P(None, 'data') P(None, 'data') P()

    References:
      Rajbhandari, Rasley, Ruwase & He, *ZeRO: Memory Optimizations Toward Training Trillion Parameter
      Models*, SC 2020. https://arxiv.org/abs/1910.02054
    """
    if zero_axis is not None and zero_axis not in mesh.shape:
        raise ValueError(f"zero_axis {zero_axis!r} is not an axis of the mesh, whose axes are {tuple(mesh.shape)}")
    replicated = NamedSharding(mesh, PartitionSpec())
    shapes = jax.tree.map(lambda p: jax.ShapeDtypeStruct(np.shape(p), jax.numpy.result_type(p)), params)
    placements = jax.tree.map(lambda p: param_sharding(p, mesh), params)
    abstract_state = jax.eval_shape(tx.init, shapes)

    paths = jax.tree_util.tree_map_with_path(lambda path, _: jax.tree_util.keystr(path), params)

    def place(leaf: Any, param: jax.ShapeDtypeStruct, sharding: NamedSharding, path: str) -> Any:
        if isinstance(leaf, QuantizedArray):  # Codes like the parameter, scales like them by blocks.
            spec = _whole_blocks(sharding.spec, param.shape, mesh, leaf.block_size, path)
            if zero_axis is not None:
                spec = zero_spec(spec, param.shape, mesh, zero_axis, block_size=leaf.block_size)
            return QuantizedArray(NamedSharding(mesh, spec), NamedSharding(mesh, spec), leaf.block_size)
        if np.shape(leaf) != param.shape:  # A leaf in a params-shaped tree that is not params-shaped itself.
            return replicated
        spec = sharding.spec
        if zero_axis is not None:
            spec = zero_spec(spec, param.shape, mesh, zero_axis)
        return NamedSharding(mesh, spec)

    try:
        return optax.tree_utils.tree_map_params(
            tx,
            place,
            abstract_state,
            shapes,
            placements,
            paths,
            # A leaf, or a subtree that init builds otherwise for a leafless tree (track's per-leaf dicts).
            transform_non_params=lambda other: jax.tree.map(lambda _: replicated, other),
            is_leaf=lambda x: isinstance(x, QuantizedArray),
        )
    except ValueError as error:  # A state holding trees that are not the params' (atx.packed's flat buffers).
        raise ValueError(
            "state_shardings could not match the state of this transformation to the params' tree: its state "
            "holds trees shaped otherwise (atx.packed keeps flat buffers, which are placed on one device; use "
            f"the unpacked transformation on a mesh). Underlying error: {error}"
        ) from error


def abstract_state(
    tx: optax.GradientTransformation, params: ArrayTree, mesh: Mesh, *, zero_axis: str | None = None
) -> ArrayTree:
    """``tx.init(params)`` as ``jax.ShapeDtypeStruct``s that carry their :func:`state_shardings` on ``mesh``.

    The target to restore a checkpoint of the state into, on any mesh: a checkpoint saved on one mesh (or
    with or without ZeRO-1) comes back on ``mesh`` with every leaf placed as :func:`state_shardings` places
    it. With Orbax::

        params_target = jax.tree.map(
            lambda p, s: jax.ShapeDtypeStruct(p.shape, p.dtype, sharding=s), params, new_param_shardings
        )
        target = (params_target, abstract_state(tx, params_target, new_mesh, zero_axis="data"))
        params, opt_state = ocp.StandardCheckpointer().restore(path, target)

    Nothing is allocated: shapes and dtypes come from ``jax.eval_shape(tx.init, ...)``.

    Args:
      tx: the transformation whose state is restored.
      params: the params on ``mesh``, as arrays or ``jax.ShapeDtypeStruct``s; as for :func:`state_shardings`,
        a leaf's ``NamedSharding`` (on a mesh of ``mesh``'s shape) is its placement, a leaf without one is
        replicated.
      mesh: the device mesh the state goes on, with Auto or Explicit axes.
      zero_axis: the mesh axis to spread the state over (ZeRO-1); ``None`` (default) places the state like
        the params.

    Returns:
      A pytree like ``tx.init(params)`` of ``jax.ShapeDtypeStruct``s, each with its ``NamedSharding``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> import adaptive_tx as atx
      >>> from adaptive_tx.sharding import abstract_state
      >>> mesh = jax.make_mesh((1, 1), ("data", "model"))
      >>> target = abstract_state(atx.adam(1e-3), {"w": jnp.zeros((4, 2))}, mesh, zero_axis="data")
      >>> nu = target[0].nu["w"]
      >>> print(nu.shape, nu.dtype, tuple(nu.sharding.spec), target[0].count.dtype)
      (4, 2) float32 (None, None) int32

    References:
      Orbax, *Checkpointing PyTrees of Arrays* (restoring with shardings):
      https://orbax.readthedocs.io/en/latest/guides/checkpoint/checkpointing_pytrees.html
    """
    shapes = jax.tree.map(lambda p: jax.ShapeDtypeStruct(np.shape(p), jax.numpy.result_type(p)), params)
    return jax.tree.map(
        lambda leaf, sharding: jax.ShapeDtypeStruct(
            leaf.shape, leaf.dtype, sharding=sharding, weak_type=leaf.weak_type
        ),
        jax.eval_shape(tx.init, shapes),
        state_shardings(tx, params, mesh, zero_axis=zero_axis),
    )
