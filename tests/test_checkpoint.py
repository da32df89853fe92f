"""Optimizer state survives a checkpoint: restored in a new process (Orbax) or round-tripped through NumPy,
training continues bit-identically with the uninterrupted run."""

import subprocess
import sys
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from tests.helpers import OPTIMIZERS, nested_params
from tests.parity import require

ROOT = Path(__file__).resolve().parents[1]


def test_orbax_checkpoint_resumes_bit_identically_in_a_new_process(tmp_path):
    require("orbax.checkpoint")
    worker = [sys.executable, "-m", "tests.checkpoint_worker"]
    uninterrupted, resumed = tmp_path / "uninterrupted.npz", tmp_path / "resumed.npz"
    subprocess.run([*worker, "save", str(tmp_path / "ckpt"), str(uninterrupted)], cwd=ROOT, check=True)
    subprocess.run([*worker, "resume", str(tmp_path / "ckpt"), str(resumed)], cwd=ROOT, check=True)
    a, b = np.load(uninterrupted), np.load(resumed)
    assert sorted(a.files) == sorted(b.files) and len(a.files) == 4 * len(OPTIMIZERS)
    for key in a.files:
        np.testing.assert_array_equal(b[key], a[key], err_msg=key)  # Bit for bit.


@pytest.mark.parametrize("case", OPTIMIZERS, ids=str)
def test_numpy_round_trip_continues_bit_identically(case):
    tx = case.optimizer(**case.unusual[0])
    params = nested_params()

    def grad(p, t):
        return jax.tree.map(lambda w: w - 1 + jnp.asarray(t, w.dtype) / 10, p)

    @jax.jit
    def step(params, state, t):
        updates, state = tx.update(grad(params, t), state, params)
        return optax.apply_updates(params, updates), state

    state = tx.init(params)
    for t in range(3):
        params, state = step(params, state, t)
    saved = jax.tree.map(np.asarray, (params, state))  # e.g. for np.savez or pickle
    restored = jax.tree.map(jnp.asarray, saved)
    assert jax.tree.structure(restored) == jax.tree.structure((params, state))
    chex.assert_trees_all_equal_dtypes(restored, (params, state))
    a, b = (params, state), restored
    for t in range(3, 6):
        a = step(*a, t)
        b = step(*b, t)
    chex.assert_trees_all_equal(a, b)
