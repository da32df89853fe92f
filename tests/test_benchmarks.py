"""The benchmark suite runs end to end (on tiny sizes), and its fusion counter counts what XLA compiled."""

from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from benchmarks.hlo import count_array_fusions
from benchmarks.report import TABLES, report
from benchmarks.suite import DTYPES, OPTIMIZERS, SMOKE_SHAPES, make_pair, optimizer_step
from tests import background
from tests.background import Job

ROOT = Path(__file__).resolve().parents[1]
N = 64 * 1024


def _fusions(fn) -> int:
    return count_array_fusions(jax.jit(fn).lower(jnp.ones(N, jnp.float32)).compile().as_text(), [N])


def test_fusion_counter_one_elementwise_chain_is_one_fusion():
    assert _fusions(lambda x: jnp.sin(x) * jnp.float32(2)) == 1


def test_fusion_counter_a_sort_between_two_elementwise_ops_keeps_them_apart():
    # XLA cannot fuse across the sort: sin is one loop fusion, the multiplication another.
    assert _fusions(lambda x: jnp.sort(jnp.sin(x)) * jnp.float32(2)) == 2


def test_fusion_counter_ignores_scalar_and_other_sized_fusions():
    hlo = """
  %a = f32[] fusion(%p), kind=kLoop, calls=%c0
  %b = (f32[16,4]{1,0}, bf16[64]{0}) fusion(%x, %y), kind=kLoop, calls=%c1
  %c = f32[8]{0} fusion(%x), kind=kLoop, calls=%c2
  %d = f32[64]{0} fusion(%x), kind=kInput, calls=%c3
  ROOT %e = bf16[4,16]{1,0} fusion(%x), kind=kLoop, calls=%c4
"""
    assert count_array_fusions(hlo, [64]) == 2  # %b (a multi-output fusion) and %e
    assert count_array_fusions(hlo, [64], kinds=("kLoop", "kInput")) == 3
    assert count_array_fusions(hlo, [8, 64]) == 3


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_compiled_step_has_no_more_passes_or_temporaries_than_optax(name, dtype):
    # Deterministic stand-ins for speed on a memory-bound step: the loop fusions over parameter-sized arrays
    # (each one pass over what it reads and writes) and XLA's temporary buffers, against Optax's closest
    # equivalent (benchmarks/suite.py), jitted and donated, float32 and bfloat16 with 16-bit state. With
    # 16-bit state, a direction computed from unrounded moments made XLA copy the donated old moments
    # (4 bytes per parameter more than Optax).
    shapes = [(4096,), (64, 64), (64,)]
    counts = []
    for tx in make_pair(name, DTYPES[dtype]):
        params = [jnp.ones(shape, DTYPES[dtype]) for shape in shapes]
        grads = [jnp.full(shape, 0.01, DTYPES[dtype]) for shape in shapes]
        step = jax.jit(optimizer_step(tx), donate_argnums=(0, 1))
        with jax.numpy_dtype_promotion("standard"):  # Optax's Adam mixes Python floats with int32 counts.
            compiled = step.lower(params, tx.init(params), grads).compile()
        fusions = count_array_fusions(compiled.as_text(), [4096, 64 * 64, 64])
        counts.append((fusions, compiled.memory_analysis().temp_size_in_bytes))
    (ours, our_temp), (optax_, optax_temp) = counts
    assert 0 < ours <= optax_, counts
    assert our_temp <= optax_temp, counts


def _benchmarks(args):
    """``python -m benchmarks ARGS --json OUT`` on the CPU, as a job; its rows."""

    def run(directory):
        return background.report(
            ["-m", "benchmarks", *args, "--json", background.REPORT], directory, {"JAX_PLATFORMS": "cpu"}
        )["rows"]

    return run


JOBS = {
    "smoke_rows": Job("benchmarks --smoke", _benchmarks(["--smoke"]), seconds=30),
    # The one-flag GPU comparison (--gpu: one leaf of 1G params; --quick: 1M), run here on the CPU.
    "gpu_rows": Job(
        "benchmarks --gpu",
        _benchmarks(["--gpu", "--quick", "--device", "cpu", "--optimizers", "adam", "--no-torch", "--reps", "2"]),
        seconds=5,
    ),
}


@pytest.fixture(scope="module")
def smoke_rows():
    return JOBS["smoke_rows"].result()


@pytest.fixture(scope="module")
def gpu_rows():
    return JOBS["gpu_rows"].result()


@pytest.mark.exhaustive  # The suite in a fresh process.
def test_suite_writes_every_row(smoke_rows):
    rows = smoke_rows
    keys = {(r["optimizer"], r["dtype"], r["shape"]) for r in rows}
    assert keys == {(o, d, s) for o in OPTIMIZERS for d in DTYPES for s in SMOKE_SHAPES}
    assert len(rows) == len(keys)
    for row in rows:
        for name in ("adaptive_tx/optax", "optax_control/optax", "adaptive_tx/floor", "compile adaptive_tx/optax"):
            assert row["ratio"][name] > 0, (row["optimizer"], name)
        assert all(t > 0 for t in row["ms"].values())
        assert row["array_fusions"]["adaptive_tx"] > 0 and row["array_fusions"]["optax"] > 0
        assert row["state_bytes_per_param"]["adaptive_tx"] > 0
        assert row["floor"]["writes"] == row["floor"]["reads"] - 1
    # RESULTS.md's tables from that JSON: one row per optimizer, one column per dtype and tree, each cell read
    # from its own row (the step-time ratio, the fusion pair).
    tables = report(rows).split("\n\n## ")
    assert len(tables) == len(TABLES)
    step_table = tables[0].splitlines()
    assert step_table[2].count("|") == 2 + len(DTYPES) * len(SMOKE_SHAPES)
    first = next(r for r in rows if (r["optimizer"], r["dtype"]) == (OPTIMIZERS[0], "float32"))
    assert step_table[4].startswith(f"| {OPTIMIZERS[0]} | {first['ratio']['adaptive_tx/optax']:.2f} |")
    fusions = first["array_fusions"]
    assert f"| {OPTIMIZERS[0]} | {fusions['adaptive_tx']} / {fusions['optax']} |" in tables[6]


@pytest.mark.exhaustive  # The suite in a fresh process.
def test_gpu_preset_runs_on_the_cpu(gpu_rows):
    # Adam against Optax and the floor, each row complete.
    rows = gpu_rows
    assert {(r["optimizer"], r["dtype"], r["shape"], r["params"]) for r in rows} == {
        ("adam", d, "1x1M", 1024 * 1024) for d in DTYPES
    }
    for row in rows:
        assert row["ratio"]["adaptive_tx/optax"] > 0 and row["ratio"]["adaptive_tx/floor"] > 0
        assert row["array_fusions"]["adaptive_tx"] == row["array_fusions"]["optax"] == 3


@pytest.mark.exhaustive  # Compiles and trains every format.
def test_quantized_step_benchmark_reports_every_row_with_its_bytes():
    from benchmarks import quantized_step

    size = 4096
    with jax.numpy_dtype_promotion("standard"):  # optax.adam's bias correction mixes float and int32.
        rows = {r["row"]: r for r in quantized_step.run(size=size, reps=2, compile_reps=1)}
    assert set(rows) == set(quantized_step.optimizers())
    # State bytes per parameter from the formats alone (the step count's 4 bytes and the key's 8 spread
    # over the parameters): two float32 moments, two bfloat16 ones, two of 1-byte codes and a float32 scale
    # per 256.
    assert rows["optax.adam"]["state_bytes_per_param"] == pytest.approx(8 + 4 / size)
    assert rows["atx.adam bfloat16 stochastic"]["state_bytes_per_param"] == pytest.approx(4 + 12 / size)
    assert rows["atx.adam 8-bit"]["state_bytes_per_param"] == pytest.approx(2 * (1 + 4 / 256) + 4 / size)
    assert rows["atx.adam 8-bit stochastic"]["state_bytes_per_param"] == pytest.approx(2 * (1 + 4 / 256) + 12 / size)
    assert rows["optax.adam"]["step_ratio"] == 1.0 and all(
        r["step_ms"] > 0 and r["compile_s"] > 0 for r in rows.values()
    )


@pytest.mark.exhaustive  # Compiles and trains every format.
def test_state_formats_benchmark_trains_every_format_from_the_same_start():
    from benchmarks import state_formats

    rows = state_formats.run(epochs=1, seeds=(0,), optimizers=("adam",))
    assert [r.state_format for r in rows] == list(state_formats.FORMATS)
    bytes_ = {r.state_format: r.bytes_per_parameter for r in rows}
    # The digits MLP: 64x500, 500x300, 300x10 and biases; only the two large matrices have quantized state.
    params = 64 * 500 + 500 + 500 * 300 + 300 + 300 * 10 + 10
    quantized = 2 * (64 * 500 + 64 * 2 * 4 + 500 * 300 + 500 * 2 * 4) + 2 * 4 * (500 + 300 + 300 * 10 + 10)
    assert bytes_["float32"] == pytest.approx((8 * params + 4) / params)
    assert bytes_["8-bit"] == pytest.approx((quantized + 4) / params)
    losses = {r.state_format: r.losses[0] for r in rows}
    assert all(0 < loss < 1.0 for loss in losses.values())  # Trained: from ln(10) = 2.3.
    assert losses["8-bit stochastic"] != losses["float32"]  # The formats are different runs.
    relative = state_formats.relative_to_float32(rows)
    assert relative["adam", "float32"] == pytest.approx([0.0])
    assert f"| adam | 8-bit | {bytes_['8-bit']:.2f} |" in state_formats.table(rows)
