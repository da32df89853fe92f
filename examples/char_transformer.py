"""A character-level transformer language model trained with Adam, its state in float32, bfloat16 or 8 bits.

The model (Flax NNX) is a small GPT: token embedding and learned positions, 2 pre-LayerNorm blocks of causal
self-attention (4 heads, d_model 128) and a GELU MLP (512), a final LayerNorm and a projection to the 97
character ids; a context of 64 characters, about 430k parameters. Most of them sit in weight matrices of
at least 4096 elements, the leaves that ``adaptive_tx.quantized()`` keeps as 8-bit codes (one byte per
element and a float32 scale per block of 256 of the last axis); the biases and LayerNorm scales stay float32.

The text is offline and deterministic: the docstrings (``inspect.getdoc``) of a fixed list of standard-library
modules and of their public functions, classes and methods, about 380k characters. They come from the
running Python, so the corpus, and every loss below, depends on the Python version. Printable ASCII and
newline are kept; every other character maps to one "unknown" id. The last 10% of the text is the
validation text.

Adam (``adaptive_tx.adam``, learning rate 2e-3, gradients clipped to a global norm of 1; ``--optimizer
rmsprop`` at 1e-3 and ``adagrad`` at 1e-2 instead, the best of three rates tried) trains with the
state in each format of ``--formats``: ``float32`` (the defaults), ``bfloat16-stochastic`` (mu and nu in
bfloat16, rounded stochastically), ``8bit-stochastic`` and ``8bit-nearest`` (``adaptive_tx.quantized()``,
rounded stochastically or to nearest). A seed fixes the initial weights and the batches (32 random windows of
the training text per step), the same for every format, so a format's final loss against float32's of the
same seed measures what the format changes; both directions count, as in ``benchmarks/state_formats.py``.
The final training loss is the mean cross-entropy (nats per character) over a fixed set of 64 windows of the
training text, the same for every run; the validation loss is the same over 64 windows of the validation text.

All four formats, seeds 0, 1 and 2, 240 steps each (about 3.5 minutes on 2 idle CPU cores: 0.06 s a step,
25 s of compilation; measured 6 minutes with the cores shared with another job)::

    python examples/char_transformer.py --json char.json --plot char.png

``--json`` writes every run, with its loss curves (evaluated every ``--eval-every`` steps); ``--plot`` draws
the curves (mean over seeds) to a PNG with matplotlib. The pieces (``load_corpus``, ``Model``, ``train``,
``table``) can be imported from a notebook: put ``examples/`` on ``sys.path`` and ``import char_transformer``.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple, get_args

import numpy as np

StateFormat = Literal["float32", "bfloat16-stochastic", "8bit-stochastic", "8bit-nearest"]
FORMAT_NAMES: tuple[StateFormat, ...] = get_args(StateFormat)
OptimizerName = Literal["adam", "rmsprop", "adagrad"]
# Each one's default learning rate, the best of a few tried at 240 steps (float32 state).
LEARNING_RATES: dict[OptimizerName, float] = {"adam": 2e-3, "rmsprop": 1e-3, "adagrad": 1e-2}

# --------------------------------------------------------------------------- the corpus (no JAX needed)

# Docstring-rich modules of the standard library, about 380k characters in all (Python 3.11).
MODULES = (
    "argparse",
    "asyncio",
    "collections",
    "decimal",
    "fractions",
    "functools",
    "http.client",
    "inspect",
    "io",
    "itertools",
    "json",
    "logging",
    "os",
    "pathlib",
    "random",
    "re",
    "socket",
    "statistics",
    "subprocess",
    "tarfile",
    "textwrap",
    "threading",
    "typing",
    "unittest",
)

# Id 0: any character outside the alphabet; 1: newline; 2..96: printable ASCII, space (32) to tilde (126).
UNKNOWN = 0
ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))
VOCAB_SIZE = 1 + len(ALPHABET)


def corpus_text(modules: Sequence[str] = MODULES) -> str:
    """The docstrings of ``modules``: each module's, then its public functions' and classes' (and their public
    methods'), in name order, each docstring once, separated by blank lines."""
    seen: set[str] = set()
    docs = []

    def add(obj: object) -> None:
        with warnings.catch_warnings():
            # Reading a deprecated alias's docstring warns (typing.io and typing.re in Python 3.11); the text is
            # still a docstring, and a warning must not change the corpus nor fail a run under -W error.
            warnings.simplefilter("ignore", DeprecationWarning)
            doc = inspect.getdoc(obj)
        # A docstring inherited or re-exported under several names is kept once: repeats would be memorized.
        if doc and doc not in seen:
            seen.add(doc)
            docs.append(doc)

    for name in modules:
        module = importlib.import_module(name)
        add(module)
        for attr in sorted(vars(module)):
            obj = getattr(module, attr)
            if attr.startswith("_") or not (inspect.isclass(obj) or inspect.isroutine(obj)):
                continue
            add(obj)
            if inspect.isclass(obj):
                for method, value in sorted(vars(obj).items()):
                    if not method.startswith("_") and callable(value):
                        add(value)
    return "\n\n".join(docs) + "\n"


def encode(text: str) -> list[int]:
    """The id of each character of ``text``: its place in ``ALPHABET`` plus 1, or ``UNKNOWN``."""
    ids = {c: i + 1 for i, c in enumerate(ALPHABET)}
    return [ids.get(c, UNKNOWN) for c in text]


def decode(ids: Sequence[int]) -> str:
    """The text of ``ids``, with ``UNKNOWN`` shown as U+FFFD."""
    return "".join(ALPHABET[i - 1] if i != UNKNOWN else "\ufffd" for i in ids)


class Corpus(NamedTuple):
    """The character ids (uint8) of the training text and of the validation text (the last part)."""

    train: np.ndarray
    validation: np.ndarray


def load_corpus(validation_fraction: float = 0.1, modules: Sequence[str] = MODULES) -> Corpus:
    """The corpus as ids, split into training text and the last ``validation_fraction`` of it."""
    ids = np.asarray(encode(corpus_text(modules)), np.uint8)
    split = round(len(ids) * (1 - validation_fraction))
    return Corpus(ids[:split], ids[split:])


# --------------------------------------------------------------------------- arguments


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _formats(text: str) -> list[StateFormat]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected at least one format")
    for name in names:
        if name not in FORMAT_NAMES:
            raise argparse.ArgumentTypeError(f"unknown format {name!r}; choose from {', '.join(FORMAT_NAMES)}")
    return list(dict.fromkeys(names))  # type: ignore[arg-type]  # Checked against FORMAT_NAMES above.


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 0, got {text!r}")
    return list(dict.fromkeys(seeds))


def _output_error(flag: str, path: str | None, suffix: str) -> str | None:
    """Why ``path`` cannot be written (checked before training, so a typo costs no run)."""
    if path is None:
        return None
    if Path(path).suffix.lower() != suffix:
        return f"argument {flag}: expected a name ending in {suffix}, got {path!r}"
    parent = Path(path).parent
    if not parent.is_dir():
        return f"argument {flag}: directory {str(parent)!r} does not exist"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"argument {flag}: directory {str(parent)!r} is not writable"
    return None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=_positive, default=240, help="training steps per run (default 240)")
    parser.add_argument(
        "--formats", type=_formats, default=list(FORMAT_NAMES), help=f"comma-separated, of {', '.join(FORMAT_NAMES)}"
    )
    parser.add_argument("--seeds", type=_seeds, default=[0, 1, 2], help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--optimizer", choices=get_args(OptimizerName), default="adam", help="(default adam)")
    parser.add_argument(
        "--lr",
        type=float,
        help=f"the learning rate (default {', '.join(f'{k} {v}' for k, v in LEARNING_RATES.items())})",
    )
    parser.add_argument("--eval-every", type=_positive, default=20, help="steps between evaluations (default 20)")
    parser.add_argument("--json", metavar="PATH", help="write every run, loss curves included, here (.json)")
    parser.add_argument("--plot", metavar="PATH", help="draw the loss curves here (.png; needs matplotlib)")
    args = parser.parse_args(argv)
    args.lr = LEARNING_RATES[args.optimizer] if args.lr is None else args.lr
    if not args.lr > 0:
        parser.error(f"argument --lr: expected a positive learning rate, got {args.lr!r}")
    for flag, path, suffix in (("--json", args.json, ".json"), ("--plot", args.plot, ".png")):
        if why := _output_error(flag, path, suffix):
            parser.error(why)
    return args


if __name__ == "__main__":
    ARGS = parse_args()  # Before JAX is imported: a bad argument costs a second, not JAX's start-up.

import functools  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402
from jax import lax  # noqa: E402

import adaptive_tx as atx  # noqa: E402

# name -> (the state dtype of mu and nu, state_rounding).
FORMATS: dict[StateFormat, tuple[Any, atx._checks.StateRounding]] = {
    "float32": (None, "nearest"),
    "bfloat16-stochastic": ("bfloat16", "stochastic"),
    "8bit-stochastic": (atx.quantized(), "stochastic"),
    "8bit-nearest": (atx.quantized(), "nearest"),
}
BATCH_SIZE = 32
EVAL_WINDOWS = 64
# Clipping the gradient's global norm to 1 (no state of its own) trains faster: measured, float32, 240 steps at
# 2e-3, a final training loss of 2.19 and 2.18 (seeds 0, 1) against 2.69 and 2.61 without it.
CLIP_NORM = 1.0

# --------------------------------------------------------------------------- the model


class Config(NamedTuple):
    """The model's shape (hashable: a key of the compiled steps). A NamedTuple, not a dataclass: a dataclass
    needs its module in ``sys.modules``, which loading this file with ``importlib`` does not do by itself."""

    vocab_size: int = VOCAB_SIZE
    context: int = 64
    d_model: int = 128
    heads: int = 4
    mlp: int = 512
    layers: int = 2


DEFAULT_CONFIG = Config()  # About 430k parameters.

# GPT-2's initialization: small weights, so the first logits are near 0 and the first loss near ln(vocab).
_INIT = nnx.initializers.normal(0.02)


class Block(nnx.Module):
    """A pre-LayerNorm transformer block: ``x + attention(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, config: Config, *, rngs: nnx.Rngs):
        d = config.d_model
        self.heads = config.heads
        self.attention_norm = nnx.LayerNorm(d, rngs=rngs)
        self.qkv = nnx.Linear(d, 3 * d, kernel_init=_INIT, rngs=rngs)
        self.out = nnx.Linear(d, d, kernel_init=_INIT, rngs=rngs)
        self.mlp_norm = nnx.LayerNorm(d, rngs=rngs)
        self.up = nnx.Linear(d, config.mlp, kernel_init=_INIT, rngs=rngs)
        self.down = nnx.Linear(config.mlp, d, kernel_init=_INIT, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        batch, length, d = x.shape
        qkv = self.qkv(self.attention_norm(x)).reshape(batch, length, 3, self.heads, d // self.heads)
        attended = jax.nn.dot_product_attention(qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2], is_causal=True)
        x = x + self.out(attended.reshape(batch, length, d))
        return x + self.down(jax.nn.gelu(self.up(self.mlp_norm(x))))


class Model(nnx.Module):
    """Characters to next-character logits: ``(batch, length <= context)`` ids to ``(batch, length, vocab)``."""

    def __init__(self, config: Config, *, rngs: nnx.Rngs):
        self.embed = nnx.Embed(config.vocab_size, config.d_model, embedding_init=_INIT, rngs=rngs)
        self.positions = nnx.Param(_INIT(rngs.params(), (config.context, config.d_model)))
        self.blocks = nnx.Sequential(*[Block(config, rngs=rngs) for _ in range(config.layers)])
        self.norm = nnx.LayerNorm(config.d_model, rngs=rngs)
        self.head = nnx.Linear(config.d_model, config.vocab_size, kernel_init=_INIT, rngs=rngs)

    def __call__(self, ids: jax.Array) -> jax.Array:
        x = self.embed(ids) + self.positions[None, : ids.shape[1]]  # Explicit rank: the tests forbid rank promotion.
        return self.head(self.norm(self.blocks(x)))


Params = dict[str, Any]  # The model's parameters as a nested dict of arrays (nnx.to_pure_dict).


def init(config: Config, seed: int) -> tuple[nnx.GraphDef, Params]:
    """The model's structure and its initial parameters, a function of ``seed`` only."""
    graphdef, state = nnx.split(Model(config, rngs=nnx.Rngs(seed)))
    # Plain arrays, not nnx Variables: what Optax and adaptive_tx's checks expect as params.
    return graphdef, nnx.to_pure_dict(state)


def loss(graphdef: nnx.GraphDef, params: Params, windows: jax.Array) -> jax.Array:
    """Mean cross-entropy (nats) of predicting ``windows[:, 1:]`` from ``windows[:, :-1]``."""
    logits = nnx.merge(graphdef, params)(windows[:, :-1].astype(jnp.int32))
    return optax.softmax_cross_entropy_with_integer_labels(logits, windows[:, 1:].astype(jnp.int32)).mean()


def count_parameters(params: Params) -> int:
    return sum(int(np.prod(p.shape, dtype=np.int64)) for p in jax.tree.leaves(params))


# --------------------------------------------------------------------------- the optimizer


def make_optimizer(
    state_format: StateFormat, learning_rate: float, rounding_seed: int = 0, optimizer: OptimizerName = "adam"
) -> optax.GradientTransformation:
    """``optimizer`` with its state in ``state_format``, after clipping the gradient to a global norm of 1."""
    dtype, rounding = FORMATS[state_format]
    if optimizer == "adam":
        tx = atx.adam(
            learning_rate, mu_dtype=dtype, nu_dtype=dtype, state_rounding=rounding, rounding_seed=rounding_seed
        )
    else:
        make = {"rmsprop": atx.rmsprop, "adagrad": atx.adagrad}[optimizer]
        tx = make(learning_rate, accumulator_dtype=dtype, state_rounding=rounding, rounding_seed=rounding_seed)
    return optax.chain(optax.clip_by_global_norm(CLIP_NORM), tx)


def state_bytes_per_parameter(tx: optax.GradientTransformation, params: Params) -> float:
    """Bytes of ``tx``'s state per parameter: every array of ``tx.init(params)`` (codes, scales, step count and
    PRNG key included) over the number of parameters, as ``benchmarks/state_formats.py`` counts them."""
    state = jax.eval_shape(tx.init, params)
    total = sum(int(np.prod(x.shape, dtype=np.int64)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(state))
    return total / count_parameters(params)


# --------------------------------------------------------------------------- training


def windows_at(ids: np.ndarray, starts: np.ndarray, context: int) -> np.ndarray:
    """The ``context + 1`` ids from each start (inputs and their next characters), uint8, shape ``starts + (T+1,)``."""
    return ids[starts[..., None] + np.arange(context + 1)]


def eval_windows(ids: np.ndarray, context: int, count: int = EVAL_WINDOWS) -> np.ndarray:
    """``count`` windows evenly spaced over ``ids``: the same for every run."""
    return windows_at(ids, np.linspace(0, len(ids) - context - 1, count).astype(np.int64), context)


def batches(ids: np.ndarray, seed: int, steps: int, context: int, batch_size: int = BATCH_SIZE) -> np.ndarray:
    """``(steps, batch_size, context + 1)`` random windows of ``ids``, a function of ``seed`` only."""
    starts = np.random.default_rng(seed).integers(0, len(ids) - context, size=(steps, batch_size))
    return windows_at(ids, starts, context)


@functools.partial(jax.jit, static_argnums=0)
def mean_loss(graphdef: nnx.GraphDef, params: Params, windows: jax.Array) -> jax.Array:
    return loss(graphdef, params, windows)


_COMPILED: dict[tuple, Any] = {}  # The compiled chunks of steps, by (format, lr, clip, config, chunk shape).


def _compiled_chunk(
    key: tuple, graphdef: nnx.GraphDef, tx: optax.GradientTransformation, params: Params, opt_state: Any, chunk: Any
) -> Any:
    """The train step scanned over ``chunk``'s steps, compiled once per format and shape (not per seed), with
    the params and the state donated. Compiled ahead of the first call, so that the timing leaves it out."""
    if key not in _COMPILED:

        def run_chunk(params: Params, opt_state: Any, windows: jax.Array) -> tuple[Params, Any, jax.Array]:
            def step(carry: tuple[Params, Any], batch: jax.Array) -> tuple[tuple[Params, Any], jax.Array]:
                params, opt_state = carry
                value, grads = jax.value_and_grad(loss, argnums=1)(graphdef, params, batch)
                updates, opt_state = tx.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), value

            (params, opt_state), losses = lax.scan(step, (params, opt_state), windows)
            return params, opt_state, losses

        _COMPILED[key] = jax.jit(run_chunk, donate_argnums=(0, 1)).lower(params, opt_state, chunk).compile()
    return _COMPILED[key]


class Run(NamedTuple):
    """One training run: the loss curves (at ``steps``), the state's size and the speed."""

    state_format: str
    seed: int
    steps: list[int]  # The steps at which the losses were evaluated: 0, eval_every, ..., and the last.
    train_loss: list[float]  # Mean cross-entropy (nats) over the fixed windows of the training text.
    validation_loss: list[float]  # The same over the validation text's.
    batch_loss: list[float]  # Each step's minibatch loss (before its update).
    bytes_per_parameter: float
    seconds_per_step: float  # Wall time of the compiled steps, compilation and evaluations left out.
    parameters: int


def train(
    state_format: StateFormat,
    seed: int = 0,
    steps: int = 240,
    *,
    corpus: Corpus | None = None,
    config: Config = DEFAULT_CONFIG,
    learning_rate: float = 2e-3,
    eval_every: int = 20,
    batch_size: int = BATCH_SIZE,
    optimizer: OptimizerName = "adam",
) -> Run:
    """Train a new model (weights from ``seed``) for ``steps`` steps of ``optimizer`` (Adam by default) with its
    state in ``state_format``, on batches drawn with ``seed``; evaluate both losses at step 0, every
    ``eval_every`` steps and at the end."""
    if state_format not in FORMATS:
        raise ValueError(f"state_format must be one of {FORMAT_NAMES}, got {state_format!r}.")
    corpus = load_corpus() if corpus is None else corpus
    train_ids, validation_ids = np.asarray(corpus.train), np.asarray(corpus.validation)
    graphdef, params = init(config, seed)
    # The rounding seed only makes the initial PRNG key (in the state), so one compiled step serves every seed.
    tx = make_optimizer(state_format, learning_rate, rounding_seed=seed, optimizer=optimizer)
    opt_state = tx.init(params)
    size = state_bytes_per_parameter(tx, params)
    parameters = count_parameters(params)
    fixed = {
        "train": jnp.asarray(eval_windows(train_ids, config.context)),
        "validation": jnp.asarray(eval_windows(validation_ids, config.context)),
    }
    data = batches(train_ids, seed, steps, config.context, batch_size)

    curves: dict[str, list[float]] = {"train": [], "validation": []}
    evaluated: list[int] = []
    batch_loss: list[float] = []
    seconds = 0.0

    def evaluate(step: int) -> None:
        evaluated.append(step)
        for name, windows in fixed.items():
            curves[name].append(float(mean_loss(graphdef, params, windows)))

    evaluate(0)
    for start in range(0, steps, eval_every):
        chunk = jnp.asarray(data[start : start + eval_every])
        key = (optimizer, state_format, learning_rate, CLIP_NORM, config, chunk.shape)
        run_chunk = _compiled_chunk(key, graphdef, tx, params, opt_state, chunk)
        began = time.perf_counter()
        params, opt_state, losses = run_chunk(params, opt_state, chunk)
        losses = jax.block_until_ready(losses)
        seconds += time.perf_counter() - began
        batch_loss.extend(float(x) for x in losses)
        evaluate(start + len(chunk))
    return Run(
        state_format,
        seed,
        evaluated,
        curves["train"],
        curves["validation"],
        batch_loss,
        size,
        seconds / steps,
        parameters,
    )


# --------------------------------------------------------------------------- reporting


def relative_to_float32(runs: Sequence[Run]) -> dict[str, np.ndarray]:
    """Each format's ``(final train loss - float32's) / float32's`` per seed, signed (float32's seeds needed)."""
    reference = {r.seed: r.train_loss[-1] for r in runs if r.state_format == "float32"}
    relative: dict[str, list[float]] = {}
    for r in runs:
        if r.seed in reference:
            relative.setdefault(r.state_format, []).append(r.train_loss[-1] / reference[r.seed] - 1)
    return {name: np.asarray(values) for name, values in relative.items()}


def table(runs: Sequence[Run]) -> str:
    """Per format, as Markdown: bytes/param, the mean final losses, the mean and worst seed's difference to
    float32's final training loss, and seconds per step."""
    relative = relative_to_float32(runs)
    lines = [
        "| state | bytes/param | final train loss | vs float32: mean | worst seed | validation loss | s/step |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(r.state_format for r in runs):
        own = [r for r in runs if r.state_format == name]
        d = relative.get(name)
        versus = ("n/a", "n/a") if d is None else (f"{np.mean(d):+.2%}", f"{d[np.argmax(np.abs(d))]:+.2%}")
        lines.append(
            f"| {name} | {own[0].bytes_per_parameter:.2f} | {np.mean([r.train_loss[-1] for r in own]):.4f} | "
            f"{versus[0]} | {versus[1]} | {np.mean([r.validation_loss[-1] for r in own]):.4f} | "
            f"{np.mean([r.seconds_per_step for r in own]):.3f} |"
        )
    return "\n".join(lines)


def plot(runs: Sequence[Run], path: str) -> None:
    """The loss curves, mean over seeds, one colour per format: training solid, validation dashed."""
    import matplotlib

    matplotlib.use("Agg")  # A file, no window: works without a display.
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, name in enumerate(dict.fromkeys(r.state_format for r in runs)):
        own = [r for r in runs if r.state_format == name]
        colour = f"C{i}"
        ax.plot(own[0].steps, np.mean([r.train_loss for r in own], axis=0), color=colour, label=f"{name} train")
        ax.plot(
            own[0].steps,
            np.mean([r.validation_loss for r in own], axis=0),
            "--",
            color=colour,
            label=f"{name} validation",
        )
    ax.set(xlabel="step", ylabel="cross-entropy (nats per character)")
    ax.set_title(f"char transformer, state formats (mean of {len({r.seed for r in runs})} seeds)")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(args: argparse.Namespace) -> list[Run]:
    corpus = load_corpus()
    print(f"corpus: {len(corpus.train)} training and {len(corpus.validation)} validation characters", flush=True)
    runs = []
    for state_format in args.formats:
        for seed in args.seeds:
            run = train(
                state_format,
                seed,
                args.steps,
                corpus=corpus,
                learning_rate=args.lr,
                eval_every=args.eval_every,
                optimizer=args.optimizer,
            )
            print(
                f"{state_format} seed {seed}: train loss {run.train_loss[-1]:.4f}, validation loss "
                f"{run.validation_loss[-1]:.4f}, {run.seconds_per_step:.3f} s/step",
                flush=True,
            )
            runs.append(run)
    print(f"{runs[0].parameters} parameters, {args.steps} steps of {BATCH_SIZE} windows of {DEFAULT_CONFIG.context}")
    print(table(runs))
    if args.json:
        with open(args.json, "w") as f:
            record = {"optimizer": args.optimizer, "steps": args.steps, "learning_rate": args.lr}
            json.dump({**record, "runs": [r._asdict() for r in runs]}, f)
    if args.plot:
        plot(runs, args.plot)
    return runs


if __name__ == "__main__":
    main(ARGS)
