"""examples/data_parallel.py as a real multi-process job: two processes of 4 simulated CPU devices each,
joined by ``jax.distributed`` over loopback (CPU collectives over gloo), on a mesh of data 2 x model 4.

The two-process job trains with ZeRO-1, and saves its params and Adam state with Orbax; one process on 8
devices trains the same batches without ZeRO-1; a third run, one process on a mesh of another shape,
restores the checkpoint; a fourth resumes the one-process run for an epoch, against a fifth that runs
straight through. Each run is a fresh process, so the device counts are set before JAX starts.
"""

import re
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from tests import background
from tests.background import Job

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "data_parallel.py"
COMMON = ["--model-parallel", "4", "--epochs", "2", "--seed", "0"]
TIMEOUT = 300  # seconds per launch: a coordinator waiting for a process that died fails the test, not CI.
STATE_LINE = re.compile(r"^process (\d+): Adam state (\d+) bytes per device .*, (\d+) bytes in all", re.M)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(commands: list[list[str]], workdir: Path) -> list[str]:
    """Run the commands at once, each as ``python examples/data_parallel.py ...``; return their stdouts.

    As soon as one fails, or when TIMEOUT passes, the others are killed (a process whose peer died would
    wait in a collective); the assertion shows every process's exit status and the tail of its stderr.
    """
    logs = [(workdir / f"{i}.out", workdir / f"{i}.err") for i in range(len(commands))]
    procs = []
    for command, (out, err) in zip(commands, logs, strict=True):
        with out.open("w") as stdout, err.open("w") as stderr:
            # Simulated CPU devices even on a machine with a GPU.
            procs.append(
                background.popen(
                    [str(EXAMPLE), *command], {"JAX_PLATFORMS": "cpu"}, workdir, stdout=stdout, stderr=stderr
                )
            )
    deadline = time.monotonic() + TIMEOUT
    try:
        while any(p.poll() is None for p in procs):
            if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    codes = [p.returncode for p in procs]
    report = "\n".join(
        f"--- {' '.join(command)}: exit {code}\n{err.read_text()[-3000:]}"
        for command, code, (_, err) in zip(commands, codes, logs, strict=True)
    )
    assert codes == [0] * len(procs), f"timed out after {TIMEOUT} s or failed:\n{report}"
    return [out.read_text() for out, _ in logs]


def _runs(work):
    launch = ["--num-processes", "2", "--coordinator", f"127.0.0.1:{_free_port()}", "--devices-per-process", "4"]
    two = _launch(
        [[*launch, "--process-id", str(i), *COMMON, "--save", "ckpt", "--out", "two.npz"] for i in range(2)], work
    )
    (one,) = _launch(
        [["--devices-per-process", "8", *COMMON, "--no-zero", "--save", "ckpt1", "--out", "one.npz"]], work
    )
    # Restored on one process, on a mesh of another shape (data 4 x model 2), with ZeRO-1 over its data axis.
    restore = ["--devices-per-process", "8", "--model-parallel", "2", "--epochs", "0", "--restore", "ckpt"]
    (restored,) = _launch([[*restore, "--out", "r.npz"]], work)
    # One more epoch from the one-process checkpoint, and three epochs uninterrupted (two runs at once).
    plain = ["--devices-per-process", "8", "--model-parallel", "4", "--no-zero"]
    _launch(
        [
            [*plain, "--restore", "ckpt1", "--epochs", "1", "--out", "resumed.npz"],
            [*plain, "--epochs", "3", "--out", "straight.npz"],
        ],
        work,
    )
    return {
        "stdout": {"two": two, "one": one, "restored": restored},
        "npz": {name: dict(np.load(work / f"{name}.npz")) for name in ("two", "one", "r", "resumed", "straight")},
    }


JOBS = {"runs": Job("examples/data_parallel.py", _runs, seconds=34)}
pytestmark = pytest.mark.exhaustive  # Multi-process jobs.


@pytest.fixture(scope="module")
def runs():
    return JOBS["runs"].result()


def _state_bytes(stdout: str) -> dict[int, tuple[int, int]]:
    return {int(p): (int(device), int(total)) for p, device, total in STATE_LINE.findall(stdout)}


def test_two_processes_train_what_one_process_trains(runs):
    two, one = runs["npz"]["two"], runs["npz"]["one"]
    assert two.keys() == one.keys()
    assert "mesh: data 2 x model 4 on 8 devices in 2 process(es)" in runs["stdout"]["two"][0]
    # The same float32 math on the same batches: ZeRO-1 itself changes no bit (one process with and
    # without it agree exactly), but the two processes' all-reduces add the per-device partial sums of
    # the gradient in another order, a relative 1e-7 per step that Adam's normalized steps carry along.
    # Measured: 1.2e-6 after 1 epoch, 2.2e-6 after 2, 2.8e-6 after 5 and after 10 (the params of the
    # second layer; every other leaf under 4e-7), so 1e-5 is 4x the measured error.
    errors = {
        key: float(np.max(np.abs(two[key] - one[key])) / np.max(np.abs(one[key])))  # normwise, per leaf
        for key in one
        if key != "epoch"
    }
    assert max(errors.values()) < 1e-5, errors
    assert int(two["['opt_state'][0].count"]) == 2 * (1437 // 128)  # 2 epochs of 11 steps.


def test_zero1_halves_the_state_on_each_device(runs):
    by_process = _state_bytes("".join(runs["stdout"]["two"]))
    plain = _state_bytes(runs["stdout"]["one"])
    assert sorted(by_process) == [0, 1] and sorted(plain) == [0]
    zero_bytes, total = by_process[0]
    assert by_process[1] == by_process[0]
    plain_bytes, plain_total = plain[0]
    assert total == plain_total == 8 * (64 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10) + 4  # mu, nu, count
    # On data 2 x model 4, ZeRO-1 halves every moment but the first layer's bias, whose only dimension is
    # already split over "model" (128 floats of mu and of nu per device), and the int32 step count.
    unsplit = 2 * 128 * 4 + 4
    assert zero_bytes == (plain_bytes - unsplit) // 2 + unsplit
    assert (zero_bytes, plain_bytes) == (176172, 351316)


def test_one_process_restores_what_two_processes_saved(runs):
    saved, restored = runs["npz"]["two"], runs["npz"]["r"]
    assert "restored epoch 2 from ckpt" in runs["stdout"]["restored"]
    assert "mesh: data 4 x model 2 on 8 devices in 1 process(es)" in runs["stdout"]["restored"]
    assert restored.keys() == saved.keys()
    for key in saved:  # params, Adam's count, mu and nu, and the epoch: bit for bit.
        assert restored[key].dtype == saved[key].dtype and np.array_equal(restored[key], saved[key]), key


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(runs):
    resumed, straight = runs["npz"]["resumed"], runs["npz"]["straight"]
    assert resumed.keys() == straight.keys() and int(resumed["epoch"]) == 3
    for key in straight:  # The same steps on the same batches in the same process layout: bit for bit.
        assert np.array_equal(resumed[key], straight[key]), key
