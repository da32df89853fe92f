"""Optimizer state survives an Orbax checkpoint restored in a new process: for every transformation of the
registry, training continues bit-identically with the uninterrupted run. (The in-process NumPy round trip
is tests/test_registry.py's ``test_numpy_round_trip_continues_bit_identically``.)"""

import numpy as np
import pytest

from tests import background
from tests.background import Job
from tests.helpers import REGISTRY
from tests.parity import require


def _save_then_resume(directory):
    """One process trains, saves and trains on; a second one restores the checkpoints and trains as far."""
    for mode in ("save", "resume"):
        worker = ["-m", "tests.checkpoint_worker", mode, str(directory / "ckpt"), str(directory / f"{mode}.npz")]
        background.python(worker)
    return directory


JOBS = {"checkpoints": Job("checkpoint_worker", _save_then_resume, seconds=38)}


@pytest.fixture(scope="module")
def checkpoints():
    require("orbax.checkpoint")
    return JOBS["checkpoints"].result()


@pytest.mark.exhaustive  # Two fresh processes.
def test_orbax_checkpoint_resumes_bit_identically_in_a_new_process(checkpoints):
    uninterrupted, resumed = checkpoints / "save.npz", checkpoints / "resume.npz"
    directories = sorted(path.name for path in (checkpoints / "ckpt").iterdir())
    assert len(directories) == len(REGISTRY)  # One checkpoint per entry: sanitized names do not collide.
    a, b = np.load(uninterrupted), np.load(resumed)
    assert sorted(a.files) == sorted(b.files)
    for entry in REGISTRY:  # Every entry, with its 4 params leaves and every state leaf.
        assert sum(key.startswith(f"{entry.name}/") for key in a.files) > 4, entry.name
    for key in a.files:
        assert np.all(np.isfinite(a[key])), key  # NaN would compare equal to NaN.
        np.testing.assert_array_equal(b[key], a[key], err_msg=key)  # Bit for bit.
