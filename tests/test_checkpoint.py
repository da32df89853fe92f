"""Optimizer state survives an Orbax checkpoint restored in a new process: for every transformation of the
registry, training continues bit-identically with the uninterrupted run. (The in-process NumPy round trip
is tests/test_registry.py's ``test_numpy_round_trip_continues_bit_identically``.)"""

import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.helpers import REGISTRY
from tests.parity import require

ROOT = Path(__file__).resolve().parents[1]


def test_orbax_checkpoint_resumes_bit_identically_in_a_new_process(tmp_path):
    require("orbax.checkpoint")
    worker = [sys.executable, "-m", "tests.checkpoint_worker"]
    uninterrupted, resumed = tmp_path / "uninterrupted.npz", tmp_path / "resumed.npz"
    subprocess.run([*worker, "save", str(tmp_path / "ckpt"), str(uninterrupted)], cwd=ROOT, check=True)
    subprocess.run([*worker, "resume", str(tmp_path / "ckpt"), str(resumed)], cwd=ROOT, check=True)
    directories = sorted(path.name for path in (tmp_path / "ckpt").iterdir())
    assert len(directories) == len(REGISTRY)  # One checkpoint per entry: sanitized names do not collide.
    a, b = np.load(uninterrupted), np.load(resumed)
    assert sorted(a.files) == sorted(b.files)
    for entry in REGISTRY:  # Every entry, with its 4 params leaves and every state leaf.
        assert sum(key.startswith(f"{entry.name}/") for key in a.files) > 4, entry.name
    for key in a.files:
        assert np.all(np.isfinite(a[key])), key  # NaN would compare equal to NaN.
        np.testing.assert_array_equal(b[key], a[key], err_msg=key)  # Bit for bit.
