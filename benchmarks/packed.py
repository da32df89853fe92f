"""Many small leaves: ``atx.packed(atx.adam)`` against ``optax.adam``, as ratios within one process.

    python benchmarks/packed.py [N_LEAVES [LEAF_SIZE [REPS]]]   (default 2000 leaves of 1000 float32)

Two numbers, each a ratio packed / Optax of medians over interleaved repetitions (packed, Optax, packed,
...), so that a noisy shared machine slows both alike:

- step time: ``jax.jit(step, donate_argnums=(0, 1))`` running ``tx.update`` and ``optax.apply_updates``,
  compiled once, timed per call;
- lower + compile time: ``jax.jit(step).lower(...).compile()`` of a fresh function each repetition (no
  cache hit).
"""

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adaptive_tx as atx
from benchmarks.suite import optimizer_step


def _tree(n_leaves: int, size: int, value: float) -> dict[str, jax.Array]:
    return {f"layer{i:05d}": jnp.full((size,), value, jnp.float32) for i in range(n_leaves)}


def compile_time(tx: optax.GradientTransformation, params, grads) -> float:
    """Seconds to lower and compile a fresh jitted, donated step."""
    state = jax.eval_shape(tx.init, params)
    step = optimizer_step(tx)  # A new function object: nothing cached from an earlier repetition.
    start = time.perf_counter()
    jax.jit(step, donate_argnums=(0, 1)).lower(params, state, grads).compile()
    return time.perf_counter() - start


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

    compiles: dict[str, list[float]] = {name: [] for name in txs}
    for _ in range(max(reps // 4, 3)):  # Compiling takes seconds: fewer repetitions.
        for name, tx in txs.items():
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


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
