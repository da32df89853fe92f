"""examples/tensorboard_logging.py writes what it says it logged: read back with TensorBoard's own event reader."""

from pathlib import Path

import jax
import numpy as np
import pytest

from adaptive_tx import digits
from adaptive_tx.diagnostics import QUANTILE_RESOLUTION, TrackStats
from tests.helpers import module_from_file

pytestmark = pytest.mark.exhaustive  # tensorboardX and TensorBoard (the tensorboard extra), which CI installs.

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "tensorboard_logging.py"
STEPS, LOG_EVERY = 30, 5


def _example():
    return module_from_file(EXAMPLE, "tensorboard_logging")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """What the example says it logged, and the event file read back: ``({step: {name: value}}, accumulator)``.

    The imports are here, not at the top: a module-level skip would show in README's run, which deselects
    these tests but still collects the module."""
    pytest.importorskip("sklearn")
    pytest.importorskip("tensorboardX")
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    logdir = tmp_path_factory.mktemp("runs")
    logged = _example().run(logdir, steps=STEPS, log_every=LOG_EVERY)
    events = event_accumulator.EventAccumulator(str(logdir), size_guidance={event_accumulator.SCALARS: 0})
    events.Reload()
    return logged, events


def test_every_logged_scalar_is_read_back_at_its_step(written):
    logged, events = written
    assert sorted(logged) == list(range(0, STEPS, LOG_EVERY))
    tags = set(events.Tags()["scalars"])
    assert tags == {name for values in logged.values() for name in values}
    for tag in tags:
        read = events.Scalars(tag)
        steps = [step for step, values in logged.items() if tag in values]
        assert [e.step for e in read] == steps, tag
        # An event holds a float32 (simple_value): the logged Python float, rounded once.
        assert [np.float32(e.value) for e in read] == [np.float32(logged[s][tag]) for s in steps], tag


def test_the_whole_model_and_every_layer_are_logged(written):
    logged, _ = written
    params = digits.init_mlp(jax.random.key(0))
    leaves = [
        jax.tree_util.keystr(p, simple=True, separator="/") for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]
    ]
    assert sorted(leaves) == ["0/b", "0/w", "1/b", "1/w", "2/b", "2/w"]
    last = logged[max(logged)]
    for field in TrackStats._fields:
        assert f"model/{field}" in last
        for leaf in leaves:
            assert f"layers/{field}/{leaf}" in last
    assert len(last) == 1 + 7 * len(TrackStats._fields)
    # Only a bias's update_to_param_ratio at step 0 (a bias starts at 0: the ratio is inf) is left out.
    missing = {name for name in last if name not in logged[0]}
    assert missing == {f"layers/update_to_param_ratio/{i}/b" for i in range(3)}


def test_the_logged_values_are_adams(written):
    logged, _ = written
    first = logged[0]
    # Adam's first step is eta g / (|g| + eps) = eta sign(g) wherever g != 0, and every coordinate of the last
    # bias's gradient (the batch's mean of softmax - one-hot) is non-zero: its update_rms is eta = 1e-3, to
    # within eps / min |g| relative (2e-6: its smallest |g| is about 5e-3), and ||u|| / ||g|| = eta / grad_rms.
    np.testing.assert_allclose(first["layers/update_rms/2/b"], 1e-3, rtol=1e-5)
    np.testing.assert_allclose(first["layers/update_to_grad_ratio/2/b"] * first["layers/grad_rms/2/b"], 1e-3, rtol=1e-5)
    for values in logged.values():
        low, p10, median, p90, high = (
            values[f"model/effective_lr_{q}"] for q in ("min", "p10", "median", "p90", "max")
        )
        # A quantile is its histogram bin's midpoint, within QUANTILE_RESOLUTION of a coordinate's value.
        assert 0 < low * (1 - QUANTILE_RESOLUTION) <= p10 <= median <= p90 <= high * (1 + QUANTILE_RESOLUTION)
    assert logged[max(logged)]["train/loss"] < logged[0]["train/loss"] / 2
