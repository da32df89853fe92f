"""The `adaptive-tx` command: the race on every problem, its table, its PNG and its errors."""

import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from adaptive_tx import cli
from adaptive_tx.problems import PROBLEMS
from tests.helpers import run_steps

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_race_prints_table_and_writes_png(problem, tmp_path, capsys):
    out = tmp_path / f"{problem}.png"
    assert cli.main(["race", "--problem", problem, "--steps", "300", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("optimizer"))
    assert "final loss" in lines[header] and "distance to min" in lines[header] and "steps to" in lines[header]
    rows = lines[header + 2 : header + 7]
    assert [r.split()[0] for r in rows] == list(cli.OPTIMIZERS)
    for row in rows:
        final_loss, steps = row.split()[2], row.split()[-1]
        float(final_loss)
        assert steps == "never" or 0 <= int(steps) <= 300
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert out.stat().st_size > 20_000  # Contours and five paths, not an empty canvas.
    assert f"wrote {out}" in text


def test_race_agrees_with_an_independent_loop():
    # The race's scan against a Python loop of jitted steps; steps-to-target recomputed from that loop.
    problem = PROBLEMS["beale"]
    (lap,) = cli.race(problem, 400, {"adam": 0.1})
    grad = jax.grad(problem.fn)
    trajectory, _ = run_steps(cli.OPTIMIZERS["adam"](0.1), jax.numpy.asarray(problem.start), lambda w, t: grad(w), 400)
    path = np.asarray([problem.start, *map(np.asarray, trajectory)])
    # Scan and loop order float32 operations differently; 1e-4 absolute on O(1) coordinates.
    np.testing.assert_allclose(lap.path, path, atol=1e-4)
    losses = np.asarray([problem.fn(w) for w in path])
    assert lap.steps_to_target == int(np.flatnonzero(losses <= problem.target)[0])
    assert lap.distance == pytest.approx(np.linalg.norm(path[-1] - np.array([3.0, 0.5])), abs=1e-4)


def test_lr_override_and_optimizer_subset(tmp_path, capsys):
    out = tmp_path / "race.png"
    cli.main(["race", "--steps", "50", "--lr", "adam=0.003", "--optimizers", "adam,momentum", "--out", str(out)])
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    table = {r[0]: r for r in rows if r and r[0] in cli.OPTIMIZERS}
    assert set(table) == {"adam", "momentum"}
    assert table["adam"][1] == "0.003"
    assert table["momentum"][1] == f"{PROBLEMS['rosenbrock'].learning_rates['momentum']:g}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["race", "--problem", "ackley"], "invalid choice: 'ackley'"),
        (["race", "--lr", "sgd=0.1"], "unknown optimizer 'sgd'"),
        (["race", "--lr", "adam"], "expected NAME=VALUE"),
        (["race", "--lr", "adam=fast"], "must be a number"),
        (["race", "--lr", "adam=-1"], "must be finite and >= 0"),
        (["race", "--optimizers", "adam,lion"], "unknown optimizer 'lion'"),
        (["race", "--steps", "0"], "expected a positive integer"),
        (["sprint"], "invalid choice: 'sprint'"),
        ([], "the following arguments are required"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_installed_command_help_explains_everything():
    command = Path(sys.executable).parent / "adaptive-tx"
    result = subprocess.run([command, "--help"], capture_output=True, text=True, check=True)
    for word in ["race", "AdaGrad", "Adam", *PROBLEMS]:
        assert word in result.stdout
    result = subprocess.run([command, "race", "--help"], capture_output=True, text=True, check=True)
    for flag in ["--problem", "--steps", "--lr", "--out", "--optimizers", "--target", *PROBLEMS]:
        assert flag in result.stdout
