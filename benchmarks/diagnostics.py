"""What watching costs: ``diagnostics.track`` against the same step untracked, as ratios within one process.

    python -m benchmarks.diagnostics [REPS [PARTS]]   (default 15 leaves,mlp)

Two settings, each timed as blocks of 10 consecutive steps (so that ``every=10`` pays its one measured step in
every block), the variants interleaved block by block so that a noisy shared machine slows all alike; the
table gives the median block divided by 10, and its ratio to the untracked step:

- optimizer only: ``jax.jit(step, donate_argnums=(0, 1))`` running ``tx.update`` (with the params, so
  ``update_to_param_ratio`` is measured too) and ``optax.apply_updates`` on one float32 leaf of 4M and of 16M
  parameters, for ``adam``, ``track(adam)`` and ``track(adam, every=10)``;
- a whole training step of the digits MLP (64-500-300-10, minibatch of 100: forward, backward, Adam), untracked,
  ``track(adam)`` every step and every 10th, and ``track(adam, per_leaf=True)`` (each of its six leaves).
"""

import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adaptive_tx as atx
from adaptive_tx import digits
from adaptive_tx.diagnostics import track
from benchmarks.suite import optimizer_step

BLOCK = 10  # Steps per timed block: a multiple of every=10.


class Block:
    """``BLOCK`` consecutive calls of a jitted, donating step; ``run`` returns their wall time."""

    def __init__(self, step: Callable, carry: tuple, *constant: jax.Array):
        self.step = jax.jit(step, donate_argnums=(0, 1))
        self.carry, self.constant = carry, constant
        self.run()  # Compile, and warm the allocator.

    def run(self) -> float:
        start = time.perf_counter()
        for _ in range(BLOCK):
            self.carry = self.step(*self.carry, *self.constant)
        jax.block_until_ready(self.carry)
        return time.perf_counter() - start


def interleaved(blocks: dict[str, Block], reps: int) -> dict[str, float]:
    """The median seconds per step of each variant, over ``reps`` rounds of one block each."""
    times: dict[str, list[float]] = {name: [] for name in blocks}
    for _ in range(reps):
        for name, block in blocks.items():
            times[name].append(block.run() / BLOCK)
    return {name: float(np.median(t)) for name, t in times.items()}


def optimizer_only(size: int, reps: int) -> dict[str, float]:
    txs = {
        "adam": atx.adam(1e-3),
        "track(adam)": track(atx.adam(1e-3)),
        "track(adam, every=10)": track(atx.adam(1e-3), every=10),
    }
    blocks = {}
    for name, tx in txs.items():
        params = jnp.ones(size)
        blocks[name] = Block(optimizer_step(tx), (params, tx.init(params)), jnp.full(size, 0.01))
    return interleaved(blocks, reps)


def mlp_training_step(reps: int) -> dict[str, float]:
    data = digits.load(seed=0)
    x, y = jnp.asarray(data.x_train[:100]), jnp.asarray(data.y_train[:100])
    txs = {
        "adam": atx.adam(1e-3),
        "track(adam)": track(atx.adam(1e-3)),
        "track(adam, every=10)": track(atx.adam(1e-3), every=10),
        "track(adam, per_leaf=True)": track(atx.adam(1e-3), per_leaf=True),
    }
    blocks = {}
    for name, tx in txs.items():

        def step(params, state, x, y, tx=tx):
            grads = jax.grad(digits.loss)(params, x, y)
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state

        params = digits.init_mlp(jax.random.PRNGKey(0))
        blocks[name] = Block(step, (params, tx.init(params)), x, y)
    return interleaved(blocks, reps)


def _print(title: str, medians: dict[str, float]) -> None:
    base = next(iter(medians.values()))
    print(title)
    for name, seconds in medians.items():
        print(f"  {name:28s} {seconds * 1e3:9.3f} ms   {seconds / base:5.2f}x")


def main(reps: int = 15, parts: str = "leaves,mlp") -> None:
    print(f"{jax.devices()[0].platform}, median of {reps} interleaved blocks of {BLOCK} steps")
    if "leaves" in parts:
        for size in (4 * 1024 * 1024, 16 * 1024 * 1024):
            _print(f"optimizer only, one float32 leaf of {size // (1024 * 1024)}M", optimizer_only(size, reps))
    if "mlp" in parts:
        _print("digits MLP, whole training step (batch 100)", mlp_training_step(reps))


if __name__ == "__main__":
    jax.config.update("jax_enable_compilation_cache", False)  # Compile times: never from a persistent cache.
    main(*(int(a) if a.isdigit() else a for a in sys.argv[1:]))
