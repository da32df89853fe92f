"""Many small leaves: run a leafwise transformation on one flat vector per dtype.

A model with thousands of small leaves (biases, norms, embeddings of a few rows) makes every leafwise
optimizer trace, compile and launch thousands of tiny computations per step. ``packed(tx)`` concatenates the
leaves of each dtype into one vector, runs ``tx`` once per dtype on those vectors, and splits the result
back: the state is a handful of flat buffers, and a step is a few large elementwise loops.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adaptive_tx import _leafwise

__all__ = ("PackedState", "packed")

Array = jax.Array
ArrayTree = Any


class PackedState(NamedTuple):
    """State of :func:`packed`: the wrapped transformation's state over ``{dtype name: flat vector}``."""

    inner_state: optax.OptState  # tx.init({"float32": (n_float32,), "bfloat16": (n_bfloat16,), ...})


# --------------------------------------------------------------------------- the layout


def _dtype(leaf: Any) -> np.dtype:
    """The dtype a leaf is stored in: Python numbers and float64 NumPy arrays as JAX canonicalizes them."""
    return _leafwise.canonical_dtype(_leafwise._as_param(leaf).dtype)


def _groups(leaves: list[Any]) -> dict[str, list[int]]:
    """The indices of the leaves of each dtype, by dtype name, in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, leaf in enumerate(leaves):
        groups.setdefault(_dtype(leaf).name, []).append(i)
    return groups


def _pack(leaves: list[Any], groups: dict[str, list[int]]) -> dict[str, Any]:
    """One flat vector per group: the raveled leaves, concatenated (a ``ShapeDtypeStruct`` if any is abstract).

    A group's vector has the wider of its leaves' dtypes (gradients of another precision than their params
    are not rounded); the leaves of one group have one dtype as a rule, and are then only concatenated.
    """
    flat: dict[str, Any] = {}
    for name, indices in groups.items():
        members = [_leafwise._as_param(leaves[i]) for i in indices]
        dtypes = {_leafwise.canonical_dtype(x.dtype) for x in members}
        dtype = dtypes.pop() if len(dtypes) == 1 else _leafwise.wider(*dtypes)
        size = sum(int(np.prod(np.shape(x), dtype=int)) for x in members)
        if any(isinstance(x, jax.ShapeDtypeStruct) for x in members):
            flat[name] = jax.ShapeDtypeStruct((size,), dtype)
        else:
            flat[name] = jnp.concatenate([jnp.ravel(jnp.asarray(x)).astype(dtype) for x in members])
    return flat


def _unpack(flat: dict[str, Array], leaves: list[Any], groups: dict[str, list[int]], treedef: Any) -> ArrayTree:
    """The inverse of :func:`_pack`: one split per dtype, each piece reshaped like its leaf.

    This split is most of the compile time of a packed step on CPU: every piece is its own output buffer, so
    its own kernel (the slice fused with whatever consumes it, such as ``optax.apply_updates``'s add), and
    the pieces' offsets are constants inside those kernels, so no two are alike and XLA compiles each one,
    where the identical per-leaf kernels of an unpacked optimizer are compiled once. ``jax.lax.split``,
    ``lax.slice`` or ``lax.dynamic_slice`` with constant offsets compile to the same kernels; only offsets
    known at run time alone, or pieces cut at equal offsets from separate buffers, make the kernels alike.
    """
    out: list[Any] = [None] * len(leaves)
    for name, indices in groups.items():
        shapes = [np.shape(leaves[i]) for i in indices]
        offsets = np.cumsum([int(np.prod(s, dtype=int)) for s in shapes])[:-1]
        for i, shape, piece in zip(indices, shapes, jnp.split(flat[name], offsets), strict=True):
            out[i] = piece.reshape(shape)
    return treedef.unflatten(out)


# --------------------------------------------------------------------------- checks


def _check_unsharded(tree: ArrayTree, what: str) -> None:
    """Refuse leaves split over several devices: packing them would gather every shard onto one vector.

    A concrete array (or ``jax.ShapeDtypeStruct``) carries its sharding, and so does a traced one over
    Explicit mesh axes (in its type): those are refused here, naming the leaf. Traced over Auto axes (or no
    mesh, the arguments of a ``jax.jit`` committed to a ``NamedSharding``), a leaf's split is not in its type:
    XLA picks it when it compiles, so on more than one device the leaf is inspected then
    (``jax.debug.inspect_array_sharding``), and a split one fails the compilation with the same message.
    """
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = jax.tree_util.keystr(path) or "(the root)"
        if not isinstance(leaf, jax.core.Tracer):
            sharding = getattr(leaf, "sharding", None)
            if isinstance(sharding, jax.sharding.Sharding) and _split(sharding):
                raise _sharded_error(what, name, sharding)
            continue
        typed = getattr(jax.typeof(leaf), "sharding", None)
        if isinstance(typed, jax.sharding.NamedSharding) and _explicitly_split(typed):
            raise _sharded_error(what, name, typed)
        if _split_unknown(typed):
            jax.debug.inspect_array_sharding(leaf, callback=functools.partial(_refuse_split, what, name))


def _split(sharding: jax.sharding.Sharding) -> bool:
    """Whether an array placed by ``sharding`` has a piece on one device that another device lacks."""
    return len(sharding.device_set) > 1 and not sharding.is_fully_replicated


def _explicitly_split(typed: jax.sharding.NamedSharding) -> bool:
    """Whether a traced leaf's type splits it: its spec names Explicit mesh axes of more than one device."""
    sizes = dict(zip(typed.mesh.axis_names, typed.mesh.axis_sizes, strict=True))
    devices = 1
    for entry in typed.spec:  # None, an axis name, or a tuple of them (UNCONSTRAINED is not a split).
        for axis in (entry,) if isinstance(entry, str) else entry if isinstance(entry, tuple) else ():
            devices *= sizes.get(axis, 1)
    return devices > 1


def _split_unknown(typed: Any) -> bool:
    """Whether a traced leaf may be split without its type saying so: Auto mesh axes, or no mesh, and devices.

    Over Explicit (or Manual, inside ``shard_map``) axes alone the type tells everything; on one device
    nothing can be split. Those traces get no inspection, so they compile and dispatch as before.
    """
    mesh = getattr(typed, "mesh", None)
    if mesh is None or mesh.empty:
        return jax.device_count() > 1
    auto = jax.sharding.AxisType.Auto
    sizes = [n for n, t in zip(mesh.axis_sizes, mesh.axis_types, strict=True) if t == auto]
    return int(np.prod(sizes, dtype=int)) > 1


def _refuse_split(what: str, name: str, sharding: jax.sharding.Sharding) -> None:
    """``jax.debug.inspect_array_sharding``'s callback: the sharding XLA chose, while it compiles."""
    if _split(sharding):
        raise _sharded_error(what, name, sharding)


def _sharded_error(what: str, name: str, sharding: Any) -> ValueError:
    """The refusal: the leaf, its sharding, and the way out."""
    return ValueError(
        f"atx.packed: {what} leaf {name} is sharded over several devices ({sharding}); packing would gather "
        "every shard into one vector. Use the unpacked transformation for sharded params: its state is placed "
        "like the params, and adaptive_tx.sharding.state_shardings gives its shardings (ZeRO-1 included)."
    )


def _check_like_params(updates: ArrayTree, params: ArrayTree) -> None:
    """The gradients must be a tree like the params (which are the tree ``init`` packed): name the leaf."""
    structure: Any = jax.tree.structure(updates)  # jaxlib's PyTreeDef stubs lack __eq__.
    if structure != jax.tree.structure(params):
        _leafwise.check_gradients(updates, params)  # Raises, naming the missing or extra leaf.
    for path, g, p in zip(
        (p for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]),
        jax.tree.leaves(updates),
        jax.tree.leaves(params),
        strict=True,
    ):
        if np.shape(g) != np.shape(p):
            raise ValueError(
                f"atx.packed: gradient leaf {jax.tree_util.keystr(path) or '(the root)'} has shape {np.shape(g)}, "
                f"but the param has shape {np.shape(p)}."
            )


# --------------------------------------------------------------------------- the wrapper


def packed(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    r"""Run the leafwise transformation ``tx`` on one flat vector per dtype: for models with many small leaves.

    ``init`` concatenates the raveled params of each dtype into one vector and calls ``tx.init`` on the dict
    ``{dtype name: vector}`` (``{"float32": ..., "bfloat16": ...}``); the state is :class:`PackedState`
    ``(inner_state)``, a few flat buffers instead of one per leaf and moment. ``update`` concatenates the
    gradients (and the params, if given) the same way, calls ``tx.update`` once, and splits the result back
    into the params' tree, one split per dtype. The tree's structure, shapes and dtypes are static: they
    are read from the gradients (and params) at every trace, never stored.

    Only for elementwise transformations, whose update of a coordinate reads only that coordinate: the five
    optimizers and their building blocks, NAdam, ``bias_correction``, the PyTorch compat functions without
    clipping, and Optax's elementwise ones. Those give the results of ``tx`` itself (the same float32
    operations on the same values, in one loop instead of many). Transformations whose math depends on how
    the params are split into leaves give *different* results packed: per-leaf norms
    (``optax.clip_by_block_rms``, Keras's ``clipnorm``), factored or matrix preconditioners (Adafactor,
    Shampoo), anything that reads a leaf's shape. Global ones (``optax.clip_by_global_norm``) are unchanged.

    It composes like any transformation: inside ``optax.chain``, around ``optax.inject_hyperparams(...)``
    (the hyperparameters are then in ``state.inner_state.hyperparams``) or inside it, under ``jax.jit`` with
    donated params and state, and through checkpoints (the state is plain arrays). A
    ``GradientTransformationExtraArgs`` stays one and passes its extra arguments through. Gradients should
    come in the tree of the params given to ``init``; pass ``params`` to ``update`` to have a differing leaf
    named. Integer and boolean params leaves are refused by name (``init``, and ``update`` given params).

    Params (and gradients) split over several devices are refused, naming the leaf: packing them would
    gather every shard into one replicated vector. Use the unpacked transformation there, whose state follows
    the params' shardings (``adaptive_tx.sharding.state_shardings``). Concrete arrays, ``ShapeDtypeStruct``
    and arrays traced over Explicit mesh axes carry their sharding, and are refused with a ``ValueError``
    when ``init`` or ``update`` runs or is traced. Under ``jax.jit`` over Auto mesh axes (or committed
    arguments and no mesh), the sharding is not in the traced type: JAX only knows it when XLA compiles the
    function, so on more than one device each leaf is inspected then (``jax.debug.inspect_array_sharding``)
    and a split one fails the compilation (the call, or ``.lower(...).compile()``; not ``.lower`` or
    ``jax.eval_shape``) with a ``jax.errors.JaxRuntimeError`` that carries the same message. The compiled
    program is unchanged, but the inspection is a JAX effect, which takes the jitted function off JAX's C++
    dispatch path: some 30 us more per call (measured on 8 simulated CPU devices). On one device, over
    Explicit axes, and eagerly, nothing is inspected and nothing is added.

    Args:
      tx: a leafwise ``optax.GradientTransformation`` (e.g. ``atx.adam(1e-3)``).

    Returns:
      A transformation of the same kind as ``tx``, with :class:`PackedState`.

    Examples:
      >>> import jax.numpy as jnp
      >>> import adaptive_tx as atx
      >>> params = {"w": jnp.ones((2, 2)), "b": jnp.zeros(2), "scale": jnp.ones((), jnp.bfloat16)}
      >>> tx = atx.packed(atx.adam(learning_rate=0.1))
      >>> state = tx.init(params)
      >>> {k: v.shape for k, v in state.inner_state[0].mu.items()}  # One buffer per dtype.
      {'bfloat16': (1,), 'float32': (6,)}
      >>> grads = {"w": jnp.full((2, 2), 0.5), "b": jnp.array([1.0, -2.0]), "scale": jnp.ones((), jnp.bfloat16)}
      >>> updates, state = tx.update(grads, state, params)
      >>> print(updates["b"], updates["scale"])  # -lr * sign(g); a bfloat16 param's updates are bfloat16.
      [-0.1  0.1] -0.100098
    """
    if not isinstance(tx, optax.GradientTransformation):
        raise TypeError(f"packed wraps an optax.GradientTransformation, got {type(tx).__name__}")

    def init_fn(params: ArrayTree) -> PackedState:
        _leafwise.check_params(params)  # On the user's tree: an integer leaf is named, not its dtype group.
        leaves, _ = jax.tree.flatten(params)
        if not leaves:  # No leaves (also optax.tree_utils.tree_map_params's placeholder): nothing to pack.
            return PackedState(tx.init(params))
        _check_unsharded(params, "param")
        try:
            return PackedState(tx.init(_pack(leaves, _groups(leaves))))
        except (TypeError, ValueError):
            # A refusal names a dtype group ("['complex64']"); on the user's tree (shapes only) ``tx`` names the leaf.
            jax.eval_shape(tx.init, params)
            raise

    def update_fn(
        updates: ArrayTree, state: PackedState, params: ArrayTree | None = None, **extra_args: Any
    ) -> tuple[ArrayTree, PackedState]:
        leaves, treedef = jax.tree.flatten(updates)
        if not leaves:
            new_updates, inner_state = tx.update(updates, state.inner_state, params, **extra_args)
            return new_updates, PackedState(inner_state)
        if params is not None:
            _leafwise.check_params(params)
            _check_like_params(updates, params)
            _check_unsharded(params, "param")
        _check_unsharded(updates, "gradient")
        # The params' dtypes pick the groups (as init did); without params, the gradients' own.
        groups = _groups(leaves if params is None else jax.tree.leaves(params))
        flat_params = None if params is None else _pack(jax.tree.leaves(params), groups)
        flat = _pack(leaves, groups)
        try:
            flat_updates, inner_state = tx.update(flat, state.inner_state, flat_params, **extra_args)
        except ValueError as error:
            if params is not None:
                raise
            sizes = ", ".join(f"{name}: {x.shape[0]}" for name, x in flat.items())
            raise ValueError(
                f"atx.packed: the gradients do not fit the state ({error}). The wrapped transformation sees one "
                f"flat vector per dtype ({sizes} coordinates); gradients must be a tree like the params given to "
                "init. Pass params to update to have the differing leaf named."
            ) from error
        return _unpack(flat_updates, leaves, groups, treedef), PackedState(inner_state)

    if isinstance(tx, optax.GradientTransformationExtraArgs):
        return optax.GradientTransformationExtraArgs(init_fn, update_fn)

    def update_plain(
        updates: ArrayTree, state: PackedState, params: ArrayTree | None = None
    ) -> tuple[ArrayTree, PackedState]:
        return update_fn(updates, state, params)

    return optax.GradientTransformation(init_fn, update_plain)
