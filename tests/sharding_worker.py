"""Run by tests/test_sharding.py in a fresh process with 8 simulated CPU devices: every transformation of the
registry on params sharded row-wise, column-wise and replicated, on meshes with Auto and Explicit axes.

usage: python -m tests.sharding_worker OUT.json
Writes {entry name: {check: [problems]}} and, under "bytes", the bytes of Adam's second moment on each
device for a (512, 256) float32 param sharded 8 ways (against Optax's).
"""

import os

# 8 simulated devices. This worker compiles hundreds of small programs and runs each a few steps: LLVM's
# cheapest code generation (XLA's own passes, partitioning and collectives included, are unchanged) cuts its
# time by about a tenth.
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + (
    " --xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0"
    " --xla_llvm_disable_expensive_passes=true"
)

import json  # noqa: E402
import sys  # noqa: E402
import warnings  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from jax.sharding import AxisType, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import adaptive_tx as atx  # noqa: E402
from tests.helpers import REGISTRY, grad  # noqa: E402

SPECS = {"rows": P("model", None), "cols": P(None, "model"), "replicated": P(), "vector": P("data")}
SHAPES = {"rows": (16, 4), "cols": (4, 16), "replicated": (3,), "vector": (8,)}


def _params(mesh):
    return {
        k: jax.device_put(
            jnp.linspace(-1.0, 1.0, int(jnp.prod(jnp.array(SHAPES[k])))).reshape(SHAPES[k]),
            NamedSharding(mesh, SPECS[k]),
        )
        for k in SPECS
    }


def _placement_problems(state, mesh, scalars_on_mesh=True):
    """Each params-shaped leaf must be sharded like its param; anything else (scalars, a PRNG key) replicated."""
    problems = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        where = jax.tree_util.keystr(path)
        names = [k for k in SPECS if f"'{k}'" in where and leaf.shape == SHAPES[k]]  # Not a per-leaf statistic.
        if names:
            (name,) = names
            if not leaf.sharding.is_equivalent_to(NamedSharding(mesh, SPECS[name]), leaf.ndim):
                problems.append(f"{where}: {leaf.sharding}, expected {SPECS[name]}")
        elif scalars_on_mesh and not (isinstance(leaf.sharding, NamedSharding) or not leaf.committed):
            problems.append(f"{where}: non-params-shaped leaf committed to {leaf.sharding}")
    return problems


def check(entry):
    results = {}
    auto = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    params = _params(auto)
    tx = entry()
    results["eager init"] = _placement_problems(tx.init(params), auto)
    # Under jit with Auto axes, a scalar has no sharding to follow: XLA places it; params-shaped leaves follow.
    results["jit init, Auto axes"] = _placement_problems(jax.jit(tx.init)(params), auto, scalars_on_mesh=False)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), params)
    results["init on ShapeDtypeStructs"] = _placement_problems(tx.init(abstract), auto)

    def step(params, state):
        updates, state = tx.update(grad(params, 0), state, params)
        return optax.apply_updates(params, updates), state

    donated = jax.jit(step, donate_argnums=(0, 1))
    p = jax.tree.map(jnp.copy, params)
    s = tx.init(p)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            p, s = donated(p, s)
    results["donated train step"] = [str(w.message)[:200] for w in caught]
    results["donated train step"] += _placement_problems(s, auto, scalars_on_mesh=False)

    explicit = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Explicit,) * 2)
    with jax.set_mesh(explicit):
        params = _params(explicit)
        results["jit init, Explicit axes"] = _placement_problems(jax.jit(tx.init)(params), explicit)

        @jax.jit
        def scan(params):
            def body(carry, _):
                return step(*carry), None

            return jax.lax.scan(body, (params, tx.init(params)), length=3)[0]

        try:
            _, state = scan(params)
            results["lax.scan training loop, Explicit axes"] = _placement_problems(state, explicit)
        except Exception as error:  # noqa: BLE001 - reported, not swallowed: the test fails on it.
            results["lax.scan training loop, Explicit axes"] = [f"{type(error).__name__}: {error}"[:300]]
    return results


def refusal(entry):
    """An entry that refuses sharded params (``shardable=False``) must say so, naming the alternative."""
    auto = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    try:
        entry().init(_params(auto))
    except ValueError as error:
        return [] if "state_shardings" in str(error) else [f"unclear error: {error}"[:300]]
    return ["init accepted params sharded over 8 devices"]


def main(out: str) -> None:
    assert len(jax.devices()) == 8, jax.devices()
    report = {entry.name: check(entry) for entry in REGISTRY if entry.shardable}
    report["refusals"] = {entry.name: refusal(entry) for entry in REGISTRY if not entry.shardable}
    mesh = jax.make_mesh((8,), ("x",), axis_types=(AxisType.Auto,))
    param = jax.device_put(jnp.ones((512, 256)), NamedSharding(mesh, P("x")))
    report["bytes"] = {
        name: [shard.data.nbytes for shard in tx.init(param)[0].nu.addressable_shards]
        for name, tx in [("adaptive_tx", atx.adam(1e-3)), ("optax", optax.adam(1e-3))]
    }
    with open(out, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
