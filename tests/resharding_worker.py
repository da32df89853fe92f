"""Run by tests/test_resharding.py in a fresh process with 8 simulated CPU devices: optimizer state saved with
Orbax on one mesh is restored onto other meshes and training carries on there.

For each transformation of ``AXES``, with its mesh axis types, and with the state placed like the params or
spread over "data" (ZeRO-1): 3 steps on a 2 x 4 ("data", "model") mesh, save (params, state), 3 more steps
there (the reference). Then the checkpoint is restored, into ``abstract_state`` targets, onto the same
placement (the control), a 4 x 2 mesh, one device, and the 2 x 4 mesh with ZeRO-1 switched; each restored
run takes the same 3 steps. Last, docs/devices.md's "Checkpoints across meshes" recipe runs as written.

usage: python -m tests.resharding_worker CKPT_DIR OUT.json
Writes {transformation: {axes: {"source -> target": {check: result}}}}, "page recipe": {check: result},
and "warnings": every warning raised meanwhile (tests/test_resharding.py reads it).
"""

import os

os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"

import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import textwrap  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import orbax.checkpoint as ocp  # noqa: E402
from jax.sharding import AxisType, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import adaptive_tx as atx  # noqa: E402
from adaptive_tx.sharding import abstract_state, state_shardings  # noqa: E402
from tests.helpers import REGISTRY, grad  # noqa: E402

jax.config.update("jax_numpy_dtype_promotion", "strict")  # The tests' setting (tests/conftest.py).

# Registry entries with distinct state structures, and an Optax wrapper around ours: {name: mesh axis types}.
# Auto and Explicit axes for the first three, Auto for the rest (the run stays well under a minute).
BOTH, AUTO = ("Auto", "Explicit"), ("Auto",)
AXES = {
    "adam": BOTH,  # count, mu, nu
    "rmsprop-centered-momentum-nesterov": BOTH,  # nu and the centering mean, then a momentum trace
    "torch.adamw": BOTH,  # a compat chain: decoupled weight decay
    "adam-nesterov-amsgrad": AUTO,  # the running maximum of nu beside the moments
    "adadelta": AUTO,  # two accumulators, no count
    "keras.adam": AUTO,  # per-leaf clipnorm (a reduction over each sharded leaf), amsgrad, weight decay
    "inject_hyperparams(adam)": AUTO,  # replicated scalar hyperparameters beside the state
    "adam-8bit-state-stochastic": BOTH,  # quantized moments (codes and scales) beside a PRNG key
}
FACTORIES = {entry.name: entry for entry in REGISTRY if entry.name in AXES} | {
    "inject_hyperparams(adam)": lambda: optax.inject_hyperparams(atx.adam)(learning_rate=0.05, b1=0.8),
}

# Mixed specs: each is valid on the 2 x 4 and the 4 x 2 mesh alike (and on one device).
PARAMS = {
    "rows": ((16, 8), P("model", None)),  # ZeRO-1 adds "data" on the free dimension.
    "data": ((8, 16), P("data", None)),  # already split over "data": ZeRO-1 leaves it.
    "both": ((8, 8), P("data", "model")),
    "bias": ((6,), P()),  # ZeRO-1 splits it over "data" of 2, not of 4 (which does not divide 6).
    "scale": ((), P()),
}
STEPS = 3


def make_mesh(shape, axes):
    """A ("data", "model") mesh of ``shape`` on the first devices, with ``axes`` ("Auto" or "Explicit") axis types."""
    devices = jax.devices()[: int(np.prod(shape))]
    return jax.make_mesh(shape, ("data", "model"), axis_types=(getattr(AxisType, axes),) * 2, devices=devices)


def abstract_params(mesh):
    return {
        k: jax.ShapeDtypeStruct(shape, jnp.float32, sharding=NamedSharding(mesh, spec))
        for k, (shape, spec) in PARAMS.items()
    }


def initial_params(mesh):
    return {
        k: jax.device_put(
            np.sin(np.arange(1, 1 + int(np.prod(shape)), dtype=np.float32)).reshape(shape), NamedSharding(mesh, spec)
        )
        for k, (shape, spec) in PARAMS.items()
    }


def train(step, params, state, start):
    """``STEPS`` steps of ``step`` from step ``start``."""
    for t in range(start, start + STEPS):
        params, state = step(params, state, t)
    return params, state


def stepper(tx, mesh, param_shardings, shardings):
    """A jitted training step that keeps params and state on their shardings, under ``mesh``."""

    def step(params, state, t):
        updates, state = tx.update(grad(params, t), state, params)
        return optax.apply_updates(params, updates), state

    jitted = jax.jit(step, out_shardings=(param_shardings, shardings))

    def run(params, state, t):
        with jax.set_mesh(mesh):
            return jitted(params, state, t)

    return run


def leaves(tree):
    return {jax.tree_util.keystr(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def compare(actual, expected):
    """The leaves that are not bit-identical: their normwise relative difference max|a - e| / max|e|, or
    what else differs (dtype, shape, a non-finite expected value)."""
    out = {}
    for (where, a), e in zip(leaves(actual).items(), leaves(expected).values(), strict=True):
        a, e = np.asarray(a), np.asarray(e)
        if a.dtype != e.dtype or a.shape != e.shape:
            out[where] = f"{a.dtype}{a.shape} != {e.dtype}{e.shape}"
        elif not np.all(np.isfinite(e)):
            out[where] = "not finite"
        elif a.tobytes() != e.tobytes():
            out[where] = float(np.max(np.abs(a.astype(np.float64) - e)) / max(np.max(np.abs(e)), 1e-300))
    return out


def check_target(tx, target, mesh, zero):
    """``abstract_state`` is ``tx.init``'s shapes and dtypes with ``state_shardings``' placements."""
    expected_shapes = jax.eval_shape(tx.init, target[0])
    expected_shardings = state_shardings(tx, target[0], mesh, zero_axis=zero)
    problems = []
    for (where, leaf), shape, sharding in zip(
        leaves(target[1]).items(), jax.tree.leaves(expected_shapes), jax.tree.leaves(expected_shardings), strict=True
    ):
        if (leaf.shape, leaf.dtype) != (shape.shape, shape.dtype) or leaf.sharding != sharding:
            problems.append(f"{where}: {leaf}, expected {shape} on {sharding}")
    return problems


def sharding_problems(tree, target, exact=True):
    """Leaves whose sharding is not exactly the target's (with ``exact=False``, not equivalent to it: a step
    jitted without ``out_shardings`` may spell a replicated vector ``P(None)`` where the target has ``P()``)."""
    return [
        f"{where}: {leaf.sharding}, expected {want.sharding}"
        for (where, leaf), want in zip(leaves(tree).items(), jax.tree.leaves(target), strict=True)
        if not (leaf.sharding == want.sharding if exact else leaf.sharding.is_equivalent_to(want.sharding, leaf.ndim))
    ]


def check(name, tx, directory, checkpointer, axes):
    results = {}
    steps = {}  # One compiled step per placement: the source's is also a target's (the other ZeRO-1 setting).

    def step_for(mesh, param_shardings, shardings):
        key = (tuple(jax.tree.leaves(param_shardings)), tuple(jax.tree.leaves(shardings)))
        if key not in steps:
            steps[key] = stepper(tx, mesh, param_shardings, shardings)
        return steps[key]

    source, wide = make_mesh((2, 4), axes), make_mesh((4, 2), axes)
    one = make_mesh((1, 1), axes)
    for zero in (None, "data"):
        mode = "ZeRO-1" if zero else "like the params"
        params = initial_params(source)
        param_shardings = jax.tree.map(lambda p: p.sharding, params)
        shardings = state_shardings(tx, params, source, zero_axis=zero)
        with jax.set_mesh(source):
            state = jax.jit(tx.init, out_shardings=shardings)(params)
        step = step_for(source, param_shardings, shardings)
        params, state = train(step, params, state, 0)
        path = f"{directory}/{re.sub(r'[^A-Za-z0-9_-]', '_', name)}-{axes}-{'zero' if zero else 'plain'}"
        checkpointer.save(path, (params, state))
        checkpointer.wait_until_finished()
        saved = jax.tree.map(np.asarray, (params, state))
        reference = train(step, params, state, STEPS)

        targets = {
            "2 x 4 mesh, same placement": (source, zero),  # The control: nothing changes, all bit for bit.
            "4 x 2 mesh": (wide, zero),
            "one device": (one, zero),
            f"2 x 4 mesh, {'without' if zero else 'with'} ZeRO-1": (source, None if zero else "data"),
        }
        for where, (mesh, new_zero) in targets.items():
            ps = abstract_params(mesh)
            target = (ps, abstract_state(tx, ps, mesh, zero_axis=new_zero))
            restored = checkpointer.restore(path, target)
            new_step = step_for(mesh, *jax.tree.map(lambda x: x.sharding, target))
            resumed = train(new_step, *restored, STEPS)
            results[f"{mode} -> {where}"] = {
                "target": check_target(tx, target, mesh, new_zero),
                "restored shardings": sharding_problems(restored, target),
                "restored values": compare(restored, saved),
                "shardings after 3 steps": sharding_problems(resumed, target),
                "after 3 steps": compare(resumed, reference),
                "state leaves": len(jax.tree.leaves(restored[1])),
            }
    return results


def page_recipe(directory):
    """docs/devices.md's "Checkpoints across meshes" recipe, run as written (its checkpoint under ``directory``)."""
    page = Path(__file__).resolve().parents[1] / "docs" / "devices.md"
    text = page.read_text()
    section = text[text.index("## Checkpoints across meshes") :]
    save, restore = (
        textwrap.dedent(block).replace("/tmp/ckpt", directory)
        for block in re.findall(r"^   ```python\n(.*?)^   ```", section, flags=re.S | re.M)
    )
    namespace: dict = {}
    with jax.numpy_dtype_promotion("standard"):  # A user's default, as tests/test_readme.py runs the pages.
        exec(compile(save, str(page), "exec"), namespace)
        saved = jax.tree.map(np.asarray, (namespace["params"], namespace["opt_state"]))
        exec(compile(restore, str(page), "exec"), namespace)
    target = namespace["target"]
    restored = namespace["checkpointer"].restore(f"{directory}/step_100", target)
    namespace["checkpointer"].close()
    return {
        "target": check_target(namespace["tx"], target, namespace["new_mesh"], None),
        "restored shardings": sharding_problems(restored, target),
        "restored values": compare(restored, saved),
        "shardings after a step": sharding_problems((namespace["params"], namespace["opt_state"]), target, exact=False),
        "finite after a step": all(np.all(np.isfinite(x)) for x in jax.tree.leaves(namespace["params"])),
    }


def main(directory: str, out: str) -> None:
    assert len(jax.devices()) == 8, jax.devices()
    checkpointer = ocp.StandardCheckpointer()
    report: dict = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name, axes_types in AXES.items():
            report[name] = {axes: check(name, FACTORIES[name](), directory, checkpointer, axes) for axes in axes_types}
        report["page recipe"] = page_recipe(f"{directory}/readme")
        checkpointer.close()
    report["warnings"] = sorted({f"{w.category.__name__}: {w.message}"[:300] for w in caught})
    with open(out, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
