"""State formats on the digits MLP: bytes of optimizer state per parameter against the final training loss.

``python -m benchmarks.state_formats [--epochs 20] [--seeds 0,1,2] [--json OUT]``

Adam, RMSprop and AdaGrad train the digits MLP (``adaptive_tx.digits``: 64-500-300-10, minibatches of 100)
with their state in float32, bfloat16 and 8-bit (``adaptive_tx.quantized()``), each rounded to nearest and
stochastically. A seed fixes the initial weights and the order of the minibatches, the same for every format,
so the final training loss of a format against float32's of the same seed measures what the format changes.
Both directions count: a lower loss than float32's is a biased step too (a larger effective learning rate),
not a win. Needs scikit-learn (``pip install -e ".[notebooks]"``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
import optax

import adaptive_tx as atx
from adaptive_tx import digits

# name -> (state dtype, state_rounding): what a format passes to every state dtype argument.
FORMATS: dict[str, tuple[Any, atx._checks.StateRounding]] = {
    "float32": (None, "nearest"),
    "bfloat16": ("bfloat16", "nearest"),
    "bfloat16 stochastic": ("bfloat16", "stochastic"),
    "8-bit": (atx.quantized(), "nearest"),
    "8-bit stochastic": (atx.quantized(), "stochastic"),
}


class Optimizer(NamedTuple):
    """An optimizer of the table: its factory, learning rate and the names of its state dtype arguments."""

    make: Callable[..., optax.GradientTransformation]
    learning_rate: float
    dtype_arguments: tuple[str, ...]


# Learning rates of the usual order for each: Adam's default, AdaGrad's 1e-2; RMSprop at 1e-3 (Keras's
# default) is chaotic on this problem (its float32 losses differ by tens of percent from one rounding of
# the state to another), so 1e-4, where it converges steadily.
OPTIMIZERS = {
    "adam": Optimizer(atx.adam, 1e-3, ("mu_dtype", "nu_dtype")),
    "rmsprop": Optimizer(atx.rmsprop, 1e-4, ("accumulator_dtype",)),
    "adagrad": Optimizer(atx.adagrad, 1e-2, ("accumulator_dtype",)),
}


def make(optimizer: str, state_format: str) -> optax.GradientTransformation:
    """``optimizer`` with its state in ``state_format`` (a key of :data:`FORMATS`)."""
    opt = OPTIMIZERS[optimizer]
    dtype, rounding = FORMATS[state_format]
    return opt.make(opt.learning_rate, **dict.fromkeys(opt.dtype_arguments, dtype), state_rounding=rounding)


def state_bytes_per_parameter(tx: optax.GradientTransformation, params: Any) -> float:
    """Bytes of ``tx``'s state per parameter: every array of ``tx.init(params)`` (codes, scales, step counts and
    keys included) over the number of parameters."""
    state = jax.eval_shape(tx.init, params)
    total = sum(int(np.prod(x.shape, dtype=np.int64)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(state))
    return total / sum(int(np.prod(p.shape, dtype=np.int64)) for p in jax.tree.leaves(params))


class Row(NamedTuple):
    """One optimizer in one state format: bytes per parameter, and the final training loss of each seed."""

    optimizer: str
    state_format: str
    bytes_per_parameter: float
    losses: list[float]  # Final training loss, by seed.


def run(epochs: int = 20, seeds: Sequence[int] = (0, 1, 2), optimizers: Sequence[str] = tuple(OPTIMIZERS)) -> list[Row]:
    """Every optimizer in every format, trained ``epochs`` epochs from each seed."""
    data = digits.load(seed=0)
    params = digits.init_mlp(jax.random.key(0))
    rows = []
    for optimizer in optimizers:
        for state_format in FORMATS:
            tx = make(optimizer, state_format)
            losses = [float(digits.train(tx, data, epochs=epochs, seed=s).train_loss[-1]) for s in seeds]
            rows.append(Row(optimizer, state_format, state_bytes_per_parameter(tx, params), losses))
    return rows


def relative_to_float32(rows: Sequence[Row]) -> dict[tuple[str, str], np.ndarray]:
    """Each row's ``(loss - float32's) / float32's`` per seed, signed, by ``(optimizer, format)``."""
    reference = {r.optimizer: np.asarray(r.losses) for r in rows if r.state_format == "float32"}
    return {(r.optimizer, r.state_format): np.asarray(r.losses) / reference[r.optimizer] - 1 for r in rows}


def table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table: bytes per parameter, the mean and the worst seed's relative difference."""
    relative = relative_to_float32(rows)
    lines = [
        "| optimizer | state | bytes/param | final loss (mean of seeds) | vs float32: mean | worst seed |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        d = relative[r.optimizer, r.state_format]
        worst = d[np.argmax(np.abs(d))]
        lines.append(
            f"| {r.optimizer} | {r.state_format} | {r.bytes_per_parameter:.2f} | {np.mean(r.losses):.4g} | "
            f"{np.mean(d):+.2%} | {worst:+.2%} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--optimizers", default=",".join(OPTIMIZERS), help="comma-separated, of " + str(OPTIMIZERS))
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = run(args.epochs, seeds, args.optimizers.split(","))
    print(table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"epochs": args.epochs, "seeds": seeds, "rows": [r._asdict() for r in rows]}, f, indent=1)


if __name__ == "__main__":
    main()
