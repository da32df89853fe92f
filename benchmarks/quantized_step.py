"""The cost of 8-bit state: Adam's step, compile time and memory on one 16M-parameter leaf, against Optax.

``python -m benchmarks.quantized_step [--reps 21] [--compile-reps 3] [--size 16777216] [--json OUT]``

Rows: ``optax.adam`` (float32, the reference), ``atx.adam`` with float32 state, with bfloat16 state and
stochastic rounding, and with 8-bit state (``atx.quantized()``) rounded to nearest and stochastically. Every
step is jitted with params and state donated, and the repetitions interleave the rows in a new random order
each time (a slow moment of a shared machine hits them alike); medians. Columns: step time and its ratio to
Optax's, ``lowered.compile()`` seconds and ratio, XLA's temporaries
(``compiled.memory_analysis().temp_size_in_bytes``) and the state, in bytes per parameter.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Sequence

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import adaptive_tx as atx  # noqa: E402
from benchmarks import suite  # noqa: E402

jax.config.update("jax_enable_compilation_cache", False)  # Compile times are measured.


def optimizers() -> dict[str, optax.GradientTransformation]:
    """The rows: name -> transformation."""
    q8 = atx.quantized()
    return {
        "optax.adam": optax.adam(1e-3),
        "atx.adam float32": atx.adam(1e-3),
        "atx.adam bfloat16 stochastic": atx.adam(
            1e-3, mu_dtype="bfloat16", nu_dtype="bfloat16", state_rounding="stochastic"
        ),
        "atx.adam 8-bit": atx.adam(1e-3, mu_dtype=q8, nu_dtype=q8),
        "atx.adam 8-bit stochastic": atx.adam(1e-3, mu_dtype=q8, nu_dtype=q8, state_rounding="stochastic"),
    }


def run(size: int = 16 * 1024 * 1024, reps: int = 21, compile_reps: int = 3) -> list[dict]:
    """Every row's medians, on one float32 leaf of ``size`` parameters."""
    grads = jax.random.normal(jax.random.key(0), (size,), jnp.float32) * 1e-3
    steps, fns = {}, {}
    rows = {}
    for name, tx in optimizers().items():
        params = jnp.full((size,), 0.5, jnp.float32)
        state = tx.init(params)
        fns[name] = suite.optimizer_step(tx)
        steps[name] = suite.compile_step(name, fns[name], params, state, grads)
        rows[name] = {
            "row": name,
            "state_bytes_per_param": suite._bytes(state) / size,
            "temp_bytes_per_param": steps[name].compiled.memory_analysis().temp_size_in_bytes / size,
        }
    suite.recompile_medians(steps, fns, compile_reps)
    for step in steps.values():
        step.run()  # Warm up.
    order = list(steps)
    for _ in range(reps):
        random.shuffle(order)
        for name in order:
            t0 = time.perf_counter()
            steps[name].run()
            steps[name].times.append(time.perf_counter() - t0)
    reference = steps["optax.adam"]
    for name, step in steps.items():
        rows[name]["step_ms"] = float(np.median(step.times) * 1e3)
        rows[name]["step_ratio"] = float(np.median(step.times) / np.median(reference.times))
        rows[name]["compile_s"] = step.compile_s
        rows[name]["compile_ratio"] = step.compile_s / reference.compile_s
    return list(rows.values())


def table(rows: Sequence[dict]) -> str:
    lines = [
        "| step | ms | vs optax.adam | compile s | vs optax.adam | temp bytes/param | state bytes/param |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['row']} | {r['step_ms']:.1f} | {r['step_ratio']:.2f} | {r['compile_s']:.2f} | "
            f"{r['compile_ratio']:.2f} | {r['temp_bytes_per_param']:.2f} | {r['state_bytes_per_param']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size", type=int, default=16 * 1024 * 1024)
    parser.add_argument("--reps", type=int, default=21)
    parser.add_argument("--compile-reps", type=int, default=3)
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    rows = run(args.size, args.reps, args.compile_reps)
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"size": args.size, "reps": args.reps, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
