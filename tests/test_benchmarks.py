"""The benchmark suite runs end to end (on tiny sizes), and its fusion counter counts what XLA compiled."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

from benchmarks.hlo import count_array_fusions
from benchmarks.suite import DTYPES, OPTIMIZERS, SMOKE_SHAPES

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


def test_suite_writes_every_row(tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, "-m", "benchmarks", "--smoke", "--json", str(out)]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True, text=True, timeout=600)
    rows = json.loads(out.read_text())["rows"]
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
