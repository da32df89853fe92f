"""The measurements behind ``python -m benchmarks``: step times, the memory floor, compile costs.

Everything is measured in one process, and every repetition runs each implementation once, in a shuffled
order (interleaved), so that a slow moment of a shared machine hits all of them alike; the tables report
medians and ratios of medians. Compare the ratios of one run, not absolute times across runs.
"""

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adaptive_tx as atx
from benchmarks.hlo import count_array_fusions

Shape = tuple[int, ...]

OPTIMIZERS = ("adagrad", "rmsprop", "adadelta", "momentum", "adam")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


# ----------------------------------------------------------------------------------------------- shapes
def transformer_shapes(d: int = 512, ff: int = 2048, vocab: int = 32000, emb: int = 128, layers: int = 10) -> list:
    """181 leaves shaped like a small transformer: per layer 4 (d, d), 12 (d,), (ff, d), (d, ff); an embedding."""
    shapes: list[Shape] = []
    for _ in range(layers):
        shapes += [(d, d)] * 4 + [(d,)] * 12 + [(ff, d), (d, ff)]
    return shapes + [(vocab, emb)]


SHAPES = {  # name -> the leaves of the params tree
    "1x16M": [(16 * 1024 * 1024,)],
    "transformer181": transformer_shapes(),
    "2000x1k": [(1024,)] * 2000,
}
QUICK_SHAPES = {  # the same three kinds of tree, small
    "1x256k": [(256 * 1024,)],
    "transformer55": transformer_shapes(d=64, ff=256, vocab=1000, emb=32, layers=3),
    "100x1k": [(1024,)] * 100,
}
SMOKE_SHAPES = {  # tiny: for the test suite, which checks the rows, not the times
    "1x4k": [(4096,)],
    "transformer19": transformer_shapes(d=8, ff=16, vocab=50, emb=4, layers=1),
    "20x256": [(256,)] * 20,
}
GPU_SHAPES = {"1x1G": [(1024 * 1024 * 1024,)]}
GPU_QUICK_SHAPES = {"1x1M": [(1024 * 1024,)]}


# ----------------------------------------------------------------------------------------------- optimizers
def make_pair(name: str, dtype: Any) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    """adaptive_tx's optimizer and Optax's closest equivalent; 16-bit state for 16-bit params.

    The float32 pairs compute the same update (tests/test_optax_equivalence.py). AdaGrad: Optax's
    ``initial_accumulator_value=0.1`` and ``eps=1e-7`` (inside the root in both here). RMSprop: both put
    ``eps`` inside the root. Momentum: Optax's heavy ball is ``dampening=0``.
    """
    half = dtype == jnp.bfloat16
    acc = {"accumulator_dtype": dtype} if half else {}
    if name == "adam":
        ours = atx.adam(1e-3, **({"mu_dtype": dtype, "nu_dtype": dtype} if half else {}))
        return ours, optax.adam(1e-3, **({"mu_dtype": dtype} if half else {}))  # Optax's nu follows params
    if name == "rmsprop":
        return atx.rmsprop(1e-3, **acc), optax.rmsprop(1e-3)
    if name == "adagrad":
        return atx.adagrad(1e-2, eps=1e-7, initial_accumulator=0.1, **acc), optax.adagrad(1e-2)
    if name == "adadelta":
        return atx.adadelta(1.0, **acc), optax.adadelta(1.0)
    if name == "momentum":
        return atx.momentum(0.1, dampening=0.0, **acc), optax.sgd(0.1, momentum=0.9, **acc)
    raise ValueError(f"unknown optimizer {name!r}")


def torch_optimizer(name: str, params: list) -> tuple[Any, str]:
    """PyTorch's closest optimizer: ``fused=True`` for Adam, ``foreach=True`` for the others."""
    import torch

    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3, fused=True), "Adam(fused=True)"
    if name == "rmsprop":  # eps outside the root in PyTorch
        return torch.optim.RMSprop(params, lr=1e-3, alpha=0.9, eps=1e-8, foreach=True), "RMSprop(foreach)"
    if name == "adagrad":
        opt = torch.optim.Adagrad(params, lr=1e-2, eps=1e-7, initial_accumulator_value=0.1, foreach=True)
        return opt, "Adagrad(foreach)"
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=1.0, rho=0.9, eps=1e-6, foreach=True), "Adadelta(foreach)"
    if name == "momentum":
        return torch.optim.SGD(params, lr=0.1, momentum=0.9, foreach=True), "SGD(momentum, foreach)"
    raise ValueError(f"unknown optimizer {name!r}")


def have_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


# ----------------------------------------------------------------------------------------------- steps
def _params(shapes: Sequence[Shape], dtype: Any, value: float) -> list:
    return [jnp.full(shape, value, dtype) for shape in shapes]


def _bytes(tree: Any) -> int:
    return sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree.leaves(tree))


@dataclass
class JaxStep:
    """A jitted step donating params and state, compiled explicitly so that each phase is timed."""

    name: str
    compiled: Any
    args: list
    trace_s: float
    lower_s: float
    compile_s: float
    times: list[float] = field(default_factory=list)

    def run(self) -> None:
        params, state, grads = self.args
        params, state = self.compiled(params, state, grads)
        jax.block_until_ready((params, state))
        self.args = [params, state, grads]


def compile_fresh(fn: Callable, params: Any, state: Any, grads: Any) -> tuple[Any, list[float]]:
    """A jitted, donated ``fn`` compiled from scratch, and its trace, lower and compile seconds.

    A fresh wrapper each call, so that nothing is served from JAX's tracing cache.
    """
    jitted = jax.jit(lambda *args: fn(*args), donate_argnums=(0, 1))
    t0 = time.perf_counter()
    traced = jitted.trace(params, state, grads)
    t1 = time.perf_counter()
    lowered = traced.lower()
    t2 = time.perf_counter()
    compiled = lowered.compile()
    t3 = time.perf_counter()
    return compiled, [t1 - t0, t2 - t1, t3 - t2]


def compile_step(name: str, fn: Callable, params: Any, state: Any, grads: Any) -> JaxStep:
    compiled, (trace_s, lower_s, compile_s) = compile_fresh(fn, params, state, grads)
    return JaxStep(name, compiled, [params, state, grads], trace_s, lower_s, compile_s)


def recompile_medians(steps: dict[str, "JaxStep"], fns: dict[str, Callable], reps: int) -> None:
    """Trace, lower and compile each step ``reps - 1`` more times, interleaved; keep the medians."""
    times = {key: [[s.trace_s, s.lower_s, s.compile_s]] for key, s in steps.items()}
    for rep in range(reps - 1):
        keys = list(steps)[rep % len(steps) :] + list(steps)[: rep % len(steps)]
        for key in keys:
            params, state, grads = steps[key].args
            abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), (params, state, grads))
            times[key].append(compile_fresh(fns[key], *abstract)[1])
    for key, step in steps.items():
        step.trace_s, step.lower_s, step.compile_s = (float(t) for t in np.median(times[key], axis=0))


def optimizer_step(tx: optax.GradientTransformation) -> Callable:
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    return step


def floor_fn(params: list, state: list, grads: list) -> tuple[list, list]:
    """The memory floor: read params, grads and each state stream, write params and each state stream.

    One pass with almost no arithmetic: as many full-size reads and writes as the optimizer step must do,
    in the same dtypes, jitted and donated like it.
    """
    tiny = jnp.float32(1e-30)  # each output reads its own input and the gradient: no copies for aliasing
    new_params = [
        (p.astype(jnp.float32) + tiny * g.astype(jnp.float32)).astype(p.dtype)
        for p, g in zip(params, grads, strict=True)
    ]
    new_state = [
        [
            (s.astype(jnp.float32) + tiny * g.astype(jnp.float32)).astype(s.dtype)
            for s, g in zip(stream, grads, strict=True)
        ]
        for stream in state
    ]
    return new_params, new_state


def state_streams(state: Any, params: list) -> list[list]:
    """The state's full-size arrays, as streams each shaped like the params list (scalars dropped)."""
    big = [leaf for leaf in jax.tree.leaves(state) if leaf.ndim > 0]
    n = len(params)
    if len(big) % n:
        raise ValueError("the state's arrays are not streams shaped like the params")
    streams = [big[k * n : (k + 1) * n] for k in range(len(big) // n)]
    for stream in streams:
        if [a.shape for a in stream] != [p.shape for p in params]:
            raise ValueError("the state's arrays are not streams shaped like the params")
    return streams


@dataclass
class TorchStep:
    name: str
    opt: Any
    params: list
    times: list[float] = field(default_factory=list)

    def run(self) -> None:
        self.opt.step()
        if self.params[0].is_cuda:
            import torch

            torch.cuda.synchronize()


def make_torch_step(name: str, shapes: Sequence[Shape], dtype_name: str, device: str) -> tuple[TorchStep, str, int]:
    import torch

    tdtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
    tdevice = "cuda" if device == "gpu" else "cpu"
    params = []
    for shape in shapes:
        p = torch.nn.Parameter(torch.ones(shape, dtype=tdtype, device=tdevice))
        p.grad = torch.full(shape, 0.01, dtype=tdtype, device=tdevice)
        params.append(p)
    opt, label = torch_optimizer(name, params)
    step = TorchStep("torch", opt, params)
    step.run()  # creates the state
    n = sum(p.numel() for p in params)
    state_bytes = sum(
        t.numel() * t.element_size()
        for s in opt.state.values()
        for t in s.values()
        if torch.is_tensor(t) and t.numel() > 1
    )
    return step, label, state_bytes // max(n, 1) if n else 0


# ----------------------------------------------------------------------------------------------- one row
def _median_ms(times: list[float]) -> float:
    return float(np.median(times)) * 1e3


def bench_row(
    name: str,
    dtype_name: str,
    shape_name: str,
    shapes: Sequence[Shape],
    *,
    reps: int,
    device: Any,
    torch: bool,
    compile_reps: int = 1,
) -> dict:
    """One optimizer x dtype x shape: every implementation, interleaved, and the static costs."""
    dtype = DTYPES[dtype_name]
    ours, theirs = make_pair(name, dtype)
    _, control = make_pair(name, dtype)
    n_params = sum(math.prod(s) for s in shapes)
    sizes = {math.prod(s) for s in shapes}
    with jax.default_device(device):
        steps: dict[str, Any] = {}
        meta: dict[str, dict] = {}
        for key, tx in (("adaptive_tx", ours), ("optax", theirs), ("optax_control", control)):
            params, grads = _params(shapes, dtype, 1.0), _params(shapes, dtype, 0.01)
            state = tx.init(params)
            meta[key] = {"state_bytes_per_param": _bytes([s for s in state_streams(state, params)]) / n_params}
            if key == "adaptive_tx":
                streams_dtypes = [str(stream[0].dtype) for stream in state_streams(state, params)]
            steps[key] = compile_step(key, optimizer_step(tx), params, state, grads)
        if compile_reps > 1:
            fns = {"adaptive_tx": optimizer_step(ours), "optax": optimizer_step(theirs)}
            recompile_medians({k: steps[k] for k in fns}, fns, compile_reps)
        params, grads = _params(shapes, dtype, 1.0), _params(shapes, dtype, 0.01)
        streams = [[jnp.zeros(p.shape, d) for p in params] for d in streams_dtypes]
        steps["floor"] = compile_step("floor", floor_fn, params, streams, grads)
    torch_label = None
    torch_state = None
    if torch:
        steps["torch"], torch_label, torch_state = make_torch_step(name, shapes, dtype_name, device.platform)

    order = list(steps)
    for step in steps.values():  # warm-up
        for _ in range(2):
            step.run()
    # A new order every repetition (seeded): a rotation keeps each step's predecessor, and PyTorch's worker
    # threads still spinning after its step slowed whichever step always came next.
    rng = np.random.default_rng(0)
    for _ in range(reps):
        for key in rng.permutation(order):
            start = time.perf_counter()
            steps[key].run()
            steps[key].times.append(time.perf_counter() - start)

    ms = {key: _median_ms(step.times) for key, step in steps.items()}
    itemsize = jnp.dtype(dtype).itemsize
    stream_bytes = sum(jnp.dtype(d).itemsize for d in streams_dtypes)
    floor_bytes = n_params * (2 * itemsize + itemsize + 2 * stream_bytes)  # read p, g, state; write p, state
    row: dict[str, Any] = {
        "optimizer": name,
        "dtype": dtype_name,
        "shape": shape_name,
        "leaves": len(shapes),
        "params": n_params,
        "device": str(device),
        "reps": reps,
        "ms": ms,
        "ratio": {
            "adaptive_tx/optax": ms["adaptive_tx"] / ms["optax"],
            "optax_control/optax": ms["optax_control"] / ms["optax"],
            "adaptive_tx/floor": ms["adaptive_tx"] / ms["floor"],
            "optax/floor": ms["optax"] / ms["floor"],
        },
        "floor": {
            "reads": 2 + len(streams_dtypes),
            "writes": 1 + len(streams_dtypes),
            "bytes": floor_bytes,
            "GB/s": floor_bytes / (ms["floor"] * 1e-3) / 1e9,
        },
        "state_bytes_per_param": {k: meta[k]["state_bytes_per_param"] for k in ("adaptive_tx", "optax")},
        "state_dtypes": streams_dtypes,
    }
    row["array_fusions"] = {"floor": count_array_fusions(steps["floor"].compiled.as_text(), sizes)}
    for key in ("adaptive_tx", "optax"):
        s = steps[key]
        hlo = s.compiled.as_text()
        mem = s.compiled.memory_analysis()
        row.setdefault("trace_s", {})[key] = s.trace_s
        row.setdefault("lower_s", {})[key] = s.lower_s
        row.setdefault("compile_s", {})[key] = s.compile_s
        row["array_fusions"][key] = count_array_fusions(hlo, sizes)
        row.setdefault("temp_bytes", {})[key] = None if mem is None else int(mem.temp_size_in_bytes)
    row["ratio"]["compile adaptive_tx/optax"] = row["compile_s"]["adaptive_tx"] / row["compile_s"]["optax"]
    total = {k: row["trace_s"][k] + row["lower_s"][k] + row["compile_s"][k] for k in ("adaptive_tx", "optax")}
    row["ratio"]["trace+lower+compile adaptive_tx/optax"] = total["adaptive_tx"] / total["optax"]
    if torch:
        row["torch"] = {"optimizer": torch_label, "state_bytes_per_param": torch_state}
        row["ratio"]["adaptive_tx/torch"] = ms["adaptive_tx"] / ms["torch"]
        row["ratio"]["torch/floor"] = ms["torch"] / ms["floor"]
    del steps
    return row


# ----------------------------------------------------------------------------------------------- table
def format_table(rows: list[dict]) -> str:
    head = (
        "| optimizer | dtype | shape | atx ms | optax ms | floor ms | floor GB/s | atx/optax | control/optax "
        "| atx/floor | optax/floor | torch/optax | compile atx/optax | fusions atx/optax | temp bytes atx/optax "
        "| state B/param atx/optax |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in rows:
        ms, ratio = r["ms"], r["ratio"]
        torch = f"{ms['torch'] / ms['optax']:.2f}" if "torch" in ms else "-"
        lines.append(
            f"| {r['optimizer']} | {r['dtype']} | {r['shape']} | {ms['adaptive_tx']:.2f} | {ms['optax']:.2f} "
            f"| {ms['floor']:.2f} | {r['floor']['GB/s']:.1f} | {ratio['adaptive_tx/optax']:.2f} "
            f"| {ratio['optax_control/optax']:.2f} "
            f"| {ratio['adaptive_tx/floor']:.2f} | {ratio['optax/floor']:.2f} | {torch} "
            f"| {ratio['compile adaptive_tx/optax']:.2f} "
            f"| {r['array_fusions']['adaptive_tx']} / {r['array_fusions']['optax']} "
            f"| {r['temp_bytes']['adaptive_tx']} / {r['temp_bytes']['optax']} "
            f"| {r['state_bytes_per_param']['adaptive_tx']:g} / {r['state_bytes_per_param']['optax']:g} |"
        )
    return "\n".join(lines)


def run(
    shapes: dict[str, list[Shape]],
    *,
    optimizers: Sequence[str] = OPTIMIZERS,
    dtypes: Sequence[str] = tuple(DTYPES),
    reps: int = 15,
    device: Any = None,
    torch: bool | None = None,
    log: Callable[[str], None] = print,
    compile_reps: int = 1,
) -> list[dict]:
    device = device or jax.devices()[0]
    torch = have_torch() if torch is None else torch
    rows = []
    for shape_name, leaf_shapes in shapes.items():
        for dtype_name in dtypes:
            for name in optimizers:
                start = time.perf_counter()
                row = bench_row(
                    name,
                    dtype_name,
                    shape_name,
                    leaf_shapes,
                    reps=reps,
                    device=device,
                    torch=torch,
                    compile_reps=compile_reps,
                )
                row["compile_reps"] = compile_reps
                row["wall_s"] = time.perf_counter() - start
                rows.append(row)
                log(
                    f"{name:9s} {dtype_name:8s} {shape_name:15s} atx/optax {row['ratio']['adaptive_tx/optax']:5.2f}"
                    f"  control {row['ratio']['optax_control/optax']:5.2f}"
                    f"  atx/floor {row['ratio']['adaptive_tx/floor']:5.2f}  ({row['wall_s']:.1f} s)"
                )
    return rows


# ----------------------------------------------------------------------------------------------- donation
def step_time(tx: optax.GradientTransformation, shape: Shape, reps: int = 15, donate: bool = True) -> float:
    """The median time of one jitted step of ``tx`` on one float32 leaf, with or without donation."""
    params, grads = jnp.ones(shape), jnp.full(shape, 0.01)
    state = tx.init(params)
    step = jax.jit(optimizer_step(tx), donate_argnums=(0, 1) if donate else ())
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


def donation(log: Callable[[str], None] = print) -> None:
    """How much donating params and state saves, on a tiny tree and on one large weight (RMSprop)."""
    tx = atx.rmsprop(1e-2)
    for shape in [(3, 1), (4096, 1366), (16 * 1024 * 1024,)]:
        kept, donated = step_time(tx, shape, reps=31, donate=False), step_time(tx, shape, reps=31)
        log(
            f"{str(shape):18s} without donation {kept * 1e3:8.3f} ms   with {donated * 1e3:8.3f} ms   "
            f"ratio {kept / donated:5.2f}"
        )
