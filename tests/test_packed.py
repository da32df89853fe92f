"""``atx.packed``: a leafwise transformation on one flat vector per dtype gives the transformation's results.

The registry (tests/helpers.py) runs ``packed-adam`` and ``packed-scale_by_rms`` through every property test
(jit, inject_hyperparams, MultiSteps, checkpoints, derivatives, ...); here: equality with the unpacked
optimizers on a tree of mixed dtypes, composition, donation, the state's layout and the errors.
"""

import json
import os
import re
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptive_tx as atx
from tests import background
from tests.background import Job
from tests.helpers import grad, with_defaults

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
        params, state, updates = step(params, state, grad(params, t))
        out.append((params, updates))
    return out


@pytest.mark.parametrize("entry", with_defaults, ids=str)
@pytest.mark.parametrize("kwargs", ["defaults", "kwargs"])
def test_equals_the_unpacked_optimizer_on_mixed_dtypes(entry, kwargs):
    hyperparameters = entry.defaults if kwargs == "defaults" else entry.kwargs
    params = _mixed_params()
    expected = _trajectory(entry.make(**hyperparameters), params)
    actual = _trajectory(atx.packed(entry.make(**hyperparameters)), params)
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
    grads = grad(params, 0)
    updates, _ = jax.jit(tx.update)(grads, state, params)
    expected, _ = atx.adam(0.02, b2=0.999).update(grads, atx.adam(0.02, b2=0.999).init(params), params)
    _assert_same(updates, expected)


def test_donated_step_without_warnings():
    params = _mixed_params()
    tx = atx.packed(atx.adam(0.1))

    def step(params, state):
        updates, state = tx.update(grad(params, 0), state, params)
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
    updates, _ = atx.packed(plain).update(grad(params, 0), atx.packed(plain).init(params))
    chex.assert_trees_all_close(updates, jax.tree.map(lambda g: 2 * g, grad(params, 0)), rtol=0)
    with pytest.raises(TypeError, match="packed wraps an optax.GradientTransformation"):
        atx.packed(atx.adam)  # type: ignore[arg-type]


def test_structure_dependent_transformations_differ_packed():
    # As documented: a per-leaf norm sees one leaf per dtype when packed, so it clips differently.
    params = _mixed_params()
    tx = optax.chain(optax.clip_by_block_rms(0.1), optax.scale(-1.0))
    packed, _ = atx.packed(tx).update(grad(params, 0), atx.packed(tx).init(params))
    unpacked, _ = tx.update(grad(params, 0), tx.init(params))
    with pytest.raises(AssertionError):
        chex.assert_trees_all_close(packed, unpacked, **SAME)


def test_a_gradient_tree_unlike_the_params_names_the_leaf():
    params = _mixed_params()
    tx = atx.packed(atx.adam(0.1))
    state = tx.init(params)
    grads = grad(params, 0)
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


def _shifted(params):
    """Gradients placed like the params (elementwise, so a sharded leaf's stay sharded)."""
    return jax.tree.map(lambda w: w - jnp.asarray(0.3, w.dtype), params)


def test_integer_params_leaves_are_refused_by_name():
    # Checked on the user's tree before packing: the error names the leaf, not an "int32" dtype group.
    params = {"layer": {"w": jnp.ones((2, 3)), "step": jnp.zeros((), jnp.int32)}, "mask": jnp.ones(3, bool)}
    tx = atx.packed(atx.adam(0.1))
    with pytest.raises(TypeError, match=r"params leaf \['layer'\]\['step'\] has dtype int32"):
        tx.init(params)
    with pytest.raises(TypeError, match=r"params leaf \['layer'\]\['step'\] has dtype int32"):
        jax.jit(tx.init)(params)
    floats = {"layer": {"w": params["layer"]["w"]}}
    state = tx.init(floats)
    grads = {"layer": {"w": jnp.ones((2, 3))}}
    with pytest.raises(TypeError, match=r"params leaf \['mask'\] has dtype bool"):
        tx.update(grads, state, {"layer": {"w": jnp.ones((2, 3))}, "mask": params["mask"]})


def test_one_device_adds_no_sharding_inspection():
    # One device: nothing can be split, so the jitted step carries no inspection (no JAX effect, which
    # would take it off the C++ dispatch path). Several devices: tests/test_packed.py's worker below.
    assert jax.device_count() == 1
    params = _mixed_params()
    tx = atx.packed(atx.adam(0.1))
    jaxpr = jax.make_jaxpr(lambda p, s: tx.update(_shifted(p), s, p))(params, tx.init(params))
    assert not jaxpr.effects
    assert "inspect_sharding" not in str(jax.make_jaxpr(tx.init)(params))


# --------------------------------------------------------------------------- several devices (a worker process)

SHARDED_LEAF = r"\['dense'\]\['w'\]"
MODES = [f"{axes}, {mode}" for axes in ("Auto", "Explicit") for mode in ("eager", "jit")]
CALLS = {"init": "param", "update with params": "param", "update without params": "gradient"}


def _mesh_params(mesh, spec):
    """A (8, 16) float32 leaf placed by ``spec`` on the 2 x 4 mesh, a replicated vector and bfloat16 scalar."""
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    def put(x, leaf_spec):
        return jax.device_put(x, NamedSharding(mesh, leaf_spec))

    w = jnp.linspace(-1.0, 1.0, 128, dtype=jnp.float32).reshape(8, 16)
    b = jnp.linspace(0.5, -0.5, 16, dtype=jnp.float32)
    return {"dense": {"w": put(w, spec), "b": put(b, P())}, "scale": put(jnp.asarray(0.75, jnp.bfloat16), P())}


def _mesh_checks(mesh, axes):
    """Sharded params through every call, eagerly and jitted (as arguments), and replicated ones stepped."""
    from jax.sharding import PartitionSpec as P

    from adaptive_tx import _packed

    report = {}
    sharded, replicated = _mesh_params(mesh, P("x", "y")), _mesh_params(mesh, P())
    tx = atx.packed(atx.adam(0.1))
    state = tx.init(replicated)
    calls = {
        "init": (tx.init, (sharded,)),
        "update with params": (tx.update, (_shifted(replicated), state, sharded)),
        "update without params": (tx.update, (_shifted(sharded), state)),
    }
    for mode in ("eager", "jit"):
        for call, (f, args) in calls.items():
            try:
                jax.block_until_ready(f(*args) if mode == "eager" else jax.jit(f)(*args))
                report[f"{axes}, {mode}, {call}"] = "accepted"
            except Exception as error:  # noqa: BLE001 (the test reads the type and the message).
                report[f"{axes}, {mode}, {call}"] = f"{type(error).__name__}: {error}"

    # Replicated params: the packed trajectory, the unpacked one, and the packed step's compiled text with
    # and without the check (source locations aside).
    for name, which in [("packed", tx), ("unpacked", atx.adam(0.1))]:
        report[f"{axes}, replicated, {name}"] = [
            [[np.asarray(x, np.float64).tolist(), str(x.dtype)] for x in jax.tree.leaves(step)]
            for step in _trajectory(which, replicated, steps=3)
        ]

    def step(params, state):
        updates, state = tx.update(_shifted(params), state, params)
        return _apply(params, updates), state

    def compiled():
        text = jax.jit(step).lower(replicated, state).compile().as_text()
        return [re.sub(r", metadata=\{[^}]*\}", "", x) for x in text.splitlines()[1:] if "_id=" not in x]

    report[f"{axes}, inspects"] = "inspect_sharding" in str(jax.make_jaxpr(step)(replicated, state))
    checked = compiled()
    original, _packed._check_unsharded = _packed._check_unsharded, lambda tree, what: None
    try:
        report[f"{axes}, compiled step unchanged"] = checked == compiled()
    finally:
        _packed._check_unsharded = original
    return report


def _worker(out):
    """Run in a fresh process with 8 simulated CPU devices (``python -m tests.test_packed OUT.json``)."""
    assert jax.device_count() == 8, jax.devices()
    from jax.sharding import AxisType

    report = _mesh_checks(jax.make_mesh((2, 4), ("x", "y"), axis_types=(AxisType.Auto,) * 2), "Auto")
    explicit = jax.make_mesh((2, 4), ("x", "y"), axis_types=(AxisType.Explicit,) * 2)
    with jax.set_mesh(explicit):  # Explicit axes as they are meant to be used: the mesh set for the trace.
        report |= _mesh_checks(explicit, "Explicit")
    with open(out, "w") as f:
        json.dump(report, f)


def _mesh_worker(directory):
    # 8 simulated devices: a fresh process, this module as its script.
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    return background.report(["-m", "tests.test_packed", background.REPORT], directory, {"XLA_FLAGS": flags})


JOBS = {"mesh_report": Job("packed on a mesh", _mesh_worker, seconds=5)}


@pytest.fixture(scope="module")
def mesh_report():
    return JOBS["mesh_report"].result()


@pytest.mark.exhaustive  # A multi-device worker.
@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("mode", MODES)
def test_sharded_params_are_refused_naming_the_leaf(mesh_report, mode, call):
    result = mesh_report[f"{mode}, {call}"]
    # Auto axes under jit: the split is known only when XLA compiles, and the refusal raised then reaches the
    # caller as a JaxRuntimeError carrying the message; everywhere else it is the ValueError itself.
    kind = "JaxRuntimeError" if mode == "Auto, jit" else "ValueError"
    assert result.startswith(f"{kind}: "), result[:300]
    assert re.search(f"atx.packed: {CALLS[call]} leaf {SHARDED_LEAF} is sharded over several devices", result)
    assert "Use the unpacked transformation" in result and "state_shardings" in result


@pytest.mark.exhaustive  # A multi-device worker.
@pytest.mark.parametrize("axes", ["Auto", "Explicit"])
def test_replicated_params_on_a_mesh_give_the_unpacked_numbers(mesh_report, axes):
    def arrays(steps):
        return [[np.asarray(v, jnp.dtype(d)) for v, d in step] for step in steps]

    actual = arrays(mesh_report[f"{axes}, replicated, packed"])
    expected = arrays(mesh_report[f"{axes}, replicated, unpacked"])
    assert len(actual) == len(expected) == 3
    for step, step_ref in zip(actual, expected, strict=True):
        _assert_same(step, step_ref)
    # The packed step compiles to the same program with and without the check; the type tells Explicit axes
    # apart, so only Auto axes are inspected (at compile time).
    assert mesh_report[f"{axes}, compiled step unchanged"]
    assert mesh_report[f"{axes}, inspects"] == (axes == "Auto")


if __name__ == "__main__":
    import sys

    _worker(*sys.argv[1:])
