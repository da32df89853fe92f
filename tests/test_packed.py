"""``atx.packed``: a leafwise transformation on one flat vector per dtype gives the transformation's results.

The registry (tests/helpers.py) runs ``packed-adam`` and ``packed-scale_by_rms`` through every property test
(jit, inject_hyperparams, MultiSteps, checkpoints, derivatives, ...); here: equality with the unpacked
optimizers on a tree of mixed dtypes, composition, donation, the state's layout and the errors.
"""

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptive_tx as atx
from tests.helpers import OPTIMIZERS

# The same float32 operations on the same values, only in one loop instead of one per leaf; XLA may still
# fuse the two programs differently (an FMA here or there), a few ulps after 5 steps: below 1e-6 relative.
# The absolute floor covers coordinates that pass near 0 (a few ulps of O(1) intermediates).
SAME = {"rtol": 1e-6, "atol": 1e-7}
# bfloat16 leaves: XLA may keep an intermediate in float32 instead of rounding it to bfloat16 (its default
# xla_allow_excess_precision), in one program and not the other: at most one bfloat16 rounding (2^-8
# relative to the leaf's largest value) per step apart, 5 steps.
BFLOAT16_STEPS = 5 * 2**-8


def _assert_same(actual, expected):
    """float32 leaves to ``SAME``; bfloat16 leaves to one bfloat16 rounding per step, normwise."""
    chex.assert_trees_all_equal_dtypes(actual, expected)
    chex.assert_trees_all_equal_shapes(actual, expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        if a.dtype == jnp.bfloat16:
            a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
            assert np.max(np.abs(a - e)) <= BFLOAT16_STEPS * np.max(np.abs(e))
        else:
            chex.assert_trees_all_close(a, e, **SAME)


def _mixed_params():
    """Nested dicts, a tuple, float32 and bfloat16 leaves, scalars of both."""
    return {
        "encoder": {
            "w": jnp.linspace(-1.0, 1.0, 12, dtype=jnp.float32).reshape(3, 4),
            "b": jnp.array([0.3, -0.2, 0.1], jnp.float32),
            "norm": jnp.linspace(0.5, 1.5, 6, dtype=jnp.bfloat16).reshape(2, 3),
        },
        "scalars": (jnp.asarray(1.5, jnp.float32), jnp.asarray(-0.75, jnp.bfloat16)),
        "head": jnp.array([[0.2, -0.4], [0.6, 0.8]], jnp.bfloat16),
    }


def _grad(params, t):
    return jax.tree.map(lambda w: w - jnp.sin(3 * w) + jnp.asarray(t + 1, w.dtype) / 10, params)


def _apply(params, updates):
    """``optax.apply_updates`` with its one rounding into the params' dtype made explicit (strict promotion)."""
    return jax.tree.map(lambda p, u: (p.astype(u.dtype) + u).astype(p.dtype), params, updates)


def _trajectory(tx, params, steps=5):
    @jax.jit
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return _apply(params, updates), state, updates

    state = tx.init(params)
    out = []
    for t in range(steps):
        # Gradients computed outside the step: fused into it, XLA may round their bfloat16 intermediates
        # differently in the two programs, and the optimizers would see different inputs.
        params, state, updates = step(params, state, _grad(params, t))
        out.append((params, updates))
    return out


@pytest.mark.parametrize("case", OPTIMIZERS, ids=str)
@pytest.mark.parametrize("kwargs", ["defaults", "unusual"])
def test_equals_the_unpacked_optimizer_on_mixed_dtypes(case, kwargs):
    hyperparameters = case.defaults if kwargs == "defaults" else case.unusual[0]
    params = _mixed_params()
    expected = _trajectory(case.optimizer(**hyperparameters), params)
    actual = _trajectory(atx.packed(case.optimizer(**hyperparameters)), params)
    for step, step_ref in zip(actual, expected, strict=True):
        _assert_same(step, step_ref)


def test_state_is_one_buffer_per_dtype():
    params = _mixed_params()
    state = atx.packed(atx.scale_by_adam()).init(params)
    assert isinstance(state, atx.PackedState)
    assert {k: v.shape for k, v in state.inner_state.mu.items()} == {"float32": (16,), "bfloat16": (11,)}
    assert {k: v.dtype for k, v in state.inner_state.nu.items()} == {"float32": jnp.float32, "bfloat16": jnp.float32}
    assert state.inner_state.mu["bfloat16"].dtype == jnp.bfloat16  # The precision policy, applied per buffer.


def test_composes_with_chain_and_a_global_norm():
    params = _mixed_params()
    # Packed block chained with the learning rate; a global norm is the same packed or not.
    packed = optax.chain(optax.clip_by_global_norm(0.5), atx.packed(atx.scale_by_adam()), optax.scale(-0.1))
    unpacked = optax.chain(optax.clip_by_global_norm(0.5), atx.adam(0.1))
    with jax.numpy_dtype_promotion("standard"):  # Optax's global norm adds bfloat16 and float32 squares.
        _assert_same(_trajectory(packed, params), _trajectory(unpacked, params))
    whole = atx.packed(optax.chain(atx.scale_by_rms(decay=0.5), optax.scale(-0.1)))
    _assert_same(_trajectory(whole, params), _trajectory(atx.rmsprop(0.1, decay=0.5), params))


def test_hyperparameters_injected_into_the_inner_transformation():
    params = _mixed_params()
    # float32 hyperparameters: without hyperparam_dtype, inject_hyperparams takes the first buffer's dtype.
    inner = optax.inject_hyperparams(atx.adam, hyperparam_dtype=jnp.float32)(learning_rate=0.1, b2=0.999)
    tx = atx.packed(inner)
    state = tx.init(params)
    state.inner_state.hyperparams["learning_rate"] = jnp.asarray(0.02, jnp.float32)
    grads = _grad(params, 0)
    updates, _ = jax.jit(tx.update)(grads, state, params)
    expected, _ = atx.adam(0.02, b2=0.999).update(grads, atx.adam(0.02, b2=0.999).init(params), params)
    _assert_same(updates, expected)


def test_donated_step_without_warnings():
    params = _mixed_params()
    tx = atx.packed(atx.adam(0.1))

    def step(params, state):
        updates, state = tx.update(_grad(params, 0), state, params)
        return _apply(params, updates), state

    donated = jax.jit(step, donate_argnums=(0, 1))
    p, s = jax.tree.map(jnp.copy, params), tx.init(params)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Some donated buffers were not usable".
        for _ in range(3):
            p, s = donated(p, s)
    expected = params
    state = tx.init(params)
    for _ in range(3):
        expected, state = jax.jit(step)(expected, state)
    chex.assert_trees_all_equal(p, expected)


def test_keeps_the_kind_of_the_transformation():
    plain = optax.GradientTransformation(optax.scale(2.0).init, optax.scale(2.0).update)
    assert not isinstance(atx.packed(plain), optax.GradientTransformationExtraArgs)
    assert isinstance(atx.packed(atx.adam(0.1)), optax.GradientTransformationExtraArgs)
    params = _mixed_params()
    updates, _ = atx.packed(plain).update(_grad(params, 0), atx.packed(plain).init(params))
    chex.assert_trees_all_close(updates, jax.tree.map(lambda g: 2 * g, _grad(params, 0)), rtol=0)
    with pytest.raises(TypeError, match="packed wraps an optax.GradientTransformation"):
        atx.packed(atx.adam)  # type: ignore[arg-type]


def test_structure_dependent_transformations_differ_packed():
    # As documented: a per-leaf norm sees one leaf per dtype when packed, so it clips differently.
    params = _mixed_params()
    tx = optax.chain(optax.clip_by_block_rms(0.1), optax.scale(-1.0))
    packed, _ = atx.packed(tx).update(_grad(params, 0), atx.packed(tx).init(params))
    unpacked, _ = tx.update(_grad(params, 0), tx.init(params))
    with pytest.raises(AssertionError):
        chex.assert_trees_all_close(packed, unpacked, **SAME)


def test_a_gradient_tree_unlike_the_params_names_the_leaf():
    params = _mixed_params()
    tx = atx.packed(atx.adam(0.1))
    state = tx.init(params)
    grads = _grad(params, 0)
    missing = {**grads, "encoder": {k: v for k, v in grads["encoder"].items() if k != "norm"}}
    with pytest.raises(ValueError, match=r"\['encoder'\]\['norm'\] is missing"):
        tx.update(missing, state, params)
    reshaped = {**grads, "head": grads["head"].reshape(4)}
    with pytest.raises(ValueError, match=r"gradient leaf \['head'\] has shape \(4,\), but the param has shape"):
        tx.update(reshaped, state, params)
    # Without params, the packed sizes tell that something differs, not which leaf.
    with pytest.raises(ValueError, match="atx.packed: the gradients do not fit the state.*Pass params to update"):
        tx.update(missing, state)


def test_empty_trees_and_placeholders_pass_through():
    tx = atx.packed(atx.adam(0.1))
    updates, state = tx.update({}, tx.init({}))
    assert updates == {}
    # optax.tree_utils.tree_map_params treats the flat buffers as the params-shaped state.
    params = _mixed_params()
    state = tx.init(params)
    mapped = optax.tree_utils.tree_map_params(tx, lambda x: 2 * x, state)
    chex.assert_trees_all_equal(mapped.inner_state[0].mu, jax.tree.map(lambda x: 2 * x, state.inner_state[0].mu))
