"""Many small leaves: ``atx.packed(atx.adam)`` against ``optax.adam``, as ratios within one process.

    python benchmarks/packed.py [N_LEAVES [LEAF_SIZE [REPS]]]   (default 2000 leaves of 1000 float32)

Two numbers, each a ratio packed / Optax of medians over interleaved repetitions (packed, Optax, packed,
...), so that a noisy shared machine slows both alike:

- step time: ``jax.jit(step, donate_argnums=(0, 1))`` running ``tx.update`` and ``optax.apply_updates``,
  compiled once, timed per call;
- lower + compile time: ``jax.jit(step).lower(...).compile()`` of a fresh function each repetition (no
  cache hit).

A third line, the floor, times lower + compile of a step with no optimizer: the gradients concatenated, scaled
and split back onto the params, as ``packed`` does around its inner transformation. Its ratio to Optax bounds
what any packed layout with one flat vector per dtype can reach: on CPU, XLA compiles one kernel per distinct
fused computation, and each of the split's slices has its own constant offset, so the pieces of one vector
cost one kernel each, where Optax's identical per-leaf kernels are compiled once.
"""

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adaptive_tx as atx
from benchmarks.suite import compile_fresh, optimizer_step


def _tree(n_leaves: int, size: int, value: float) -> dict[str, jax.Array]:
    return {f"layer{i:05d}": jnp.full((size,), value, jnp.float32) for i in range(n_leaves)}


def floor_step(params, state, grads):
    """Concatenate the gradients, scale them, split them back onto the params: ``packed`` with no optimizer."""
    leaves, treedef = jax.tree.flatten(grads)
    flat = jnp.concatenate([jnp.ravel(g) for g in leaves]) * jnp.float32(-1e-3)
    offsets = np.cumsum([g.size for g in leaves])[:-1]
    pieces = [piece.reshape(g.shape) for g, piece in zip(leaves, jnp.split(flat, offsets), strict=True)]
    return optax.apply_updates(params, treedef.unflatten(pieces)), state


def compile_time(tx: optax.GradientTransformation | None, params, grads) -> float:
    """Seconds to lower and compile a fresh jitted, donated step (of :func:`floor_step` for ``None``)."""
    state = jax.eval_shape(tx.init, params) if tx is not None else ()
    step = optimizer_step(tx) if tx is not None else floor_step
    return sum(compile_fresh(step, params, state, grads)[1])  # Trace, lower and compile, nothing cached.


class Stepper:
    """A compiled, donated step of ``tx`` and its own params and state, timed one call at a time."""

    def __init__(self, tx: optax.GradientTransformation, n_leaves: int, size: int):
        self.params, self.grads = _tree(n_leaves, size, 1.0), _tree(n_leaves, size, 0.01)
        self.state = tx.init(self.params)
        self.step = jax.jit(optimizer_step(tx), donate_argnums=(0, 1))
        for _ in range(2):  # Compile, then one warm call.
            self.run()

    def run(self) -> float:
        start = time.perf_counter()
        self.params, self.state = self.step(self.params, self.state, self.grads)
        jax.block_until_ready((self.params, self.state))
        return time.perf_counter() - start


def main(n_leaves: int = 2000, size: int = 1000, reps: int = 21) -> None:
    txs = {"packed": atx.packed(atx.adam(1e-3)), "optax": optax.adam(1e-3)}
    params, grads = _tree(n_leaves, size, 1.0), _tree(n_leaves, size, 0.01)
    print(f"{n_leaves} leaves of {size} float32, {jax.devices()[0].platform}, medians of {reps} interleaved runs")

    compiled: dict[str, optax.GradientTransformation | None] = {**txs, "floor": None}
    compiles: dict[str, list[float]] = {name: [] for name in compiled}
    for _ in range(max(reps // 4, 3)):  # Compiling takes seconds: fewer repetitions.
        for name, tx in compiled.items():
            compiles[name].append(compile_time(tx, params, grads))

    steppers = {name: Stepper(tx, n_leaves, size) for name, tx in txs.items()}
    steps: dict[str, list[float]] = {name: [] for name in txs}
    for _ in range(reps):
        for name, stepper in steppers.items():
            steps[name].append(stepper.run())

    for label, times in (("step", steps), ("lower + compile", compiles)):
        medians = {name: float(np.median(t)) for name, t in times.items()}
        print(
            f"{label:16s} packed {medians['packed'] * 1e3:9.2f} ms   optax {medians['optax'] * 1e3:9.2f} ms   "
            f"ratio {medians['packed'] / medians['optax']:.3f}"
        )
    floor = float(np.median(compiles["floor"]))
    print(
        f"{'floor compile':16s} concatenate + split, no optimizer {floor * 1e3:9.2f} ms   "
        f"ratio to optax {floor / float(np.median(compiles['optax'])):.3f}"
    )


if __name__ == "__main__":
    jax.config.update("jax_enable_compilation_cache", False)  # Compile times: never from a persistent cache.
    main(*(int(a) for a in sys.argv[1:]))
