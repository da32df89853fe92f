"""Time one optimizer step of adaptive_tx against Optax's counterpart, as a ratio within one process.

    python benchmarks/step_time.py [N_PARAMS]   (default 16M float32 parameters, one leaf)
    python benchmarks/step_time.py --donation   (the same RMSprop step without and with buffer donation)

Each step is ``jax.jit(step, donate_argnums=(0, 1))`` running ``tx.update`` and ``optax.apply_updates``;
the median of 15 runs after two warm-ups. These machines are shared and noisy: compare the ratios printed
by one run, not absolute times across runs.
"""

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adaptive_tx as atx


def step_time(tx: optax.GradientTransformation, n: int | tuple[int, ...], reps: int = 15, donate: bool = True) -> float:
    params, grads = jnp.ones(n), jnp.full(n, 0.01)
    state = tx.init(params)

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    step = jax.jit(step, donate_argnums=(0, 1) if donate else ())
    for _ in range(2):
        params, state = step(params, state, grads)
    jax.block_until_ready(params)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        params, state = step(params, state, grads)
        jax.block_until_ready(params)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


# Pairs that compute the same update (tests/test_optax_equivalence.py checks each to 1e-12).
PAIRS = {
    "adam": (atx.adam(1e-3), optax.adam(1e-3)),
    "rmsprop": (atx.rmsprop(1e-3), optax.rmsprop(1e-3)),
    "adagrad": (atx.adagrad(1e-2, eps=1e-7, initial_accumulator=0.1), optax.adagrad(1e-2)),
    "adadelta": (atx.adadelta(1.0), optax.adadelta(1.0)),
    "momentum": (atx.momentum(0.1, dampening=0.0), optax.sgd(0.1, momentum=0.9)),
}


def donation() -> None:
    """How much donating params and state saves, on a tiny tree and on one large weight."""
    tx = atx.rmsprop(1e-2)
    for shape in [(3, 1), (4096, 1366), (16 * 1024 * 1024,)]:
        kept, donated = step_time(tx, shape, reps=31, donate=False), step_time(tx, shape, reps=31)
        print(
            f"{str(shape):18s} without donation {kept * 1e3:8.3f} ms   with {donated * 1e3:8.3f} ms   "
            f"ratio {kept / donated:5.2f}"
        )


def main() -> None:
    if sys.argv[1:] == ["--donation"]:
        return donation()
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 16 * 1024 * 1024
    print(f"{n} float32 parameters, {jax.devices()[0].platform}")
    for name, (ours, theirs) in PAIRS.items():
        a, b = step_time(ours, n), step_time(theirs, n)
        print(f"{name:9s} adaptive_tx {a * 1e3:8.2f} ms   optax {b * 1e3:8.2f} ms   ratio {a / b:5.2f}")


if __name__ == "__main__":
    main()
