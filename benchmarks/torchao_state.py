"""torchao's 8-bit and 4-bit AdamW state against PyTorch's float32 AdamW, on the digits MLP of ``adaptive_tx.digits``.

    python -m benchmarks.torchao_state [--json OUT.json] [--epochs 20] [--seeds 0 1 2] [--threads 1] [--no-check]

Needs ``pip install torchao==0.18.0`` (and torch, scikit-learn). The problem is ``digits.train``'s, rebuilt in
PyTorch: the data of ``digits.load(seed=0)``, the 64-500-300-10 ReLU MLP with the initial weights
``digits.init_mlp`` draws for ``seed`` (same ``(n_in, n_out)`` layout, ``x @ w + b``), minibatches of 100 in the
per-epoch order of ``digits.train(..., seed=seed)`` (computed with JAX, fed to torch as indices) and
``digits.loss`` (mean softmax cross-entropy). Every optimizer runs at lr 1e-3 with weight_decay 0 (so AdamW is
Adam), other arguments at their defaults:

- ``torch.optim.AdamW``, float32 state: the reference;
- ``torchao.optim.AdamW8bit`` and ``AdamW4bit``, defaults;
- the same two with a block size that divides the 500x300 layer (150000 elements), which their defaults
  (256 and 128) do not, so that every weight of at least 4096 elements gets quantized state
  (``--defaults-only`` skips these two rows).

For each optimizer and seed (seed = initial weights and minibatch order, shared by all optimizers): the final
training loss over the whole training set after the last epoch (``History.train_loss[-1]``'s definition), its
signed difference relative to float32 AdamW of the same seed, state bytes per parameter (every tensor in
``optimizer.state``, torchao's quantized subclasses counted as their codes + scales + quantization map, over
all parameters, biases included), and seconds per epoch (median of the epochs after the first, training steps
only; torchao compiles its step with ``torch.compile`` during the first).

Before that, a reproduction check: two epochs of ``torch.optim.AdamW`` (weight_decay 0) and of
``torch.optim.SGD`` against ``digits.train`` with ``optax.adam(1e-3)`` and ``optax.sgd(0.1)``; the training
losses should agree to about 1e-5 relative (float32 sums in different orders).

Prints a markdown table and writes every number, with the versions of Python, torch, torchao, JAX, to ``--json``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
import optax

from adaptive_tx import digits

if TYPE_CHECKING:
    import torch

LR = 1e-3
BATCH_SIZE = 100
TORCHAO_PIN = "torchao==0.18.0"
REFERENCE = "AdamW f32"
# Divisors of both 32000 (64x500) and 150000 (500x300): the closest to torchao's defaults, 256 and 128.
DIVISIBLE_BLOCKS = {"AdamW8bit": 250, "AdamW4bit": 125}


def _torch() -> ModuleType:
    try:
        import torch
    except ImportError as err:
        raise ImportError(f"benchmarks.torchao_state needs torch and torchao: pip install {TORCHAO_PIN}") from err
    return torch


def _torchao_optim() -> ModuleType:
    logging.getLogger("torchao").setLevel(logging.ERROR)  # Its CUDA-only extensions fail to load on CPU.
    try:
        import torchao
        import torchao.optim
    except ImportError as err:
        raise ImportError(f"benchmarks.torchao_state needs torchao: pip install {TORCHAO_PIN}") from err
    if torchao.__version__ != TORCHAO_PIN.split("==")[1]:
        warnings.warn(f"measured against {TORCHAO_PIN}, found torchao {torchao.__version__}", stacklevel=2)
    return torchao.optim


@dataclass(frozen=True)
class Problem:
    """One seed's digits problem as NumPy arrays: params in ``digits`` layout, the minibatch indices per epoch."""

    x_train: np.ndarray  # (1437, 64) float32
    y_train: np.ndarray  # (1437,) int64
    params: list[np.ndarray]  # w1, b1, w2, b2, w3, b3; w as (n_in, n_out)
    orders: np.ndarray  # (epochs, batches per epoch, BATCH_SIZE) int64


def make_problem(data: digits.Digits, seed: int, epochs: int) -> Problem:
    """The initial weights and minibatch orders ``digits.train(tx, data, epochs=epochs, seed=seed)`` uses."""
    init_key, shuffle_key = jax.random.split(jax.random.key(seed))
    layers = digits.init_mlp(init_key)
    n_train = len(data.y_train)
    n_batches = n_train // BATCH_SIZE
    orders = [
        np.asarray(jax.random.permutation(jax.random.fold_in(shuffle_key, e), n_train))[: n_batches * BATCH_SIZE]
        for e in range(epochs)
    ]
    return Problem(
        x_train=np.asarray(data.x_train, np.float32),
        y_train=np.asarray(data.y_train, np.int64),
        params=[np.asarray(layer[k], np.float32) for layer in layers for k in ("w", "b")],
        orders=np.stack(orders).reshape(epochs, n_batches, BATCH_SIZE).astype(np.int64),
    )


def mlp_loss(params: Sequence[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``digits.loss`` in torch: ReLU MLP on ``x @ w + b``, mean softmax cross-entropy."""
    torch = _torch()
    h = x
    for w, b in zip(params[0:-2:2], params[1:-2:2], strict=True):
        h = torch.relu(h @ w + b)
    return torch.nn.functional.cross_entropy(h @ params[-2] + params[-1], y)


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes of a tensor's storage; a tensor subclass (torchao's quantized state) counts its inner tensors."""
    from torch.utils._python_dispatch import is_traceable_wrapper_subclass

    if is_traceable_wrapper_subclass(t):
        names, _ = t.__tensor_flatten__()
        return sum(tensor_bytes(getattr(t, name)) for name in names)
    return t.numel() * t.element_size()


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Total bytes of every tensor in ``optimizer.state`` (step counters included)."""
    return sum(tensor_bytes(v) for state in optimizer.state.values() for v in state.values() if hasattr(v, "numel"))


def state_kinds(optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor]) -> list[str]:
    """Per parameter, the class of its first-moment state: ``Tensor`` (float32), a torchao subclass, or ``None``."""
    return [type(optimizer.state[p].get("exp_avg")).__name__ for p in params]


@dataclass
class Run:
    """One optimizer on one seed."""

    optimizer: str
    seed: int
    train_loss: list[float]  # Whole training set, index 0 before the first step, as digits.History.
    epoch_seconds: list[float]  # Training steps only, per epoch.
    state_bytes: int
    n_params: int
    state_kinds: list[str]

    @property
    def final_loss(self) -> float:
        return self.train_loss[-1]

    @property
    def bytes_per_param(self) -> float:
        return self.state_bytes / self.n_params

    @property
    def seconds_per_epoch(self) -> float | None:
        """Median over the epochs after the first (which compiles torchao's step); None with one epoch."""
        return statistics.median(self.epoch_seconds[1:]) if len(self.epoch_seconds) > 1 else None


MakeOptimizer = Callable[[list[Any]], Any]


def train(problem: Problem, name: str, make_optimizer: MakeOptimizer, seed: int) -> Run:
    """Train the torch MLP on ``problem``'s minibatches; the training loss after each epoch, as digits records it."""
    torch = _torch()
    params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in problem.params]
    x, y = torch.from_numpy(problem.x_train), torch.from_numpy(problem.y_train)
    optimizer = make_optimizer(params)

    def full_loss() -> float:
        with torch.no_grad():
            return float(mlp_loss(params, x, y))

    losses, seconds = [full_loss()], []
    for order in torch.from_numpy(problem.orders):
        start = time.perf_counter()
        for batch in order:
            optimizer.zero_grad(set_to_none=True)
            mlp_loss(params, x[batch], y[batch]).backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
        losses.append(full_loss())
    n_params = sum(p.numel() for p in params)
    return Run(name, seed, losses, seconds, state_bytes(optimizer), n_params, state_kinds(optimizer, params))


def optimizers(defaults_only: bool) -> dict[str, MakeOptimizer]:
    """The optimizers compared, by name: lr 1e-3, weight_decay 0, other arguments at their defaults."""
    torch, tao = _torch(), _torchao_optim()
    makers: dict[str, MakeOptimizer] = {
        REFERENCE: lambda ps: torch.optim.AdamW(ps, lr=LR, weight_decay=0.0),
        "AdamW8bit": lambda ps: tao.AdamW8bit(ps, lr=LR, weight_decay=0.0),
        "AdamW4bit": lambda ps: tao.AdamW4bit(ps, lr=LR, weight_decay=0.0),
    }
    if not defaults_only:
        for name, block in DIVISIBLE_BLOCKS.items():
            cls = getattr(tao, name)
            makers[f"{name} block_size={block}"] = lambda ps, cls=cls, block=block: cls(
                ps, lr=LR, weight_decay=0.0, block_size=block
            )
    return makers


def _max_rel(a: Sequence[float], b: Sequence[float]) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / np.abs(np.asarray(b))))


def reproduction_check(data: digits.Digits, seed: int = 0, epochs: int = 2) -> dict[str, Any]:
    """Training losses of torch and of ``digits.train`` for Adam and SGD, and their largest relative difference."""
    torch = _torch()
    problem = make_problem(data, seed, epochs)
    pairs = {
        "adam lr=1e-3": (optax.adam(LR), lambda ps: torch.optim.AdamW(ps, lr=LR, weight_decay=0.0)),
        "sgd lr=0.1": (optax.sgd(0.1), lambda ps: torch.optim.SGD(ps, lr=0.1)),
    }
    out: dict[str, Any] = {"seed": seed, "epochs": epochs}
    for name, (tx, make_optimizer) in pairs.items():
        jax_loss = [float(v) for v in digits.train(tx, data, epochs=epochs, seed=seed).train_loss]
        torch_loss = train(problem, name, make_optimizer, seed).train_loss
        out[name] = {"jax": jax_loss, "torch": torch_loss, "max_rel_diff": _max_rel(torch_loss, jax_loss)}
    return out


def torchao_defaults() -> dict[str, Any]:
    """The constructor defaults of AdamW8bit and AdamW4bit, and a summary of their quantization maps."""
    tao = _torchao_optim()
    from torchao.optim import subclass_4bit, subclass_8bit

    out: dict[str, Any] = {}
    for name, module in (("AdamW8bit", subclass_8bit), ("AdamW4bit", subclass_4bit)):
        signature = inspect.signature(getattr(tao, name).__init__)
        defaults = {k: p.default for k, p in signature.parameters.items() if p.default is not inspect.Parameter.empty}
        maps = {}
        for kind, qmap in (("signed", module.get_qmap_signed()), ("unsigned", module.get_qmap_unsigned())):
            values = np.asarray(qmap, np.float64)
            maps[kind] = {"size": len(values), "min": float(values.min()), "max": float(values.max())}
            maps[kind]["smallest_magnitude"] = float(np.abs(values[values != 0]).min())
        defaults = {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()}
        out[name] = {"defaults": defaults, "qmaps": maps}
    out["min_numel_quantized"] = 4096  # torchao.optim.adam._AdamBase._new_buffer, and numel % block_size == 0.
    return out


def summarize(runs: list[Run]) -> dict[str, dict[str, Any]]:
    """Per optimizer: bytes/param, final losses by seed, relative differences to float32 AdamW, worst seed."""
    reference = {r.seed: r.final_loss for r in runs if r.optimizer == REFERENCE}
    summary: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(r.optimizer for r in runs):
        mine = [r for r in runs if r.optimizer == name]
        rel = {r.seed: (r.final_loss - reference[r.seed]) / reference[r.seed] for r in mine}
        worst = max(rel, key=lambda s: abs(rel[s]))
        times = [r.seconds_per_epoch for r in mine if r.seconds_per_epoch is not None]
        summary[name] = {
            "bytes_per_param": mine[0].bytes_per_param,
            "state_bytes": mine[0].state_bytes,
            "state_kinds": mine[0].state_kinds,
            "final_loss": {r.seed: r.final_loss for r in mine},
            "rel_diff": rel,
            "mean_rel_diff": statistics.fmean(rel.values()),
            "worst_seed": worst,
            "worst_rel_diff": rel[worst],
            "seconds_per_epoch": statistics.median(times) if times else None,
        }
    return summary


def table(summary: dict[str, dict[str, Any]], seeds: Sequence[int]) -> str:
    """The summary as a markdown table."""
    head = ["optimizer", "bytes/param", *(f"loss seed {s}" for s in seeds), "mean rel diff", "worst seed", "s/epoch"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in summary.items():
        seconds = "n/a" if s["seconds_per_epoch"] is None else f"{s['seconds_per_epoch']:.3f}"
        cells = [
            name,
            f"{s['bytes_per_param']:.3f}",
            *(f"{s['final_loss'][seed]:.5g}" for seed in seeds),
            f"{s['mean_rel_diff']:+.2%}",
            f"{s['worst_seed']} ({s['worst_rel_diff']:+.2%})",
            seconds,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def versions() -> dict[str, str]:
    import torchao

    torch = _torch()
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchao": torchao.__version__,
        "jax": jax.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write every number here")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--no-check", action="store_true", help="skip the JAX reproduction check")
    parser.add_argument("--defaults-only", action="store_true", help="skip the divisible-block-size rows")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    torch = _torch()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*_stable_hash_for_caching.*")
    makers = optimizers(args.defaults_only)
    data = digits.load(seed=0)
    result: dict[str, Any] = {"versions": versions(), "torchao": torchao_defaults()}
    result["config"] = {"epochs": args.epochs, "seeds": args.seeds, "lr": LR, "weight_decay": 0.0}
    result["config"] |= {"batch_size": BATCH_SIZE, "threads": args.threads, "data": "digits.load(seed=0)"}
    if not args.no_check:
        result["reproduction_check"] = check = reproduction_check(data)
        for name in ("adam lr=1e-3", "sgd lr=0.1"):
            print(f"reproduction {name}: max rel diff torch vs digits.train {check[name]['max_rel_diff']:.2e}")
    runs = []
    for seed in args.seeds:
        problem = make_problem(data, seed, args.epochs)
        for name, make_optimizer in makers.items():
            runs.append(train(problem, name, make_optimizer, seed))
            print(f"seed {seed} {name}: loss {runs[-1].final_loss:.5g}", file=sys.stderr)
    summary = summarize(runs)
    print(table(summary, args.seeds))
    if args.json:
        result |= {"summary": summary, "runs": [asdict(r) for r in runs]}
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
