"""Lifting a per-array step to pytrees: the one place a state leaf is created, placed or cast.

The precision policy of the whole library lives here:

- **Math** runs in float32 or wider: float64 if any input is float64, complex64/complex128 for complex
  leaves. float16 and bfloat16 leaves are upcast, so ``eps = 1e-8`` (0 in float16) and ``1 - 0.999**t``
  (0 in bfloat16) keep their meaning.
- **The direction** comes back in Optax's dtype convention (:func:`updates_dtype`): the wider of the
  gradient's and the params' dtype. bfloat16 params give bfloat16 updates though the math and the squared
  accumulator are float32; float32 params with float16 gradients give float32 updates, so the learning rate
  is applied in float32 and a step of ``2e-8`` is not rounded away.
- **Squared accumulators** (sums and averages of ``|g|^2``) are real, and float32 when the params are
  16-bit: in float16 AdaGrad's sum overflows after a few hundred steps of ``g = 10``; in bfloat16 a decay of
  0.999 rounds ``0.999 * s`` back to ``s``. An explicit dtype argument (``nu_dtype=jnp.bfloat16``) wins; a
  complex one names the precision (``complex64``: float32).
- **First moments** (averages of ``g``) keep the params' dtype, complex for complex params, unless a dtype
  argument says otherwise (a real one for complex params is refused: it would drop the imaginary part).
- **Quantized state** (a dtype argument ``quantized(...)``): a field's leaves of at least ``min_size``
  elements are kept as 8-bit codes and block scales (:mod:`adaptive_tx._quantize`), decoded into the math's
  float32 and encoded again in the same step, leaf by leaf; smaller leaves and scalars stay float32 (float64
  for float64 params). It takes no part in the updates' dtype, and complex params are refused.
- **Params** must be floating point: an integer or boolean leaf is refused at ``init``, naming it.

Placement: every params-shaped state leaf is created with its parameter's sharding (eagerly, on
``jax.ShapeDtypeStruct``s that carry a sharding, and under ``jax.jit`` with Explicit or Auto mesh axes);
scalar state (step counts) is replicated on the params' mesh.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import AxisType, NamedSharding, PartitionSpec

from adaptive_tx import _checks, _math, _quantize
from adaptive_tx._quantize import QuantizedArray, QuantizedDtype

Array = jax.Array
ArrayTree = Any

_LOW_PRECISION = (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16))


# --------------------------------------------------------------------------- dtypes


def canonical_dtype(dtype: Any) -> np.dtype:
    """``dtype`` as JAX stores it: float64 becomes float32 unless ``jax_enable_x64`` is on."""
    return jnp.dtype(jax.dtypes.canonicalize_dtype(dtype))


def _real(dtype: np.dtype) -> np.dtype:
    return jnp.dtype(jnp.finfo(dtype).dtype)


def _complex(real: np.dtype) -> np.dtype:
    return jnp.dtype(jnp.complex128 if real == jnp.float64 else jnp.complex64)


def wider(*dtypes: Any, at_least: Any = None) -> np.dtype:
    """The narrowest inexact dtype that holds every one of ``dtypes`` (and ``at_least``) exactly.

    float16 and bfloat16 together give float32; any complex input gives a complex result.
    """
    dtypes = tuple(jnp.dtype(d) for d in dtypes) + (() if at_least is None else (jnp.dtype(at_least),))
    reals = {_real(d) for d in dtypes}
    bits = max(jnp.finfo(r).bits for r in reals)
    widest = {r for r in reals if jnp.finfo(r).bits == bits}
    real = widest.pop() if len(widest) == 1 else jnp.dtype(jnp.float32)  # float16 with bfloat16.
    return _complex(real) if any(jnp.issubdtype(d, jnp.complexfloating) for d in dtypes) else real


def compute_dtype(*dtypes: Any) -> np.dtype:
    """The dtype the math runs in: :func:`wider` of the inputs and float32."""
    return wider(*dtypes, at_least=jnp.float32)


@dataclasses.dataclass(frozen=True)
class Field:
    """A params-shaped state field: its value at t = 0 and how its dtype is chosen.

    Attributes:
      initial: the value every leaf starts at.
      squared: True for accumulators of ``|g|^2`` (real; float32 for 16-bit params unless ``dtype``).
      dtype: an explicit dtype from the user (any inexact dtype, complex included, or a ``QuantizedDtype``);
        None for the policy's.
    """

    initial: Any
    squared: bool = False
    dtype: Any = None

    def dtype_for(self, param_dtype: np.dtype, path: str) -> np.dtype:
        """This field's dtype for the parameter at ``path``, of ``param_dtype``.

        A squared accumulator is real by design: an explicit complex dtype names its precision
        (``complex64`` stores float32). An explicit dtype of a first moment wins, except that a real one
        for a complex parameter is refused: it would drop the moment's imaginary part.
        """
        if self.dtype is None:
            if self.squared:
                real = _real(param_dtype)
                return jnp.dtype(jnp.float32) if real in _LOW_PRECISION else real
            return param_dtype
        chosen = canonical_dtype(self.dtype)
        if self.squared:
            return _real(chosen)
        if jnp.issubdtype(param_dtype, jnp.complexfloating) and not jnp.issubdtype(chosen, jnp.complexfloating):
            raise TypeError(
                f"params leaf {path} is complex ({param_dtype}), but the state dtype {chosen} is real: a real first "
                "moment would drop the imaginary part of the gradients. Pass a complex dtype (complex64) or None."
            )
        return chosen

    @property
    def widens_updates(self) -> bool:
        """Whether this field's dtype takes part in the updates' dtype: all but the policy's float32 sums and
        quantized state (storage only: the math is float32 either way)."""
        return not (self.squared and self.dtype is None) and not isinstance(self.dtype, QuantizedDtype)

    def storage(self, leaf: Any) -> Any:
        """How a state leaf of this field is kept: its dtype, or the :class:`~adaptive_tx._quantize.Codec` of
        its codes."""
        if isinstance(leaf, QuantizedArray):
            assert isinstance(self.dtype, QuantizedDtype)
            return self.dtype.codec(squared=self.squared)
        return leaf.dtype


# --------------------------------------------------------------------------- placement


def _as_param(p: Any) -> Any:
    """A leaf with ``shape`` and a canonical ``dtype``: Python numbers become arrays."""
    if isinstance(p, jax.ShapeDtypeStruct | jax.Array | np.ndarray | np.generic):
        return p
    return jnp.asarray(p)


def _filled(p: Any, value: Any, dtype: np.dtype) -> Array:
    """An array shaped and placed like the parameter ``p``, filled with ``value`` in ``dtype``."""
    if isinstance(p, jax.core.Tracer):
        # Under jit with Auto mesh axes a constant has no sharding of its own; selecting between it and the
        # parameter lets XLA's sharding propagation place it like the parameter (Explicit axes keep it anyway).
        source = jnp.real(p) if jnp.iscomplexobj(p) and not jnp.issubdtype(dtype, jnp.complexfloating) else p
        return jnp.where(jnp.zeros_like(p, dtype=bool), source.astype(dtype), jnp.asarray(value, dtype))
    sharding = getattr(p, "sharding", None)
    if isinstance(p, jax.Array) and not isinstance(sharding, NamedSharding):
        sharding = None  # An uncommitted or single-device array: leave the state uncommitted too.
    return jnp.full(np.shape(p), value, dtype, device=sharding)


def _scalar_placement(params: ArrayTree) -> NamedSharding | None:
    """Where scalar state goes: replicated on the params' mesh, if they have one."""
    for leaf in jax.tree.leaves(params):
        sharding = getattr(leaf, "sharding", None)
        if isinstance(sharding, NamedSharding) and not isinstance(leaf, jax.core.Tracer):
            return NamedSharding(sharding.mesh, PartitionSpec())
    return None


def init_count(params: ArrayTree = None) -> Array:
    """A fresh step counter t = 0 (int32 scalar), replicated on the params' mesh."""
    return jnp.zeros([], jnp.int32, device=_scalar_placement(params))


def init_scalar(params: ArrayTree, value: float, dtype: Any = jnp.float64) -> Array:
    """A float scalar of state (float64 under ``jax_enable_x64`` by default), replicated on the params' mesh."""
    return jnp.full([], value, canonical_dtype(dtype), device=_scalar_placement(params))


def next_count(count: Array) -> Array:
    """t + 1, saturating at the int32 maximum instead of wrapping to a negative step."""
    return optax.safe_increment(count)


def init_fields(params: ArrayTree, fields: Mapping[str, Field]) -> list[ArrayTree]:
    """Each field as a tree shaped and placed like ``params``, in the dtype the policy picks.

    Goes through ``jax.tree.map`` over ``params`` and reads only ``shape``, ``dtype`` and ``sharding``, so it
    works on ``jax.ShapeDtypeStruct``, under ``jax.jit`` and with ``optax.tree_utils.tree_map_params``.
    """

    def leaf(field: Field, path: Any, p: Any) -> Array | QuantizedArray:
        p = _as_param(p)
        param_dtype = canonical_dtype(p.dtype)
        if not isinstance(field.dtype, QuantizedDtype):
            return _filled(p, field.initial, field.dtype_for(param_dtype, _path(path)))
        if jnp.issubdtype(param_dtype, jnp.complexfloating):
            raise TypeError(
                f"params leaf {_path(path)} is complex ({param_dtype}): quantized state holds real values only. "
                "Keep this optimizer's state dtypes None (or complex64) for complex params."
            )
        full = _filled(p, field.initial, compute_dtype(param_dtype))
        if not field.dtype.quantizes(np.shape(p)):
            return full  # A small leaf, or a scalar: float32 (float64 for float64 params).
        return _quantize.encode(full, field.dtype.codec(squared=field.squared))

    return [jax.tree_util.tree_map_with_path(functools.partial(leaf, field), params) for field in fields.values()]


# --------------------------------------------------------------------------- the lifting


def map_leaves(
    step: Callable[..., tuple[Array, ...]],
    updates: ArrayTree,
    states: Sequence[ArrayTree],
    fields: Sequence[Field],
    params: ArrayTree | None = None,
    key: Array | None = None,
) -> tuple[ArrayTree, ...]:
    """Apply ``step(dtype, g, *s, stored=) -> (direction, *new_s)`` leaf by leaf, with the policy above.

    ``states[i]`` is the tree of ``fields[i]``. Every input leaf arrives cast to :func:`compute_dtype`, whose
    real part ``step`` receives first, to cast hyperparameters with. The direction comes back in
    :func:`updates_dtype`, each new state leaf in the dtype of the old one, so state dtypes never drift.
    ``stored`` (a :class:`Stored`) rounds values as they will be kept. With a typed PRNG ``key``, state
    rounded to a narrower dtype is rounded stochastically (leaf ``i`` uses ``fold_in(key, i)``); without one,
    to nearest. Returns ``(directions, *new_states)``.
    """
    check_gradients(updates, *states)
    paths_and_leaves, treedef_ = jax.tree_util.tree_flatten_with_path(updates)
    treedef: Any = treedef_  # jaxlib's PyTreeDef stubs lack flatten_up_to.
    state_leaves = [treedef.flatten_up_to(s) for s in states]
    param_leaves = [None] * treedef.num_leaves if params is None else _params_like(treedef, params)
    outputs: list[list[Array]] = [[] for _ in range(1 + len(states))]
    for index, ((path, g), p, *s) in enumerate(zip(paths_and_leaves, param_leaves, *state_leaves, strict=True)):
        g = jnp.asarray(g)
        if jnp.iscomplexobj(g) and any(
            not f.squared and not jnp.iscomplexobj(_array(x)) for f, x in zip(fields, s, strict=True)
        ):
            raise TypeError(
                f"gradient leaf {_path(path)} is complex ({g.dtype}), but the optimizer state was built for real "
                "params: init the optimizer with the complex params."
            )
        dtype = compute_dtype(g.dtype, *(jnp.float32 if isinstance(x, QuantizedArray) else x.dtype for x in s))
        g, layout = _to_state_layout(g, s)
        param_dtype = None if p is None else canonical_dtype(_as_param(p).dtype)
        out_dtypes = [
            updates_dtype(g.dtype, param_dtype, [x.dtype for f, x in zip(fields, s, strict=True) if f.widens_updates])
        ]
        out_dtypes += [f.storage(x) for f, x in zip(fields, s, strict=True)]
        # Stochastic rounding: this leaf's key, and random bits laid out like its state (Explicit mesh axes).
        spec = _explicit_spec(_array(s[0])) if s else None
        stored = Stored(out_dtypes, None if key is None else jax.random.fold_in(key, index), spec)
        inputs = (_read(x, f, dtype) for f, x in zip(fields, s, strict=True))
        results = step(_real(dtype), _as(g, dtype), *inputs, stored=stored)
        for i, (out, result) in enumerate(zip(outputs, results, strict=True)):
            result = stored.kept(i, result)
            out.append(jax.sharding.reshard(result, layout) if i == 0 and layout is not None else result)
    return tuple(treedef.unflatten(out) for out in outputs)


def updates_dtype(grad_dtype: Any, param_dtype: Any, state_dtypes: Sequence[Any]) -> np.dtype:
    """The dtype of a leaf's updates: Optax's convention, the wider of the gradient's and the param's.

    bfloat16 params with bfloat16 gradients give bfloat16 updates, though the math and the squared
    accumulator are float32 inside; float32 params with float16 gradients give float32 updates, so a tiny
    learning rate is applied in float32 and not rounded away. ``state_dtypes`` are the dtypes of the state
    fields that take part (:attr:`Field.widens_updates`): the first moments, which have the params' dtype
    unless a dtype argument says otherwise, and every explicit dtype. They stand in for the param when
    ``update`` is called without params (``param_dtype=None``), and an explicit wider state dtype
    (``mu_dtype=jnp.float32``) widens the updates, as in Optax. Real gradients of real params give real
    updates, whatever the state.
    """
    inputs = [grad_dtype] + ([] if param_dtype is None else [param_dtype])
    widest = wider(*inputs, *state_dtypes)
    return widest if any(jnp.issubdtype(d, jnp.complexfloating) for d in inputs) else _real(widest)


def _array(x: Array | QuantizedArray) -> Array:
    """A state leaf's array: its codes if it is quantized (for shape, layout and sharding)."""
    return x.codes if isinstance(x, QuantizedArray) else x


def _read(x: Array | QuantizedArray, field: Field, dtype: np.dtype) -> Array:
    """A state leaf as the math reads it: in ``dtype`` (its real part for a real leaf), decoded if quantized."""
    array: Array = _quantize.decode(x, field.storage(x)) if isinstance(x, QuantizedArray) else x
    return _as(array, dtype if jnp.iscomplexobj(array) else _real(dtype))


def _params_like(treedef: Any, params: ArrayTree) -> list[Any]:
    """The params' leaves in the gradients' tree, or an error that says how the two trees differ."""
    try:
        return treedef.flatten_up_to(params)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"the params passed to update do not match the gradients' tree ({treedef}): {error}"
        ) from error


class Stored:
    """Values of one leaf as ``map_leaves`` will keep them: rounded to their output dtype, seen in the math's.

    ``stored(*new)`` gives the first ``len(new)`` new state values as the state will hold them (rounded to
    their storage dtype, back in the compute dtype); ``stored.direction(d)`` the direction as it will be
    returned. A step computes its direction from the stored state, so the step taken is the one its state
    implies (a restored checkpoint continues the same trajectory), and XLA never needs unrounded values
    beside rounded ones. With 16-bit state, reading the unrounded moments in the params' loop made XLA
    recompute them there from the old state, whose donated buffers the state's own loop overwrites, so it
    copied them first: a float32 temporary of 4 bytes per parameter and a slower step. Where the output
    dtype is the compute dtype (float32 params, by default), rounding changes nothing.
    """

    def __init__(self, dtypes: Sequence[Any], key: Array | None = None, sharding: PartitionSpec | None = None):
        self._dtypes = list(dtypes)  # The direction's, then each state field's dtype (or Codec, if quantized).
        self._key = key  # Stochastic rounding of the state fields, with this leaf's key; None: to nearest.
        self._sharding = sharding  # The state's partition spec under Explicit mesh axes, for random bits.
        self._rounded: dict[int, tuple[Any, Array]] = {}  # output index -> (as kept, as the math sees it)

    def _to(self, i: int, value: Array) -> Any:
        if isinstance(self._dtypes[i], _quantize.Codec):  # Real: quantized state refuses complex params.
            key = None if self._key is None else jax.random.fold_in(self._key, i)
            return _quantize.encode(value, self._dtypes[i], key, self._sharding)
        dtype = jnp.dtype(self._dtypes[i])
        if jnp.iscomplexobj(value) and not jnp.issubdtype(dtype, jnp.complexfloating):
            value = lax.real(value)  # Real gradients of real params: the imaginary part is exactly 0.
        narrower = jnp.finfo(dtype).bits < jnp.finfo(value.dtype).bits
        if i == 0 or self._key is None or not narrower or jnp.iscomplexobj(value):
            return _as(value, dtype)
        return _math.stochastic_round(value, dtype, jax.random.fold_in(self._key, i), self._sharding)

    def _round(self, i: int, value: Array) -> Array:
        kept = self._to(i, value)
        codec = self._dtypes[i]
        if isinstance(codec, _quantize.Codec):
            # Integer codes carry no derivative: the round trip's is the identity (straight through), as a cast
            # to a 16-bit dtype's is. value - value is exactly 0, so the value seen is the decoded one.
            seen = _as(_quantize.decode(kept, codec), value.dtype) + (value - lax.stop_gradient(value))
        else:
            seen = _as(kept, value.dtype)
        self._rounded[i] = (kept, seen)
        return seen

    def __call__(self, *new: Array) -> tuple[Array, ...]:
        return tuple(self._round(1 + i, value) for i, value in enumerate(new))

    def direction(self, value: Array) -> Array:
        return self._round(0, value)

    def kept(self, i: int, result: Array) -> Array:
        """Output ``i`` (0: the direction) in its output dtype, converted once."""
        if i in self._rounded and self._rounded[i][1] is result:
            return self._rounded[i][0]
        for kept, seen in self._rounded.values():  # Momentum's direction is its stored velocity: no round trip.
            if seen is result and getattr(kept, "dtype", None) == self._dtypes[i] and (i == 0 or self._key is None):
                return kept
        return self._to(i, result)


def _as(x: Array, dtype: Any) -> Array:
    """``x`` in ``dtype``; ``x`` itself if it is already (``astype`` traces a call even then, per leaf)."""
    return x if x.dtype == dtype else lax.convert_element_type(x, dtype)


def _explicit_spec(x: Array) -> PartitionSpec | None:
    """``x``'s partition spec as its type carries it, on a mesh with Explicit axes; ``None`` otherwise."""
    sharding = getattr(jax.typeof(x), "sharding", None)
    mesh = getattr(sharding, "mesh", None)
    if sharding is None or not any(t == AxisType.Explicit for t in getattr(mesh, "axis_types", ())):
        return None
    return PartitionSpec(*tuple(sharding.spec) + (None,) * (jnp.ndim(x) - len(sharding.spec)))


def _to_state_layout(g: Array, state: Sequence[Array]) -> tuple[Array, PartitionSpec | None]:
    """The gradient in its state's layout, and the layout to return the direction in (``None``: unchanged).

    Under Explicit mesh axes, state spread over the data axis (ZeRO-1, ``adaptive_tx.sharding``) differs
    from the gradient's layout: the gradient is sliced to the state's (no communication), and the
    direction gathered back to the gradient's (the one all-gather ZeRO-1 costs). Auto axes leave it to XLA.
    """
    grad_spec = _explicit_spec(g)
    state_spec = _explicit_spec(_array(state[0])) if state else None
    if grad_spec is None or state_spec is None or grad_spec == state_spec:
        return g, None
    return jax.sharding.reshard(g, state_spec), grad_spec


class StochasticRoundingState(NamedTuple):
    """State of a block with ``state_rounding="stochastic"``: the block's usual state and a PRNG key.

    ``state_rounding`` says how every block and optimizer with state rounds its new state values to a
    16-bit state dtype (the ``*_dtype`` arguments). ``"nearest"`` (the default) rounds to nearest.
    ``"stochastic"`` rounds up or down at random, unbiased, so that small changes such as ``0.999 * s``
    survive on average (a bfloat16 second moment then decays as a float32 one does); the state is then this
    NamedTuple, the usual state beside a PRNG key made from ``rounding_seed`` (default 0) and split once per
    step: one seed, one trajectory, and the key checkpoints like any other state.
    """

    inner_state: Any  # The block's state (e.g. ScaleByAdamState), its fields in their 16-bit dtypes.
    key: Array  # uint32 key data (jax.random.key_data) of the next step's key; split once per step.


@dataclasses.dataclass(frozen=True)
class Scalar:
    """A float scalar of state beside the count (NAdam's running product), advanced once per step.

    Attributes:
      initial: its value at t = 0.
      advance: ``(t, previous) -> new``, with ``t >= 1`` the step being taken.
    """

    initial: float
    advance: Callable[[Array, Array], Array]


def transformation(
    state_type: Callable[..., tuple],
    fields: Mapping[str, Field],
    step: Callable[..., tuple[Array, ...]],
    constants: Callable[..., Any],
    *,
    scalars: Mapping[str, Scalar] | None = None,
    rounding: _checks.StateRounding = "nearest",
    seed: Any = 0,
) -> optax.GradientTransformationExtraArgs:
    """An algorithm's block: its state is a step count, scalars, and params-shaped ``fields``.

    The typed step protocol: ``state_type`` is a NamedTuple whose fields are, in order, ``count`` (t,
    int32, saturating) if the algorithm counts steps, the names of ``scalars``, then the names of
    ``fields``. Once per step and compute dtype, ``constants(dtype, *clock)`` turns the hyperparameters
    into the algorithm's NamedTuple of per-step constants (cast hyperparameters, bias corrections), where
    ``clock`` is the new count (if counted) and the new scalars. Then, leaf by leaf through
    :func:`map_leaves`, ``step(constants, g, *fields, stored=) -> (direction, *new_fields)``: the equation
    on one array, ``stored`` rounding new fields as the state keeps them. Work done per leaf is work traced
    and compiled once per leaf: hundreds of times on a transformer's tree, hence the per-step constants.

    ``rounding="stochastic"`` rounds the fields stochastically where they are narrower than the math
    (:func:`adaptive_tx._math.stochastic_round`); the state is then :class:`StochasticRoundingState`, the
    ``state_type`` beside a PRNG key made from ``seed``, split once per step.
    """
    _checks.check_state_rounding(rounding, seed)
    scalars = dict(scalars or {})
    counted = "count" in getattr(state_type, "_fields", ())
    expected = (("count",) if counted else ()) + tuple(scalars) + tuple(fields)
    assert getattr(state_type, "_fields", None) == expected, (state_type, expected)  # The protocol's order.

    def init_fn(params):
        check_params(params)
        clock = ([init_count(params)] if counted else []) + [init_scalar(params, s.initial) for s in scalars.values()]
        state = state_type(*clock, *init_fields(params, fields))
        if rounding == "nearest":
            return state
        key = jax.random.key_data(jax.random.key(seed))
        placement = _scalar_placement(params)
        return StochasticRoundingState(state, key if placement is None else jax.device_put(key, placement))

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args  # The algorithms read gradients, state and params only.
        if rounding == "nearest":
            return update_inner(updates, state, params)
        key, next_key = jax.random.split(jax.random.wrap_key_data(state.key))
        updates, inner_state = update_inner(updates, state.inner_state, params, key)
        return updates, StochasticRoundingState(inner_state, jax.random.key_data(next_key))

    def update_inner(updates, state, params, key=None):
        count = next_count(state.count) if counted else None
        clock = ([count] if counted else []) + [s.advance(count, getattr(state, n)) for n, s in scalars.items()]
        per_dtype: dict[np.dtype, Any] = {}

        def leaf_step(dtype, g, *s, stored):
            if dtype not in per_dtype:
                per_dtype[dtype] = constants(dtype, *clock)
            return step(per_dtype[dtype], g, *s, stored=stored)

        previous = [getattr(state, name) for name in fields]
        directions, *new = map_leaves(leaf_step, updates, previous, list(fields.values()), params, key)
        return directions, state_type(*clock, *new)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def descend(
    block: optax.GradientTransformation, learning_rate: Any, then: optax.GradientTransformation | None = None
) -> optax.GradientTransformationExtraArgs:
    """``block`` followed by the learning rate and the sign flip: the only place a direction becomes a step.

    ``then`` is a transformation of the step itself (RMSprop's momentum, as Optax places it), chained last.
    """
    parts = [block, scale_by_learning_rate(learning_rate)]
    return optax.chain(*parts, *([] if then is None else [then]))


def scale_by_learning_rate(learning_rate: Any) -> optax.GradientTransformation:
    """``-learning_rate * u``, multiplied in the math's precision and rounded once to each update's dtype.

    Optax's ``scale_by_learning_rate`` (a number: ``optax.scale``; a schedule: ``optax.scale_by_schedule``),
    with its state, so chains and checkpoints match Optax's. Only the dtypes differ: a learning rate
    injected as a float32 array (``optax.inject_hyperparams(..., hyperparam_dtype=jnp.float32)``) scales
    bfloat16 updates in float32 and gives bfloat16 updates back, where ``lr * u`` would promote them to
    float32 (or fail under strict dtype promotion).
    """
    _checks.check_learning_rate(learning_rate)
    optax_step = optax.scale_by_learning_rate(learning_rate)

    def update_fn(updates, state, params=None):
        del params  # Optax's scale and scale_by_schedule read none.
        return _rounded_once(optax_step, jax.tree.map(jnp.result_type, updates), updates, state)

    return optax.GradientTransformation(optax_step.init, update_fn)


def add_decayed_weights(weight_decay: Any, mask: Any = None) -> optax.GradientTransformation:
    """``g + weight_decay * p`` (coupled L2), computed in float32 or wider and rounded once to each update's dtype.

    Optax's ``add_decayed_weights`` (a number or a schedule, a mask), with its state; only the dtypes
    differ: each update comes in the wider of its gradient's and its param's dtype (the updates' dtype
    convention), so float16 gradients of float32 params give float32 updates, where ``g + wd * p`` would
    fail under strict dtype promotion.
    """
    optax_decay = optax.add_decayed_weights(weight_decay, mask)

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            return optax_decay.update(updates, state, params)  # Optax's error: weight decay needs the params.
        dtypes = jax.tree.map(lambda g, p: wider(jnp.result_type(g), jnp.result_type(p)), updates, params)
        return _rounded_once(optax_decay, dtypes, updates, state, params)

    return optax.GradientTransformationExtraArgs(optax_decay.init, update_fn)


def _rounded_once(
    inner: optax.GradientTransformation, dtypes: ArrayTree, updates: ArrayTree, state: Any, params: ArrayTree = None
) -> tuple[ArrayTree, Any]:
    """``inner.update`` on the updates (and params) cast to the compute dtype of ``dtypes``, a tree of dtypes
    like the updates; each result leaf rounded once, to its dtype in ``dtypes``."""

    def wide(tree: ArrayTree) -> ArrayTree:
        return jax.tree.map(lambda x, d: _as(jnp.asarray(x), compute_dtype(d)), tree, dtypes)

    result, state = inner.update(wide(updates), state, None if params is None else wide(params))
    return jax.tree.map(_as, result, dtypes), state


def cast(dtype: Any, *hyperparameters: Any) -> tuple[Any, ...]:
    """Hyperparameters (Python numbers or traced arrays) as arrays of ``dtype``.

    Numbers become NumPy scalars: arithmetic on them (``1 - b1``) is folded while tracing, once, instead
    of becoming operations in every leaf's computation.
    """
    return tuple(
        np.asarray(h, dtype) if isinstance(h, int | float | np.number | np.ndarray) else jnp.asarray(h, dtype)
        for h in hyperparameters
    )


# --------------------------------------------------------------------------- gradient checks


def check_params(params: ArrayTree) -> None:
    """Params must be floating point (real or complex): name the first leaf that is not, and the way out.

    An integer or boolean leaf (a step counter, a mask, an embedding's indices) has no gradient to follow:
    ``jax.grad`` refuses it, and an optimizer state for it would be meaningless. Runs on shapes and dtypes
    only (``jax.ShapeDtypeStruct`` and tracers included), so it costs nothing per step.
    """
    for path, p in jax.tree_util.tree_flatten_with_path(params)[0]:
        dtype = jnp.dtype(_as_param(p).dtype)
        if not jnp.issubdtype(dtype, jnp.inexact):
            raise TypeError(
                f"params leaf {_path(path)} has dtype {dtype}; the optimizers need floating-point params. Leave "
                "non-float leaves out of the optimizer: wrap it as optax.masked(tx, mask) with the mask False "
                "there, or with Flax NNX, nnx.Optimizer(model, tx, wrt=nnx.Param)."
            )


def check_gradients(updates: ArrayTree, *states: ArrayTree) -> None:
    """Gradients must be floating point (real or complex) and shaped like the state; say which leaf isn't.

    Runs while tracing (shapes and dtypes only), so it costs nothing per step.
    """
    for path, g in jax.tree_util.tree_flatten_with_path(updates)[0]:
        if not jnp.issubdtype(jnp.result_type(g), jnp.inexact):
            raise TypeError(
                f"gradient leaf {_path(path)} has dtype {jnp.result_type(g)}; the optimizers need floating-point "
                "gradients (float16, bfloat16, float32, float64, or complex64/complex128 for complex params)."
            )
    structure: Any = jax.tree.structure(updates)  # jaxlib's PyTreeDef stubs lack __eq__.
    for state in states:
        if structure == jax.tree.structure(state, is_leaf=_quantize.is_quantized):
            continue
        expected = {
            _path(p): x for p, x in jax.tree_util.tree_flatten_with_path(state, is_leaf=_quantize.is_quantized)[0]
        }
        given = {_path(p): x for p, x in jax.tree_util.tree_flatten_with_path(updates)[0]}
        missing = [p for p in expected if p not in given]
        extra = [p for p in given if p not in expected]
        problem = (
            (f"the leaf {missing[0]} is missing" if missing else f"the leaf {extra[0]} is not in the state")
            if missing or extra
            else "their tree structures differ"
        )
        raise ValueError(
            f"the gradients do not match the optimizer state: {problem}. Expected a tree like the params given "
            f"to init ({len(expected)} leaves: {', '.join(list(expected)[:5])}{', ...' if len(expected) > 5 else ''}),"
            f" got {len(given)} leaves ({jax.tree.structure(updates)})."
        )
    for state in states:
        leaves = jax.tree.leaves(state, is_leaf=_quantize.is_quantized)
        for (path, g), s in zip(jax.tree_util.tree_flatten_with_path(updates)[0], leaves, strict=True):
            if jnp.shape(g) != jnp.shape(_array(s)):
                raise ValueError(
                    f"gradient leaf {_path(path)} has shape {jnp.shape(g)}, but the optimizer state was built "
                    f"for shape {jnp.shape(_array(s))}."
                )


def _path(path: Any) -> str:
    return jax.tree_util.keystr(path) or "(the root)"
