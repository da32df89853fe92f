"""The math the five optimizers share, written once.

The lecture builds each algorithm from the one before: AdaGrad keeps a running sum of squared gradients,
RMSprop and Adadelta replace it by a leaky average, Momentum keeps a leaky average of the gradients, and
Adam is Momentum plus RMSprop plus bias correction. The helpers here are those pieces; each algorithm's
module composes them. They work on single arrays; :func:`map_leaves` lifts a per-array step to pytrees,
with the precision policy of the whole library in one place.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

Array = jax.Array
ArrayTree = Any


# --------------------------------------------------------------------------- the lecture's building blocks


def leaky_average(previous: Array, new: Array, decay: Array | float, dampening: Array | float | None = None) -> Array:
    """``decay * previous + (1 - dampening) * new``, with ``dampening = decay`` by default.

    The default is the exponentially weighted average of RMSprop, Adadelta, Momentum and Adam;
    ``dampening = 0`` is the heavy ball's undamped sum.
    """
    if dampening is None:
        dampening = decay
    return decay * previous + (1 - dampening) * new


def running_sum(previous: Array, new: Array) -> Array:
    """``previous + new``: AdaGrad's accumulator, which never forgets."""
    return previous + new


def bias_correction_factor(decay: Array | float, count: Array, dtype: Any) -> Array:
    """``1 - decay**t`` in ``dtype`` (at least float32), for a step count ``t >= 1``.

    Computed in float32 or wider on purpose: in bfloat16, ``0.999**t`` rounds to 1 and the factor to 0.
    """
    decay = jnp.asarray(decay, dtype)
    return 1 - decay ** count.astype(dtype)


def rms(mean_square: Array, eps: Array | float, eps_in_sqrt: bool = True) -> Array:
    """``sqrt(mean_square + eps)``: the lecture's root mean square, with ``eps`` inside the root.

    With ``eps_in_sqrt=False``, ``sqrt(mean_square) + eps``: PyTorch's placement for AdaGrad and RMSprop.
    """
    return jnp.sqrt(mean_square + eps) if eps_in_sqrt else jnp.sqrt(mean_square) + eps


def safe_divide(numerator: Array, denominator: Array) -> Array:
    """``numerator / denominator``, and 0 where the denominator is exactly 0.

    In every algorithm here the denominator is 0 only when all gradients so far were 0 and eps is 0; the
    numerator is then 0 too, and the step is 0 rather than NaN. A NaN denominator (from a NaN gradient)
    stays NaN, so ``optax.apply_if_finite`` and the user see it.
    """
    zero = denominator == 0
    return jnp.where(zero, 0, numerator / jnp.where(zero, 1, denominator))


def init_count() -> Array:
    """A fresh step counter t = 0 (int32 scalar)."""
    return jnp.zeros([], jnp.int32)


def next_count(count: Array) -> Array:
    """t + 1, saturating at the int32 maximum instead of wrapping to a negative step."""
    return optax.safe_increment(count)


def full_like_params(params: ArrayTree, value: Any, dtype: Any = None) -> ArrayTree:
    """A state tree shaped like ``params`` filled with ``value``, in ``dtype`` or else each leaf's dtype.

    Goes through ``jax.tree.map`` over ``params`` and reads only ``shape`` and ``dtype``, so it works on
    ``jax.ShapeDtypeStruct``, under ``jax.jit`` and with ``optax.tree_utils.tree_map_params``.
    """
    return jax.tree.map(lambda p: jnp.full(p.shape, value, p.dtype if dtype is None else dtype), params)


# --------------------------------------------------------------------------- lifting a per-array step to trees


def compute_dtype(*arrays: Array) -> Any:
    """The dtype the math runs in: float64 if any input is float64, else float32.

    Low-precision leaves (float16, bfloat16) are upcast so that ``eps`` (1e-8 underflows to 0 in float16)
    and ``1 - decay**t`` keep their meaning; results are cast back by :func:`map_leaves`.
    """
    if any(jnp.dtype(a.dtype) == jnp.float64 for a in arrays):
        return jnp.float64
    return jnp.float32


def map_leaves(
    step: Callable[..., tuple[Array, ...]],
    updates: ArrayTree,
    *states: ArrayTree,
) -> tuple[ArrayTree, ...]:
    """Apply ``step(dtype, g, *s) -> (direction, *new_s)`` leaf by leaf over pytrees.

    Every input leaf arrives cast to :func:`compute_dtype`, which ``step`` receives as its first argument
    to cast hyperparameters with. The direction comes back in the gradient's dtype and each new state
    leaf in the dtype of the old one, so state dtypes never drift. Returns ``(directions, *new_states)``.
    """
    check_gradients(updates, *states)
    leaves, treedef_ = jax.tree.flatten(updates)
    treedef: Any = treedef_  # jaxlib's PyTreeDef stubs lack flatten_up_to.
    state_leaves = [treedef.flatten_up_to(s) for s in states]
    outputs: list[list[Array]] = [[] for _ in range(1 + len(states))]
    for g, *s in zip(leaves, *state_leaves, strict=True):
        dtype = compute_dtype(g, *s)
        results = step(dtype, g.astype(dtype), *(x.astype(dtype) for x in s))
        for out, result, like in zip(outputs, results, (g, *s), strict=True):
            out.append(result.astype(like.dtype))
    return tuple(treedef.unflatten(out) for out in outputs)


def leafwise_transformation(
    state_type: Callable[..., tuple],
    step: Callable[..., tuple[Array, ...]],
    *,
    counted: bool = False,
    dtypes: dict[str, Any] | None = None,
    **initial_values: Any,
) -> optax.GradientTransformationExtraArgs:
    """The block of an algorithm whose state is parameter-shaped accumulators (and a step counter).

    ``state_type`` is a NamedTuple whose fields are the keywords of ``initial_values``, each initialised to
    a params-shaped array of that value, preceded by ``count`` (t, int32, saturating) if ``counted``.
    ``update`` applies ``step(dtype, g, *fields) -> (direction, *new_fields)``, fields in the NamedTuple's
    order, leaf by leaf through :func:`map_leaves`; a counted step also receives ``count=t`` (t >= 1).
    ``dtypes`` maps fields to their dtype; a field not named there (or named with None) takes the params'.
    """
    dtypes = dtypes or {}

    def init_fn(params):
        fields = {name: full_like_params(params, value, dtypes.get(name)) for name, value in initial_values.items()}
        return state_type(count=init_count(), **fields) if counted else state_type(**fields)

    def update_fn(updates, state, params=None, **extra_args):
        del params, extra_args  # Unused.
        if not counted:
            directions, *fields = map_leaves(step, updates, *state)
            return directions, state_type(*fields)
        count = next_count(state.count)
        directions, *fields = map_leaves(functools.partial(step, count=count), updates, *state[1:])
        return directions, state_type(count, *fields)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def check_gradients(updates: ArrayTree, *states: ArrayTree) -> None:
    """Gradients must be real floating point and shaped like the state's accumulators; say which leaf isn't.

    Runs while tracing (shapes and dtypes only), so it costs nothing per step.
    """
    for path, g in jax.tree_util.tree_flatten_with_path(updates)[0]:
        if not jnp.issubdtype(jnp.result_type(g), jnp.floating):
            raise TypeError(
                f"gradient leaf {_path(path)} has dtype {jnp.result_type(g)}; the optimizers need real "
                "floating-point gradients (float16, bfloat16, float32 or float64)."
            )
    structure: Any = jax.tree.structure(updates)  # jaxlib's PyTreeDef stubs lack __eq__.
    for state in states:
        if structure == jax.tree.structure(state):
            continue
        expected = {_path(p): x for p, x in jax.tree_util.tree_flatten_with_path(state)[0]}
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
        for (path, g), s in zip(jax.tree_util.tree_flatten_with_path(updates)[0], jax.tree.leaves(state), strict=True):
            if jnp.shape(g) != jnp.shape(s):
                raise ValueError(
                    f"gradient leaf {_path(path)} has shape {jnp.shape(g)}, but the optimizer state was built "
                    f"for shape {jnp.shape(s)}."
                )


def _path(path: Any) -> str:
    return jax.tree_util.keystr(path) or "(the root)"


def cast(dtype: Any, *hyperparameters: Array | float) -> tuple[Array, ...]:
    """Hyperparameters (Python numbers or traced arrays) as arrays of ``dtype``."""
    return tuple(jnp.asarray(h, dtype) for h in hyperparameters)


# --------------------------------------------------------------------------- hyperparameter checks


def _is_number(value: Any) -> bool:
    """True for Python and NumPy real numbers; False for arrays and tracers, which are not checked."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _describe(value: Any) -> str:
    return repr(value) if _is_number(value) else f"a {type(value).__name__}"


def check_number(name: str, value: Any) -> bool:
    """Reject hyperparameters that are neither numbers nor arrays; return True if ``value`` is checkable.

    Traced values (under ``jax.jit`` or ``optax.inject_hyperparams``) and arrays pass unchecked.
    """
    if isinstance(value, bool | np.bool_) or not (_is_number(value) or isinstance(value, jax.Array | np.ndarray)):
        raise TypeError(f"{name} must be a real number or an array, got {_describe(value)}.")
    return _is_number(value)


def check_bool(name: str, value: Any) -> None:
    """Flags must be Python bools: they choose the computation, so they cannot be traced."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}.")


def check_dtype(name: str, dtype: Any) -> None:
    """A state dtype must be None (the params' dtype) or a floating-point dtype."""
    if dtype is None:
        return
    try:
        ok = jnp.issubdtype(jnp.dtype(dtype), jnp.floating)
    except TypeError:
        ok = False
    if not ok:
        raise TypeError(f"{name} must be None or a floating-point dtype, got {dtype!r}.")


def check_decay(name: str, value: Any) -> None:
    """A decay rate must lie in [0, 1): 1 would freeze the average at its initial value."""
    if check_number(name, value) and not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}.")


def check_non_negative(name: str, value: Any) -> None:
    """eps and the initial values of squared accumulators must be finite and >= 0."""
    if check_number(name, value) and not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}.")


def check_finite(name: str, value: Any) -> None:
    """Initial values of signed accumulators (first moments) may be any finite number."""
    if check_number(name, value) and not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}.")


def check_learning_rate(value: Any, name: str = "learning_rate") -> None:
    """A constant learning rate must be finite and >= 0 (the optimizers already descend); schedules pass."""
    if not callable(value):
        check_non_negative(name, value)


def descend(block: optax.GradientTransformation, learning_rate: Any) -> optax.GradientTransformationExtraArgs:
    """``block`` followed by the learning rate and the sign flip: the only place a direction becomes a step.

    A number gives ``optax.scale(-learning_rate)``; a schedule gives ``optax.scale_by_schedule``.
    """
    check_learning_rate(learning_rate)
    return optax.chain(block, optax.scale_by_learning_rate(learning_rate))


def all_numbers(values: Sequence[Any]) -> bool:
    """True if every value is a checkable Python number (no tracers or arrays)."""
    return all(_is_number(v) for v in values)
