"""Optimizer state is placed like the params: every transformation of the registry, on 8 simulated CPU
devices (a fresh process, tests/sharding_worker.py, so the device count is set before JAX starts).

Checked for row-sharded, column-sharded, replicated and data-axis params: eager ``init``, ``jax.jit(init)``
with Auto and with Explicit mesh axes, ``init`` on ``ShapeDtypeStruct``s that carry a sharding, a train
step donating params and state (no "donated buffers were not usable" warning), and a ``lax.scan`` training
loop under Explicit axes (whose carry must keep its sharding from step to step). Entries that cannot hold
sharded params (``shardable=False``: ``atx.packed``) must refuse them instead, naming the alternative.
"""

from pathlib import Path

import pytest

from tests import background
from tests.background import Job
from tests.helpers import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
CHECKS = [
    "eager init",
    "jit init, Auto axes",
    "init on ShapeDtypeStructs",
    "donated train step",
    "jit init, Explicit axes",
    "lax.scan training loop, Explicit axes",
]


def _sharding_worker(directory):
    return background.report(["-m", "tests.sharding_worker", background.REPORT], directory)


JOBS = {"report": Job("sharding_worker", _sharding_worker, seconds=49)}
pytestmark = pytest.mark.exhaustive  # A multi-device worker.


@pytest.fixture(scope="module")
def report():
    return JOBS["report"].result()


@pytest.mark.parametrize("entry", [e for e in REGISTRY if e.shardable], ids=str)
@pytest.mark.parametrize("check", CHECKS)
def test_state_is_placed_like_the_params(report, entry, check):
    assert report[entry.name][check] == []


@pytest.mark.parametrize("entry", [e for e in REGISTRY if not e.shardable], ids=str)
def test_unshardable_entries_refuse_sharded_params_and_name_the_alternative(report, entry):
    assert report["refusals"][entry.name] == []


def test_adams_second_moment_is_split_across_the_devices(report):
    # A (512, 256) float32 param sharded 8 ways: 64 KiB of its second moment on each device, as Optax's.
    full = 512 * 256 * 4
    assert report["bytes"]["adaptive_tx"] == [full // 8] * 8
    assert report["bytes"]["adaptive_tx"] == report["bytes"]["optax"]
