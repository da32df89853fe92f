"""adaptive_tx.sharding.state_shardings on a 2 x 4 mesh of simulated CPU devices (tests/zero_worker.py, a fresh
process), for every transformation of the registry and for Optax's own and wrapped ones, with Auto and
Explicit axes, on params of mixed specs:

- the state goes where state_shardings says, and without ZeRO-1 that is where ``init`` alone puts it;
- a jitted step compiles to no collective (one all-reduce where the math reads every coordinate: a norm, a
  finiteness check, statistics); with ZeRO-1 to one all-gather more, and nothing else;
- the params after 3 steps equal a one-device run; ZeRO-1 halves the state each device holds (data axis 2).
"""

from pathlib import Path

import jax
import pytest
from jax.sharding import PartitionSpec as P

from adaptive_tx.sharding import state_shardings, zero_spec
from tests import background
from tests.background import Job

ROOT = Path(__file__).resolve().parents[1]
MODES = [f"{axes}, {placement}" for axes in ("Auto", "Explicit") for placement in ("like the params", "ZeRO-1")]


def _zero_worker(part):
    """The worker's ``part``-th half of the transformations, as a job."""

    def run(directory):
        return background.report(["-m", "tests.zero_worker", background.REPORT, str(part), "2"], directory)

    return run


# Two halves, two processes: the longest worker, split so that the background threads share it.
JOBS = {"report": tuple(Job(f"zero_worker {part + 1}/2", _zero_worker(part), seconds=85) for part in (0, 1))}
pytestmark = pytest.mark.exhaustive  # A multi-device worker.


@pytest.fixture(scope="module")
def report():
    first, second = (job.result() for job in JOBS["report"])
    return first | {"transformations": first["transformations"] | second["transformations"]}


def _names():
    from tests.helpers import REGISTRY

    return [e.name for e in REGISTRY if e.shardable] + [
        "optax.adam",
        "chain(clip, adagrad)",
        "inject_hyperparams(adam)",
        "MultiSteps(rmsprop)",
        "apply_if_finite(momentum)",
    ]


@pytest.mark.parametrize("name", _names())
def test_state_goes_where_state_shardings_says(report, name):
    result = report["transformations"][name]
    for mode in MODES:
        assert result[f"placement, {mode}"] == [], mode
        assert result[f"placement after 3 steps, {mode}"] == [], mode


@pytest.mark.parametrize("name", _names())
def test_collectives_are_only_the_ones_the_math_needs(report, name):
    result = report["transformations"][name]
    reduce = ["all-reduce"] if result["needs an all-reduce"] else []
    for axes in ("Auto", "Explicit"):
        assert result[f"collectives, {axes}, like the params"] == reduce
        has_params_shaped_state = (
            result[f"state bytes per device, {axes}, ZeRO-1"]
            < result[f"state bytes per device, {axes}, like the params"]
        )
        gather = ["all-gather"] if has_params_shaped_state else []
        assert result[f"collectives, {axes}, ZeRO-1"] == sorted(gather + reduce)


@pytest.mark.parametrize("name", _names())
def test_results_equal_a_one_device_run(report, name):
    # float32; XLA fuses a sharded program differently from a one-device one (another FMA), which moves a
    # few coordinates by an ulp or two after 3 steps: below 1e-6 relative to the leaf's largest value.
    result = report["transformations"][name]
    for mode in MODES:
        assert result[f"relative error vs one device, {mode}"] <= 1e-6, mode


def test_zero_halves_the_state_each_device_holds(report):
    adam = report["adam (4096, 1024) bytes"]
    moments = 2 * 4096 * 1024 * 4  # mu and nu, float32
    count = 4  # the int32 step count, replicated
    assert adam["like the params"] == moments // 4 + count  # split over the 4 "model" devices, like the param
    assert adam["ZeRO-1"] == moments // 8 + count  # and over the 2 "data" replicas
    # Optax's own init under jit with Auto axes puts everything on one device.
    assert adam["optax, jit init under Auto axes"] == moments + count


def test_zero_spec_picks_the_largest_free_divisible_dimension():
    mesh = jax.sharding.AbstractMesh((2, 4), ("data", "model"))
    assert zero_spec(P(None, "model"), (6, 16), mesh, "data") == P("data", "model")
    assert zero_spec(P(), (6, 10), mesh, "data") == P(None, "data")
    assert zero_spec(P(), (3,), mesh, "data") == P(None)  # nothing divides: replicated over "data".
    assert zero_spec(P("data"), (8,), mesh, "data") == P("data")  # already split over it.
    assert zero_spec(P(("data", "model")), (8, 2), mesh, "data") == P(("data", "model"), None)


def test_bad_arguments_name_what_is_wrong():
    import adaptive_tx as atx

    mesh = jax.make_mesh((1,), ("data",))
    with pytest.raises(ValueError, match="zero_axis 'batch' is not an axis of the mesh"):
        state_shardings(atx.adam(1e-3), {"w": jax.numpy.zeros(2)}, mesh, zero_axis="batch")
