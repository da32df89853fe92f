"""Optimizer state checkpointed with Orbax on one mesh restores onto other meshes, and training carries on:
on 8 simulated CPU devices (a fresh process, tests/resharding_worker.py, so the device count is set before
JAX starts).

For Adam, centered RMSprop with Nesterov momentum, AMSGrad, Adadelta, PyTorch's AdamW, Keras's Adam and
``optax.inject_hyperparams(atx.adam)`` (Auto and Explicit mesh axes for the first three), on params split
over "model", over "data", over both and replicated: 3 steps on a 2 x 4 ("data", "model") mesh with the
state placed like the params or spread over "data" (ZeRO-1), save, then restore into
``adaptive_tx.sharding.abstract_state`` targets on the same placement, a 4 x 2 mesh, one device, and the 2 x 4
mesh with ZeRO-1 switched; 3 more steps from each. Also docs/devices.md's "Checkpoints across meshes" recipe, run
as written. ``abstract_state`` itself is checked here, in-process, on one device.
"""

from pathlib import Path

import jax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from adaptive_tx import sharding
from adaptive_tx.sharding import abstract_state, state_shardings
from tests import background
from tests.background import Job
from tests.helpers import REGISTRY, nested_params, parametrize_entries
from tests.parity import require

ROOT = Path(__file__).resolve().parents[1]

# Training continued on another placement is a differently compiled program: XLA partitions and fuses each
# placement on its own, and its algebraic rewrites depend on that (on one device it computed Adam's
# m / (1 - b1^t) as m * (1 / (1 - b1^t)); a clipnorm's sum is reassociated over other shards). Each such
# rewrite moves a float32 result by about one ulp (2^-23 = 1.2e-7 relative), a step holds a few of them, and
# the test's gradient sin(3w) - w/2 + t/10 (slope up to 3.5) and centered RMSprop's nu - mu^2 amplify them:
# 1e-6 normwise (8 ulps) bounds 3 steps. Measured: at most 2.4e-7 (centered RMSprop's momentum trace), and
# 4.8e-7 for Adadelta's average of g^2 under Explicit axes (a case this run leaves out for time).
# On the same placement the program is the same, and everything is compared bit for bit.
TOLERANCE = 1e-6

EXPECTED_AXES = {
    "adam": ["Auto", "Explicit"],
    "rmsprop-centered-momentum-nesterov": ["Auto", "Explicit"],
    "torch.adamw": ["Auto", "Explicit"],
    "adam-nesterov-amsgrad": ["Auto"],
    "adadelta": ["Auto"],
    "keras.adam": ["Auto"],
    "inject_hyperparams(adam)": ["Auto"],
    "adam-8bit-state-stochastic": ["Auto", "Explicit"],
}
TARGETS = {
    "like the params": ["2 x 4 mesh, same placement", "4 x 2 mesh", "one device", "2 x 4 mesh, with ZeRO-1"],
    "ZeRO-1": ["2 x 4 mesh, same placement", "4 x 2 mesh", "one device", "2 x 4 mesh, without ZeRO-1"],
}


def _resharding_worker(directory):
    return background.report(["-m", "tests.resharding_worker", str(directory / "ckpt"), background.REPORT], directory)


JOBS = {"report": Job("resharding_worker", _resharding_worker, seconds=37)}  # Its readers: exhaustive.


@pytest.fixture(scope="module")
def report():
    require("orbax.checkpoint")
    return JOBS["report"].result()


def restores(report):
    """{"name, axes, case": results} for every restore the worker did."""
    return {
        f"{name}, {axes}, {case}": results
        for name in EXPECTED_AXES
        for axes, cases in report[name].items()
        for case, results in cases.items()
    }


@pytest.mark.exhaustive
def test_every_transformation_mesh_and_placement_is_covered(report):
    assert {name: sorted(report[name]) for name in EXPECTED_AXES} == EXPECTED_AXES
    assert set(EXPECTED_AXES) - {"inject_hyperparams(adam)"} <= {entry.name for entry in REGISTRY}
    for name, by_axes in EXPECTED_AXES.items():
        for axes in by_axes:
            expected = [f"{mode} -> {target}" for mode, targets in TARGETS.items() for target in targets]
            assert sorted(report[name][axes]) == sorted(expected), (name, axes)
    # 5 params; every state holds at least one params-shaped leaf per param beside its scalars.
    assert all(results["state leaves"] >= 10 for results in restores(report).values())


@pytest.mark.exhaustive
@pytest.mark.parametrize("check", ["target", "restored shardings", "shardings after 3 steps"])
def test_every_leaf_has_exactly_the_requested_sharding(report, check):
    # "target": abstract_state's leaves are tx.init's shapes and dtypes on state_shardings' placements.
    problems = {case: results[check] for case, results in restores(report).items() if results[check]}
    assert problems == {}


@pytest.mark.exhaustive
def test_restored_leaves_are_the_saved_bits(report):
    problems = {case: results["restored values"] for case, results in restores(report).items()}
    assert {case: differences for case, differences in problems.items() if differences} == {}


@pytest.mark.exhaustive
def test_training_continues_bit_identically_on_the_same_placement(report):
    same = {case: results["after 3 steps"] for case, results in restores(report).items() if "same placement" in case}
    assert len(same) == 2 * sum(len(axes) for axes in EXPECTED_AXES.values())
    assert {case: differences for case, differences in same.items() if differences} == {}


@pytest.mark.exhaustive
def test_training_continues_within_float32_rounding_on_another_placement(report):
    # Each difference is a float (a normwise relative difference); a string is a dtype, a shape or a
    # non-finite value that differs, which no tolerance admits.
    problems = {
        f"{case}: {leaf}": difference
        for case, results in restores(report).items()
        for leaf, difference in results["after 3 steps"].items()
        if not isinstance(difference, float) or difference > TOLERANCE
    }
    assert problems == {}


@pytest.mark.exhaustive
def test_orbax_and_jax_raise_no_warnings(report):
    assert report["warnings"] == []


@pytest.mark.exhaustive
def test_the_readmes_recipe_restores_onto_the_new_mesh(report):
    assert report["page recipe"] == {
        "target": [],
        "restored shardings": [],
        "restored values": {},
        "shardings after a step": [],
        "finite after a step": True,
    }


# ----------------------------------------------------------------------------- abstract_state, on one device


@pytest.mark.parametrize("zero_axis", [None, "data"])
@parametrize_entries([e for e in REGISTRY if e.shardable])
def test_abstract_state_is_inits_shapes_on_state_shardings(entry, zero_axis):
    mesh = jax.make_mesh((1, 1), ("data", "model"))
    tx = entry()
    params = nested_params()
    on_mesh = jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, p.dtype, sharding=NamedSharding(mesh, P())), params)
    expected = jax.eval_shape(tx.init, params)
    for given in (params, on_mesh):
        target = abstract_state(tx, given, mesh, zero_axis=zero_axis)
        assert jax.tree.structure(target) == jax.tree.structure(expected)
        for leaf, shape, placement in zip(
            jax.tree.leaves(target),
            jax.tree.leaves(expected),
            jax.tree.leaves(state_shardings(tx, given, mesh, zero_axis=zero_axis)),
            strict=True,
        ):
            assert isinstance(leaf, jax.ShapeDtypeStruct)
            assert (leaf.shape, leaf.dtype, leaf.weak_type) == (shape.shape, shape.dtype, shape.weak_type)
            assert leaf.sharding == placement


def test_abstract_state_rejects_an_axis_the_mesh_lacks():
    mesh = jax.make_mesh((1, 1), ("data", "model"))
    with pytest.raises(ValueError, match="'batch' is not an axis of the mesh"):
        abstract_state(REGISTRY[0](), nested_params(), mesh, zero_axis="batch")


def test_packed_state_is_refused_with_the_alternative():
    mesh = jax.make_mesh((1, 1), ("data", "model"))
    for entry in [e for e in REGISTRY if not e.shardable]:
        with pytest.raises(ValueError, match="use the unpacked transformation"):
            abstract_state(entry(), nested_params(), mesh)


def test_the_sharding_modules_public_names_are_its_all():
    public = {
        name
        for name, value in vars(sharding).items()
        if not name.startswith("_") and callable(value) and getattr(value, "__module__", None) == sharding.__name__
    }
    assert sorted(sharding.__all__) == sorted(public)
    assert "abstract_state" in sharding.__all__
