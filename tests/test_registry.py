"""Every public transformation (tests/helpers.py, ``REGISTRY``) through every property, under jax.jit.

The properties: jit equals eager; no retrace; extra arguments ignored; every numeric hyperparameter
injectable with ``optax.inject_hyperparams`` (also with float32 hyperparameters beside bfloat16 params);
``optax.apply_if_finite`` leaves the state bit-identical; low-precision params give the same values as
float32 ones, to their precision; ``optax.MultiSteps``; a checkpoint round trip; abstract init;
``optax.tree_utils.tree_map_params`` on values; Python-number and NumPy params; complex params.
Placement on a mesh is in tests/test_sharding.py, derivatives in tests/test_differentiation.py.
"""

import warnings
from collections.abc import Callable

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptive_tx as atx
from tests.helpers import REGISTRY, grad, nested_params, numeric_kwargs, parametrize_entries, registry

# jit fuses float32 operations differently from op-by-op dispatch; such reorderings change results by a
# few float32 ulps per step, below 1e-6 relative after 10 steps. Values are O(1), so a coordinate passing
# near 0 carries an absolute error of a few ulps of O(1) intermediates (~1e-7): hence the absolute floor.
REORDER = {"rtol": 1e-6, "atol": 1e-6}


_BUILT: dict[tuple, tuple[optax.GradientTransformation, Callable]] = {}


def _built(entry, **overrides):
    """``entry(**overrides)`` and its jitted update, built once: the tests that run the same transformation
    share one trace and one compile per params type, instead of one each."""
    key = (entry.name, tuple(sorted(overrides.items())))
    if key not in _BUILT:
        tx = entry(**overrides)
        _BUILT[key] = tx, jax.jit(tx.update)
    return _BUILT[key]


def _run_entry(entry, params, grads, **overrides):
    """``_run`` of the entry's shared build (``_built``)."""
    tx, update = _built(entry, **overrides)
    return _run(tx, params, grads, update)


def _run(tx, params, grads, update=None):
    """Apply ``tx`` to each gradient tree in turn (params fixed); returns (list of updates, final state)."""
    update = update or jax.jit(tx.update)
    state = tx.init(params)
    out = []
    for g in grads:
        u, state = update(g, state, params)
        out.append(u)
    return out, state


def _grads(params, steps):
    return [grad(params, t) for t in range(steps)]


def _typeof(tree):
    return jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), tree)


def _max_relative(actual, expected):
    """max over leaves of max|a - e| / max|e| (normwise), in float64."""
    worst = 0.0
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        a, e = np.asarray(a, np.complex128), np.asarray(e, np.complex128)
        if e.size:
            worst = max(worst, float(np.max(np.abs(a - e)) / max(np.max(np.abs(e)), 1e-30)))
    return worst


# ----------------------------------------------------------------------------- jit, tracing, arguments


@registry
def test_jit_equals_eager(entry):
    tx, update = _built(entry)
    params = nested_params()
    jitted, jit_state = _run(tx, params, _grads(params, 10), update)
    with jax.disable_jit():
        eager, eager_state = _run(tx, params, _grads(params, 10), update=tx.update)
    chex.assert_trees_all_close(jitted, eager, **REORDER)
    chex.assert_trees_all_close(jit_state, eager_state, **REORDER)
    assert _max_relative(jitted[-1], jax.tree.map(jnp.zeros_like, jitted[-1])) > 0  # Not a silent zero step.


@registry
def test_no_retrace_on_later_steps(entry):
    tx = entry()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(params, state):
        updates, state = tx.update(grad(params, 0), state, params)
        return optax.apply_updates(params, updates), state

    params = nested_params()
    state = tx.init(params)
    for _ in range(3):
        params, state = step(params, state)
    chex.clear_trace_counter()


@registry
def test_accepts_and_ignores_extra_args(entry):
    tx = entry()
    assert isinstance(tx, optax.GradientTransformationExtraArgs)
    params = nested_params()
    expected, _ = tx.update(grad(params, 0), tx.init(params), params)
    actual, _ = tx.update(grad(params, 0), tx.init(params), params, unexpected_extra_arg=1)
    chex.assert_trees_all_equal(actual, expected)


# ----------------------------------------------------------------------------- inject_hyperparams


@registry
def test_every_numeric_hyperparameter_is_injectable(entry):
    injected = optax.inject_hyperparams(entry.make)(**entry.kwargs)
    params = nested_params()
    expected, _ = _run_entry(entry, params, _grads(params, 6))
    actual, state = _run(injected, params, _grads(params, 6))
    # Hyperparameters arrive as traced float32 arrays instead of constants: XLA folds them differently.
    chex.assert_trees_all_close(actual, expected, **REORDER)
    assert set(state.hyperparams) >= numeric_kwargs(entry)  # Really injected, not baked in.


@registry
def test_float32_hyperparameters_beside_bfloat16_params(entry):
    # inject_hyperparams would otherwise store them in bfloat16, the params' dtype: 0.999 would become 1.0.
    injected = optax.inject_hyperparams(entry.make, hyperparam_dtype=jnp.float32)(**entry.kwargs)
    params = nested_params(jnp.bfloat16)
    # optax.scale multiplies bfloat16 directions by the float32 learning rate: standard promotion, as users
    # run it (the suite's strict mode would refuse Optax's own bfloat16 * float32).
    with jax.numpy_dtype_promotion("standard"):
        actual, state = _run(injected, params, _grads(params, 4))
    expected, _ = _run_entry(entry, params, _grads(params, 4))
    floats = {jnp.dtype(v.dtype) for v in state.hyperparams.values() if jnp.issubdtype(v.dtype, jnp.floating)}
    assert floats <= {jnp.dtype(jnp.float32)}
    # The same float32 values either way; what differs is folding (constants vs arguments), then one
    # bfloat16 rounding of the state: a few bfloat16 ulps (2^-8 each) relative to the largest update.
    assert _max_relative(actual, expected) < 4 * 2**-8


# ----------------------------------------------------------------------------- Optax wrappers


@registry
def test_apply_if_finite_skips_a_nan_step_and_keeps_the_state_bit_identical(entry):
    tx = optax.apply_if_finite(entry(), max_consecutive_errors=3)
    params = nested_params()
    update = jax.jit(tx.update)
    state1 = update(grad(params, 0), tx.init(params), params)[1]
    bad = jax.tree.map(lambda g: g.at[...].set(jnp.nan) if g.ndim == 0 else g.at[0].set(jnp.nan), grad(params, 1))
    updates, state2 = update(bad, state1, params)
    chex.assert_trees_all_equal(updates, jax.tree.map(jnp.zeros_like, updates))
    chex.assert_trees_all_equal(state2.inner_state, state1.inner_state)
    after_skip, _ = update(grad(params, 2), state2, params)
    direct, _ = update(grad(params, 2), state1, params)
    chex.assert_trees_all_equal(after_skip, direct)


@registry
def test_multi_steps_averages_then_steps(entry):
    k = 3
    tx = entry()
    multi = optax.MultiSteps(tx, every_k_schedule=k)
    params = nested_params()
    grads = _grads(params, k)
    state = multi.init(params)
    with jax.numpy_dtype_promotion("standard"):  # optax.MultiSteps divides by its int32 step count.
        update = jax.jit(multi.update)
        for t in range(k):
            updates, state = update(grads[t], state, params)
            if t < k - 1:
                chex.assert_trees_all_equal(updates, jax.tree.map(jnp.zeros_like, updates))
    mean = jax.tree.map(lambda *g: sum(g) / k, *grads)
    expected, _ = tx.update(mean, tx.init(params), params)
    # MultiSteps averages with Welford's running mean, which rounds differently from sum / k.
    chex.assert_trees_all_close(updates, expected, rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- precision


@registry
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=lambda d: jnp.dtype(d).name)
def test_low_precision_params_give_float32_values_to_their_precision(entry, dtype):
    # The same inputs (rounded to the low dtype once) through the low-precision and the float32 path: the
    # updates must agree to the low dtype's precision, so a silent zero step (or an overflowed state) fails.
    params = nested_params(dtype)
    grads = _grads(params, 5)
    low, low_state = _run_entry(entry, params, grads)
    up = lambda tree: jax.tree.map(lambda x: x.astype(jnp.float32), tree)  # noqa: E731
    high, _ = _run_entry(entry, up(params), [up(g) for g in grads])
    # First moments are stored in the params' dtype (one rounding per step, 2^-8 in bfloat16, 2^-11 in
    # float16), squared accumulators in float32; 5 steps of such roundings stay below 8 ulps.
    ulp = 2**-8 if dtype == jnp.bfloat16 else 2**-11
    for t, (a, e) in enumerate(zip(low, high, strict=True)):
        error = _max_relative(a, e)
        assert error < 8 * ulp, f"step {t}: relative error {error:.3g}"
    chex.assert_tree_all_finite(low_state)


# ----------------------------------------------------------------------------- state as data


@registry
def test_numpy_round_trip_continues_bit_identically(entry):
    tx = entry()
    params = nested_params()

    @jax.jit
    def step(params, state, t):
        updates, state = tx.update(grad(params, t), state, params)
        return optax.apply_updates(params, updates), state

    state = tx.init(params)
    for t in range(3):
        params, state = step(params, state, t)
    saved = jax.tree.map(np.asarray, (params, state))  # e.g. for np.savez or pickle
    restored = jax.tree.map(jnp.asarray, saved)
    assert jax.tree.structure(restored) == jax.tree.structure((params, state))
    chex.assert_trees_all_equal_dtypes(restored, (params, state))
    a, b = (params, state), restored
    for t in range(3, 6):
        a = step(*a, t)
        b = step(*b, t)
    chex.assert_trees_all_equal(a, b)


@registry
def test_init_on_shape_dtype_structs_equals_init_on_arrays(entry):
    tx = entry()
    params = nested_params()
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)
    chex.assert_trees_all_equal(tx.init(abstract), tx.init(params))
    assert _typeof(jax.eval_shape(tx.init, params)) == _typeof(tx.init(params))


@registry
def test_tree_map_params_maps_the_params_shaped_leaves_by_value(entry):
    tx = entry()
    params = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.array([0.5, -1.0])}  # No scalar leaves.
    _, state = _run(tx, params, _grads(params, 2))
    mapped = optax.tree_utils.tree_map_params(tx, lambda p: 2 * p + 1, state)

    # Params-shaped state (moments, accumulators) is mapped, quantized state's codes and scales alike (Optax's
    # jax.tree.map sees two arrays); scalars (counts, products) and PRNG keys are not.
    def double(x):
        if isinstance(x, atx.QuantizedArray):
            return atx.QuantizedArray(2 * x.codes + 1, 2 * x.scales + 1, x.block_size)
        return 2 * x + 1 if jnp.ndim(x) and jnp.issubdtype(x.dtype, jnp.inexact) else x

    expected = jax.tree.map(double, state, is_leaf=lambda x: isinstance(x, atx.QuantizedArray))
    chex.assert_trees_all_close(mapped, expected, rtol=0, atol=0)


@registry
def test_python_numbers_and_numpy_params_without_warnings(entry):
    tx = entry()
    params = {"scale": 1.5, "w": np.linspace(-1.0, 1.0, 4)}  # A Python float and a NumPy float64 array.
    grads = {"scale": 0.3, "w": np.linspace(0.5, -0.5, 4)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "Explicitly requested dtype float64 ... will be truncated".
        state = tx.init(params)
        updates, state = tx.update(grads, state, params)
        jax.jit(tx.update)(grads, state, params)
    as_arrays = jax.tree.map(jnp.asarray, params)
    expected, _ = tx.update(jax.tree.map(jnp.asarray, grads), tx.init(as_arrays), as_arrays)
    chex.assert_trees_all_close(updates, expected, rtol=1e-6)
    assert {jnp.dtype(x.dtype) for x in jax.tree.leaves(updates)} == {jnp.dtype(jnp.float32)}


@registry
def test_empty_and_none_subtrees(entry):
    tx = entry()
    params = {"a": jnp.ones(3), "empty": {}, "nothing": None, "zero_size": jnp.ones((0, 2))}
    updates, _ = jax.jit(tx.update)(grad(params, 0), tx.init(params), params)
    assert jax.tree.structure(updates) == jax.tree.structure(params)
    assert updates["zero_size"].shape == (0, 2)


# ----------------------------------------------------------------------------- complex params


@parametrize_entries([e for e in REGISTRY if e.complex is not None])
def test_complex_params_rotate_with_their_gradients(entry):
    # Every update here depends on g only through g itself and |g|^2: multiplying every gradient (and
    # param) by one phase e^{i theta} must multiply every update by the same phase. A real square (g * g)
    # or a dropped imaginary part breaks this. (A non-zero real initial first moment would not rotate: the
    # registry entry says which arguments to change for this test.)
    phase = np.exp(0.7j)
    params = nested_params()
    grads = _grads(params, 5)
    real, _ = _run_entry(entry, params, grads, **entry.complex)
    rotate = lambda tree: jax.tree.map(lambda x: jnp.asarray(np.asarray(x) * phase, jnp.complex64), tree)  # noqa: E731
    turned, state = _run_entry(entry, rotate(params), [rotate(g) for g in grads], **entry.complex)
    for t, (a, e) in enumerate(zip(turned, real, strict=True)):
        error = _max_relative(a, jax.tree.map(lambda x: np.asarray(x) * phase, e))
        assert error < 1e-5, f"step {t}: relative error {error:.3g}"  # float32 rounding, a few ulps.
    for leaf in jax.tree.leaves(state):
        assert jnp.issubdtype(leaf.dtype, jnp.complexfloating) or jnp.ndim(leaf) == 0 or np.all(np.isreal(leaf))
