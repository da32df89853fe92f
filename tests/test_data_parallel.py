"""examples/data_parallel.py as a real multi-process job: two processes of 4 simulated CPU devices each,
joined by ``jax.distributed`` over loopback (CPU collectives over gloo), on a mesh of data 2 x model 4.

The two-process job trains with ZeRO-1, and saves its params and Adam state with Orbax; one process on 8
devices trains the same batches without ZeRO-1; a third run, one process on a mesh of another shape,
restores the checkpoint; a fourth resumes the one-process run for an epoch, against a fifth that runs
straight through. Each run is a fresh process, so the device counts are set before JAX starts.

Those jobs are marked ``exhaustive``; the checks of ``--restore``, ``--save`` and ``--out``, which refuse a bad
path before JAX starts, are quick and run in README's ``pytest``.
"""

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests import background
from tests.background import Job
from tests.helpers import module_from_file

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


@pytest.fixture(scope="module")
def runs():
    return JOBS["runs"].result()


def _state_bytes(stdout: str) -> dict[int, tuple[int, int]]:
    return {int(p): (int(device), int(total)) for p, device, total in STATE_LINE.findall(stdout)}


@pytest.mark.exhaustive  # Multi-process jobs.
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


@pytest.mark.exhaustive  # Multi-process jobs.
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


@pytest.mark.exhaustive  # Multi-process jobs.
def test_one_process_restores_what_two_processes_saved(runs):
    saved, restored = runs["npz"]["two"], runs["npz"]["r"]
    assert "restored epoch 2 from ckpt" in runs["stdout"]["restored"]
    assert "mesh: data 4 x model 2 on 8 devices in 1 process(es)" in runs["stdout"]["restored"]
    assert restored.keys() == saved.keys()
    for key in saved:  # params, Adam's count, mu and nu, and the epoch: bit for bit.
        assert restored[key].dtype == saved[key].dtype and np.array_equal(restored[key], saved[key]), key


@pytest.mark.exhaustive  # Multi-process jobs.
def test_a_resumed_run_ends_where_an_uninterrupted_one_does(runs):
    resumed, straight = runs["npz"]["resumed"], runs["npz"]["straight"]
    assert resumed.keys() == straight.keys() and int(resumed["epoch"]) == 3
    for key in straight:  # The same steps on the same batches in the same process layout: bit for bit.
        assert np.array_equal(resumed[key], straight[key]), key


# ----------------------------------------------------------------------------- bad paths, refused before JAX starts


@pytest.fixture(scope="module")
def example():
    """examples/data_parallel.py as a module (its ``__main__`` block does not run)."""
    return module_from_file(EXAMPLE, "data_parallel_example")


def _orbax_metadata(directory: Path, entries: list[str]) -> None:
    """A ``_METADATA`` as Orbax writes it (tree_metadata, one record per leaf), naming the leaves ``entries``."""
    directory.mkdir()
    tree = {
        f"('{name}',)": {"key_metadata": [{"key": name, "key_type": 2}], "value_metadata": {"value_type": "np.ndarray"}}
        for name in entries
    }
    (directory / "_METADATA").write_text(json.dumps({"tree_metadata": tree}))


@pytest.fixture
def paths(tmp_path, monkeypatch):
    """A folder to run in: a checkpoint as --save writes it, another program's checkpoint, an empty folder, a
    folder of other files and a file."""
    _orbax_metadata(tmp_path / "ckpt", ["epoch", "opt_state", "params"])
    _orbax_metadata(tmp_path / "other", ["params"])
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("not a checkpoint")
    (tmp_path / "afile").write_text("not a directory")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--restore", "missing"], "argument --restore: 'missing' does not exist"),
        (["--restore", "afile"], "argument --restore: 'afile' is not a directory"),
        (
            ["--restore", "empty"],
            "argument --restore: 'empty' is not a checkpoint written by --save (no Orbax metadata naming epoch, "
            "opt_state, params)",
        ),
        (
            ["--restore", "other"],
            "argument --restore: 'other' is not a checkpoint written by --save (no Orbax metadata naming epoch, "
            "opt_state, params)",
        ),
        (["--save", "afile"], "argument --save: 'afile' is a file; name a directory for the checkpoint"),
        (
            ["--save", "notes"],
            "argument --save: 'notes' holds files that are not a checkpoint of this script, and saving would "
            "delete them; name a new or empty directory",
        ),
        (["--save", "missing/ckpt"], "argument --save: directory 'missing' does not exist"),
        (["--save", "afile/ckpt"], "argument --save: 'afile' is not a directory"),
        (["--out", "missing/dir/x.npz"], "argument --out: directory 'missing/dir' does not exist"),
        (["--out", "afile/x.npz"], "argument --out: 'afile' is not a directory"),
        (["--out", "params"], "argument --out: expected a name ending in .npz, got 'params'"),
        (["--out", "params.NPZ"], "argument --out: expected a name ending in .npz, got 'params.NPZ'"),
        (["--out", "empty"], "argument --out: 'empty' is a directory; name a file in it, e.g. 'empty/params.npz'"),
        (["--out", "plots/"], "argument --out: 'plots/' is a directory; name a file in it, e.g. 'plots/params.npz'"),
        # The first bad one is named, --restore before --save before --out.
        (["--out", "x", "--save", "afile", "--restore", "missing"], "argument --restore: 'missing' does not exist"),
    ],
)
def test_bad_path_exits_2_naming_the_flag_and_the_path(args, message, example, paths, capsys):
    with pytest.raises(SystemExit) as exit_info:
        example.parse_args(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].endswith(f": error: {message}")
    assert sorted(p.name for p in paths.iterdir()) == ["afile", "ckpt", "empty", "notes", "other"]  # Untouched.


def test_unwritable_directory_exits_2(example, paths, monkeypatch, capsys):
    # Root may write anywhere, so the permission check is simulated: os.access says "no" for this folder.
    (paths / "locked").mkdir()
    access = example.os.access
    monkeypatch.setattr(example.os, "access", lambda path, mode: Path(path) != Path("locked") and access(path, mode))
    for flag, path in [("--save", "locked/ckpt"), ("--out", "locked/x.npz")]:
        with pytest.raises(SystemExit) as exit_info:
            example.parse_args([flag, path])
        assert exit_info.value.code == 2
        last = capsys.readouterr().err.splitlines()[-1]
        assert last.endswith(f"error: argument {flag}: directory 'locked' is not writable")


def test_good_paths_parse(example, paths):
    # Control: a checkpoint to restore and to replace, a new or empty directory to save into, a new .npz.
    args = example.parse_args(["--restore", "ckpt", "--save", "ckpt", "--out", "params.npz"])
    assert (args.restore, args.save, args.out) == ("ckpt", "ckpt", "params.npz")
    assert example.parse_args(["--save", "empty"]).save == "empty"
    assert example.parse_args(["--save", "new", "--out", "empty/params.npz"]).save == "new"
    assert example.checkpoint_entries(paths / "ckpt") == {"epoch", "opt_state", "params"}
    assert example.checkpoint_entries(paths / "empty") is None
    # Only process 0 writes --out, maybe on a disk of its own: another process does not check it.
    other = ["--num-processes", "2", "--coordinator", "127.0.0.1:1", "--process-id", "1", "--out", "missing/x.npz"]
    assert example.parse_args(other).out == "missing/x.npz"
    with pytest.raises(SystemExit):
        example.parse_args([*other[:-3], "0", "--out", "missing/x.npz"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--restore", "MISSING"], "argument --restore: 'MISSING' does not exist"),
        (["--out", "/missing/dir/x.npz"], "argument --out: directory '/missing/dir' does not exist"),
    ],
)
def test_the_script_refuses_a_bad_path_before_importing_jax(args, message, tmp_path):
    # A jax that cannot be imported comes first on the path: the script must stop before it needs one.
    (tmp_path / "nojax" / "jax").mkdir(parents=True)
    (tmp_path / "nojax" / "jax" / "__init__.py").write_text('raise ImportError("the example imported jax")\n')
    env = {"PYTHONPATH": str(tmp_path / "nojax"), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, str(EXAMPLE), "--epochs", "1", *args]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""  # No data line, no epoch line: nothing ran.
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("usage: data_parallel.py")  # argparse's usage, then the one error line.
    assert [line for line in lines if "error" in line] == lines[-1:] == [f"data_parallel.py: error: {message}"]
    # Control: with good paths the same command gets as far as importing jax.
    result = subprocess.run(command[:4], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "ImportError: the example imported jax" in result.stderr
