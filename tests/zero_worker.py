"""Run by tests/test_state_shardings.py in a fresh process with 8 simulated CPU devices (a 2 x 4 mesh).

For every transformation of the registry, and for Optax's own and wrapped ones, with Auto and with Explicit
mesh axes, on params of mixed specs: ``state_shardings`` against where ``init`` puts the state, the
collectives a jitted step compiles to (with the state placed like the params, and with ZeRO-1 over
``data``), ZeRO-1's results against a one-device run, and the state bytes each device holds.

usage: python -m tests.zero_worker OUT.json [PART COUNT]
  PART COUNT: only every COUNT-th transformation from the PART-th (0-based), so that COUNT processes share the
  work; part 0 also measures the bytes of a large Adam state.
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
import re  # noqa: E402
import sys  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from jax.sharding import AxisType, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402

import adaptive_tx as atx  # noqa: E402
from adaptive_tx.sharding import state_shardings  # noqa: E402
from tests.helpers import REGISTRY, grad  # noqa: E402

# Mixed specs on the ("data", "model") mesh; the ZeRO-1 spec each leaf's state should get over "data".
SPECS = {
    "rows": ((16, 4), P("model", None), P("model", "data")),
    "cols": ((4, 16), P(None, "model"), P("data", "model")),
    "replicated": ((3,), P(), P()),  # 3 is not divisible by 2: stays replicated over "data".
    "matrix": ((6, 10), P(), P(None, "data")),  # the larger divisible dimension.
    "vector": ((8,), P("data"), P("data")),  # already split over "data".
}
# Quantized state (the registry's 8-bit entries, blocks of 2) under ZeRO-1, where its spec differs: the last
# axis is split over "data" only into whole blocks (10 / 2 = 5 elements is not), so the other dimension is.
QUANTIZED_ZERO = {"matrix": P("data", None)}
COLLECTIVE = re.compile(r"\b(all-gather|all-reduce|reduce-scatter|collective-permute|all-to-all)(?:-start)?\(")

# Optax's and wrapped transformations beside the registry's: (factory, why a step needs an all-reduce).
OTHERS = {
    "optax.adam": (lambda: optax.adam(1e-2), ""),
    "chain(clip, adagrad)": (lambda: optax.chain(optax.clip(1.0), atx.adagrad(0.1)), ""),
    "inject_hyperparams(adam)": (lambda: optax.inject_hyperparams(atx.adam)(learning_rate=1e-2), ""),
    "MultiSteps(rmsprop)": (lambda: optax.MultiSteps(atx.rmsprop(1e-2), every_k_schedule=2), ""),
    "apply_if_finite(momentum)": (
        lambda: optax.apply_if_finite(atx.momentum(1e-2), max_consecutive_errors=2),
        "apply_if_finite checks that every gradient coordinate is finite",
    ),
}


def _params(mesh):
    return {
        k: jax.device_put(jnp.linspace(-1.0, 1.0, int(np.prod(shape))).reshape(shape) + 0.1, NamedSharding(mesh, spec))
        for k, (shape, spec, _) in SPECS.items()
    }


def _step(tx):
    def step(params, state, t):
        updates, state = tx.update(grad(params, t), state, params)
        return optax.apply_updates(params, updates), state

    return step


def _collectives(compiled) -> list[str]:
    return sorted(set(COLLECTIVE.findall(compiled.as_text())))


def _device_bytes(state) -> int:
    """The bytes of state on the most loaded device."""
    per_device: dict = {}
    for leaf in jax.tree.leaves(state):
        for shard in leaf.addressable_shards:
            per_device[shard.device] = per_device.get(shard.device, 0) + shard.data.nbytes
    return max(per_device.values())


def _spec_problems(shardings, state, mesh, zero):
    """Each params-shaped leaf's sharding must be the expected spec; every other leaf replicated."""
    problems = []
    for (path, sharding), leaf in zip(
        jax.tree_util.tree_flatten_with_path(shardings)[0], jax.tree.leaves(state), strict=True
    ):
        where = jax.tree_util.keystr(path)
        names = [k for k in SPECS if f"'{k}'" in where]
        if leaf.ndim and names:
            shape, spec, zero_spec = SPECS[names[0]]
            if re.search(r"\.(codes|scales)$", where):  # An atx.QuantizedArray's arrays.
                zero_spec = QUANTIZED_ZERO.get(names[0], zero_spec)
            expected = NamedSharding(mesh, zero_spec if zero else spec)
        else:
            expected = NamedSharding(mesh, P())
        if not sharding.is_equivalent_to(expected, leaf.ndim):
            problems.append(f"{where}: {sharding.spec}, expected {expected.spec}")
        if not leaf.sharding.is_equivalent_to(sharding, leaf.ndim):
            problems.append(f"{where}: the state is on {leaf.sharding}, not on {sharding.spec}")
    return problems


def check(tx_factory, all_reduce):
    results = {"needs an all-reduce": all_reduce}
    # The reference: the same steps with everything on one device.
    params_one = jax.tree.map(lambda x: jax.device_put(np.asarray(x), jax.devices()[0]), _params(_auto()))
    tx = tx_factory()
    step = jax.jit(_step(tx))
    p_ref, s_ref = params_one, tx.init(params_one)
    for t in range(3):
        p_ref, s_ref = step(p_ref, s_ref, t)
    for axes, mesh in (("Auto", _auto()), ("Explicit", _explicit())):
        with jax.set_mesh(mesh):
            for zero in (None, "data"):
                params = _params(mesh)  # Fresh each time: the step donates them.
                param_shardings = jax.tree.map(lambda x: x.sharding, params)
                mode = f"{axes}, {'ZeRO-1' if zero else 'like the params'}"
                shardings = state_shardings(tx, params, mesh, zero_axis=zero)
                state = jax.jit(tx.init, out_shardings=shardings)(params)
                results[f"placement, {mode}"] = _spec_problems(shardings, state, mesh, zero)
                if zero is None:  # init alone already places the state this way.
                    eager = tx.init(params)
                    results[f"placement, {mode}"] += [
                        f"eager init: {jax.tree_util.keystr(path)} on {leaf.sharding}"
                        for (path, leaf), sharding in zip(
                            jax.tree_util.tree_flatten_with_path(eager)[0], jax.tree.leaves(shardings), strict=True
                        )
                        if leaf.ndim and not leaf.sharding.is_equivalent_to(sharding, leaf.ndim)
                    ]
                jitted = jax.jit(_step(tx), out_shardings=(param_shardings, shardings), donate_argnums=(0, 1))
                compiled = jitted.lower(params, state, 0).compile()
                results[f"collectives, {mode}"] = _collectives(compiled)
                p, s = params, state
                for t in range(3):  # The program just inspected, not a second trace of it.
                    p, s = compiled(p, s, t)
                error = max(  # normwise, per leaf: a coordinate near 0 does not inflate it.
                    float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))
                    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(p_ref), strict=True)
                )
                results[f"relative error vs one device, {mode}"] = error
                results[f"state bytes per device, {mode}"] = _device_bytes(s)
                results[f"placement after 3 steps, {mode}"] = _spec_problems(shardings, s, mesh, zero)
    return results


def _stepping(entry):
    """The entry as an optimizer: a building block (a direction of size ~1) gets a small learning rate."""
    if entry.block:
        return lambda: optax.chain(entry(), optax.scale(-0.05))
    return entry


def _auto():
    return jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Auto,) * 2)


def _explicit():
    return jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Explicit,) * 2)


def _big_adam_bytes():
    """Adam's state bytes per device for a (4096, 1024) float32 matrix split over "model", with and without ZeRO-1."""
    mesh = _auto()
    params = {"w": jax.device_put(jnp.zeros((4096, 1024)), NamedSharding(mesh, P(None, "model")))}
    tx = atx.adam(1e-3)
    out = {}
    for zero in (None, "data"):
        state = jax.jit(tx.init, out_shardings=state_shardings(tx, params, mesh, zero_axis=zero))(params)
        out["ZeRO-1" if zero else "like the params"] = _device_bytes(state)
    out["optax, jit init under Auto axes"] = _device_bytes(jax.jit(optax.adam(1e-3).init)(params))
    return out


def main(out: str, part: str = "0", count: str = "1") -> None:
    assert len(jax.devices()) == 8, jax.devices()
    factories = {entry.name: (_stepping(entry), entry.all_reduce) for entry in REGISTRY if entry.shardable} | OTHERS
    mine = list(factories)[int(part) :: int(count)]
    report = {"transformations": {name: check(*factories[name]) for name in mine}}
    if part == "0":
        report["adam (4096, 1024) bytes"] = _big_adam_bytes()
    with open(out, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
