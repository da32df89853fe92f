"""Hostile input and numerics: clear errors, no NaN from zero gradients in low precision, state dtypes by
choice, mixed precision under MultiSteps, long runs."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptive_tx as atx
from tests.helpers import nested_params, scan_steps, with_defaults

optimizers = pytest.mark.parametrize("entry", with_defaults, ids=str)
LOW = [jnp.float16, jnp.bfloat16]
low = pytest.mark.parametrize("dtype", LOW, ids=lambda d: jnp.dtype(d).name)


def _typeof(tree):
    return jax.tree.map(lambda x: (jnp.shape(x), jnp.result_type(x)), tree)


# ----------------------------------------------------------------------------- clear errors


@optimizers
@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda g: {"layer": {"w": g["layer"]["w"]}, "scalars": g["scalars"]},
            r"the leaf \['layer'\]\['b'\] is missing",
        ),
        (lambda g: {**g, "extra": jnp.ones(2)}, r"the leaf \['extra'\] is not in the state"),
        (lambda g: {**g, "layer": {**g["layer"], "w": jnp.ones((3, 2))}}, r"\['layer'\]\['w'\] has shape \(3, 2\)"),
        (lambda g: {**g, "scalars": list(g["scalars"])}, "their tree structures differ"),
    ],
    ids=["missing", "extra", "shape", "structure"],
)
def test_gradients_unlike_the_state_raise_naming_the_leaf(entry, mutate, message):
    tx = entry.make(**entry.defaults)
    params = nested_params()
    state = tx.init(params)
    with pytest.raises(ValueError, match=message):
        jax.jit(tx.update)(mutate(params), state, params)


@optimizers
@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_], ids=["int32", "bool"])
def test_non_float_gradients_raise_type_error_naming_the_leaf(entry, dtype):
    tx = entry.make(**entry.defaults)
    params = nested_params()
    grads = {**params, "layer": {**params["layer"], "b": jnp.ones(2, dtype)}}
    with pytest.raises(TypeError, match=r"gradient leaf \['layer'\]\['b'\] has dtype"):
        tx.update(grads, tx.init(params), params)


@pytest.mark.parametrize("factory", [atx.adam, atx.momentum, atx.rmsprop], ids=lambda f: f.__name__)
def test_complex_gradients_for_real_params_raise_naming_the_leaf(factory):
    # A real first moment cannot hold a complex gradient: dropping its imaginary part would be silent.
    tx = factory(0.1, centered=True) if factory is atx.rmsprop else factory(0.1)
    params = nested_params()
    grads = {**params, "layer": {**params["layer"], "b": jnp.ones(2, jnp.complex64)}}
    with pytest.raises(TypeError, match=r"gradient leaf \['layer'\]\['b'\] is complex"):
        tx.update(grads, tx.init(params), params)


def test_a_refused_step_leaves_the_state_usable():
    # The error comes while tracing, before any state is written: the same state then steps normally.
    tx = atx.adam(0.1)
    params = nested_params()
    state = tx.init(params)
    with pytest.raises(ValueError):
        tx.update({"layer": params["layer"]}, state, params)
    updates, new_state = tx.update(params, state, params)
    assert int(new_state[0].count) == 1
    chex.assert_tree_all_finite(updates)


# ----------------------------------------------------------------------------- low precision


@optimizers
@low
@pytest.mark.parametrize("scale", [0.0, 1e-7, 1e-30], ids=["zero", "tiny", "underflow"])
def test_zero_and_tiny_low_precision_gradients_give_the_float32_steps(entry, dtype, scale):
    # Optax's GitHub issues #1754, #1784, #1789: eps = 1e-8 underflows to 0 in float16, and 0/0 gave NaN. Here the
    # low-precision run must give what the same (rounded) gradients give in float32: zero for zero.
    tx = entry.make(**entry.defaults)
    params = nested_params(dtype)
    state, state32 = tx.init(params), tx.init(jax.tree.map(lambda p: p.astype(jnp.float32), params))
    update = jax.jit(tx.update)
    for _ in range(3):
        grads = jax.tree.map(lambda p: (jnp.full(p.shape, scale, jnp.float32)).astype(dtype), params)
        updates, state = update(grads, state, params)
        expected, state32 = update(jax.tree.map(lambda g: g.astype(jnp.float32), grads), state32, params)
        chex.assert_tree_all_finite(state)
        for u, e in zip(jax.tree.leaves(updates), jax.tree.leaves(expected), strict=True):
            u, e = np.asarray(u, np.float64), np.asarray(e, np.float64)
            if dtype == jnp.float16 and scale == 1e-7:
                # A first moment of (1 - 0.9) * 1e-7 is below float16's subnormal range (6e-8 steps): stored
                # in the params' dtype it rounds to a multiple of 6e-8, or to 0 (mu_dtype=jnp.float32 keeps
                # it). The step may shrink, never flip its sign.
                assert np.all(u * e >= 0) and np.all(np.abs(u) <= 2 * np.abs(e))
            else:  # One rounding to the low dtype where the state is stored in it (first moments): 2^-8.
                np.testing.assert_allclose(u, e, rtol=2**-7, atol=0)


BF16, F32 = jnp.bfloat16, jnp.float32
# (block, kwargs, the state's dtypes, the updates' dtype) for bfloat16 gradients and no params: the updates
# come in the wider of the gradients' dtype and the dtypes of the first moments and of explicit dtype
# arguments; a squared accumulator at its float32 default stays inside.
BLOCK_DTYPES = [
    (atx.scale_by_adagrad, {}, {"sum_of_squares": F32}, BF16),
    (atx.scale_by_adagrad, {"accumulator_dtype": BF16}, {"sum_of_squares": BF16}, BF16),
    (atx.scale_by_rms, {"centered": True}, {"nu": F32, "mu": BF16}, BF16),
    (atx.scale_by_rms, {"accumulator_dtype": F32, "centered": True}, {"nu": F32, "mu": F32}, F32),
    (atx.scale_by_adadelta, {}, {"e_g": F32, "e_x": F32}, BF16),
    (atx.scale_by_adadelta, {"accumulator_dtype": BF16}, {"e_g": BF16, "e_x": BF16}, BF16),
    (atx.scale_by_momentum, {}, {"trace": BF16}, BF16),
    (atx.scale_by_momentum, {"accumulator_dtype": F32}, {"trace": F32}, F32),
    (atx.scale_by_adam, {}, {"mu": BF16, "nu": F32}, BF16),
    (atx.scale_by_adam, {"mu_dtype": F32, "nu_dtype": BF16}, {"mu": F32, "nu": BF16}, F32),
    (atx.scale_by_adam, {"nu_dtype": F32}, {"mu": BF16, "nu": F32}, F32),
    (atx.scale_by_nadam, {}, {"mu": BF16, "nu": F32}, BF16),
    (atx.scale_by_adam, {"amsgrad": "raw"}, {"mu": BF16, "nu": F32, "nu_max": F32}, BF16),
]


@pytest.mark.parametrize(
    ("block", "kwargs", "expected", "updates_dtype"), BLOCK_DTYPES, ids=lambda x: getattr(x, "__name__", None)
)
def test_state_dtype_is_a_choice_and_persists(block, kwargs, expected, updates_dtype):
    # Squared accumulators default to float32 for bfloat16 params (Optax's GitHub issue #1552); first moments keep the
    # params' dtype; an explicit dtype wins either way, and persists across steps.
    tx = block(**kwargs)
    params = nested_params(jnp.bfloat16)
    state = tx.init(params)
    for _ in range(2):
        for field, dtype in expected.items():
            assert {leaf.dtype for leaf in jax.tree.leaves(getattr(state, field))} == {jnp.dtype(dtype)}, field
        updates, state = jax.jit(tx.update)(params, state)
        assert {leaf.dtype for leaf in jax.tree.leaves(updates)} == {jnp.dtype(updates_dtype)}


@pytest.mark.parametrize("block", [atx.scale_by_adagrad, atx.scale_by_rms, atx.scale_by_momentum])
def test_bad_state_dtype_raises(block):
    message = r"^accumulator_dtype must be None, a floating-point dtype \(real or complex\) or adaptive_tx.quantized"
    with pytest.raises(TypeError, match=message):
        block(accumulator_dtype=jnp.int32)
    with pytest.raises(TypeError, match="accumulator_dtype"):
        block(accumulator_dtype="no_such_dtype")


def test_float32_moments_track_bf16_params_better():
    # With bf16 moments, b2 = 0.999 updates vanish below bf16's resolution; the default float32 keeps them.
    params = jnp.ones(4, jnp.bfloat16)
    grads = jnp.full(4, 0.01, jnp.bfloat16)
    low_tx, high_tx = atx.scale_by_adam(nu_dtype=jnp.bfloat16), atx.scale_by_adam()
    low_s, high_s = low_tx.init(params), high_tx.init(params)
    for _ in range(300):
        _, low_s = low_tx.update(grads, low_s)
        _, high_s = high_tx.update(grads, high_s)
    g = float(grads[0])  # 0.01 as bfloat16 holds it: 0.010009765625.
    exact = g**2 * (1 - 0.999**300)
    assert abs(float(high_s.nu[0]) - exact) < 1e-3 * exact
    assert abs(float(low_s.nu[0]) - exact) > 10 * abs(float(high_s.nu[0]) - exact)


# ----------------------------------------------------------------------------- mixed precision, faults


@optimizers
@pytest.mark.parametrize("param_dtype", [jnp.float32, jnp.float16, jnp.bfloat16], ids=lambda d: jnp.dtype(d).name)
@pytest.mark.parametrize("grad_dtype", [jnp.float32, jnp.float16, jnp.bfloat16], ids=lambda d: jnp.dtype(d).name)
def test_multi_steps_with_mixed_precision(entry, param_dtype, grad_dtype):
    # Optax's GitHub issues #377 and #1038: MultiSteps' lax.cond needs the inner updates in the gradients' dtype.
    tx = optax.MultiSteps(entry.make(**entry.defaults), every_k_schedule=2)
    params = nested_params(param_dtype)
    state = tx.init(params)
    grads = jax.tree.map(lambda p: (p - 1).astype(grad_dtype), params)
    with jax.numpy_dtype_promotion("standard"):  # optax.MultiSteps itself divides by an int32 count.
        update = jax.jit(tx.update)
        for _ in range(4):
            updates, new_state = update(grads, state, params)
            assert _typeof(new_state) == _typeof(state)
            state = new_state
            chex.assert_tree_all_finite(updates)
            params = optax.apply_updates(params, updates)
    assert _typeof(params) == _typeof(nested_params(param_dtype))


@optimizers
def test_saturated_counter_stays_finite(entry):
    tx = entry.make(**entry.defaults)
    params = nested_params()
    state = jax.tree.map(
        lambda x: jnp.asarray(jnp.iinfo(jnp.int32).max, jnp.int32) if x.dtype == jnp.int32 else x, tx.init(params)
    )
    update = jax.jit(tx.update)
    for _ in range(3):
        updates, state = update(jax.tree.map(lambda p: p - 1, params), state, params)
        chex.assert_tree_all_finite(updates)
    for leaf in jax.tree.leaves(state):
        if leaf.dtype == jnp.int32:
            assert int(leaf) == jnp.iinfo(jnp.int32).max


# ----------------------------------------------------------------------------- long runs


def test_a_million_adam_steps_stay_finite_and_converge():
    # An ill-conditioned quadratic (curvatures 1e-2 .. 1e2, condition number 1e4), 1e6 steps in one scan.
    curvature = jnp.logspace(-2, 2, 8)
    grad = jax.grad(lambda w: 0.5 * jnp.sum(curvature * w**2))
    w, state = scan_steps(atx.adam(1e-2), grad, jnp.ones(8), 1_000_000)
    chex.assert_tree_all_finite((w, state))
    assert int(state[0].count) == 1_000_000
    assert float(jnp.max(jnp.abs(w))) < 1e-6


def test_bias_correction_exact_at_step_one_and_harmless_at_a_million():
    with jax.enable_x64(True):
        g = jnp.array([0.5, -2.0, 1e-3], jnp.float64)
        tx = atx.scale_by_adam()
        first, state = tx.update(g, tx.init(g))
        # t = 1: v^ = g and s^ = g^2 exactly, so the direction is g / (|g| + eps).
        np.testing.assert_allclose(first, g / (jnp.abs(g) + 1e-8), rtol=1e-15)
        late = state._replace(count=jnp.asarray(999_999, jnp.int32))
        direction, late = tx.update(g, late)
        # t = 1e6: 1 - b^t is 1 to double precision, so the step is the uncorrected one.
        v = 0.9 * state.mu + 0.1 * g
        s = 0.999 * state.nu + 0.001 * g**2
        np.testing.assert_allclose(direction, v / (jnp.sqrt(s) + 1e-8), rtol=1e-15)


def test_only_zero_over_zero_is_zero():
    # A coordinate whose gradients were all 0, with eps = 0: 0/0, no gradient, no step.
    tx = atx.scale_by_adam(eps=0.0)
    zero, _ = tx.update(jnp.zeros(2), tx.init(jnp.zeros(2)))
    np.testing.assert_array_equal(zero, 0.0)
    # But a non-zero first moment over a zero second moment is what the equation says: inf (the old guard
    # returned 0 here, hiding it from optax.apply_if_finite).
    tx = atx.scale_by_adam(eps=0.0, initial_mu=0.5)
    step, _ = tx.update(jnp.zeros(2), tx.init(jnp.zeros(2)))
    np.testing.assert_array_equal(step, np.inf)
