"""Properties of the five optimizers beyond the registry-wide ones (tests/test_registry.py): convergence,
scan, composition with Optax blocks and schedules, masking, clipping, non-finite gradients."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from adaptive_tx.problems import PROBLEMS
from tests.helpers import (
    ROSENBROCK_STEPS,
    block_kwargs,
    grad,
    nested_params,
    on_parabola,
    on_rosenbrock,
    run_steps,
    with_defaults,
    with_scale_by,
)

optimizers = pytest.mark.parametrize("entry", with_defaults, ids=str)

# jit fuses float32 operations differently from op-by-op dispatch (and scan from a loop of jitted steps);
# such reorderings change results by a few float32 ulps per step, below 1e-6 relative after 10 steps.
# The values here are O(1), so a coordinate passing near 0 carries an absolute error of a few ulps of
# O(1) intermediates (~1e-7): hence the absolute floor too.
REORDER = {"rtol": 1e-6, "atol": 1e-6}


def _scan(tx, params, grad_fn, steps):
    """``steps`` steps of ``tx`` in one jitted ``lax.scan``; returns (trajectory, final state)."""

    @jax.jit
    def run(params):
        def step(carry, t):
            w, state = carry
            updates, state = tx.update(grad_fn(w, t), state, w)
            w = optax.apply_updates(w, updates)
            return (w, state), w

        (_, state), ws = jax.lax.scan(step, (params, tx.init(params)), jnp.arange(steps))
        return ws, state

    return run(params)


def _unstack(tree, steps):
    return [jax.tree.map(lambda x, i=i: x[i], tree) for i in range(steps)]


# ----------------------------------------------------------------------------- convergence


@pytest.mark.parametrize("entry", on_parabola, ids=str)
def test_converges_on_parabola(entry):
    # optax's alias-test parabola: sum((w - target)^2) from [-1, 10, 1].
    target = jnp.array([1.0, -1.0, 1.0])
    parabola = jax.grad(lambda w: jnp.sum((w - target) ** 2))
    ws, _ = _scan(entry.make(**entry.parabola), jnp.array([-1.0, 10.0, 1.0]), lambda w, t: parabola(w), 2000)
    # optax's tolerance for the same test.
    np.testing.assert_allclose(ws[-1], target, rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize("entry", on_rosenbrock, ids=str)
def test_converges_on_rosenbrock(entry):
    problem = PROBLEMS["rosenbrock"]
    rosenbrock = jax.grad(problem.fn)
    tx = entry.make(**entry.rosenbrock)
    ws, _ = _scan(tx, jnp.asarray(problem.start), lambda w, t: rosenbrock(w), ROSENBROCK_STEPS)
    # From (-1.2, 1) along the curved valley to (1, 1); optax's tolerance, 3e-2.
    np.testing.assert_allclose(ws[-1], jnp.asarray(problem.minima[0]), rtol=3e-2, atol=3e-2)


# ----------------------------------------------------------------------------- jit, scan, tracing


@optimizers
def test_scan_equals_python_loop(entry):
    tx = entry()
    looped, loop_state = run_steps(tx, nested_params(), grad, 10)
    scanned, scan_state = _scan(tx, nested_params(), grad, 10)
    chex.assert_trees_all_close(looped, _unstack(scanned, 10), **REORDER)
    chex.assert_trees_all_close(loop_state, scan_state, **REORDER)


# ----------------------------------------------------------------------------- composition with Optax


@pytest.mark.parametrize("entry", with_scale_by, ids=str)
def test_block_then_scale_equals_optimizer(entry):
    lr = entry.kwargs["learning_rate"]
    composed = optax.chain(entry.scale_by(**block_kwargs(entry.kwargs)), optax.scale(-lr))
    expected, _ = run_steps(entry(), nested_params(), grad, 10)
    actual, _ = run_steps(composed, nested_params(), grad, 10)
    chex.assert_trees_all_equal(actual, expected)  # The same operations: bit for bit.


@optimizers
def test_inject_hyperparams_changes_take_effect_without_retrace(entry):
    kwargs = entry.kwargs
    tx = optax.inject_hyperparams(entry.make)(**kwargs)
    params = nested_params()
    grads = grad(params, 0)
    update = jax.jit(chex.assert_max_traces(n=1)(tx.update))
    state = tx.init(params)
    first, _ = update(grads, state, params)
    state.hyperparams["learning_rate"] = jnp.asarray(2 * kwargs["learning_rate"], jnp.float32)
    second, _ = update(grads, state, params)
    chex.assert_trees_all_close(second, jax.tree.map(lambda u: 2 * u, first), **REORDER)
    chex.clear_trace_counter()


@pytest.mark.parametrize("entry", with_scale_by, ids=str)
def test_learning_rate_schedule(entry):
    schedule = optax.linear_schedule(0.1, 0.01, transition_steps=5)
    tx = entry(learning_rate=schedule)
    block = entry.scale_by(**block_kwargs(entry.kwargs))
    params = nested_params()
    state, block_state = tx.init(params), block.init(params)
    for t in range(8):
        grads = grad(params, t)
        updates, state = jax.jit(tx.update)(grads, state, params)
        directions, block_state = jax.jit(block.update)(grads, block_state, params)
        expected = jax.tree.map(lambda d, t=t: -schedule(t) * d, directions)
        chex.assert_trees_all_close(updates, expected, **REORDER)
        params = optax.apply_updates(params, updates)


# ----------------------------------------------------------------------------- init, shapes, dtypes


# ----------------------------------------------------------------------------- Optax wrappers


@optimizers
def test_masked_updates_only_the_mask(entry):
    params = nested_params()
    mask = {"layer": {"w": True, "b": False}, "scalars": (False, True)}
    tx = optax.masked(entry(), mask)
    grads = grad(params, 0)
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
    plain = entry()
    expected, _ = plain.update(grads, plain.init(params), params)
    chex.assert_trees_all_close(updates["layer"]["w"], expected["layer"]["w"], **REORDER)
    chex.assert_trees_all_close(updates["scalars"][1], expected["scalars"][1], **REORDER)
    # optax.masked passes masked-out updates through untouched.
    chex.assert_trees_all_equal(updates["layer"]["b"], grads["layer"]["b"])
    chex.assert_trees_all_equal(updates["scalars"][0], grads["scalars"][0])


@optimizers
def test_clip_by_global_norm_then_optimizer(entry):
    tx = optax.chain(optax.clip_by_global_norm(0.5), entry())
    plain = entry()

    def clipped(params, t):
        g = grad(params, t)
        norm = optax.tree.norm(g)
        return jax.tree.map(lambda x: x * jnp.minimum(1.0, 0.5 / norm), g)

    actual, _ = run_steps(tx, nested_params(), grad, 5)
    expected, _ = run_steps(plain, nested_params(), clipped, 5)
    chex.assert_trees_all_close(actual, expected, **REORDER)


@optimizers
@pytest.mark.parametrize("bad", [jnp.nan, jnp.inf], ids=["nan", "inf"])
def test_non_finite_gradients_propagate(entry, bad):
    # So that optax.apply_if_finite (and the user) can see them: no silent zero step.
    tx = entry.make(**entry.defaults)
    params = {"w": jnp.ones(3)}
    state = tx.update({"w": jnp.ones(3)}, tx.init(params), params)[1]
    updates, _ = jax.jit(tx.update)({"w": jnp.array([1.0, bad, 1.0])}, state, params)
    u = np.asarray(updates["w"])
    assert not np.isfinite(u[1])
    assert np.all(np.isfinite(u[[0, 2]]))


@optimizers
def test_zero_gradient_with_zero_eps_gives_a_zero_step_not_nan(entry):
    tx = entry.make(**{**entry.defaults, **entry.zero_eps})
    params = jnp.zeros(3)
    updates, _ = jax.jit(tx.update)(jnp.zeros(3), tx.init(params), params)
    np.testing.assert_array_equal(updates, 0.0)
